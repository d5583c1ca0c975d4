// SPDX-License-Identifier: MIT
#pragma once
// Captures written by tests: classic pcap files of chosen records, and the little-endian writers
// pcap and pcapng share.
#include <cstdint>
#include <string>
#include <vector>

namespace lfp::test {

inline void le16(std::string& s, uint16_t v) { s.append({static_cast<char>(v), static_cast<char>(v >> 8)}); }
inline void le32(std::string& s, uint32_t v) {
  le16(s, static_cast<uint16_t>(v));
  le16(s, static_cast<uint16_t>(v >> 16));
}

// A classic pcap file (microsecond timestamps, little-endian), one record a packet, a second apart.
inline std::string pcap_file(uint32_t linktype, const std::vector<std::vector<uint8_t>>& records) {
  std::string s;
  le32(s, 0xa1b2c3d4);
  le16(s, 2);
  le16(s, 4);
  le32(s, 0);
  le32(s, 0);
  le32(s, 65535);
  le32(s, linktype);
  uint32_t t = 1'700'000'000;
  for (const auto& r : records) {
    le32(s, t++);
    le32(s, 0);
    le32(s, static_cast<uint32_t>(r.size()));
    le32(s, static_cast<uint32_t>(r.size()));
    s.append(r.begin(), r.end());
  }
  return s;
}

}  // namespace lfp::test
