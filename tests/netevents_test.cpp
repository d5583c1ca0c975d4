// SPDX-License-Identifier: MIT
// The net event log (records, templates, coverage, retention) and the helper class (lfp diagnose)
// against the real lfpd, with events written through its ingestion API (netevents_ingest).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "daemon_support.hpp"
#include "lfp/diagnostics/foreign.hpp"
#include "lfp/diagnostics/helper.hpp"
#include "lfp/netevents/log.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
namespace ne = lfp::netevents;

std::string temp_dir() {
  char tmpl[] = "/tmp/lfp-netevents-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  return tmpl;
}

struct TempDir {
  std::string path = temp_dir();
  ~TempDir() { std::filesystem::remove_all(path); }
};

constexpr int64_t kSec = 1'000'000'000;

json drop(int64_t t_ns, const std::string& remote, int rport, const std::string& app = "/usr/bin/curl",
          uint32_t uid = 1000, json extra = json::object()) {
  json e = {{"type", "CLASSIFY_DROP"},
            {"time", ne::format_time(t_ns)},
            {"ip_protocol", 6},
            {"local_address", remote.find(':') == std::string::npos ? "10.0.0.1" : "fd00::1"},
            {"local_port", 40000},
            {"remote_address", remote},
            {"remote_port", rport},
            {"app_id", app},
            {"uid", uid},
            {"layer", remote.find(':') == std::string::npos ? "ALE_AUTH_CONNECT_V4" : "ALE_AUTH_CONNECT_V6"},
            {"direction", "OUTBOUND"}};
  e.update(extra);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Records and templates.

TEST(NetEvents, BadEventsNameTheMember) {
  const std::pair<json, std::string> cases[] = {
      {json{{"time", "2026-01-01T00:00:00Z"}}, "/type"},
      {json{{"type", "NOPE"}}, "/type"},
      {json{{"type", "CLASSIFY_DROP"}, {"remote_port", 70000}}, "/remote_port"},
      {json{{"type", "CLASSIFY_DROP"}, {"remote_address", "10.0.0.300"}}, "/remote_address"},
      {json{{"type", "CLASSIFY_DROP"}, {"time", "2026-01-01 00:00:00"}}, "/time"},
      {json{{"type", "CLASSIFY_DROP"}, {"layer", "NO_LAYER"}}, "/layer"},
      {json{{"type", "CLASSIFY_DROP"}, {"filter_key", "not-a-guid"}}, "/filter_key"},
      {json{{"type", "CLASSIFY_DROP"}, {"colour", "red"}}, "/colour"},
      {json::array(), "/"},
  };
  for (const auto& [ev, member] : cases) {
    try {
      ne::parse_event(ev, 0);
      ADD_FAILURE() << "accepted " << ev.dump();
    } catch (const ne::EventError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(member + ":", 0), 0u) << e.what();
    }
  }
}

TEST(NetEvents, TimesRoundTrip) {
  auto t = ne::parse_time("2026-11-23T10:00:00.123456Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(ne::format_time(*t), "2026-11-23T10:00:00.123456Z");
  EXPECT_EQ(*ne::parse_time("2026-11-23T11:00:00+01:00"), *ne::parse_time("2026-11-23T10:00:00Z"));
  EXPECT_FALSE(ne::parse_time("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(ne::parse_time("yesterday"));
}

// The log's SQL and the in-memory matcher (what subscriptions use) must agree on every template.
TEST(NetEvents, EnumerationAgreesWithMatcherOnRandomTemplates) {
  TempDir dir;
  ne::EventLog log(dir.path + "/ev.db");
  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::string apps[] = {"/usr/bin/curl", "/usr/bin/wget", "/opt/x/app", ""};
  const std::string remotes[] = {"10.0.0.2", "10.0.1.7", "192.0.2.9", "fd00::2", "fd00:1::9"};
  const std::string providers[] = {"", "11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000002"};
  const int64_t base = ne::now_ns() - 3600 * kSec;
  std::vector<ne::Record> all;
  for (int i = 0; i < 3000; ++i) {
    json e = drop(base + pick(3600) * kSec, remotes[pick(5)], 1 + pick(4) * 1000, apps[pick(4)], 1000 + pick(3));
    if (e["app_id"] == "") e.erase("app_id");
    if (pick(4) == 0) e["type"] = "CLASSIFY_ALLOW";
    if (pick(5) == 0) e["ip_protocol"] = 17;
    if (pick(6) == 0) e.erase("remote_port");
    if (const auto& p = providers[pick(3)]; !p.empty()) e["provider"] = p;
    ne::Record r = ne::parse_event(e, 0);
    if (r.type == ne::EventType::CLASSIFY_ALLOW) r.type = ne::EventType::CLASSIFY_DROP_MAC;  // allows are not collected by default
    r.body["type"] = std::string(ne::to_string(r.type));
    auto seq = log.add(r);
    ASSERT_TRUE(seq);
    r.seq = *seq;
    all.push_back(r);
  }
  log.flush();
  ASSERT_EQ(log.size(), 3000u);
  const char* matches[] = {"EQUAL", "NOT_EQUAL", "RANGE", "GREATER", "LESS_OR_EQUAL"};
  size_t nonempty = 0;
  for (int t = 0; t < 300; ++t) {
    json conds = json::array();
    for (int k = 0, n = 1 + pick(3); k < n; ++k) {
      switch (pick(7)) {
        case 0: conds.push_back({{"field", "IP_REMOTE_ADDRESS"}, {"value", pick(2) ? remotes[pick(5)] : "10.0.0.0/23"}}); break;
        case 1: {
          const std::string m = matches[pick(5)];
          json v = m == "RANGE" ? json{{"low", 1000}, {"high", 2001}} : json(1 + pick(4) * 1000);
          conds.push_back({{"field", "IP_REMOTE_PORT"}, {"match", m}, {"value", v}});
          break;
        }
        case 2: conds.push_back({{"field", "ALE_APP_ID"}, {"match", pick(2) ? "EQUAL" : "PREFIX"}, {"value", pick(2) ? apps[pick(3)] : "/curl"}}); break;
        case 3: conds.push_back({{"field", "ALE_USER_ID"}, {"value", 1000 + pick(3)}}); break;
        case 4: conds.push_back({{"field", "IP_PROTOCOL"}, {"value", pick(2) ? "tcp" : "udp"}}); break;
        case 5: conds.push_back({{"field", "PROVIDER_KEY"}, {"match", pick(3) ? "EQUAL" : "NOT_EQUAL"}, {"value", providers[1 + pick(2)]}}); break;
        default: conds.push_back({{"field", "NET_EVENT_TYPE"}, {"value", pick(2) ? "CLASSIFY_DROP" : "CLASSIFY_DROP_MAC"}}); break;
      }
    }
    json tj = {{"conditions", conds}};
    if (pick(2)) tj["since"] = ne::format_time(base + pick(1800) * kSec);
    if (pick(2)) tj["until"] = ne::format_time(base + (1800 + pick(1800)) * kSec);
    const ne::Template tmpl = ne::parse_template(tj);
    std::set<uint64_t> want, got;
    for (const auto& r : all)
      if (ne::matches(tmpl, r)) want.insert(r.seq);
    uint64_t total = 0;
    for (const auto& r : log.enumerate(tmpl, 0, 100000, false, &total)) got.insert(r.seq);
    ASSERT_EQ(got, want) << tj.dump();
    EXPECT_EQ(total, want.size());
    nonempty += !want.empty();
  }
  EXPECT_GT(nonempty, 100u);  // the templates were not all trivially empty
}

TEST(NetEvents, BadTemplatesAreRefused) {
  for (const json& t : {json{{"conditions", {{{"field", "IP_LOCAL_INTERFACE"}, {"value", 1}}}}},
                        json{{"conditions", {{{"field", "ALE_APP_ID"}, {"match", "GREATER"}, {"value", "x"}}}}},
                        json{{"conditions", {{{"field", "IP_REMOTE_PORT"}, {"match", "RANGE"}, {"value", {{"low", 9}, {"high", 1}}}}}}},
                        json{{"since", "soon"}}, json{{"colour", 1}}})
    EXPECT_THROW(ne::parse_template(t), ne::EventError) << t.dump();
}

// ---------------------------------------------------------------------------------------------
// Coverage and retention.

TEST(NetEvents, CoverageRecordsDownTimeAndCollectionOff) {
  TempDir dir;
  const std::string path = dir.path + "/ev.db";
  // The log's clock is the test's: lfpd is "down" for exactly 5 minutes, without waiting for them.
  const int64_t t0 = ne::now_ns();
  std::atomic<int64_t> now{t0};
  const ne::WallClock clock = [&] { return now.load(); };
  { ne::EventLog log(path, {}, clock); }
  now += 300 * kSec;
  {
    ne::EventLog log(path, {}, clock);
    ne::Coverage c = log.coverage();
    EXPECT_EQ(c.complete_since, t0);
    ASSERT_EQ(c.gaps.size(), 1u);
    EXPECT_EQ(c.gaps[0].reason, "lfpd was not running");
    EXPECT_EQ(c.gaps[0].until - c.gaps[0].from, 300 * kSec);
    // Before the log began, and inside the gap: not covered; after it: covered.
    EXPECT_TRUE(ne::uncovered(c, t0 - 10 * kSec, t0));
    EXPECT_TRUE(ne::uncovered(c, c.gaps[0].from + 1, c.gaps[0].from + 2));
    EXPECT_FALSE(ne::uncovered(c, c.gaps[0].until + 1, now));

    ne::Settings off;
    off.collect = false;
    log.set_settings(off);
    ne::Record r = ne::parse_event(drop(now, "10.0.0.2", 80), now);
    EXPECT_FALSE(log.add(r));  // not collected
    ASSERT_EQ(log.coverage().gaps.back().reason, "collection off");
    EXPECT_EQ(log.coverage().gaps.back().from, now);
    EXPECT_EQ(log.coverage().gaps.back().until, ne::kOpen);
    now += kSec;
    log.set_settings(ne::Settings{});
    EXPECT_EQ(log.coverage().gaps.back().until, now);
    log.add_gap(now - kSec, now, 42, "the kernel's event ring was full");
  }
  ne::EventLog again(path, {}, clock);  // gaps outlive the process
  auto gaps = again.coverage().gaps;
  ASSERT_GE(gaps.size(), 3u);
  EXPECT_TRUE(std::any_of(gaps.begin(), gaps.end(), [](const ne::Gap& g) { return g.lost == 42; }));
}

TEST(NetEvents, RetentionKeepsTheNewestAndMovesCoverage) {
  TempDir dir;
  ne::Retention keep;
  keep.max_events = 1000;
  ne::EventLog log(dir.path + "/ev.db", keep);
  const int64_t base = ne::now_ns();
  for (int i = 0; i < 2500; ++i) {
    ASSERT_TRUE(log.add(ne::parse_event(drop(base + i * 1000, "10.0.0.2", 80), 0)));
  }
  log.flush();
  log.flush();  // the second flush runs a prune with the meta write
  EXPECT_LE(log.size(), 1000u + 100u);
  auto oldest = log.enumerate(ne::Template{}, 0, 1, false);
  ASSERT_EQ(oldest.size(), 1u);
  EXPECT_GE(log.coverage().complete_since, base);
  EXPECT_LE(log.coverage().complete_since, oldest[0].time_ns);
  // An old window is no longer covered.
  EXPECT_TRUE(ne::uncovered(log.coverage(), base, base + 10));
}

// ---------------------------------------------------------------------------------------------
// lfpd: ingestion, enumeration, subscription, diagnose.

const std::string kProvA = "aaaaaaaa-0000-4000-8000-000000000001";
const std::string kProvB = "bbbbbbbb-0000-4000-8000-000000000002";
const std::string kSubA = "aaaaaaaa-0000-4000-8000-0000000000a1";
const std::string kSubB = "bbbbbbbb-0000-4000-8000-0000000000b1";
const std::string kFiltA = "aaaaaaaa-0000-4000-8000-0000000000f1";
const std::string kFiltB = "bbbbbbbb-0000-4000-8000-0000000000f2";

json two_providers_policy() {
  json filters = json::array();
  // Many providers' worth of filters; the two that matter block port 443 (A) and 8443 (B).
  for (int i = 0; i < 50; ++i)
    filters.push_back({{"name", "noise " + std::to_string(i)}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "PERMIT"},
                       {"provider", i % 2 ? kProvA : kProvB}, {"sublayer", i % 2 ? kSubA : kSubB},
                       {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 20000 + i}}}}});
  filters.push_back({{"key", kFiltA}, {"name", "A blocks 443"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                     {"provider", kProvA}, {"sublayer", kSubA},
                     {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 443}}}}});
  filters.push_back({{"key", kFiltB}, {"name", "B blocks 8443"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                     {"provider", kProvB}, {"sublayer", kSubB},
                     {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 8443}}}}});
  // B also permits 443 for curl: another provider has a say in A's block.
  filters.push_back({{"name", "B permits curl 443"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "PERMIT"},
                     {"provider", kProvB}, {"sublayer", kSubB},
                     {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 443}}, {{"field", "ALE_APP_ID"}, {"value", "/usr/bin/curl"}}}}});
  return {{"providers", {{{"key", kProvA}, {"name", "Firewall A"}}, {{"key", kProvB}, {"name", "VPN B"}}}},
          {"sublayers", {{{"key", kSubA}, {"name", "A", }, {"provider", kProvA}, {"weight", 200}},
                         {{"key", kSubB}, {"name", "B"}, {"provider", kProvB}, {"weight", 100}}}},
          {"filters", filters}};
}

class NetEventsDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    lfpd_ = std::make_unique<Daemon>();
    c_ = lfpd_->connect();
    c_->apply(two_providers_policy());
    start_ = ne::now_ns();
    // The log covers only its own lifetime: give "healthy" a window to be healthy in.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  json ingest(json events) { return c_->call("netevents_ingest", {{"events", std::move(events)}}); }
  json diagnose(json h) { return c_->call("diagnose", {{"hypothesis", std::move(h)}, {"foreign", false}}); }
  json event_by(const std::string& filter, const std::string& provider, int64_t t, const std::string& remote, int port,
                const std::string& app = "/usr/bin/curl", uint32_t uid = 1000) {
    return drop(t, remote, port, app, uid, {{"filter_key", filter}, {"provider", provider}, {"hard", false}});
  }
  std::unique_ptr<Daemon> lfpd_;
  std::unique_ptr<client::Client> c_;
  int64_t start_ = 0;
};

TEST_F(NetEventsDaemon, ConfirmedNamesTheFilterAndProviderAmongMany) {
  const int64_t t = ne::now_ns();
  ingest({event_by(kFiltB, kProvB, t - 2 * kSec, "10.0.0.9", 8443), event_by(kFiltA, kProvA, t - kSec, "10.0.0.2", 443)});
  json d = diagnose({{"time", "now"}, {"remote", "10.0.0.2:443"}});
  ASSERT_EQ(d["verdict"], "confirmed") << d.dump(2);
  EXPECT_EQ(d["filter"]["key"], kFiltA);
  EXPECT_EQ(d["filter"]["name"], "A blocks 443");
  EXPECT_EQ(d["provider"]["key"], kProvA);
  EXPECT_EQ(d["provider"]["name"], "Firewall A");
  // VPN B's permit for curl on 443 is named as another provider's filter with a say.
  EXPECT_TRUE(d["involved"]["other_provider"].get<bool>()) << d["involved"].dump(2);
  EXPECT_TRUE(d["involved"]["blocked_now"].get<bool>());
  ASSERT_GE(d["repairs"].size(), 3u);
  EXPECT_EQ(d["repairs"][1]["requests"][0]["op"], "delete");

  json d2 = diagnose({{"time", "now"}, {"remote", "10.0.0.9"}});
  ASSERT_EQ(d2["verdict"], "confirmed");
  EXPECT_EQ(d2["filter"]["key"], kFiltB);
  EXPECT_EQ(d2["provider"]["name"], "VPN B");
}

TEST_F(NetEventsDaemon, TheMostRecentMatchWinsAndEachAttributeNarrows) {
  const int64_t t = ne::now_ns();
  ingest({event_by(kFiltA, kProvA, t - 5 * kSec, "10.0.0.2", 443, "/usr/bin/curl", 1000),
          event_by(kFiltB, kProvB, t - 3 * kSec, "10.0.0.2", 8443, "/usr/bin/wget", 1001),
          event_by(kFiltA, kProvA, t - 4 * kSec, "10.0.0.3", 443, "/usr/bin/curl", 1002)});
  // Nothing but the time: the newest of the three.
  EXPECT_EQ(diagnose({{"time", "now"}})["event"]["remote_port"], 8443);
  EXPECT_EQ(diagnose({{"time", "now"}, {"remote", "10.0.0.2"}})["event"]["remote_port"], 8443);
  EXPECT_EQ(diagnose({{"time", "now"}, {"remote", "10.0.0.2:443"}})["event"]["uid"], 1000);
  EXPECT_EQ(diagnose({{"time", "now"}, {"app", "/usr/bin/curl"}})["event"]["remote_address"], "10.0.0.3");
  EXPECT_EQ(diagnose({{"time", "now"}, {"user", 1000}})["event"]["remote_address"], "10.0.0.2");
  EXPECT_EQ(diagnose({{"time", "now"}, {"provider", kProvA}})["event"]["remote_address"], "10.0.0.3");
  EXPECT_EQ(diagnose({{"time", "now"}, {"window_s", 0.2}, {"protocol", "udp"}})["verdict"], "healthy");
  EXPECT_EQ(diagnose({{"time", "now"}, {"local", "10.0.0.1:40000"}})["event"]["remote_port"], 8443);
  EXPECT_EQ(diagnose({{"time", "now"}, {"window_s", 0.2}, {"local", "10.0.0.1:40001"}})["verdict"], "healthy");
  // The same window without a narrowing attribute is confirmed only if it holds an event: it does not.
  EXPECT_EQ(diagnose({{"time", "now"}, {"window_s", 0.2}})["verdict"], "healthy");
  // A time window that ends before the newest: the one before it.
  EXPECT_EQ(diagnose({{"time", ne::format_time(t - 4 * kSec)}, {"window_s", 0.5}})["event"]["remote_address"], "10.0.0.3");
}

// An app is its executable file, as in the kernel: an event whose path was lost before it was
// drained (a short-lived process) still matches a hypothesis that names the path.
TEST_F(NetEventsDaemon, AnEventWithoutItsPathMatchesByTheExecutableFile) {
  const std::string sh = std::filesystem::canonical("/bin/sh").string();
  json e = event_by(kFiltA, kProvA, ne::now_ns(), "10.0.0.2", 443, "", 1000);
  e.erase("app_id");
  e["app_file"] = ne::app_file_of(sh);
  ASSERT_NE(e["app_file"], "");
  ingest({e});
  EXPECT_EQ(diagnose({{"time", "now"}, {"app", sh}})["verdict"], "confirmed");
  EXPECT_EQ(diagnose({{"time", "now"}, {"window_s", 0.2}, {"app", "/usr/bin/socat"}})["verdict"], "healthy");
  try {
    ingest({{{"type", "CLASSIFY_DROP"}, {"app_file", "12"}}});
    ADD_FAILURE();
  } catch (const client::ClientError& err) {
    EXPECT_NE(err.message().find("app_file"), std::string::npos);
  }
}

TEST_F(NetEventsDaemon, HealthyAndIndeterminate) {
  json d = diagnose({{"time", "now"}, {"window_s", 0.2}, {"remote", "10.0.0.2"}});
  EXPECT_EQ(d["verdict"], "healthy") << d.dump(2);
  // Before the log began.
  d = diagnose({{"time", ne::format_time(start_ - 3600 * kSec)}, {"remote", "10.0.0.2"}});
  EXPECT_EQ(d["verdict"], "indeterminate");
  EXPECT_NE(d["reason"].get<std::string>().find("complete only from"), std::string::npos);
  // Inside a gap: collection switched off for a while.
  c_->call("netevents_settings", {{"settings", {{"collect", false}}}});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int64_t in_gap = ne::now_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  c_->call("netevents_settings", {{"settings", {{"collect", true}}}});
  d = diagnose({{"time", ne::format_time(in_gap)}, {"window_s", 0.05}});
  EXPECT_EQ(d["verdict"], "indeterminate");
  EXPECT_NE(d["reason"].get<std::string>().find("collection off"), std::string::npos) << d["reason"];
  // A daemon restart leaves a gap too, and the events stay.
  ingest({event_by(kFiltA, kProvA, ne::now_ns(), "10.0.0.2", 443)});
  lfpd_->restart();
  c_ = lfpd_->connect();
  json cov = c_->call("netevents_coverage");
  EXPECT_EQ(cov["events"], 1);
  EXPECT_EQ(cov["gaps"].back()["reason"], "lfpd was not running");
  EXPECT_EQ(diagnose({{"time", "now"}, {"remote", "10.0.0.2"}})["verdict"], "confirmed");
}

TEST_F(NetEventsDaemon, EnumerationPagingSubscriptionAndAccess) {
  const int64_t t = ne::now_ns();
  json batch = json::array();
  for (int i = 0; i < 250; ++i) batch.push_back(event_by(kFiltA, kProvA, t - (250 - i) * 1000000, "10.0.0.2", 443));
  ingest(batch);
  json page = c_->call("netevents_enum", {{"template", {{"conditions", {{{"field", "PROVIDER_KEY"}, {"value", kProvA}}}}}},
                                          {"limit", 100}, {"offset", 200}});
  EXPECT_EQ(page["total"], 250);
  EXPECT_EQ(page["events"].size(), 50u);
  EXPECT_TRUE(page["next_offset"].is_null());
  // A subscriber gets the events its template matches, as they arrive.
  auto sub = lfpd_->connect();
  sub->call("netevents_subscribe", {{"template", {{"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 8443}}}}}}});
  ingest({event_by(kFiltA, kProvA, ne::now_ns(), "10.0.0.2", 443), event_by(kFiltB, kProvB, ne::now_ns(), "10.0.0.2", 8443)});
  auto ev = sub->next_event(2000);
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["netevent"]["remote_port"], 8443);
  EXPECT_FALSE(sub->next_event(200));
  // Bad input is refused with the member named; a reader may not ingest nor change settings.
  try {
    ingest({event_by(kFiltA, kProvA, t, "10.0.0.2", 443), {{"type", "CLASSIFY_DROP"}, {"remote_port", "x"}}});
    ADD_FAILURE();
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "INVALID_PARAMETER");
    EXPECT_NE(e.message().find("/events/1/remote_port"), std::string::npos) << e.message();
  }
  EXPECT_EQ(c_->call("netevents_coverage")["events"], 252);  // the refused batch added nothing
}

// ---------------------------------------------------------------------------------------------
// The hand-off to a provider's helper; causes outside LFP.

class Helpers : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directories(dir_.path + "/helpers.d"); }
  std::string script(const std::string& name, const std::string& body) {
    const std::string p = dir_.path + "/" + name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    ::chmod(p.c_str(), 0755);
    return p;
  }
  void reg(const std::string& provider, const std::string& exe, int timeout_ms = 2000) {
    std::ofstream(dir_.path + "/helpers.d/" + provider + ".json")
        << json{{"provider", provider}, {"command", {exe}}, {"timeout_ms", timeout_ms}}.dump();
  }
  TempDir dir_;
};

TEST_F(Helpers, AnswersFailsHangsAndMissing) {
  // The helper gets the attributes on stdin and answers from them.
  reg(kProvA, script("answers", R"SH(read attrs; app=$(echo "$attrs" | sed 's/.*"app":"\([^"]*\)".*/\1/'); )SH"
                                 R"SH(echo "{\"root_cause\": \"tunnel down for $app\", \"repairs\": [\"vpnctl up\"]}")SH"));
  reg(kProvB, script("fails", "echo oops >&2; exit 3"));
  const std::string kProvC = "cccccccc-0000-4000-8000-000000000003";
  reg(kProvC, script("hangs", "sleep 30"), 300);
  const json attrs = {{"time", "2026-11-23T10:00:00Z"}, {"app", "/usr/bin/curl"}, {"remote", "10.0.0.2:443"}};
  const std::string d = dir_.path + "/helpers.d";
  json a = diagnostics::hand_off(d, *Guid::parse(kProvA), attrs);
  EXPECT_EQ(a["status"], "answered") << a.dump();
  EXPECT_EQ(a["root_cause"], "tunnel down for /usr/bin/curl");
  EXPECT_EQ(a["repairs"][0], "vpnctl up");
  json b = diagnostics::hand_off(d, *Guid::parse(kProvB), attrs);
  EXPECT_EQ(b["status"], "failed");
  EXPECT_EQ(b["detail"], "exit code 3");
  const auto t0 = std::chrono::steady_clock::now();
  json c = diagnostics::hand_off(d, *Guid::parse(kProvC), attrs);
  EXPECT_EQ(c["status"], "timed_out");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  json m = diagnostics::hand_off(d, *Guid::parse("dddddddd-0000-4000-8000-000000000004"), attrs);
  EXPECT_EQ(m["status"], "not_registered");
}

// The CLI end to end: lfp diagnose hands the blamed provider's case to its helper and applies a repair.
TEST_F(Helpers, LfpDiagnoseRunsTheHelperAndRepairs) {
  Daemon lfpd;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // (see NetEventsDaemon::SetUp)
  auto c = lfpd.connect();
  c->apply(two_providers_policy());
  c->call("netevents_ingest", {{"events", {drop(ne::now_ns(), "10.0.0.2", 443, "/usr/bin/curl", 1000,
                                                {{"filter_key", kFiltA}, {"provider", kProvA}})}}});
  reg(kProvA, script("answers", R"(cat >/dev/null; echo '{"root_cause": "policy pushed by A", "repairs": []}')"));
  const std::string lfp = std::filesystem::path(lfpd_path()).parent_path().parent_path() / "cli/lfp";
  const std::string env = "LFP_SOCKET=" + lfpd.socket() + " LFP_HELPERS_DIR=" + dir_.path + "/helpers.d ";
  auto run = [&](const std::string& args, int* rc) {
    std::string out;
    FILE* p = ::popen((env + lfp + " " + args).c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    *rc = WEXITSTATUS(::pclose(p));
    return out;
  };
  int rc;
  json d = json::parse(run("diagnose --remote 10.0.0.2:443 --json", &rc));
  EXPECT_EQ(rc, 10);  // confirmed
  EXPECT_EQ(d["helper"]["status"], "answered");
  EXPECT_EQ(d["helper"]["root_cause"], "policy pushed by A");
  // Repair 2 deletes the filter; then the policy permits the traffic.
  run("diagnose --remote 10.0.0.2:443 --repair 2 --json", &rc);
  EXPECT_EQ(rc, 10);
  EXPECT_THROW(c->get("filter", kFiltA), client::ClientError);
  json again = json::parse(run("diagnose --remote 10.0.0.2:443 --json", &rc));
  EXPECT_FALSE(again["filter"]["still_present"].get<bool>());
  EXPECT_FALSE(again["involved"]["blocked_now"].get<bool>());
  // Healthy is 0, indeterminate 11; bad arguments are refused.
  run("diagnose --remote 10.9.9.9 --window 0.1", &rc);
  EXPECT_EQ(rc, 0);
  run("diagnose --time 2001-01-01T00:00:00Z", &rc);
  EXPECT_EQ(rc, 11);
  run("diagnose --remote 10.0.0.300 2>/dev/null", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(rc, 10);
}

// The other net event verbs end to end: show, options, capture.
TEST_F(Helpers, LfpShowOptionsAndCapture) {
  Daemon lfpd;
  auto c = lfpd.connect();
  const std::string lfp = std::filesystem::path(lfpd_path()).parent_path().parent_path() / "cli/lfp";
  auto run = [&](const std::string& args, int* rc) {
    std::string out;
    FILE* p = ::popen(("LFP_SOCKET=" + lfpd.socket() + " " + lfp + " " + args).c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    *rc = WEXITSTATUS(::pclose(p));
    return out;
  };
  int rc;
  const std::string bundle = dir_.path + "/capture.json";
  run("capture start " + bundle, &rc);
  ASSERT_EQ(rc, 0);
  c->call("netevents_ingest", {{"events", {drop(ne::now_ns(), "10.0.0.2", 443), drop(ne::now_ns(), "10.0.0.3", 80, "/usr/bin/wget")}}});
  json shown = json::parse(run("show netevents --app /usr/bin/wget --since 1m --json", &rc));
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(shown["events"].size(), 1u);
  EXPECT_EQ(shown["events"][0]["remote_address"], "10.0.0.3");
  EXPECT_EQ(json::parse(run("show netevents --remote 10.0.0.0/24:443 --json", &rc))["total"], 1);
  run("show netevents --since yesterday 2>/dev/null", &rc);
  EXPECT_EQ(rc, 1);  // a clear usage error
  json opts = json::parse(run("set options --allows on --json", &rc));
  EXPECT_EQ(opts["keywords"], json::array({"CLASSIFY_ALLOW"}));
  run("set options --netevents off", &rc);
  EXPECT_EQ(json::parse(run("show coverage --json", &rc))["gaps"].back()["reason"], "collection off");
  run("capture stop " + bundle, &rc);
  ASSERT_EQ(rc, 0);
  std::ifstream in(bundle);
  json b = json::parse(in);
  EXPECT_TRUE(b["complete"].get<bool>());
  EXPECT_EQ(b["netevents"].size(), 2u);
  EXPECT_FALSE(b["options"]["collect"].get<bool>());
  EXPECT_TRUE(b["state"].contains("providers"));
  run("capture stop " + bundle + " 2>/dev/null", &rc);
  EXPECT_NE(rc, 0);  // a finished capture cannot be stopped again
}

TEST(Foreign, NftRulesetFindsTheDroppingRule) {
  // As `nft -j list ruleset` prints it: a table of another firewall at hook output.
  const json rs = json::parse(R"({"nftables": [
    {"table": {"family": "inet", "name": "other", "handle": 1}},
    {"chain": {"family": "inet", "table": "other", "name": "out", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
    {"chain": {"family": "inet", "table": "other", "name": "in", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
    {"rule": {"family": "inet", "table": "other", "chain": "out", "handle": 5, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 8080]}}},
      {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}},
      {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
    {"rule": {"family": "inet", "table": "other", "chain": "in", "handle": 6, "expr": [
      {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
    {"rule": {"family": "inet", "table": "other", "chain": "in", "handle": 7, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}
  ]})");
  diagnostics::Hypothesis h;
  h.protocol = 6;
  h.remote = {"10.1.2.3", 8080};
  json f = diagnostics::nft_causes(rs, h);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(f[0]["certainty"], "drops");
  EXPECT_EQ(f[0]["rule"], 5);
  // Other traffic does not meet rule 5, but the input chain's policy drops a new inbound flow.
  h.remote = {"192.0.2.1", 8080};
  f = diagnostics::nft_causes(rs, h);
  ASSERT_EQ(f.size(), 1u) << f.dump(2);
  EXPECT_EQ(f[0]["rule"], "policy");
  EXPECT_NE(f[0]["description"].get<std::string>().find("inbound"), std::string::npos);
  // A v6 flow: the ip daddr match cannot hold.
  h.remote = {"fd00::1", 80};
  for (const auto& x : diagnostics::nft_causes(rs, h)) EXPECT_NE(x["rule"], 5);
}

}  // namespace
}  // namespace lfp::test
