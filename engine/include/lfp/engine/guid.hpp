#pragma once
// GUIDs key every object, as in WFP. Textual form: 8-4-4-4-12 hex digits, braces optional.
#include <array>
#include <cstdint>
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
  bool is_nil() const;

  friend bool operator==(const Guid&, const Guid&) = default;
  friend auto operator<=>(const Guid&, const Guid&) = default;
};

struct GuidHash {
  size_t operator()(const Guid& g) const noexcept;
};

}  // namespace lfp

template <>
struct std::hash<lfp::Guid> : lfp::GuidHash {};
