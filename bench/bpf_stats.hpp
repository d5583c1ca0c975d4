// SPDX-License-Identifier: MIT
// The kernel's run-time statistics of LFP's BPF programs, for the benchmarks' --bpf-stats: what each
// program cost per connection or per packet, measured by the kernel while the benchmark runs.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

#include <bpf/bpf.h>
#include <nlohmann/json.hpp>

namespace lfp::bench {

// Run time (ns) and run count of each loaded lfp_* program, summed by program name.
using ProgStats = std::map<std::string, std::pair<uint64_t, uint64_t>>;

inline ProgStats lfp_prog_stats() {
  ProgStats out;
  for (uint32_t id = 0; bpf_prog_get_next_id(id, &id) == 0;) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::strncmp(info.name, "lfp_", 4) == 0) {
      auto& s = out[info.name];
      s.first += info.run_time_ns;
      s.second += info.run_cnt;
    }
    ::close(fd);
  }
  return out;
}

// acc += what ran between `before` and now.
inline void add_since(ProgStats& acc, const ProgStats& before) {
  for (const auto& [name, s] : lfp_prog_stats()) {
    auto b = before.find(name);
    auto& a = acc[name];
    a.first += s.first - (b == before.end() ? 0 : b->second.first);
    a.second += s.second - (b == before.end() ? 0 : b->second.second);
  }
}

// Each program's cost per unit of work (a connection, a packet received): ns and runs per unit and
// ns per run; *total is the sum of their ns per unit.
inline nlohmann::json per_unit(const ProgStats& stats, double units, double* total) {
  nlohmann::json out = nlohmann::json::object();
  *total = 0;
  if (units <= 0) return out;
  for (const auto& [name, s] : stats) {
    if (s.second == 0) continue;
    const double ns = static_cast<double>(s.first) / units;
    out[name] = {{"ns_per_unit", ns},
                 {"runs_per_unit", static_cast<double>(s.second) / units},
                 {"ns_per_run", static_cast<double>(s.first) / static_cast<double>(s.second)}};
    *total += ns;
  }
  return out;
}

// The kernel keeps the statistics while this lives (BPF_ENABLE_STATS: no sysctl to restore).
class StatsOn {
 public:
  StatsOn() : fd_(bpf_enable_stats(BPF_STATS_RUN_TIME)) {
    if (fd_ < 0) throw std::runtime_error(std::string("BPF_ENABLE_STATS: ") + std::strerror(errno));
  }
  ~StatsOn() { ::close(fd_); }
  StatsOn(const StatsOn&) = delete;
  StatsOn& operator=(const StatsOn&) = delete;

 private:
  int fd_;
};

}  // namespace lfp::bench
