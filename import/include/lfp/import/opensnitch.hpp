// SPDX-License-Identifier: MIT
#pragma once
// Importing OpenSnitch rule files (/etc/opensnitchd/rules/*.json, one rule a file) into an LFP policy
// (docs/porting.md). Every rule becomes filters at ALE_AUTH_CONNECT_V4 and/or _V6 in one sublayer,
// weighted so that the engine picks OpenSnitch's winner (daemon/rule/loader.go, FindFirstMatch):
// enabled rules in rule-name order; the first matching deny, reject or priority ("precedence") rule
// decides; otherwise any matching allow rule allows; otherwise the daemon's default action. Rules
// or parts LFP cannot express (host names, regexps other than literals, command lines, disabled or
// temporary rules, ...) are reported with the file and the reason; nothing is dropped silently.
#include <string>
#include <vector>

#include "lfp/import/iptables.hpp"

namespace lfp::import {

struct RuleFile {
  std::string name;  // the path, as reports name it
  std::string text;
};

// A malformed file among several: which one, and where in it.
class FileImportError : public ImportError {
 public:
  FileImportError(std::string file, int line, const std::string& what) : ImportError(line, what), file_(std::move(file)) {}
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

// opts.default_action: "allow" or "deny" adds a last filter for connections no rule matched (the
// daemon's DefaultAction); "" adds none. Throws FileImportError for a malformed file.
ImportResult import_opensnitch(const std::vector<RuleFile>& files, const ImportOptions& opts = {});

// A rule file, or every *.json in a directory (sorted by name, as opensnitchd globs them).
// Throws FileImportError when a file cannot be read.
std::vector<RuleFile> read_opensnitch_rules(const std::string& path);

}  // namespace lfp::import
