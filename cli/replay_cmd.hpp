#pragma once
// lfp replay: a capture (pcap or pcapng) walked through the packet layers against a policy, offline
// (docs/packet-layers.md "Replay", docs/cli.md).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "lfp/engine/engine.hpp"

namespace lfp::cli {

struct ReplayArgs {
  std::string policy, pcap;
  std::vector<std::string> locals;
  int64_t ifindex = -1;  // -1: none (EMPTY)
};
CLI::App* add_replay_command(CLI::App& app, ReplayArgs& a);
// Prints one decision a packet. Throws std::invalid_argument on a bad argument (exit 1) and
// std::runtime_error on an unreadable capture (exit 2).
int run_replay(const FilterEngine& engine, const ReplayArgs& a, bool as_json);

}  // namespace lfp::cli
