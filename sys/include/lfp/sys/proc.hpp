// SPDX-License-Identifier: MIT
#pragma once
// /proc/PID/status, read once, its fields by name ("Uid", "Gid", "Groups", "VmRSS", ...).
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lfp::sys {

class ProcStatus {
 public:
  // The status of `pid` (0: this process). Throws std::runtime_error when it cannot be read (a pid that
  // is gone).
  explicit ProcStatus(pid_t pid = 0);
  // The same, from the text of a status file (tests).
  static ProcStatus parse(const std::string& text);

  // A field's value as written, leading blanks dropped; nullopt when the file has no such field.
  std::optional<std::string> text(const std::string& field) const;
  // A field's whitespace-separated numbers: "Uid" gives {real, effective, saved, filesystem}, "Groups"
  // the supplementary groups (none: empty), "VmRSS" {kB}. Empty when the field is missing.
  std::vector<uint64_t> numbers(const std::string& field) const;

 private:
  struct Unread {};
  explicit ProcStatus(Unread) {}
  void read(const std::string& text);
  std::map<std::string, std::string, std::less<>> fields_;
};

}  // namespace lfp::sys
