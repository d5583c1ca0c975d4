// SPDX-License-Identifier: MIT
#pragma once
// Importing a WFP state dump (`netsh wfp show state` -> wfpstate.xml, `netsh wfp show filters` ->
// filters.xml) into an LFP policy (docs/porting.md). LFP keeps WFP's object model and names, so the
// import is nearly one to one: providers, sublayers, callouts and filters keep their GUIDs, flags and
// display data; FWPM_LAYER_X becomes layer X, FWPM_CONDITION_X field X, FWP_MATCH_X match X. Weights:
// a filter's effectiveWeight (what the BFE computed, so WFP's order) becomes its explicit weight.
// What LFP cannot express is reported with the item's line: layers LFP lacks (IKEEXT, IPsec, RPC,
// ...), fields it lacks (package ids, profiles), Windows SIDs and security descriptors, provider
// contexts, and app ids (Windows device paths) that no --map-app prefix rewrites to a Linux path.
#include "lfp/import/iptables.hpp"

namespace lfp::import {

// Throws ImportError (the line of the XML error or of the item) for malformed input.
ImportResult import_wfp(const std::string& xml, const ImportOptions& opts = {});

// A Windows app id (FWP_BYTE_BLOB_TYPE: UTF-16LE, NUL-terminated) from its hex dump, as UTF-8;
// nullopt when it is not one.
std::optional<std::string> app_id_from_hex(const std::string& hex);

}  // namespace lfp::import
