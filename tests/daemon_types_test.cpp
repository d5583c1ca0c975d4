// SPDX-License-Identifier: MIT
// Issue 30, finding 8: a request member of the wrong type, or out of range, gets INVALID_PARAMETER
// naming the member's path (docs/protocol.md), never nlohmann's "[json.exception.type_error...]" text.
// Every op lfpd serves without a data path, each member replaced in turn by values of every other
// JSON type, over the socket to a real lfpd.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "daemon_support.hpp"
#include "lfp/protocol/wire.hpp"

namespace lfp {
namespace {

using nlohmann::json;
using test::Daemon;

// What a member takes; its wrong values are those of the other JSON types (and, for numbers, those
// out of range).
// (POLICY_INT: an integer of the policy format, which may also be written as a string.)
enum class Takes { UINT, POLICY_INT, STRING, BOOL, OBJECT, ARRAY };

std::vector<json> wrong_values(Takes t) {
  const json uint_wrong = json::array({"1", true, json::array(), json::object(), -1, 1.5, 1e300});
  switch (t) {
    case Takes::UINT: {
      std::vector<json> v(uint_wrong.begin(), uint_wrong.end());
      v.push_back(json::parse("18446744073709551616"));  // 2^64: more than a uint64
      return v;
    }
    case Takes::POLICY_INT: return {true, json::array(), json::object(), -1, 1.5, "x"};
    case Takes::STRING: return {5, -1, true, json::array(), json::object()};
    case Takes::BOOL: return {"true", 1, json::array(), json::object()};
    case Takes::OBJECT: return {"x", 5, true, json::array()};
    case Takes::ARRAY: return {"x", 5, true, json::object()};
  }
  return {};
}

struct Member {
  std::string path;         // a JSON pointer into the request ("/template/layer")
  Takes takes;
  std::vector<json> also = {};  // more wrong values: numbers out of this member's range
  std::string reported = {};    // the path the error names, if not `path` (apply's: the policy's own)
};

struct Op {
  std::string op;
  json request;  // a valid request (without op and id)
  std::vector<Member> members;
};

// One request on a connection of its own, without hello (for hello itself, and for "op"): the reply.
json raw_request(const std::string& socket, const json& request) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect failed");
  std::string err, reply;
  const bool ok = wire::write_frame(fd, request.dump(), err) && wire::read_frame(fd, reply, err);
  ::close(fd);
  if (!ok) throw std::runtime_error("raw request: " + err);
  return json::parse(reply);
}

TEST(LfpdTypes, EveryMemberOfTheWrongTypeIsNamedByItsPath) {
  Daemon lfpd;
  auto c = lfpd.connect();
  const std::string provider = "11111111-2222-3333-4444-555555555555";
  c->add("provider", {{"key", provider}, {"name", "p"}});
  const json filter = c->add("filter", {{"name", "f"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"}});
  const std::string absent = "99999999-2222-3333-4444-555555555555";
  const json a_filter = {{"name", "g"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"}, {"weight", 3},
                         {"conditions", json::array({{{"field", "IP_REMOTE_PORT"}, {"value", 80}}})}};

  const std::vector<Op> ops = {
      {"hello", {{"version", 1}}, {{"/version", Takes::UINT, {2, 4294967296}}, {"/name", Takes::STRING},
                                   {"/dynamic", Takes::BOOL}, {"/txn_wait_timeout_ms", Takes::UINT, {3600001}},
                                   {"/provider", Takes::STRING}}},
      {"txn_begin", {{"read_only", true}}, {{"/read_only", Takes::BOOL}}},
      {"add", {{"kind", "filter"}, {"object", a_filter}},
       {{"/kind", Takes::STRING}, {"/object", Takes::OBJECT}, {"/object/name", Takes::STRING},
        {"/object/weight", Takes::POLICY_INT}, {"/object/conditions", Takes::ARRAY}}},
      {"delete", {{"kind", "filter"}, {"key", absent}},
       {{"/kind", Takes::STRING}, {"/key", Takes::STRING}, {"/filter_id", Takes::UINT}, {"/force", Takes::BOOL}}},
      {"apply", {{"policy", {{"filters", json::array({a_filter})}}}, {"first", {{"filters", 5}}}},
       {{"/policy", Takes::OBJECT}, {"/policy/filters", Takes::ARRAY, {}, "/filters"},
        {"/policy/filters/0/weight", Takes::POLICY_INT, {}, "/filters/5/weight"}, {"/first", Takes::OBJECT},
        {"/first/filters", Takes::UINT, {4294967296}}}},
      {"get", {{"kind", "filter"}, {"key", filter["key"]}},
       {{"/kind", Takes::STRING}, {"/key", Takes::STRING}, {"/filter_id", Takes::UINT}}},
      {"enum",
       {{"kind", "filter"}, {"template", {{"layer", "ALE_AUTH_CONNECT_V4"}, {"provider", provider}, {"flags", json::array()}}},
        {"offset", 0}, {"limit", 10}},
       {{"/kind", Takes::STRING}, {"/template", Takes::OBJECT}, {"/offset", Takes::UINT, {9223372036854775808ull}},
        {"/limit", Takes::UINT, {10001}}, {"/template/layer", Takes::STRING}, {"/template/provider", Takes::STRING},
        {"/template/sublayer", Takes::STRING}, {"/template/action", Takes::STRING}, {"/template/flags", Takes::ARRAY},
        {"/template/flags/0", Takes::STRING}, {"/template/values", Takes::OBJECT}}},
      {"enum", {{"kind", "callout"}, {"template", {{"layer", "ALE_AUTH_CONNECT_V4"}}}},
       {{"/template/layer", Takes::STRING}, {"/template/provider", Takes::STRING}}},
      {"state", json::object(), {{"/objects", Takes::BOOL}}},
      {"classify", {{"layer", "ALE_AUTH_CONNECT_V4"}, {"values", {{"IP_REMOTE_PORT", 80}}}, {"text_values", {{"IP_PROTOCOL", "tcp"}}}},
       {{"/layer", Takes::STRING}, {"/values", Takes::OBJECT}, {"/text_values", Takes::OBJECT},
        {"/text_values/IP_PROTOCOL", Takes::STRING}, {"/explain", Takes::BOOL}}},
      {"subscribe", {{"kinds", json::array({"filter"})}}, {{"/kinds", Takes::ARRAY}, {"/kinds/0", Takes::STRING}}},
      {"netevents_enum", {{"template", json::object()}, {"offset", 0}, {"limit", 5}, {"order", "newest"}},
       {{"/template", Takes::OBJECT}, {"/offset", Takes::UINT}, {"/limit", Takes::UINT, {10001}},
        {"/order", Takes::STRING}}},
      {"netevents_subscribe", {{"template", json::object()}}, {{"/template", Takes::OBJECT}}},
      {"netevents_settings", json::object(), {{"/settings", Takes::OBJECT}}},
      {"netevents_ingest", {{"events", json::array()}}, {{"/events", Takes::ARRAY}}},
      {"diagnose", {{"hypothesis", {{"time", "now"}}}, {"foreign", false}},
       {{"/hypothesis", Takes::OBJECT}, {"/hypothesis/time", Takes::STRING}, {"/foreign", Takes::BOOL}}},
  };

  size_t checked = 0;
  for (const Op& op : ops) {
    for (const Member& m : op.members) {
      std::vector<json> values = wrong_values(m.takes);
      values.insert(values.end(), m.also.begin(), m.also.end());
      for (const json& value : values) {
        json req = op.request;
        req[json::json_pointer(m.path)] = value;
        std::string code, message;
        if (op.op == "hello") {
          req["op"] = "hello";
          req["id"] = 1;
          const json r = raw_request(lfpd.socket(), req);
          if (!r["ok"].get<bool>()) code = r["error"]["code"], message = r["error"]["message"];
        } else {
          try {
            c->call(op.op, req);
          } catch (const client::ClientError& e) {
            code = e.code(), message = e.message();
          }
        }
        const std::string what = op.op + " with " + m.path + " = " + value.dump() + ": " + code + " " + message;
        EXPECT_EQ(code, "INVALID_PARAMETER") << what;
        EXPECT_EQ(message.rfind((m.reported.empty() ? m.path : m.reported) + ":", 0), 0u) << what;
        EXPECT_EQ(message.find("json.exception"), std::string::npos) << what;
        ++checked;
      }
    }
    // The valid request itself is served (the table's requests are right, so its errors are the members').
    if (op.op != "hello" && op.op != "apply" && op.op != "add" && op.op != "delete") {
      EXPECT_NO_THROW(c->call(op.op, op.request)) << op.op << " " << op.request.dump();
      if (op.op == "txn_begin") c->call("txn_commit");
    }
  }
  EXPECT_GT(checked, 200u);

  // "op" itself, and a request without hello first.
  for (const json& value : wrong_values(Takes::STRING)) {
    const json r = raw_request(lfpd.socket(), {{"id", 1}, {"op", value}});
    EXPECT_EQ(r["error"]["code"], "INVALID_PARAMETER");
    EXPECT_EQ(r["error"]["message"].get<std::string>().rfind("/op:", 0), 0u) << r.dump();
  }
  EXPECT_EQ(raw_request(lfpd.socket(), {{"id", 1}})["error"]["message"].get<std::string>().rfind("/op: required", 0), 0u);
  // Nothing above changed the policy: the filter added first is the only one.
  EXPECT_EQ(c->call("state")["filter_count"], 1);
}

}  // namespace
}  // namespace lfp
