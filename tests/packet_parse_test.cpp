// SPDX-License-Identifier: MIT
// The packet parser (packet/): every header kind, every truncation point, VLAN tags, IPv4 options
// and fragments, IPv6 extension header chains, ICMP errors and the packet they quote.
#include <gtest/gtest.h>

#include <functional>
#include <type_traits>

#include "lfp/packet/build.hpp"
#include "lfp/packet/parse.hpp"

namespace lfp::packet {
namespace {

using namespace build;

const Mac kHostMac = {0x02, 0, 0, 0, 0, 1};
const Mac kPeerMac = {0x02, 0, 0, 0, 0, 2};
IpAddr A(const char* s) { return *parse_ip(s); }

Packet parsed(const Bytes& b, LinkType l = LinkType::ETHERNET) {
  Packet p;
  parse(b, l, p);
  return p;
}

Bytes eth4(const Bytes& ip) { return ethernet(kHostMac, kPeerMac, ethertype::IPV4, ip); }
Bytes eth6(const Bytes& ip) { return ethernet(kHostMac, kPeerMac, ethertype::IPV6, ip); }

static_assert(std::is_trivially_copyable_v<Packet>, "a parsed packet is a value: no pointers into the bytes");

TEST(PacketParse, EthernetIpv4Tcp) {
  const Bytes b = eth4(ipv4(A("198.51.100.7"), A("192.0.2.1"), proto::TCP,
                            tcp(40000, 443, tcp_flag::SYN, 77, 0, {}, {2, 4, 5, 0xb4}), {.id = 99, .df = true, .ttl = 61}));
  const Packet p = parsed(b);
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_TRUE(p.has_ethernet);
  EXPECT_EQ(p.eth_dst, kHostMac);
  EXPECT_EQ(p.eth_src, kPeerMac);
  EXPECT_EQ(p.ether_type, 0x0800);
  EXPECT_EQ(p.vlan_count, 0);
  EXPECT_EQ(p.vlan_id(), 0);
  EXPECT_TRUE(p.is_ip());
  EXPECT_EQ(p.ip_version, 4);
  EXPECT_EQ(p.src, A("198.51.100.7"));
  EXPECT_EQ(p.dst.v4(), 0xc0000201u);
  EXPECT_EQ(p.ttl, 61);
  EXPECT_EQ(p.ip_header_len, 20);
  EXPECT_EQ(p.ip_total_len, 20u + 24u);
  EXPECT_FALSE(p.is_fragment);
  EXPECT_EQ(p.frag_id, 99u);
  EXPECT_EQ(p.protocol, proto::TCP);
  EXPECT_TRUE(p.has_transport);
  EXPECT_TRUE(p.has_ports());
  EXPECT_EQ(p.src_port, 40000);
  EXPECT_EQ(p.dst_port, 443);
  EXPECT_EQ(p.tcp_flags, tcp_flag::SYN);
  EXPECT_EQ(p.tcp_seq, 77u);
  EXPECT_EQ(p.tcp_header_len, 24);
  EXPECT_EQ(p.length, b.size());
}

TEST(PacketParse, Udp) {
  const Packet p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, udp(5353, 53, {1, 2, 3}))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.protocol, proto::UDP);
  EXPECT_EQ(p.src_port, 5353);
  EXPECT_EQ(p.dst_port, 53);
  EXPECT_EQ(p.udp_length, 11);
}

TEST(PacketParse, EthernetPaddingIsNotPacket) {
  // A 60-byte minimum frame pads a short datagram: the IP total length says where it ends.
  Bytes b = eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), 253, {}));
  b.resize(60, 0xee);
  const Packet p = parsed(b);
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.ip_total_len, 20u);
  EXPECT_EQ(p.protocol, 253);
  EXPECT_FALSE(p.has_transport);
}

TEST(PacketParse, VlanAndQinQ) {
  const Bytes ip = ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, udp(1, 2));
  Packet p = parsed(ethernet(kHostMac, kPeerMac, ethertype::IPV4, ip, {{ethertype::VLAN, 100, 5}}));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.vlan_count, 1);
  EXPECT_EQ(p.vlan_id(), 100);
  EXPECT_EQ(p.ether_type, ethertype::IPV4);
  EXPECT_EQ(p.dst_port, 2);

  p = parsed(ethernet(kHostMac, kPeerMac, ethertype::IPV6,
                      ipv6(A("2001:db8::2"), A("2001:db8::1"), proto::UDP, udp(7, 8)),
                      {{ethertype::QINQ, 300}, {ethertype::VLAN, 4095}}));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.vlan_count, 2);
  EXPECT_EQ(p.vlan_id(), 300);  // the outer tag
  EXPECT_EQ(p.vlan_ids[1], 4095);
  EXPECT_EQ(p.ether_type, ethertype::IPV6);
  EXPECT_EQ(p.src_port, 7);
}

TEST(PacketParse, NotIp) {
  Packet p = parsed(ethernet(kHostMac, kPeerMac, ethertype::ARP, Bytes(28, 0)));
  EXPECT_EQ(p.status, Status::NOT_IP);
  EXPECT_TRUE(p.has_ethernet);
  EXPECT_EQ(p.ether_type, ethertype::ARP);
  EXPECT_FALSE(p.is_ip());
  // An 802.3 length field, tagged.
  p = parsed(ethernet(kHostMac, kPeerMac, 46, Bytes(46, 0), {{ethertype::VLAN, 9}}));
  EXPECT_EQ(p.status, Status::NOT_IP);
  EXPECT_EQ(p.vlan_id(), 9);
}

TEST(PacketParse, BadIpHeaders) {
  Bytes ip = ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, udp(1, 2));
  Bytes bad = ip;
  bad[0] = 0x44;  // IHL 4
  EXPECT_EQ(parsed(eth4(bad)).status, Status::BAD_IHL);
  bad = ip;
  bad[2] = 0, bad[3] = 19;  // total length < header
  EXPECT_EQ(parsed(eth4(bad)).status, Status::BAD_IPV4_TOTAL_LENGTH);
  bad = ip;
  bad[0] = 0x55;  // version 5
  EXPECT_EQ(parsed(eth4(bad)).status, Status::BAD_IP_VERSION);
  EXPECT_EQ(parsed(bad, LinkType::RAW).status, Status::BAD_IP_VERSION);
  // The EtherType says IPv6, the header is IPv4.
  EXPECT_EQ(parsed(eth6(ip)).status, Status::BAD_IP_VERSION);
  EXPECT_EQ(parsed(Bytes{}, LinkType::RAW).status, Status::TRUNCATED_IPV4_HEADER);
}

TEST(PacketParse, Ipv4Options) {
  // NOP, Record Route (7 bytes, one slot), EOL padding: 12 bytes of options.
  const Bytes opts = {1, 7, 7, 4, 0, 0, 0, 0};
  Packet p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::TCP, tcp(1, 2, tcp_flag::ACK), {.options = opts})));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.ip_header_len, 28);
  EXPECT_EQ(p.ipv4_options_len, 8);
  EXPECT_EQ(p.dst_port, 2);
  // Router alert (4 bytes) then a length of 1.
  p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, udp(1, 2), {.options = {148, 4, 0, 0, 7, 1, 0, 0}})));
  EXPECT_EQ(p.status, Status::BAD_IPV4_OPTIONS);
  EXPECT_EQ(p.src, A("10.0.0.2"));  // kept what it read
  EXPECT_FALSE(p.is_ip());
  // An option running past the header; an option type with no room for its length.
  EXPECT_EQ(parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), 17, udp(1, 2), {.options = {7, 9, 4, 0}}))).status,
            Status::BAD_IPV4_OPTIONS);
  EXPECT_EQ(parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), 17, udp(1, 2), {.options = {1, 1, 1, 7}}))).status,
            Status::BAD_IPV4_OPTIONS);
}

TEST(PacketParse, Ipv4Fragments) {
  Packet p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, udp(1, 2, Bytes(16, 0)), {.id = 7, .mf = true})));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_TRUE(p.is_fragment);
  EXPECT_TRUE(p.more_fragments);
  EXPECT_EQ(p.frag_offset, 0);
  EXPECT_EQ(p.frag_id, 7u);
  EXPECT_EQ(p.frag_data_len(), 24u);
  EXPECT_TRUE(p.first_fragment());
  EXPECT_TRUE(p.has_transport);  // the first fragment carries the UDP header
  EXPECT_EQ(p.dst_port, 2);

  p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, Bytes(8, 0xab), {.id = 7, .frag_offset = 24})));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_TRUE(p.is_fragment);
  EXPECT_FALSE(p.more_fragments);
  EXPECT_EQ(p.frag_offset, 24);
  EXPECT_FALSE(p.first_fragment());
  EXPECT_FALSE(p.has_transport);  // the bytes after its header are data, not a UDP header
  EXPECT_EQ(p.src_port, 0);
  EXPECT_EQ(p.protocol, proto::UDP);

  // Offset + length past 65535.
  p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, Bytes(16, 0), {.frag_offset = 65528})));
  EXPECT_EQ(p.status, Status::BAD_FRAGMENT);
}

TEST(PacketParse, Ipv6ExtensionChain) {
  const Bytes l4 = tcp(1234, 80, tcp_flag::SYN);
  const Bytes chain = ext(proto::DSTOPTS, ext(proto::ROUTING, ext(proto::FRAGMENT, frag6(proto::AH, 0, true, 0xabcdef,
                          ah(proto::DSTOPTS, ext(proto::TCP, l4, Bytes(9, 0))))), {0, 0, 0, 0, 0, 0}));
  const Packet p = parsed(eth6(ipv6(A("2001:db8::2"), A("2001:db8::1"), proto::HOPOPTS, chain)));
  EXPECT_EQ(p.status, Status::OK);
  ASSERT_EQ(p.ext_count, 6);
  const uint8_t want[] = {proto::HOPOPTS, proto::DSTOPTS, proto::ROUTING, proto::FRAGMENT, proto::AH, proto::DSTOPTS};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(p.ext_headers[i], want[i]) << i;
  EXPECT_EQ(p.protocol, proto::TCP);
  EXPECT_TRUE(p.is_fragment);
  EXPECT_TRUE(p.more_fragments);
  EXPECT_EQ(p.frag_id, 0xabcdefu);
  EXPECT_EQ(p.frag_data_offset, 40 + 8 + 8 + 8 + 8);
  EXPECT_EQ(p.src_port, 1234);
  EXPECT_EQ(p.dst_port, 80);
  EXPECT_EQ(p.ip_header_len, 40 + 8 + 8 + 8 + 8 + 24 + 16);
  EXPECT_EQ(p.src, A("2001:db8::2"));
  EXPECT_TRUE(p.src.v6);
}

TEST(PacketParse, Ipv6ChainEnds) {
  const IpAddr s = A("2001:db8::2"), d = A("2001:db8::1");
  Packet p = parsed(eth6(ipv6(s, d, proto::HOPOPTS, ext(proto::ESP, Bytes(40, 0x55)))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.protocol, proto::ESP);  // ESP ends the chain: what follows is encrypted
  EXPECT_FALSE(p.has_transport);
  p = parsed(eth6(ipv6(s, d, proto::DSTOPTS, ext(proto::NONE, {}))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.protocol, proto::NONE);
  // A non-first fragment: the protocol from its fragment header, no transport header.
  p = parsed(eth6(ipv6(s, d, proto::FRAGMENT, frag6(proto::UDP, 1232, false, 5, Bytes(8, 0)))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.protocol, proto::UDP);
  EXPECT_EQ(p.frag_offset, 1232);
  EXPECT_FALSE(p.has_transport);
  EXPECT_EQ(p.frag_data_len(), 8u);
  // Hop-by-hop must come first.
  p = parsed(eth6(ipv6(s, d, proto::DSTOPTS, ext(proto::HOPOPTS, ext(proto::UDP, udp(1, 2))))));
  EXPECT_EQ(p.status, Status::BAD_EXTENSION_HEADER);
  // A chain longer than the parser follows.
  Bytes chain = udp(1, 2);
  for (size_t i = 0; i < kMaxExtensionHeaders + 1; ++i) chain = ext(i == 0 ? proto::UDP : proto::DSTOPTS, chain);
  EXPECT_EQ(parsed(eth6(ipv6(s, d, proto::DSTOPTS, chain))).status, Status::BAD_EXTENSION_HEADER);
  chain = udp(1, 2);
  for (size_t i = 0; i < kMaxExtensionHeaders; ++i) chain = ext(i == 0 ? proto::UDP : proto::DSTOPTS, chain);
  p = parsed(eth6(ipv6(s, d, proto::DSTOPTS, chain)));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.ext_count, kMaxExtensionHeaders);
  EXPECT_EQ(p.dst_port, 2);
}

TEST(PacketParse, IcmpEcho) {
  Packet p = parsed(eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::ICMP, icmp(8, 0, {1, 2}))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_TRUE(p.has_transport);
  EXPECT_FALSE(p.has_ports());
  EXPECT_EQ(p.icmp_type, 8);
  EXPECT_FALSE(p.icmp_error);
  p = parsed(eth6(ipv6(A("2001:db8::2"), A("2001:db8::1"), proto::ICMPV6, icmp(128, 0))));
  EXPECT_EQ(p.icmp_type, 128);
  EXPECT_FALSE(p.icmp_error);
  // ICMP (1) over IPv6 is just another protocol.
  p = parsed(eth6(ipv6(A("2001:db8::2"), A("2001:db8::1"), proto::ICMP, icmp(3, 3))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_FALSE(p.has_transport);
  EXPECT_FALSE(p.icmp_error);
}

TEST(PacketParse, IcmpErrorQuotesUdp) {
  // The host (10.0.0.1) sent 10.0.0.1:5000 -> 203.0.113.9:53; a router says port unreachable.
  const Bytes quoted = ipv4(A("10.0.0.1"), A("203.0.113.9"), proto::UDP, udp(5000, 53, Bytes(20, 0)));
  const Bytes b = eth4(ipv4(A("203.0.113.9"), A("10.0.0.1"), proto::ICMP,
                            icmp(3, 3, Bytes(quoted.begin(), quoted.begin() + 28))));
  const Packet p = parsed(b);
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_TRUE(p.icmp_error);
  EXPECT_EQ(p.icmp_type, 3);
  EXPECT_EQ(p.icmp_code, 3);
  ASSERT_TRUE(p.embedded.present);
  EXPECT_EQ(p.embedded.ip_version, 4);
  EXPECT_EQ(p.embedded.src, A("10.0.0.1"));
  EXPECT_EQ(p.embedded.dst, A("203.0.113.9"));
  EXPECT_EQ(p.embedded.protocol, proto::UDP);
  EXPECT_TRUE(p.embedded.has_ports);
  EXPECT_EQ(p.embedded.src_port, 5000);
  EXPECT_EQ(p.embedded.dst_port, 53);
  EXPECT_EQ(p.embedded.transport_len, 8);
  EXPECT_EQ(p.embedded.transport[5], 28);  // the quoted UDP length
  for (uint8_t t : {3, 4, 5, 11, 12}) EXPECT_TRUE(is_icmp_error(4, t));
  for (uint8_t t : {0, 8, 13}) EXPECT_FALSE(is_icmp_error(4, t));
  for (uint8_t t : {1, 2, 3, 4}) EXPECT_TRUE(is_icmp_error(6, t));
  for (uint8_t t : {128, 129, 135}) EXPECT_FALSE(is_icmp_error(6, t));
}

TEST(PacketParse, Icmpv6ErrorQuotesTcpAfterExtensionHeader) {
  const Bytes quoted = ipv6(A("2001:db8::1"), A("2001:db8::9"), proto::DSTOPTS, ext(proto::TCP, tcp(40001, 22, tcp_flag::SYN)));
  const Packet p = parsed(eth6(ipv6(A("2001:db8::fe"), A("2001:db8::1"), proto::ICMPV6, icmp(2, 0, quoted, 1280))));
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_TRUE(p.icmp_error);
  EXPECT_EQ(p.icmp_type, 2);
  ASSERT_TRUE(p.embedded.present);
  EXPECT_EQ(p.embedded.ip_version, 6);
  EXPECT_EQ(p.embedded.dst, A("2001:db8::9"));
  EXPECT_EQ(p.embedded.protocol, proto::TCP);
  EXPECT_EQ(p.embedded.src_port, 40001);
  EXPECT_EQ(p.embedded.dst_port, 22);
  EXPECT_EQ(p.embedded.transport_len, 8);
}

TEST(PacketParse, LinkTypes) {
  const Bytes ip4 = ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::UDP, udp(1, 2));
  const Bytes ip6 = ipv6(A("2001:db8::2"), A("2001:db8::1"), proto::UDP, udp(3, 4));
  Packet p = parsed(ip4, LinkType::RAW);
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_FALSE(p.has_ethernet);
  EXPECT_EQ(p.ip_version, 4);
  EXPECT_EQ(p.dst_port, 2);
  p = parsed(ip6, LinkType::RAW);
  EXPECT_EQ(p.ip_version, 6);
  EXPECT_EQ(p.dst_port, 4);
  p = parsed(sll(4, ethertype::IPV4, ip4, kPeerMac), LinkType::LINUX_SLL);
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_FALSE(p.has_ethernet);
  EXPECT_EQ(p.sll_packet_type, 4);
  EXPECT_EQ(p.ether_type, ethertype::IPV4);
  EXPECT_EQ(p.dst_port, 2);
  p = parsed(sll2(0, ethertype::IPV6, 7, ip6), LinkType::LINUX_SLL2);
  EXPECT_EQ(p.status, Status::OK);
  EXPECT_EQ(p.sll_ifindex, 7u);
  EXPECT_EQ(p.ip_version, 6);
  EXPECT_EQ(p.dst_port, 4);
  p = parsed(sll(0, ethertype::ARP, Bytes(28, 0)), LinkType::LINUX_SLL);
  EXPECT_EQ(p.status, Status::NOT_IP);

  EXPECT_EQ(link_type_from_dlt(1), LinkType::ETHERNET);
  EXPECT_EQ(link_type_from_dlt(12), LinkType::RAW);
  EXPECT_EQ(link_type_from_dlt(101), LinkType::RAW);
  EXPECT_EQ(link_type_from_dlt(228), LinkType::RAW);
  EXPECT_EQ(link_type_from_dlt(229), LinkType::RAW);
  EXPECT_EQ(link_type_from_dlt(113), LinkType::LINUX_SLL);
  EXPECT_EQ(link_type_from_dlt(276), LinkType::LINUX_SLL2);
  EXPECT_EQ(link_type_from_dlt(0), std::nullopt);    // DLT_NULL
  EXPECT_EQ(link_type_from_dlt(127), std::nullopt);  // radiotap
}

// Cuts a valid packet at every length; `want(n)` is the status a cut to n bytes must give.
void every_cut(const Bytes& b, LinkType link, const std::function<Status(size_t)>& want) {
  for (size_t n = 0; n <= b.size(); ++n) {
    // A copy of exactly n bytes, so that a read past the end is a heap overflow under ASan.
    const std::vector<uint8_t> cut(b.begin(), b.begin() + static_cast<ptrdiff_t>(n));
    Packet p;
    parse(cut, link, p);
    EXPECT_EQ(p.status, want(n)) << "cut at " << n << " of " << b.size() << ": " << to_string(p.status);
  }
}

TEST(PacketParse, EveryTruncationEthernetVlanIpv4OptionsTcp) {
  const Bytes b = ethernet(kHostMac, kPeerMac, ethertype::IPV4,
                           ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::TCP, tcp(1, 2, tcp_flag::SYN, 1, 0, {}, {2, 4, 5, 0xb4}),
                                {.options = {1, 1, 1, 0}}),
                           {{ethertype::QINQ, 10}, {ethertype::VLAN, 20}});
  // 14 Ethernet, 2 tags (22), IPv4 24 (46), TCP 24 (70).
  ASSERT_EQ(b.size(), 70u);
  every_cut(b, LinkType::ETHERNET, [](size_t n) {
    if (n < 14) return Status::TRUNCATED_LINK_HEADER;
    if (n < 22) return Status::TRUNCATED_VLAN_TAG;
    if (n < 46) return Status::TRUNCATED_IPV4_HEADER;
    if (n < 70) return Status::TRUNCATED_TCP_HEADER;
    return Status::OK;
  });
}

TEST(PacketParse, EveryTruncationIpv6ChainUdp) {
  const Bytes b = eth6(ipv6(A("2001:db8::2"), A("2001:db8::1"), proto::HOPOPTS,
                            ext(proto::FRAGMENT, frag6(proto::AH, 0, true, 1, ah(proto::UDP, udp(1, 2, {9, 9}))))));
  // 14 + 40 (54) + hop 8 (62) + frag 8 (70) + AH 24 (94) + UDP 8 (102) + 2.
  ASSERT_EQ(b.size(), 104u);
  every_cut(b, LinkType::ETHERNET, [](size_t n) {
    if (n < 14) return Status::TRUNCATED_LINK_HEADER;
    if (n == 14) return Status::TRUNCATED_IPV6_HEADER;
    if (n < 54) return Status::TRUNCATED_IPV6_HEADER;
    if (n < 94) return Status::TRUNCATED_EXTENSION_HEADER;
    if (n < 102) return Status::TRUNCATED_UDP_HEADER;
    return Status::OK;
  });
}

TEST(PacketParse, EveryTruncationIcmpErrorRawAndCooked) {
  const Bytes quoted = ipv4(A("10.0.0.1"), A("203.0.113.9"), proto::UDP, udp(5000, 53));
  const Bytes ip = ipv4(A("203.0.113.9"), A("10.0.0.1"), proto::ICMP, icmp(11, 0, quoted));
  // IPv4 20, ICMP 8 (28), quoted IPv4 20 (48), quoted UDP ports 4 (52) .. 8 (56).
  auto want = [](size_t base) {
    return [base](size_t n) {
      if (n < base) return Status::TRUNCATED_LINK_HEADER;
      if (n < base + 20) return Status::TRUNCATED_IPV4_HEADER;
      if (n < base + 28) return Status::TRUNCATED_ICMP_HEADER;
      if (n < base + 52) return Status::TRUNCATED_EMBEDDED_PACKET;
      return Status::OK;
    };
  };
  every_cut(ip, LinkType::RAW, want(0));
  every_cut(sll(0, ethertype::IPV4, ip), LinkType::LINUX_SLL, want(16));
  every_cut(sll2(0, ethertype::IPV4, 3, ip), LinkType::LINUX_SLL2, want(20));
}

TEST(PacketParse, TruncationKeepsWhatWasRead) {
  const Bytes b = eth4(ipv4(A("10.0.0.2"), A("10.0.0.1"), proto::TCP, tcp(1, 2, tcp_flag::SYN)));
  const Packet p = parsed(Bytes(b.begin(), b.begin() + 14 + 20 + 10));
  EXPECT_EQ(p.status, Status::TRUNCATED_TCP_HEADER);
  EXPECT_TRUE(p.is_ip());
  EXPECT_EQ(p.src, A("10.0.0.2"));
  EXPECT_EQ(p.protocol, proto::TCP);
  EXPECT_FALSE(p.has_transport);
  EXPECT_EQ(p.src_port, 0);
  // A TCP data offset below 5.
  Bytes bad = b;
  bad[14 + 20 + 12] = 0x40;
  EXPECT_EQ(parsed(bad).status, Status::BAD_TCP_DATA_OFFSET);
  // A later parse resets everything.
  Packet q = parsed(bad);
  parse(Bytes{}, LinkType::ETHERNET, q);
  EXPECT_EQ(q.status, Status::TRUNCATED_LINK_HEADER);
  EXPECT_EQ(q.ip_version, 0);
  EXPECT_EQ(q.protocol, 0);
}

TEST(PacketParse, StatusNames) {
  EXPECT_EQ(to_string(Status::TRUNCATED_IPV4_HEADER), "TRUNCATED_IPV4_HEADER");
  EXPECT_EQ(describe(Status::TRUNCATED_IPV4_HEADER), "truncated IPv4 header");
  EXPECT_EQ(describe(Status::BAD_IHL), "bad IHL");
  for (int s = 0; s <= static_cast<int>(Status::TRUNCATED_EMBEDDED_PACKET); ++s)
    EXPECT_NE(to_string(static_cast<Status>(s)), "?") << s;
}

}  // namespace
}  // namespace lfp::packet
