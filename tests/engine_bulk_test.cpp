// SPDX-License-Identifier: MIT
// Bulk loads: evaluation order stays exact through the engine's relabelling and the classifier's
// duplicate groups (random inserts and deletes against a sorted reference), and the load orders
// that used to be quadratic (in front of a default permit, identical conditions) finish in time.
#include <gtest/gtest.h>

#include <time.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "lfp/engine/error.hpp"
#include "lfp/engine/tuple_classifier.hpp"
#include "test_support.hpp"

namespace lfp {
namespace {

using namespace lfp::test;
constexpr LayerId L = LayerId::ALE_AUTH_CONNECT_V4;

// What the reference knows of a filter: its place in the order and what it matches.
struct RefFilter {
  uint16_t sublayer_weight;
  Guid sublayer_key;
  uint64_t weight;  // effective
  uint64_t id;
  bool permit;
  std::optional<uint32_t> remote_addr;
  std::optional<uint16_t> remote_port;
  bool not_local_port_5;  // IP_LOCAL_PORT NOT_EQUAL 5: a residual condition
};

bool evaluated_before(const RefFilter& a, const RefFilter& b) {
  if (a.sublayer_weight != b.sublayer_weight) return a.sublayer_weight > b.sublayer_weight;
  if (a.sublayer_key != b.sublayer_key) return a.sublayer_key < b.sublayer_key;
  if (a.weight != b.weight) return a.weight > b.weight;
  return a.id < b.id;
}

struct Query {
  uint32_t remote_addr;
  uint16_t remote_port, local_port;
};

// WFP arbitration over plain PERMIT/BLOCK filters, from the sorted list: in each sublayer the first
// matching filter decides; a BLOCK is hard, a PERMIT soft (a later sublayer may override it).
// Returns the deciding filter's id, 0 for none.
uint64_t reference_decider(std::vector<RefFilter> fs, const Query& q) {
  std::sort(fs.begin(), fs.end(), evaluated_before);
  uint64_t decider = 0;
  bool hard = false;
  std::optional<Guid> decided_sublayer;
  for (const RefFilter& f : fs) {
    if (hard) break;
    if (decided_sublayer == f.sublayer_key) continue;  // the rest of a sublayer that has decided
    const bool match = (!f.remote_addr || *f.remote_addr == q.remote_addr) &&
                       (!f.remote_port || *f.remote_port == q.remote_port) &&
                       (!f.not_local_port_5 || q.local_port != 5);
    if (!match) continue;
    decider = f.id;
    hard = !f.permit;
    decided_sublayer = f.sublayer_key;
  }
  return decider;
}

double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Random inserts and deletes over three sublayers, with weights that tie (order by id), weights
// that squeeze every new filter between the same two (the relabelling path), and conditions
// drawn from a small pool (many filters identical: the classifier's duplicate groups, across
// sublayers, reached through sublayer bounds). Every few operations, every query's decider from
// the compiled classifier and the linear scan must be the reference's.
TEST(EngineBulkLoad, EvaluationOrderExactAfterRandomInsertsAndDeletes) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t n) { return rng() % n; };
    FilterEngine e;
    std::vector<Guid> subs = {e.add_sublayer(sublayer("high", 200)), e.add_sublayer(sublayer("tie", 200)),
                              e.add_sublayer(sublayer("low", 100))};
    std::map<Guid, RefFilter> ref;  // by filter key
    uint64_t squeeze = 2'000'000;
    std::vector<Query> queries;
    for (uint32_t a : {1u, 2u, 3u, 99u})
      for (uint16_t p : {10, 20, 99})
        for (uint16_t lp : {5, 6}) queries.push_back({a, p, lp});

    auto check = [&](int op) {
      std::vector<RefFilter> all;
      for (auto& [k, f] : ref) all.push_back(f);
      for (const Query& q : queries) {
        FieldValues v;
        v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(q.remote_addr));
        v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(0xc0000201));
        v.set(FieldId::IP_REMOTE_PORT, Value::uint16(q.remote_port));
        v.set(FieldId::IP_LOCAL_PORT, Value::uint16(q.local_port));
        v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
        const uint64_t want = reference_decider(all, q);
        const ClassifyResult got = e.classify(L, v), lin = e.classify_linear(L, v);
        auto describe = [&](uint64_t id) {
          for (auto& f : all)
            if (f.id == id)
              return std::to_string(id) + " sub " + std::to_string(f.sublayer_weight) + "/" + f.sublayer_key.str() +
                     " w " + std::to_string(f.weight) + (f.permit ? " PERMIT" : " BLOCK") + " addr " +
                     (f.remote_addr ? std::to_string(*f.remote_addr) : "-") + " port " +
                     (f.remote_port ? std::to_string(*f.remote_port) : "-") + (f.not_local_port_5 ? " resid" : "");
          return std::string("none");
        };
        ASSERT_EQ(got.filter ? got.filter->id : 0, want)
            << "op " << op << " addr " << q.remote_addr << " port " << q.remote_port << " local port " << q.local_port
            << "\n got " << describe(got.filter ? got.filter->id : 0) << "\n want " << describe(want)
            << "\n linear " << describe(lin.filter ? lin.filter->id : 0) << [&] {
                 std::string t;
                 for (bool compiled : {true, false}) {
                   auto x = compiled ? e.classify(L, v, true) : e.classify_linear(L, v, true);
                   t += compiled ? "\n compiled:" : "\n linear:";
                   for (auto& st : x.trace) {
                     t += " [" + st.sublayer->display.name + ":";
                     for (auto& step : st.steps) t += " " + describe(step.filter->id) + "=" + step.outcome + ";";
                     t += "]";
                   }
                 }
                 return t;
               }();
        ASSERT_EQ(lin.filter ? lin.filter->id : 0, want) << "op " << op;
      }
    };

    for (int op = 0; op < 4000; ++op) {
      if (!ref.empty() && pick(10) < 3) {
        auto it = std::next(ref.begin(), static_cast<long>(pick(ref.size())));
        e.delete_filter(it->first);
        ref.erase(it);
      } else {
        std::vector<Condition> conds;
        RefFilter r{};
        if (pick(10) < 7) {
          r.remote_addr = static_cast<uint32_t>(1 + pick(3));
          conds.push_back(eq(FieldId::IP_REMOTE_ADDRESS, DataType::UINT32, *r.remote_addr));
        }
        if (pick(2)) {
          r.remote_port = static_cast<uint16_t>(pick(2) ? 10 : 20);
          conds.push_back(eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, *r.remote_port));
        }
        if (pick(5) == 0) {
          r.not_local_port_5 = true;
          conds.push_back(cond(FieldId::IP_LOCAL_PORT, MatchType::NOT_EQUAL, ConditionValue::uint(DataType::UINT16, 5)));
        }
        const uint64_t w = pick(3) == 0 ? squeeze++ : std::vector<uint64_t>{0, 5, 1'000'000'000}[pick(3)];
        r.permit = pick(3) != 0;
        Filter f = filter("f", L, r.permit ? ActionType::PERMIT : ActionType::BLOCK, conds, Weight::explicit_weight(w));
        f.sublayer = subs[pick(subs.size())];
        r.id = e.add_filter(f);
        const Filter* added = e.filter_by_id(r.id);
        r.weight = added->effective_weight;
        r.sublayer_key = *added->sublayer;
        r.sublayer_weight = e.sublayer(r.sublayer_key)->weight;
        ref.emplace(added->key, r);
      }
      if (op % 200 == 199) {
        ASSERT_NO_FATAL_FAILURE(check(op));
      }
    }
    // The enumeration order is the evaluation order too.
    std::vector<RefFilter> all;
    for (auto& [k, f] : ref) all.push_back(f);
    std::sort(all.begin(), all.end(), evaluated_before);
    auto listed = e.filters({.layer = L});
    ASSERT_EQ(listed.size(), all.size());
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(listed[i]->id, all[i].id) << i;
  }
}

// The label paths a bulk load takes, each checked for exact order: two hot spots filled in
// alternation (every insert between the same two filters, not next to the one added last: the
// midpoint, then relabelling), then a long run after the filter added last (DOWN: ties at one
// weight) and one before it (UP: rising weights), which relabel with the free labels left to the
// run; disabled filters and deletes throughout. After each phase, filters() lists the reference
// order (disabled ones too) and, with every filter matching a random window of addresses, the
// compiled and linear paths decide every address as the first enabled match in that order.
TEST(EngineBulkLoad, RunsAndHotSpotsKeepExactOrder) {
  std::mt19937_64 rng(11);
  auto pick = [&](uint64_t n) { return rng() % n; };
  FilterEngine e;
  e.add_filter(filter("default permit", L, ActionType::PERMIT, {}, Weight::explicit_weight(0)));
  struct Ref {
    uint64_t weight, id;
    uint32_t lo;  // matches remote addresses lo..lo+63
    bool block, disabled;
  };
  std::map<uint64_t, Ref> ref;  // by id
  auto add = [&](uint64_t weight) {
    Ref r{weight, 0, static_cast<uint32_t>(pick(4096)), pick(2) == 0, pick(20) == 0};
    Filter f = filter("f", L, r.block ? ActionType::BLOCK : ActionType::PERMIT,
                      {cond(FieldId::IP_REMOTE_ADDRESS, MatchType::RANGE,
                            ConditionValue::range(OwnedValue{DataType::UINT32, r.lo}, OwnedValue{DataType::UINT32, r.lo + 63}))},
                      Weight::explicit_weight(weight));
    if (r.disabled) f.flags |= DISABLED;
    r.id = e.add_filter(f);
    ref.emplace(r.id, r);
  };
  auto check = [&](const char* phase) {
    SCOPED_TRACE(phase);
    std::vector<Ref> order;
    for (auto& [id, r] : ref) order.push_back(r);
    std::sort(order.begin(), order.end(), [](const Ref& a, const Ref& b) {
      return a.weight != b.weight ? a.weight > b.weight : a.id < b.id;
    });
    auto listed = e.filters({.layer = L});
    ASSERT_EQ(listed.size(), order.size() + 1);  // and the default permit, last
    for (size_t i = 0; i < order.size(); ++i) ASSERT_EQ(listed[i]->id, order[i].id) << i;
    for (uint32_t a = 0; a < 4096 + 64; a += 7) {
      uint64_t want = listed.back()->id;
      for (const Ref& r : order)
        if (!r.disabled && a >= r.lo && a <= r.lo + 63) {
          want = r.id;
          break;
        }
      FieldValues v;
      v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(a));
      v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(1));
      v.set(FieldId::IP_REMOTE_PORT, Value::uint16(443));
      v.set(FieldId::IP_LOCAL_PORT, Value::uint16(40000));
      v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
      const ClassifyResult got = e.classify(L, v), lin = e.classify_linear(L, v);
      ASSERT_TRUE(got.filter && lin.filter) << "address " << a;
      ASSERT_EQ(got.filter->id, want) << "address " << a;
      ASSERT_EQ(lin.filter->id, want) << "address " << a;
    }
  };
  auto erase_some = [&](size_t n) {
    for (size_t i = 0; i < n && !ref.empty(); ++i) {
      auto it = std::next(ref.begin(), static_cast<long>(pick(ref.size())));
      e.delete_filter_by_id(it->first);
      ref.erase(it);
    }
  };
  for (int i = 0; i < 3000; ++i) add(i % 2 ? 1'000'000 : 1'000);  // two hot spots, in alternation
  erase_some(300);
  ASSERT_NO_FATAL_FAILURE(check("hot spots"));
  for (int i = 0; i < 6000; ++i) add(1'000'000);  // a run after the filter added last
  erase_some(300);
  ASSERT_NO_FATAL_FAILURE(check("run after"));
  for (uint64_t w = 2'000; w < 8'000; ++w) add(w);  // a run before it, below the first hot spot
  erase_some(300);
  ASSERT_NO_FATAL_FAILURE(check("run before"));
  for (int i = 0; i < 3000; ++i) add(i % 2 ? 1'000'000 : 5'000);  // the hot spots again, now dense
  ASSERT_NO_FATAL_FAILURE(check("hot spots again"));
}

// The classifier alone: rules of three interval sets (a host, a /24, an address range that is no
// prefix), so most are duplicates of one another, and rules on 64 other hosts (few duplicates),
// with random priorities changed in place and random residual flags; match with and without
// bounds against a brute-force scan.
TEST(ClassifierGroups, DuplicatesMatchLikeAScan) {
  using C = cls::V4Classifier;
  std::mt19937_64 rng(7);
  auto pick = [&](uint64_t n) { return rng() % n; };
  const C::Rule shapes[3] = {
      [] { C::Rule r; r.lo = {0x0a000001, 0, 0, 0, 0}; r.hi = {0x0a000001, 0xffffffff, 65535, 65535, 255}; return r; }(),
      [] { C::Rule r; r.lo = {0x0a000000, 0, 0, 0, 0}; r.hi = {0x0a0000ff, 0xffffffff, 65535, 65535, 255}; return r; }(),
      [] { C::Rule r; r.lo = {0x0a000001, 0, 0, 0, 0}; r.hi = {0x0a000102, 0xffffffff, 65535, 65535, 255}; return r; }(),
  };
  const C::Key keys[6] = {{0x0a000001, 1, 2, 3, 6}, {0x0a000005, 1, 2, 3, 6}, {0x0a000101, 1, 2, 3, 6},
                          {0x0b000001, 1, 2, 3, 6}, {0x0a000200, 1, 2, 3, 6}, {0x0a000233, 1, 2, 3, 6}};
  C c;
  std::map<uint32_t, C::Rule> rules;  // by id
  std::set<uint32_t> used;            // priorities in use (unique)
  auto fresh_priority = [&] {
    uint32_t p;
    do p = static_cast<uint32_t>(1 + pick(1'000'000)); while (used.count(p));
    used.insert(p);
    return p;
  };
  auto ok = [](uint32_t id) { return id % 3 != 0; };
  auto never = [](uint32_t) { return false; };  // match(key) without a predicate: residual rules never match
  auto scan = [&](const C::Key& k, uint32_t bound, auto&& accept) {
    uint32_t best = cls::kNoRule, best_p = 0;
    for (auto& [id, r] : rules) {
      bool m = r.priority < bound && (!r.residual || accept(id));
      for (int d = 0; d < 5 && m; ++d) m = k[d] >= r.lo[d] && k[d] <= r.hi[d];
      if (m && (best == cls::kNoRule || r.priority > best_p)) best = id, best_p = r.priority;
    }
    return best;
  };
  for (int op = 0; op < 6000; ++op) {
    const uint64_t what = pick(10);
    if (what < 6 || rules.empty()) {
      uint32_t id = static_cast<uint32_t>(pick(3000));
      if (rules.count(id)) continue;
      C::Rule r = shapes[pick(3)];
      if (pick(2)) r.lo[0] = r.hi[0] = 0x0a000200 + static_cast<uint32_t>(pick(64));
      r.priority = fresh_priority();
      r.residual = pick(4) == 0;
      c.insert(id, r);
      rules[id] = r;
    } else {
      auto it = std::next(rules.begin(), static_cast<long>(pick(rules.size())));
      used.erase(it->second.priority);
      if (what < 8) {
        ASSERT_TRUE(c.erase(it->first));
        rules.erase(it);
      } else {
        it->second.priority = fresh_priority();
        ASSERT_TRUE(c.set_priority(it->first, it->second.priority));
      }
    }
    if (op % 50 == 0) {
      ASSERT_EQ(c.size(), rules.size());
      for (const C::Key& k : keys) {
        ASSERT_EQ(c.match(k), scan(k, UINT32_MAX, never)) << "op " << op;
        for (uint32_t bound : {uint32_t(1), uint32_t(250'000), uint32_t(500'000), uint32_t(999'999), UINT32_MAX}) {
          ASSERT_EQ(c.match(k, bound, ok), scan(k, bound, ok)) << "op " << op << " bound " << bound;
        }
        for (const auto& [id, r] : rules) {
          if (pick(20)) continue;  // just below a random rule, as the engine's walk does
          ASSERT_EQ(c.match(k, r.priority, ok), scan(k, r.priority, ok)) << "op " << op;
        }
      }
    }
  }
  // The groups kept the tables small: far fewer table entries than rules.
  size_t entries = 0;
  for (const auto& t : c.tables()) entries += t.rules;
  EXPECT_LT(entries, rules.size() * 3 / 4);
}

// N filters in front of a default permit, by load order: each used to relabel the whole layer
// every ~15 inserts (100k: 114 s) or, with identical conditions, to rescan the key's chain
// (100k: minutes). CPU time, so a busy machine does not fail it.
TEST(EngineBulkLoad, LoadOrdersFinishInTime) {
  constexpr uint32_t n = 100'000;
  for (const char* order : {"in front of a permit", "descending weights", "ascending weights", "identical"}) {
    SCOPED_TRACE(order);
    const std::string o = order;
    FilterEngine e;
    e.add_filter(filter("default permit", L, ActionType::PERMIT, {}, Weight::explicit_weight(0)));
    const double t0 = thread_seconds();
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t addr = o == "identical" ? 0x0a000000 : 0x0a000000 + i;
      Weight w = o == "descending weights"  ? Weight::explicit_weight(n - i)
                 : o == "ascending weights" ? Weight::explicit_weight(i + 1)
                                            : Weight::empty();
      e.add_filter(filter("block", L, ActionType::BLOCK, {eq(FieldId::IP_REMOTE_ADDRESS, DataType::UINT32, addr)}, w));
    }
    const double seconds = thread_seconds() - t0;
    EXPECT_LT(seconds, 20.0);
    RecordProperty(o.c_str(), std::to_string(seconds));
    FieldValues v;
    v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(0x0a000000 + (o == "identical" ? 0 : n / 2)));
    v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(1));
    v.set(FieldId::IP_REMOTE_PORT, Value::uint16(443));
    v.set(FieldId::IP_LOCAL_PORT, Value::uint16(40000));
    v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
    EXPECT_FALSE(e.classify(L, v).permit);
    v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(0x0b000000));
    EXPECT_TRUE(e.classify(L, v).permit);
  }
}

// Filters by run-time id, kept in pages of consecutive ids: lookups across page boundaries, pages
// emptied and freed, a deleted filter restored with its id (an aborted transaction's undo), an id
// given far beyond the ones handed out, and what each lookup of a missing id says.
TEST(EngineBulkLoad, IdsFindTheirFiltersAcrossPagesDeletesAndRestores) {
  FilterEngine e;
  e.add_filter(filter("default permit", L, ActionType::PERMIT, {}, Weight::explicit_weight(0)));  // id 1
  constexpr uint32_t kBase = 0x0a000000, n = 5000;
  std::vector<uint64_t> ids;
  for (uint32_t i = 0; i < n; ++i)
    ids.push_back(e.add_filter(filter("block", L, ActionType::BLOCK, {eq(FieldId::IP_REMOTE_ADDRESS, DataType::UINT32, kBase + i)})));
  FieldValues v;
  v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(1));
  v.set(FieldId::IP_REMOTE_PORT, Value::uint16(443));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(40000));
  v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
  auto blocked_by = [&](uint32_t addr) -> uint64_t {
    v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(addr));
    const ClassifyResult r = e.classify(L, v);
    return r.permit ? 0 : r.filter->id;
  };
  for (uint32_t i = 0; i < n; ++i) {
    ASSERT_EQ(ids[i], i + 2u);
    const Filter* f = e.filter_by_id(ids[i]);
    ASSERT_TRUE(f) << ids[i];
    ASSERT_EQ(f->id, ids[i]);
    ASSERT_EQ(f, e.filter(f->key));
  }
  // The first 2500 (every id of the first two pages) go; the one at index 3 is kept to be restored.
  const Filter kept = *e.filter_by_id(ids[3]);
  for (uint32_t i = 0; i < 2500; ++i) e.delete_filter_by_id(ids[i]);
  for (uint32_t i = 0; i < 2500; ++i) ASSERT_EQ(e.filter_by_id(ids[i]), nullptr) << ids[i];
  for (uint32_t i = 2500; i < n; ++i) ASSERT_EQ(e.filter_by_id(ids[i])->id, ids[i]);
  EXPECT_EQ(e.filter_count(), n - 2500 + 1);
  EXPECT_EQ(blocked_by(kBase + 3), 0u);
  EXPECT_EQ(blocked_by(kBase + 2600), ids[2600]);
  try {
    e.delete_filter_by_id(ids[0]);
    ADD_FAILURE() << "a deleted id was found";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::FILTER_NOT_FOUND);
    EXPECT_NE(std::string(err.what()).find("filter id " + std::to_string(ids[0]) + " not found"), std::string::npos) << err.what();
  }
  EXPECT_EQ(e.filter_by_id(0), nullptr);
  EXPECT_EQ(e.filter_by_id(UINT64_MAX), nullptr);
  // Restored with its id and key, into a page that was freed: found and enforced again.
  EXPECT_EQ(e.add_filter(kept), ids[3]);
  EXPECT_EQ(e.filter_by_id(ids[3])->key, kept.key);
  EXPECT_EQ(blocked_by(kBase + 3), ids[3]);
  // An id in use is refused; the fresh ids go on after the highest handed out.
  Filter taken = filter("taken", L, ActionType::BLOCK);
  taken.id = ids[4000];
  try {
    e.add_filter(taken);
    ADD_FAILURE() << "an id in use was taken again";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::ALREADY_EXISTS);
    EXPECT_NE(std::string(err.what()).find("filter id " + std::to_string(ids[4000]) + " is in use"), std::string::npos) << err.what();
  }
  // An id given far beyond the others (its own page), then a fresh one after it.
  Filter far = filter("far", L, ActionType::BLOCK, {eq(FieldId::IP_REMOTE_ADDRESS, DataType::UINT32, kBase + n + 1)});
  far.id = uint64_t{1} << 40;
  EXPECT_EQ(e.add_filter(far), uint64_t{1} << 40);
  const uint64_t next = e.add_filter(filter("next", L, ActionType::BLOCK, {eq(FieldId::IP_REMOTE_ADDRESS, DataType::UINT32, kBase + n + 2)}));
  EXPECT_EQ(next, (uint64_t{1} << 40) + 1);
  EXPECT_EQ(e.filter_by_id(uint64_t{1} << 40)->display.name, "far");
  EXPECT_EQ(blocked_by(kBase + n + 1), uint64_t{1} << 40);
  EXPECT_EQ(blocked_by(kBase + n + 2), next);
  e.delete_filter_by_id(uint64_t{1} << 40);
  EXPECT_EQ(e.filter_by_id(uint64_t{1} << 40), nullptr);
  EXPECT_EQ(e.filter_by_id(next)->display.name, "next");
  // Everything gone: every page with it, and ids found nowhere.
  for (const Filter* f : e.filters()) e.delete_filter_by_id(f->id);
  EXPECT_EQ(e.filter_count(), 0u);
  EXPECT_EQ(e.filter_by_id(ids[4000]), nullptr);
  EXPECT_EQ(e.filter_by_id(next), nullptr);
}

}  // namespace
}  // namespace lfp
