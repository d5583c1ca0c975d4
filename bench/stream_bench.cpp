// SPDX-License-Identifier: MIT
// lfp-stream-bench: what stream inspection (lfpd --inspect-queue, a STREAM_V4 callout) costs a bulk
// TCP transfer. In the test Sandbox (two namespaces and a veth pair), iperf3 sends A -> B for a few
// seconds, in each configuration, rounds interleaved so that all see the same machine:
//   none     no lfpd in A: the baseline;
//   allow    lfpd in A with the example plugin's STREAM_V4 callout on the flow, answering
//            ALLOW_CONNECTION on the first bytes: the rest of the flow stays in the kernel (conntrack mark);
//   inspect  the same callout answering CONTINUE: every byte goes through lfpd's queue, its
//            reassembly and the plugin's host process.
// Prints the median MB/s of each and its ratio to `none`, plus lfpd's counters for `inspect`.
//
// Usage (root): lfp-stream-bench [--secs S] [--rounds N]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "sandbox.hpp"

using lfp::test::Daemon;
using lfp::test::Sandbox;
using lfp::test::Side;
using nlohmann::json;

namespace {

json policy(const std::string& how) {
  const std::string callout = "4c460000-0000-4000-8000-0000000000cb";
  return {{"callouts", {{{"key", callout}, {"name", "example"}, {"layer", "STREAM_V4"}}}},
          {"provider_contexts", {{{"key", "ca110000-0000-4000-8000-0000000002c1"}, {"name", how}, {"data", how}}}},
          {"filters",
           {{{"name", "inspect iperf3 (" + how + ")"},
             {"layer", "STREAM_V4"},
             {"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}},
             {"flags", {"HAS_PROVIDER_CONTEXT"}},
             {"provider_context", "ca110000-0000-4000-8000-0000000002c1"},
             {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 5201}}}}}}}};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int secs = 2, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--secs" && i + 1 < argc) secs = std::atoi(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else {
      std::cerr << "usage: lfp-stream-bench [--secs S] [--rounds N]\n";
      return 1;
    }
  }
  if (secs < 1 || rounds < 1) {
    std::cerr << "lfp-stream-bench: --secs and --rounds must be at least 1\n";
    return 1;
  }
  if (access("/usr/bin/iperf3", X_OK) != 0) {
    std::cerr << "lfp-stream-bench: iperf3 is not installed (Debian package iperf3)\n";
    return 1;
  }
  std::string why;
  if (!lfp::test::sandbox_available(&why)) {
    std::cerr << "lfp-stream-bench: " << why << '\n';
    return 1;
  }
  try {
    Sandbox sb;
    sb.spawn_argv({"/usr/bin/iperf3", "-s", "-p", "5201"}, {.side = Side::B});
    if (!sb.wait_for_port(Side::B, 5201)) throw std::runtime_error("iperf3 -s did not start");
    auto mbps = [&]() -> double {
      for (int attempt = 0; attempt < 3; ++attempt) {
        const auto r = sb.run_argv({"/usr/bin/iperf3", "-c", sb.ip4(Side::B), "-p", "5201", "-t", std::to_string(secs), "-J"},
                                   {.side = Side::A, .timeout = std::chrono::seconds(secs + 20)});
        const json j = json::parse(r.out, nullptr, false);
        if (r.ok() && j.is_object() && j.contains("end"))
          return j["end"]["sum_received"]["bits_per_second"].get<double>() / 8e6;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // (the server still busy with the last run)
      }
      throw std::runtime_error("iperf3 failed three times");
    };
    std::map<std::string, std::vector<double>> got;
    json inspect_stats;
    const std::vector<std::string> configs = {"none", "allow", "inspect"};
    for (int round = 0; round < rounds; ++round) {
      for (const auto& c : configs) {
        std::unique_ptr<Daemon> lfpd;
        if (c != "none") {
          lfpd = std::make_unique<Daemon>(std::vector<std::string>{"--inspect-queue", "7360", "--callout", LFP_EXAMPLE_CALLOUT},
                                          sb.ns_path(Side::A));
          lfpd->connect()->apply(policy(c == "allow" ? "need:1" : "inspect"));
        }
        got[c].push_back(mbps());
        if (c == "inspect") inspect_stats = lfpd->connect()->call("flows")["stats"];
      }
      std::fprintf(stderr, "round %d/%d: none %.0f, allow %.0f, inspect %.0f MB/s\n", round + 1, rounds, got["none"].back(),
                   got["allow"].back(), got["inspect"].back());
    }
    const double base = median(got["none"]);
    std::printf("lfp-stream-bench: iperf3 A->B, %d s x %d rounds, median MB/s (ratio to none)\n", secs, rounds);
    for (const auto& c : configs)
      std::printf("  %-8s %9.1f MB/s  %.3f\n", c.c_str(), median(got[c]), median(got[c]) / base);
    std::printf("  inspect, last round: %s\n", inspect_stats.dump().c_str());
  } catch (const std::exception& e) {
    std::cerr << "lfp-stream-bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
