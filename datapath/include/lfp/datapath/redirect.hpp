// SPDX-License-Identifier: MIT
#pragma once
// ALE_CONNECT_REDIRECT (WFP: a callout at that layer rewrites the connect request, and the proxy it
// sends the connection to asks for the original destination). LFP has two built-in redirect callouts.
// A filter at ALE_CONNECT_REDIRECT_V4 (or _V6) whose action is CALLOUT_TERMINATING with callout
// REDIRECT_CALLOUT_V4 (_V6), and with HAS_PROVIDER_CONTEXT naming a provider context whose data is
//   {"address": "127.0.0.1", "port": 3128}
// sends the connects it matches there. The kernel (connect4/6) rewrites the destination before
// ALE_AUTH_CONNECT, which then authorizes the new one. The proxy recovers where each connection was
// going by its peer address: lfpd's `redirect_record` op, or `lfp show redirect --peer ADDR:PORT`.
// The proxy's own connects must not match the filter: run it outside the cgroup, or exclude it with
// a condition (e.g. ALE_APP_ID NOT_EQUAL its path).
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lfp/datapath/kernel.hpp"

namespace lfp::datapath {

extern const Guid REDIRECT_CALLOUT_V4;  // 4c460000-0000-4000-8000-000000000004
extern const Guid REDIRECT_CALLOUT_V6;  // 4c460000-0000-4000-8000-000000000006
// ALE_BIND_REDIRECT_V4/V6: the same with a bind address (port 0 keeps the port asked for).
extern const Guid BIND_REDIRECT_CALLOUT_V4;  // 4c460000-0000-4000-8000-000000000014
extern const Guid BIND_REDIRECT_CALLOUT_V6;  // 4c460000-0000-4000-8000-000000000016
bool is_redirect_callout(const Guid& key);

// Where a redirect filter sends connects; nullopt with the reason when its provider context is
// missing or malformed.
std::optional<lfp_redirect> redirect_target(const FilterEngine& engine, const Filter& f, std::string* why);

// Registers the two callouts' run-time side with `engine` (FwpsCalloutRegister): they permit, and
// refuse a filter whose target cannot be read (the add fails with the reason).
void register_redirect_callouts(FilterEngine& engine);

// "ADDR:PORT" / "[V6]:PORT" of a redirected connection as its proxy sees the peer -> the record:
// {"original": "ADDR:PORT", "original_address", "original_port", "pid", "uid", "gid", "filter_id"};
// nullopt when there is none. Throws std::invalid_argument on a malformed peer.
std::optional<nlohmann::json> redirect_record(const KernelPath& kernel, const std::string& peer);

}  // namespace lfp::datapath
