// SPDX-License-Identifier: MIT
#include "lfp/engine/objects.hpp"

#include <algorithm>
#include <bit>

#include "lfp/engine/error.hpp"

namespace lfp {

namespace {
struct FlagName {
  ObjectFlag flag;
  std::string_view name;
};
constexpr FlagName kFlagNames[] = {
    {PERSISTENT, "PERSISTENT"},
    {BOOTTIME, "BOOTTIME"},
    {HAS_PROVIDER_CONTEXT, "HAS_PROVIDER_CONTEXT"},
    {CLEAR_ACTION_RIGHT, "CLEAR_ACTION_RIGHT"},
    {PERMIT_IF_CALLOUT_UNREGISTERED, "PERMIT_IF_CALLOUT_UNREGISTERED"},
    {DISABLED, "DISABLED"},
    {INDEXED, "INDEXED"},
    {USES_PROVIDER_CONTEXT, "USES_PROVIDER_CONTEXT"},
};
constexpr std::string_view kActionNames[] = {"BLOCK", "PERMIT", "CALLOUT_TERMINATING", "CALLOUT_INSPECTION",
                                             "CALLOUT_UNKNOWN"};

// Bits a condition pins down, out of its field's width (see docs/engine.md "Weights").
unsigned specificity(const Condition& c, IpFamily family) {
  const ConditionValue& v = c.value;
  switch (c.match) {
    case MatchType::EQUAL:
      switch (v.type) {
        case DataType::V4_ADDR_MASK: return static_cast<unsigned>(std::popcount(v.v4_mask));
        case DataType::V6_ADDR_MASK: return v.v6_prefix;
        case DataType::BYTE_ARRAY16_TYPE: return 128;
        case DataType::BYTE_ARRAY6_TYPE: return 48;
        case DataType::BYTE_BLOB_TYPE:
        case DataType::UNICODE_STRING_TYPE:
        case DataType::SECURITY_DESCRIPTOR_TYPE: return 64;
        case DataType::EMPTY: return 1;
        default: return uint_width(v.type);
      }
    case MatchType::RANGE: {
      unsigned w = uint_width(v.value.type);
      if (w == 0) return 1;
      uint64_t span = v.high.u - v.value.u;
      unsigned spread = span == ~uint64_t{0} ? 64 : static_cast<unsigned>(std::bit_width(span));
      return w > spread ? w - spread : 0;
    }
    case MatchType::EQUAL_CASE_INSENSITIVE: return 63;
    default: return 1;
  }
}
}  // namespace

std::string_view flag_name(ObjectFlag f) {
  for (const auto& n : kFlagNames)
    if (n.flag == f) return n.name;
  return "?";
}

std::optional<ObjectFlag> flag_from_string(std::string_view s) {
  for (const auto& n : kFlagNames)
    if (n.name == s) return n.flag;
  return std::nullopt;
}

std::vector<std::string_view> flag_names(uint32_t flags) {
  std::vector<std::string_view> out;
  for (const auto& n : kFlagNames)
    if (flags & n.flag) out.push_back(n.name);
  return out;
}

std::string_view to_string(ActionType a) { return kActionNames[static_cast<size_t>(a)]; }

std::optional<ActionType> action_type_from_string(std::string_view s) {
  for (size_t i = 0; i < std::size(kActionNames); ++i)
    if (kActionNames[i] == s) return static_cast<ActionType>(i);
  return std::nullopt;
}

uint64_t auto_weight(const std::vector<Condition>& conds, IpFamily family) {
  // Per field (a run of OR'ed conditions) the least specific alternative counts.
  uint64_t fields = 0, bits = 0;
  for (size_t i = 0; i < conds.size();) {
    size_t j = i;
    unsigned least = ~0u;
    for (; j < conds.size() && conds[j].field == conds[i].field; ++j)
      least = std::min(least, specificity(conds[j], family));
    ++fields;
    bits += least;
    i = j;
  }
  // Bits 56..59: number of fields with conditions; bits 32..55: total specificity.
  return std::min<uint64_t>(fields, 15) << 56 | std::min<uint64_t>(bits, (1u << 24) - 1) << 32;
}

uint64_t effective_weight(const Weight& w, const std::vector<Condition>& conds, IpFamily family) {
  switch (w.kind) {
    case Weight::Kind::EXPLICIT: return w.value;
    case Weight::Kind::EMPTY: return auto_weight(conds, family);
    case Weight::Kind::RANGE_INDEX:
      if (w.value > WEIGHT_RANGE_MAX)
        throw Error(ErrorCode::INVALID_WEIGHT, "weight range index " + std::to_string(w.value) + " is above 15");
      return w.value << AUTO_WEIGHT_BITS | auto_weight(conds, family);
  }
  return 0;
}

namespace builtin {
const Guid SUBLAYER_UNIVERSAL = *Guid::parse("eebecc03-ced4-4380-819a-2734397b2b6f");
const Guid SUBLAYER_INSPECTION = *Guid::parse("877519e1-e6a9-41a5-81b4-8c4f118e4a60");
}  // namespace builtin

}  // namespace lfp
