// SPDX-License-Identifier: MIT
#pragma once
// WFPClients, the hand-off: a provider registers a helper under its provider GUID, in a registry
// directory (default /etc/lfp/helpers.d) of JSON files:
//   {"provider": "GUID", "command": ["/usr/lib/vpn/lfp-helper", "--diagnose"], "timeout_ms": 5000}
// When a diagnosis blames that provider's filter, the diagnosing process runs the helper (with its
// own rights, as NDF runs helper classes in the diagnosing process) and passes it the hypothesis'
// attributes as JSON on stdin; the helper answers JSON on stdout:
//   {"root_cause": "the VPN is disconnected", "repairs": ["reconnect: vpnctl up"]}
// A missing, failing or slow helper is reported in the result, never fatal.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/engine/guid.hpp"

namespace lfp::diagnostics {

inline constexpr const char* kDefaultHelpersDir = "/etc/lfp/helpers.d";

struct HelperRegistration {
  Guid provider;
  std::vector<std::string> command;
  int timeout_ms = 5000;
  std::string file;  // where it was registered
};

// Every registration in `dir` (*.json); unreadable or malformed files are listed in *errors.
std::vector<HelperRegistration> load_helpers(const std::string& dir, std::vector<std::string>* errors);

// {"status": "answered"|"failed"|"timed_out"|"not_registered"|"invalid_answer", "helper": [...command],
//  "root_cause", "repairs" (answered), "detail" (otherwise), "elapsed_ms"}
nlohmann::json run_helper(const HelperRegistration& h, const nlohmann::json& attributes);
nlohmann::json hand_off(const std::string& dir, const Guid& provider, const nlohmann::json& attributes);

}  // namespace lfp::diagnostics
