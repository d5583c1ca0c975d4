// SPDX-License-Identifier: MIT
#include "lfp/engine/guid.hpp"
#include "lfp/engine/value.hpp"

#include <cstring>
#include <random>

namespace lfp {

std::optional<Guid> Guid::parse(std::string_view t) {
  if (t.size() == 38 && t.front() == '{' && t.back() == '}') t = t.substr(1, 36);
  if (t.size() != 36) return std::nullopt;
  Guid g;
  size_t b = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (t[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_digit(t[i]), lo = hex_digit(t[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    g.bytes[b++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return g;
}

Guid Guid::generate() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Guid g;
  uint64_t a = rng(), b = rng();
  std::memcpy(g.bytes.data(), &a, 8);
  std::memcpy(g.bytes.data() + 8, &b, 8);
  g.bytes[6] = (g.bytes[6] & 0x0f) | 0x40;  // version 4
  g.bytes[8] = (g.bytes[8] & 0x3f) | 0x80;  // RFC 4122 variant
  return g;
}

std::string Guid::str() const {
  std::string s;
  append_str(s);
  return s;
}

void Guid::append_str(std::string& out) const {
  static const char* hex = "0123456789abcdef";
  char text[36];
  char* p = text;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[bytes[i] >> 4];
    *p++ = hex[bytes[i] & 15];
  }
  out.append(text, sizeof text);
}

bool Guid::is_nil() const {
  for (auto b : bytes)
    if (b) return false;
  return true;
}

}  // namespace lfp
