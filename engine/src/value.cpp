// SPDX-License-Identifier: MIT
#include "lfp/engine/value.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstdio>
#include <cstring>

namespace lfp {

namespace {
constexpr std::string_view kTypeNames[] = {
    "EMPTY",          "UINT8",          "UINT16",
    "UINT32",         "UINT64",         "BYTE_ARRAY16_TYPE",
    "BYTE_BLOB_TYPE", "SECURITY_DESCRIPTOR_TYPE", "TOKEN_INFORMATION_TYPE",
    "UNICODE_STRING_TYPE", "BYTE_ARRAY6_TYPE", "V4_ADDR_MASK",
    "V6_ADDR_MASK",   "RANGE_TYPE",
};
}  // namespace

std::string_view to_string(DataType t) { return kTypeNames[static_cast<size_t>(t)]; }

std::optional<DataType> data_type_from_string(std::string_view s) {
  for (size_t i = 0; i < std::size(kTypeNames); ++i)
    if (kTypeNames[i] == s) return static_cast<DataType>(i);
  return std::nullopt;
}

Value Value::mac(const Mac& m) {
  Value v{DataType::BYTE_ARRAY6_TYPE};
  std::memcpy(v.bytes.data(), m.data(), 6);
  return v;
}

ConditionValue ConditionValue::range(OwnedValue lo, OwnedValue hi) {
  ConditionValue c;
  c.type = DataType::RANGE_TYPE;
  c.value = std::move(lo);
  c.high = std::move(hi);
  return c;
}

ConditionValue ConditionValue::v4_prefix(uint32_t addr, unsigned len) {
  ConditionValue c;
  c.type = DataType::V4_ADDR_MASK;
  c.value = OwnedValue{DataType::UINT32, addr};
  c.v4_mask = v4_mask_of(len);
  return c;
}

ConditionValue ConditionValue::v6_prefix_of(const Ip6& addr, unsigned len) {
  ConditionValue c;
  c.type = DataType::V6_ADDR_MASK;
  c.value.type = DataType::BYTE_ARRAY16_TYPE;
  c.value.bytes = addr;
  c.v6_prefix = static_cast<uint8_t>(len);
  return c;
}

unsigned uint_width(DataType t) {
  switch (t) {
    case DataType::UINT8: return 8;
    case DataType::UINT16: return 16;
    case DataType::UINT32: return 32;
    case DataType::UINT64: return 64;
    default: return 0;
  }
}

int v4_prefix_len(uint32_t mask) {
  int len = __builtin_popcount(mask);
  return mask == v4_mask_of(static_cast<unsigned>(len)) ? len : -1;
}

std::string format_ip4(uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  return buf;
}

std::optional<uint32_t> parse_ip4(std::string_view s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  char buf[16];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  in_addr a{};
  if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string format_ip6(const Ip6& a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

std::optional<Ip6> parse_ip6(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  Ip6 a;
  if (inet_pton(AF_INET6, buf, a.data()) != 1) return std::nullopt;
  return a;
}

std::string format_mac(const Ip6& b) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
  return buf;
}

std::optional<Mac> parse_mac(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  Mac m;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && s[i * 3 - 1] != ':' && s[i * 3 - 1] != '-') return std::nullopt;
    unsigned v = 0;
    for (size_t j = 0; j < 2; ++j) {
      char c = s[i * 3 + j];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<unsigned>(d);
    }
    m[i] = static_cast<uint8_t>(v);
  }
  return m;
}

}  // namespace lfp
