// SPDX-License-Identifier: MIT
#pragma once
// Importing iptables-save / ip6tables-save output into an LFP policy (docs/porting.md).
//
// The filter table's chains map to the ALE layers: INPUT to ALE_AUTH_RECV_ACCEPT, OUTPUT to
// ALE_AUTH_CONNECT, FORWARD to IPFORWARD (_V4 or _V6 by the file's family). The ALE layers decide a
// flow's first packet, so "--ctstate ESTABLISHED,RELATED -j ACCEPT" is what they do already. Rule
// order becomes explicit weights in one sublayer (the first matching rule decides, as in a chain);
// jumps, gotos and RETURNs (conditional or not) are flattened so that the filters decide as the
// chain walk does, and each chain policy becomes a last filter with no condition. Every rule is
// accounted for: the filters it became, or why not, with its line; nothing is dropped silently.
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace lfp::import {

struct Unmapped {
  int line = 0;
  std::string text, reason;
};

// One original rule's account (iptables and nftables): the filters it became (by name) and notes:
// why it is left out, a caveat, or what it does instead (a jump, a RETURN the later filters carry).
struct RuleReport {
  int line = 0;
  std::string text;
  std::vector<std::string> filters, notes;
};

struct ImportResult {
  nlohmann::json policy;          // an LFP policy file
  std::vector<Unmapped> unmapped; // rules left out (with why), or imported with a caveat
  std::vector<RuleReport> coverage;  // every rule, in line order (iptables and nftables)
  std::vector<std::string> needs;    // what lfpd needs to enforce the policy as imported
  size_t rules = 0, filters = 0;
};

struct ImportOptions {
  std::string provider;  // GUID; a provider is created when empty
  std::string sublayer;  // GUID; a sublayer is created when empty
  std::string source = "iptables-save";  // names the objects
  std::string default_action;            // opensnitch: "allow", "deny" or "" (see opensnitch.hpp)
  // wfp: Windows app id prefixes rewritten to Linux paths ("\\device\\harddiskvolume3\\program files\\x" ->
  // "/opt/x"), matched case-insensitively; app ids no prefix covers are reported (see wfp.hpp).
  std::vector<std::pair<std::string, std::string>> map_app;
};

// A malformed file: "LINE: message".
class ImportError : public std::runtime_error {
 public:
  ImportError(int line, const std::string& what) : std::runtime_error(std::to_string(line) + ": " + what), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

// Throws ImportError for a malformed file (never crashes on any input).
ImportResult import_iptables(const std::string& text, const ImportOptions& opts = {});

}  // namespace lfp::import
