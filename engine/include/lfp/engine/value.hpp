// SPDX-License-Identifier: MIT
#pragma once
// WFP's data types (FWP_DATA_TYPE) and values. Two kinds of value, as in WFP:
//  - Value: a field's value in a classify request (FWP_VALUE0). It does not own its bytes: the
//    caller keeps strings and tokens alive for the duration of the call.
//  - ConditionValue: the value a filter condition compares against (FWP_CONDITION_VALUE0); owns
//    its data, and adds the condition-only kinds (address masks, ranges, user sets).
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lfp {

enum class DataType : uint8_t {
  EMPTY,
  UINT8,
  UINT16,
  UINT32,
  UINT64,
  BYTE_ARRAY16_TYPE,         // IPv6 address
  BYTE_BLOB_TYPE,            // ALE_APP_ID: on Linux the executable's path (UTF-8, as the kernel gives it)
  SECURITY_DESCRIPTOR_TYPE,  // ALE_USER_ID condition: on Linux a set of uids and gids (UserSet)
  TOKEN_INFORMATION_TYPE,    // ALE_USER_ID value: on Linux uid, primary gid and supplementary gids
  UNICODE_STRING_TYPE,
  BYTE_ARRAY6_TYPE,          // MAC address
  V4_ADDR_MASK,
  V6_ADDR_MASK,
  RANGE_TYPE,
};

std::string_view to_string(DataType t);
std::optional<DataType> data_type_from_string(std::string_view s);

// The identity behind ALE_USER_ID on Linux (WFP: an access token).
struct Token {
  uint32_t uid = 0;
  std::vector<uint32_t> gids;  // primary first, then supplementary
};

// A set of users and groups (WFP: a security descriptor granting access). A token matches when
// its uid is listed or any of its gids is.
struct UserSet {
  std::vector<uint32_t> uids;
  std::vector<uint32_t> gids;
  friend bool operator==(const UserSet&, const UserSet&) = default;
};

using Ip6 = std::array<uint8_t, 16>;
using Mac = std::array<uint8_t, 6>;

struct Value {
  DataType type = DataType::EMPTY;
  uint64_t u = 0;              // UINT8..UINT64; an IPv4 address is a UINT32 in host order
  Ip6 bytes{};                 // BYTE_ARRAY16_TYPE; BYTE_ARRAY6_TYPE uses the first 6
  std::string_view str;        // BYTE_BLOB_TYPE, UNICODE_STRING_TYPE (not owned)
  const Token* token = nullptr;  // TOKEN_INFORMATION_TYPE (not owned)

  static Value uint8(uint8_t v) { return {DataType::UINT8, v}; }
  static Value uint16(uint16_t v) { return {DataType::UINT16, v}; }
  static Value uint32(uint32_t v) { return {DataType::UINT32, v}; }
  static Value uint64(uint64_t v) { return {DataType::UINT64, v}; }
  static Value ip6(const Ip6& a) { Value v{DataType::BYTE_ARRAY16_TYPE}; v.bytes = a; return v; }
  static Value mac(const Mac& m);
  static Value blob(std::string_view s) { Value v{DataType::BYTE_BLOB_TYPE}; v.str = s; return v; }
  static Value unicode(std::string_view s) { Value v{DataType::UNICODE_STRING_TYPE}; v.str = s; return v; }
  static Value user(const Token& t) { Value v{DataType::TOKEN_INFORMATION_TYPE}; v.token = &t; return v; }
};

// An owning copy of a plain value (used for condition operands and range ends).
struct OwnedValue {
  DataType type = DataType::EMPTY;
  uint64_t u = 0;
  Ip6 bytes{};
  std::string str;

  Value view() const {
    Value v{type, u, bytes};
    v.str = str;
    return v;
  }
  friend bool operator==(const OwnedValue&, const OwnedValue&) = default;
};

struct ConditionValue {
  DataType type = DataType::EMPTY;
  OwnedValue value;          // plain kinds; RANGE_TYPE: the low end; V4_ADDR_MASK/V6_ADDR_MASK: the address
  OwnedValue high;           // RANGE_TYPE: the high end (same type as value)
  uint32_t v4_mask = 0;      // V4_ADDR_MASK (host order, contiguous)
  uint8_t v6_prefix = 0;     // V6_ADDR_MASK, 0..128
  UserSet users;             // SECURITY_DESCRIPTOR_TYPE
  // An interface field's value by name (EQUAL, NOT_EQUAL): the name is the value; `value` (of the
  // field's type) holds the index the engine's interface table gives it, kNoInterface while no
  // interface has the name. See FilterEngine::set_interfaces.
  std::string interface_name;
  // No interface has this index (Linux's are positive ints; 0 is what a data path may report for
  // "none"): a name no interface has matches no packet with EQUAL, every one with NOT_EQUAL.
  static constexpr uint32_t kNoInterface = UINT32_MAX;

  static ConditionValue plain(OwnedValue v) { ConditionValue c; c.type = v.type; c.value = std::move(v); return c; }
  static ConditionValue interface(DataType t, std::string name) {
    ConditionValue c = uint(t, kNoInterface);
    c.interface_name = std::move(name);
    return c;
  }
  static ConditionValue uint(DataType t, uint64_t u) { return plain(OwnedValue{t, u}); }
  static ConditionValue range(OwnedValue lo, OwnedValue hi);
  static ConditionValue v4_prefix(uint32_t addr, unsigned len);
  static ConditionValue v6_prefix_of(const Ip6& addr, unsigned len);
  static ConditionValue user_set(UserSet u) { ConditionValue c; c.type = DataType::SECURITY_DESCRIPTOR_TYPE; c.users = std::move(u); return c; }

  // A named interface's resolved index is the engine's, not the value's: it is not compared.
  friend bool operator==(const ConditionValue& a, const ConditionValue& b) {
    return a.type == b.type && a.interface_name == b.interface_name &&
           (!a.interface_name.empty() || a.value == b.value) && a.high == b.high && a.v4_mask == b.v4_mask &&
           a.v6_prefix == b.v6_prefix && a.users == b.users;
  }
};

// Width in bits of an unsigned integer type (0 if not one).
unsigned uint_width(DataType t);
// v4 mask for a prefix length 0..32.
inline uint32_t v4_mask_of(unsigned len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }
// Prefix length of a contiguous mask, or -1 if not contiguous.
int v4_prefix_len(uint32_t mask);

// A hex digit's value, or -1.
inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Text forms used by the policy format and the CLI.
std::string format_ip4(uint32_t host_order);
std::optional<uint32_t> parse_ip4(std::string_view s);
std::string format_ip6(const Ip6& a);
std::optional<Ip6> parse_ip6(std::string_view s);
std::string format_mac(const Ip6& bytes);
std::optional<Mac> parse_mac(std::string_view s);

}  // namespace lfp
