#pragma once
// Importing iptables-save / ip6tables-save output into an LFP policy (docs/porting.md).
//
// The filter table's chains map to the ALE layers: INPUT to ALE_AUTH_RECV_ACCEPT, OUTPUT to
// ALE_AUTH_CONNECT, FORWARD to IPFORWARD (_V4 or _V6 by the file's family). The ALE layers decide a
// flow's first packet, so "--ctstate ESTABLISHED,RELATED -j ACCEPT" is what they do already. Rule
// order becomes explicit weights in one sublayer (the first matching rule decides, as in a chain),
// jumps to user chains are flattened in order, and each chain policy becomes a last filter with no
// condition. Every rule that cannot be expressed is reported with its line and the reason; nothing is
// dropped silently.
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

struct ImportResult {
  nlohmann::json policy;          // an LFP policy file
  std::vector<Unmapped> unmapped; // rules left out (with why), or imported with a caveat
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
