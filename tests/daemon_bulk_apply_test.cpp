// SPDX-License-Identifier: MIT
// A bulk apply through the real lfpd, in pieces as `lfp apply FILE` sends it: filters without a key
// get theirs on lfpd's reader (so that the loop can fetch their map slots ahead of their adds), each
// one distinct and the one its add answered; a filter the engine refuses half way through leaves
// nothing of the pieces before it, in lfpd's own transaction or (after an abort) in the caller's.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "daemon_support.hpp"
#include "lfp/engine/guid.hpp"

namespace lfp {
namespace {

using nlohmann::json;
using test::Daemon;

// n keyless BLOCK filters on distinct remote addresses: several of the client's pieces (160 KiB).
json blocklist(int n) {
  json filters = json::array();
  for (int i = 0; i < n; ++i)
    filters.push_back({{"name", "b" + std::to_string(i)},
                       {"layer", "ALE_AUTH_CONNECT_V4"},
                       {"action", "BLOCK"},
                       {"conditions", json::array({{{"field", "IP_REMOTE_ADDRESS"},
                                                    {"value", "100.64." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)}}})}});
  return {{"filters", std::move(filters)}};
}

TEST(LfpdBulkApply, KeylessFiltersGetDistinctKeysAndOneCanBeDeleted) {
  Daemon d;
  auto c = d.connect();
  constexpr int n = 20000;
  const std::string text = blocklist(n).dump();
  ASSERT_GT(text.size(), 4u * 160 * 1024) << "the test must go in several pieces";
  const json r = c->apply_text(text);
  ASSERT_EQ(r["added"].size(), static_cast<size_t>(n));
  std::set<std::string> keys;
  std::set<uint64_t> ids;
  for (const json& a : r["added"]) {
    const auto key = lfp::Guid::parse(a["key"].get<std::string>());
    ASSERT_TRUE(key && !key->is_nil()) << a;
    keys.insert(a["key"].get<std::string>());
    ids.insert(a["id"].get<uint64_t>());
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(n));
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));
  // The keys answered are the filters' keys, in file order.
  const std::vector<json> listed = c->enumerate("filter");
  ASSERT_EQ(listed.size(), static_cast<size_t>(n));
  std::set<std::string> listed_keys;
  for (const json& f : listed) listed_keys.insert(f["key"].get<std::string>());
  EXPECT_EQ(listed_keys, keys);
  const json f777 = c->call("get", {{"kind", "filter"}, {"key", r["added"][777]["key"]}});
  EXPECT_EQ(f777["name"], "b777");
  EXPECT_EQ(f777["id"], r["added"][777]["id"]);
  // One deleted by its key, another by its id: the rest stay.
  c->remove("filter", r["added"][777]["key"].get<std::string>());
  c->remove_filter(r["added"][778]["id"].get<uint64_t>());
  EXPECT_EQ(c->enumerate("filter").size(), static_cast<size_t>(n - 2));
  try {
    c->call("get", {{"kind", "filter"}, {"key", r["added"][777]["key"]}});
    ADD_FAILURE() << "a deleted filter was found";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "NOT_FOUND") << e.what();
  }
  EXPECT_EQ(c->call("get", {{"kind", "filter"}, {"filter_id", r["added"][779]["id"]}})["name"], "b779");
}

TEST(LfpdBulkApply, AFilterRefusedHalfWayLeavesNothing) {
  Daemon d;
  auto c = d.connect();
  c->add("filter", {{"name", "kept"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "PERMIT"}, {"flags", {"PERSISTENT"}}});
  const std::vector<json> before = c->enumerate("filter");
  constexpr int n = 20000, bad = 12345;
  json policy = blocklist(n);
  // Read well, refused by the engine when its turn comes: the pieces before it were added.
  policy["filters"][bad]["sublayer"] = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
  const std::string text = policy.dump();
  auto refused = [&] {
    try {
      c->apply_text(text);
      ADD_FAILURE() << "a filter in a sublayer that does not exist was accepted";
    } catch (const client::ClientError& e) {
      EXPECT_EQ(e.code(), "SUBLAYER_NOT_FOUND") << e.what();
      EXPECT_NE(e.message().find("/filters/" + std::to_string(bad) + ": "), std::string::npos) << e.what();
    }
  };
  // In its own transaction: nothing applied.
  refused();
  EXPECT_EQ(json(c->enumerate("filter")).dump(), json(before).dump());
  // In the caller's: the pieces before it are held until the caller aborts, then nothing is left.
  c->begin();
  refused();
  EXPECT_GT(c->enumerate("filter").size(), before.size());
  c->abort();
  EXPECT_EQ(json(c->enumerate("filter")).dump(), json(before).dump());
  EXPECT_EQ(c->call("state")["filter_count"], 1);
  // And nothing reached the store.
  d.restart();
  auto c2 = d.connect();
  const std::vector<json> after = c2->enumerate("filter");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["name"], "kept");
}

}  // namespace
}  // namespace lfp
