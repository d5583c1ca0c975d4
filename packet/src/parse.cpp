// SPDX-License-Identifier: MIT
#include "lfp/packet/parse.hpp"

#include <algorithm>
#include <cstring>

namespace lfp::packet {
namespace {

// A bounds-checked view: every read is checked against the end, so a short packet can never be read past.
struct Reader {
  const uint8_t* p;
  size_t n;
  bool has(size_t off, size_t len) const { return off <= n && len <= n - off; }
  uint8_t u8(size_t off) const { return p[off]; }
  uint16_t u16(size_t off) const { return static_cast<uint16_t>(p[off] << 8 | p[off + 1]); }
  uint32_t u32(size_t off) const {
    return uint32_t{p[off]} << 24 | uint32_t{p[off + 1]} << 16 | uint32_t{p[off + 2]} << 8 | p[off + 3];
  }
  Reader sub(size_t off, size_t len) const {  // off <= n assumed; len clipped
    return Reader{p + off, std::min(len, n - off)};
  }
};

bool is_vlan(uint16_t t) { return t == ethertype::VLAN || t == ethertype::QINQ || t == ethertype::QINQ_OLD; }

bool is_v6_ext(uint8_t h) {
  return h == proto::HOPOPTS || h == proto::ROUTING || h == proto::FRAGMENT || h == proto::DSTOPTS ||
         h == proto::AH;
}

// The result of reading an IP header (the outer one or the one an ICMP error quotes).
struct IpResult {
  Status status = Status::OK;
  size_t l4_off = 0;   // where the transport header starts
  size_t l4_end = 0;   // where this packet's bytes end (the header's length, clipped to what we have)
};

IpResult parse_ipv4(Reader r, bool quoted, uint8_t& version, IpAddr& src, IpAddr& dst, uint8_t& protocol,
                    Packet* out) {
  IpResult res;
  if (!r.has(0, 20)) return {Status::TRUNCATED_IPV4_HEADER};
  const uint8_t vihl = r.u8(0);
  if (vihl >> 4 != 4) return {Status::BAD_IP_VERSION};
  const size_t hlen = size_t{vihl & 0x0fu} * 4;
  if (hlen < 20) return {Status::BAD_IHL};
  version = 4;
  src.v6 = dst.v6 = false;
  src.b = {};
  dst.b = {};
  std::memcpy(src.b.data(), r.p + 12, 4);
  std::memcpy(dst.b.data(), r.p + 16, 4);
  protocol = r.u8(9);
  const uint16_t total = r.u16(2);
  const uint16_t frag = r.u16(6);
  if (out) {
    out->ttl = r.u8(8);
    out->ip_total_len = total;
    out->ip_header_len = static_cast<uint16_t>(hlen);
    out->ipv4_options_len = static_cast<uint8_t>(hlen - 20);
    out->frag_id = r.u16(4);
    out->more_fragments = frag & 0x2000;
    out->frag_offset = static_cast<uint16_t>((frag & 0x1fff) * 8);
    out->is_fragment = out->more_fragments || out->frag_offset != 0;
    out->frag_data_offset = static_cast<uint16_t>(hlen);
  }
  if (!r.has(0, hlen)) return {Status::TRUNCATED_IPV4_HEADER};
  // A quoted header's total length describes the original packet, not the few bytes quoted.
  if (!quoted && total < hlen) return {Status::BAD_IPV4_TOTAL_LENGTH};
  // Options: EOL ends them, NOP is one byte, the rest are type-length-value.
  for (size_t o = 20; o < hlen;) {
    const uint8_t type = r.u8(o);
    if (type == 0) break;
    if (type == 1) {
      ++o;
      continue;
    }
    if (o + 1 >= hlen) return {Status::BAD_IPV4_OPTIONS};
    const uint8_t len = r.u8(o + 1);
    if (len < 2 || o + len > hlen) return {Status::BAD_IPV4_OPTIONS};
    o += len;
  }
  if (out && out->frag_offset + out->frag_data_len() > 65535) return {Status::BAD_FRAGMENT};
  res.l4_off = hlen;
  res.l4_end = quoted ? r.n : std::min<size_t>(r.n, total);
  if (!quoted && out && out->is_fragment && out->frag_offset != 0) res.l4_off = res.l4_end;  // no transport header here
  return res;
}

IpResult parse_ipv6(Reader r, bool quoted, uint8_t& version, IpAddr& src, IpAddr& dst, uint8_t& protocol,
                    Packet* out) {
  IpResult res;
  if (!r.has(0, 40)) return {Status::TRUNCATED_IPV6_HEADER};
  if (r.u8(0) >> 4 != 6) return {Status::BAD_IP_VERSION};
  version = 6;
  src.v6 = dst.v6 = true;
  std::memcpy(src.b.data(), r.p + 8, 16);
  std::memcpy(dst.b.data(), r.p + 24, 16);
  const uint32_t total = 40u + r.u16(4);
  uint8_t next = r.u8(6);
  if (out) {
    out->ttl = r.u8(7);
    out->ip_total_len = total;
    out->ip_header_len = 40;
  }
  const size_t end = quoted ? r.n : std::min<size_t>(r.n, total);
  size_t off = 40;
  size_t count = 0;
  bool fragment_later = false;  // a non-first fragment: what follows its header is not a header
  while (is_v6_ext(next) && !fragment_later) {
    protocol = next;  // kept if the chain is cut here
    if (count >= kMaxExtensionHeaders) return {Status::BAD_EXTENSION_HEADER};
    if (next == proto::HOPOPTS && count != 0) return {Status::BAD_EXTENSION_HEADER};  // RFC 8200 4.1
    if (!r.has(off, 8) || off + 8 > end) return {Status::TRUNCATED_EXTENSION_HEADER};
    size_t len;
    if (next == proto::FRAGMENT) {
      len = 8;
      const uint16_t fo = r.u16(off + 2);
      if (out && !quoted) {
        out->is_fragment = true;
        out->frag_offset = static_cast<uint16_t>(fo & 0xfff8);
        out->more_fragments = fo & 1;
        out->frag_id = r.u32(off + 4);
        out->frag_data_offset = static_cast<uint16_t>(off + 8);
        fragment_later = out->frag_offset != 0;
      } else if (quoted) {
        fragment_later = (fo & 0xfff8) != 0;
      }
    } else if (next == proto::AH) {
      len = (size_t{r.u8(off + 1)} + 2) * 4;
    } else {
      len = (size_t{r.u8(off + 1)} + 1) * 8;
    }
    if (!r.has(off, len) || off + len > end) return {Status::TRUNCATED_EXTENSION_HEADER};
    if (out) {
      out->ext_headers[count] = next;
      out->ext_count = static_cast<uint8_t>(count + 1);
      out->ip_header_len = static_cast<uint16_t>(off + len);
    }
    ++count;
    next = r.u8(off);
    off += len;
  }
  protocol = next;
  if (out && !quoted && out->is_fragment && out->frag_offset + out->frag_data_len() > 65535)
    return {Status::BAD_FRAGMENT};
  res.l4_off = fragment_later ? end : off;
  res.l4_end = end;
  return res;
}

void parse_ip(Reader r, Packet& out) {
  if (!r.has(0, 1)) {
    out.status = Status::TRUNCATED_IPV4_HEADER;
    if (out.ether_type == ethertype::IPV6) out.status = Status::TRUNCATED_IPV6_HEADER;
    return;
  }
  const uint8_t v = r.u8(0) >> 4;
  const bool want4 = out.ether_type == ethertype::IPV4, want6 = out.ether_type == ethertype::IPV6;
  IpResult ip;
  if (v == 4 && !want6) ip = parse_ipv4(r, false, out.ip_version, out.src, out.dst, out.protocol, &out);
  else if (v == 6 && !want4) ip = parse_ipv6(r, false, out.ip_version, out.src, out.dst, out.protocol, &out);
  else ip.status = Status::BAD_IP_VERSION;
  if (ip.status != Status::OK) {
    out.status = ip.status;
    return;
  }
  out.ip_ok = true;
  if (!out.first_fragment()) return;
  const size_t off = ip.l4_off, end = ip.l4_end;
  const size_t avail = end > off ? end - off : 0;
  Reader t = r.sub(off, avail);
  switch (out.protocol) {
    case proto::TCP: {
      if (!t.has(0, 20)) {
        out.status = Status::TRUNCATED_TCP_HEADER;
        return;
      }
      const size_t hl = static_cast<size_t>(t.u8(12) >> 4) * 4;
      if (hl < 20) {
        out.status = Status::BAD_TCP_DATA_OFFSET;
        return;
      }
      if (!t.has(0, hl)) {
        out.status = Status::TRUNCATED_TCP_HEADER;
        return;
      }
      out.src_port = t.u16(0);
      out.dst_port = t.u16(2);
      out.tcp_seq = t.u32(4);
      out.tcp_ack = t.u32(8);
      out.tcp_flags = t.u8(13);
      out.tcp_header_len = static_cast<uint8_t>(hl);
      out.has_transport = true;
      return;
    }
    case proto::UDP:
      if (!t.has(0, 8)) {
        out.status = Status::TRUNCATED_UDP_HEADER;
        return;
      }
      out.src_port = t.u16(0);
      out.dst_port = t.u16(2);
      out.udp_length = t.u16(4);
      out.has_transport = true;
      return;
    case proto::ICMP:
    case proto::ICMPV6: {
      // ICMP in IPv6 or ICMPv6 in IPv4 is not ICMP: no type/code convention for it.
      if ((out.protocol == proto::ICMP) != (out.ip_version == 4)) return;
      if (!t.has(0, 4)) {
        out.status = Status::TRUNCATED_ICMP_HEADER;
        return;
      }
      out.icmp_type = t.u8(0);
      out.icmp_code = t.u8(1);
      out.has_transport = true;
      out.icmp_error = is_icmp_error(out.ip_version, out.icmp_type);
      if (!out.icmp_error) return;
      if (!t.has(0, 8)) {
        out.status = Status::TRUNCATED_ICMP_HEADER;
        return;
      }
      Reader q = t.sub(8, t.n - 8);
      Embedded& e = out.embedded;
      IpResult qi;
      if (!q.has(0, 1)) qi.status = Status::TRUNCATED_EMBEDDED_PACKET;
      else if (q.u8(0) >> 4 == 4) qi = parse_ipv4(q, true, e.ip_version, e.src, e.dst, e.protocol, nullptr);
      else if (q.u8(0) >> 4 == 6) qi = parse_ipv6(q, true, e.ip_version, e.src, e.dst, e.protocol, nullptr);
      else qi.status = Status::TRUNCATED_EMBEDDED_PACKET;
      if (qi.status != Status::OK) {
        e = Embedded{};
        out.status = Status::TRUNCATED_EMBEDDED_PACKET;
        return;
      }
      e.present = true;
      if (qi.l4_off <= q.n) {
        e.transport_len = static_cast<uint8_t>(std::min<size_t>(8, q.n - qi.l4_off));
        std::memcpy(e.transport.data(), q.p + qi.l4_off, e.transport_len);
      }
      if (e.protocol == proto::TCP || e.protocol == proto::UDP) {
        if (e.transport_len < 4) {
          out.status = Status::TRUNCATED_EMBEDDED_PACKET;
          return;
        }
        e.src_port = static_cast<uint16_t>(e.transport[0] << 8 | e.transport[1]);
        e.dst_port = static_cast<uint16_t>(e.transport[2] << 8 | e.transport[3]);
        e.has_ports = true;
      }
      return;
    }
    default:
      return;  // another protocol: nothing more to read
  }
}

// Ethernet type field, then VLAN tags; returns the offset of what follows, or sets a status.
size_t parse_ether_type(Reader r, size_t off, uint16_t type, Packet& out) {
  while (is_vlan(type)) {
    if (!r.has(off, 4)) {
      out.status = Status::TRUNCATED_VLAN_TAG;
      out.ether_type = type;
      return 0;
    }
    if (out.vlan_count < kMaxVlanTags) out.vlan_ids[out.vlan_count] = r.u16(off) & 0x0fff;
    if (out.vlan_count < 255) ++out.vlan_count;
    type = r.u16(off + 2);
    off += 4;
  }
  out.ether_type = type;
  if (type != ethertype::IPV4 && type != ethertype::IPV6) {
    out.status = Status::NOT_IP;
    return 0;
  }
  return off;
}

}  // namespace

bool is_icmp_error(uint8_t ip_version, uint8_t type) {
  if (ip_version == 4) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return type >= 1 && type <= 4;
}

void parse(std::span<const uint8_t> data, LinkType link, Packet& out) {
  out = Packet{};
  out.link = link;
  out.length = static_cast<uint32_t>(std::min<size_t>(data.size(), UINT32_MAX));
  const Reader r{data.data(), data.size()};
  size_t off = 0;
  switch (link) {
    case LinkType::ETHERNET:
      if (!r.has(0, 14)) {
        out.status = Status::TRUNCATED_LINK_HEADER;
        return;
      }
      std::memcpy(out.eth_dst.data(), r.p, 6);
      std::memcpy(out.eth_src.data(), r.p + 6, 6);
      out.has_ethernet = true;
      off = parse_ether_type(r, 14, r.u16(12), out);
      if (out.status != Status::OK) return;
      break;
    case LinkType::LINUX_SLL:
      if (!r.has(0, 16)) {
        out.status = Status::TRUNCATED_LINK_HEADER;
        return;
      }
      out.sll_packet_type = r.u16(0);
      off = parse_ether_type(r, 16, r.u16(14), out);
      if (out.status != Status::OK) return;
      break;
    case LinkType::LINUX_SLL2:
      if (!r.has(0, 20)) {
        out.status = Status::TRUNCATED_LINK_HEADER;
        return;
      }
      out.sll_ifindex = r.u32(4);
      out.sll_packet_type = r.u8(10);
      off = parse_ether_type(r, 20, r.u16(0), out);
      if (out.status != Status::OK) return;
      break;
    case LinkType::RAW:
      break;  // the version nibble decides
  }
  parse_ip(r.sub(off, r.n - off), out);
}

std::string_view to_string(LinkType t) {
  switch (t) {
    case LinkType::ETHERNET: return "ETHERNET";
    case LinkType::RAW: return "RAW";
    case LinkType::LINUX_SLL: return "LINUX_SLL";
    case LinkType::LINUX_SLL2: return "LINUX_SLL2";
  }
  return "?";
}

std::optional<LinkType> link_type_from_dlt(int dlt) {
  switch (dlt) {
    case 1: return LinkType::ETHERNET;      // DLT_EN10MB
    case 12:                                // DLT_RAW (most systems)
    case 14:                                // DLT_RAW (OpenBSD)
    case 101:                               // LINKTYPE_RAW
    case 228:                               // DLT_IPV4
    case 229: return LinkType::RAW;         // DLT_IPV6
    case 113: return LinkType::LINUX_SLL;   // DLT_LINUX_SLL
    case 276: return LinkType::LINUX_SLL2;  // DLT_LINUX_SLL2
    default: return std::nullopt;
  }
}

std::string_view to_string(Status s) {
  switch (s) {
#define S(n) \
  case Status::n: return #n;
    S(OK) S(TRUNCATED_LINK_HEADER) S(TRUNCATED_VLAN_TAG) S(NOT_IP) S(BAD_IP_VERSION) S(TRUNCATED_IPV4_HEADER)
    S(BAD_IHL) S(BAD_IPV4_TOTAL_LENGTH) S(BAD_IPV4_OPTIONS) S(TRUNCATED_IPV6_HEADER)
    S(TRUNCATED_EXTENSION_HEADER) S(BAD_EXTENSION_HEADER) S(BAD_FRAGMENT) S(TRUNCATED_TCP_HEADER)
    S(BAD_TCP_DATA_OFFSET) S(TRUNCATED_UDP_HEADER) S(TRUNCATED_ICMP_HEADER) S(TRUNCATED_EMBEDDED_PACKET)
#undef S
  }
  return "?";
}

std::string_view describe(Status s) {
  switch (s) {
    case Status::OK: return "parsed";
    case Status::TRUNCATED_LINK_HEADER: return "truncated link-layer header";
    case Status::TRUNCATED_VLAN_TAG: return "truncated VLAN tag";
    case Status::NOT_IP: return "not IP (EtherType)";
    case Status::BAD_IP_VERSION: return "bad IP version";
    case Status::TRUNCATED_IPV4_HEADER: return "truncated IPv4 header";
    case Status::BAD_IHL: return "bad IHL";
    case Status::BAD_IPV4_TOTAL_LENGTH: return "IPv4 total length shorter than its header";
    case Status::BAD_IPV4_OPTIONS: return "malformed IPv4 options";
    case Status::TRUNCATED_IPV6_HEADER: return "truncated IPv6 header";
    case Status::TRUNCATED_EXTENSION_HEADER: return "truncated IPv6 extension header";
    case Status::BAD_EXTENSION_HEADER: return "bad IPv6 extension header chain";
    case Status::BAD_FRAGMENT: return "fragment beyond 65535 bytes";
    case Status::TRUNCATED_TCP_HEADER: return "truncated TCP header";
    case Status::BAD_TCP_DATA_OFFSET: return "bad TCP data offset";
    case Status::TRUNCATED_UDP_HEADER: return "truncated UDP header";
    case Status::TRUNCATED_ICMP_HEADER: return "truncated ICMP header";
    case Status::TRUNCATED_EMBEDDED_PACKET: return "truncated packet quoted by an ICMP error";
  }
  return "?";
}

IpAddr ip4(uint32_t a) {
  IpAddr r;
  r.b[0] = static_cast<uint8_t>(a >> 24);
  r.b[1] = static_cast<uint8_t>(a >> 16);
  r.b[2] = static_cast<uint8_t>(a >> 8);
  r.b[3] = static_cast<uint8_t>(a);
  return r;
}

IpAddr ip6(const Ip6& a) {
  IpAddr r;
  r.v6 = true;
  r.b = a;
  return r;
}

std::string to_string(const IpAddr& a) { return a.v6 ? format_ip6(a.b) : format_ip4(a.v4()); }

bool is_loopback(const IpAddr& a) {
  constexpr Ip6 kLoopback6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return a.v6 ? a.b == kLoopback6 : a.b[0] == 127;
}

std::optional<IpAddr> parse_ip(std::string_view text) {
  if (auto a = parse_ip4(text)) return ip4(*a);
  if (auto a = parse_ip6(text)) return ip6(*a);
  return std::nullopt;
}

}  // namespace lfp::packet
