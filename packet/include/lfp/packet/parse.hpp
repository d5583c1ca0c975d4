// SPDX-License-Identifier: MIT
#pragma once
// A packet parser for the packet layers (docs/packet-layers.md): Ethernet with 802.1Q/802.1ad tags,
// Linux cooked (SLL, SLL2) and raw IP link types; IPv4 (options, fragments), IPv6 (extension
// headers), TCP, UDP, ICMP and ICMPv6 (with the packet an error quotes). Pure and bounded: it reads
// only inside the span it is given, allocates nothing, and the result holds values, never pointers
// into the packet, so it can be copied and kept (fragment reassembly keeps a first fragment's).
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "lfp/engine/value.hpp"

namespace lfp::packet {

// Where the bytes start.
enum class LinkType : uint8_t {
  ETHERNET,    // DLT_EN10MB: an Ethernet header, then any VLAN tags
  RAW,         // LINKTYPE_RAW, DLT_IPV4, DLT_IPV6: the IP header (version from its first nibble)
  LINUX_SLL,   // Linux cooked capture v1 ("any" interface): 16-byte header
  LINUX_SLL2,  // Linux cooked capture v2: 20-byte header
};
std::string_view to_string(LinkType t);
// From a pcap data link type (pcap_datalink(): DLT_ values; LINKTYPE_ values from the file header
// are accepted too). nullopt: not one this parser reads.
std::optional<LinkType> link_type_from_dlt(int dlt);

// How far parsing got. OK: every header present was read. Anything else names the first header that
// could not be read; the fields parsed before it are kept.
enum class Status : uint8_t {
  OK,
  TRUNCATED_LINK_HEADER,     // Ethernet / SLL / SLL2 header cut
  TRUNCATED_VLAN_TAG,
  NOT_IP,                    // an EtherType other than IPv4 / IPv6 (ARP, LLDP, an 802.3 length, ...)
  BAD_IP_VERSION,            // the version nibble is not 4 or 6, or not what the EtherType says
  TRUNCATED_IPV4_HEADER,     // fewer than 20 bytes, or fewer than IHL says
  BAD_IHL,                   // IHL < 5
  BAD_IPV4_TOTAL_LENGTH,     // total length < the header length
  BAD_IPV4_OPTIONS,          // an option's length runs past the header or is < 2
  TRUNCATED_IPV6_HEADER,
  TRUNCATED_EXTENSION_HEADER,
  BAD_EXTENSION_HEADER,      // hop-by-hop not first, or more than kMaxExtensionHeaders
  BAD_FRAGMENT,              // offset + length beyond 65535
  TRUNCATED_TCP_HEADER,
  BAD_TCP_DATA_OFFSET,       // data offset < 5
  TRUNCATED_UDP_HEADER,
  TRUNCATED_ICMP_HEADER,
  TRUNCATED_EMBEDDED_PACKET,  // an ICMP error quotes less than an IP header (+ 4 bytes of ports)
};
std::string_view to_string(Status s);
// A one-line description, e.g. "truncated IPv4 header".
std::string_view describe(Status s);

// An IPv4 or IPv6 address. IPv4 is in the first 4 bytes, network order.
struct IpAddr {
  bool v6 = false;
  Ip6 b{};
  uint32_t v4() const { return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3]; }
  friend bool operator==(const IpAddr&, const IpAddr&) = default;
};
std::optional<IpAddr> parse_ip(std::string_view text);
IpAddr ip4(uint32_t host_order);
IpAddr ip6(const Ip6& a);
std::string to_string(const IpAddr& a);  // 192.0.2.1, 2001:db8::1
bool is_loopback(const IpAddr& a);       // 127.0.0.0/8, ::1
// What the engine takes for an address field: IPv4 a UINT32 (host order), IPv6 its 16 bytes.
inline Value value_of(const IpAddr& a) { return a.v6 ? Value::ip6(a.b) : Value::uint32(a.v4()); }

namespace proto {
inline constexpr uint8_t HOPOPTS = 0, ICMP = 1, TCP = 6, UDP = 17, ROUTING = 43, FRAGMENT = 44, ESP = 50,
                         AH = 51, ICMPV6 = 58, NONE = 59, DSTOPTS = 60;
}
namespace ethertype {
inline constexpr uint16_t IPV4 = 0x0800, ARP = 0x0806, VLAN = 0x8100, QINQ = 0x88a8, QINQ_OLD = 0x9100,
                          IPV6 = 0x86dd;
}
namespace tcp_flag {
inline constexpr uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20;
}

inline constexpr size_t kMaxExtensionHeaders = 16;
inline constexpr size_t kMaxVlanTags = 4;  // tags recorded; more are skipped, counted

// The packet an ICMP error quotes: its IP header and the start of its transport header.
struct Embedded {
  bool present = false;  // the IP header was read
  uint8_t ip_version = 0;
  IpAddr src, dst;
  uint8_t protocol = 0;  // after IPv6 extension headers
  bool has_ports = false;  // TCP / UDP with at least 4 bytes of transport header quoted
  uint16_t src_port = 0, dst_port = 0;
  std::array<uint8_t, 8> transport{};  // the first 8 bytes of its transport header (fewer when cut)
  uint8_t transport_len = 0;
};

struct Packet {
  Status status = Status::OK;
  LinkType link = LinkType::ETHERNET;
  uint32_t length = 0;  // bytes given

  // Link layer.
  bool has_ethernet = false;  // an Ethernet header was read (link ETHERNET)
  Mac eth_dst{}, eth_src{};
  uint16_t ether_type = 0;  // after VLAN tags; the protocol of a cooked header
  uint8_t vlan_count = 0;   // tags seen (802.1Q and 802.1ad)
  std::array<uint16_t, kMaxVlanTags> vlan_ids{};  // outermost first
  uint16_t vlan_id() const { return vlan_count ? vlan_ids[0] : 0; }
  uint16_t sll_packet_type = 0;  // cooked: 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 from us
  uint32_t sll_ifindex = 0;      // SLL2 only

  // Network layer (ip_version 0: none).
  uint8_t ip_version = 0;
  bool ip_ok = false;            // the IP header (and IPv6 extension headers) was read whole
  IpAddr src, dst;
  uint8_t ttl = 0;               // TTL / hop limit
  uint16_t ip_header_len = 0;    // IPv4: IHL * 4; IPv6: 40 + extension headers read
  uint32_t ip_total_len = 0;     // from the header (IPv6: 40 + payload length)
  uint8_t ipv4_options_len = 0;  // IHL * 4 - 20
  uint8_t ext_count = 0;         // IPv6 extension headers, in order
  std::array<uint8_t, kMaxExtensionHeaders> ext_headers{};

  // Fragments: IPv4 MF or offset, or an IPv6 fragment header.
  bool is_fragment = false;
  bool more_fragments = false;
  uint16_t frag_offset = 0;       // bytes
  uint32_t frag_id = 0;           // IPv4: 16 bits
  uint16_t frag_data_offset = 0;  // where the fragmentable part starts, from the IP header
  uint32_t frag_data_len() const {  // this fragment's share of the datagram, per the header lengths
    return ip_total_len > frag_data_offset ? ip_total_len - frag_data_offset : 0;
  }

  // Transport layer.
  uint8_t protocol = 0;          // after IPv6 extension headers (ESP / NONE end the chain)
  bool has_transport = false;    // the TCP / UDP / ICMP header was read
  uint16_t src_port = 0, dst_port = 0;
  uint8_t tcp_flags = 0;
  uint8_t tcp_header_len = 0;
  uint32_t tcp_seq = 0, tcp_ack = 0;
  uint16_t udp_length = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
  bool icmp_error = false;       // ICMPv4 3, 4, 5, 11, 12; ICMPv6 1 to 4
  Embedded embedded;

  bool is_ip() const { return ip_ok; }
  bool has_ports() const { return has_transport && (protocol == proto::TCP || protocol == proto::UDP); }
  // A non-first fragment carries no transport header; transport fields are for offset 0 only.
  bool first_fragment() const { return !is_fragment || frag_offset == 0; }
};

bool is_icmp_error(uint8_t ip_version, uint8_t type);

// Parses one packet. Never reads outside `data`; fills `out` entirely (previous contents are reset).
void parse(std::span<const uint8_t> data, LinkType link, Packet& out);

}  // namespace lfp::packet
