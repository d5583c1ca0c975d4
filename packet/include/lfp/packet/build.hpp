// SPDX-License-Identifier: MIT
#pragma once
// Packet builders for tests, fuzz seeds, examples and the data layers' resets: each returns the bytes
// of one header with what follows it appended. Not used by the parser or the walk. Checksums: IPv4's
// header only.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "lfp/packet/parse.hpp"

namespace lfp::packet::build {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
inline void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
inline Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct VlanTag {
  uint16_t tpid = ethertype::VLAN;  // 0x8100, or 0x88a8 for an 802.1ad outer tag
  uint16_t vid = 0;
  uint8_t pcp = 0;
};

inline Bytes ethernet(const Mac& dst, const Mac& src, uint16_t type, const Bytes& payload,
                      std::initializer_list<VlanTag> tags = {}) {
  Bytes b(dst.begin(), dst.end());
  b.insert(b.end(), src.begin(), src.end());
  for (const auto& t : tags) {
    put16(b, t.tpid);
    put16(b, static_cast<uint16_t>(t.pcp << 13 | (t.vid & 0x0fff)));
  }
  put16(b, type);
  return cat(b, payload);
}

// Linux cooked headers (pcap's LINKTYPE_LINUX_SLL / SLL2).
inline Bytes sll(uint16_t packet_type, uint16_t protocol, const Bytes& payload, const Mac& src = {}) {
  Bytes b;
  put16(b, packet_type);
  put16(b, 1);  // ARPHRD_ETHER
  put16(b, 6);
  b.insert(b.end(), src.begin(), src.end());
  put16(b, 0);
  put16(b, protocol);
  return cat(b, payload);
}
inline Bytes sll2(uint8_t packet_type, uint16_t protocol, uint32_t ifindex, const Bytes& payload, const Mac& src = {}) {
  Bytes b;
  put16(b, protocol);
  put16(b, 0);
  put32(b, ifindex);
  put16(b, 1);
  b.push_back(packet_type);
  b.push_back(6);
  b.insert(b.end(), src.begin(), src.end());
  put16(b, 0);
  return cat(b, payload);
}

struct V4 {
  uint16_t id = 0x1234;
  bool df = false, mf = false;
  uint16_t frag_offset = 0;  // bytes, a multiple of 8
  uint8_t ttl = 64;
  Bytes options;             // padded to 4 bytes with EOL
  int total_length = -1;     // -1: the real one
};

inline Bytes ipv4(const IpAddr& src, const IpAddr& dst, uint8_t protocol, const Bytes& payload, V4 o = {}) {
  Bytes opts = o.options;
  while (opts.size() % 4) opts.push_back(0);
  const size_t hlen = 20 + opts.size();
  Bytes b;
  b.push_back(static_cast<uint8_t>(0x40 | (hlen / 4)));
  b.push_back(0);
  put16(b, static_cast<uint16_t>(o.total_length >= 0 ? o.total_length : static_cast<int>(hlen + payload.size())));
  put16(b, o.id);
  put16(b, static_cast<uint16_t>((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | (o.frag_offset / 8)));
  b.push_back(o.ttl);
  b.push_back(protocol);
  put16(b, 0);
  b.insert(b.end(), src.b.begin(), src.b.begin() + 4);
  b.insert(b.end(), dst.b.begin(), dst.b.begin() + 4);
  b.insert(b.end(), opts.begin(), opts.end());
  uint32_t sum = 0;
  for (size_t i = 0; i < hlen; i += 2) sum += static_cast<uint32_t>(b[i] << 8 | b[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  b[10] = static_cast<uint8_t>(~sum >> 8);
  b[11] = static_cast<uint8_t>(~sum);
  return cat(b, payload);
}

// `payload` starts with any extension headers (ext(), frag6()); `next` is the first one's type.
inline Bytes ipv6(const IpAddr& src, const IpAddr& dst, uint8_t next, const Bytes& payload, uint8_t hop_limit = 64) {
  Bytes b = {0x60, 0, 0, 0};
  put16(b, static_cast<uint16_t>(payload.size()));
  b.push_back(next);
  b.push_back(hop_limit);
  b.insert(b.end(), src.b.begin(), src.b.end());
  b.insert(b.end(), dst.b.begin(), dst.b.end());
  return cat(b, payload);
}

// Hop-by-hop, routing or destination options: `body` padded to a multiple of 8 with the 2-byte head.
inline Bytes ext(uint8_t next, const Bytes& rest, Bytes body = {}) {
  while ((body.size() + 2) % 8) body.push_back(0);  // PadN-free zero padding (Pad1s)
  Bytes b = {next, static_cast<uint8_t>((body.size() + 2) / 8 - 1)};
  return cat(cat(b, body), rest);
}
inline Bytes ah(uint8_t next, const Bytes& rest) {  // 12-byte header + 12-byte ICV: length field 4
  Bytes b = {next, 4, 0, 0};
  put32(b, 0x100);  // SPI
  put32(b, 1);      // sequence
  for (int i = 0; i < 12; ++i) b.push_back(0);
  return cat(b, rest);
}
inline Bytes frag6(uint8_t next, uint16_t offset, bool mf, uint32_t id, const Bytes& rest) {
  Bytes b = {next, 0};
  put16(b, static_cast<uint16_t>((offset & 0xfff8) | (mf ? 1 : 0)));
  put32(b, id);
  return cat(b, rest);
}

inline Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq = 1000, uint32_t ack = 0,
                 const Bytes& payload = {}, Bytes options = {}) {
  while (options.size() % 4) options.push_back(1);  // NOP
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put32(b, seq);
  put32(b, ack);
  b.push_back(static_cast<uint8_t>((20 + options.size()) / 4 << 4));
  b.push_back(flags);
  put16(b, 65535);
  put16(b, 0);
  put16(b, 0);
  b.insert(b.end(), options.begin(), options.end());
  return cat(b, payload);
}

inline Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload = {}) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, static_cast<uint16_t>(8 + payload.size()));
  put16(b, 0);
  return cat(b, payload);
}

// ICMP and ICMPv6 alike: type, code, checksum 0, 4 bytes, then the payload (an error: the quoted packet).
inline Bytes icmp(uint8_t type, uint8_t code, const Bytes& payload = {}, uint32_t rest = 0) {
  Bytes b = {type, code, 0, 0};
  put32(b, rest);
  return cat(b, payload);
}

}  // namespace lfp::packet::build
