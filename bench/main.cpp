// SPDX-License-Identifier: MIT
// lfp-bench: benchmarks of LFP's compiled classifier and engine.
//
//   lfp-bench classbench --rules FILE --trace FILE [--batch N] [--json] [--sample N] [--updates N]
//   lfp-bench bulk [--filters N,N,...] [--orders NAME,...] [--rounds N] [--json]
//
// classbench builds an lfp::cls::V4Classifier from a ClassBench filter set (rule i of n has
// priority n - i), checks every trace packet against the trace's rule column and a sample against
// a linear scan, and measures lookups, build, memory and updates.
// bulk times FilterEngine::add_filter for N one-condition BLOCK filters at ALE_AUTH_CONNECT_V4 in
// several load orders (see bulk_usage), then the enumeration the kernel compiler makes, and checks
// the loaded policy's decisions.
// Exit status 1 when any result is wrong, 2 on bad usage or unreadable input.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <random>
#include <time.h>
#include <string>
#include <vector>

#include "args.hpp"
#include "classbench_io.hpp"
#include "lfp/engine/engine.hpp"
#include "lfp/engine/tuple_classifier.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using lfp::cls::kNoRule;
using lfp::cls::V4Classifier;
namespace cb = lfp::classbench;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of this thread: unlike the wall clock, blind to time spent preempted on a busy machine.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double median3(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// First match in file order over structure-of-arrays rules: the reference and the baseline.
class LinearScan {
 public:
  explicit LinearScan(const std::vector<cb::Rule>& rules) {
    for (const cb::Rule& r : rules) {
      src_.push_back(r.src);
      smask_.push_back(r.src_len ? ~uint32_t{0} << (32 - r.src_len) : 0);
      dst_.push_back(r.dst);
      dmask_.push_back(r.dst_len ? ~uint32_t{0} << (32 - r.dst_len) : 0);
      splo_.push_back(r.sport_lo);
      sphi_.push_back(r.sport_hi);
      dplo_.push_back(r.dport_lo);
      dphi_.push_back(r.dport_hi);
      proto_.push_back(r.proto);
      pmask_.push_back(r.proto_mask);
    }
  }
  // Index of the first matching rule, or kNoRule.
  uint32_t match(const cb::Packet& p) const {
    const size_t n = src_.size();
    for (size_t i = 0; i < n; ++i) {
      if (((p.src ^ src_[i]) & smask_[i]) == 0 && ((p.dst ^ dst_[i]) & dmask_[i]) == 0 &&
          uint16_t(p.sport - splo_[i]) <= uint16_t(sphi_[i] - splo_[i]) &&
          uint16_t(p.dport - dplo_[i]) <= uint16_t(dphi_[i] - dplo_[i]) && ((p.proto ^ proto_[i]) & pmask_[i]) == 0)
        return uint32_t(i);
    }
    return kNoRule;
  }

 private:
  std::vector<uint32_t> src_, smask_, dst_, dmask_;
  std::vector<uint16_t> splo_, sphi_, dplo_, dphi_;
  std::vector<uint8_t> proto_, pmask_;
};

// The same set through the whole engine: rule i of n becomes classbench::to_filter(rule, n - i), an
// INBOUND_TRANSPORT_V4 filter (source -> IP_REMOTE_ADDRESS, destination -> IP_LOCAL_ADDRESS, ports
// likewise, protocol -> IP_PROTOCOL), and each packet is classified under WFP arbitration.
struct EngineFigures {
  double build_ms = 0, mpps = 0, add_ns = 0, delete_ns = 0, bytes_per_filter = 0;
  size_t wrong = 0;
};

EngineFigures run_engine(const std::vector<cb::Rule>& rules, const std::vector<cb::Packet>& trace,
                         const std::vector<uint32_t>& expected, size_t updates, int passes) {
  using namespace lfp;
  EngineFigures e;
  const uint64_t n = rules.size();
  FilterEngine engine;
  std::vector<Filter> filters;
  for (uint64_t i = 0; i < n; ++i) filters.push_back(cb::to_filter(rules[i], n - i));
  auto t0 = Clock::now();
  std::vector<uint64_t> ids(n);
  for (uint64_t i = 0; i < n; ++i) ids[i] = engine.add_filter(filters[i]);
  e.build_ms = seconds_since(t0) * 1e3;
  e.bytes_per_filter = double(engine.classifier_memory_bytes()) / double(n);

  FieldValues v;
  auto classify = [&](const cb::Packet& p) {
    v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(p.src));
    v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(p.dst));
    v.set(FieldId::IP_REMOTE_PORT, Value::uint16(p.sport));
    v.set(FieldId::IP_LOCAL_PORT, Value::uint16(p.dport));
    v.set(FieldId::IP_PROTOCOL, Value::uint8(p.proto));
    const ClassifyResult r = engine.classify(LayerId::INBOUND_TRANSPORT_V4, v);
    return r.filter ? uint32_t(r.filter->id - ids[0]) : kNoRule;  // ids are consecutive
  };
  // The engine's answer is the classifier's (and so the linear scan's) for every packet.
  for (size_t i = 0; i < trace.size(); ++i) e.wrong += classify(trace[i]) != expected[i];
  std::vector<double> times;
  uint64_t sink = 0;
  for (int pass = 0; pass < passes; ++pass) {
    t0 = Clock::now();
    for (const auto& p : trace) sink += classify(p);
    times.push_back(seconds_since(t0));
  }
  e.mpps = double(trace.size()) / median3(times) / 1e6;

  // Updates through the engine: delete random filters by id, then add them again.
  std::vector<uint64_t> pick(n);
  for (uint64_t i = 0; i < n; ++i) pick[i] = i;
  std::mt19937_64 rng(54321);
  std::shuffle(pick.begin(), pick.end(), rng);
  pick.resize(std::min<size_t>(updates, n));
  t0 = Clock::now();
  for (uint64_t i : pick) engine.delete_filter_by_id(ids[i]);
  e.delete_ns = pick.empty() ? 0 : seconds_since(t0) * 1e9 / double(pick.size());
  t0 = Clock::now();
  for (uint64_t i : pick) {
    filters[i].id = ids[i];  // back under its old id, so the check below still holds
    filters[i].key = {};
    engine.add_filter(filters[i]);
  }
  e.add_ns = pick.empty() ? 0 : seconds_since(t0) * 1e9 / double(pick.size());
  for (size_t i = 0; i < trace.size(); i += 97) e.wrong += classify(trace[i]) != expected[i];
  if (sink == 42) std::fprintf(stderr, " ");
  return e;
}

struct Options {
  std::string rules, trace;
  size_t batch = 0;
  bool json = false;
  size_t sample = 10000;
  size_t updates = 10000;
  int passes = 3;
  uint32_t collide = 0;  // 0 = the classifier's default
  bool no_simd = false;
};

// The complaint (if any), then the usage text; exit code 2.
[[noreturn]] void usage_exit(const char* msg, const char* text) {
  if (msg) std::fprintf(stderr, "lfp-bench: %s\n", msg);
  std::fputs(text, stderr);
  std::exit(2);
}

[[noreturn]] void usage(const char* msg) {
  usage_exit(msg,
             "usage: lfp-bench classbench --rules FILE --trace FILE [--batch N] [--json]\n"
             "                 [--sample N] [--updates N] [--passes N]\n"
             "       lfp-bench bulk --help\n"
             "  --batch N     also measure match_batch() with batches of N packets\n"
             "  --sample N    packets checked against (and timed with) a linear scan (default 10000)\n"
             "  --updates N   random rules deleted and re-inserted to time updates (default 10000)\n"
             "  --passes N    timed passes over the trace, the median is reported (default 3)\n"
             "  --collide N   the classifier's collision limit (tuning; default built in)\n"
             "  --no-simd     do not use the AVX-512 lookup path even when the CPU has it\n");
}

size_t parse_count(const std::string& flag, const char* v) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v, &end, 10);
  if (errno || end == v || *end || x > (1ull << 40)) usage((flag + " wants a count, got '" + v + "'").c_str());
  return size_t(x);
}

Options parse_args(int argc, char** argv) {
  if (argc < 2) usage(nullptr);
  std::string mode = argv[1];
  if (mode == "-h" || mode == "--help") usage(nullptr);
  if (mode != "classbench") usage(("unknown mode '" + mode + "'").c_str());
  Options o;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--rules") o.rules = value();
    else if (a == "--trace") o.trace = value();
    else if (a == "--batch") o.batch = parse_count(a, value());
    else if (a == "--sample") o.sample = parse_count(a, value());
    else if (a == "--updates") o.updates = parse_count(a, value());
    else if (a == "--passes") o.passes = int(std::max<size_t>(1, parse_count(a, value())));
    else if (a == "--json") o.json = true;
    else if (a == "--collide") o.collide = uint32_t(parse_count(a, value()));
    else if (a == "--no-simd") o.no_simd = true;
    else if (a == "-h" || a == "--help") usage(nullptr);
    else usage(("unknown option '" + a + "'").c_str());
  }
  if (o.rules.empty() || o.trace.empty()) usage("--rules and --trace are required");
  if (o.batch > (1u << 20)) usage("--batch is at most 1048576");
  return o;
}

// What one classbench run measured (besides the engine's figures).
struct ClassifierFigures {
  uint32_t rules;
  size_t packets, wrong, linear_mismatch, batch_mismatch, update_mismatch;
  double mpps, mpps_cpu, mpps_batch, mpps_batch_cpu, build_ms;
  size_t memory, tables;
  double insert_ns, delete_ns;
  size_t updates;
  double linear_mpps;
  size_t linear_sample;
  bool simd;
};

void print_figures(const Options& o, const ClassifierFigures& f, const EngineFigures& eng) {
  const double bpr = double(f.memory) / double(f.rules);
  if (o.json) {
    std::printf(
        "{\"rules\":%u,\"packets\":%zu,\"wrong\":%zu,\"linear_mismatch\":%zu,\"batch_mismatch\":%zu,"
        "\"update_mismatch\":%zu,\"mpps\":%.3f,\"mpps_cpu\":%.3f,\"mpps_batch\":%.3f,\"mpps_batch_cpu\":%.3f,\"batch\":%zu,\"build_ms\":%.3f,"
        "\"memory_bytes\":%zu,\"bytes_per_rule\":%.2f,\"tables\":%zu,\"insert_ns\":%.1f,\"delete_ns\":%.1f,"
        "\"updates\":%zu,\"linear_mpps\":%.4f,\"linear_sample\":%zu,\"speedup_vs_linear\":%.1f,\"simd\":%s,"
        "\"engine\":{\"layer\":\"INBOUND_TRANSPORT_V4\",\"wrong\":%zu,\"mpps\":%.3f,\"build_ms\":%.2f,"
        "\"bytes_per_filter\":%.2f,\"add_ns\":%.1f,\"delete_ns\":%.1f}}\n",
        f.rules, f.packets, f.wrong, f.linear_mismatch, f.batch_mismatch, f.update_mismatch, f.mpps, f.mpps_cpu, f.mpps_batch,
        f.mpps_batch_cpu, o.batch, f.build_ms, f.memory, bpr, f.tables, f.insert_ns, f.delete_ns, f.updates, f.linear_mpps,
        f.linear_sample, f.linear_mpps > 0 ? f.mpps / f.linear_mpps : 0.0, f.simd ? "true" : "false", eng.wrong, eng.mpps,
        eng.build_ms, eng.bytes_per_filter, eng.add_ns, eng.delete_ns);
    return;
  }
  std::printf("rules            %u\n", f.rules);
  std::printf("packets          %zu\n", f.packets);
  std::printf("wrong            %zu  (trace column; linear-scan sample mismatches %zu, batch %zu, after updates %zu)\n",
              f.wrong, f.linear_mismatch, f.batch_mismatch, f.update_mismatch);
  std::printf("Mpps single      %.2f  (median of %d passes; %.2f by thread CPU time)\n", f.mpps, o.passes, f.mpps_cpu);
  if (o.batch)
    std::printf("Mpps batched     %.2f  (batches of %zu; %.2f by thread CPU time)\n", f.mpps_batch, o.batch, f.mpps_batch_cpu);
  std::printf("Mpps linear scan %.4f  (%zu-packet sample)\n", f.linear_mpps, f.linear_sample);
  std::printf("build ms         %.2f\n", f.build_ms);
  std::printf("bytes per rule   %.2f  (%zu bytes, %zu tables)\n", bpr, f.memory, f.tables);
  std::printf("lookup path      %s\n", f.simd ? "AVX-512" : "generic");
  std::printf("ns per insert    %.1f  (%zu rules)\n", f.insert_ns, f.updates);
  std::printf("ns per delete    %.1f\n", f.delete_ns);
  std::printf("engine (filters at INBOUND_TRANSPORT_V4, WFP arbitration):\n");
  std::printf("  wrong          %zu\n", eng.wrong);
  std::printf("  Mpps single    %.2f\n", eng.mpps);
  std::printf("  build ms       %.2f  (add_filter for every rule)\n", eng.build_ms);
  std::printf("  bytes/filter   %.2f  (compiled classifier)\n", eng.bytes_per_filter);
  std::printf("  ns per add     %.1f  (add_filter)\n", eng.add_ns);
  std::printf("  ns per delete  %.1f  (delete_filter_by_id)\n", eng.delete_ns);
}

int run(const Options& o) {
  const std::vector<cb::Rule> rules = cb::read_rules(o.rules);
  const std::vector<cb::Packet> trace = cb::read_trace(o.trace);
  const uint32_t n = uint32_t(rules.size());
  if (n == 0) throw std::runtime_error(o.rules + ": no rules");

  std::vector<lfp::cls::RuleSpec<5>> specs(n);
  for (uint32_t i = 0; i < n; ++i) specs[i] = cb::to_spec(rules[i], n - i);
  std::vector<V4Classifier::Key> keys(trace.size());
  for (size_t i = 0; i < trace.size(); ++i) keys[i] = cb::to_key(trace[i]);

  // Build.
  V4Classifier c;
  if (o.collide) c.set_collide_limit(o.collide);
  if (o.no_simd) c.set_simd(false);
  auto t0 = Clock::now();
  for (uint32_t i = 0; i < n; ++i) c.insert(i, specs[i]);
  const double build_ms = seconds_since(t0) * 1e3;
  const size_t mem = c.memory_bytes();
  const size_t tables = c.table_count();

  // Every packet against the trace's rule column: the first match is that rule or an earlier one.
  std::vector<uint32_t> res(trace.size());
  for (size_t i = 0; i < keys.size(); ++i) res[i] = c.match(keys[i]);
  size_t wrong = 0;
  for (size_t i = 0; i < trace.size(); ++i)
    if (res[i] == kNoRule || res[i] > trace[i].rule) ++wrong;

  // A sample against the linear scan (identical results), which also times the baseline.
  LinearScan lin(rules);
  const size_t sample = std::min(o.sample, trace.size());
  const size_t stride = sample ? std::max<size_t>(1, trace.size() / sample) : 1;
  std::vector<size_t> sample_idx;
  for (size_t i = 0; i < trace.size() && sample_idx.size() < sample; i += stride) sample_idx.push_back(i);
  size_t lin_mismatch = 0;
  uint64_t sink = 0;
  t0 = Clock::now();
  for (size_t i : sample_idx) {
    uint32_t r = lin.match(trace[i]);
    sink += r;
    lin_mismatch += r != res[i];
  }
  const double lin_s = seconds_since(t0);
  const double lin_mpps = sample_idx.empty() ? 0 : double(sample_idx.size()) / lin_s / 1e6;

  // Single-packet lookups: median of the passes over the whole trace.
  std::vector<double> times, cpu_times;
  for (int pass = 0; pass < o.passes; ++pass) {
    t0 = Clock::now();
    double c0 = thread_seconds();
    uint64_t s = 0;
    for (const auto& k : keys) s += c.match(k);
    cpu_times.push_back(thread_seconds() - c0);
    times.push_back(seconds_since(t0));
    sink += s;
  }
  const double mpps = double(keys.size()) / median3(times) / 1e6;
  const double mpps_cpu = double(keys.size()) / median3(cpu_times) / 1e6;

  // Batched lookups.
  double mpps_batch = 0, mpps_batch_cpu = 0;
  size_t batch_mismatch = 0;
  if (o.batch) {
    std::vector<uint32_t> out(keys.size());
    times.clear();
    cpu_times.clear();
    for (int pass = 0; pass < o.passes; ++pass) {
      t0 = Clock::now();
      double c0 = thread_seconds();
      for (size_t i = 0; i < keys.size(); i += o.batch)
        c.match_batch(keys.data() + i, std::min(o.batch, keys.size() - i), out.data() + i);
      cpu_times.push_back(thread_seconds() - c0);
      times.push_back(seconds_since(t0));
    }
    mpps_batch = double(keys.size()) / median3(times) / 1e6;
    mpps_batch_cpu = double(keys.size()) / median3(cpu_times) / 1e6;
    for (size_t i = 0; i < keys.size(); ++i) batch_mismatch += out[i] != res[i];
  }

  // Updates: delete random rules from the full classifier, then insert them again.
  std::vector<uint32_t> ids(n);
  for (uint32_t i = 0; i < n; ++i) ids[i] = i;
  std::mt19937_64 rng(12345);
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(std::min<size_t>(o.updates, n));
  t0 = Clock::now();
  for (uint32_t id : ids) c.erase(id);
  const double del_ns = ids.empty() ? 0 : seconds_since(t0) * 1e9 / double(ids.size());
  t0 = Clock::now();
  for (uint32_t id : ids) c.insert(id, specs[id]);
  const double ins_ns = ids.empty() ? 0 : seconds_since(t0) * 1e9 / double(ids.size());
  // The classifier must be as good after the updates.
  size_t upd_mismatch = 0;
  for (size_t i : sample_idx) upd_mismatch += c.match(keys[i]) != res[i];

  const EngineFigures eng = run_engine(rules, trace, res, o.updates, o.passes);

  wrong += lin_mismatch + batch_mismatch + upd_mismatch + eng.wrong;
  print_figures(o, {n, trace.size(), wrong, lin_mismatch, batch_mismatch, upd_mismatch, mpps, mpps_cpu, mpps_batch,
                    mpps_batch_cpu, build_ms, mem, tables, ins_ns, del_ns, ids.size(), lin_mpps, sample_idx.size(), c.simd()},
                eng);
  if (sink == 42) std::fprintf(stderr, " ");
  return wrong ? 1 : 0;
}

// --- bulk: load orders -------------------------------------------------------------------------

const char* const kBulkOrders[] = {"permit", "empty", "ascending", "descending", "random", "identical"};

[[noreturn]] void bulk_usage(const char* msg) {
  usage_exit(msg,
             "usage: lfp-bench bulk [--filters N,N,...] [--orders NAME,...] [--rounds N] [--json]\n"
             "  N BLOCK filters, each IP_REMOTE_ADDRESS = one distinct /32, at ALE_AUTH_CONNECT_V4, added one\n"
             "  by one to a fresh FilterEngine; the time of the N adds in each order:\n"
             "    permit      after a default PERMIT (no condition, weight 0), automatic weights: each goes\n"
             "                just in front of the permit\n"
             "    empty       the same on an empty layer\n"
             "    ascending   after the default permit, explicit weights 1..N: each goes first\n"
             "    descending  after the default permit, explicit weights N..1: each goes just before the permit\n"
             "    random      after the default permit, explicit weights in random order\n"
             "    identical   after the default permit, all on the same address\n"
             "  and the time of FilterEngine::filters() (enabled filters, evaluation order: what the kernel\n"
             "  compiler enumerates). Thread CPU time, the median of the rounds; every round runs every\n"
             "  count and order once, so the orders are interleaved.\n"
             "  --filters  counts (default 30000,100000,1000000)\n"
             "  --orders   orders (default all)\n"
             "  --rounds   rounds (default 1)\n");
}


struct BulkFigures {
  double seconds = 0;            // the N add_filter calls
  double enumerate_seconds = 0;  // filters() of the loaded engine
  size_t wrong = 0;
};

// Loads n filters in `order` and checks decisions: a blocked address, and one no filter matches.
BulkFigures run_bulk(const std::string& order, size_t n) {
  using namespace lfp;
  const LayerId layer = LayerId::ALE_AUTH_CONNECT_V4;
  const bool identical = order == "identical";
  const uint32_t base = 0x0a000000;  // 10.0.0.0: filter i blocks 10.0.0.0 + i
  std::vector<uint64_t> weights(n);
  for (size_t i = 0; i < n; ++i) weights[i] = order == "ascending" ? i + 1 : n - i;
  if (order == "random") std::shuffle(weights.begin(), weights.end(), std::mt19937_64(12345));
  const bool explicit_weights = order == "ascending" || order == "descending" || order == "random";
  std::vector<Filter> filters(n);
  for (size_t i = 0; i < n; ++i) {
    Filter& f = filters[i];
    f.display.name = "bulk";
    f.layer = layer;
    f.action.type = ActionType::BLOCK;
    if (explicit_weights) f.weight = Weight::explicit_weight(weights[i]);
    const uint32_t addr = identical ? base : base + uint32_t(i);
    f.conditions.push_back({FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::uint(DataType::UINT32, addr)});
  }
  FilterEngine engine;
  if (order != "empty") {
    Filter permit;
    permit.display.name = "default permit";
    permit.layer = layer;
    permit.action.type = ActionType::PERMIT;
    permit.weight = Weight::explicit_weight(0);
    engine.add_filter(permit);
  }
  const double t0 = thread_seconds();
  for (Filter& f : filters) engine.add_filter(std::move(f));
  BulkFigures out;
  out.seconds = thread_seconds() - t0;
  FilterTemplate enabled;
  enabled.include_disabled = false;
  const double t1 = thread_seconds();
  const size_t listed = engine.filters(enabled).size();
  out.enumerate_seconds = thread_seconds() - t1;
  out.wrong += listed != engine.filter_count();

  FieldValues v;
  v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(0xc0000201));
  v.set(FieldId::IP_REMOTE_PORT, Value::uint16(443));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(40000));
  v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
  auto permitted = [&](uint32_t addr) {
    v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(addr));
    return engine.classify(layer, v).permit;
  };
  out.wrong += permitted(base + uint32_t(identical ? 0 : n / 2));
  out.wrong += !permitted(0x0b000001);  // 11.0.0.1: no block
  return out;
}

int run_bulk_mode(int argc, char** argv) {
  std::vector<size_t> counts = {30000, 100000, 1000000};
  std::vector<std::string> orders(std::begin(kBulkOrders), std::end(kBulkOrders));
  size_t rounds = 1;
  bool json = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) bulk_usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--filters") {
      counts.clear();
      for (const auto& c : lfp::bench::split_list(value())) counts.push_back(parse_count("--filters", c.c_str()));
    } else if (a == "--orders") {
      orders = lfp::bench::split_list(value());
      for (const auto& o : orders)
        if (std::find(std::begin(kBulkOrders), std::end(kBulkOrders), o) == std::end(kBulkOrders))
          bulk_usage(("unknown order '" + o + "'").c_str());
    } else if (a == "--rounds") {
      rounds = parse_count("--rounds", value().c_str());
      if (rounds == 0) bulk_usage("--rounds wants at least 1");
    } else if (a == "--json") {
      json = true;
    } else if (a == "-h" || a == "--help") {
      bulk_usage(nullptr);
    } else {
      bulk_usage(("unknown option '" + a + "'").c_str());
    }
  }
  // runs[c][o]: every round's figures for counts[c], orders[o].
  std::vector<std::vector<std::vector<BulkFigures>>> runs(counts.size(),
                                                          std::vector<std::vector<BulkFigures>>(orders.size()));
  size_t wrong = 0;
  for (size_t r = 0; r < rounds; ++r)
    for (size_t c = 0; c < counts.size(); ++c)
      for (size_t o = 0; o < orders.size(); ++o) {
        const BulkFigures f = run_bulk(orders[o], counts[c]);
        wrong += f.wrong;
        runs[c][o].push_back(f);
        if (!json && rounds > 1)
          std::fprintf(stderr, "round %zu: %zu %s %.3f s\n", r + 1, counts[c], orders[o].c_str(), f.seconds);
      }
  if (json) std::printf("[");
  const char* sep = "";
  for (size_t c = 0; c < counts.size(); ++c) {
    const size_t n = counts[c];
    double best = 0, worst = 0;
    for (size_t o = 0; o < orders.size(); ++o) {
      std::vector<double> add, enumerate;
      size_t bad = 0;
      for (const BulkFigures& f : runs[c][o]) {
        add.push_back(f.seconds);
        enumerate.push_back(f.enumerate_seconds);
        bad += f.wrong;
      }
      const double seconds = median3(add), enumerate_seconds = median3(enumerate);
      best = best == 0 ? seconds : std::min(best, seconds);
      worst = std::max(worst, seconds);
      if (json)
        std::printf("%s\n  {\"filters\": %zu, \"order\": \"%s\", \"rounds\": %zu, \"seconds\": %.4f, "
                    "\"ns_per_filter\": %.0f, \"enumerate_seconds\": %.4f, \"wrong\": %zu}",
                    sep, n, orders[o].c_str(), rounds, seconds, seconds * 1e9 / double(n), enumerate_seconds, bad);
      else
        std::printf("%8zu filters  %-10s  %9.3f s  %7.0f ns/filter  enumerate %8.1f ms%s\n", n, orders[o].c_str(),
                    seconds, seconds * 1e9 / double(n), enumerate_seconds * 1e3, bad ? "  WRONG DECISIONS" : "");
      sep = ",";
    }
    if (!json) std::printf("%8zu filters  worst/best %.2f\n", n, worst / best);
  }
  if (json) std::printf("\n]\n");
  return wrong ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "bulk") {
    try {
      return run_bulk_mode(argc, argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lfp-bench: %s\n", e.what());
      return 2;
    }
  }
  Options o = parse_args(argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-bench: %s\n", e.what());
    return 2;
  }
}
