// SPDX-License-Identifier: MIT
#pragma once
// Importing `nft -j list ruleset` into an LFP policy (docs/porting.md). Base chains of type filter at
// hooks input, output and forward (families ip, ip6, inet) map as the iptables chains do; each base
// chain becomes a sublayer of its own, so that a drop in any of them wins and an accept only ends its
// own chain, as in nftables (WFP: block overrides a soft permit across sublayers). Named sets are
// expanded. Every rule that cannot be expressed is reported with its place ("item N" of the
// nftables array, chain and handle) and the reason.
#include "lfp/import/iptables.hpp"

namespace lfp::import {

// Throws ImportError (line of the JSON error, or 0 with the item) for malformed input.
ImportResult import_nft(const std::string& json_text, const ImportOptions& opts = {});

}  // namespace lfp::import
