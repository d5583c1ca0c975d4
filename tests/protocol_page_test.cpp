// SPDX-License-Identifier: MIT
// A listing op's page (protocol::page_of: flows, pending_list): offset and limit as enum takes them,
// a page that never outgrows a frame, and "next_offset" to follow to the end.
#include <gtest/gtest.h>

#include <string>

#include "lfp/protocol/request.hpp"
#include "lfp/protocol/wire.hpp"

namespace lfp::protocol {
namespace {

using nlohmann::json;

json numbers(int n) {
  json a = json::array();
  for (int i = 0; i < n; ++i) a.push_back(i);
  return a;
}

TEST(ProtocolPage, OffsetLimitTotalAndNextOffset) {
  json p = page_of(numbers(25), {{"offset", 0}, {"limit", 10}}, "items");
  EXPECT_EQ(p["items"], json({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(p["total"], 25);
  EXPECT_EQ(p["next_offset"], 10);
  p = page_of(numbers(25), {{"offset", 20}, {"limit", 10}}, "items");
  EXPECT_EQ(p["items"], json({20, 21, 22, 23, 24}));
  EXPECT_TRUE(p["next_offset"].is_null());
  p = page_of(numbers(25), {{"offset", 100}}, "items");
  EXPECT_TRUE(p["items"].empty());
  EXPECT_TRUE(p["next_offset"].is_null());
  // Defaults: from the first, kDefaultPage at most.
  p = page_of(numbers(1500), json::object(), "items");
  EXPECT_EQ(p["items"].size(), kDefaultPage);
  EXPECT_EQ(p["next_offset"], kDefaultPage);
  // Following next_offset gives every item once, in order.
  json all = json::array();
  for (json next = 0; !next.is_null();) {
    p = page_of(numbers(2345), {{"offset", next}, {"limit", 1000}}, "items");
    for (auto& i : p["items"]) all.push_back(i);
    next = p["next_offset"];
  }
  EXPECT_EQ(all, numbers(2345));
}

TEST(ProtocolPage, APageNeverOutgrowsAFrameAndBadMembersAreNamed) {
  json big = json::array();
  for (int i = 0; i < 40; ++i) big.push_back(std::string(1 << 20, 'x'));
  const json p = page_of(big, {{"limit", 40}}, "items");
  EXPECT_LT(p["items"].size(), 40u);
  EXPECT_LE(p.dump().size(), wire::kMaxFrame);
  EXPECT_EQ(p["next_offset"], p["items"].size());
  for (const json& bad : {json{{"limit", "10"}}, json{{"limit", kMaxPage + 1}}, json{{"offset", -1}}}) {
    try {
      page_of(numbers(5), bad, "items");
      ADD_FAILURE() << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::INVALID_PARAMETER);
      EXPECT_EQ(e.detail().rfind("/" + bad.begin().key() + ":", 0), 0u) << e.what();
    }
  }
}

}  // namespace
}  // namespace lfp::protocol
