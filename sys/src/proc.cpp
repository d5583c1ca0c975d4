// SPDX-License-Identifier: MIT
#include "lfp/sys/proc.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lfp::sys {

ProcStatus::ProcStatus(pid_t pid) {
  const std::string path = pid == 0 ? "/proc/self/status" : "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw std::runtime_error("cannot read " + path);
  read(text.str());
}

ProcStatus ProcStatus::parse(const std::string& text) {
  ProcStatus status{Unread{}};
  status.read(text);
  return status;
}

void ProcStatus::read(const std::string& text) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t value = line.find_first_not_of(" \t", colon + 1);
    fields_[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
  }
}

std::optional<std::string> ProcStatus::text(const std::string& field) const {
  const auto it = fields_.find(field);
  if (it == fields_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint64_t> ProcStatus::numbers(const std::string& field) const {
  std::vector<uint64_t> values;
  std::istringstream in(text(field).value_or(""));
  for (uint64_t v; in >> v;) values.push_back(v);
  return values;
}

}  // namespace lfp::sys
