// SPDX-License-Identifier: MIT
#pragma once
// Causes outside LFP, for when its own log is clean: rules of other nftables tables (iptables-nft's
// included) and of legacy iptables at the hooks the hypothesis' traffic passes, and, for an endpoint
// on this host, no socket listening on its port. Read in the caller's network namespace.
#include <nlohmann/json.hpp>

#include "lfp/diagnostics/diagnose.hpp"

namespace lfp::diagnostics {

// [{"kind": "nftables"|"iptables-legacy"|"no_listener", "certainty": "drops"|"may_drop"|"refused",
//   "where": ..., "rule": ..., "description": ...}]
nlohmann::json foreign_causes(const Hypothesis& h);
// The same over a ruleset as `nft -j list ruleset` prints it (what foreign_causes reads through
// libnftables); exposed for tests.
nlohmann::json nft_causes(const nlohmann::json& ruleset, const Hypothesis& h);

}  // namespace lfp::diagnostics
