// SPDX-License-Identifier: MIT
// Every match type over every value kind, and condition validation.
#include <gtest/gtest.h>

#include "lfp/engine/error.hpp"
#include "test_support.hpp"

namespace lfp {
namespace {

using namespace lfp::test;

ConditionValue u(DataType t, uint64_t v) { return ConditionValue::uint(t, v); }
OwnedValue ov(DataType t, uint64_t v) { return OwnedValue{t, v}; }
OwnedValue ostr(DataType t, std::string s) {
  OwnedValue o{t};
  o.str = std::move(s);
  return o;
}
OwnedValue oip6(const char* s) {
  OwnedValue o{DataType::BYTE_ARRAY16_TYPE};
  o.bytes = *parse_ip6(s);
  return o;
}
bool m(MatchType mt, ConditionValue cv, const Value& v) {
  return condition_matches(Condition{FieldId::NONE, mt, std::move(cv)}, v);
}

TEST(MatchTypes, UnsignedIntegers) {
  for (auto t : {DataType::UINT8, DataType::UINT16, DataType::UINT32, DataType::UINT64}) {
    Value v{t, 10};
    EXPECT_TRUE(m(MatchType::EQUAL, u(t, 10), v));
    EXPECT_FALSE(m(MatchType::EQUAL, u(t, 11), v));
    EXPECT_TRUE(m(MatchType::NOT_EQUAL, u(t, 11), v));
    EXPECT_FALSE(m(MatchType::NOT_EQUAL, u(t, 10), v));
    EXPECT_TRUE(m(MatchType::GREATER, u(t, 9), v));
    EXPECT_FALSE(m(MatchType::GREATER, u(t, 10), v));
    EXPECT_TRUE(m(MatchType::GREATER_OR_EQUAL, u(t, 10), v));
    EXPECT_FALSE(m(MatchType::GREATER_OR_EQUAL, u(t, 11), v));
    EXPECT_TRUE(m(MatchType::LESS, u(t, 11), v));
    EXPECT_FALSE(m(MatchType::LESS, u(t, 10), v));
    EXPECT_TRUE(m(MatchType::LESS_OR_EQUAL, u(t, 10), v));
    EXPECT_FALSE(m(MatchType::LESS_OR_EQUAL, u(t, 9), v));
    EXPECT_TRUE(m(MatchType::RANGE, ConditionValue::range(ov(t, 10), ov(t, 12)), v));
    EXPECT_TRUE(m(MatchType::RANGE, ConditionValue::range(ov(t, 8), ov(t, 10)), v));
    EXPECT_FALSE(m(MatchType::RANGE, ConditionValue::range(ov(t, 11), ov(t, 12)), v));
    // 10 = 0b1010
    EXPECT_TRUE(m(MatchType::FLAGS_ALL_SET, u(t, 0b1010), v));
    EXPECT_FALSE(m(MatchType::FLAGS_ALL_SET, u(t, 0b1011), v));
    EXPECT_TRUE(m(MatchType::FLAGS_ANY_SET, u(t, 0b0011), v));
    EXPECT_FALSE(m(MatchType::FLAGS_ANY_SET, u(t, 0b0101), v));
    EXPECT_TRUE(m(MatchType::FLAGS_NONE_SET, u(t, 0b0101), v));
    EXPECT_FALSE(m(MatchType::FLAGS_NONE_SET, u(t, 0b0010), v));
  }
  // Types must match exactly, as in WFP: a UINT16 condition never matches a UINT32 value.
  EXPECT_FALSE(m(MatchType::EQUAL, u(DataType::UINT16, 10), Value::uint32(10)));
}

TEST(MatchTypes, V4AddressAndMask) {
  Value a = Value::uint32(*parse_ip4("192.0.2.77"));
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::v4_prefix(*parse_ip4("192.0.2.0"), 24), a));
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::v4_prefix(*parse_ip4("0.0.0.0"), 0), a));
  EXPECT_FALSE(m(MatchType::EQUAL, ConditionValue::v4_prefix(*parse_ip4("192.0.3.0"), 24), a));
  EXPECT_TRUE(m(MatchType::NOT_EQUAL, ConditionValue::v4_prefix(*parse_ip4("192.0.3.0"), 24), a));
  EXPECT_TRUE(m(MatchType::EQUAL, u(DataType::UINT32, *parse_ip4("192.0.2.77")), a));
  EXPECT_TRUE(m(MatchType::RANGE,
                ConditionValue::range(ov(DataType::UINT32, *parse_ip4("192.0.2.1")),
                                      ov(DataType::UINT32, *parse_ip4("192.0.2.100"))),
                a));
}

TEST(MatchTypes, V6AddressAndPrefix) {
  Value a = Value::ip6(*parse_ip6("2001:db8:1::42"));
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::v6_prefix_of(*parse_ip6("2001:db8::"), 32), a));
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::v6_prefix_of(*parse_ip6("2001:db8:1::"), 51), a));
  EXPECT_FALSE(m(MatchType::EQUAL, ConditionValue::v6_prefix_of(*parse_ip6("2001:db8:2::"), 48), a));
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::plain(oip6("2001:db8:1::42")), a));
  EXPECT_TRUE(m(MatchType::NOT_EQUAL, ConditionValue::plain(oip6("2001:db8:1::43")), a));
  EXPECT_TRUE(m(MatchType::GREATER, ConditionValue::plain(oip6("2001:db8:1::41")), a));
  EXPECT_TRUE(m(MatchType::LESS, ConditionValue::plain(oip6("2001:db8:1::43")), a));
  EXPECT_TRUE(m(MatchType::RANGE, ConditionValue::range(oip6("2001:db8::"), oip6("2001:db8:ffff::")), a));
  EXPECT_FALSE(m(MatchType::RANGE, ConditionValue::range(oip6("2001:db9::"), oip6("2001:dba::")), a));
}

TEST(MatchTypes, MacAddress) {
  Value a = Value::mac(*parse_mac("02:00:00:00:00:01"));
  OwnedValue c{DataType::BYTE_ARRAY6_TYPE};
  c.bytes = a.bytes;
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::plain(c), a));
  c.bytes[5] = 2;
  EXPECT_FALSE(m(MatchType::EQUAL, ConditionValue::plain(c), a));
  EXPECT_TRUE(m(MatchType::NOT_EQUAL, ConditionValue::plain(c), a));
}

TEST(MatchTypes, BlobsAndStrings) {
  for (auto t : {DataType::BYTE_BLOB_TYPE, DataType::UNICODE_STRING_TYPE}) {
    Value v{t};
    v.str = "/usr/bin/Curl";
    auto s = [&](std::string x) { return ConditionValue::plain(ostr(t, std::move(x))); };
    EXPECT_TRUE(m(MatchType::EQUAL, s("/usr/bin/Curl"), v));
    EXPECT_FALSE(m(MatchType::EQUAL, s("/usr/bin/curl"), v));
    EXPECT_TRUE(m(MatchType::EQUAL_CASE_INSENSITIVE, s("/USR/BIN/CURL"), v));
    EXPECT_FALSE(m(MatchType::EQUAL_CASE_INSENSITIVE, s("/usr/bin/curl2"), v));
    EXPECT_TRUE(m(MatchType::NOT_EQUAL, s("/usr/bin/wget"), v));
    // PREFIX is WFP's misnomer for "ends with".
    EXPECT_TRUE(m(MatchType::PREFIX, s("/Curl"), v));
    EXPECT_FALSE(m(MatchType::PREFIX, s("/usr"), v));
    EXPECT_TRUE(m(MatchType::NOT_PREFIX, s("/wget"), v));
    EXPECT_FALSE(m(MatchType::NOT_PREFIX, s("Curl"), v));
    EXPECT_TRUE(m(MatchType::GREATER, s("/usr/bin/A"), v));
    EXPECT_TRUE(m(MatchType::LESS, s("/usr/bin/D"), v));
    EXPECT_TRUE(m(MatchType::RANGE, ConditionValue::range(ostr(t, "/usr/bin/A"), ostr(t, "/usr/bin/Z")), v));
  }
}

TEST(MatchTypes, UserSets) {
  Token alice{1000, {1000, 27}};
  Value v = Value::user(alice);
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::user_set({{1000}, {}}), v));
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue::user_set({{}, {27}}), v));
  EXPECT_FALSE(m(MatchType::EQUAL, ConditionValue::user_set({{0}, {0}}), v));
  EXPECT_TRUE(m(MatchType::NOT_EQUAL, ConditionValue::user_set({{0}, {0}}), v));
}

TEST(MatchTypes, EmptyValues) {
  Value empty;
  EXPECT_TRUE(m(MatchType::EQUAL, ConditionValue{}, empty));
  EXPECT_FALSE(m(MatchType::EQUAL, ConditionValue{}, Value::uint8(6)));
  EXPECT_FALSE(m(MatchType::EQUAL, u(DataType::UINT8, 6), empty));
  EXPECT_FALSE(m(MatchType::NOT_EQUAL, u(DataType::UINT8, 6), empty));
  EXPECT_FALSE(m(MatchType::GREATER, u(DataType::UINT8, 0), empty));
}

TEST(Conditions, SameFieldOrDifferentFieldsAnd) {
  std::vector<Condition> conds = {eq(FieldId::IP_LOCAL_PORT, DataType::UINT16, 80),
                                  eq(FieldId::IP_PROTOCOL, DataType::UINT8, 6),
                                  eq(FieldId::IP_LOCAL_PORT, DataType::UINT16, 443)};
  // conditions_match expects them grouped by field, as the engine stores them.
  std::stable_sort(conds.begin(), conds.end(), [](auto& a, auto& b) { return a.field < b.field; });
  FieldValues v;
  v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(443));
  EXPECT_TRUE(conditions_match(conds, v));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(80));
  EXPECT_TRUE(conditions_match(conds, v));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(22));
  EXPECT_FALSE(conditions_match(conds, v));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(80));
  v.set(FieldId::IP_PROTOCOL, Value::uint8(17));
  EXPECT_FALSE(conditions_match(conds, v));
  EXPECT_TRUE(conditions_match({}, v));  // no conditions: always matches
}

ErrorCode validation_error(const Condition& c, LayerId l) {
  try {
    validate_condition(c, layer_info(l));
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::NOT_FOUND;  // "no error"
}

TEST(Conditions, Validation) {
  const auto V4 = LayerId::ALE_AUTH_CONNECT_V4, V6 = LayerId::ALE_AUTH_CONNECT_V6;
  const auto ok = ErrorCode::NOT_FOUND;
  EXPECT_EQ(validation_error(v4net(FieldId::IP_REMOTE_ADDRESS, "10.0.0.0", 8), V4), ok);
  EXPECT_EQ(validation_error(v4net(FieldId::IP_REMOTE_ADDRESS, "10.0.0.0", 8), V6), ErrorCode::TYPE_MISMATCH);
  EXPECT_EQ(validation_error(eq(FieldId::ETHER_TYPE, DataType::UINT16, 0x800), V4), ErrorCode::CONDITION_NOT_FOUND);
  EXPECT_EQ(validation_error(eq(FieldId::IP_REMOTE_PORT, DataType::UINT32, 80), V4), ErrorCode::TYPE_MISMATCH);
  EXPECT_EQ(validation_error(eq(FieldId::IP_PROTOCOL, DataType::UINT8, 300), V4), ErrorCode::TYPE_MISMATCH);
  EXPECT_EQ(validation_error(cond(FieldId::IP_REMOTE_PORT, MatchType::PREFIX, u(DataType::UINT16, 1)), V4),
            ErrorCode::MATCH_TYPE_MISMATCH);
  EXPECT_EQ(validation_error(cond(FieldId::IP_REMOTE_PORT, MatchType::RANGE, u(DataType::UINT16, 1)), V4),
            ErrorCode::MATCH_TYPE_MISMATCH);
  EXPECT_EQ(validation_error(port_range(FieldId::IP_REMOTE_PORT, 9, 1), V4), ErrorCode::INVALID_RANGE);
  ConditionValue bad_mask = ConditionValue::v4_prefix(0x0a000000, 8);
  bad_mask.v4_mask = 0xff00ff00;
  EXPECT_EQ(validation_error(cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, bad_mask), V4),
            ErrorCode::INVALID_NET_MASK);
  EXPECT_EQ(validation_error(cond(FieldId::ALE_USER_ID, MatchType::EQUAL, ConditionValue::user_set({{0}, {}})), V4), ok);
  EXPECT_EQ(validation_error(cond(FieldId::ALE_USER_ID, MatchType::GREATER, ConditionValue::user_set({{0}, {}})), V4),
            ErrorCode::MATCH_TYPE_MISMATCH);
  EXPECT_EQ(validation_error(cond(FieldId::ALE_APP_ID, MatchType::EQUAL_CASE_INSENSITIVE,
                                  ConditionValue::plain(ostr(DataType::BYTE_BLOB_TYPE, "/bin/x"))),
                             V4),
            ok);
  EXPECT_EQ(validation_error(cond(FieldId::FLAGS, MatchType::FLAGS_ANY_SET, u(DataType::UINT32, 1)), V4), ok);
  EXPECT_EQ(validation_error(cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL,
                                  ConditionValue::v6_prefix_of(*parse_ip6("2001:db8::"), 129)),
                             V6),
            ErrorCode::INVALID_NET_MASK);
}

}  // namespace
}  // namespace lfp
