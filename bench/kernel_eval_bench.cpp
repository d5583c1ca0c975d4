// SPDX-License-Identifier: MIT
// lfp-kernel-eval-bench: what one in-kernel classification (lfp_eval, the walk every ALE and packet
// hook makes) costs as a layer's policy grows, against the engine's own classify in user space on
// the same policy and values, measured in the same run.
//
// Each policy holds N filters at ALE_AUTH_CONNECT_V4 in two sublayers, none of which matches (other
// remote ports, a remote address range, another application, in turn), and one permit that does:
// the walk goes through all of them, as a connect() that is allowed does. The kernel side is
// `--repeat` runs of lfp_test_eval through BPF_PROG_TEST_RUN, timed by the kernel's own statistics
// (BPF_ENABLE_STATS: a syscall program's test run has no repeat of its own); nothing is attached
// anywhere. Needs root (loading BPF programs).
//
//   lfp-kernel-eval-bench [--json] [--repeat N] [--sizes N,N,...]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/datapath/compile.hpp"
#include "lfp/datapath/kernel.hpp"

namespace {

using namespace lfp;
using namespace lfp::datapath;
using Clock = std::chrono::steady_clock;

Condition cond(FieldId f, MatchType m, ConditionValue v) { return Condition{f, m, std::move(v)}; }

// N non-matching filters and the permit that matches a connect to 10.0.0.2:8080 by /usr/bin/true.
void fill_policy(FilterEngine& e, int n) {
  Sublayer hi, lo;
  hi.display.name = "hi";
  hi.weight = 0xc000;
  lo.display.name = "lo";
  lo.weight = 0x1000;
  const Guid sub[2] = {e.add_sublayer(hi), e.add_sublayer(lo)};
  for (int i = 0; i < n; ++i) {
    Filter f;
    f.display.name = "other " + std::to_string(i);
    f.layer = LayerId::ALE_AUTH_CONNECT_V4;
    f.sublayer = sub[i % 2];
    f.action.type = ActionType::BLOCK;
    switch (i % 3) {
      case 0:
        f.conditions = {cond(FieldId::IP_REMOTE_PORT, MatchType::EQUAL, ConditionValue::uint(DataType::UINT16, 20000 + i))};
        break;
      case 1:
        f.conditions = {cond(FieldId::IP_REMOTE_ADDRESS, MatchType::RANGE,
                             ConditionValue::range(OwnedValue{DataType::UINT32, 0xc0a80000u + 256u * i},
                                                   OwnedValue{DataType::UINT32, 0xc0a800ffu + 256u * i}))};
        break;
      default:
        f.conditions = {cond(FieldId::ALE_APP_ID, MatchType::EQUAL,
                             ConditionValue::plain(OwnedValue{DataType::BYTE_BLOB_TYPE, 0, {}, "/usr/bin/env"})),
                        cond(FieldId::IP_PROTOCOL, MatchType::EQUAL, ConditionValue::uint(DataType::UINT8, 6))};
    }
    e.add_filter(f);
  }
  Filter p;
  p.display.name = "permit";
  p.layer = LayerId::ALE_AUTH_CONNECT_V4;
  p.sublayer = sub[1];
  p.weight = Weight::explicit_weight(0);
  p.action.type = ActionType::PERMIT;
  p.conditions = {cond(FieldId::IP_REMOTE_PORT, MatchType::EQUAL, ConditionValue::uint(DataType::UINT16, 8080))};
  e.add_filter(p);
}

lfp_values connect_values() {
  lfp_values v{};
  auto put = [&](int slot, uint64_t x) {
    v.v[slot][1] = x;
    v.present |= 1u << slot;
  };
  put(LFP_S_REMOTE_ADDR, 0x0a000002);
  put(LFP_S_REMOTE_PORT, 8080);
  put(LFP_S_PROTOCOL, 6);
  put(LFP_S_FLAGS, 0);
  const AppKey app = resolve_app("/usr/bin/true");
  v.v[LFP_S_APP][0] = app.dev;
  v.v[LFP_S_APP][1] = app.ino;
  v.present |= 1u << LFP_S_APP | 1u << LFP_S_USER;
  return v;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "%s\nusage: lfp-kernel-eval-bench [--json] [--repeat N] [--sizes N,N,...]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  bool as_json = false;
  uint32_t repeat = 200000;
  std::vector<int> sizes = {0, 10, 50, 200, 1000};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    try {
      if (a == "--json") {
        as_json = true;
      } else if (a == "--repeat") {
        const long r = std::stol(next());
        if (r < 1 || r > 100000000) usage("--repeat must be 1..100000000");
        repeat = static_cast<uint32_t>(r);
      } else if (a == "--sizes") {
        sizes.clear();
        std::stringstream ss(next());
        for (std::string t; std::getline(ss, t, ',');) {
          const int n = std::stoi(t);
          if (n < 0 || n > 20000) usage("each size must be 0..20000");
          sizes.push_back(n);
        }
        if (sizes.empty()) usage("--sizes needs at least one size");
      } else {
        usage(("unknown argument " + a).c_str());
      }
    } catch (const std::logic_error&) {
      usage(("bad value for " + a).c_str());
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "lfp-kernel-eval-bench: loading BPF programs needs root\n");
    return 1;
  }
  try {
    KernelPath k(KernelOptions{});  // loaded, attached nowhere
    const lfp_values v = connect_values();
    nlohmann::json out = {{"repeat", repeat}, {"sizes", nlohmann::json::array()}};
    if (!as_json) std::printf("%8s %14s %14s %8s\n", "filters", "kernel ns", "engine ns", "k/e");
    for (int n : sizes) {
      FilterEngine e;
      fill_policy(e, n);
      const KernelPolicy& pol = k.install(e);
      const lfp_verdict d = k.evaluate(LFP_KL_CONNECT_V4, v);
      Token token;
      FieldValues fv;
      to_field_values(LFP_KL_CONNECT_V4, v, pol.apps, token, fv);
      const ClassifyResult want = e.classify(LayerId::ALE_AUTH_CONNECT_V4, fv);
      if (d.defer || !d.decided || !d.permit || !want.filter || d.filter_id != want.filter->id)
        throw std::runtime_error("the kernel and the engine disagree at " + std::to_string(n) + " filters");
      const double kernel_ns = k.time_evaluate(LFP_KL_CONNECT_V4, v, repeat);
      // The engine, the same number of times (at most a second's worth).
      const uint32_t reps = std::min<uint32_t>(repeat, 2000000);
      uint64_t sink = 0;
      const auto t0 = Clock::now();
      for (uint32_t r = 0; r < reps; ++r) sink += e.classify(LayerId::ALE_AUTH_CONNECT_V4, fv).filter->id;
      const double engine_ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / reps;
      if (sink != uint64_t{reps} * want.filter->id) throw std::runtime_error("the engine changed its answer");
      out["sizes"].push_back({{"filters", n + 1}, {"kernel_ns", kernel_ns}, {"engine_ns", engine_ns}});
      if (!as_json) std::printf("%8d %14.0f %14.0f %8.2f\n", n + 1, kernel_ns, engine_ns, kernel_ns / engine_ns);
    }
    if (as_json) std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "lfp-kernel-eval-bench: %s\n", ex.what());
    return 1;
  }
  return 0;
}
