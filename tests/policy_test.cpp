// SPDX-License-Identifier: MIT
// Policy files, requests and results: parsing with exact JSON paths for every error, every value
// kind and match type, round trips, all-or-nothing apply, classification through a parsed policy,
// and the shipped examples.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "lfp/engine/error.hpp"
#include "lfp/policy/policy.hpp"
#include "test_support.hpp"

namespace lfp::policy {
namespace {

using nlohmann::json;

constexpr const char* kProv = "11111111-1111-4111-8111-111111111111";
constexpr const char* kSub = "22222222-2222-4222-8222-222222222222";
constexpr const char* kCallout = "33333333-3333-4333-8333-333333333333";
constexpr const char* kCtx = "44444444-4444-4444-8444-444444444444";
constexpr const char* kF1 = "55555555-5555-4555-8555-555555555555";
constexpr const char* kF2 = "66666666-6666-4666-8666-666666666666";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The error a policy text gives (fails the test when it parses).
PolicyError parse_error(std::string_view text) {
  try {
    parse_policy(text);
  } catch (const PolicyError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for: " << text;
  return PolicyError("<none>", "<none>");
}

PolicyError apply_error(FilterEngine& e, std::string_view text) {
  Policy p = parse_policy(text);  // must parse
  try {
    apply_policy(e, p);
  } catch (const PolicyError& err) {
    return err;
  }
  ADD_FAILURE() << "no error applying: " << text;
  return PolicyError("<none>", "<none>");
}

// A policy with one filter at LAYER whose other members are given as JSON text.
std::string filter_policy(const std::string& layer, const std::string& members) {
  return R"({"filters": [{"name": "f", "layer": ")" + layer + R"(", "action": "BLOCK")" +
         (members.empty() ? "" : ", " + members) + "}]}";
}
// The same with one condition.
std::string cond_policy(const std::string& layer, const std::string& cond) {
  return filter_policy(layer, R"("conditions": [)" + cond + "]");
}

Condition only_condition(const std::string& layer, const std::string& cond) {
  Policy p = parse_policy(cond_policy(layer, cond));
  EXPECT_EQ(p.filters.size(), 1u);
  EXPECT_EQ(p.filters[0].conditions.size(), 1u);
  return p.filters[0].conditions.at(0);
}

#define EXPECT_POLICY_ERROR(text, want_path, reason_part)                             \
  do {                                                                                \
    PolicyError e_ = parse_error(text);                                               \
    EXPECT_EQ(e_.path(), want_path) << e_.what();                                     \
    EXPECT_NE(e_.reason().find(reason_part), std::string::npos) << e_.what();         \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Parse errors, each with its exact path

TEST(PolicyErrors, MalformedJson) {
  EXPECT_POLICY_ERROR("{", "", "malformed JSON");
  EXPECT_POLICY_ERROR("", "", "malformed JSON");
  EXPECT_POLICY_ERROR(R"({"filters": [}")", "", "malformed JSON");
  EXPECT_POLICY_ERROR("{\"a\": \"\xff\"}", "", "malformed JSON");  // invalid UTF-8
  EXPECT_POLICY_ERROR("[]", "", "expected a policy");
  EXPECT_POLICY_ERROR("42", "", "expected a policy");
  EXPECT_EQ(std::string(parse_error("[]").what()).substr(0, 3), "/: ");
}

TEST(PolicyErrors, DuplicateMember) {
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "a", "name": "b"}]})", "/filters/0/name", "duplicate member");
  EXPECT_POLICY_ERROR(R"({"providers": [], "providers": []})", "/providers", "duplicate member");
  EXPECT_POLICY_ERROR(
      R"({"filters": [{"name": "a", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"},
                      {"name": "b", "conditions": [[], {"field": "FLAGS", "field": "FLAGS"}]}]})",
      "/filters/1/conditions/1/field", "duplicate member");
  // The same name in different objects is fine.
  EXPECT_NO_THROW(parse_policy(R"({"providers": [{"name": "a"}, {"name": "b"}]})"));
}

TEST(PolicyErrors, UnknownMember) {
  EXPECT_POLICY_ERROR(R"({"filterz": []})", "/filterz", "unknown member");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("colour": "red")"), "/filters/0/colour", "unknown member");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V4", R"({"field": "IP_REMOTE_PORT", "valeu": 1})"),
                      "/filters/0/conditions/0/valeu", "unknown member");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": {"type": "BLOCK", "kind": 1}}]})",
                      "/filters/0/action/kind", "unknown member");
  EXPECT_POLICY_ERROR(R"({"providers": [{"name": "p", "weight": 1}]})", "/providers/0/weight", "unknown member");
  EXPECT_POLICY_ERROR(R"({"sublayers": [{"name": "s", "layer": "ALE_AUTH_CONNECT_V4"}]})", "/sublayers/0/layer", "unknown member");
  EXPECT_POLICY_ERROR(R"({"callouts": [{"name": "c", "layer": "ALE_AUTH_CONNECT_V4", "x": 1}]})", "/callouts/0/x", "unknown member");
  EXPECT_POLICY_ERROR(R"({"provider_contexts": [{"name": "c", "type": 1}]})", "/provider_contexts/0/type", "unknown member");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("weight": {"range": 1, "extra": 2})"),
                      "/filters/0/weight/extra", "unknown member");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V4",
                                  R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 1, "high": 2, "mid": 1}})"),
                      "/filters/0/conditions/0/value/mid", "unknown member");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V4", R"({"field": "ALE_USER_ID", "value": {"uids": [1], "sids": []}})"),
                      "/filters/0/conditions/0/value/sids", "unknown member");
  // Member names with '/' and '~' are escaped in the pointer (RFC 6901).
  EXPECT_POLICY_ERROR(R"({"a/b~c": 1})", "/a~1b~0c", "unknown member");
}

TEST(PolicyErrors, MissingOrMistypedMembers) {
  EXPECT_POLICY_ERROR(R"({"filters": [{"layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"}]})", "/filters/0/name", "required");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"}]})", "/filters/0/name", "empty");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "f", "action": "BLOCK"}]})", "/filters/0/layer", "required");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4"}]})", "/filters/0/action", "required");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": 7, "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"}]})", "/filters/0/name", "expected a string");
  EXPECT_POLICY_ERROR(R"({"filters": {}})", "/filters", "expected an array");
  EXPECT_POLICY_ERROR(R"({"filters": [7]})", "/filters/0", "expected a filter");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("conditions": {})"), "/filters/0/conditions", "expected an array");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V4", R"({"value": 1})"), "/filters/0/conditions/0/field", "required");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V4", R"({"field": "IP_REMOTE_PORT"})"), "/filters/0/conditions/0/value", "required");
  EXPECT_POLICY_ERROR(R"({"version": 2})", "/version", "unsupported format version 2");
  EXPECT_POLICY_ERROR(R"({"version": "1"})", "/version", "unsupported format version");
  EXPECT_POLICY_ERROR(R"({"callouts": [{"name": "c"}]})", "/callouts/0/layer", "required");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("provider_data": {"hex": "abc"})"), "/filters/0/provider_data/hex", "odd");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("provider_data": {"hex": "zz"})"), "/filters/0/provider_data/hex", "hex digit");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("raw_context": -1)"), "/filters/0/raw_context", "0..");
}

TEST(PolicyErrors, UnknownLayerAndField) {
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT", ""), "/filters/0/layer", "LAYER_NOT_FOUND");
  EXPECT_POLICY_ERROR(R"({"callouts": [{"name": "c", "layer": "NOPE"}]})", "/callouts/0/layer", "unknown layer");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V4", R"({"field": "IP_REMOTE_PROT", "value": 1})"),
                      "/filters/0/conditions/0/field", "unknown field");
  // A known field the layer does not offer.
  PolicyError e = parse_error(filter_policy(
      "INBOUND_TRANSPORT_V4",
      R"("conditions": [{"field": "IP_PROTOCOL", "value": "UDP"}, {"field": "ALE_APP_ID", "value": "/bin/x"}])"));
  EXPECT_EQ(e.path(), "/filters/0/conditions/1/field");
  EXPECT_NE(e.reason().find("CONDITION_NOT_FOUND"), std::string::npos) << e.what();
  EXPECT_NE(e.reason().find("INBOUND_TRANSPORT_V4"), std::string::npos) << e.what();
  EXPECT_POLICY_ERROR(cond_policy("INBOUND_MAC_FRAME_ETHERNET", R"({"field": "IP_REMOTE_ADDRESS", "value": "1.2.3.4"})"),
                      "/filters/0/conditions/0/field", "CONDITION_NOT_FOUND");
}

TEST(PolicyErrors, WrongValueKind) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  const std::string V = "/filters/0/conditions/0/value";
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": "http"})"), V, "UINT16");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": true})"), V, "UINT16");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": [1]})"), V, "UINT16");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": 1.5})"), V, "integer");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": -1})"), V, "0..65535");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": 70000})"), V, "0..65535");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": "70000"})"), V, "does not fit UINT16");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_PROTOCOL", "value": 256})"), V, "0..255");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_PROTOCOL", "value": "TPC"})"), V, "protocol name");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "FLAGS", "value": "IS_LOOPBACK|NOPE"})"), V, "flag names");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "2001:db8::1"})"), V, "IPv4");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "1.2.3"})"), V, "IPv4");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V6", R"({"field": "IP_REMOTE_ADDRESS", "value": "1.2.3.4"})"), V, "IPv6");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "ALE_USER_ID", "value": "1000"})"), V, "user set");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "ALE_USER_ID", "value": {"uids": [-1]}})"), V + "/uids/0", "uid");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "ALE_USER_ID", "value": {"uids": 5}})"), V + "/uids", "array");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "ALE_APP_ID", "value": 5})"), V, "string");
  EXPECT_POLICY_ERROR(cond_policy("INBOUND_MAC_FRAME_ETHERNET", R"({"field": "MAC_REMOTE_ADDRESS", "value": "00:11:22:33:44"})"), V, "MAC");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 1}})"), V + "/high", "both");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 1, "high": "x"}})"), V + "/high", "UINT16");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": 5})"), V, "takes a range");
}

TEST(PolicyErrors, MatchTypes) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  const std::string M = "/filters/0/conditions/0/match";
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": "SIMILAR", "value": 1})"), M, "unknown match type");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": 3, "value": 1})"), M, "match type name");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": "PREFIX", "value": 1})"), M, "MATCH_TYPE_MISMATCH");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "match": "FLAGS_ALL_SET", "value": "10.0.0.0/8"})"), M,
                      "MATCH_TYPE_MISMATCH");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "value": {"low": 1, "high": 2}})"), M, "MATCH_TYPE_MISMATCH");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "ALE_USER_ID", "match": "GREATER", "value": {"uids": [1]}})"), M,
                      "MATCH_TYPE_MISMATCH");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "ALE_APP_ID", "match": "FLAGS_ANY_SET", "value": "x"})"), M, "MATCH_TYPE_MISMATCH");
}

TEST(PolicyErrors, BadMasksAndRanges) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  const std::string V = "/filters/0/conditions/0/value";
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "10.0.0.0/33"})"), V, "INVALID_NET_MASK");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "10.0.0.0/"})"), V, "INVALID_NET_MASK");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "10.0.0.0/x"})"), V, "INVALID_NET_MASK");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "10.0.0.0/255.0.255.0"})"), V, "INVALID_NET_MASK");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "10.0.0/8"})"), V, "IPv4");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V6", R"({"field": "IP_REMOTE_ADDRESS", "value": "2001:db8::/129"})"), V,
                      "INVALID_NET_MASK");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V6", R"({"field": "IP_REMOTE_ADDRESS", "value": "2001:db8::/ff"})"), V,
                      "INVALID_NET_MASK");
  // Inverted ranges, for numbers and addresses.
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 100, "high": 10}})"), V,
                      "INVALID_RANGE");
  EXPECT_POLICY_ERROR(cond_policy(L, R"({"field": "IP_REMOTE_ADDRESS", "match": "RANGE", "value": {"low": "10.0.0.9", "high": "10.0.0.1"}})"),
                      V, "INVALID_RANGE");
  EXPECT_POLICY_ERROR(cond_policy("ALE_AUTH_CONNECT_V6",
                                  R"({"field": "IP_REMOTE_ADDRESS", "match": "RANGE", "value": {"low": "::2", "high": "::1"}})"),
                      V, "INVALID_RANGE");
}

TEST(PolicyErrors, BadGuids) {
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("key": "xyz")"), "/filters/0/key", "not a GUID");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("key": 5)"), "/filters/0/key", "GUID");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("sublayer": "22222222-2222-4222-8222-22222222222")"),
                      "/filters/0/sublayer", "not a GUID");
  EXPECT_POLICY_ERROR(filter_policy("ALE_AUTH_CONNECT_V4", R"("provider": "{11111111-1111-4111-8111-111111111111")"),
                      "/filters/0/provider", "not a GUID");
  EXPECT_POLICY_ERROR(R"({"sublayers": [{"name": "s", "provider": "p"}]})", "/sublayers/0/provider", "not a GUID");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": {"type": "CALLOUT_TERMINATING", "callout": "c"}}]})",
                      "/filters/0/action/callout", "not a GUID");
  EXPECT_POLICY_ERROR(R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": {"type": "PERMIT", "filter_type": "x"}}]})",
                      "/filters/0/action/filter_type", "not a GUID");
  // Braces are optional.
  Policy p = parse_policy(filter_policy("ALE_AUTH_CONNECT_V4", R"("key": "{55555555-5555-4555-8555-555555555555}")"));
  EXPECT_EQ(p.filters[0].key, *Guid::parse(kF1));
}

TEST(PolicyErrors, BadWeights) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": {"range": 16})"), "/filters/0/weight/range", "INVALID_WEIGHT");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": -1)"), "/filters/0/weight", "weight");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": 1.5)"), "/filters/0/weight", "weight");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": 18446744073709551616)"), "/filters/0/weight", "weight");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": true)"), "/filters/0/weight", "expected a weight");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": {"range": 1, "explicit": 2})"), "/filters/0/weight", "exactly one");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": {})"), "/filters/0/weight", "exactly one");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("weight": {"explicit": -5})"), "/filters/0/weight/explicit", "weight");
  EXPECT_POLICY_ERROR(R"({"sublayers": [{"name": "s", "weight": 70000}]})", "/sublayers/0/weight", "0..65535");
  EXPECT_POLICY_ERROR(R"({"sublayers": [{"name": "s", "weight": -1}]})", "/sublayers/0/weight", "0..65535");
}

TEST(PolicyErrors, BadFlagsAndActions) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": ["NOPE"])"), "/filters/0/flags/0", "unknown flag");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": ["DISABLED", 3])"), "/filters/0/flags/1", "flag name");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": "DISABLED")"), "/filters/0/flags", "array");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": ["USES_PROVIDER_CONTEXT"])"), "/filters/0/flags/0", "INVALID_FLAGS");
  EXPECT_POLICY_ERROR(R"({"providers": [{"name": "p", "flags": ["BOOTTIME"]}]})", "/providers/0/flags/0", "INVALID_FLAGS");
  EXPECT_POLICY_ERROR(R"({"sublayers": [{"name": "s", "flags": ["PERSISTENT", "DISABLED"]}]})", "/sublayers/0/flags/1", "INVALID_FLAGS");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": ["PERSISTENT", "BOOTTIME"])"), "/filters/0/flags", "INVALID_FLAGS");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": ["PERMIT_IF_CALLOUT_UNREGISTERED"])"), "/filters/0/flags", "INVALID_FLAGS");
  EXPECT_POLICY_ERROR(filter_policy(L, R"("flags": ["HAS_PROVIDER_CONTEXT"])"), "/filters/0/provider_context", "HAS_PROVIDER_CONTEXT");
  EXPECT_POLICY_ERROR(filter_policy(L, std::string(R"("provider_context": ")") + kCtx + "\""), "/filters/0/provider_context",
                      "HAS_PROVIDER_CONTEXT");
  auto action = [](const std::string& a) {
    return R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": )" + a + "}]}";
  };
  EXPECT_POLICY_ERROR(action(R"("DENY")"), "/filters/0/action", "INVALID_ACTION_TYPE");
  EXPECT_POLICY_ERROR(action(R"("CALLOUT_TERMINATING")"), "/filters/0/action", "needs its callout");
  EXPECT_POLICY_ERROR(action(R"({"type": "ALLOW"})"), "/filters/0/action/type", "INVALID_ACTION_TYPE");
  EXPECT_POLICY_ERROR(action(R"({"callout": "33333333-3333-4333-8333-333333333333"})"), "/filters/0/action/type", "required");
  EXPECT_POLICY_ERROR(action(R"({"type": "CALLOUT_INSPECTION"})"), "/filters/0/action/callout", "required");
  EXPECT_POLICY_ERROR(action(R"({"type": "BLOCK", "callout": "33333333-3333-4333-8333-333333333333"})"),
                      "/filters/0/action/callout", "only callout actions");
  EXPECT_POLICY_ERROR(
      action(R"({"type": "CALLOUT_UNKNOWN", "callout": "33333333-3333-4333-8333-333333333333", "filter_type": "33333333-3333-4333-8333-333333333333"})"),
      "/filters/0/action/filter_type", "only BLOCK and PERMIT");
  EXPECT_POLICY_ERROR(action("7"), "/filters/0/action", "expected an action");
}

TEST(PolicyErrors, DuplicateKeysInOneFile) {
  std::string text = std::string(R"({"filters": [)") + R"({"key": ")" + kF1 +
                     R"(", "name": "a", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"},)" + R"({"key": ")" + kF2 +
                     R"(", "name": "b", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"},)" + R"({"key": ")" + kF1 +
                     R"(", "name": "c", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"}]})";
  PolicyError e = parse_error(text);
  EXPECT_EQ(e.path(), "/filters/2/key");
  EXPECT_NE(e.reason().find("ALREADY_EXISTS"), std::string::npos);
  EXPECT_NE(e.reason().find("/filters/0"), std::string::npos);
  // Different kinds may share a GUID (as in WFP: separate object stores); keyless objects never clash.
  EXPECT_NO_THROW(parse_policy(std::string(R"({"providers": [{"key": ")") + kF1 + R"(", "name": "p"}, {"name": "q"}, {"name": "r"}],
      "sublayers": [{"key": ")" + kF1 + R"(", "name": "s"}]})"));
}

// ---------------------------------------------------------------------------------------------
// Values and match types

TEST(PolicyValues, Ipv4Forms) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  Condition c = only_condition(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "192.0.2.7"})");
  EXPECT_EQ(c.field, FieldId::IP_REMOTE_ADDRESS);
  EXPECT_EQ(c.match, MatchType::EQUAL);
  EXPECT_EQ(c.value, ConditionValue::uint(DataType::UINT32, 0xC0000207));
  c = only_condition(L, R"({"field": "IP_REMOTE_ADDRESS", "value": 3221225991})");
  EXPECT_EQ(c.value, ConditionValue::uint(DataType::UINT32, 0xC0000207));
  c = only_condition(L, R"({"field": "IP_LOCAL_ADDRESS", "value": "192.0.2.0/24"})");
  EXPECT_EQ(c.value, ConditionValue::v4_prefix(0xC0000200, 24));
  EXPECT_EQ(c.value.type, DataType::V4_ADDR_MASK);
  c = only_condition(L, R"({"field": "IP_LOCAL_ADDRESS", "value": "192.0.2.0/255.255.255.0"})");
  EXPECT_EQ(c.value, ConditionValue::v4_prefix(0xC0000200, 24));
  c = only_condition(L, R"({"field": "IP_LOCAL_ADDRESS", "value": "0.0.0.0/0"})");
  EXPECT_EQ(c.value, ConditionValue::v4_prefix(0, 0));
  c = only_condition(L, R"({"field": "IP_REMOTE_ADDRESS", "match": "RANGE", "value": {"low": "10.0.0.1", "high": "10.0.0.9"}})");
  EXPECT_EQ(c.value, ConditionValue::range(OwnedValue{DataType::UINT32, 0x0A000001}, OwnedValue{DataType::UINT32, 0x0A000009}));
  c = only_condition("IPFORWARD_V4", R"({"field": "IP_SOURCE_ADDRESS", "match": "NOT_EQUAL", "value": "10.0.0.0/8"})");
  EXPECT_EQ(c.match, MatchType::NOT_EQUAL);
  EXPECT_EQ(c.value, ConditionValue::v4_prefix(0x0A000000, 8));
}

TEST(PolicyValues, Ipv6Forms) {
  const std::string L = "ALE_AUTH_CONNECT_V6";
  Condition c = only_condition(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "2001:db8::1"})");
  EXPECT_EQ(c.value.type, DataType::BYTE_ARRAY16_TYPE);
  EXPECT_EQ(c.value.value.bytes, *parse_ip6("2001:db8::1"));
  c = only_condition(L, R"({"field": "IP_REMOTE_ADDRESS", "value": "2001:db8::/32"})");
  EXPECT_EQ(c.value, ConditionValue::v6_prefix_of(*parse_ip6("2001:db8::"), 32));
  c = only_condition(L, R"({"field": "IP_LOCAL_ADDRESS", "match": "RANGE", "value": {"low": "::1", "high": "::ff"}})");
  EXPECT_EQ(c.value.type, DataType::RANGE_TYPE);
  EXPECT_EQ(c.value.value.type, DataType::BYTE_ARRAY16_TYPE);
  EXPECT_EQ(c.value.high.bytes, *parse_ip6("::ff"));
  c = only_condition(L, R"({"field": "IP_LOCAL_ADDRESS", "match": "GREATER", "value": "fe80::"})");
  EXPECT_EQ(c.match, MatchType::GREATER);
}

TEST(PolicyValues, Integers) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  EXPECT_EQ(only_condition(L, R"({"field": "IP_PROTOCOL", "value": 6})").value, ConditionValue::uint(DataType::UINT8, 6));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_PROTOCOL", "value": "TCP"})").value, ConditionValue::uint(DataType::UINT8, 6));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_PROTOCOL", "value": "udp"})").value, ConditionValue::uint(DataType::UINT8, 17));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_PROTOCOL", "value": "0x11"})").value, ConditionValue::uint(DataType::UINT8, 17));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_REMOTE_PORT", "value": 443})").value, ConditionValue::uint(DataType::UINT16, 443));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_REMOTE_PORT", "value": "65535"})").value,
            ConditionValue::uint(DataType::UINT16, 65535));
  EXPECT_EQ(only_condition(L, R"({"field": "FLAGS", "match": "FLAGS_ALL_SET", "value": "IS_LOOPBACK|IS_REAUTHORIZE|0x20"})").value,
            ConditionValue::uint(DataType::UINT32, 0x25));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_LOCAL_INTERFACE", "value": 18446744073709551615})").value,
            ConditionValue::uint(DataType::UINT64, UINT64_MAX));
  EXPECT_EQ(only_condition(L, R"({"field": "IP_LOCAL_INTERFACE", "value": "0xffffffffffffffff"})").value,
            ConditionValue::uint(DataType::UINT64, UINT64_MAX));
  EXPECT_EQ(only_condition("ALE_FLOW_ESTABLISHED_V4", R"({"field": "DIRECTION", "value": "INBOUND"})").value,
            ConditionValue::uint(DataType::UINT32, DIRECTION_INBOUND));
  Condition r = only_condition(L, R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": "1024", "high": 65535}})");
  EXPECT_EQ(r.value, ConditionValue::range(OwnedValue{DataType::UINT16, 1024}, OwnedValue{DataType::UINT16, 65535}));
}

TEST(PolicyValues, MacBlobsUsersEmpty) {
  const std::string M = "INBOUND_MAC_FRAME_ETHERNET";
  Condition c = only_condition(M, R"({"field": "MAC_REMOTE_ADDRESS", "value": "00:1A:2b:3c:4d:5e"})");
  EXPECT_EQ(c.value.type, DataType::BYTE_ARRAY6_TYPE);
  EXPECT_EQ(format_mac(c.value.value.bytes), "00:1a:2b:3c:4d:5e");
  EXPECT_EQ(only_condition(M, R"({"field": "ETHER_TYPE", "value": "IPV6"})").value, ConditionValue::uint(DataType::UINT16, 0x86DD));
  EXPECT_EQ(only_condition(M, R"({"field": "VLAN_ID", "match": "LESS", "value": 100})").match, MatchType::LESS);

  const std::string L = "ALE_AUTH_CONNECT_V4";
  c = only_condition(L, R"({"field": "ALE_APP_ID", "value": "/usr/bin/curl"})");
  EXPECT_EQ(c.value.type, DataType::BYTE_BLOB_TYPE);
  EXPECT_EQ(c.value.value.str, "/usr/bin/curl");
  c = only_condition(L, R"({"field": "ALE_APP_ID", "match": "PREFIX", "value": {"hex": "2f6e63ff"}})");
  EXPECT_EQ(c.value.value.str, std::string("/nc\xff"));
  c = only_condition(L, R"({"field": "CGROUP_PATH", "match": "EQUAL_CASE_INSENSITIVE", "value": "/system.slice/Foo.service"})");
  EXPECT_EQ(c.field, FieldId::CGROUP_PATH);
  EXPECT_EQ(c.match, MatchType::EQUAL_CASE_INSENSITIVE);

  c = only_condition(L, R"({"field": "ALE_USER_ID", "value": {"uids": [1000, 1001], "gids": [27]}})");
  EXPECT_EQ(c.value.type, DataType::SECURITY_DESCRIPTOR_TYPE);
  EXPECT_EQ(c.value.users, (UserSet{{1000, 1001}, {27}}));
  c = only_condition(L, R"({"field": "ALE_USER_ID", "match": "NOT_EQUAL", "value": {"gids": [0]}})");
  EXPECT_EQ(c.value.users, (UserSet{{}, {0}}));

  c = only_condition(L, R"({"field": "ALE_APP_ID", "value": null})");
  EXPECT_EQ(c.value.type, DataType::EMPTY);
}

TEST(PolicyValues, EveryMatchType) {
  struct Case {
    const char* cond;
    MatchType want;
  };
  const Case cases[] = {
      {R"({"field": "IP_REMOTE_PORT", "match": "EQUAL", "value": 1})", MatchType::EQUAL},
      {R"({"field": "IP_REMOTE_PORT", "match": "GREATER", "value": 1})", MatchType::GREATER},
      {R"({"field": "IP_REMOTE_PORT", "match": "LESS", "value": 1})", MatchType::LESS},
      {R"({"field": "IP_REMOTE_PORT", "match": "GREATER_OR_EQUAL", "value": 1})", MatchType::GREATER_OR_EQUAL},
      {R"({"field": "IP_REMOTE_PORT", "match": "LESS_OR_EQUAL", "value": 1})", MatchType::LESS_OR_EQUAL},
      {R"({"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 1, "high": 2}})", MatchType::RANGE},
      {R"({"field": "FLAGS", "match": "FLAGS_ALL_SET", "value": "IS_LOOPBACK"})", MatchType::FLAGS_ALL_SET},
      {R"({"field": "FLAGS", "match": "FLAGS_ANY_SET", "value": "IS_LOOPBACK"})", MatchType::FLAGS_ANY_SET},
      {R"({"field": "FLAGS", "match": "FLAGS_NONE_SET", "value": "IS_LOOPBACK"})", MatchType::FLAGS_NONE_SET},
      {R"({"field": "ALE_APP_ID", "match": "EQUAL_CASE_INSENSITIVE", "value": "/A"})", MatchType::EQUAL_CASE_INSENSITIVE},
      {R"({"field": "IP_REMOTE_PORT", "match": "NOT_EQUAL", "value": 1})", MatchType::NOT_EQUAL},
      {R"({"field": "ALE_APP_ID", "match": "PREFIX", "value": "/curl"})", MatchType::PREFIX},
      {R"({"field": "ALE_APP_ID", "match": "NOT_PREFIX", "value": "/curl"})", MatchType::NOT_PREFIX},
  };
  for (const Case& c : cases) EXPECT_EQ(only_condition("ALE_AUTH_CONNECT_V4", c.cond).match, c.want) << c.cond;
}

TEST(PolicyValues, WeightsFlagsActionsObjects) {
  const std::string L = "ALE_AUTH_CONNECT_V4";
  auto weight = [&](const std::string& w) { return parse_policy(filter_policy(L, R"("weight": )" + w)).filters[0].weight; };
  EXPECT_EQ(parse_policy(filter_policy(L, "")).filters[0].weight.kind, Weight::Kind::EMPTY);
  EXPECT_EQ(weight("null").kind, Weight::Kind::EMPTY);
  EXPECT_EQ(weight("7").kind, Weight::Kind::RANGE_INDEX);
  EXPECT_EQ(weight("7").value, 7u);
  EXPECT_EQ(weight("15").kind, Weight::Kind::RANGE_INDEX);
  EXPECT_EQ(weight("16").kind, Weight::Kind::EXPLICIT);
  EXPECT_EQ(weight("16").value, 16u);
  EXPECT_EQ(weight(R"({"range": 3})").kind, Weight::Kind::RANGE_INDEX);
  EXPECT_EQ(weight(R"({"explicit": 3})").kind, Weight::Kind::EXPLICIT);
  EXPECT_EQ(weight(R"({"explicit": 3})").value, 3u);
  EXPECT_EQ(weight(R"("0xffffffffffffffff")").value, UINT64_MAX);

  Policy p = parse_policy(std::string(R"({
    "providers": [{"key": ")") + kProv + R"(", "name": "p", "description": "d", "flags": ["PERSISTENT"],
                   "service_name": "svc", "data": {"hex": "00ff"}}],
    "sublayers": [{"key": ")" + kSub + R"(", "name": "s", "provider": ")" + kProv + R"(", "weight": 65535, "data": "x"}],
    "callouts": [{"key": ")" + kCallout + R"(", "name": "c", "flags": ["USES_PROVIDER_CONTEXT"], "layer": "STREAM_V6"}],
    "provider_contexts": [{"key": ")" + kCtx + R"(", "name": "ctx", "data": "config"}],
    "filters": [{"name": "f", "layer": "STREAM_V6", "provider_data": "pd", "raw_context": 42,
                 "action": {"type": "CALLOUT_UNKNOWN", "callout": ")" + kCallout + R"("},
                 "flags": ["HAS_PROVIDER_CONTEXT", "PERMIT_IF_CALLOUT_UNREGISTERED", "DISABLED", "INDEXED", "BOOTTIME"],
                 "provider_context": ")" + kCtx + R"("},
                {"name": "g", "layer": "STREAM_V4", "action": {"type": "PERMIT", "filter_type": ")" + kF1 + R"("}}]})");
  ASSERT_EQ(p.providers.size(), 1u);
  EXPECT_EQ(p.providers[0].key, *Guid::parse(kProv));
  EXPECT_EQ(p.providers[0].display.description, "d");
  EXPECT_EQ(p.providers[0].flags, PERSISTENT);
  EXPECT_EQ(p.providers[0].service_name, "svc");
  EXPECT_EQ(p.providers[0].data, std::string("\x00\xff", 2));
  EXPECT_EQ(p.sublayers[0].weight, 65535);
  EXPECT_EQ(p.sublayers[0].provider, Guid::parse(kProv));
  EXPECT_EQ(p.callouts[0].applicable_layer, LayerId::STREAM_V6);
  EXPECT_EQ(p.callouts[0].flags, USES_PROVIDER_CONTEXT);
  EXPECT_EQ(p.provider_contexts[0].data, "config");
  const Filter& f = p.filters[0];
  EXPECT_TRUE(f.key.is_nil());
  EXPECT_EQ(f.action.type, ActionType::CALLOUT_UNKNOWN);
  EXPECT_EQ(f.action.callout_key, *Guid::parse(kCallout));
  EXPECT_EQ(f.flags, HAS_PROVIDER_CONTEXT | PERMIT_IF_CALLOUT_UNREGISTERED | DISABLED | INDEXED | BOOTTIME);
  EXPECT_EQ(f.provider_context, Guid::parse(kCtx));
  EXPECT_EQ(f.raw_context, 42u);
  EXPECT_EQ(f.provider_data, "pd");
  EXPECT_FALSE(f.sublayer.has_value());
  EXPECT_EQ(p.filters[1].action.type, ActionType::PERMIT);
  EXPECT_EQ(p.filters[1].action.filter_type, Guid::parse(kF1));
}

// ---------------------------------------------------------------------------------------------
// Round trips

void expect_same(const DisplayData& a, const DisplayData& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.description, b.description);
}

// Every member a policy file carries (run-time ids excluded).
void expect_same(const Policy& a, const Policy& b) {
  ASSERT_EQ(a.providers.size(), b.providers.size());
  for (size_t i = 0; i < a.providers.size(); ++i) {
    const auto &x = a.providers[i], &y = b.providers[i];
    EXPECT_EQ(x.key, y.key);
    expect_same(x.display, y.display);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.service_name, y.service_name);
    EXPECT_EQ(x.data, y.data);
  }
  ASSERT_EQ(a.sublayers.size(), b.sublayers.size());
  for (size_t i = 0; i < a.sublayers.size(); ++i) {
    const auto &x = a.sublayers[i], &y = b.sublayers[i];
    EXPECT_EQ(x.key, y.key);
    expect_same(x.display, y.display);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.provider, y.provider);
    EXPECT_EQ(x.weight, y.weight);
    EXPECT_EQ(x.data, y.data);
  }
  ASSERT_EQ(a.callouts.size(), b.callouts.size());
  for (size_t i = 0; i < a.callouts.size(); ++i) {
    const auto &x = a.callouts[i], &y = b.callouts[i];
    EXPECT_EQ(x.key, y.key);
    expect_same(x.display, y.display);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.provider, y.provider);
    EXPECT_EQ(x.applicable_layer, y.applicable_layer);
    EXPECT_EQ(x.data, y.data);
  }
  ASSERT_EQ(a.provider_contexts.size(), b.provider_contexts.size());
  for (size_t i = 0; i < a.provider_contexts.size(); ++i) {
    const auto &x = a.provider_contexts[i], &y = b.provider_contexts[i];
    EXPECT_EQ(x.key, y.key);
    expect_same(x.display, y.display);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.provider, y.provider);
    EXPECT_EQ(x.data, y.data);
  }
  ASSERT_EQ(a.filters.size(), b.filters.size());
  for (size_t i = 0; i < a.filters.size(); ++i) {
    const auto &x = a.filters[i], &y = b.filters[i];
    EXPECT_EQ(x.key, y.key);
    expect_same(x.display, y.display);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.provider, y.provider);
    EXPECT_EQ(x.provider_data, y.provider_data);
    EXPECT_EQ(x.layer, y.layer);
    EXPECT_EQ(x.sublayer, y.sublayer);
    EXPECT_EQ(x.weight.kind, y.weight.kind);
    EXPECT_EQ(x.weight.value, y.weight.value);
    EXPECT_EQ(x.conditions, y.conditions) << "filter " << i;
    EXPECT_EQ(x.action.type, y.action.type);
    if (is_callout(x.action.type)) EXPECT_EQ(x.action.callout_key, y.action.callout_key);
    EXPECT_EQ(x.action.filter_type, y.action.filter_type);
    EXPECT_EQ(x.provider_context, y.provider_context);
    EXPECT_EQ(x.raw_context, y.raw_context);
  }
}

Policy round_trip(const Policy& p) { return parse_policy(to_json(p).dump()); }

// A policy built in code holding every object kind, member and value kind.
Policy everything() {
  using test::cond;
  Policy p;
  Provider prov;
  prov.key = *Guid::parse(kProv);
  prov.display = {"prov", "a \"quoted\" description / with slash"};
  prov.flags = PERSISTENT;
  prov.service_name = "lfpd";
  prov.data = std::string("\x00\x01\xfe\xff", 4);  // not UTF-8: written as hex
  p.providers.push_back(prov);
  Sublayer sub;
  sub.key = *Guid::parse(kSub);
  sub.display = {"sub", ""};
  sub.flags = PERSISTENT;
  sub.provider = prov.key;
  sub.weight = 0xC000;
  sub.data = "sublayer data";
  p.sublayers.push_back(sub);
  Callout co;
  co.key = *Guid::parse(kCallout);
  co.display = {"callout", "inspects"};
  co.flags = USES_PROVIDER_CONTEXT;
  co.provider = prov.key;
  co.applicable_layer = LayerId::ALE_AUTH_CONNECT_V4;
  co.data = "x";
  p.callouts.push_back(co);
  ProviderContext ctx;
  ctx.key = *Guid::parse(kCtx);
  ctx.display = {"ctx", ""};
  ctx.provider = prov.key;
  ctx.data = "{\"config\": true}";
  p.provider_contexts.push_back(ctx);

  auto u = [](DataType t, uint64_t v) { return ConditionValue::uint(t, v); };
  auto owned = [](DataType t, uint64_t v) { return OwnedValue{t, v}; };
  OwnedValue blob;
  blob.type = DataType::BYTE_BLOB_TYPE;
  blob.str = "/usr/bin/curl";
  OwnedValue bin_blob = blob;
  bin_blob.str = std::string("/bin/\xc3\x28", 7);  // invalid UTF-8
  OwnedValue v6a, v6b;
  v6a.type = v6b.type = DataType::BYTE_ARRAY16_TYPE;
  v6a.bytes = *parse_ip6("2001:db8::1");
  v6b.bytes = *parse_ip6("2001:db8::ff");
  OwnedValue mac;
  mac.type = DataType::BYTE_ARRAY6_TYPE;
  auto m = *parse_mac("00:11:22:33:44:55");
  std::copy(m.begin(), m.end(), mac.bytes.begin());

  Filter f4;
  f4.key = *Guid::parse(kF1);
  f4.display = {"v4 everything", "desc"};
  f4.flags = CLEAR_ACTION_RIGHT | HAS_PROVIDER_CONTEXT | PERMIT_IF_CALLOUT_UNREGISTERED | INDEXED | BOOTTIME;
  f4.provider = prov.key;
  f4.provider_data = std::string("\x80", 1);
  f4.layer = LayerId::ALE_AUTH_CONNECT_V4;
  f4.sublayer = sub.key;
  f4.weight = Weight::explicit_weight(3);  // small explicit: needs the {"explicit": N} form
  f4.action.type = ActionType::CALLOUT_TERMINATING;
  f4.action.callout_key = co.key;
  f4.provider_context = ctx.key;
  f4.raw_context = UINT64_MAX;
  f4.conditions = {
      cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, u(DataType::UINT32, 0xC0000207)),
      cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::v4_prefix(0xC6336400, 24)),
      cond(FieldId::IP_LOCAL_ADDRESS, MatchType::RANGE,
           ConditionValue::range(owned(DataType::UINT32, 1), owned(DataType::UINT32, 0xFFFFFFFF))),
      cond(FieldId::IP_REMOTE_PORT, MatchType::RANGE,
           ConditionValue::range(owned(DataType::UINT16, 1024), owned(DataType::UINT16, 65535))),
      cond(FieldId::IP_LOCAL_PORT, MatchType::GREATER_OR_EQUAL, u(DataType::UINT16, 1)),
      cond(FieldId::IP_PROTOCOL, MatchType::NOT_EQUAL, u(DataType::UINT8, 255)),
      cond(FieldId::FLAGS, MatchType::FLAGS_NONE_SET, u(DataType::UINT32, 0x21)),
      cond(FieldId::IP_LOCAL_INTERFACE, MatchType::LESS, u(DataType::UINT64, UINT64_MAX)),
      cond(FieldId::ALE_APP_ID, MatchType::EQUAL_CASE_INSENSITIVE, ConditionValue::plain(blob)),
      cond(FieldId::ALE_APP_ID, MatchType::PREFIX, ConditionValue::plain(bin_blob)),
      cond(FieldId::ALE_APP_ID, MatchType::EQUAL, ConditionValue{}),  // EMPTY
      cond(FieldId::ALE_USER_ID, MatchType::EQUAL, ConditionValue::user_set({{1000, 0}, {27}})),
      cond(FieldId::ALE_USER_ID, MatchType::NOT_EQUAL, ConditionValue::user_set({})),
      cond(FieldId::CGROUP_PATH, MatchType::NOT_PREFIX, ConditionValue::plain(blob)),
  };
  p.filters.push_back(f4);

  Filter f6;
  f6.key = *Guid::parse(kF2);
  f6.display = {"v6", ""};
  f6.layer = LayerId::ALE_AUTH_CONNECT_V6;
  f6.weight = Weight::explicit_weight(UINT64_MAX);
  f6.action.type = ActionType::PERMIT;
  f6.action.filter_type = *Guid::parse(kF1);
  f6.conditions = {
      cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::plain(v6a)),
      cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::v6_prefix_of(v6a.bytes, 64)),
      cond(FieldId::IP_LOCAL_ADDRESS, MatchType::RANGE, ConditionValue::range(v6a, v6b)),
      cond(FieldId::IP_LOCAL_ADDRESS, MatchType::LESS_OR_EQUAL, ConditionValue::plain(v6b)),
  };
  p.filters.push_back(f6);

  Filter fm;  // keyless, range weight, MAC layer
  fm.display = {"mac", ""};
  fm.layer = LayerId::OUTBOUND_MAC_FRAME_ETHERNET;
  fm.weight = Weight::range_index(15);
  fm.flags = DISABLED;
  fm.action.type = ActionType::BLOCK;
  fm.conditions = {
      cond(FieldId::MAC_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::plain(mac)),
      cond(FieldId::ETHER_TYPE, MatchType::GREATER, u(DataType::UINT16, 0x0800)),
      cond(FieldId::VLAN_ID, MatchType::FLAGS_ANY_SET, u(DataType::UINT16, 0x0fff)),
  };
  p.filters.push_back(fm);

  Filter fr;  // range weight 0 and the two other callout kinds
  fr.display = {"inspect", ""};
  fr.layer = LayerId::ALE_AUTH_CONNECT_V4;
  fr.weight = Weight::range_index(0);
  fr.action.type = ActionType::CALLOUT_INSPECTION;
  fr.action.callout_key = co.key;
  p.filters.push_back(fr);
  fr.display.name = "unknown";
  fr.weight = Weight::explicit_weight(16);
  fr.action.type = ActionType::CALLOUT_UNKNOWN;
  p.filters.push_back(fr);
  return p;
}

TEST(PolicyRoundTrip, EveryMemberAndValueKind) {
  Policy p = everything();
  // Every condition is valid where it stands (the round trip would catch nothing otherwise).
  for (const Filter& f : p.filters)
    for (const Condition& c : f.conditions) EXPECT_NO_THROW(validate_condition(c, layer_info(f.layer))) << f.display.name;
  json j = to_json(p);
  Policy q = parse_policy(j.dump());
  expect_same(p, q);
  EXPECT_EQ(to_json(q), j);
  // Some forms, as documented.
  EXPECT_EQ(j["providers"][0]["data"], json({{"hex", "0001feff"}}));
  EXPECT_EQ(j["filters"][0]["weight"], json({{"explicit", 3}}));
  EXPECT_EQ(j["filters"][1]["weight"], json(UINT64_MAX));
  EXPECT_EQ(j["filters"][2]["weight"], json(15));
  EXPECT_TRUE(j["filters"][2]["key"].is_null());
  EXPECT_EQ(j["filters"][0]["conditions"][0]["value"], "192.0.2.7");
  EXPECT_EQ(j["filters"][0]["conditions"][1]["value"], "198.51.100.0/24");
  EXPECT_EQ(j["filters"][0]["conditions"][3]["value"], json({{"low", 1024}, {"high", 65535}}));
  EXPECT_EQ(j["filters"][1]["conditions"][1]["value"], "2001:db8::1/64");
  EXPECT_EQ(j["filters"][2]["conditions"][0]["value"], "00:11:22:33:44:55");
  EXPECT_EQ(j["filters"][0]["conditions"][11]["value"], json({{"uids", {1000, 0}}, {"gids", {27}}}));
  EXPECT_TRUE(j["filters"][0]["conditions"][10]["value"].is_null());
  EXPECT_EQ(j["version"], 1);
  // Single objects have the same form.
  EXPECT_EQ(to_json(p.filters[0]), j["filters"][0]);
  EXPECT_EQ(to_json(p.sublayers[0]), j["sublayers"][0]);
}

TEST(PolicyRoundTrip, ExampleAndExport) {
  Policy demo = parse_policy(read_file(std::string(LFP_SOURCE_DIR) + "/examples/demo-policy.json"));
  expect_same(demo, round_trip(demo));

  // Export: what the engine holds, without the built-in sublayers, in a stable order; applying it
  // to a fresh engine gives the same state.
  FilterEngine e1;
  apply_policy(e1, demo);
  Policy ex1 = export_policy(e1);
  EXPECT_EQ(ex1.sublayers.size(), 2u);
  EXPECT_EQ(ex1.filters.size(), demo.filters.size());
  for (const Filter& f : ex1.filters) {
    EXPECT_NE(f.id, 0u);
    ASSERT_TRUE(f.sublayer.has_value());
  }
  json j1 = to_json(ex1);
  EXPECT_TRUE(j1["filters"][0].contains("id"));
  EXPECT_TRUE(j1["filters"][0].contains("effective_weight"));
  EXPECT_EQ(to_json(export_policy(e1)), j1);  // stable

  FilterEngine e2;
  apply_policy(e2, parse_policy(j1.dump()));
  json j2 = to_json(export_policy(e2));
  auto strip_ids = [](json j) {
    for (auto& f : j["filters"]) f.erase("id");
    return j;
  };
  EXPECT_EQ(strip_ids(j1), strip_ids(j2));
}

// ---------------------------------------------------------------------------------------------
// Apply

std::string demo_objects() {
  return std::string(R"("providers": [{"key": ")") + kProv + R"(", "name": "p"}],
    "sublayers": [{"key": ")" + kSub + R"(", "name": "s", "provider": ")" + kProv + R"(", "weight": 100}],
    "callouts": [{"key": ")" + kCallout + R"(", "name": "c", "layer": "ALE_AUTH_CONNECT_V4"}])";
}

TEST(PolicyApply, UnknownReferences) {
  FilterEngine e;
  auto err = [&](const std::string& text) { return apply_error(e, text); };
  PolicyError x = err(filter_policy("ALE_AUTH_CONNECT_V4", std::string(R"("sublayer": ")") + kSub + "\""));
  EXPECT_EQ(x.path(), "/filters/0/sublayer");
  EXPECT_NE(x.reason().find("SUBLAYER_NOT_FOUND"), std::string::npos) << x.what();
  x = err(filter_policy("ALE_AUTH_CONNECT_V4", std::string(R"("provider": ")") + kProv + "\""));
  EXPECT_EQ(x.path(), "/filters/0/provider");
  EXPECT_NE(x.reason().find("PROVIDER_NOT_FOUND"), std::string::npos);
  x = err(std::string(R"({"sublayers": [{"name": "s", "provider": ")") + kProv + R"("}]})");
  EXPECT_EQ(x.path(), "/sublayers/0/provider");
  x = err(std::string(R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": {"type": "CALLOUT_TERMINATING", "callout": ")") +
          kCallout + R"("}}]})");
  EXPECT_EQ(x.path(), "/filters/0/action/callout");
  EXPECT_NE(x.reason().find("CALLOUT_NOT_FOUND"), std::string::npos);
  x = err(filter_policy("ALE_AUTH_CONNECT_V4", std::string(R"("flags": ["HAS_PROVIDER_CONTEXT"], "provider_context": ")") + kCtx + "\""));
  EXPECT_EQ(x.path(), "/filters/0/provider_context");
  EXPECT_NE(x.reason().find("PROVIDER_CONTEXT_NOT_FOUND"), std::string::npos);
  EXPECT_EQ(e.filter_count(), 0u);
  EXPECT_TRUE(e.providers().empty());
}

TEST(PolicyApply, CalloutAtWrongLayer) {
  FilterEngine e;
  PolicyError x = apply_error(e, "{" + demo_objects() + R"(, "filters": [
      {"name": "ok", "layer": "ALE_AUTH_CONNECT_V4", "sublayer": ")" + kSub + R"(", "action": "PERMIT"},
      {"name": "wrong", "layer": "ALE_AUTH_CONNECT_V6", "action": {"type": "CALLOUT_INSPECTION", "callout": ")" + kCallout + R"("}}]})");
  EXPECT_EQ(x.path(), "/filters/1/action/callout");
  EXPECT_NE(x.reason().find("INCOMPATIBLE_LAYER"), std::string::npos) << x.what();
  EXPECT_EQ(e.filter_count(), 0u);
  EXPECT_EQ(e.callouts().size(), 0u);
}

TEST(PolicyApply, DuplicateKeyAgainstTheEngine) {
  FilterEngine e;
  const std::string text = "{" + demo_objects() + R"(, "filters": [{"key": ")" + kF1 +
                           R"(", "name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": "PERMIT"}]})";
  apply_policy(e, parse_policy(text));
  PolicyError x = apply_error(e, text);
  EXPECT_EQ(x.path(), "/providers/0/key");
  EXPECT_NE(x.reason().find("ALREADY_EXISTS"), std::string::npos);
  // Only the filter clashes: everything before it is rolled back.
  x = apply_error(e, std::string(R"({"providers": [{"name": "fresh"}], "filters": [{"key": ")") + kF1 +
                         R"(", "name": "again", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"}]})");
  EXPECT_EQ(x.path(), "/filters/0/key");
  EXPECT_EQ(e.providers().size(), 1u);
}

TEST(PolicyApply, LifetimeMismatchNamesTheReference) {
  FilterEngine e;
  PolicyError x = apply_error(e, "{" + demo_objects() + R"(, "filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4",
      "flags": ["PERSISTENT"], "sublayer": ")" + kSub + R"(", "action": "PERMIT"}]})");
  EXPECT_EQ(x.path(), "/filters/0/sublayer");
  EXPECT_NE(x.reason().find("LIFETIME_MISMATCH"), std::string::npos);
  x = apply_error(e, "{" + demo_objects() + R"(, "filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4",
      "flags": ["PERSISTENT"], "provider": ")" + kProv + R"(", "action": "PERMIT"}]})");
  EXPECT_EQ(x.path(), "/filters/0/provider");
}

TEST(PolicyApply, CodeBuiltPolicyErrorsNameTheCondition) {
  // A policy built in code can hold what the parser would refuse; apply still names the spot.
  Policy p;
  Filter f = test::filter("f", LayerId::INBOUND_TRANSPORT_V4, ActionType::BLOCK,
                          {test::eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, 1),
                           test::eq(FieldId::IP_LOCAL_PORT, DataType::UINT32, 1)});
  p.filters.push_back(f);
  FilterEngine e;
  try {
    apply_policy(e, p);
    ADD_FAILURE() << "applied";
  } catch (const PolicyError& x) {
    EXPECT_EQ(x.path(), "/filters/0/conditions/1/value");
    EXPECT_NE(x.reason().find("TYPE_MISMATCH"), std::string::npos);
  }
  p.filters[0].conditions = {};
  p.filters[0].display.name = "";
  try {
    apply_policy(e, p);
    ADD_FAILURE() << "applied";
  } catch (const PolicyError& x) {
    EXPECT_EQ(x.path(), "/filters/0/name");
  }
  p.filters[0].display.name = "f";
  p.filters[0].weight = Weight::range_index(16);
  try {
    apply_policy(e, p);
    ADD_FAILURE() << "applied";
  } catch (const PolicyError& x) {
    EXPECT_EQ(x.path(), "/filters/0/weight");
    EXPECT_NE(x.reason().find("INVALID_WEIGHT"), std::string::npos);
  }
}

TEST(PolicyApply, FailureLeavesTheEngineAsItWas) {
  FilterEngine e;
  Policy demo = parse_policy(read_file(std::string(LFP_SOURCE_DIR) + "/examples/demo-policy.json"));
  apply_policy(e, demo);
  const std::string before = to_json(export_policy(e)).dump();
  const size_t count = e.filter_count();

  // Adds a provider, a sublayer, a callout, a context and two filters, then fails on the third.
  const std::string text = "{" + demo_objects() + R"(,
    "provider_contexts": [{"key": ")" + kCtx + R"(", "name": "ctx"}],
    "filters": [
      {"name": "a", "layer": "ALE_AUTH_CONNECT_V4", "sublayer": ")" + kSub + R"(", "action": "PERMIT"},
      {"name": "b", "layer": "ALE_AUTH_CONNECT_V4", "action": {"type": "CALLOUT_TERMINATING", "callout": ")" + kCallout + R"("},
       "flags": ["HAS_PROVIDER_CONTEXT"], "provider_context": ")" + kCtx + R"("},
      {"name": "c", "layer": "ALE_AUTH_CONNECT_V4", "sublayer": "99999999-9999-4999-8999-999999999999", "action": "BLOCK"}]})";
  PolicyError x = apply_error(e, text);
  EXPECT_EQ(x.path(), "/filters/2/sublayer");
  EXPECT_EQ(to_json(export_policy(e)).dump(), before);
  EXPECT_EQ(e.filter_count(), count);
  EXPECT_EQ(e.provider(*Guid::parse(kProv)), nullptr);
  EXPECT_EQ(e.callout(*Guid::parse(kCallout)), nullptr);

  // A clash with an object the engine already holds: the engine's own object stays.
  const std::string clash = std::string(R"({"providers": [{"name": "new"}], "filters": [{"key": "0e467cd7-19de-4b16-a72f-c2df537f71a7",
      "name": "impostor", "layer": "ALE_AUTH_CONNECT_V4", "action": "PERMIT"}]})");
  x = apply_error(e, clash);
  EXPECT_EQ(x.path(), "/filters/0/key");
  EXPECT_EQ(to_json(export_policy(e)).dump(), before);

  // And then the good part alone applies, and returns the ids in file order.
  FilterEngine fresh;
  auto ids = apply_policy(fresh, parse_policy("{" + demo_objects() + "}"));
  EXPECT_TRUE(ids.empty());
  ids = apply_policy(fresh, parse_policy(std::string(R"({"filters": [
      {"name": "a", "layer": "ALE_AUTH_CONNECT_V4", "sublayer": ")") + kSub + R"(", "action": "PERMIT"},
      {"name": "b", "layer": "ALE_AUTH_CONNECT_V6", "action": "BLOCK"}]})"));
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(fresh.filter_by_id(ids[0])->display.name, "a");
  EXPECT_EQ(fresh.filter_by_id(ids[1])->display.name, "b");
}

// ---------------------------------------------------------------------------------------------
// Requests

TEST(PolicyRequest, TextValues) {
  Request r;
  r.layer = LayerId::ALE_AUTH_CONNECT_V4;
  r.set_text(FieldId::IP_REMOTE_ADDRESS, "192.0.2.7");
  EXPECT_EQ(r.values.get(FieldId::IP_REMOTE_ADDRESS).type, DataType::UINT32);
  EXPECT_EQ(r.values.get(FieldId::IP_REMOTE_ADDRESS).u, 0xC0000207u);
  r.set_text(FieldId::IP_REMOTE_PORT, "443");
  EXPECT_EQ(r.values.get(FieldId::IP_REMOTE_PORT).type, DataType::UINT16);
  EXPECT_EQ(r.values.get(FieldId::IP_REMOTE_PORT).u, 443u);
  r.set_text(FieldId::IP_PROTOCOL, "TCP");
  EXPECT_EQ(r.values.get(FieldId::IP_PROTOCOL).u, 6u);
  r.set_text(FieldId::FLAGS, "IS_LOOPBACK|IS_FRAGMENT");
  EXPECT_EQ(r.values.get(FieldId::FLAGS).u, 0x21u);
  r.set_text(FieldId::ALE_APP_ID, "/usr/bin/curl");
  EXPECT_EQ(r.values.get(FieldId::ALE_APP_ID).type, DataType::BYTE_BLOB_TYPE);
  EXPECT_EQ(r.values.get(FieldId::ALE_APP_ID).str, "/usr/bin/curl");
  r.set_text(FieldId::ALE_USER_ID, "uid=1000,gids=1000+27");
  const Value& u = r.values.get(FieldId::ALE_USER_ID);
  ASSERT_EQ(u.type, DataType::TOKEN_INFORMATION_TYPE);
  EXPECT_EQ(u.token->uid, 1000u);
  EXPECT_EQ(u.token->gids, (std::vector<uint32_t>{1000, 27}));
  r.set_text(FieldId::ALE_USER_ID, "0");
  EXPECT_EQ(r.values.get(FieldId::ALE_USER_ID).token->uid, 0u);
  EXPECT_TRUE(r.values.get(FieldId::ALE_USER_ID).token->gids.empty());

  Request v6;
  v6.layer = LayerId::ALE_AUTH_CONNECT_V6;
  v6.set_text(FieldId::IP_REMOTE_ADDRESS, "2001:db8::1");
  EXPECT_EQ(v6.values.get(FieldId::IP_REMOTE_ADDRESS).type, DataType::BYTE_ARRAY16_TYPE);
  Request mac;
  mac.layer = LayerId::INBOUND_MAC_FRAME_ETHERNET;
  mac.set_text(FieldId::MAC_LOCAL_ADDRESS, "aa:bb:cc:dd:ee:ff");
  EXPECT_EQ(format_mac(mac.values.get(FieldId::MAC_LOCAL_ADDRESS).bytes), "aa:bb:cc:dd:ee:ff");
  mac.set_text(FieldId::ETHER_TYPE, "ARP");
  EXPECT_EQ(mac.values.get(FieldId::ETHER_TYPE).u, 0x0806u);
}

TEST(PolicyRequest, TextErrorsNameTheField) {
  Request r;
  r.layer = LayerId::INBOUND_TRANSPORT_V4;
  auto path_of = [&](FieldId f, const char* text) -> std::string {
    try {
      r.set_text(f, text);
    } catch (const PolicyError& e) {
      return e.path() + " | " + e.reason();
    }
    return "no error";
  };
  EXPECT_EQ(path_of(FieldId::ALE_APP_ID, "/bin/x").substr(0, 13), "ALE_APP_ID | ");
  EXPECT_NE(path_of(FieldId::ALE_APP_ID, "/bin/x").find("not available at layer INBOUND_TRANSPORT_V4"), std::string::npos);
  EXPECT_EQ(path_of(FieldId::IP_REMOTE_PORT, "70000").substr(0, 17), "IP_REMOTE_PORT | ");
  EXPECT_NE(path_of(FieldId::IP_REMOTE_PORT, "70000").find("does not fit"), std::string::npos);
  EXPECT_NE(path_of(FieldId::IP_REMOTE_PORT, "").find("expected"), std::string::npos);
  EXPECT_NE(path_of(FieldId::IP_REMOTE_ADDRESS, "2001:db8::1").find("IPv4"), std::string::npos);
  EXPECT_NE(path_of(FieldId::FLAGS, "IS_LOOPBACK|").find("expected"), std::string::npos);
  r.layer = LayerId::ALE_AUTH_CONNECT_V4;
  EXPECT_NE(path_of(FieldId::ALE_USER_ID, "uid=x").find("expected a user"), std::string::npos);
  EXPECT_NE(path_of(FieldId::ALE_USER_ID, "gids=1").find("expected a user"), std::string::npos);
  EXPECT_NE(path_of(FieldId::ALE_USER_ID, "uid=1,uid=2").find("expected a user"), std::string::npos);
  EXPECT_NE(path_of(FieldId::ALE_USER_ID, "uid=1,gids=1+").find("expected a user"), std::string::npos);
  EXPECT_NE(path_of(FieldId::ALE_USER_ID, "uid=4294967296").find("expected a user"), std::string::npos);
  EXPECT_EQ(path_of(FieldId::ALE_USER_ID, "uid=4294967295,gids=0"), "no error");
}

TEST(PolicyRequest, JsonRequests) {
  Request r;
  parse_request(json::parse(R"({"layer": "ALE_AUTH_CONNECT_V4", "expect": "BLOCK", "comment": "c",
      "values": {"IP_REMOTE_ADDRESS": "192.0.2.7", "IP_REMOTE_PORT": 23, "IP_PROTOCOL": "TCP",
                 "ALE_USER_ID": {"uid": 1000, "gids": [1000, 27]}, "ALE_APP_ID": {"hex": "2f62696e2f6e63"},
                 "FLAGS": 1, "IP_LOCAL_ADDRESS": null}})"),
                r);
  EXPECT_EQ(r.layer, LayerId::ALE_AUTH_CONNECT_V4);
  EXPECT_EQ(r.expect, "BLOCK");
  EXPECT_EQ(r.values.get(FieldId::IP_REMOTE_PORT).u, 23u);
  EXPECT_EQ(r.values.get(FieldId::ALE_USER_ID).token->gids, (std::vector<uint32_t>{1000, 27}));
  EXPECT_EQ(r.values.get(FieldId::ALE_APP_ID).str, "/bin/nc");
  EXPECT_EQ(r.values.get(FieldId::IP_LOCAL_ADDRESS).type, DataType::EMPTY);
  // Reuse: the previous values are forgotten.
  parse_request(json::parse(R"({"layer": "ALE_AUTH_CONNECT_V6", "values": {"ALE_USER_ID": 5}})"), r);
  EXPECT_EQ(r.layer, LayerId::ALE_AUTH_CONNECT_V6);
  EXPECT_FALSE(r.expect.has_value());
  EXPECT_EQ(r.values.get(FieldId::IP_REMOTE_PORT).type, DataType::EMPTY);
  EXPECT_EQ(r.values.get(FieldId::ALE_USER_ID).token->uid, 5u);
  parse_request(json::parse(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"ALE_USER_ID": "uid=7,gids=8"}})"), r);
  EXPECT_EQ(r.values.get(FieldId::ALE_USER_ID).token->gids, (std::vector<uint32_t>{8}));
}

TEST(PolicyRequest, JsonErrors) {
  auto err = [](const char* text) -> std::pair<std::string, std::string> {
    Request r;
    try {
      parse_request(json::parse(text), r);
    } catch (const PolicyError& e) {
      return {e.path(), e.reason()};
    }
    return {"no error", ""};
  };
  EXPECT_EQ(err(R"([])").first, "");
  EXPECT_EQ(err(R"({"values": {}})").first, "/layer");
  EXPECT_EQ(err(R"({"layer": "NOPE"})").first, "/layer");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "bogus": 1})").first, "/bogus");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": []})").first, "/values");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"NOPE": 1}})").first, "/values/NOPE");
  auto [path, reason] = err(R"({"layer": "INBOUND_TRANSPORT_V4", "values": {"ALE_APP_ID": "/x"}})");
  EXPECT_EQ(path, "/values/ALE_APP_ID");
  EXPECT_NE(reason.find("not available"), std::string::npos);
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"IP_REMOTE_PORT": 70000}})").first, "/values/IP_REMOTE_PORT");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"IP_REMOTE_PORT": "22/tcp"}})").first, "/values/IP_REMOTE_PORT");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"IP_REMOTE_ADDRESS": "10.0.0.0/8"}})").first,
            "/values/IP_REMOTE_ADDRESS");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"ALE_USER_ID": {"gids": [1]}}})").first, "/values/ALE_USER_ID/uid");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "values": {"ALE_USER_ID": {"uid": 1, "gids": [-1]}}})").first,
            "/values/ALE_USER_ID/gids/0");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "expect": "ALLOW"})").first, "/expect");
  EXPECT_EQ(err(R"({"layer": "ALE_AUTH_CONNECT_V4", "comment": 5})").first, "/comment");
}

// ---------------------------------------------------------------------------------------------
// Classification through parsed policies, results

TEST(PolicyClassify, PrefixAndPortRange) {
  FilterEngine e;
  apply_policy(e, parse_policy(std::string(R"({"filters": [{"key": ")") + kF1 + R"(", "name": "block test net high ports",
      "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK", "conditions": [
        {"field": "IP_REMOTE_ADDRESS", "value": "192.0.2.0/24"},
        {"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 1000, "high": 2000}},
        {"field": "IP_PROTOCOL", "value": "TCP"}]}]})"));
  auto decide = [&](const char* addr, const char* port, const char* proto) {
    Request r;
    r.layer = LayerId::ALE_AUTH_CONNECT_V4;
    r.set_text(FieldId::IP_REMOTE_ADDRESS, addr);
    r.set_text(FieldId::IP_REMOTE_PORT, port);
    r.set_text(FieldId::IP_PROTOCOL, proto);
    ClassifyResult res = e.classify(r.layer, r.values);
    ClassifyResult lin = e.classify_linear(r.layer, r.values);
    EXPECT_EQ(res.permit, lin.permit);
    EXPECT_EQ(res.filter, lin.filter);
    return res;
  };
  ClassifyResult r = decide("192.0.2.7", "1500", "TCP");
  EXPECT_FALSE(r.permit);
  ASSERT_NE(r.filter, nullptr);
  EXPECT_EQ(r.filter->key, *Guid::parse(kF1));
  EXPECT_FALSE(decide("192.0.2.255", "1000", "6").permit);
  EXPECT_FALSE(decide("192.0.2.0", "2000", "TCP").permit);
  EXPECT_TRUE(decide("192.0.2.7", "2001", "TCP").permit);
  EXPECT_TRUE(decide("192.0.2.7", "999", "TCP").permit);
  EXPECT_TRUE(decide("192.0.3.7", "1500", "TCP").permit);
  EXPECT_TRUE(decide("192.0.2.7", "1500", "UDP").permit);
  EXPECT_EQ(decide("192.0.2.7", "1500", "UDP").filter, nullptr);
}

std::vector<json> demo_requests() {
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/examples/demo-requests.jsonl");
  EXPECT_TRUE(in);
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) out.push_back(json::parse(line));
  return out;
}

TEST(PolicyDemo, EveryRequestGivesItsExpectedDecision) {
  FilterEngine e;
  Policy demo = parse_policy(read_file(std::string(LFP_SOURCE_DIR) + "/examples/demo-policy.json"));
  auto ids = apply_policy(e, demo);
  EXPECT_EQ(ids.size(), demo.filters.size());
  auto reqs = demo_requests();
  ASSERT_GE(reqs.size(), 10u);
  int permits = 0, blocks = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    Request r;
    parse_request(reqs[i], r);
    ASSERT_TRUE(r.expect.has_value()) << "line " << i + 1;
    ClassifyResult res = e.classify(r.layer, r.values, true);
    json out = result_to_json(e, res);
    EXPECT_EQ(out["action"], *r.expect) << "line " << i + 1 << ": " << reqs[i]["comment"] << "\n"
                                        << result_to_text(e, res);
    // The compiled classifier and the linear reference agree.
    ClassifyResult lin = e.classify_linear(r.layer, r.values);
    EXPECT_EQ(lin.permit, res.permit) << "line " << i + 1;
    EXPECT_EQ(lin.filter, res.filter) << "line " << i + 1;
    // The comment names the deciding filter, when one decides.
    if (res.filter)
      EXPECT_NE(reqs[i]["comment"].get<std::string>().find(res.filter->display.name), std::string::npos)
          << "line " << i + 1 << " decided by " << res.filter->display.name;
    (res.permit ? permits : blocks)++;
  }
  EXPECT_GE(permits, 3);
  EXPECT_GE(blocks, 3);
}

TEST(PolicyResult, JsonAndText) {
  FilterEngine e;
  apply_policy(e, parse_policy(read_file(std::string(LFP_SOURCE_DIR) + "/examples/demo-policy.json")));
  Request r;
  r.layer = LayerId::ALE_AUTH_CONNECT_V4;
  r.set_text(FieldId::IP_REMOTE_ADDRESS, "192.0.2.10");
  r.set_text(FieldId::IP_REMOTE_PORT, "23");
  r.set_text(FieldId::IP_PROTOCOL, "TCP");
  r.set_text(FieldId::ALE_USER_ID, "1000");

  ClassifyResult res = e.classify(r.layer, r.values);
  json j = result_to_json(e, res);
  EXPECT_EQ(j["action"], "BLOCK");
  EXPECT_EQ(j["filter"]["key"], "0e467cd7-19de-4b16-a72f-c2df537f71a7");
  EXPECT_EQ(j["filter"]["name"], "block telnet");
  EXPECT_EQ(j["filter"]["id"], res.filter->id);
  EXPECT_EQ(j["sublayer"], json({{"key", "cf5bcd46-0413-4060-a5d0-b87d2fb7f6d5"}, {"name", "LFP demo high"}}));
  EXPECT_EQ(j["provider"], "90d1efc4-7f63-48f0-8206-867232511f42");
  EXPECT_EQ(j["hard"], true);
  EXPECT_EQ(j["veto"], false);
  EXPECT_TRUE(j["vetoed_filter"].is_null());
  EXPECT_FALSE(j.contains("explain"));
  EXPECT_EQ(result_to_text(e, res), "BLOCK (hard) by filter " + std::to_string(res.filter->id) +
                                        " \"block telnet\" {0e467cd7-19de-4b16-a72f-c2df537f71a7} in sublayer "
                                        "\"LFP demo high\" of provider \"LFP demo\" {90d1efc4-7f63-48f0-8206-867232511f42}");

  // Explain: every sublayer, highest weight first, with the steps taken.
  ClassifyResult ex = e.classify(r.layer, r.values, true);
  j = result_to_json(e, ex);
  ASSERT_TRUE(j.contains("explain"));
  ASSERT_EQ(j["explain"].size(), 4u);  // high, universal, low, inspection
  EXPECT_EQ(j["explain"][0]["name"], "LFP demo high");
  EXPECT_EQ(j["explain"][0]["weight"], 49152);
  EXPECT_EQ(j["explain"][0]["result"], "BLOCK");
  EXPECT_EQ(j["explain"][0]["hard"], true);
  EXPECT_EQ(j["explain"][0]["steps"][0]["filter"]["name"], "block telnet");
  EXPECT_EQ(j["explain"][0]["steps"][0]["outcome"], "BLOCK");
  EXPECT_NE(j["explain"][0]["effect"].get<std::string>().find("decides"), std::string::npos);
  EXPECT_EQ(j["explain"][1]["name"], "Universal");
  EXPECT_TRUE(j["explain"][1]["result"].is_null());
  EXPECT_EQ(j["explain"][1]["steps"], json::array());
  EXPECT_EQ(j["explain"][2]["name"], "LFP demo low");
  std::string text = result_to_text(e, ex);
  EXPECT_EQ(text.substr(0, text.find('\n')), result_to_text(e, res));
  EXPECT_NE(text.find("sublayer"), std::string::npos);
  EXPECT_NE(text.find("LFP demo high"), std::string::npos);
  EXPECT_NE(text.find("\"block telnet\""), std::string::npos);
  EXPECT_NE(text.find("=> BLOCK (hard)"), std::string::npos);
  EXPECT_NE(text.find("no match"), std::string::npos);
  EXPECT_NE(text.find("Inspection"), std::string::npos);

  // No match.
  Request none;
  none.layer = LayerId::INBOUND_IPPACKET_V4;
  ClassifyResult nr = e.classify(none.layer, none.values);
  EXPECT_EQ(result_to_text(e, nr), "PERMIT (no filter matched)");
  j = result_to_json(e, nr);
  EXPECT_EQ(j["action"], "PERMIT");
  EXPECT_TRUE(j["filter"].is_null());
  EXPECT_TRUE(j["sublayer"].is_null());
  EXPECT_TRUE(j["provider"].is_null());
  EXPECT_EQ(j["hard"], false);
}

TEST(PolicyResult, SoftPermitAndVeto) {
  FilterEngine e;
  // Universal (0x8000): a hard and a soft permit; below it (weight 100) a callout filter.
  apply_policy(e, parse_policy("{" + demo_objects() + R"(, "filters": [
      {"name": "hard permit", "layer": "ALE_AUTH_CONNECT_V4", "action": "PERMIT",
       "flags": ["CLEAR_ACTION_RIGHT"], "conditions": [{"field": "IP_REMOTE_PORT", "value": 22}]},
      {"name": "soft permit", "layer": "ALE_AUTH_CONNECT_V4", "action": "PERMIT",
       "conditions": [{"field": "IP_REMOTE_PORT", "value": 80}]},
      {"name": "vetoing callout", "layer": "ALE_AUTH_CONNECT_V4", "sublayer": ")" + kSub + R"(",
       "action": {"type": "CALLOUT_UNKNOWN", "callout": ")" + kCallout + R"("}}]})"));
  Request r;
  r.layer = LayerId::ALE_AUTH_CONNECT_V4;
  r.set_text(FieldId::IP_REMOTE_PORT, "80");
  // Unregistered callout: acts as a BLOCK, overriding the soft permit above it.
  ClassifyResult res = e.classify(r.layer, r.values);
  EXPECT_FALSE(res.permit);
  EXPECT_EQ(res.filter->display.name, "vetoing callout");
  // A registered callout returning BLOCK under a hard permit: a veto.
  e.register_callout(*Guid::parse(kCallout), test::returns(CalloutVerdict::BLOCK));
  r.set_text(FieldId::IP_REMOTE_PORT, "22");
  res = e.classify(r.layer, r.values, true);
  ASSERT_TRUE(res.veto);
  json j = result_to_json(e, res);
  EXPECT_EQ(j["action"], "BLOCK");
  EXPECT_EQ(j["veto"], true);
  EXPECT_EQ(j["vetoed_filter"]["name"], "hard permit");
  EXPECT_EQ(j["filter"]["name"], "vetoing callout");
  EXPECT_TRUE(j["provider"].is_null());
  std::string text = result_to_text(e, res);
  EXPECT_EQ(text.rfind("BLOCK (veto) by filter", 0), 0u) << text;
  EXPECT_NE(text.find("vetoed the hard PERMIT of filter"), std::string::npos) << text;
  EXPECT_NE(text.find("callout: BLOCK"), std::string::npos) << text;
  // Soft permit from the universal sublayer, with the callout now permitting.
  e.unregister_callout(*Guid::parse(kCallout));
  e.register_callout(*Guid::parse(kCallout), test::returns(CalloutVerdict::CONTINUE));
  r.set_text(FieldId::IP_REMOTE_PORT, "80");
  res = e.classify(r.layer, r.values);
  EXPECT_TRUE(res.permit);
  EXPECT_EQ(result_to_text(e, res).rfind("PERMIT (soft) by filter", 0), 0u) << result_to_text(e, res);
}

// ---------------------------------------------------------------------------------------------
// Robustness: odd inputs give PolicyError, never anything else.

TEST(PolicyRobustness, OddInputs) {
  const char* inputs[] = {
      "null", "true", "\"x\"", "{\"filters\": [null]}", "{\"filters\": [[[[[[]]]]]]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"conditions\": [null]}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"weight\": 1e400}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"weight\": -9223372036854775809}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": null}]}",
      "{\"sublayers\": [{\"name\": \"s\", \"weight\": \"0x\"}]}",
      "{\"sublayers\": [{\"name\": \"s\", \"weight\": \"99999999999999999999999\"}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"conditions\": "
      "[{\"field\": \"IP_REMOTE_ADDRESS\", \"value\": \"1.2.3.4/\"}]}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"conditions\": "
      "[{\"field\": \"IP_REMOTE_ADDRESS\", \"value\": \"/8\"}]}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"conditions\": "
      "[{\"field\": \"IP_REMOTE_ADDRESS\", \"value\": \"1.2.3.4/8/8\"}]}]}",
      "{\"filters\": [{\"name\": \"f\", \"layer\": \"ALE_AUTH_CONNECT_V4\", \"action\": \"BLOCK\", \"conditions\": "
      "[{\"field\": \"FLAGS\", \"value\": \"||\"}]}]}",
  };
  for (const char* in : inputs) {
    try {
      parse_policy(in);
      ADD_FAILURE() << "parsed: " << in;
    } catch (const PolicyError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a PolicyError for " << in << ": " << e.what();
    }
  }
  // null members count as absent.
  EXPECT_TRUE(parse_policy("{\"filters\": null, \"version\": null}").filters.empty());
  // Messages end up in JSON output: they are valid UTF-8 whatever the input held.
  for (std::string bad : {std::string("\xff\xfe"), std::string(100, 'x') + "\xc3", std::string(200, '\xc3') ,
                          [] { std::string s; for (int i = 0; i < 100; ++i) s += "\xc3\xa9"; return s; }()}) {
    Request r;
    try {
      r.set_text(FieldId::IP_REMOTE_PORT, bad);
      ADD_FAILURE() << "accepted";
    } catch (const PolicyError& e) {
      EXPECT_NO_THROW((void)json(e.what()).dump()) << e.what();
    }
  }
  EXPECT_NO_THROW((void)json(parse_error("{\"a\": \"\xff\"}").what()).dump());
  EXPECT_NO_THROW((void)json(parse_error("{\"a\xc3\": 1}").what()).dump());
  std::string deep(100000, '[');
  EXPECT_THROW(parse_policy(deep), PolicyError);
  EXPECT_THROW(parse_policy("{\"x\":" + std::string(5000, '[') + std::string(5000, ']') + "}"), PolicyError);
}

}  // namespace
}  // namespace lfp::policy
