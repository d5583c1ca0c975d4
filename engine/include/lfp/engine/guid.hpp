// SPDX-License-Identifier: MIT
#pragma once
// GUIDs key every object, as in WFP. Textual form: 8-4-4-4-12 hex digits, braces optional.
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lfp {

struct Guid {
  std::array<uint8_t, 16> bytes{};

  static std::optional<Guid> parse(std::string_view text);
  // A random (version 4) GUID.
  static Guid generate();
  std::string str() const;
  void append_str(std::string& out) const;  // str() at the end of out (no string of its own)
  bool is_nil() const;

  // Two 8-byte compares, inlined: every key lookup in a hash map makes one (the defaulted form
  // calls memcmp).
  friend bool operator==(const Guid& a, const Guid& b) {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.bytes.data(), 8);
    std::memcpy(&a1, a.bytes.data() + 8, 8);
    std::memcpy(&b0, b.bytes.data(), 8);
    std::memcpy(&b1, b.bytes.data() + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
  friend auto operator<=>(const Guid&, const Guid&) = default;
  // For absl's hash maps (a Swiss table wants every bit of the hash mixed; GuidHash's low bits
  // are one half's alone).
  template <typename H>
  friend H AbslHashValue(H h, const Guid& g) {
    uint64_t a, b;
    std::memcpy(&a, g.bytes.data(), 8);
    std::memcpy(&b, g.bytes.data() + 8, 8);
    return H::combine(std::move(h), a, b);
  }
};

struct GuidHash {
  size_t operator()(const Guid& g) const noexcept {  // inline: every hash map lookup by key
    uint64_t a, b;
    std::memcpy(&a, g.bytes.data(), 8);
    std::memcpy(&b, g.bytes.data() + 8, 8);
    return static_cast<size_t>(a * 0x9E3779B97F4A7C15ull ^ b);
  }
};

}  // namespace lfp

template <>
struct std::hash<lfp::Guid> : lfp::GuidHash {};
