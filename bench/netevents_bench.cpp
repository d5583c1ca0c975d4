// SPDX-License-Identifier: MIT
// The net event log's speed: ingestion (events/s, to disk) and `diagnose` latency over a large log.
//   lfp-netevents-bench [--events N] [--json]        (default 1,000,000 events over the last 24 h)
// Baselines measured in the same run: the same rows into a bare SQLite table (no indexes, no JSON
// checks), and the diagnosis through lfpd's socket against the in-process call.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "daemon_support.hpp"
#include "lfp/diagnostics/diagnose.hpp"
#include "lfp/netevents/log.hpp"
#include "lfp/policy/policy.hpp"

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace ne = lfp::netevents;

namespace {

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
void step(const std::string& s) { std::fprintf(stderr, "lfp-netevents-bench: %s\n", s.c_str()); }

constexpr int64_t kSec = 1'000'000'000;

std::string provider(int i) { return "aaaaaaaa-0000-4000-8000-" + std::string(10, '0') + std::to_string(10 + i); }

json event(int i, int64_t t, std::mt19937& rng) {
  const int r = static_cast<int>(rng() % 200), a = static_cast<int>(rng() % 50), p = static_cast<int>(rng() % 10);
  return {{"type", "CLASSIFY_DROP"},
          {"time", ne::format_time(t)},
          {"ip_protocol", rng() % 5 ? 6 : 17},
          {"local_address", "10.0.0.1"},
          {"local_port", 32768 + i % 28000},
          {"remote_address", "198.51." + std::to_string(r / 100) + "." + std::to_string(r % 100 + 1)},
          {"remote_port", rng() % 2 ? 443 : 80},
          {"app_id", "/usr/bin/app" + std::to_string(a)},
          {"uid", 1000 + rng() % 5},
          {"layer", "ALE_AUTH_CONNECT_V4"},
          {"filter_id", 100 + p},
          {"filter_key", "ffffffff-0000-4000-8000-" + std::string(10, '0') + std::to_string(10 + p)},
          {"filter_name", "block " + std::to_string(p)},
          {"provider", provider(p)},
          {"hard", false},
          {"direction", "OUTBOUND"}};
}

// The baseline: the same rows into a bare table (no indexes), 8192 a transaction.
double bare_sqlite(const std::string& path, const std::vector<ne::Record>& recs) {
  sqlite3* db;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   "CREATE TABLE e(seq INTEGER PRIMARY KEY, time_ns INTEGER, body TEXT)", nullptr, nullptr, nullptr);
  sqlite3_stmt* s;
  sqlite3_prepare_v2(db, "INSERT INTO e(time_ns, body) VALUES(?, ?)", -1, &s, nullptr);
  const auto t0 = Clock::now();
  for (size_t i = 0; i < recs.size(); ++i) {
    if (i % 8192 == 0) sqlite3_exec(db, i ? "COMMIT; BEGIN" : "BEGIN", nullptr, nullptr, nullptr);
    const std::string body = recs[i].body.dump();
    sqlite3_bind_int64(s, 1, recs[i].time_ns);
    sqlite3_bind_text(s, 2, body.data(), int(body.size()), SQLITE_TRANSIENT);
    sqlite3_step(s);
    sqlite3_reset(s);
  }
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  const double t = secs_since(t0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return t;
}

struct Case {
  const char* name;
  json hypothesis;
};

}  // namespace

int main(int argc, char** argv) {
  size_t n = 1'000'000;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--events") && i + 1 < argc) n = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--json")) as_json = true;
    else {
      std::fprintf(stderr, "usage: lfp-netevents-bench [--events N] [--json]\n");
      return 1;
    }
  }
  char tmpl[] = "/tmp/lfp-netevents-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  json out = {{"events", n}};

  step("generating " + std::to_string(n) + " events over the last 24 h");
  std::mt19937 rng(1);
  const int64_t now = ne::now_ns(), span = 24 * 3600 * kSec;
  std::vector<ne::Record> recs;
  recs.reserve(n);
  for (size_t i = 0; i < n; ++i) recs.push_back(ne::parse_event(event(int(i), now - span + int64_t(i) * (span / int64_t(n)), rng), 0));

  step("ingestion: bare SQLite table (baseline)");
  const double bare = bare_sqlite(dir + "/bare.db", recs);
  step("ingestion: the net event log (indexes, coverage, its writer thread)");
  lfp::test::Daemon lfpd;  // started now so that the log it opens later has coverage from here
  lfpd.stop();
  const std::string path = lfpd.dir() + "/state/netevents.db";
  std::filesystem::create_directories(lfpd.dir() + "/state");
  const std::string recent = recs.back().body["remote_address"];
  double logged;
  {
    ne::EventLog log(path);
    const auto t0 = Clock::now();
    // add() never waits (it is called from the packet path's drain): a producer faster than the
    // disk loses events, recorded as a gap. Here the producer waits every 100k, below the queue's bound.
    for (size_t i = 0; i < recs.size(); ++i) {
      if (!log.add(std::move(recs[i]))) throw std::runtime_error("event lost");
      if (i % 100000 == 99999) log.flush();
    }
    log.flush();
    logged = secs_since(t0);
  }
  // A log that has been collecting for a day: coverage from before the first event, no gap.
  {
    sqlite3* db;
    sqlite3_open(path.c_str(), &db);
    const std::string sql = "UPDATE meta SET v = '" + std::to_string(now - span - kSec) +
                            "' WHERE k = 'complete_since'; DELETE FROM meta WHERE k = 'last_alive'; DELETE FROM gaps;";
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  // The in-process diagnosis reads a copy: one log, one owner.
  const std::string copy = dir + "/inproc.db";
  std::filesystem::copy_file(path, copy);
  out["ingest"] = {{"bare_sqlite_events_per_s", n / bare}, {"log_events_per_s", n / logged}, {"ratio", bare / logged}};
  std::printf("ingest %zu events: net event log %.0f events/s, bare SQLite %.0f events/s (log/bare %.2f)\n", n, n / logged,
              n / bare, bare / logged);

  // The daemon's policy: the providers' filters that the events name.
  json filters = json::array(), providers = json::array();
  for (int p = 0; p < 10; ++p) {
    providers.push_back({{"key", provider(p)}, {"name", "provider " + std::to_string(p)}});
    filters.push_back({{"key", "ffffffff-0000-4000-8000-" + std::string(10, '0') + std::to_string(10 + p)},
                       {"name", "block " + std::to_string(p)}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                       {"provider", provider(p)},
                       {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 443}}, {{"field", "ALE_USER_ID"}, {"value", {{"uids", {1000 + p % 5}}}}}}}});
  }
  const json policy = {{"providers", providers}, {"filters", filters}};

  const std::vector<Case> cases = {
      {"remote, recent match", {{"time", "now"}, {"remote", recent}}},
      {"remote:port + app, 12 h ago", {{"time", ne::format_time(now - 12 * 3600 * kSec)}, {"window_s", 3600},
                                        {"remote", "198.51.0.7:443"}, {"app", "/usr/bin/app7"}}},
      {"provider only, 1 h window", {{"time", ne::format_time(now - 6 * 3600 * kSec)}, {"window_s", 3600}, {"provider", provider(3)}}},
      {"user + protocol, 1 h window", {{"time", ne::format_time(now - 2 * 3600 * kSec)}, {"window_s", 3600}, {"user", 1004}, {"protocol", "udp"}}},
      {"no match (unknown remote), 1 h", {{"time", "now"}, {"window_s", 3600}, {"remote", "203.0.113.9"}}},
      {"no match (protocol 99), 1 h", {{"time", "now"}, {"window_s", 3600}, {"protocol", 99}}},
      {"no match, whole day, app", {{"time", "now"}, {"window_s", 86400}, {"app", "/usr/bin/none"}}},
      // The hard case: no attribute with an index of its own is selective, so a 1 h window is scanned.
      {"no match, user+udp+port 8443, 1 h", {{"time", "now"}, {"window_s", 3600}, {"user", 1003}, {"protocol", "udp"},
                                             {"remote", ":8443"}}},
  };
  step("diagnose over " + std::to_string(n) + " events: in-process and through lfpd");
  lfpd.start();
  auto c = lfpd.connect();
  c->apply(policy);
  lfp::FilterEngine engine;
  lfp::policy::apply_policy(engine, lfp::policy::parse_policy(policy.dump()));
  ne::EventLog log(copy);
  json rows = json::array();
  for (const Case& k : cases) {
    auto h = lfp::diagnostics::parse_hypothesis(k.hypothesis, ne::now_ns());
    std::vector<double> inproc, daemon;
    std::string verdict;
    for (int i = 0; i < 21; ++i) {
      auto t0 = Clock::now();
      json d = lfp::diagnostics::diagnose(log, engine, h, ne::now_ns());
      inproc.push_back(secs_since(t0) * 1e3);
      verdict = d["verdict"];
      t0 = Clock::now();
      c->call("diagnose", {{"hypothesis", k.hypothesis}, {"foreign", false}});
      daemon.push_back(secs_since(t0) * 1e3);
    }
    std::sort(inproc.begin(), inproc.end());
    std::sort(daemon.begin(), daemon.end());
    std::printf("diagnose %-34s %-13s median %.3f ms (max %.3f) in-process, %.3f ms through lfpd\n", k.name,
                verdict.c_str(), inproc[10], inproc.back(), daemon[10]);
    rows.push_back({{"case", k.name}, {"verdict", verdict}, {"median_ms", inproc[10]}, {"max_ms", inproc.back()},
                    {"lfpd_median_ms", daemon[10]}});
  }
  out["diagnose"] = rows;
  if (as_json) std::cout << out.dump(2) << '\n';
  if (!getenv("KEEP")) std::filesystem::remove_all(dir); else std::fprintf(stderr, "kept %s\n", dir.c_str());
  return 0;
}
