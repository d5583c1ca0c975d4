// SPDX-License-Identifier: MIT
// Issue 30, finding 8: every `lfp show` listing pages (--offset, --limit), and without them lists
// everything, however many objects there are and however large: more than one page of objects, and
// pages of objects together larger than a frame, which a single reply could not carry.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <set>
#include <string>

#include "daemon_support.hpp"
#include "lfp/netevents/event.hpp"

namespace lfp {
namespace {

using nlohmann::json;
using test::Daemon;

struct CliRun {
  int code;
  std::string out;  // standard output; standard error too with `merged`
};

CliRun lfp(const Daemon& d, const std::string& args, bool merged = false) {
  const std::string cmd = test::lfp_cli_path() + " --socket " + d.socket() + " " + args + (merged ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[65536];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, out};
}

json lfp_json(const Daemon& d, const std::string& args) {
  const CliRun r = lfp(d, args + " --json");
  EXPECT_EQ(r.code, 0) << args;
  return json::parse(r.out);
}

constexpr size_t kProviders = 10050, kFilters = 10500;

TEST(CliPaging, EveryListingPagesAndListsAllWithoutPaging) {
  Daemon lfpd;
  // 2 KiB of description each: 10000 of a kind (one page of the client's) are 20 MiB, more than a
  // frame, and so is the state reply with every provider.
  const std::string text(2048, 'd');
  json policy = {{"providers", json::array()}, {"filters", json::array()}};
  for (size_t i = 0; i < kProviders; ++i) policy["providers"].push_back({{"name", "p" + std::to_string(i)}, {"description", text}});
  for (size_t i = 0; i < kFilters; ++i)
    policy["filters"].push_back({{"name", "f" + std::to_string(i)}, {"description", text}, {"layer", "ALE_AUTH_CONNECT_V4"},
                                 {"action", "BLOCK"}, {"weight", {{"explicit", i}}}});
  auto c = lfpd.connect();
  c->apply(policy);
  // What a single reply cannot hold: lfpd says so (and lfp never asks for it).
  try {
    c->call("state");
    ADD_FAILURE() << "a state reply of 20 MiB of providers";
  } catch (const client::ClientError& e) {
    EXPECT_NE(e.message().find("reply too large"), std::string::npos) << e.what();
  }

  const json filters = lfp_json(lfpd, "show filters");
  ASSERT_EQ(filters.size(), kFilters);
  std::set<std::string> keys;
  for (const json& f : filters) keys.insert(f["key"].get<std::string>());
  EXPECT_EQ(keys.size(), kFilters);
  EXPECT_EQ(lfp_json(lfpd, "show providers").size(), kProviders);

  // A part, across a page boundary, is the same part of the whole.
  const json part = lfp_json(lfpd, "show filters --offset 5 --limit 10003");
  ASSERT_EQ(part.size(), 10003u);
  EXPECT_EQ(part.front(), filters[5]);
  EXPECT_EQ(part.back(), filters[10007]);
  const json tail = lfp_json(lfpd, "show filters --offset 10490 --limit 50");
  ASSERT_EQ(tail.size(), 10u);
  EXPECT_EQ(tail.back(), filters.back());
  EXPECT_TRUE(lfp_json(lfpd, "show filters --offset 20000").empty());
  const CliRun said = lfp(lfpd, "show providers --offset 10 --limit 2", true);
  EXPECT_NE(said.out.find("2 of 10050 providers shown (from offset 10)"), std::string::npos) << said.out;

  // state: all of it by pages, and a part of each kind.
  const json state = lfp_json(lfpd, "show state");
  EXPECT_EQ(state["providers"].size(), kProviders);
  EXPECT_EQ(state["filters"].size(), kFilters);
  EXPECT_EQ(state["provider_count"], kProviders);
  EXPECT_EQ(state["session_count"], state["sessions"].size());
  const CliRun some = lfp(lfpd, "show state --offset 1 --limit 3");
  EXPECT_EQ(some.code, 0);
  EXPECT_NE(some.out.find("== filters (3 of 10500 from offset 1)"), std::string::npos) << some.out.substr(0, 2000);
  EXPECT_NE(some.out.find("== providers (3 of 10050 from offset 1)"), std::string::npos);
  EXPECT_EQ(lfp(lfpd, "show state").code, 0);

  // lfp export reads the objects by pages too.
  const CliRun exported_run = lfp(lfpd, "export");
  ASSERT_EQ(exported_run.code, 0);
  const json exported = json::parse(exported_run.out);
  EXPECT_EQ(exported["filters"].size(), kFilters);
  EXPECT_EQ(exported["providers"].size(), kProviders);

  // Net events: --offset and --limit.
  json events = json::array();
  for (int i = 0; i < 5; ++i)
    events.push_back({{"type", "CLASSIFY_DROP"}, {"time", netevents::format_time(netevents::now_ns())}, {"ip_protocol", 6},
                      {"remote_address", "10.0.0." + std::to_string(i + 1)}, {"remote_port", 443}, {"uid", 0},
                      {"layer", "ALE_AUTH_CONNECT_V4"}, {"direction", "OUTBOUND"}});
  c->call("netevents_ingest", {{"events", events}});
  const json all = lfp_json(lfpd, "show netevents");
  ASSERT_EQ(all["events"].size(), 5u);
  const json two = lfp_json(lfpd, "show netevents --offset 1 --limit 2");
  ASSERT_EQ(two["events"].size(), 2u);
  EXPECT_EQ(two["total"], 5);
  EXPECT_EQ(two["events"][0]["seq"], all["events"][1]["seq"]);
  EXPECT_EQ(two["events"][1]["seq"], all["events"][2]["seq"]);
}

// A page of lfpd's stops at 8 MiB whatever its limit: a client that asks for 10000 at once gets
// fewer, and a next_offset that continues.
TEST(CliPaging, APageNeverOutgrowsAFrame) {
  Daemon lfpd;
  const std::string text(4096, 'x');
  json policy = {{"filters", json::array()}};
  for (int i = 0; i < 5000; ++i)
    policy["filters"].push_back({{"name", "f" + std::to_string(i)}, {"description", text}, {"layer", "ALE_AUTH_CONNECT_V4"},
                                 {"action", "BLOCK"}});
  auto c = lfpd.connect();
  c->apply(policy);
  const json page = c->call("enum", {{"kind", "filter"}, {"limit", 10000}});
  EXPECT_EQ(page["total"], 5000);
  const size_t n = page["objects"].size();
  EXPECT_GT(n, 1000u);
  EXPECT_LT(n, 5000u);
  EXPECT_EQ(page["next_offset"], n);
  EXPECT_EQ(c->enumerate("filter").size(), 5000u);
}

}  // namespace
}  // namespace lfp
