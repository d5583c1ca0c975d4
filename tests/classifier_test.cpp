// SPDX-License-Identifier: MIT
// Differential tests of lfp::cls::TupleClassifier against a linear scan.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <unordered_set>
#include <vector>

#include "lfp/engine/tuple_classifier.hpp"

namespace {

using lfp::cls::kNoRule;
using lfp::cls::RuleSpec;
using lfp::cls::TupleClassifier;

constexpr uint64_t wmask(unsigned w) { return w >= 64 ? ~uint64_t{0} : ((uint64_t{1} << w) - 1); }
// The first len bits of a w-bit value.
constexpr uint64_t pmask(unsigned w, unsigned len) { return len == 0 ? 0 : len >= w ? wmask(w) : (wmask(w) & ~(wmask(w) >> len)); }

// The reference: highest priority < bound over matching rules (residual ones only when ok(id)).
template <int D>
struct Reference {
  std::map<uint32_t, RuleSpec<D>> rules;

  template <class F>
  uint32_t match(const std::array<uint64_t, D>& k, uint32_t bound, F&& ok) const {
    uint32_t best = kNoRule;
    uint64_t best_p = 0;
    bool have = false;
    for (const auto& [id, r] : rules) {
      if (r.priority >= bound) continue;
      bool m = true;
      for (int d = 0; d < D && m; ++d) m = k[d] >= r.lo[d] && k[d] <= r.hi[d];
      if (!m || (r.residual && !ok(id))) continue;
      if (!have || r.priority > best_p) {
        have = true;
        best_p = r.priority;
        best = id;
      }
    }
    return best;
  }
};

// Random rules and keys over a small pool of "interesting" values per dimension, so that keys hit
// rules often and rules overlap a lot.
template <unsigned... Ws>
class Gen {
 public:
  static constexpr int D = sizeof...(Ws);
  static constexpr std::array<unsigned, D> W{Ws...};

  explicit Gen(uint64_t seed, int pool = 6) : rng_(seed) {
    for (int d = 0; d < D; ++d) {
      pool_[d].push_back(0);
      pool_[d].push_back(wmask(W[d]));
      for (int i = 0; i < pool; ++i) pool_[d].push_back(rnd(W[d]));
    }
  }

  uint64_t rnd(unsigned w) { return rng_() & wmask(w); }
  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  // A value near one of the pool values (same high bits, random low bits).
  uint64_t near(int d) {
    uint64_t base = pool_[d][below(pool_[d].size())];
    unsigned keep = unsigned(below(W[d] + 1));
    uint64_t hm = pmask(W[d], keep);
    return (base & hm) | (rnd(W[d]) & ~hm & wmask(W[d]));
  }

  RuleSpec<D> rule(uint32_t prio, double residual_p) {
    RuleSpec<D> r;
    for (int d = 0; d < D; ++d) {
      uint64_t m = wmask(W[d]);
      switch (below(5)) {
        case 0:  // wildcard
          r.lo[d] = 0;
          r.hi[d] = m;
          break;
        case 1:  // exact
          r.lo[d] = r.hi[d] = near(d);
          break;
        case 2: {  // prefix
          unsigned len = unsigned(below(W[d] + 1));
          uint64_t pm = pmask(W[d], len);
          uint64_t v = near(d) & pm;
          r.lo[d] = v;
          r.hi[d] = v | (~pm & m);
          break;
        }
        default: {  // arbitrary range
          uint64_t a = near(d), b = near(d);
          if (chance(0.3)) b = a + below(std::min<uint64_t>(m - a, 1000) + 1);
          r.lo[d] = std::min(a, b);
          r.hi[d] = std::max(a, b);
        }
      }
    }
    r.priority = prio;
    r.residual = chance(residual_p);
    return r;
  }

  // A key inside a given rule, at its edges or anywhere.
  std::array<uint64_t, D> key_in(const RuleSpec<D>& r) {
    std::array<uint64_t, D> k;
    for (int d = 0; d < D; ++d) {
      switch (below(4)) {
        case 0: k[d] = r.lo[d]; break;
        case 1: k[d] = r.hi[d]; break;
        default: k[d] = r.lo[d] + (r.hi[d] == r.lo[d] ? 0 : below2(r.hi[d] - r.lo[d]));
      }
    }
    return k;
  }
  std::array<uint64_t, D> key_any() {
    std::array<uint64_t, D> k;
    for (int d = 0; d < D; ++d) k[d] = chance(0.1) ? rnd(W[d]) : near(d);
    return k;
  }
  // Uniform in [0, span] (span may be 2^64 - 1).
  uint64_t below2(uint64_t span) { return span == ~uint64_t{0} ? rng_() : below(span + 1); }

  std::mt19937_64 rng_;

 private:
  std::array<std::vector<uint64_t>, D> pool_;
};

// Interleaved inserts, erases (present and absent), id reuse and lookups with random bounds and a
// random residual predicate; every lookup is compared with the reference.
template <unsigned... Ws>
void differential(uint64_t seed, int ops, int max_rules, int pool) {
  using C = TupleClassifier<Ws...>;
  constexpr int D = C::D;
  Gen<Ws...> g(seed, pool);
  C c;
  Reference<D> ref;
  std::unordered_set<uint32_t> used_prio;
  std::vector<uint32_t> free_ids;
  uint32_t next_id = 0;
  const uint64_t salt = g.rng_();
  auto ok = [salt](uint32_t id) { return ((id * 0x9e3779b9u) ^ uint32_t(salt)) & 4; };
  auto new_prio = [&]() {
    for (;;) {
      uint32_t p;
      switch (g.below(4)) {
        case 0: p = uint32_t(g.below(64)); break;                   // small, dense
        case 1: p = UINT32_MAX - 1 - uint32_t(g.below(64)); break;  // near the top
        default: p = uint32_t(g.rng_()) % UINT32_MAX;
      }
      if (used_prio.insert(p).second) return p;
    }
  };
  auto check = [&](const std::array<uint64_t, D>& k) {
    c.set_simd(g.chance(0.5));  // both lookup paths (AVX-512 only where the CPU has it)
    uint32_t bound = UINT32_MAX;
    switch (g.below(4)) {
      case 0: bound = uint32_t(g.rng_()); break;
      case 1:
        if (!ref.rules.empty()) {
          auto it = ref.rules.begin();
          std::advance(it, g.below(ref.rules.size()));
          bound = it->second.priority + uint32_t(g.below(2));
        }
        break;
      default: break;
    }
    uint32_t want = ref.match(k, bound, ok);
    uint32_t got = c.match(k, bound, ok);
    ASSERT_EQ(got, want) << "seed " << seed << " bound " << bound << " size " << c.size();
    // Walking down with bounds, as the engine does, lists the same rules in the same order.
    if (g.chance(0.05)) {
      uint32_t b = UINT32_MAX;
      for (int steps = 0; steps < 64; ++steps) {
        uint32_t w = ref.match(k, b, ok), x = c.match(k, b, ok);
        ASSERT_EQ(x, w) << "walk, seed " << seed;
        if (w == kNoRule) break;
        b = ref.rules.at(w).priority;
      }
    }
    // No bound, no residual.
    uint32_t want0 = ref.match(k, UINT32_MAX, [](uint32_t) { return false; });
    ASSERT_EQ(c.match(k), want0) << "seed " << seed;
  };

  for (int op = 0; op < ops; ++op) {
    int kind = int(g.below(10));
    if (kind < 4 && int(ref.rules.size()) < max_rules) {
      uint32_t id;
      if (!free_ids.empty() && g.chance(0.7)) {
        size_t i = g.below(free_ids.size());
        id = free_ids[i];
        free_ids.erase(free_ids.begin() + long(i));
      } else {
        id = next_id++;
      }
      auto r = g.rule(new_prio(), 0.2);
      c.insert(id, r);
      ref.rules[id] = r;
    } else if (kind < 6 && !ref.rules.empty()) {
      auto it = ref.rules.begin();
      std::advance(it, g.below(ref.rules.size()));
      uint32_t id = it->first;
      used_prio.erase(it->second.priority);
      ASSERT_TRUE(c.erase(id));
      ref.rules.erase(it);
      free_ids.push_back(id);
      ASSERT_FALSE(c.erase(id));
    } else if (kind == 6) {
      ASSERT_FALSE(c.erase(next_id + uint32_t(g.below(100))));  // never inserted
    } else {
      for (int q = 0; q < 4; ++q) {
        if (!ref.rules.empty() && g.chance(0.6)) {
          auto it = ref.rules.begin();
          std::advance(it, g.below(ref.rules.size()));
          check(g.key_in(it->second));
        } else {
          check(g.key_any());
        }
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_EQ(c.size(), ref.rules.size());
  }
  for (const auto& [id, r] : ref.rules) ASSERT_EQ(c.priority(id), r.priority);
  // Batched lookups agree with single ones.
  std::vector<typename C::Key> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(g.key_any());
  std::vector<uint32_t> out(keys.size());
  for (int mode : {0, 1, 2})
    for (bool simd : {false, true}) {
      c.set_batch_mode(mode);
      c.set_simd(simd);
      std::fill(out.begin(), out.end(), 12345u);
      c.match_batch(keys.data(), keys.size(), out.data());
      for (size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(out[i], c.match(keys[i])) << "batch mode " << mode;
    }
  // Erase everything.
  for (const auto& [id, r] : ref.rules) ASSERT_TRUE(c.erase(id));
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.table_count(), 0u);
  EXPECT_EQ(c.match(keys[0]), kNoRule);
}

TEST(TupleClassifier, DifferentialV4) {
  for (uint64_t seed = 1; seed <= 6; ++seed) differential<32, 32, 16, 16, 8>(seed, 6000, 400, 4);
}
TEST(TupleClassifier, DifferentialV4ManyRules) { differential<32, 32, 16, 16, 8>(99, 20000, 3000, 12); }
TEST(TupleClassifier, DifferentialV6) {
  for (uint64_t seed = 11; seed <= 14; ++seed) differential<64, 64, 64, 64, 16, 16, 8>(seed, 5000, 400, 4);
}
TEST(TupleClassifier, DifferentialMac) {
  for (uint64_t seed = 21; seed <= 24; ++seed) differential<48, 48, 16, 16>(seed, 5000, 400, 4);
}
TEST(TupleClassifier, DifferentialOddWidths) {
  for (uint64_t seed = 31; seed <= 33; ++seed) differential<1, 7, 12, 24, 33, 63, 64>(seed, 4000, 300, 3);
}
TEST(TupleClassifier, DifferentialOneDimension) {
  for (uint64_t seed = 41; seed <= 43; ++seed) differential<64>(seed, 4000, 300, 3);
  differential<8>(44, 3000, 200, 2);
}

TEST(TupleClassifier, Empty) {
  lfp::cls::V4Classifier c;
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.match({1, 2, 3, 4, 5}), kNoRule);
  EXPECT_EQ(c.match({0, 0, 0, 0, 0}, 7, [](uint32_t) { return true; }), kNoRule);
  EXPECT_FALSE(c.erase(0));
  EXPECT_EQ(c.priority(0), kNoRule);
  uint32_t out[2] = {1, 1};
  lfp::cls::V4Classifier::Key keys[2] = {{1, 2, 3, 4, 5}, {0, 0, 0, 0, 0}};
  c.match_batch(keys, 2, out);
  EXPECT_EQ(out[0], kNoRule);
  EXPECT_EQ(out[1], kNoRule);
  c.clear();
  EXPECT_EQ(c.memory_bytes(), 0u);
}

TEST(TupleClassifier, FullRangeAndMaxValues) {
  TupleClassifier<64, 64, 64, 64, 16, 16, 8> c;
  RuleSpec<7> any;
  for (int d = 0; d < 7; ++d) any.hi[d] = wmask(d < 4 ? 64 : d < 6 ? 16 : 8);
  any.priority = 0;
  c.insert(0, any);
  RuleSpec<7> top = any;  // only the maximum value in every dimension
  top.lo = top.hi;
  top.priority = UINT32_MAX - 1;
  c.insert(1, top);
  RuleSpec<7> zero = any;
  zero.hi = zero.lo;
  zero.priority = 5;
  c.insert(2, zero);
  TupleClassifier<64, 64, 64, 64, 16, 16, 8>::Key kmax = any.hi, kzero{}, kmid{};
  kmid[0] = 1ull << 63;
  EXPECT_EQ(c.match(kmax), 1u);
  EXPECT_EQ(c.match(kzero), 2u);
  EXPECT_EQ(c.match(kmid), 0u);
  EXPECT_EQ(c.match(kmax, UINT32_MAX - 1, [](uint32_t) { return true; }), 0u);
  EXPECT_EQ(c.match(kzero, 5, [](uint32_t) { return true; }), 0u);
  EXPECT_EQ(c.match(kzero, 0, [](uint32_t) { return true; }), kNoRule);
  // A 64-bit range that is no prefix.
  RuleSpec<7> r = any;
  r.lo[1] = 3;
  r.hi[1] = ~uint64_t{0} - 3;
  r.priority = 100;
  c.insert(3, r);
  kmid[1] = 3;
  EXPECT_EQ(c.match(kmid), 3u);
  kmid[1] = 2;
  EXPECT_EQ(c.match(kmid), 0u);
  kmid[1] = ~uint64_t{0} - 3;
  EXPECT_EQ(c.match(kmid), 3u);
  kmid[1] = ~uint64_t{0} - 2;
  EXPECT_EQ(c.match(kmid), 0u);
}

TEST(TupleClassifier, EqualKeysDifferentPriorities) {
  // Many rules with the very same intervals (beyond the collision limit): the bound walk must
  // visit them all in priority order.
  lfp::cls::V4Classifier c;
  RuleSpec<5> r;
  r.lo = {0x0a000001, 0x0a000002, 1000, 80, 6};
  r.hi = r.lo;
  const uint32_t n = 200;
  for (uint32_t i = 0; i < n; ++i) {
    r.priority = 1000 + i * 7 % n;  // a permutation of 1000..1199
    c.insert(i, r);
  }
  lfp::cls::V4Classifier::Key k = r.lo;
  uint32_t bound = UINT32_MAX;
  std::vector<uint32_t> seen;
  for (;;) {
    uint32_t id = c.match(k, bound, [](uint32_t) { return true; });
    if (id == kNoRule) break;
    seen.push_back(c.priority(id));
    bound = c.priority(id);
  }
  ASSERT_EQ(seen.size(), n);
  for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1199 - i);
  k[3] = 81;
  EXPECT_EQ(c.match(k), kNoRule);
  for (uint32_t i = 0; i < n; i += 2) EXPECT_TRUE(c.erase(i));
  EXPECT_EQ(c.size(), n / 2);
  k[3] = 80;
  EXPECT_EQ(c.priority(c.match(k)), 1199u);  // odd i keep the odd offsets, 199 among them
}

TEST(TupleClassifier, ResidualAndReplace) {
  lfp::cls::V4Classifier c;
  RuleSpec<5> any;
  any.hi = {0xffffffff, 0xffffffff, 0xffff, 0xffff, 0xff};
  any.priority = 10;
  any.residual = true;
  c.insert(7, any);
  lfp::cls::V4Classifier::Key k{1, 2, 3, 4, 5};
  EXPECT_EQ(c.match(k), kNoRule);  // residual rules never match without a predicate
  EXPECT_EQ(c.match(k, UINT32_MAX, [](uint32_t id) { return id == 7; }), 7u);
  EXPECT_EQ(c.match(k, UINT32_MAX, [](uint32_t) { return false; }), kNoRule);
  any.residual = false;
  any.priority = 20;
  c.insert(7, any);  // same id again: replaced
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.priority(7), 20u);
  EXPECT_EQ(c.match(k), 7u);
  EXPECT_EQ(c.match(k, 20, [](uint32_t) { return true; }), kNoRule);
  EXPECT_THROW(c.insert(8, [] {
    RuleSpec<5> bad;
    bad.lo[2] = 5;
    bad.hi[2] = 4;
    return bad;
  }()),
               std::invalid_argument);
}

TEST(TupleClassifier, SparseLargeIds) {
  // Ids far apart shrink the tag bits of the slots; results must not change.
  lfp::cls::V4Classifier c;
  Gen<32, 32, 16, 16, 8> g(77, 4);
  Reference<5> ref;
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < 300; ++i) {
    uint32_t id = i < 150 ? i : 3'000'000 + i * 4099;
    auto r = g.rule(i * 3 + 1, 0.0);
    c.insert(id, r);
    ref.rules[id] = r;
    ids.push_back(id);
    if (i == 149 || i == 299)
      for (int q = 0; q < 2000; ++q) {
        auto k = g.key_any();
        ASSERT_EQ(c.match(k), ref.match(k, UINT32_MAX, [](uint32_t) { return false; }));
      }
  }
  for (uint32_t id : ids) ASSERT_TRUE(c.erase(id));
  EXPECT_EQ(c.size(), 0u);
}

TEST(TupleClassifier, GrowAndShrinkMemory) {
  lfp::cls::V4Classifier c;
  Gen<32, 32, 16, 16, 8> g(5, 50);
  const uint32_t n = 20000;
  std::vector<RuleSpec<5>> rules;
  for (uint32_t i = 0; i < n; ++i) {
    rules.push_back(g.rule(n - i, 0.0));
    c.insert(i, rules.back());
  }
  EXPECT_EQ(c.size(), n);
  // Random rules (no ClassBench structure) still stay compact.
  EXPECT_LT(c.memory_bytes(), size_t{n} * 48) << "bytes per rule " << double(c.memory_bytes()) / n;
  Reference<5> ref;
  for (uint32_t i = 0; i < n; i += 2) ASSERT_TRUE(c.erase(i));
  for (uint32_t i = 1; i < n; i += 2) ref.rules[i] = rules[i];
  for (int q = 0; q < 300; ++q) {
    auto k = g.key_in(rules[g.below(n)]);
    ASSERT_EQ(c.match(k), ref.match(k, UINT32_MAX, [](uint32_t) { return false; }));
  }
  for (uint32_t i = 1; i < n; i += 2) ASSERT_TRUE(c.erase(i));
  EXPECT_EQ(c.table_count(), 0u);
}

}  // namespace
