// SPDX-License-Identifier: MIT
// `lfp apply FILE` sends a policy file to lfpd as it is parsed (Client::apply_text): lfpd adds the first
// pieces while the last are parsed, and still gets all of it or none.
#include <gtest/gtest.h>

#include <string>

#include "daemon_support.hpp"

namespace lfp {
namespace {

using nlohmann::json;
using test::Daemon;

// A policy file of n filters (about 150 bytes each: n = 20000 makes some twenty pieces), `tail`
// written after the list.
std::string policy_text(int n, const std::string& tail = "") {
  std::string t = R"({"filters":[)";
  for (int i = 0; i < n; ++i)
    t += std::string(i ? "," : "") + R"({"name":"f)" + std::to_string(i) +
         R"(","layer":"ALE_AUTH_CONNECT_V4","action":"BLOCK","conditions":[{"field":"IP_REMOTE_PORT","value":)" +
         std::to_string(1 + i % 60000) + "}]}";
  return t + "]" + tail + "}";
}

TEST(ClientApplyText, AFileInPiecesIsAppliedWholeAsItIsParsed) {
  Daemon d;
  auto c = d.connect();
  constexpr int kFilters = 20000;
  const std::string text = policy_text(kFilters, R"(,"version":1)");  // (a member after the list goes too)
  ASSERT_GT(text.size(), 1u << 20) << "the test needs several pieces (of 160 KiB)";
  const json r = c->apply_text(text);
  ASSERT_EQ(r["added"].size(), static_cast<size_t>(kFilters));
  const auto filters = c->enumerate("filter");
  ASSERT_EQ(filters.size(), static_cast<size_t>(kFilters));
  EXPECT_EQ(filters.front()["name"], "f0");  // in file order
  EXPECT_EQ(filters.back()["name"], "f" + std::to_string(kFilters - 1));
}

// Text that goes wrong after lfpd took the first pieces: the parser's error, nothing applied, and
// the session free to go on (its transaction was aborted).
TEST(ClientApplyText, TextThatGoesWrongLateAppliesNothing) {
  Daemon d;
  auto c = d.connect();
  std::string broken = policy_text(20000);
  broken.insert(broken.find(R"({"name":"f19990")"), "?");  // (between two filters)
  EXPECT_THROW(c->apply_text(broken), policy::JsonParseError);
  EXPECT_TRUE(c->enumerate("filter").empty());

  std::string repeated = policy_text(20000);
  const std::string at = R"({"name":"f19000",)";
  repeated.replace(repeated.find(at), at.size(), at + R"("name":"again",)");
  try {
    c->apply_text(repeated);
    FAIL() << "a repeated member was sent";
  } catch (const policy::JsonParseError& e) {
    EXPECT_NE(std::string(e.what()).find("/filters/19000/name: duplicate member"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(c->enumerate("filter").empty());

  // A bad version after the list: lfpd's own error, nothing applied.
  EXPECT_THROW(c->apply_text(policy_text(20000, R"(,"version":99)")), client::ClientError);
  EXPECT_TRUE(c->enumerate("filter").empty());

  // Then small and odd texts, on the same session: one piece, and what lfpd says of a non-object.
  EXPECT_EQ(c->apply_text(policy_text(3))["added"].size(), 3u);
  EXPECT_THROW(c->apply_text("[1,2]"), client::ClientError);
  EXPECT_THROW(c->apply_text("{\"filters\":[}"), policy::JsonParseError);
  EXPECT_EQ(c->enumerate("filter").size(), 3u);
}

}  // namespace
}  // namespace lfp
