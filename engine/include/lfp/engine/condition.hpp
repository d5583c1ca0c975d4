// SPDX-License-Identifier: MIT
#pragma once
// Filter conditions: a field, a match type (FWP_MATCH_TYPE) and a condition value. A filter's
// conditions on the same field are OR'ed, conditions on different fields AND'ed, as in WFP.
#include <optional>
#include <string_view>
#include <vector>

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/value.hpp"

namespace lfp {

enum class MatchType : uint8_t {
  EQUAL,
  GREATER,
  LESS,
  GREATER_OR_EQUAL,
  LESS_OR_EQUAL,
  RANGE,
  FLAGS_ALL_SET,
  FLAGS_ANY_SET,
  FLAGS_NONE_SET,
  EQUAL_CASE_INSENSITIVE,
  NOT_EQUAL,
  PREFIX,      // WFP's misnomer, kept: the value ENDS with the condition (e.g. an app path's file name)
  NOT_PREFIX,  // the value does not end with the condition
};

std::string_view to_string(MatchType m);
std::optional<MatchType> match_type_from_string(std::string_view s);

struct Condition {
  FieldId field = FieldId::NONE;
  MatchType match = MatchType::EQUAL;
  ConditionValue value;
  friend bool operator==(const Condition&, const Condition&) = default;
};

// Does the incoming value satisfy one condition? An EMPTY incoming value (the field is unknown)
// matches only an EQUAL condition on an EMPTY value, as in WFP.
bool condition_matches(const Condition& c, const Value& v);

// Checks a condition against a layer: the field exists there (CONDITION_NOT_FOUND), the value's type
// fits the field (TYPE_MISMATCH), the match type fits the value (MATCH_TYPE_MISMATCH), masks and
// ranges are well formed (INVALID_NET_MASK, INVALID_RANGE). Throws lfp::Error.
void validate_condition(const Condition& c, const LayerInfo& layer);

// The values of a classify request, indexed by field. Holds views: the caller owns strings/tokens.
class FieldValues {
 public:
  void set(FieldId f, const Value& v) { values_[static_cast<size_t>(f)] = v; }
  const Value& get(FieldId f) const { return values_[static_cast<size_t>(f)]; }
  void clear() { values_ = {}; }

 private:
  std::array<Value, kFieldCount> values_{};
};

// AND over fields of (OR over that field's conditions). Zero conditions: always matches.
bool conditions_match(const std::vector<Condition>& conds, const FieldValues& values);

}  // namespace lfp
