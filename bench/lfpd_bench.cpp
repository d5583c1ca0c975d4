// lfpd's speed through its real socket: a 10k-filter transaction, enumerating 100k filters, and the
// latency of classify, each with an in-process baseline measured in the same run.
//   lfpd-bench [--json] [--txn-only] [--repeat N] [--filters N] [--lfpd PATH] [--compare PATH]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

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

// 1. One transaction adding n filters: a single apply, and n separate adds; static and persistent.
// Figures in ms, each from a fresh lfpd.
json txn_figures(int n) {
  json out;
  lfp::test::Daemon d;
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

void usage() {
  std::fprintf(stderr,
               "usage: lfpd-bench [--json] [--txn-only] [--repeat N] [--filters N] [--lfpd PATH] [--compare PATH]\n"
               "  --txn-only      only the transaction figures (no enumeration, no classify)\n"
               "  --repeat N      run the transaction figures N times (fresh lfpd each), report medians\n"
               "  --filters N     filters per transaction (default 10000)\n"
               "  --lfpd PATH     the lfpd to measure (default: the one built with this bench)\n"
               "  --compare PATH  also measure another lfpd, interleaved run by run, and report both\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool as_json = false, txn_only = false;
  int repeat = 1, n = 10000;
  std::string compare;
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
    else if (a == "--repeat") repeat = std::max(1, std::stoi(value()));
    else if (a == "--filters") n = std::max(1, std::stoi(value()));
    else if (a == "--lfpd") lfp::test::lfpd_path() = value();
    else if (a == "--compare") compare = value();
    else {
      usage();
      return 2;
    }
  }
  json out;

  step("one transaction: apply 10k filters (static, persistent, implicit), 10k separate adds");
  {
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
    out = medians(runs);
    out["lfpd"] = main_lfpd;
    out["filters"] = n;
    out["runs"] = repeat;
    if (!compare.empty()) out["compare"] = {{"lfpd", compare}, {"figures", medians(other)}};
  }
  if (txn_only) {
    if (as_json) std::cout << out.dump(2) << '\n';
    else {
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
    return 0;
  }

  // 2. Enumerating 100k filters (paged, in one read transaction).
  {
    lfp::test::Daemon d;
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

  if (as_json) {
    std::cout << out.dump(2) << '\n';
  } else {
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
  return 0;
}
