// SPDX-License-Identifier: MIT
#include "lfp/engine/condition.hpp"

#include <algorithm>
#include <cstring>

#include "lfp/engine/error.hpp"

namespace lfp {

namespace {

constexpr std::string_view kMatchNames[] = {
    "EQUAL",         "GREATER",       "LESS",           "GREATER_OR_EQUAL",       "LESS_OR_EQUAL",
    "RANGE",         "FLAGS_ALL_SET", "FLAGS_ANY_SET",  "FLAGS_NONE_SET",         "EQUAL_CASE_INSENSITIVE",
    "NOT_EQUAL",     "PREFIX",        "NOT_PREFIX",
};

bool is_uint(DataType t) { return uint_width(t) != 0; }
bool is_string(DataType t) { return t == DataType::BYTE_BLOB_TYPE || t == DataType::UNICODE_STRING_TYPE; }
bool is_sortable(DataType t) { return is_uint(t) || t == DataType::BYTE_ARRAY16_TYPE || is_string(t); }

// Three-way compare of two plain values of the same type.
int compare(const Value& a, const Value& b) {
  switch (a.type) {
    case DataType::BYTE_ARRAY16_TYPE: return std::memcmp(a.bytes.data(), b.bytes.data(), 16);
    case DataType::BYTE_ARRAY6_TYPE: return std::memcmp(a.bytes.data(), b.bytes.data(), 6);
    case DataType::BYTE_BLOB_TYPE:
    case DataType::UNICODE_STRING_TYPE: {
      int c = a.str.compare(b.str);
      return c < 0 ? -1 : c > 0;
    }
    default: return a.u < b.u ? -1 : a.u > b.u;
  }
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y && std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

bool token_in(const Token& t, const UserSet& s) {
  if (std::find(s.uids.begin(), s.uids.end(), t.uid) != s.uids.end()) return true;
  for (auto g : t.gids)
    if (std::find(s.gids.begin(), s.gids.end(), g) != s.gids.end()) return true;
  return false;
}

bool v6_prefix_equal(const Ip6& a, const Ip6& b, unsigned len) {
  unsigned full = len / 8, rest = len % 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t m = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & m) == (b[full] & m);
}

// EQUAL for every condition kind that has one.
bool equal(const ConditionValue& c, const Value& v) {
  switch (c.type) {
    case DataType::V4_ADDR_MASK:
      return v.type == DataType::UINT32 && ((v.u ^ c.value.u) & c.v4_mask) == 0;
    case DataType::V6_ADDR_MASK:
      return v.type == DataType::BYTE_ARRAY16_TYPE && v6_prefix_equal(v.bytes, c.value.bytes, c.v6_prefix);
    case DataType::SECURITY_DESCRIPTOR_TYPE:
      return v.type == DataType::TOKEN_INFORMATION_TYPE && v.token && token_in(*v.token, c.users);
    case DataType::EMPTY: return v.type == DataType::EMPTY;
    default: return v.type == c.type && compare(v, c.value.view()) == 0;
  }
}

}  // namespace

std::string_view to_string(MatchType m) { return kMatchNames[static_cast<size_t>(m)]; }

std::optional<MatchType> match_type_from_string(std::string_view s) {
  for (size_t i = 0; i < std::size(kMatchNames); ++i)
    if (kMatchNames[i] == s) return static_cast<MatchType>(i);
  return std::nullopt;
}

bool condition_matches(const Condition& c, const Value& v) {
  const ConditionValue& cv = c.value;
  switch (c.match) {
    case MatchType::EQUAL: return equal(cv, v);
    case MatchType::NOT_EQUAL: return v.type != DataType::EMPTY && !equal(cv, v);
    case MatchType::RANGE: {
      if (v.type != cv.value.type) return false;
      return compare(v, cv.value.view()) >= 0 && compare(v, cv.high.view()) <= 0;
    }
    default: break;
  }
  if (v.type != cv.type) return false;
  switch (c.match) {
    case MatchType::GREATER: return compare(v, cv.value.view()) > 0;
    case MatchType::LESS: return compare(v, cv.value.view()) < 0;
    case MatchType::GREATER_OR_EQUAL: return compare(v, cv.value.view()) >= 0;
    case MatchType::LESS_OR_EQUAL: return compare(v, cv.value.view()) <= 0;
    case MatchType::FLAGS_ALL_SET: return (v.u & cv.value.u) == cv.value.u;
    case MatchType::FLAGS_ANY_SET: return (v.u & cv.value.u) != 0;
    case MatchType::FLAGS_NONE_SET: return (v.u & cv.value.u) == 0;
    case MatchType::EQUAL_CASE_INSENSITIVE: return iequal(v.str, cv.value.str);
    case MatchType::PREFIX: return v.str.ends_with(cv.value.str);
    case MatchType::NOT_PREFIX: return !v.str.ends_with(cv.value.str);
    default: return false;
  }
}

void validate_condition(const Condition& c, const LayerInfo& layer) {
  const std::string fname(field_name(c.field));
  if (c.field == FieldId::NONE || static_cast<size_t>(c.field) >= kFieldCount)
    throw Error(ErrorCode::CONDITION_NOT_FOUND, "unknown field");
  if (!layer_has_field(layer, c.field))
    throw Error(ErrorCode::CONDITION_NOT_FOUND,
                "field " + fname + " is not available at layer " + std::string(layer.name));
  const DataType ft = field_type(c.field, layer.family);
  const ConditionValue& cv = c.value;
  const std::string mname(to_string(c.match));
  auto type_error = [&](std::string_view want) {
    throw Error(ErrorCode::TYPE_MISMATCH, "field " + fname + " at " + std::string(layer.name) + " takes " +
                                              std::string(want) + ", not " + std::string(to_string(cv.type)));
  };
  auto match_error = [&] {
    throw Error(ErrorCode::MATCH_TYPE_MISMATCH,
                "match type " + mname + " does not apply to a " + std::string(to_string(cv.type)) + " value");
  };

  // 1. The value's kind fits the field.
  switch (cv.type) {
    case DataType::EMPTY: break;
    case DataType::V4_ADDR_MASK:
      if (ft != DataType::UINT32 || field_type(c.field, IpFamily::V6) != DataType::BYTE_ARRAY16_TYPE)
        type_error(to_string(ft));
      if (v4_prefix_len(cv.v4_mask) < 0) throw Error(ErrorCode::INVALID_NET_MASK, "v4 mask is not contiguous");
      break;
    case DataType::V6_ADDR_MASK:
      if (ft != DataType::BYTE_ARRAY16_TYPE) type_error(to_string(ft));
      if (cv.v6_prefix > 128) throw Error(ErrorCode::INVALID_NET_MASK, "v6 prefix length above 128");
      break;
    case DataType::SECURITY_DESCRIPTOR_TYPE:
      if (ft != DataType::TOKEN_INFORMATION_TYPE) type_error(to_string(ft));
      break;
    case DataType::RANGE_TYPE:
      if (cv.value.type != ft || cv.high.type != ft) type_error(std::string("a RANGE_TYPE of ") + std::string(to_string(ft)));
      if (is_uint(ft) && uint_width(ft) < 64 && ((cv.value.u | cv.high.u) >> uint_width(ft)) != 0)
        throw Error(ErrorCode::TYPE_MISMATCH, "range end does not fit " + std::string(to_string(ft)));
      if (compare(cv.value.view(), cv.high.view()) > 0)
        throw Error(ErrorCode::INVALID_RANGE, "range low end is above its high end");
      break;
    default:
      if (cv.type != ft) type_error(to_string(ft));
      if (is_uint(cv.type) && uint_width(cv.type) < 64 && (cv.value.u >> uint_width(cv.type)) != 0)
        throw Error(ErrorCode::TYPE_MISMATCH, "value does not fit " + std::string(to_string(cv.type)));
      break;
  }
  if (cv.type == DataType::TOKEN_INFORMATION_TYPE) type_error("SECURITY_DESCRIPTOR_TYPE");
  if (!cv.interface_name.empty()) {
    if (!field_is_interface(c.field) || cv.type != ft)
      throw Error(ErrorCode::TYPE_MISMATCH, "field " + fname + " holds no interface: it takes no interface name");
    if (!is_interface_name(cv.interface_name))
      throw Error(ErrorCode::TYPE_MISMATCH,
                  "'" + cv.interface_name + "' is not an interface name (1 to 15 bytes, no '/', ':' or white space)");
    if (c.match != MatchType::EQUAL && c.match != MatchType::NOT_EQUAL)
      throw Error(ErrorCode::MATCH_TYPE_MISMATCH, "match type " + mname + " does not apply to an interface name (EQUAL, NOT_EQUAL)");
  }

  // 2. The match type fits the value.
  const DataType t = cv.type;
  bool ok = false;
  switch (c.match) {
    case MatchType::EQUAL:
    case MatchType::NOT_EQUAL: ok = t != DataType::RANGE_TYPE; break;
    case MatchType::GREATER:
    case MatchType::LESS:
    case MatchType::GREATER_OR_EQUAL:
    case MatchType::LESS_OR_EQUAL: ok = is_sortable(t); break;
    case MatchType::RANGE: ok = t == DataType::RANGE_TYPE && is_sortable(cv.value.type); break;
    case MatchType::FLAGS_ALL_SET:
    case MatchType::FLAGS_ANY_SET:
    case MatchType::FLAGS_NONE_SET: ok = is_uint(t); break;
    case MatchType::EQUAL_CASE_INSENSITIVE:
    case MatchType::PREFIX:
    case MatchType::NOT_PREFIX: ok = is_string(t); break;
  }
  if (!ok) match_error();
}

bool conditions_match(const std::vector<Condition>& conds, const FieldValues& values) {
  // Conditions are kept grouped by field (Filter::normalize); a field's run is OR'ed.
  size_t i = 0;
  while (i < conds.size()) {
    const FieldId f = conds[i].field;
    const Value& v = values.get(f);
    bool any = false;
    for (; i < conds.size() && conds[i].field == f; ++i)
      if (!any && condition_matches(conds[i], v)) any = true;
    if (!any) return false;
  }
  return true;
}

}  // namespace lfp
