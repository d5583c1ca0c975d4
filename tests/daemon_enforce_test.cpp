// SPDX-License-Identifier: MIT
// A committed policy is an enforced policy: lfpd's Server with an enforcer (the data path's install)
// that refuses some policies, on a real socket and a real store, driven through the real client.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "lfp/client/client.hpp"
#include "daemon_support.hpp"
#include "server_support.hpp"

namespace lfp {
namespace {

using nlohmann::json;
using test::InProcessServer;

json filter_json(const std::string& name, const std::string& layer = "ALE_AUTH_CONNECT_V4", bool persistent = true) {
  json f = {{"name", name}, {"layer", layer}, {"action", "BLOCK"}};
  if (persistent) f["flags"] = json::array({"PERSISTENT"});
  return f;
}

std::set<std::string> filter_names(client::Client& c) {
  std::set<std::string> names;
  for (auto& f : c.enumerate("filter")) names.insert(f["name"].get<std::string>());
  return names;
}

// A stand-in for the kernel's install with a limit: it refuses any policy holding a filter named
// "too much" (or everything, while fail_all is set), and remembers each policy it was given.
class Enforcer {
 public:
  static constexpr const char* kLimit = "the kernel image holds at most 3 entries; this policy needs 4";
  void operator()(const FilterEngine& e, const FilterChanges* changes) {
    std::set<std::string> names;
    for (const Filter* f : e.filters()) names.insert(f->display.name);
    std::lock_guard<std::mutex> l(mu_);
    seen_.push_back(names);
    changes_.push_back(changes ? std::optional<FilterChanges>(*changes) : std::nullopt);
    if (fail_all_ || names.count("too much")) throw std::runtime_error(kLimit);
  }
  std::set<std::string> last() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_.empty() ? std::set<std::string>{"(never called)"} : seen_.back();
  }
  // What the last call was told had changed (nullopt: the whole policy).
  std::optional<FilterChanges> last_changes() const {
    std::lock_guard<std::mutex> l(mu_);
    return changes_.empty() ? std::nullopt : changes_.back();
  }
  size_t calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_.size();
  }
  void fail_all(bool on) {
    std::lock_guard<std::mutex> l(mu_);
    fail_all_ = on;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::set<std::string>> seen_;
  std::vector<std::optional<FilterChanges>> changes_;
  bool fail_all_ = false;
};

// What the server told its degraded-state observers, in order ("part: why" or "part: back").
class DegradedLog {
 public:
  void operator()(const std::string& part, const std::optional<std::string>& why) {
    std::lock_guard<std::mutex> l(mu_);
    log_.push_back(part + ": " + (why ? *why : "back"));
  }
  std::vector<std::string> get() const {
    std::lock_guard<std::mutex> l(mu_);
    return log_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> log_;
};

void expect_refused(const std::function<void()>& call, const std::string& cause) {
  try {
    call();
    ADD_FAILURE() << "the commit was accepted";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "TXN_ABORTED");
    EXPECT_EQ(e.message().rfind(cause, 0), 0u) << e.message();
  }
}

const std::string kKernelRefuses = std::string("the kernel cannot enforce this policy: ") + Enforcer::kLimit;

TEST(ServerEnforce, RefusedPolicyIsNeitherListedStoredNorAnnounced) {
  LFP_REQUIRE_ROOT("the in-process server (server_config) gives the admin role to uid 0 only");
  test::TempDir dir;
  const auto cfg = test::server_config(dir.path());
  Enforcer enforcer;
  {
    InProcessServer srv(cfg, [&](daemon::Server& s) { s.set_enforcer(std::ref(enforcer)); });
    EXPECT_EQ(enforcer.calls(), 1u);  // at start, with the (empty) stored policy
    client::Client c(cfg.socket_path);
    client::Client monitor(cfg.socket_path);
    monitor.subscribe();
    c.add("filter", filter_json("kept"));
    EXPECT_EQ(enforcer.last(), std::set<std::string>{"kept"});
    ASSERT_TRUE(monitor.next_event(2000));  // kept's ADD
    const json key_of_kept = c.enumerate("filter").at(0)["key"];

    // An explicit transaction: a provider, two filters, a delete; the enforcer refuses the result.
    c.begin();
    json provider = c.add("provider", {{"name", "new provider"}, {"flags", {"PERSISTENT"}}});
    c.add("filter", filter_json("new one"));
    c.remove("filter", key_of_kept);
    c.add("filter", filter_json("too much"));
    expect_refused([&] { c.commit(); }, kKernelRefuses);
    // The kernel was given the old policy back; the engine holds it; nobody heard of the rest.
    EXPECT_EQ(enforcer.last(), std::set<std::string>{"kept"});
    EXPECT_EQ(filter_names(c), std::set<std::string>{"kept"});
    EXPECT_TRUE(c.enumerate("provider").empty());
    EXPECT_EQ(c.enumerate("filter").at(0)["key"], key_of_kept);
    EXPECT_TRUE(c.call("state")["enforcement"]["degraded"].empty());  // the kernel holds what is listed
    // The session's lock is free and its transaction over.
    c.begin();
    c.commit();

    // Implicit transactions take the same path: apply and add.
    json policy = {{"filters", {filter_json("fine"), filter_json("too much")}}};
    expect_refused([&] { c.apply(policy); }, kKernelRefuses);
    expect_refused([&] { c.add("filter", filter_json("too much", "ALE_AUTH_CONNECT_V4", false)); }, kKernelRefuses);
    EXPECT_EQ(filter_names(c), std::set<std::string>{"kept"});
    EXPECT_EQ(enforcer.last(), std::set<std::string>{"kept"});
    EXPECT_FALSE(monitor.next_event(200)) << "a refused transaction was announced";

    // What the kernel takes still commits.
    c.add("filter", filter_json("fine"));
    EXPECT_EQ(enforcer.last(), (std::set<std::string>{"kept", "fine"}));
  }
  // Nothing of the refused transactions reached the store.
  Enforcer after;
  InProcessServer srv(cfg, [&](daemon::Server& s) { s.set_enforcer(std::ref(after)); });
  client::Client c(cfg.socket_path);
  EXPECT_EQ(filter_names(c), (std::set<std::string>{"kept", "fine"}));
  EXPECT_TRUE(c.enumerate("provider").empty());
  EXPECT_EQ(after.last(), (std::set<std::string>{"kept", "fine"}));
}

// A commit tells the enforcer what it changed, so the kernel can apply just that: the filters added
// and deleted by run-time id; anything else (a provider) makes it take the whole policy.
TEST(ServerEnforce, CommitTellsTheEnforcerWhatChanged) {
  LFP_REQUIRE_ROOT("the in-process server (server_config) gives the admin role to uid 0 only");
  test::TempDir dir;
  const auto cfg = test::server_config(dir.path());
  Enforcer enforcer;
  InProcessServer srv(cfg, [&](daemon::Server& s) { s.set_enforcer(std::ref(enforcer)); });
  EXPECT_FALSE(enforcer.last_changes()) << "at start the enforcer takes the whole stored policy";
  client::Client c(cfg.socket_path);
  const json added = c.add("filter", filter_json("one"));
  auto ch = enforcer.last_changes();
  ASSERT_TRUE(ch);
  ASSERT_EQ(ch->added.size(), 1u);
  EXPECT_EQ(ch->added[0], added.at("id").get<uint64_t>());
  EXPECT_TRUE(ch->deleted.empty());
  EXPECT_FALSE(ch->other);

  c.remove("filter", added.at("key").get<std::string>());
  ch = enforcer.last_changes();
  ASSERT_TRUE(ch);
  EXPECT_TRUE(ch->added.empty());
  EXPECT_EQ(ch->deleted, std::vector<uint64_t>{added.at("id").get<uint64_t>()});
  EXPECT_FALSE(ch->other);

  c.add("provider", {{"name", "p"}});
  ch = enforcer.last_changes();
  ASSERT_TRUE(ch);
  EXPECT_TRUE(ch->other);
}

// The store refusing after the enforcer took the policy: the engine and the kernel go back too.
// (The store's own SQLite database is given a trigger that refuses one row, as a full disk would.)
TEST(ServerEnforce, StoreFailureGivesTheKernelTheOldPolicyBack) {
  LFP_REQUIRE_ROOT("the in-process server (server_config) gives the admin role to uid 0 only");
  test::TempDir dir;
  const auto cfg = test::server_config(dir.path());
  Enforcer enforcer;
  {
    InProcessServer srv(cfg, [&](daemon::Server& s) { s.set_enforcer(std::ref(enforcer)); });
    client::Client c(cfg.socket_path);
    c.add("filter", filter_json("kept"));
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((cfg.state_dir + "/policy.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TRIGGER refuse BEFORE INSERT ON objects WHEN NEW.body LIKE '%store refuses%'"
                           " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    const size_t calls = enforcer.calls();
    c.begin();
    c.add("filter", filter_json("not stored either"));
    c.add("filter", filter_json("store refuses"));
    expect_refused([&] { c.commit(); }, "the store could not commit: ");
    ASSERT_EQ(enforcer.calls(), calls + 2);  // the new policy, then the old one again
    EXPECT_EQ(enforcer.last(), std::set<std::string>{"kept"});
    EXPECT_EQ(filter_names(c), std::set<std::string>{"kept"});
    ASSERT_EQ(sqlite3_exec(db, "DROP TRIGGER refuse", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  InProcessServer srv(cfg, [](daemon::Server&) {});
  client::Client c(cfg.socket_path);
  EXPECT_EQ(filter_names(c), std::set<std::string>{"kept"});
}

// A stored policy the kernel cannot take: lfpd serves anyway, says it is degraded and why, and the
// commit that makes the policy enforceable again clears it.
TEST(ServerEnforce, FailureAtStartServesDegradedUntilACommitSucceeds) {
  LFP_REQUIRE_ROOT("the in-process server (server_config) gives the admin role to uid 0 only");
  test::TempDir dir;
  const auto cfg = test::server_config(dir.path());
  {
    InProcessServer srv(cfg, [](daemon::Server&) {});  // no kernel: the store takes it
    client::Client c(cfg.socket_path);
    c.add("filter", filter_json("too much"));
    c.add("filter", filter_json("kept"));
  }
  Enforcer enforcer;
  DegradedLog log;
  InProcessServer srv(cfg, [&](daemon::Server& s) {
    s.set_enforcer(std::ref(enforcer));
    s.on_degraded(std::ref(log));
  });
  EXPECT_EQ(log.get(), std::vector<std::string>{std::string("kernel: ") + Enforcer::kLimit});
  client::Client c(cfg.socket_path);
  EXPECT_EQ(c.call("state")["enforcement"]["degraded"], (json{{"kernel", Enforcer::kLimit}}));
  EXPECT_EQ(filter_names(c), (std::set<std::string>{"too much", "kept"}));  // listed as stored, and said to be unenforced
  // Still degraded, still refusing what the kernel cannot take.
  expect_refused([&] { c.add("filter", filter_json("another")); }, kKernelRefuses);
  EXPECT_EQ(c.call("state")["enforcement"]["degraded"].size(), 1u);
  // Deleting the filter over the limit commits, is enforced, and clears the state.
  for (const json& f : c.enumerate("filter"))
    if (f["name"] == "too much") c.remove("filter", f["key"]);
  EXPECT_EQ(enforcer.last(), std::set<std::string>{"kept"});
  EXPECT_TRUE(c.call("state")["enforcement"]["degraded"].empty());
  EXPECT_EQ(log.get().back(), "kernel: back");
}

// Enforcement that cannot be refused (notify_policy_changed, a dynamic session's cleanup) degrades
// lfpd instead of failing, and recovers on the next success.
TEST(ServerEnforce, NotifiedChangesAndCleanupsDegradeAndRecover) {
  LFP_REQUIRE_ROOT("the in-process server (server_config) gives the admin role to uid 0 only");
  test::TempDir dir;
  const auto cfg = test::server_config(dir.path());
  Enforcer enforcer;
  DegradedLog log;
  InProcessServer srv(cfg, [&](daemon::Server& s) {
    s.set_enforcer(std::ref(enforcer));
    s.on_degraded(std::ref(log));
  });
  client::Client c(cfg.socket_path);
  c.add("filter", filter_json("kept"));
  enforcer.fail_all(true);
  srv.run_in_loop([&] { srv.server().notify_policy_changed(); });
  EXPECT_EQ(c.call("state")["enforcement"]["degraded"], (json{{"kernel", Enforcer::kLimit}}));
  enforcer.fail_all(false);
  srv.run_in_loop([&] { srv.server().notify_policy_changed(); });
  EXPECT_TRUE(c.call("state")["enforcement"]["degraded"].empty());

  // A dynamic session's filters go when it ends: the kernel is told.
  {
    client::Client dyn(cfg.socket_path, {.dynamic = true});
    dyn.add("filter", filter_json("dynamic", "ALE_AUTH_CONNECT_V4", false));
    EXPECT_EQ(enforcer.last(), (std::set<std::string>{"kept", "dynamic"}));
    enforcer.fail_all(true);
  }
  for (int i = 0; i < 200 && filter_names(c).size() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(filter_names(c), std::set<std::string>{"kept"});
  EXPECT_EQ(enforcer.last(), std::set<std::string>{"kept"});
  EXPECT_EQ(c.call("state")["enforcement"]["degraded"].size(), 1u);
  enforcer.fail_all(false);
  c.add("filter", filter_json("fine"));
  EXPECT_TRUE(c.call("state")["enforcement"]["degraded"].empty());
  EXPECT_EQ(log.get(), (std::vector<std::string>{std::string("kernel: ") + Enforcer::kLimit, "kernel: back",
                                                 std::string("kernel: ") + Enforcer::kLimit, "kernel: back"}));
}

// A layer nothing enforces here: filters there are accepted with a warning, and `state` says so.
TEST(ServerEnforce, FiltersAtUnenforcedLayersWarn) {
  LFP_REQUIRE_ROOT("the in-process server (server_config) gives the admin role to uid 0 only");
  test::TempDir dir;
  const auto cfg = test::server_config(dir.path());
  const std::string why = "the packet layers are off (--packet-layers)";
  InProcessServer srv(cfg, [&](daemon::Server& s) {
    s.set_layer_check([&](LayerId l) -> std::optional<std::string> {
      if (l == LayerId::OUTBOUND_TRANSPORT_V4 || l == LayerId::INBOUND_TRANSPORT_V4) return why;
      return std::nullopt;
    });
  });
  client::Client c(cfg.socket_path);
  json ale = c.add("filter", filter_json("enforced"));
  EXPECT_TRUE(ale.contains("key"));
  EXPECT_FALSE(ale.contains("warnings"));
  EXPECT_TRUE(c.call("state")["enforcement"]["unenforced_layers"].empty());

  json added = c.add("filter", filter_json("out", "OUTBOUND_TRANSPORT_V4"));
  ASSERT_TRUE(added.contains("warnings")) << added.dump();
  EXPECT_EQ(added["warnings"], json::array({"filter " + added["key"].get<std::string>() +
                                            " at OUTBOUND_TRANSPORT_V4 is accepted but not enforced: " + why}));
  // An apply: one warning per layer.
  json policy = {{"filters",
                  {filter_json("in 1", "INBOUND_TRANSPORT_V4"), filter_json("ale", "ALE_AUTH_CONNECT_V4"),
                   filter_json("in 2", "INBOUND_TRANSPORT_V4"), filter_json("out 2", "OUTBOUND_TRANSPORT_V4")}}};
  json applied = c.apply(policy);
  EXPECT_EQ(applied["added"].size(), 4u);
  EXPECT_EQ(applied["warnings"],
            json::array({"2 filters at INBOUND_TRANSPORT_V4 are accepted but not enforced: " + why,
                         "filter " + applied["added"][3]["key"].get<std::string>() +
                             " at OUTBOUND_TRANSPORT_V4 is accepted but not enforced: " + why}));
  EXPECT_EQ(c.call("state")["enforcement"]["unenforced_layers"],
            (json{{"INBOUND_TRANSPORT_V4", why}, {"OUTBOUND_TRANSPORT_V4", why}}));
  // Inside a transaction the add warns at once.
  c.begin();
  EXPECT_TRUE(c.add("filter", filter_json("in 3", "INBOUND_TRANSPORT_V4")).contains("warnings"));
  c.abort();
  // A layer holding only disabled filters is not listed.
  for (const json& f : c.enumerate("filter", {{"layer", "INBOUND_TRANSPORT_V4"}})) c.remove("filter", f["key"]);
  json disabled = filter_json("disabled", "INBOUND_TRANSPORT_V4", false);
  disabled["flags"] = {"DISABLED"};
  EXPECT_FALSE(c.add("filter", disabled).contains("warnings"));
  EXPECT_EQ(c.call("state")["enforcement"]["unenforced_layers"], (json{{"OUTBOUND_TRANSPORT_V4", why}}));
}

}  // namespace
}  // namespace lfp
