// SPDX-License-Identifier: MIT
#pragma once
// A kernel decision (lfp_event) as a net event: the JSON lfpd logs and hands to the net event log.
#include <nlohmann/json.hpp>

#include "lfp/datapath/compile.hpp"

namespace lfp::datapath {

// Names the filter, sublayer and provider through the engine, the executable through the policy's
// app paths (else /proc/PID/exe, read once per event, never per connection).
nlohmann::json describe(const lfp_event& ev, const FilterEngine& engine, const KernelPolicy& policy);

// One line for the log: "BLOCK ALE_AUTH_CONNECT_V4 tcp 10.0.0.1:4000 -> 10.0.0.2:80 app ... by filter ...".
std::string summary(const nlohmann::json& event);

// A dropped packet the packet layers kept (lfp capture): time, layer, filter key, interface, length,
// link ("RAW": from the IP header, or "ETHERNET") and its first bytes in hex.
nlohmann::json describe_dropped(const lfp_dropped& p, const FilterEngine& engine);

}  // namespace lfp::datapath
