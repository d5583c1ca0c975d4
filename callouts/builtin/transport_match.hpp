// SPDX-License-Identifier: MIT
#pragma once
// The built-in transport-match callout's logic (lfp_inspect_callouts, keys kTransportMatchCalloutV4 / _V6 at
// IPFORWARD_V4 / _V6): the fields WFP's IPFORWARD layer does not have (the protocol and the ports),
// read from the forwarded packet, so that an imported FORWARD rule such as Docker's
// `-o docker0 -p tcp --dport 80 -j ACCEPT` decides as iptables does. Pure: no I/O.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lfp::inspect {

inline constexpr const char* kTransportMatchCalloutV4 = "4c460000-0000-4000-8000-00000000010b";
inline constexpr const char* kTransportMatchCalloutV6 = "4c460000-0000-4000-8000-00000000010c";

// A packet's transport header as the IP header (and IPv6's extension headers) give it.
struct TransportHeader {
  int family = 0;                    // 4 or 6
  std::array<uint8_t, 16> source{};       // the addresses (v4 in the first 4 bytes)
  std::array<uint8_t, 16> destination{};
  uint8_t protocol = 0;              // the upper-layer protocol (for a later v6 fragment: the fragment header's)
  bool first_fragment = true;        // false: a later fragment, which carries no transport header
  size_t offset = 0;                 // where the transport header starts (first fragment only)
};
// The header of an IPv4 or IPv6 packet (hop-by-hop, routing, fragment, destination options and
// authentication headers walked, 8 at most); nothing if it is not IP or is cut short.
std::optional<TransportHeader> transport_header(std::span<const uint8_t> packet);

// The packet's source and destination ports: TCP, UDP, UDP-Lite, DCCP and SCTP carry them first in
// their header; nothing for another protocol, a later fragment or a header cut short.
std::optional<std::pair<uint16_t, uint16_t>> ports_of(std::span<const uint8_t> packet, const TransportHeader& h);

// The provider context's data, JSON: {"protocols": [[6, 6]], "destination_ports": [[80, 80]],
// "source_ports": [[1024, 65535]], "action": "PERMIT"}. Each list is of [low, high] ranges, OR'ed;
// a list absent allows any value; the lists are ANDed. "action" (PERMIT or BLOCK) is required: the
// callout's answer when the packet matches; when it does not, CONTINUE (as if the filter had not matched).
struct TransportMatchConfig {
  using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;
  std::optional<Ranges> protocols, source_ports, destination_ports;
  bool permit = false;
};
std::optional<TransportMatchConfig> parse_transport_match_config(const std::string& text, std::string* error);

// Whether the packet matches: its protocol in `protocols`, its ports in the port lists. A packet
// without ports (a later fragment, ICMP) matches no port list, as iptables' --sport/--dport.
bool transport_matches(const TransportMatchConfig& c, std::span<const uint8_t> packet);

}  // namespace lfp::inspect
