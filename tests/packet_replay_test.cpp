// SPDX-License-Identifier: MIT
// The packet-layer walk (packet/walk.hpp, docs/packet-layers.md): which layers a packet passes, in
// order, with exactly which values; flows and their first packet; fragment reassembly and its bounds;
// and `lfp replay` end to end on pcap and pcapng files written here.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/wait.h>

#include "lfp/packet/build.hpp"
#include "lfp/packet/walk.hpp"
#include "daemon_support.hpp"
#include "pcap_support.hpp"

namespace lfp::packet {
namespace {

using namespace build;
using test::le16;
using test::le32;
using test::lfp_cli_path;
using test::pcap_file;
using L = LayerId;
using F = FieldId;

const Mac kHostMac = {0x02, 0, 0, 0, 0, 1};
const Mac kPeerMac = {0x02, 0, 0, 0, 0, 2};
const Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
IpAddr A(const char* s) { return *parse_ip(s); }
const IpAddr kHost = A("10.0.0.1"), kPeer = A("198.51.100.7");
const IpAddr kHost6 = A("2001:db8::1"), kPeer6 = A("2001:db8::7");

Bytes in4(uint8_t proto, const Bytes& l4, V4 o = {}) {
  return ethernet(kHostMac, kPeerMac, ethertype::IPV4, ipv4(kPeer, kHost, proto, l4, o));
}
Bytes out4(uint8_t proto, const Bytes& l4, V4 o = {}) {
  return ethernet(kPeerMac, kHostMac, ethertype::IPV4, ipv4(kHost, kPeer, proto, l4, o));
}

struct Seen {
  LayerId layer;
  FieldValues values;
};

// Walks one packet; `block_at` is the layer that blocks it (the walk stops there).
std::vector<Seen> walk(Walk& w, const Bytes& b, std::optional<LayerId> block_at = std::nullopt,
                       LinkType link = LinkType::ETHERNET, uint64_t time_ns = 0) {
  static Packet p;  // the walk keeps a reference while it lasts
  parse(b, link, p);
  w.begin(p, time_ns);
  std::vector<Seen> out;
  while (w.next()) {
    out.push_back({w.layer(), w.values()});
    if (block_at && w.layer() == *block_at) break;
  }
  return out;
}

std::vector<LayerId> layers(const std::vector<Seen>& s) {
  std::vector<LayerId> l;
  for (const auto& x : s) l.push_back(x.layer);
  return l;
}

Walk host_walk(WalkOptions o = {}) {
  Walk w(o);
  w.add_local(kHost);
  w.add_local(kHost6);
  return w;
}

Value u8(uint8_t v) { return Value::uint8(v); }
Value u16(uint16_t v) { return Value::uint16(v); }
Value u32(uint32_t v) { return Value::uint32(v); }
Value u64(uint64_t v) { return Value::uint64(v); }
Value v4(const IpAddr& a) { return Value::uint32(a.v4()); }
Value v6(const IpAddr& a) { return Value::ip6(a.b); }

// Every field of the request: those in `want` with exactly that type and value, every other EMPTY.
// (Every packet here is an Ethernet frame: the packet layers with INTERFACE_TYPE see 6, ETHERNET_CSMACD,
// unless `want` says otherwise; the ALE layers do not have it from replay, as from the kernel.)
void expect_values(const Seen& s, std::map<FieldId, Value> want) {
  SCOPED_TRACE(std::string(layer_info(s.layer).name));
  const std::string_view name = layer_info(s.layer).name;
  if (layer_has_field(layer_info(s.layer), FieldId::INTERFACE_TYPE) && name.substr(0, 4) != "ALE_")
    want.emplace(FieldId::INTERFACE_TYPE, Value::uint32(iftype::ETHERNET_CSMACD));
  for (size_t i = 0; i < kFieldCount; ++i) {
    const auto f = static_cast<FieldId>(i);
    const Value& got = s.values.get(f);
    auto it = want.find(f);
    if (it == want.end()) {
      EXPECT_EQ(got.type, DataType::EMPTY) << field_name(f) << " should be EMPTY";
      continue;
    }
    ASSERT_TRUE(layer_has_field(layer_info(s.layer), f)) << field_name(f) << " is not a field of the layer";
    EXPECT_EQ(got.type, it->second.type) << field_name(f);
    EXPECT_EQ(got.type, field_type(f, layer_info(s.layer).family)) << field_name(f) << ": the catalogue's type";
    EXPECT_EQ(got.u, it->second.u) << field_name(f);
    EXPECT_EQ(got.bytes, it->second.bytes) << field_name(f);
  }
}

TEST(PacketWalk, InboundTcpSynEveryLayerExactValues) {
  Walk w = host_walk({.ifindex = 3});
  const auto s = walk(w, in4(proto::TCP, tcp(40000, 22, tcp_flag::SYN)));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4,
                                        L::INBOUND_TRANSPORT_V4, L::ALE_AUTH_RECV_ACCEPT_V4}));
  EXPECT_EQ(w.direction(), Direction::INBOUND);
  expect_values(s[0], {{F::MAC_LOCAL_ADDRESS, Value::mac(kHostMac)}, {F::MAC_REMOTE_ADDRESS, Value::mac(kPeerMac)},
                       {F::MAC_LOCAL_ADDRESS_TYPE, u8(0)}, {F::MAC_REMOTE_ADDRESS_TYPE, u8(0)},
                       {F::ETHER_TYPE, u16(0x0800)}, {F::VLAN_ID, u16(0)}, {F::INTERFACE, u64(3)},
                       {F::INTERFACE_INDEX, u32(3)}, {F::INTERFACE_MAC_ADDRESS, Value::mac(kHostMac)},
                       {F::L2_FLAGS, u32(l2_flag::IS_NATIVE_ETHERNET)}});
  expect_values(s[1], {{F::FLAGS, u32(0)}, {F::INTERFACE_INDEX, u32(3)}, {F::IP_LOCAL_INTERFACE, u64(3)},
                       {F::IP_LOCAL_ADDRESS, v4(kHost)}, {F::IP_REMOTE_ADDRESS, v4(kPeer)},
                       {F::IP_LOCAL_ADDRESS_TYPE, u8(1)}});
  expect_values(s[2], {{F::FLAGS, u32(0)}, {F::INTERFACE_INDEX, u32(3)}, {F::IP_LOCAL_INTERFACE, u64(3)},
                       {F::IP_LOCAL_ADDRESS, v4(kHost)}, {F::IP_REMOTE_ADDRESS, v4(kPeer)},
                       {F::IP_LOCAL_PORT, u16(22)}, {F::IP_REMOTE_PORT, u16(40000)},
                       {F::IP_LOCAL_ADDRESS_TYPE, u8(1)}, {F::IP_PROTOCOL, u8(6)}});
  expect_values(s[3], {{F::FLAGS, u32(0)}, {F::IP_LOCAL_ADDRESS, v4(kHost)}, {F::IP_REMOTE_ADDRESS, v4(kPeer)},
                       {F::IP_LOCAL_PORT, u16(22)}, {F::IP_REMOTE_PORT, u16(40000)},
                       {F::IP_LOCAL_ADDRESS_TYPE, u8(1)}, {F::IP_PROTOCOL, u8(6)}, {F::IP_LOCAL_INTERFACE, u64(3)},
                       {F::INTERFACE_INDEX, u32(3)}});
}

TEST(PacketWalk, OutboundUdpFlowFirstPacketOnly) {
  Walk w = host_walk();
  const Bytes q = out4(proto::UDP, udp(5000, 53, {1}));
  auto s = walk(w, q);
  ASSERT_EQ(layers(s), (std::vector<L>{L::ALE_AUTH_CONNECT_V4, L::DATAGRAM_DATA_V4, L::OUTBOUND_TRANSPORT_V4,
                                        L::OUTBOUND_IPPACKET_V4, L::OUTBOUND_MAC_FRAME_ETHERNET}));
  EXPECT_EQ(w.direction(), Direction::OUTBOUND);
  expect_values(s[0], {{F::FLAGS, u32(0)}, {F::IP_LOCAL_ADDRESS, v4(kHost)}, {F::IP_REMOTE_ADDRESS, v4(kPeer)},
                       {F::IP_LOCAL_PORT, u16(5000)}, {F::IP_REMOTE_PORT, u16(53)}, {F::IP_LOCAL_ADDRESS_TYPE, u8(1)},
                       {F::IP_DESTINATION_ADDRESS_TYPE, u8(1)}, {F::IP_PROTOCOL, u8(17)}});
  expect_values(s[1], {{F::DIRECTION, u32(0)}, {F::FLAGS, u32(0)}, {F::IP_LOCAL_ADDRESS, v4(kHost)},
                       {F::IP_REMOTE_ADDRESS, v4(kPeer)}, {F::IP_LOCAL_PORT, u16(5000)}, {F::IP_REMOTE_PORT, u16(53)},
                       {F::IP_LOCAL_ADDRESS_TYPE, u8(1)}, {F::IP_PROTOCOL, u8(17)}});
  expect_values(s[2], {{F::FLAGS, u32(0)}, {F::IP_LOCAL_ADDRESS, v4(kHost)}, {F::IP_REMOTE_ADDRESS, v4(kPeer)},
                       {F::IP_LOCAL_PORT, u16(5000)}, {F::IP_REMOTE_PORT, u16(53)}, {F::IP_LOCAL_ADDRESS_TYPE, u8(1)},
                       {F::IP_PROTOCOL, u8(17)}, {F::IP_DESTINATION_ADDRESS_TYPE, u8(1)}});
  expect_values(s[4], {{F::MAC_LOCAL_ADDRESS, Value::mac(kHostMac)}, {F::MAC_REMOTE_ADDRESS, Value::mac(kPeerMac)},
                       {F::MAC_LOCAL_ADDRESS_TYPE, u8(0)}, {F::MAC_REMOTE_ADDRESS_TYPE, u8(0)},
                       {F::ETHER_TYPE, u16(0x0800)}, {F::VLAN_ID, u16(0)},
                       {F::INTERFACE_MAC_ADDRESS, Value::mac(kHostMac)}, {F::L2_FLAGS, u32(l2_flag::IS_NATIVE_ETHERNET)}});
  // The second datagram of the flow: no ALE layer.
  EXPECT_EQ(layers(walk(w, q)), (std::vector<L>{L::DATAGRAM_DATA_V4, L::OUTBOUND_TRANSPORT_V4, L::OUTBOUND_IPPACKET_V4,
                                                 L::OUTBOUND_MAC_FRAME_ETHERNET}));
  // The answer belongs to the same flow.
  s = walk(w, in4(proto::UDP, udp(53, 5000, {2})));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4,
                                        L::DATAGRAM_DATA_V4}));
  EXPECT_EQ(s[3].values.get(F::DIRECTION).u, 1u);
  EXPECT_EQ(s[3].values.get(F::IP_LOCAL_PORT).u, 5000u);
  EXPECT_EQ(w.flow_count(), 1u);
  // Another 5-tuple is another flow.
  EXPECT_EQ(layers(walk(w, out4(proto::UDP, udp(5001, 53))))[0], L::ALE_AUTH_CONNECT_V4);
}

TEST(PacketWalk, TcpFirstPacketIsTheSyn) {
  Walk w = host_walk();
  EXPECT_EQ(layers(walk(w, out4(proto::TCP, tcp(40000, 443, tcp_flag::SYN, 100))))[0], L::ALE_AUTH_CONNECT_V4);
  // A retransmitted SYN (same sequence number) is not a new flow; the answer and the rest neither.
  EXPECT_EQ(layers(walk(w, out4(proto::TCP, tcp(40000, 443, tcp_flag::SYN, 100))))[0], L::OUTBOUND_TRANSPORT_V4);
  EXPECT_EQ(layers(walk(w, in4(proto::TCP, tcp(443, 40000, tcp_flag::SYN | tcp_flag::ACK, 9, 101)))),
            (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4}));
  EXPECT_EQ(layers(walk(w, out4(proto::TCP, tcp(40000, 443, tcp_flag::ACK, 101, 10))))[0], L::OUTBOUND_TRANSPORT_V4);
  // A mid-stream packet of a flow never seen starting is not a first packet either.
  EXPECT_EQ(layers(walk(w, in4(proto::TCP, tcp(80, 41000, tcp_flag::ACK)))).size(), 3u);
  // A new SYN on the same 5-tuple (port reuse, another sequence number) is a new flow.
  EXPECT_EQ(layers(walk(w, out4(proto::TCP, tcp(40000, 443, tcp_flag::SYN, 5000))))[0], L::ALE_AUTH_CONNECT_V4);
}

TEST(PacketWalk, BlockEndsTheWalkAndForgetsTheFlow) {
  Walk w = host_walk();
  const Bytes q = out4(proto::UDP, udp(5000, 53));
  auto s = walk(w, q, L::ALE_AUTH_CONNECT_V4);
  EXPECT_EQ(layers(s), std::vector<L>{L::ALE_AUTH_CONNECT_V4});
  EXPECT_EQ(w.flow_count(), 0u);  // blocked: the flow was never established
  EXPECT_EQ(layers(walk(w, q))[0], L::ALE_AUTH_CONNECT_V4);  // so the next datagram asks again
  EXPECT_EQ(w.flow_count(), 1u);
  // A block at the IP layer: the transport layers never see it.
  s = walk(w, in4(proto::TCP, tcp(1, 2, tcp_flag::SYN)), L::INBOUND_IPPACKET_V4);
  EXPECT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4}));
  EXPECT_EQ(w.flow_count(), 1u);  // the SYN never reached RECV_ACCEPT
}

TEST(PacketWalk, Forwarded) {
  Walk w = host_walk({.ifindex = 2});
  const auto s = walk(w, ethernet(kHostMac, kPeerMac, ethertype::IPV4,
                                  ipv4(kPeer, A("192.0.2.50"), proto::TCP, tcp(1, 2, tcp_flag::SYN))));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::IPFORWARD_V4, L::OUTBOUND_MAC_FRAME_ETHERNET}));
  EXPECT_EQ(w.direction(), Direction::FORWARDED);
  expect_values(s[1], {{F::FLAGS, u32(0)}, {F::IP_SOURCE_ADDRESS, v4(kPeer)},
                       {F::IP_DESTINATION_ADDRESS, v4(A("192.0.2.50"))}, {F::IP_DESTINATION_ADDRESS_TYPE, u8(1)},
                       {F::SOURCE_INTERFACE_INDEX, u32(2)}});
  // A forwarded datagram is reassembled first: IPFORWARD sees it once, whole, at the fragment that
  // completes it (the MAC layers see every frame).
  const Bytes d = udp(3, 4, Bytes(16, 0));
  auto frag = [&](uint16_t off, size_t len, bool mf) {
    return ethernet(kHostMac, kPeerMac, ethertype::IPV4,
                    ipv4(kPeer, A("192.0.2.50"), proto::UDP, Bytes(d.begin() + off, d.begin() + off + static_cast<ptrdiff_t>(len)),
                         {.id = 3, .mf = mf, .frag_offset = off}));
  };
  EXPECT_EQ(layers(walk(w, frag(16, 8, false))), std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET});
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  EXPECT_EQ(w.datagram_count(), 1u);
  const auto f = walk(w, frag(0, 16, true));
  ASSERT_EQ(layers(f), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::IPFORWARD_V4, L::OUTBOUND_MAC_FRAME_ETHERNET}));
  EXPECT_EQ(w.fragment_state(), FragmentState::COMPLETED);
  EXPECT_EQ(f[1].values.get(F::FLAGS).u, 0u);
  EXPECT_EQ(w.datagram_count(), 0u);
}

TEST(PacketWalk, LoopbackPassesOutboundThenInbound) {
  Walk w = host_walk();
  const Bytes b = ethernet({}, {}, ethertype::IPV4, ipv4(A("127.0.0.1"), A("127.0.0.1"), proto::TCP,
                                                         tcp(40000, 8080, tcp_flag::SYN)));
  const auto s = walk(w, b);
  ASSERT_EQ(layers(s), (std::vector<L>{L::ALE_AUTH_CONNECT_V4, L::OUTBOUND_TRANSPORT_V4, L::OUTBOUND_IPPACKET_V4,
                                        L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4, L::ALE_AUTH_RECV_ACCEPT_V4}));
  EXPECT_EQ(w.direction(), Direction::LOOPBACK);
  for (const auto& x : s) EXPECT_EQ(x.values.get(F::FLAGS).u, condition_flag::IS_LOOPBACK);
  EXPECT_EQ(s[0].values.get(F::IP_LOCAL_PORT).u, 40000u);
  EXPECT_EQ(s[5].values.get(F::IP_LOCAL_PORT).u, 8080u);
  // The answer: no ALE layer on either side.
  EXPECT_EQ(layers(walk(w, ethernet({}, {}, ethertype::IPV4, ipv4(A("127.0.0.1"), A("127.0.0.1"), proto::UDP,
                                                                  udp(53, 5353))))).size(), 8u);
  EXPECT_EQ(layers(walk(w, ethernet({}, {}, ethertype::IPV4, ipv4(A("127.0.0.1"), A("127.0.0.1"), proto::UDP,
                                                                  udp(5353, 53))))).size(), 6u);
}

TEST(PacketWalk, Ipv6InboundUdpThroughExtensionHeaders) {
  Walk w = host_walk();
  const auto s = walk(w, ethernet(kHostMac, kPeerMac, ethertype::IPV6,
                                  ipv6(kPeer6, kHost6, proto::HOPOPTS, ext(proto::DSTOPTS, ext(proto::UDP, udp(9, 10))))),
                      std::nullopt, LinkType::ETHERNET);
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V6, L::INBOUND_TRANSPORT_V6,
                                        L::ALE_AUTH_RECV_ACCEPT_V6, L::DATAGRAM_DATA_V6}));
  expect_values(s[2], {{F::FLAGS, u32(0)}, {F::IP_LOCAL_ADDRESS, v6(kHost6)}, {F::IP_REMOTE_ADDRESS, v6(kPeer6)},
                       {F::IP_LOCAL_PORT, u16(10)}, {F::IP_REMOTE_PORT, u16(9)}, {F::IP_LOCAL_ADDRESS_TYPE, u8(1)},
                       {F::IP_PROTOCOL, u8(17)}});
  EXPECT_EQ(s[0].values.get(F::ETHER_TYPE).u, 0x86ddu);
}

TEST(PacketWalk, IcmpErrorsAndEcho) {
  Walk w = host_walk();
  // The host sent 10.0.0.1:5000 -> 198.51.100.7:53; the peer answers port unreachable.
  const Bytes quoted = ipv4(kHost, kPeer, proto::UDP, udp(5000, 53));
  auto s = walk(w, in4(proto::ICMP, icmp(3, 3, quoted)));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4, L::INBOUND_ICMP_ERROR_V4}));
  expect_values(s[2], {{F::FLAGS, u32(0)}, {F::ICMP_TYPE, u16(3)}, {F::ICMP_CODE, u16(3)},
                       {F::EMBEDDED_LOCAL_ADDRESS_TYPE, u8(1)}, {F::EMBEDDED_REMOTE_ADDRESS, v4(kPeer)},
                       {F::EMBEDDED_PROTOCOL, u8(17)}, {F::EMBEDDED_LOCAL_PORT, u16(5000)},
                       {F::EMBEDDED_REMOTE_PORT, u16(53)}, {F::IP_LOCAL_ADDRESS, v4(kHost)},
                       {F::IP_REMOTE_ADDRESS, v4(kPeer)}});
  // Echo: the transport layer, type and code in the port fields; no ALE layer, no DATAGRAM_DATA.
  s = walk(w, in4(proto::ICMP, icmp(8, 0)));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4}));
  EXPECT_EQ(s[2].values.get(F::IP_LOCAL_PORT).u, 8u);
  EXPECT_EQ(s[2].values.get(F::IP_LOCAL_PORT).type, DataType::UINT16);
  EXPECT_EQ(s[2].values.get(F::IP_REMOTE_PORT).u, 0u);
  EXPECT_EQ(s[2].values.get(F::IP_PROTOCOL).u, 1u);
  // The host sends an ICMPv6 error: OUTBOUND_ICMP_ERROR_V6.
  const Bytes q6 = ipv6(kPeer6, kHost6, proto::UDP, udp(7, 9));
  s = walk(w, ethernet(kPeerMac, kHostMac, ethertype::IPV6, ipv6(kHost6, kPeer6, proto::ICMPV6, icmp(1, 4, q6))));
  ASSERT_EQ(layers(s), (std::vector<L>{L::OUTBOUND_ICMP_ERROR_V6, L::OUTBOUND_IPPACKET_V6, L::OUTBOUND_MAC_FRAME_ETHERNET}));
  expect_values(s[0], {{F::FLAGS, u32(0)}, {F::ICMP_TYPE, u16(1)}, {F::ICMP_CODE, u16(4)},
                       {F::IP_LOCAL_ADDRESS, v6(kHost6)}, {F::IP_REMOTE_ADDRESS, v6(kPeer6)},
                       {F::IP_LOCAL_ADDRESS_TYPE, u8(1)}});
  // An ICMPv4 error quoting IPv6: no embedded address (the layer's addresses are IPv4).
  s = walk(w, in4(proto::ICMP, icmp(3, 1, q6)));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].values.get(F::EMBEDDED_REMOTE_ADDRESS).type, DataType::EMPTY);
  EXPECT_EQ(s[2].values.get(F::EMBEDDED_PROTOCOL).u, 17u);
}

TEST(PacketWalk, Ipv4FragmentsOutOfOrder) {
  Walk w = host_walk();
  // A 40-byte UDP datagram (8 header + 32 data) in three fragments, sent 3, 1, 2.
  const Bytes dgram = udp(7777, 9999, Bytes(32, 0x5a));
  auto frag = [&](uint16_t off, size_t len, bool mf) {
    return in4(proto::UDP, Bytes(dgram.begin() + off, dgram.begin() + off + static_cast<ptrdiff_t>(len)),
               {.id = 42, .mf = mf, .frag_offset = off});
  };
  auto s = walk(w, frag(32, 8, false));
  EXPECT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4}));
  EXPECT_EQ(s[1].values.get(F::FLAGS).u, condition_flag::IS_FRAGMENT);
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  s = walk(w, frag(0, 16, true));
  EXPECT_EQ(layers(s).size(), 2u);
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  EXPECT_EQ(w.datagram_count(), 1u);
  // The middle one completes it: the later layers see the datagram, with the first fragment's headers.
  s = walk(w, frag(16, 16, true));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4,
                                        L::ALE_AUTH_RECV_ACCEPT_V4, L::DATAGRAM_DATA_V4}));
  EXPECT_EQ(w.fragment_state(), FragmentState::COMPLETED);
  EXPECT_EQ(s[1].values.get(F::FLAGS).u, condition_flag::IS_FRAGMENT);
  EXPECT_EQ(s[2].values.get(F::FLAGS).u, 0u);  // reassembled: not a fragment any more
  EXPECT_EQ(s[2].values.get(F::IP_LOCAL_PORT).u, 9999u);
  EXPECT_EQ(s[2].values.get(F::IP_REMOTE_PORT).u, 7777u);
  EXPECT_EQ(s[4].values.get(F::IP_PROTOCOL).u, 17u);
  EXPECT_EQ(w.datagram_count(), 0u);
  // The same id again starts a new datagram; a duplicate is ignored, an overlap drops the datagram.
  walk(w, frag(0, 16, true));
  walk(w, frag(0, 16, true));
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  walk(w, frag(8, 16, true));
  EXPECT_EQ(w.fragment_state(), FragmentState::DISCARDED);
  EXPECT_EQ(w.datagram_count(), 0u);
  // A fragment blocked at INBOUND_IPPACKET is dropped: its datagram never completes.
  walk(w, frag(0, 16, true));
  walk(w, frag(16, 16, true), L::INBOUND_IPPACKET_V4);
  s = walk(w, frag(32, 8, false));
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  EXPECT_EQ(layers(s).size(), 2u);
}

TEST(PacketWalk, Ipv6Fragments) {
  Walk w = host_walk();
  const Bytes dgram = tcp(5555, 80, tcp_flag::SYN, 1, 0, Bytes(12, 1));  // 32 bytes
  auto frag = [&](uint16_t off, size_t len, bool mf) {
    return ethernet(kHostMac, kPeerMac, ethertype::IPV6,
                    ipv6(kPeer6, kHost6, proto::FRAGMENT,
                         frag6(proto::TCP, off, mf, 0xfeed, Bytes(dgram.begin() + off, dgram.begin() + off + static_cast<ptrdiff_t>(len)))));
  };
  EXPECT_EQ(layers(walk(w, frag(24, 8, false))).size(), 2u);
  const auto s = walk(w, frag(0, 24, true));
  ASSERT_EQ(layers(s), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V6, L::INBOUND_TRANSPORT_V6,
                                        L::ALE_AUTH_RECV_ACCEPT_V6}));
  EXPECT_EQ(s[1].values.get(F::FLAGS).u, condition_flag::IS_FRAGMENT);
  EXPECT_EQ(s[3].values.get(F::IP_LOCAL_PORT).u, 80u);
  EXPECT_EQ(s[3].values.get(F::IP_LOCAL_ADDRESS).bytes, kHost6.b);
}

TEST(PacketWalk, OutboundFragments) {
  Walk w = host_walk();
  // Linux fragments after the IP layers: the host's datagram passes every layer once, whole, at the
  // fragment that completes it; the ones before pass nothing.
  const Bytes dgram = udp(6000, 7000, Bytes(24, 0));
  auto s = walk(w, out4(proto::UDP, Bytes(dgram.begin(), dgram.begin() + 16), {.id = 9, .mf = true}));
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  s = walk(w, out4(proto::UDP, Bytes(dgram.begin() + 16, dgram.end()), {.id = 9, .frag_offset = 16}));
  ASSERT_EQ(layers(s), (std::vector<L>{L::ALE_AUTH_CONNECT_V4, L::DATAGRAM_DATA_V4, L::OUTBOUND_TRANSPORT_V4,
                                        L::OUTBOUND_IPPACKET_V4, L::OUTBOUND_MAC_FRAME_ETHERNET}));
  EXPECT_EQ(w.fragment_state(), FragmentState::COMPLETED);
  EXPECT_EQ(s[0].values.get(F::IP_LOCAL_PORT).u, 6000u);  // from the first fragment
  EXPECT_EQ(s[2].values.get(F::FLAGS).u, 0u);
  EXPECT_EQ(s[3].values.get(F::FLAGS).u, 0u);
  EXPECT_EQ(w.datagram_count(), 0u);
}

TEST(PacketWalk, TablesAreBounded) {
  Walk w = host_walk({.max_flows = 8, .max_datagrams = 3, .max_fragments = 4});
  for (uint16_t port = 1; port <= 500; ++port) walk(w, out4(proto::UDP, udp(port, 53)));
  EXPECT_LE(w.flow_count(), 8u);
  EXPECT_GT(w.flow_count(), 0u);
  for (uint16_t id = 1; id <= 100; ++id) walk(w, in4(proto::UDP, Bytes(16, 0), {.id = id, .mf = true, .frag_offset = 8}));
  EXPECT_EQ(w.datagram_count(), 3u);
  // Datagram 1 was evicted: its last fragment starts a new one, which is not complete.
  walk(w, in4(proto::UDP, udp(1, 2, Bytes(16, 0)), {.id = 1, .mf = true}));
  EXPECT_EQ(w.fragment_state(), FragmentState::HELD);
  // Too many fragments for one datagram: dropped.
  for (uint16_t off = 0; off < 8 * 5; off += 8) walk(w, in4(proto::UDP, Bytes(8, 0), {.id = 500, .mf = true, .frag_offset = off}));
  EXPECT_EQ(w.fragment_state(), FragmentState::DISCARDED);
  // Fragments time out after 30 s of capture time.
  Walk t = host_walk();
  walk(t, in4(proto::UDP, Bytes(8, 0), {.id = 1, .frag_offset = 8}), std::nullopt, LinkType::ETHERNET, 1'000'000'000);
  walk(t, in4(proto::UDP, udp(1, 2), {.id = 1, .mf = true}), std::nullopt, LinkType::ETHERNET, 32'000'000'000);
  EXPECT_EQ(t.fragment_state(), FragmentState::HELD);
}

TEST(PacketWalk, MacLayerValuesVlanBroadcastAndNonIp) {
  Walk w = host_walk();
  // A tagged broadcast to 255.255.255.255: inbound, broadcast address types.
  auto s = walk(w, ethernet(kBroadcast, kPeerMac, ethertype::IPV4, ipv4(kPeer, A("255.255.255.255"), proto::UDP, udp(68, 67)),
                            {{ethertype::QINQ, 100}, {ethertype::VLAN, 200}}));
  ASSERT_EQ(layers(s)[0], L::INBOUND_MAC_FRAME_ETHERNET);
  EXPECT_EQ(w.direction(), Direction::INBOUND);
  EXPECT_EQ(s[0].values.get(F::VLAN_ID).u, 100u);
  EXPECT_EQ(s[0].values.get(F::ETHER_TYPE).u, 0x0800u);
  EXPECT_EQ(s[0].values.get(F::MAC_LOCAL_ADDRESS_TYPE).u, 2u);
  EXPECT_EQ(s[1].values.get(F::IP_LOCAL_ADDRESS_TYPE).u, 4u);
  // Multicast.
  s = walk(w, ethernet({0x01, 0, 0x5e, 0, 0, 0xfb}, kPeerMac, ethertype::IPV4, ipv4(kPeer, A("224.0.0.251"), proto::UDP, udp(5353, 5353))));
  EXPECT_EQ(s[0].values.get(F::MAC_LOCAL_ADDRESS_TYPE).u, 1u);
  EXPECT_EQ(s[1].values.get(F::IP_LOCAL_ADDRESS_TYPE).u, 3u);
  // ARP: only the MAC layer; from the host's MAC (learnt from its IP traffic) it is outbound.
  walk(w, out4(proto::UDP, udp(1, 2)));
  s = walk(w, ethernet(kBroadcast, kHostMac, ethertype::ARP, Bytes(28, 0)));
  ASSERT_EQ(layers(s), std::vector<L>{L::OUTBOUND_MAC_FRAME_ETHERNET});
  EXPECT_EQ(s[0].values.get(F::ETHER_TYPE).u, 0x0806u);
  EXPECT_EQ(s[0].values.get(F::MAC_REMOTE_ADDRESS_TYPE).u, 2u);
  s = walk(w, ethernet(kBroadcast, kPeerMac, ethertype::ARP, Bytes(28, 0)));
  ASSERT_EQ(layers(s), std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET});
}

TEST(PacketWalk, ParseProblemsPassOnlyTheLayersWithValues) {
  Walk w = host_walk();
  Bytes b = in4(proto::TCP, tcp(1, 2, tcp_flag::SYN));
  b.resize(14 + 20 + 10);
  EXPECT_EQ(layers(walk(w, b)), (std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET, L::INBOUND_IPPACKET_V4}));
  b.resize(14 + 10);
  EXPECT_EQ(layers(walk(w, b)), std::vector<L>{L::INBOUND_MAC_FRAME_ETHERNET});
  b = out4(proto::UDP, udp(1, 2));
  b.resize(14 + 20 + 4);
  EXPECT_EQ(layers(walk(w, b)), (std::vector<L>{L::OUTBOUND_IPPACKET_V4, L::OUTBOUND_MAC_FRAME_ETHERNET}));
  // Raw IP and cooked captures have no MAC layer.
  EXPECT_EQ(layers(walk(w, ipv4(kPeer, kHost, 47, {}), std::nullopt, LinkType::RAW)),
            (std::vector<L>{L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4}));
  EXPECT_EQ(layers(walk(w, sll(0, ethertype::IPV4, ipv4(kPeer, kHost, proto::UDP, udp(3, 4))), std::nullopt, LinkType::LINUX_SLL)),
            (std::vector<L>{L::INBOUND_IPPACKET_V4, L::INBOUND_TRANSPORT_V4, L::ALE_AUTH_RECV_ACCEPT_V4, L::DATAGRAM_DATA_V4}));
  EXPECT_TRUE(walk(w, Bytes{1, 2, 3}, std::nullopt, LinkType::RAW).empty());
}

TEST(PacketWalk, FirstSourceIsLocal) {
  Walk w({.first_source_is_local = true});
  EXPECT_EQ(layers(walk(w, ethernet(kPeerMac, kHostMac, ethertype::ARP, Bytes(28, 0)))).size(), 1u);
  EXPECT_EQ(w.local_count(), 0u);  // not IP: nothing learnt
  walk(w, out4(proto::UDP, udp(1, 2)));
  EXPECT_EQ(w.direction(), Direction::OUTBOUND);
  EXPECT_TRUE(w.is_local(kHost));
  walk(w, in4(proto::UDP, udp(2, 1)));
  EXPECT_EQ(w.direction(), Direction::INBOUND);
  EXPECT_EQ(w.local_count(), 1u);
}

// ---------------------------------------------------------------------------------------------
// lfp replay, end to end.

// Every file these tests write goes in one directory, removed when the tests end.
const std::filesystem::path& temp_dir() {
  struct Dir {
    std::filesystem::path path = std::filesystem::temp_directory_path() / ("lfp_packet_replay_" + std::to_string(::getpid()));
    Dir() { std::filesystem::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Dir d;
  return d.path;
}

struct CmdResult {
  int rc;
  std::string out, err;
};

CmdResult run(const std::string& args) {
  const std::string o = temp_dir() / "out", e = temp_dir() / "err";
  const int st = std::system((lfp_cli_path() + " " + args + " >" + o + " 2>" + e).c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(o), slurp(e)};
}

// A pcapng file: section header, one interface, an enhanced packet block a packet.
std::string pcapng_file(uint16_t linktype, const std::vector<Bytes>& pkts) {
  std::string s;
  le32(s, 0x0a0d0d0a);
  le32(s, 28);
  le32(s, 0x1a2b3c4d);
  le16(s, 1);
  le16(s, 0);
  le32(s, 0xffffffff);
  le32(s, 0xffffffff);
  le32(s, 28);
  le32(s, 1);
  le32(s, 20);
  le16(s, linktype);
  le16(s, 0);
  le32(s, 65535);
  le32(s, 20);
  for (const auto& p : pkts) {
    const uint32_t padded = static_cast<uint32_t>((p.size() + 3) / 4 * 4);
    le32(s, 6);
    le32(s, 32 + padded);
    le32(s, 0);
    le32(s, 0);
    le32(s, 1000);
    le32(s, static_cast<uint32_t>(p.size()));
    le32(s, static_cast<uint32_t>(p.size()));
    s.append(p.begin(), p.end());
    s.append(padded - p.size(), '\0');
    le32(s, 32 + padded);
  }
  return s;
}

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = temp_dir() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

const char* kBlockTelnet = "11111111-1111-4111-8111-111111111111";
const char* kPermitDns = "22222222-2222-4222-8222-222222222222";
const char* kBlockBad6 = "33333333-3333-4333-8333-333333333333";

std::string policy_file() {
  const nlohmann::json p = {
      {"version", 1},
      {"filters",
       {{{"key", kBlockTelnet}, {"name", "no telnet in"}, {"layer", "INBOUND_TRANSPORT_V4"}, {"action", "BLOCK"},
         {"conditions", {{{"field", "IP_PROTOCOL"}, {"value", "TCP"}}, {{"field", "IP_LOCAL_PORT"}, {"value", 23}}}}},
        {{"key", kPermitDns}, {"name", "dns out"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "PERMIT"},
         {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 53}}}}},
        {{"key", kBlockBad6}, {"name", "not to bad6"}, {"layer", "OUTBOUND_IPPACKET_V6"}, {"action", "BLOCK"},
         {"conditions", {{{"field", "IP_REMOTE_ADDRESS"}, {"value", "2001:db8::bad"}}}}}}}};
  return write_temp("lfp_replay_policy.json", p.dump());
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
  return v;
}

std::vector<Bytes> capture() {
  Bytes cut = in4(proto::TCP, tcp(1, 2, tcp_flag::SYN));
  cut.resize(14 + 12);
  return {
      out4(proto::UDP, udp(5000, 53)),                       // 0: DNS out, first packet: permitted by "dns out"
      in4(proto::UDP, udp(53, 5000)),                        // 1: the answer
      in4(proto::TCP, tcp(40000, 23, tcp_flag::SYN)),        // 2: telnet in: blocked at INBOUND_TRANSPORT_V4
      ethernet(kPeerMac, kHostMac, ethertype::IPV6,
               ipv6(kHost6, A("2001:db8::bad"), proto::UDP, udp(1, 2))),  // 3: blocked at OUTBOUND_IPPACKET_V6
      cut,                                                   // 4: truncated IPv4 header
  };
}

TEST(PacketReplay, JsonLinesFieldByField) {
  const std::string pcap = write_temp("lfp_replay.pcap", pcap_file(1, capture()));
  const CmdResult r = run("replay --policy " + policy_file() + " --pcap " + pcap + " --local 10.0.0.1 --local 2001:db8::1 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto v = json_lines(r.out);
  ASSERT_EQ(v.size(), 5u) << r.out;
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i]["index"], i);
  auto layer = [](const nlohmann::json& l, const char* name, const char* action, const char* filter) {
    EXPECT_EQ(l["layer"], name);
    EXPECT_EQ(l["action"], action);
    if (filter) EXPECT_EQ(l["filter"], filter);
    else EXPECT_TRUE(l["filter"].is_null()) << l.dump();
  };
  ASSERT_EQ(v[0]["layers"].size(), 5u);
  layer(v[0]["layers"][0], "ALE_AUTH_CONNECT_V4", "PERMIT", kPermitDns);
  layer(v[0]["layers"][1], "DATAGRAM_DATA_V4", "PERMIT", nullptr);
  layer(v[0]["layers"][2], "OUTBOUND_TRANSPORT_V4", "PERMIT", nullptr);
  layer(v[0]["layers"][3], "OUTBOUND_IPPACKET_V4", "PERMIT", nullptr);
  layer(v[0]["layers"][4], "OUTBOUND_MAC_FRAME_ETHERNET", "PERMIT", nullptr);
  EXPECT_FALSE(v[0].contains("problem"));
  ASSERT_EQ(v[1]["layers"].size(), 4u);  // the answer: no ALE layer
  layer(v[1]["layers"][3], "DATAGRAM_DATA_V4", "PERMIT", nullptr);
  ASSERT_EQ(v[2]["layers"].size(), 3u);  // blocked: the walk ends there
  layer(v[2]["layers"][2], "INBOUND_TRANSPORT_V4", "BLOCK", kBlockTelnet);
  ASSERT_EQ(v[3]["layers"].size(), 4u);
  layer(v[3]["layers"][0], "ALE_AUTH_CONNECT_V6", "PERMIT", nullptr);
  layer(v[3]["layers"][3], "OUTBOUND_IPPACKET_V6", "BLOCK", kBlockBad6);
  ASSERT_EQ(v[4]["layers"].size(), 1u);
  layer(v[4]["layers"][0], "INBOUND_MAC_FRAME_ETHERNET", "PERMIT", nullptr);
  EXPECT_EQ(v[4]["problem"], "truncated IPv4 header");
}

TEST(PacketReplay, TextAndDefaultLocalAndPcapng) {
  // No --local: the first IP packet's source (10.0.0.1) is the host. pcapng, Linux cooked v2.
  std::vector<Bytes> pkts;
  for (const auto& p : capture()) pkts.push_back(sll2(0, static_cast<uint16_t>(p[12] << 8 | p[13]), 2, Bytes(p.begin() + 14, p.end())));
  const std::string pcap = write_temp("lfp_replay.pcapng", pcapng_file(276, pkts));
  CmdResult r = run("replay --policy " + policy_file() + " --pcap " + pcap + " --ifindex 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::istringstream in(r.out);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0].rfind("0 IPv4 UDP 10.0.0.1:5000 > 198.51.100.7:53 OUTBOUND", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("ALE_AUTH_CONNECT_V4 PERMIT by \"dns out\" " + std::string(kPermitDns)), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("MAC_FRAME"), std::string::npos) << "cooked captures have no MAC layer";
  EXPECT_NE(lines[2].find("2 IPv4 TCP 198.51.100.7:40000 > 10.0.0.1:23 SYN INBOUND"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("INBOUND_TRANSPORT_V4 BLOCK by \"no telnet in\""), std::string::npos) << lines[2];
  // 2001:db8::1 is not local without --local: forwarded, so OUTBOUND_IPPACKET_V6 never sees it.
  EXPECT_NE(lines[3].find("FORWARDED  IPFORWARD_V6 PERMIT"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("problem: truncated IPv4 header"), std::string::npos) << lines[4];
}

TEST(PacketReplay, RawIpNanosecondFile) {
  // LINKTYPE_RAW, and the nanosecond-resolution pcap magic.
  std::string f = pcap_file(101, {ipv4(kPeer, kHost, proto::TCP, tcp(40000, 23, tcp_flag::SYN))});
  f[0] = '\x4d', f[1] = '\x3c';  // 0xa1b23c4d
  const CmdResult r = run("replay --policy " + policy_file() + " --pcap " + write_temp("lfp_replay_raw.pcap", f) +
                    " --local 10.0.0.1 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto v = json_lines(r.out);
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0]["layers"].size(), 2u);
  EXPECT_EQ(v[0]["layers"][0]["layer"], "INBOUND_IPPACKET_V4");
  EXPECT_EQ(v[0]["layers"][1]["action"], "BLOCK");
}

TEST(PacketReplay, BadInputsAreOneLineErrors) {
  const std::string pol = policy_file();
  auto one_line = [](const CmdResult& r) {
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  };
  CmdResult r = run("replay --policy " + pol + " --pcap /nonexistent/x.pcap");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("/nonexistent/x.pcap"), std::string::npos) << r.err;
  one_line(r);
  r = run("replay --policy " + pol + " --pcap " + write_temp("lfp_replay_junk.pcap", "this is not a capture file at all"));
  EXPECT_EQ(r.rc, 2);
  one_line(r);
  r = run("replay --policy " + pol + " --pcap " + write_temp("lfp_replay_ok.pcap", pcap_file(1, capture())) + " --local 10.0.0.300");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("10.0.0.300"), std::string::npos) << r.err;
  one_line(r);
  // An unsupported link type (DLT_NULL), and a file cut inside a record: the error names it.
  r = run("replay --policy " + pol + " --pcap " + write_temp("lfp_replay_null.pcap", pcap_file(0, capture())));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("link type 0"), std::string::npos) << r.err;
  one_line(r);
  std::string cut = pcap_file(1, capture());
  cut.resize(cut.size() - 5);
  r = run("replay --policy " + pol + " --pcap " + write_temp("lfp_replay_cut.pcap", cut) + " --json");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(json_lines(r.out).size(), 5u) << "the packets before the cut are decided";  // + the error object
  EXPECT_NE(r.out.find("\"error\""), std::string::npos);
}

}  // namespace
}  // namespace lfp::packet
