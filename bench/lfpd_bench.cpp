// SPDX-License-Identifier: MIT
// lfpd's speed through its real socket: a 10k-filter transaction, enumerating 100k filters, and the
// latency of classify, each with an in-process baseline measured in the same run.
//   lfpd-bench [--json] [--txn-only] [--repeat N] [--filters N] [--lfpd PATH] [--compare PATH]
//   lfpd-bench --bulk N,N,... [--bulk-orders NAME,...] [--repeat N] [--json] [--lfpd PATH] [--compare PATH]
// --bulk: one transaction of N one-condition BLOCK filters (distinct remote /32s) at
// ALE_AUTH_CONNECT_V4 on a fresh lfpd, in front of a default permit committed before, or not.
// Every lfpd here runs without a kernel data path (--cgroup none).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "args.hpp"
#include "lfp/sys/spawn.hpp"
#include "daemon_support.hpp"
#include "lfp/engine/engine.hpp"
#include "lfp/policy/policy.hpp"

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Progress on stderr: this takes a while.
void step(const char* what) { std::fprintf(stderr, "lfpd-bench: %s\n", what); }

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

json filter_json(int i, bool persistent) {
  json f = {{"name", "bench " + std::to_string(i)},
            {"layer", "ALE_AUTH_CONNECT_V4"},
            {"action", i % 2 ? "BLOCK" : "PERMIT"},
            {"weight", {{"explicit", 1000000 - i}}},
            {"conditions",
             json::array({{{"field", "IP_REMOTE_ADDRESS"},
                           {"value", "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) +
                                         "." + std::to_string(i & 255)}},
                          {{"field", "IP_REMOTE_PORT"}, {"match", "RANGE"}, {"value", {{"low", 1000 + i % 50}, {"high", 2000}}}},
                          {{"field", "IP_PROTOCOL"}, {"value", "TCP"}}})}};
  if (persistent) f["flags"] = json::array({"PERSISTENT"});
  return f;
}

json policy_of(int from, int n, bool persistent) {
  json p = {{"filters", json::array()}};
  for (int i = from; i < from + n; ++i) p["filters"].push_back(filter_json(i, persistent));
  return p;
}

struct Latency {
  double mean_us, p50_us, p99_us;
};
Latency summarize(std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  return {std::accumulate(us.begin(), us.end(), 0.0) / us.size(), us[us.size() / 2], us[us.size() * 99 / 100]};
}

// --- bulk: one transaction of n filters, by load order ------------------------------------------

const char* const kBulkOrders[] = {"permit", "empty", "identical"};

json block_json(int i, bool identical) {
  const int a = identical ? 0 : i;
  return {{"name", "block " + std::to_string(i)},
          {"layer", "ALE_AUTH_CONNECT_V4"},
          {"action", "BLOCK"},
          {"conditions", json::array({{{"field", "IP_REMOTE_ADDRESS"},
                                       {"value", "10." + std::to_string((a >> 16) & 255) + "." +
                                                     std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255)}}})}};
}

// Milliseconds from begin to the commit's acknowledgement, on a fresh lfpd. "permit": a default
// permit (no condition, weight 0) is committed first, so every block goes in front of it;
// "empty": none; "identical": in front of the permit, all on one address.
double bulk_ms(const std::string& order, int n) {
  lfp::test::Daemon d({"--cgroup", "none"});
  auto c = d.connect();
  if (order != "empty")
    c->apply({{"filters", json::array({{{"name", "default permit"},
                                        {"layer", "ALE_AUTH_CONNECT_V4"},
                                        {"action", "PERMIT"},
                                        {"weight", {{"explicit", 0}}}}})}});
  json pol = {{"filters", json::array()}};
  for (int i = 0; i < n; ++i) pol["filters"].push_back(block_json(i, order == "identical"));
  auto t0 = Clock::now();
  c->begin();
  c->apply(pol);
  c->commit();
  return ms_since(t0);
}

// Each count and order, each lfpd in turn (interleaved), `repeat` times; medians.
int run_bulk(const std::vector<int>& counts, const std::vector<std::string>& orders, int repeat,
             const std::string& compare, bool as_json) {
  std::vector<std::string> lfpds = {lfp::test::lfpd_path()};
  if (!compare.empty()) lfpds.push_back(compare);
  json out = json::array();
  for (int n : counts)
    for (const auto& order : orders) {
      std::vector<std::vector<double>> ms(lfpds.size());
      for (int r = 0; r < repeat; ++r)
        for (size_t l = 0; l < lfpds.size(); ++l) {
          lfp::test::lfpd_path() = lfpds[l];
          std::fprintf(stderr, "lfpd-bench: %d filters, %s, %s\n", n, order.c_str(), lfpds[l].c_str());
          ms[l].push_back(bulk_ms(order, n));
        }
      for (size_t l = 0; l < lfpds.size(); ++l) {
        std::sort(ms[l].begin(), ms[l].end());
        const double median = ms[l][ms[l].size() / 2];
        out.push_back({{"filters", n}, {"order", order}, {"lfpd", lfpds[l]}, {"runs", repeat}, {"ms", median}});
        if (!as_json)
          std::printf("%8d filters  %-9s  %10.1f ms  %s (median of %d)\n", n, order.c_str(), median,
                      lfpds[l].c_str(), repeat);
        std::fflush(stdout);
      }
    }
  lfp::test::lfpd_path() = lfpds.front();
  if (as_json) std::cout << out.dump(2) << '\n';
  return 0;
}

// A positive count, or a one-line error and exit status 2.
int count_of(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (errno || end == v.c_str() || *end || x < 1 || x > 100'000'000) {
    std::fprintf(stderr, "lfpd-bench: %s wants a count from 1 to 100000000, got '%s'\n", flag.c_str(), v.c_str());
    std::exit(2);
  }
  return static_cast<int>(x);
}


// 1. One transaction adding n filters: a single apply, and n separate adds; static and persistent.
// Figures in ms, each from a fresh lfpd.
json txn_figures(int n) {
  json out;
  lfp::test::Daemon d({"--cgroup", "none"});
  auto c = d.connect();
  // Baseline: the same policy parsed and applied in process, no socket, no store.
  lfp::FilterEngine engine;
  json pol = policy_of(0, n, false);
  auto t0 = Clock::now();
  lfp::policy::apply_policy(engine, lfp::policy::policy_from_json(pol));
  out["txn_10k_in_process_ms"] = ms_since(t0);

  t0 = Clock::now();
  c->begin();
  c->apply(pol);
  auto tc = Clock::now();
  c->commit();
  out["txn_10k_commit_ms"] = ms_since(tc);
  out["txn_10k_apply_ms"] = ms_since(t0);

  json ppol = policy_of(n, n, true);
  t0 = Clock::now();
  c->begin();
  c->apply(ppol);
  tc = Clock::now();
  c->commit();
  out["txn_10k_commit_persistent_ms"] = ms_since(tc);
  out["txn_10k_apply_persistent_ms"] = ms_since(t0);

  // The same in an implicit transaction (one request: apply, persist, reply).
  json ipol = policy_of(2 * n, n, true);
  t0 = Clock::now();
  c->apply(ipol);
  out["txn_10k_implicit_persistent_ms"] = ms_since(t0);

  t0 = Clock::now();
  c->begin();
  for (int i = 3 * n; i < 4 * n; ++i) c->add("filter", filter_json(i, false));
  c->commit();
  out["txn_10k_adds_ms"] = ms_since(t0);
  return out;
}

// Per figure, the median over runs.
json medians(const std::vector<json>& runs) {
  json out = json::object();
  for (auto it = runs.front().begin(); it != runs.front().end(); ++it) {
    const std::string k = it.key();
    std::vector<double> xs;
    for (const auto& r : runs) xs.push_back(r.at(k).get<double>());
    std::sort(xs.begin(), xs.end());
    out[k] = xs[xs.size() / 2];
  }
  return out;
}

// --soak (issue 30): root's latency while one user who is not an admin takes what it can: `conns`
// connections (lfpd takes --max-sessions-per-uid of them), one holding a read transaction and one a
// half-sent request, while root applies 10k filters and reads its state, rounds times. The same
// root load on the same lfpd, with no attacker, in the rounds before (interleaved: quiet, attacked).
json soak(int conns, int rounds) {
  lfp::test::Daemon d({"--cgroup", "none"});
  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  auto root_load = [&](std::vector<double>& reads, std::vector<double>& applies, int round) {
    auto c = d.connect({.name = "root", .txn_wait_ms = 60000, .reply_timeout_ms = 60000});  // (a stuck lfpd fails the run)
    json policy = {{"filters", json::array()}};
    for (int i = 0; i < 10000; ++i) policy["filters"].push_back(filter_json(round * 10000 + i, false));
    auto t = Clock::now();
    c->apply(policy);
    applies.push_back(ms_since(t));
    for (int i = 0; i < 100; ++i) {
      t = Clock::now();
      c->call("state");
      reads.push_back(ms_since(t));
    }
  };
  std::vector<double> quiet_reads, quiet_applies, reads, applies;
  int accepted = -1, refused = -1;
  for (int r = 0; r < rounds; ++r) {
    root_load(quiet_reads, quiet_applies, 2 * r);
    int ready[2], done[2];
    if (pipe(ready) != 0 || pipe(done) != 0) throw std::runtime_error("pipe");
    const pid_t child = fork();
    if (child == 0) {  // the attacker, as nobody
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
      std::vector<std::unique_ptr<lfp::client::Client>> held;
      int no = 0;
      for (int i = 0; i < conns; ++i) {
        try {
          held.push_back(std::make_unique<lfp::client::Client>(d.socket(), lfp::client::SessionOptions{.name = "soak"}));
        } catch (const std::exception&) {
          ++no;
        }
      }
      if (!held.empty()) held.front()->begin(true);  // a read transaction, held
      if (held.size() > 1) {  // a request's first bytes, never the rest
        const char part[] = "\x00\x10\x00\x00{";
        [[maybe_unused]] auto w = ::write(held[1]->fd(), part, sizeof part - 1);
      }
      const int counts[2] = {static_cast<int>(held.size()), no};
      char c;
      if (::write(ready[1], counts, sizeof counts) != sizeof counts || ::read(done[0], &c, 1) != 1) _exit(1);
      _exit(0);
    }
    int counts[2] = {-1, -1};
    if (::read(ready[0], counts, sizeof counts) != sizeof counts) throw std::runtime_error("the attacker did not start");
    accepted = counts[0], refused = counts[1];
    root_load(reads, applies, 2 * r + 1);
    [[maybe_unused]] auto w = ::write(done[1], "x", 1);
    waitpid(child, nullptr, 0);
    for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
  }
  auto figures = [&](const std::vector<double>& rd, const std::vector<double>& ap) {
    return json{{"state_p50_ms", pct(rd, 0.5)}, {"state_p99_ms", pct(rd, 0.99)}, {"state_max_ms", pct(rd, 1.0)},
                {"apply_10k_p50_ms", pct(ap, 0.5)}, {"apply_10k_max_ms", pct(ap, 1.0)}};
  };
  return {{"attacker_connections", conns}, {"accepted", accepted}, {"refused", refused}, {"rounds", rounds},
          {"quiet", figures(quiet_reads, quiet_applies)}, {"attacked", figures(reads, applies)}};
}

// --soak-apply N (issue 30): how long lfpd keeps a concurrent reader waiting while root applies N
// filters with `lfp apply FILE` (one-condition BLOCKs at `layer`, as kernel-scale-bench's blocklist;
// the file is written first, not timed). One thread each, own session, back to back until the apply is done:
// connect + hello (the event loop's stalls), ping on an open session (the same, without the connect),
// get of one filter, enum of one page (100), state; reads also wait for the apply's transaction
// lock (nobody sees half a transaction). Against `socket` (an lfpd run by hand, e.g. in a network
// namespace of its own with its packet layers: docs/lfpd.md) or, if empty, a fresh lfpd with no data path.
json soak_apply(long n, const std::string& socket, const std::string& layer) {
  std::unique_ptr<lfp::test::Daemon> own;
  if (socket.empty()) own = std::make_unique<lfp::test::Daemon>(std::vector<std::string>{"--cgroup", "none"});
  const std::string sock = socket.empty() ? own->socket() : socket;
  const lfp::client::SessionOptions patient{.name = "soak-reader", .txn_wait_ms = 3'600'000, .reply_timeout_ms = 0};
  auto c = std::make_unique<lfp::client::Client>(sock, patient);
  auto blocking = [&](int i) {
    json f = block_json(i, false);
    f["layer"] = layer;
    return f;
  };
  const std::string one = c->add("filter", blocking(1 << 23))["key"];  // (outside the file's addresses)

  char dir[] = "/tmp/lfpd-soak-apply-XXXXXX";
  if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
  const std::string file = std::string(dir) + "/policy.json";
  {
    step("soak-apply: writing the policy file");
    std::string text = "{\"filters\":[";
    for (long i = 0; i < n; ++i) {
      if (i) text += ',';
      text += blocking(static_cast<int>(i)).dump();
    }
    text += "]}";
    std::FILE* f = std::fopen(file.c_str(), "w");
    if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0)
      throw std::runtime_error(file + ": cannot write");
  }

  std::atomic<bool> done{false};
  struct Reader {
    const char* name;
    std::function<void(lfp::client::Client&)> request;
    std::vector<double> ms;
    std::string error;
  };
  std::vector<Reader> readers;
  readers.push_back({"hello", [&](lfp::client::Client&) { lfp::client::Client fresh(sock, patient); }, {}, {}});
  readers.push_back({"ping", [](lfp::client::Client& r) { r.call("ping"); }, {}, {}});
  readers.push_back({"get", [&](lfp::client::Client& r) { r.get("filter", one); }, {}, {}});
  readers.push_back({"enum", [](lfp::client::Client& r) { r.call("enum", {{"kind", "filter"}, {"limit", 100}}); }, {}, {}});
  readers.push_back({"state", [](lfp::client::Client& r) { r.call("state"); }, {}, {}});
  step("soak-apply: lfp apply, with the readers");
  std::vector<std::thread> threads;
  for (Reader& r : readers)
    threads.emplace_back([&, &r = r] {
      try {
        lfp::client::Client session(sock, patient);
        while (!done) {
          const auto t = Clock::now();
          r.request(session);
          r.ms.push_back(ms_since(t));
        }
      } catch (const std::exception& e) {
        r.error = e.what();
      }
    });
  const auto t0 = Clock::now();
  const int apply_exit = lfp::sys::wait_exit(lfp::sys::spawn({lfp::test::lfp_cli_path(), "--socket", sock, "apply", file}));
  const double apply_ms = ms_since(t0);
  done = true;
  for (auto& t : threads) t.join();
  std::filesystem::remove_all(dir);

  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  json out = {{"filters", n}, {"apply_ms", apply_ms}, {"apply_exit", apply_exit},
              {"layer", layer}, {"lfpd", socket.empty() ? "a fresh lfpd, no data path" : socket}};
  for (const Reader& r : readers) {
    json figures = {{"requests", r.ms.size()}, {"p50_ms", pct(r.ms, 0.5)}, {"p99_ms", pct(r.ms, 0.99)}, {"max_ms", pct(r.ms, 1.0)}};
    if (!r.error.empty()) figures["error"] = r.error;
    out["readers"][r.name] = figures;
  }
  c->call("delete", {{"kind", "filter"}, {"key", one}});
  return out;
}

void usage() {
  std::fprintf(stderr,
               "usage: lfpd-bench [--json] [--txn-only] [--repeat N] [--filters N] [--lfpd PATH] [--compare PATH]\n"
               "  --txn-only      only the transaction figures (no enumeration, no classify)\n"
               "  --repeat N      run the transaction figures N times (fresh lfpd each), report medians\n"
               "  --filters N     filters per transaction (default 10000)\n"
               "  --lfpd PATH     the lfpd to measure (default: the one built with this bench)\n"
               "  --compare PATH  also measure another lfpd, interleaved run by run, and report both\n"
               "  --bulk N,N,...  instead: one transaction of N BLOCK filters (distinct remote /32s) at\n"
               "                  ALE_AUTH_CONNECT_V4 on a fresh lfpd, begin to commit acknowledged, per order:\n"
               "  --bulk-orders   permit (in front of a default permit, committed first), empty (no permit),\n"
               "                  identical (in front of the permit, all one address); default: all\n"
               "  --soak N        instead: root's state reads and 10k applies while nobody holds N connections,\n"
               "                  a read transaction and a half-sent request (--repeat rounds), against none\n"
               "  --soak-apply N  instead: readers' latency (hello, ping, get, enum, state) while `lfp apply`\n"
               "                  adds N filters (at --soak-layer, default ALE_AUTH_CONNECT_V4); --socket PATH:\n"
               "                  to an lfpd run by hand (default: a fresh one, no data path)\n");
}

// 1. One transaction of n filters, `repeat` times on a fresh lfpd each (and on `compare`'s, interleaved): medians.
json txn_section(int n, int repeat, const std::string& compare) {
  step("one transaction: apply 10k filters (static, persistent, implicit), 10k separate adds");
  const std::string main_lfpd = lfp::test::lfpd_path();
  std::vector<json> runs, other;
  for (int r = 0; r < repeat; ++r) {
    runs.push_back(txn_figures(n));
    if (!compare.empty()) {
      lfp::test::lfpd_path() = compare;
      other.push_back(txn_figures(n));
      lfp::test::lfpd_path() = main_lfpd;
    }
  }
  json out = medians(runs);
  out["lfpd"] = main_lfpd;
  out["filters"] = n;
  out["runs"] = repeat;
  if (!compare.empty()) out["compare"] = {{"lfpd", compare}, {"figures", medians(other)}};
  return out;
}

void print_txn_only(const json& out, int n, int repeat, const std::string& compare) {
  auto line = [&](const char* who, const json& f) {
    std::printf("%s: apply %.1f ms (commit %.1f), persistent %.1f ms (commit %.1f), implicit persistent %.1f ms, "
                "separate adds %.1f ms; in process %.1f ms\n",
                who, f["txn_10k_apply_ms"].get<double>(), f["txn_10k_commit_ms"].get<double>(),
                f["txn_10k_apply_persistent_ms"].get<double>(), f["txn_10k_commit_persistent_ms"].get<double>(),
                f["txn_10k_implicit_persistent_ms"].get<double>(), f["txn_10k_adds_ms"].get<double>(),
                f["txn_10k_in_process_ms"].get<double>());
  };
  std::printf("%d filters per transaction, median of %d run(s), ms\n", n, repeat);
  line(out["lfpd"].get<std::string>().c_str(), out);
  if (out.contains("compare")) line(compare.c_str(), out["compare"]["figures"]);
}

// 2. Enumerating 100k filters (paged, in one read transaction); 3. classify latency over the socket at
// 100k filters, against ping and in-process classify. Into `out`.
void enum_and_classify_section(json& out) {
  lfp::test::Daemon d({"--cgroup", "none"});
  auto c = d.connect();
  step("loading 100k filters");
  for (int chunk = 0; chunk < 10; ++chunk) c->apply(policy_of(chunk * 10000, 10000, false));
  step("enumerating 100k filters");
  auto t0 = Clock::now();
  c->begin(true);
  auto all = c->enumerate("filter");
  c->commit();
  out["enum_100k_ms"] = ms_since(t0);
  out["enum_100k_count"] = all.size();

  // 3. classify latency over the socket at 100k filters, against ping and in-process classify.
  step("classify and ping latency over the socket");
  const int requests = 20000;
  std::vector<double> ping, cls;
  for (int i = 0; i < requests; ++i) {
    auto t = Clock::now();
    c->call("ping");
    ping.push_back(ms_since(t) * 1000);
  }
  json values = {{"IP_REMOTE_ADDRESS", "10.0.1.7"}, {"IP_LOCAL_ADDRESS", "192.0.2.1"}, {"IP_REMOTE_PORT", 1500},
                 {"IP_LOCAL_PORT", 40000}, {"IP_PROTOCOL", "TCP"}};
  for (int i = 0; i < requests; ++i) {
    values["IP_REMOTE_ADDRESS"] = "10.0." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    auto t = Clock::now();
    c->classify("ALE_AUTH_CONNECT_V4", values);
    cls.push_back(ms_since(t) * 1000);
  }
  lfp::FilterEngine engine;
  for (int chunk = 0; chunk < 10; ++chunk)
    lfp::policy::apply_policy(engine, lfp::policy::policy_from_json(policy_of(chunk * 10000, 10000, false)));
  std::vector<double> local;
  for (int i = 0; i < requests; ++i) {
    lfp::policy::Request r;
    values["IP_REMOTE_ADDRESS"] = "10.0." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    auto t = Clock::now();
    lfp::policy::parse_request(json{{"layer", "ALE_AUTH_CONNECT_V4"}, {"values", values}}, r);
    auto res = engine.classify(r.layer, r.values);
    auto j = lfp::policy::result_to_json(engine, res);
    local.push_back(ms_since(t) * 1000);
  }
  auto p = summarize(ping), c2 = summarize(cls), l = summarize(local);
  out["ping_us"] = {{"mean", p.mean_us}, {"p50", p.p50_us}, {"p99", p.p99_us}};
  out["classify_socket_us"] = {{"mean", c2.mean_us}, {"p50", c2.p50_us}, {"p99", c2.p99_us}};
  out["classify_in_process_us"] = {{"mean", l.mean_us}, {"p50", l.p50_us}, {"p99", l.p99_us}};
}

void print_full(const json& out) {
  std::printf("one transaction of 10k filters, begin to commit acknowledged: apply %.1f ms (commit %.1f ms), "
              "persistent %.1f ms (commit %.1f ms), 10k separate adds %.1f ms; in-process parse+apply, no socket: %.1f ms\n",
              out["txn_10k_apply_ms"].get<double>(), out["txn_10k_commit_ms"].get<double>(),
              out["txn_10k_apply_persistent_ms"].get<double>(), out["txn_10k_commit_persistent_ms"].get<double>(),
              out["txn_10k_adds_ms"].get<double>(), out["txn_10k_in_process_ms"].get<double>());
  std::printf("enumerate 100k filters: %.1f ms\n", out["enum_100k_ms"].get<double>());
  std::printf("classify over the socket at 100k filters: mean %.1f us, p50 %.1f us, p99 %.1f us "
              "(ping %.1f us; in process incl. JSON %.1f us)\n",
              out["classify_socket_us"]["mean"].get<double>(), out["classify_socket_us"]["p50"].get<double>(),
              out["classify_socket_us"]["p99"].get<double>(), out["ping_us"]["p50"].get<double>(),
              out["classify_in_process_us"]["p50"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
  bool as_json = false, txn_only = false;
  int repeat = 1, n = 10000;
  std::string compare;
  std::vector<int> bulk_counts;
  int soak_conns = 0;
  long soak_apply_n = 0;
  std::string socket, soak_layer = "ALE_AUTH_CONNECT_V4";
  std::vector<std::string> bulk_orders(std::begin(kBulkOrders), std::end(kBulkOrders));
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json") as_json = true;
    else if (a == "--txn-only") txn_only = true;
    else if (a == "--repeat") repeat = count_of(a, value());
    else if (a == "--filters") n = count_of(a, value());
    else if (a == "--lfpd") lfp::test::lfpd_path() = value();
    else if (a == "--compare") compare = value();
    else if (a == "--soak") soak_conns = count_of(a, value());
    else if (a == "--soak-apply") soak_apply_n = count_of(a, value());
    else if (a == "--socket") socket = value();
    else if (a == "--soak-layer") soak_layer = value();
    else if (a == "--bulk")
      for (const auto& c : lfp::bench::split_list(value())) bulk_counts.push_back(count_of(a, c));
    else if (a == "--bulk-orders") {
      bulk_orders = lfp::bench::split_list(value());
      for (const auto& o : bulk_orders)
        if (std::find(std::begin(kBulkOrders), std::end(kBulkOrders), o) == std::end(kBulkOrders)) {
          std::fprintf(stderr, "lfpd-bench: unknown --bulk-orders order '%s'\n", o.c_str());
          return 2;
        }
    } else {
      usage();
      return 2;
    }
  }
  if (!bulk_counts.empty()) return run_bulk(bulk_counts, bulk_orders, repeat, compare, as_json);
  if (soak_apply_n > 0) {
    std::cout << soak_apply(soak_apply_n, socket, soak_layer).dump(2) << '\n';
    return 0;
  }
  if (soak_conns > 0) {
    step("soak: root's reads and applies, quiet and with an attacker");
    std::cout << soak(soak_conns, std::max(repeat, 3)).dump(2) << '\n';
    return 0;
  }
  json out = txn_section(n, repeat, compare);
  if (txn_only) {
    if (as_json) std::cout << out.dump(2) << '\n';
    else print_txn_only(out, n, repeat, compare);
    return 0;
  }
  enum_and_classify_section(out);
  if (as_json) std::cout << out.dump(2) << '\n';
  else print_full(out);
  return 0;
}
