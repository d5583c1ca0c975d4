// SPDX-License-Identifier: MIT
#pragma once
// ALE_RESOURCE_RELEASE and ALE_ENDPOINT_CLOSURE, WFP's notification layers: a socket of the cgroup is
// released (cgroup/sock_release, lfp_ale_sock.bpf.c). Nothing is refused there. A callout registered at
// the layer gets its classify call, to clean up what it keeps for the port or the flow (its flow
// handle is the socket cookie, as at ALE_AUTH_CONNECT). The kernel reports a release only when a
// filter that needs user space was reached, or when permits are logged.
#include <optional>

#include <nlohmann/json.hpp>

#include "lfp/datapath/compile.hpp"

namespace lfp::datapath {

// LFP_KL_RELEASE_V4/V6 and LFP_KL_CLOSURE_V4/V6.
bool notification_layer(unsigned kl);

// A release the kernel reported. When the kernel could not decide, classifies it at its layer with
// the engine, which calls the callouts. Returns the net event to record: with log_allows, a
// CLASSIFY_ALLOW naming the filter that matched (nothing is dropped at these layers); else none.
std::optional<nlohmann::json> notify_release(const lfp_event& ev, const FilterEngine& engine, const KernelPolicy& policy,
                                             bool log_allows);

}  // namespace lfp::datapath
