// SPDX-License-Identifier: MIT
// lfpd end to end: the real daemon on a temporary state dir, driven through the real client.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <filesystem>
#include <cstring>
#include <random>
#include <set>

#include "daemon_support.hpp"
#include "lfp/protocol/wire.hpp"

namespace lfp {
namespace {

using nlohmann::json;
using test::Daemon;

json filter_json(const std::string& name, int port, bool persistent = false, const std::string& sublayer = "") {
  json f = {{"name", name},
            {"layer", "ALE_AUTH_CONNECT_V4"},
            {"action", "BLOCK"},
            {"conditions", json::array({{{"field", "IP_REMOTE_PORT"}, {"value", port}}})}};
  if (persistent) f["flags"] = json::array({"PERSISTENT"});
  if (!sublayer.empty()) f["sublayer"] = sublayer;
  return f;
}

std::set<std::string> filter_names(client::Client& c) {
  std::set<std::string> names;
  for (auto& f : c.enumerate("filter")) names.insert(f["name"].get<std::string>());
  return names;
}

// Polls until pred() holds or 5 s pass.
template <class P>
bool eventually(P pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(Lfpd, DynamicObjectsVanishWhenTheClientIsKilled) {
  Daemon d;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    client::Client c(d.socket(), {.name = "dynamic holder", .dynamic = true});
    json sub = c.add("sublayer", {{"name", "dyn sublayer"}, {"weight", 5}});
    c.add("filter", filter_json("dyn filter", 23, false, sub["key"]));
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char x;
  ASSERT_EQ(read(ready[0], &x, 1), 1);
  auto c = d.connect();
  EXPECT_EQ(filter_names(*c).count("dyn filter"), 1u);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(eventually([&] { return filter_names(*c).empty() && c->enumerate("sublayer").size() == 2; }));
  close(ready[0]);
  close(ready[1]);
}

// A policy larger than a message (16 MiB) goes in pieces, in one transaction: all of it or none,
// an error naming its place in the whole policy, one warning a layer for the whole of it.
TEST(Lfpd, PolicyLargerThanAMessageIsAppliedWholeOrNotAtAll) {
  Daemon d;
  auto c = d.connect();
  constexpr int kFilters = 150000;  // about 20 MB of JSON
  json policy = {{"filters", json::array()}};
  for (int i = 0; i < kFilters; ++i) {
    json f = filter_json("bulk " + std::to_string(i), 1 + i % 60000);
    f["description"] = std::string(40, 'x');
    policy["filters"].push_back(std::move(f));
  }
  ASSERT_GT(policy.dump().size(), lfp::wire::kMaxFrame) << "the test must need more than one message";
  // A bad filter far into it: nothing is added, and the error names it in the whole policy.
  json bad = policy;
  bad["filters"][kFilters - 7]["conditions"][0]["field"] = "NO_SUCH_FIELD";
  try {
    c->apply(bad);
    FAIL() << "a bad filter was accepted";
  } catch (const client::ClientError& e) {
    EXPECT_NE(std::string(e.what()).find("/filters/" + std::to_string(kFilters - 7) + "/conditions/0/field"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(c->enumerate("filter").empty());
  // The good one: every filter, in file order, and one warning for the layer (no data path here).
  const json r = c->apply(policy);
  ASSERT_EQ(r["added"].size(), static_cast<size_t>(kFilters));
  EXPECT_EQ(c->enumerate("filter").size(), static_cast<size_t>(kFilters));
  ASSERT_EQ(r["warnings"].size(), 1u) << r["warnings"].dump();
  EXPECT_NE(r["warnings"][0].get<std::string>().find(std::to_string(kFilters) + " filters at ALE_AUTH_CONNECT_V4"),
            std::string::npos) << r["warnings"][0];
}

TEST(Lfpd, AbortedTransactionLeavesNothing) {
  Daemon d;
  auto c = d.connect();
  c->add("filter", filter_json("kept", 22, true));
  c->begin(true);
  json before_state = c->call("state");
  auto before_filters = c->enumerate("filter");
  c->commit();

  c->begin();
  json p = c->add("provider", {{"name", "temp provider"}});
  c->add("sublayer", {{"name", "temp sublayer"}, {"provider", p["key"]}, {"weight", 9}});
  c->add("filter", filter_json("temp", 80));
  c->remove("filter", before_filters[0]["key"]);
  c->abort();

  c->begin(true);
  EXPECT_EQ(c->call("state").dump(), before_state.dump());
  EXPECT_EQ(json(c->enumerate("filter")).dump(), json(before_filters).dump());  // the same run-time id too
  c->commit();
  // And nothing reached the store: after a restart only the kept filter is there.
  d.restart();
  auto c2 = d.connect();
  EXPECT_EQ(filter_names(*c2), std::set<std::string>{"kept"});
}

// Undo restores deleted objects as the engine held them: a callout, a provider context and the
// filter using both come back with their keys, and the filter with its run-time id. (Callout and
// provider context ids are assigned by the engine, which does not yet take a preset one.)
TEST(Lfpd, AbortRestoresCalloutsAndProviderContexts) {
  Daemon d;
  auto c = d.connect();
  json callout = c->add("callout", {{"name", "co"}, {"layer", "ALE_AUTH_CONNECT_V4"}});
  json ctx = c->add("provider_context", {{"name", "ctx"}, {"data", "cfg"}});
  json f = filter_json("uses both", 5);
  f["action"] = {{"type", "CALLOUT_TERMINATING"}, {"callout", callout["key"]}};
  f["flags"] = {"HAS_PROVIDER_CONTEXT"};
  f["provider_context"] = ctx["key"];
  json added = c->add("filter", f);
  json before = c->get("filter", added["key"]);
  c->begin();
  c->remove("filter", added["key"]);
  c->remove("callout", callout["key"]);
  c->remove("provider_context", ctx["key"]);
  c->abort();
  json after = c->get("filter", added["key"]);
  EXPECT_EQ(after["id"], before["id"]);
  EXPECT_EQ(after.dump(), before.dump());
  EXPECT_EQ(c->get("callout", callout["key"])["name"], "co");
  EXPECT_EQ(c->get("provider_context", ctx["key"])["data"], "cfg");
}

TEST(Lfpd, FailedCallDoesNotSpoilTheTransaction) {
  Daemon d;
  auto c = d.connect();
  c->begin();
  c->add("filter", filter_json("one", 1));
  EXPECT_THROW(c->add("filter", {{"name", "bad"}, {"layer", "NO_SUCH_LAYER"}, {"action", "BLOCK"}}), client::ClientError);
  // An apply that fails half way adds nothing of its own...
  json pol = {{"filters", json::array({filter_json("two", 2), filter_json("three", 3)})}};
  pol["filters"][1]["sublayer"] = "7a3d6c2e-0000-4000-8000-000000000001";  // no such sublayer
  try {
    c->apply(pol);
    ADD_FAILURE() << "apply should fail";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "SUBLAYER_NOT_FOUND");
    EXPECT_NE(e.message().find("/filters/1"), std::string::npos) << e.message();
  }
  c->commit();
  EXPECT_EQ(filter_names(*c), std::set<std::string>{"one"});
}

TEST(Lfpd, ConcurrentWritersSerialize) {
  Daemon d;
  auto a = d.connect({.name = "A"});
  a->begin();
  a->add("filter", filter_json("from A", 1));
  std::atomic<bool> b_began{false};
  std::atomic<bool> a_committed{false};
  bool b_saw_a_committed = false;
  std::thread tb([&] {
    auto b = d.connect({.name = "B", .txn_wait_ms = 5000});
    b->begin();  // waits for A
    b_began = true;
    b_saw_a_committed = a_committed;
    b->add("filter", filter_json("from B", 2));
    b->commit();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(b_began);
  a_committed = true;
  a->commit();
  tb.join();
  EXPECT_TRUE(b_saw_a_committed);
  EXPECT_EQ(filter_names(*a), (std::set<std::string>{"from A", "from B"}));

  // A writer that cannot get the lock in its wait time gets TIMEOUT.
  a->begin();
  auto c = d.connect({.name = "C", .txn_wait_ms = 200});
  try {
    c->begin();
    ADD_FAILURE() << "begin should time out";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "TIMEOUT");
    // ... naming who holds the lock.
    EXPECT_NE(e.message().find("held by session"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("'A' (uid " + std::to_string(getuid())), std::string::npos) << e.message();
  }
  a->abort();
}

// A read transaction never holds a writer back (issue 30: one reader froze every write): the
// writer goes ahead, and the reader's next request in its transaction says it was ended.
TEST(Lfpd, AReaderNeverHoldsAWriterBack) {
  Daemon d;
  auto r = d.connect({.name = "reader"});
  r->begin(true);
  EXPECT_TRUE(r->enumerate("filter").empty());
  auto w = d.connect({.name = "writer", .txn_wait_ms = 1000});
  const auto t0 = std::chrono::steady_clock::now();
  w->add("filter", filter_json("written", 1));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500)) << "the writer waited for the reader";
  try {
    r->enumerate("filter");
    ADD_FAILURE() << "a read in the ended read transaction was answered";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "TXN_ABORTED");
    EXPECT_NE(e.message().find("read transaction was ended"), std::string::npos) << e.message();
  }
  r->abort();
  r->begin(true);
  EXPECT_EQ(filter_names(*r), std::set<std::string>{"written"});
  r->commit();
}

// A write transaction whose client sends nothing is aborted after --txn-idle-timeout-ms: a stalled
// client does not hold every writer; it learns of it at its next request, which is not applied.
TEST(Lfpd, AnIdleWriteTransactionIsAborted) {
  Daemon d({"--txn-idle-timeout-ms", "300"});
  auto w = d.connect({.name = "stalled"});
  w->begin();
  w->add("filter", filter_json("never committed", 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto c = d.connect({.name = "other", .txn_wait_ms = 200});
  c->begin();  // the lock is free: no TIMEOUT
  c->add("filter", filter_json("other's", 2));
  c->commit();
  try {
    w->add("filter", filter_json("after the abort", 3));
    ADD_FAILURE() << "a request in the aborted transaction was applied";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "TXN_ABORTED");
    EXPECT_NE(e.message().find("no request for 300 ms"), std::string::npos) << e.message();
  }
  EXPECT_THROW(w->commit(), client::ClientError);
  EXPECT_EQ(filter_names(*c), std::set<std::string>{"other's"});
  w->begin();  // the session goes on
  w->add("filter", filter_json("later", 4));
  w->commit();
  EXPECT_EQ(filter_names(*c), (std::set<std::string>{"other's", "later"}));
}

TEST(Lfpd, ReadersNeverSeeHalfATransaction) {
  Daemon d;
  auto w = d.connect();
  w->begin();
  w->add("filter", filter_json("uncommitted", 1));
  auto r = d.connect({.name = "reader", .txn_wait_ms = 5000});
  std::vector<json> seen;
  std::thread tr([&] { seen = r->enumerate("filter"); });  // waits for the writer
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  w->add("filter", filter_json("uncommitted 2", 2));
  w->commit();
  tr.join();
  EXPECT_EQ(seen.size(), 2u);  // all of it, never half
}

TEST(Lfpd, SessionEndingMidTransactionAbortsIt) {
  Daemon d;
  {
    auto w = d.connect();
    w->begin();
    w->add("filter", filter_json("never committed", 1));
  }  // connection closed
  auto c = d.connect({.txn_wait_ms = 2000});
  EXPECT_TRUE(filter_names(*c).empty());
  c->begin();  // the lock is free again
  c->commit();
}

TEST(Lfpd, PersistentObjectsSurviveRestart) {
  Daemon d;
  auto c = d.connect();
  json p = c->add("provider", {{"name", "p"}, {"flags", {"PERSISTENT"}}});
  json s = c->add("sublayer", {{"name", "s"}, {"weight", 100}, {"provider", p["key"]}, {"flags", {"PERSISTENT"}}});
  c->add("filter", filter_json("persistent", 23, true, s["key"]));
  c->add("filter", filter_json("static", 24));
  c.reset();
  d.restart();
  c = d.connect();
  EXPECT_EQ(filter_names(*c), std::set<std::string>{"persistent"});
  EXPECT_EQ(c->enumerate("provider").size(), 1u);
  json r = c->classify("ALE_AUTH_CONNECT_V4", {{"IP_REMOTE_PORT", 23}});
  EXPECT_EQ(r["action"], "BLOCK");
  // Deleting a persistent object is persistent too.
  c->remove("filter", c->enumerate("filter")[0]["key"]);
  c.reset();
  d.restart();
  c = d.connect();
  EXPECT_TRUE(filter_names(*c).empty());
}

TEST(Lfpd, NonAdminIsRefusedWritesAndCanRead) {
  LFP_REQUIRE_ROOT("it runs a client as nobody");
  Daemon d;
  d.connect()->add("filter", filter_json("root's", 23));
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    try {
      client::Client c(d.socket());
      if (c.session()["role"] != "reader") _exit(11);
      if (c.enumerate("filter").size() != 1) _exit(12);  // can read
      try {
        c.add("filter", filter_json("nobody's", 1));
        _exit(13);
      } catch (const client::ClientError& e) {
        if (e.code() != "ACCESS_DENIED") _exit(14);
      }
      try {
        c.begin();
        _exit(15);
      } catch (const client::ClientError& e) {
        if (e.code() != "ACCESS_DENIED") _exit(16);
      }
      _exit(0);
    } catch (...) {
      _exit(20);
    }
  }
  int status = -1;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Lfpd, ProviderObjectsAreProtectedFromOtherProviders) {
  Daemon d;
  auto admin = d.connect();
  json p1 = admin->add("provider", {{"name", "vpn"}});
  json p2 = admin->add("provider", {{"name", "firewall"}});
  json f = p1;
  auto vpn = d.connect({.name = "vpn", .provider = p1["key"].get<std::string>()});
  json filt = filter_json("vpn filter", 500);
  filt["provider"] = p1["key"];
  json added = vpn->add("filter", filt);
  auto fw = d.connect({.name = "firewall", .provider = p2["key"].get<std::string>()});
  try {
    fw->remove("filter", added["key"]);
    ADD_FAILURE() << "another provider's session deleted the filter";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "ACCESS_DENIED");
  }
  fw->remove("filter", added["key"], /*force=*/true);  // an admin says otherwise
  EXPECT_TRUE(filter_names(*admin).empty());
}

TEST(Lfpd, ChangeSubscription) {
  Daemon d;
  auto m = d.connect();
  m->subscribe({"filter"});
  auto c = d.connect();
  json a = c->add("filter", filter_json("watched", 7));
  c->add("provider", {{"name", "not watched"}});
  c->remove("filter", a["key"]);
  auto e1 = m->next_event(2000);
  auto e2 = m->next_event(2000);
  ASSERT_TRUE(e1 && e2);
  EXPECT_EQ((*e1)["change"], "ADD");
  EXPECT_EQ((*e1)["object"]["name"], "watched");
  EXPECT_EQ((*e2)["change"], "DELETE");
  EXPECT_FALSE(m->next_event(100));  // the provider was not subscribed to
}

TEST(Lfpd, ApplyAnnouncesEveryObjectToSubscribers) {
  Daemon d;
  auto m = d.connect();
  m->subscribe({"filter"});
  auto c = d.connect();
  json pol = {{"filters", json::array({filter_json("a", 1), filter_json("b", 2), filter_json("c", 3)})}};
  json added = c->apply(pol)["added"];
  ASSERT_EQ(added.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto e = m->next_event(2000);
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["change"], "ADD");
    EXPECT_EQ((*e)["object"]["key"], added[i]["key"]);
    EXPECT_EQ((*e)["object"]["id"], added[i]["id"]);
  }
}

// The store keeps a persistent object as the request gave it (or as lfpd writes it): whatever the
// form, it comes back after a restart with the same key, in the order it was added.
TEST(Lfpd, PersistentObjectsComeBackAsAdded) {
  Daemon d;
  auto c = d.connect();
  json p = c->add("provider", {{"name", "p"}, {"flags", {"PERSISTENT"}}, {"description", "caf\u00e9 \"x\""}});
  // Generated keys, a key in braces and capitals, output-only members, equal weights.
  const std::string braced = "{7A3D6C2E-0000-4000-8000-0000000000AB}";
  json pol = {{"filters", json::array()}};
  for (int i = 0; i < 5; ++i) pol["filters"].push_back(filter_json("f" + std::to_string(i), 100 + i, true));
  pol["filters"][2]["key"] = braced;
  pol["filters"][3]["id"] = 12345;
  pol["filters"][3]["effective_weight"] = 7;
  c->apply(pol);
  // What `get` returns can be added back (its owner, id and effective_weight are ignored).
  json got = c->get("provider", p["key"]);
  ASSERT_TRUE(got.contains("owner"));
  c->begin();
  c->remove("provider", p["key"]);
  c->add("provider", got);
  c->commit();
  auto before = c->enumerate("filter");
  c.reset();
  d.restart();
  c = d.connect();
  auto after = c->enumerate("filter");
  ASSERT_EQ(after.size(), 5u);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i]["name"], "f" + std::to_string(i));  // equal weights: the order they were added
    EXPECT_EQ(after[i]["key"], before[i]["key"]);
    EXPECT_EQ(after[i]["conditions"], before[i]["conditions"]);
  }
  EXPECT_EQ(after[2]["key"], "7a3d6c2e-0000-4000-8000-0000000000ab");
  json prov = c->get("provider", p["key"]);
  EXPECT_EQ(prov["description"], "caf\u00e9 \"x\"");
  EXPECT_EQ(prov["flags"], json::array({"PERSISTENT"}));
}

// A persistent object replaced by a static one of the same key in one transaction: its row goes.
TEST(Lfpd, StaticReplacementOfAPersistentObjectLeavesNoRow) {
  Daemon d;
  auto c = d.connect();
  json kept = c->add("filter", filter_json("kept", 1, true));
  json replaced = c->add("filter", filter_json("replaced", 2, true));
  c->begin();
  c->remove("filter", replaced["key"]);
  json f = filter_json("static now", 3);
  f["key"] = replaced["key"];
  c->add("filter", f);
  c->commit();
  EXPECT_EQ(filter_names(*c), (std::set<std::string>{"kept", "static now"}));
  c.reset();
  d.restart();
  c = d.connect();
  EXPECT_EQ(filter_names(*c), std::set<std::string>{"kept"});
  // And a static object made persistent again under the same key is stored again.
  json again = filter_json("persistent again", 4, true);
  again["key"] = replaced["key"];
  c->add("filter", again);
  c.reset();
  d.restart();
  c = d.connect();
  EXPECT_EQ(filter_names(*c), (std::set<std::string>{"kept", "persistent again"}));
}

// Commits are durable in the store's WAL; the store copies them into the database file afterwards.
TEST(Lfpd, StoreCheckpointsAfterCommits) {
  Daemon d;
  auto c = d.connect();
  const std::string db = d.dir() + "/state/policy.db";
  const auto initial = std::filesystem::file_size(db);
  json pol = {{"filters", json::array()}};
  for (int i = 0; i < 2000; ++i) pol["filters"].push_back(filter_json("p" + std::to_string(i), i, true));
  c->apply(pol);
  EXPECT_TRUE(eventually([&] { return std::filesystem::file_size(db) > initial + 200000; }))
      << std::filesystem::file_size(db);
  c.reset();
  d.restart();
  EXPECT_EQ(d.connect()->enumerate("filter").size(), 2000u);
  // SIGTERM stops lfpd cleanly (it removes its socket), whatever threads the store runs.
  d.stop(SIGTERM);
  EXPECT_FALSE(std::filesystem::exists(d.socket()));
}

int raw_connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

TEST(Lfpd, MalformedAndOversizedMessages) {
  Daemon d;
  auto other = d.connect();
  int fd = raw_connect(d.socket());
  ASSERT_GE(fd, 0);
  std::string err, reply;
  // Garbage JSON: an error, and the connection stays usable.
  ASSERT_TRUE(wire::write_frame(fd, "{not json", err));
  ASSERT_TRUE(wire::read_frame(fd, reply, err));
  EXPECT_EQ(json::parse(reply)["ok"], false);
  ASSERT_TRUE(wire::write_frame(fd, R"({"id":1,"op":"hello"})", err));
  ASSERT_TRUE(wire::read_frame(fd, reply, err));
  EXPECT_EQ(json::parse(reply)["ok"], true);
  // Nesting deeper than lfpd reads: an error too.
  ASSERT_TRUE(wire::write_frame(fd, R"({"id":1,"op":"ping","x":)" + std::string(1000, '[') + std::string(1000, ']') + "}", err));
  ASSERT_TRUE(wire::read_frame(fd, reply, err));
  EXPECT_EQ(json::parse(reply)["ok"], false);
  for (const char* bad : {R"([1,2,3])", R"({"id":2})", R"({"id":3,"op":"add","kind":"filter","object":7})",
                          R"({"id":4,"op":"delete","kind":"filter","key":"not-a-guid"})", R"({"id":5,"op":"nope"})",
                          R"({"id":6,"op":"enum","kind":"filter","template":{"layer":"NOPE"}})"}) {
    ASSERT_TRUE(wire::write_frame(fd, bad, err));
    ASSERT_TRUE(wire::read_frame(fd, reply, err)) << err;
    EXPECT_EQ(json::parse(reply)["ok"], false) << bad;
  }
  // An oversized frame header: an error, then the daemon drops this connection only.
  const unsigned char huge[] = {0x7f, 0xff, 0xff, 0xff};
  ASSERT_EQ(write(fd, huge, 4), 4);
  ASSERT_TRUE(wire::read_frame(fd, reply, err));
  EXPECT_EQ(json::parse(reply)["ok"], false);
  EXPECT_FALSE(wire::read_frame(fd, reply, err));  // closed
  close(fd);
  EXPECT_NO_THROW(other->call("ping"));
  EXPECT_NO_THROW(other->add("filter", filter_json("still fine", 1)));
}

TEST(Lfpd, NotRunningSaysHowToStart) {
  try {
    client::Client c("/tmp/lfp-no-such-socket");
    ADD_FAILURE();
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "NOT_RUNNING");
    EXPECT_NE(e.message().find("lfpd --socket"), std::string::npos);
  }
}

// Fault injection: lfpd is killed (SIGKILL) at a random moment around the commit of a transaction
// that replaces generation g-1 of a persistent policy with generation g. After a restart the policy
// must be exactly one generation, complete.
TEST(LfpdFaults, KillDuringCommitLeavesOldOrNewPolicy) {
  // (lfpd's log goes to a file that a failure to restart quotes: "lfpd exited at start" was seen in
  // full-suite runs and never alone, 800 restarts on 2026-12-07.)
  Daemon d({}, {}, {.log_file = true});
  std::mt19937 rng(12345);
  constexpr int kFilters = 150;
  int generation = 0, saw_old = 0, saw_new = 0;
  for (int trial = 1; trial <= 100; ++trial) {
    auto c = d.connect();
    c->begin();
    for (auto& f : c->enumerate("filter")) c->remove("filter", f["key"]);
    json pol = {{"filters", json::array()}};
    for (int i = 0; i < kFilters; ++i)
      pol["filters"].push_back(filter_json("gen " + std::to_string(trial) + " #" + std::to_string(i), i, true));
    c->apply(pol);
    // Send the commit and kill the daemon 0-15 ms later, before or during or after it (the commit
    // itself takes about a millisecond: every other trial kills within 0.4 ms).
    std::string err;
    ASSERT_TRUE(wire::write_frame(c->fd(), R"({"id":999999,"op":"txn_commit"})", err));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (trial % 2 ? 400 : 15000)));
    d.stop(SIGKILL);
    c.reset();
    d.start();
    auto check = d.connect();
    auto names = filter_names(*check);
    std::set<int> gens;
    for (auto& n : names) gens.insert(std::stoi(n.substr(4)));
    ASSERT_LE(gens.size(), 1u) << "a mix of generations after trial " << trial;
    int g = gens.empty() ? 0 : *gens.begin();
    ASSERT_TRUE(g == generation || g == trial) << "trial " << trial << " found generation " << g;
    if (g != 0) ASSERT_EQ(names.size(), static_cast<size_t>(kFilters)) << "an incomplete generation";
    (g == trial ? saw_new : saw_old)++;
    generation = g;
  }
  // Both outcomes happened, or the kill timing proves nothing.
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
  std::printf("kill during commit: %d trials found the old policy, %d the new\n", saw_old, saw_new);
}

}  // namespace
}  // namespace lfp
