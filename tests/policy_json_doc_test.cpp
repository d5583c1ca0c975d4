// SPDX-License-Identifier: MIT
// The arena JSON document lfpd parses requests with: it must accept exactly what nlohmann accepts
// (its texts end up in the store and are read back with nlohmann), and read the same values.
#include <gtest/gtest.h>

#include <random>

#include "lfp/policy/json_doc.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::policy {
namespace {

using nlohmann::json;

bool nlohmann_accepts(const std::string& text) { return json::accept(text); }

bool doc_accepts(const std::string& text) {
  try {
    JsonDoc::parse(text);
    return true;
  } catch (const JsonParseError&) {
    return false;
  }
}

TEST(PolicyJsonDoc, AcceptsWhatNlohmannAccepts) {
  const std::vector<std::string> texts = {
      "{}", "[]", "0", "-0", "1", "-1", "1.5", "-1.5e3", "1E+2", "1e-2", "18446744073709551615",
      "18446744073709551616", "-9223372036854775808", "-9223372036854775809", "1e400", "-1e400", "1e-400",
      "true", "false", "null", "\"\"", "\"a\"", R"("\"\\\/\b\f\n\r\t")", R"("\u0000")", R"("\u00e9\u20ac")",
      R"("\ud83d\ude00")", "\"\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
      "\xEF\xBB\xBF{}", R"({"a":1,"a":2})", R"([[[[]]]])", R"({"a":{"b":{"c":null}}})",
      // rejected
      "", " ", "{", "}", "[", "]", "[1,]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{a:1}", "01", "-", "+1", ".5", "1.",
      "1e", "1e+", "0x10", "NaN", "Infinity", "tru", "nul", "truex", "[1] x", "{} {}", "\"abc", "\"\\x\"", "\"\\u12\"",
      "\"\\u12g4\"", R"("\ud800")", R"("\udc00")", R"("\ud800\u0041")", "\"a\tb\"", "\"a\nb\"", "\"\x7f\"",
      "\"\xff\"", "\"\xc0\x80\"", "\"\xc3\"", "\"\xe0\x80\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
      "\"\xf8\x88\x80\x80\x80\"", "\"\x80\"", "[1 2]", "{\"a\":1 \"b\":2}", "'a'", "[-]", "[--1]", "[1e5.5]",
  };
  for (const auto& t : texts) EXPECT_EQ(doc_accepts(t), nlohmann_accepts(t)) << t;
}

TEST(PolicyJsonDoc, RandomMutationsAgreeWithNlohmann) {
  const std::string seed =
      R"({"id": 7, "op": "apply", "policy": {"filters": [{"name": "f\u00e9", "layer": "ALE_AUTH_CONNECT_V4",)"
      R"( "action": "BLOCK", "weight": {"explicit": 123}, "conditions": [{"field": "IP_REMOTE_PORT", "value": -1.5e3},)"
      R"( {"field": "IP_PROTOCOL", "value": [true, false, null, "\ud83d\ude00"]}]}]}})";
  const std::string alphabet = "{}[]:,\"\\/ -+.0123456789eEtrufalsn\t\n\xc3\xa9\xff\x01u";
  std::mt19937 rng(1234);
  for (int i = 0; i < 20000; ++i) {
    std::string t = seed;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (t.size() + 1);
      switch (rng() % 3) {
        case 0: if (pos < t.size()) t.erase(pos, 1); break;
        case 1: t.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        default: if (pos < t.size()) t[pos] = alphabet[rng() % alphabet.size()]; break;
      }
    }
    ASSERT_EQ(doc_accepts(t), nlohmann_accepts(t)) << t;
    if (doc_accepts(t)) ASSERT_EQ(JsonDoc::parse(t)->root().to_json(), json::parse(t)) << t;
  }
}

TEST(PolicyJsonDoc, ValuesTypesAndSpans) {
  const std::string text = R"( {"u": 18446744073709551615, "i": -5, "f": 2.5, "big": 18446744073709551616,)"
                           R"( "s": "a\"b", "raw": "plain", "arr": [1, {"x": null}], "dup": 1, "dup": 2, "t": true} )";
  auto doc = JsonDoc::parse(text);
  const JsonValue& r = doc->root();
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r.find("u")->unsigned_value(), UINT64_MAX);
  EXPECT_TRUE(r.find("u")->is_number_unsigned());
  EXPECT_EQ(r.find("i")->integer(), -5);
  EXPECT_TRUE(r.find("i")->is_number_integer());
  EXPECT_FALSE(r.find("i")->is_number_unsigned());
  EXPECT_DOUBLE_EQ(r.find("f")->number(), 2.5);
  EXPECT_TRUE(r.find("big")->is_number_float());
  EXPECT_EQ(r.find("s")->str(), "a\"b");
  EXPECT_EQ(r.find("raw")->str(), "plain");
  EXPECT_EQ(r.find("arr")->text(), R"([1, {"x": null}])");
  EXPECT_EQ((*r.find("arr"))[1].text(), R"({"x": null})");
  EXPECT_EQ(r.find("dup")->unsigned_value(), 2u);  // the last, as nlohmann
  EXPECT_TRUE(r.find("t")->boolean());
  EXPECT_EQ(r.find("missing"), nullptr);
  EXPECT_EQ(r.to_json(), json::parse(text));
}

TEST(PolicyJsonDoc, DepthLimitAndMessages) {
  std::string deep(300, '[');
  deep += std::string(300, ']');
  EXPECT_THROW(JsonDoc::parse(deep), JsonParseError);
  std::string ok(200, '[');
  ok += std::string(200, ']');
  EXPECT_NO_THROW(JsonDoc::parse(ok));
  try {
    JsonDoc::parse("{\n  \"a\": tru\n}");
    FAIL();
  } catch (const JsonParseError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST(PolicyJsonDoc, ViewOfNlohmannReadsTheSamePolicy) {
  json p = json::parse(R"({"filters": [{"name": "f", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK",
      "weight": 3, "conditions": [{"field": "IP_REMOTE_PORT", "match": "RANGE", "value": {"low": 1, "high": 9}}]}]})");
  p["filters"][0]["raw_context"] = 5;  // a signed integer, as C++ builds it
  Policy a = policy_from_json(p);
  auto doc = JsonDoc::parse(p.dump());
  Policy b = policy_from_json(doc->root());
  EXPECT_EQ(to_json(a), to_json(b));
  EXPECT_EQ(a.filters.at(0).raw_context, 5u);
}

// A stream sees each element of the root's arrays as it is parsed, in order, with its place, and
// each root member once whole; the streamed arrays are left empty, everything else is kept.
TEST(PolicyJsonDoc, StreamHandsOverRootArraysElementByElement) {
  struct Seen : JsonStream {
    std::vector<std::string> events;
    void element(std::string_view member, size_t index, const JsonValue& e) override {
      events.push_back(std::string(member) + "[" + std::to_string(index) + "]=" + std::string(e.text()));
    }
    void member(std::string_view key, const JsonValue& v) override {
      events.push_back(std::string(key) + ":" + std::to_string(v.size()) + ":" + std::string(v.text()).substr(0, 12));
    }
  } seen;
  const std::string text = R"({"a":[1,{"x":[2,3]},"s\u0041"],"v":7,"o":{"b":[4]},"e":[]})";
  auto doc = JsonDoc::parse(text, seen);
  const std::vector<std::string> want = {
      "a[0]=1", R"(a[1]={"x":[2,3]})", R"(a[2]="s\u0041")", R"(a:0:[1,{"x":[2,3)", "v:0:7", R"(o:1:{"b":[4]})", "e:0:[]"};
  EXPECT_EQ(seen.events, want);
  EXPECT_TRUE(doc->root().find("a")->is_array());
  EXPECT_EQ(doc->root().find("a")->size(), 0u);          // streamed, not kept
  EXPECT_EQ(doc->root().find("o")->find("b")->size(), 1u);  // not a root array: kept
  EXPECT_EQ(doc->root().find("v")->integer(), 7);
  // The same text without a stream keeps everything; a root that is an array streams nothing.
  EXPECT_EQ(JsonDoc::parse(text)->root().find("a")->size(), 3u);
  Seen none;
  EXPECT_EQ(JsonDoc::parse("[[1,2],[3]]", none)->root().size(), 2u);
  EXPECT_TRUE(none.events.empty());
}

// What a stream throws ends the parse; a syntax error after streamed elements is still an error.
TEST(PolicyJsonDoc, StreamErrorsEndTheParse) {
  struct Refuses : JsonStream {
    size_t seen = 0;
    void element(std::string_view, size_t index, const JsonValue&) override {
      ++seen;
      if (index == 2) throw std::runtime_error("no third");
    }
    void member(std::string_view, const JsonValue&) override {}
  } refuses;
  EXPECT_THROW(JsonDoc::parse(R"({"a":[1,2,3,4,5]})", refuses), std::runtime_error);
  EXPECT_EQ(refuses.seen, 3u);
  Refuses late;
  EXPECT_THROW(JsonDoc::parse(R"({"a":[1,2]} x)", late), JsonParseError);
  EXPECT_EQ(late.seen, 2u);
}

}  // namespace
}  // namespace lfp::policy
