// SPDX-License-Identifier: MIT
#pragma once
// lfp replay: a capture (pcap or pcapng) walked through the packet layers against a policy, offline
// (docs/packet-layers.md "Replay", docs/cli.md).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "lfp/engine/engine.hpp"
#include "lfp/packet/parse.hpp"
#include "lfp/packet/walk.hpp"
#include "verbs.hpp"

namespace lfp::cli {

struct ReplayArgs {
  std::string policy, pcap;
  std::vector<std::string> locals;
  int64_t ifindex = -1;  // -1: none (EMPTY)
};
// lfp replay: prints one decision a packet. A bad argument is an std::invalid_argument (exit 1), an
// unreadable capture an std::runtime_error (exit 2).
void add_replay_verb(CLI::App& app, Globals& g, Verbs& verbs);

// One packet of a capture after its walk through the packet layers (what lfp replay prints, and what
// lfp import --verify compares with the kernel).
struct ReplayedPacket {
  struct Layer {
    LayerId layer;
    ClassifyResult result;
  };
  uint64_t index = 0;
  std::span<const uint8_t> bytes;  // as captured (caplen bytes), link header included
  uint32_t wire_length = 0;        // the length on the wire
  packet::LinkType link = packet::LinkType::RAW;
  const packet::Packet* packet = nullptr;
  const packet::Walk* walk = nullptr;  // direction(), fragment_state(), headers()
  std::vector<Layer> layers;           // in order; the walk stops at the first BLOCK
  bool permit() const { return layers.empty() || layers.back().result.permit; }
};
// Reads the capture and walks each packet, in order, through the layers against the engine, calling
// `on_packet` after each walk (false from it: stop there). Same errors as lfp replay. The engine's
// registered callouts get the packet from its IP header on (at DATAGRAM_DATA its UDP payload), as
// lfpd's packet path gives it them; `before_walk`, if given, hears each packet's capture time
// (nanoseconds since the epoch) before its walk, for callouts that count time (lfp import --verify's).
void replay_capture(const FilterEngine& engine, const ReplayArgs& a,
                    const std::function<bool(const ReplayedPacket&)>& on_packet,
                    const std::function<void(uint64_t time_ns)>& before_walk = {});
// Where the IP header starts in a captured frame of the packet's link type.
size_t link_header_length(const packet::Packet& p);
// One line about a packet: "IPv4 TCP 10.0.0.1:40000 > 192.0.2.1:443 SYN".
std::string packet_summary(const packet::Packet& p);

}  // namespace lfp::cli
