// SPDX-License-Identifier: MIT
// LFP compiled packet classifier: a TupleMerge-style tuple space with relaxed tuples.
//
// Pure code: no I/O, no files, no kernel, no sockets. docs/classifier.md describes the design; in
// short:
//
//  * Records. Rules live in a store indexed by the caller's rule id (chunks of 32 records). A record
//    is the rule in compact form: dimensions wider than 16 bits as a prefix (value with a marker bit
//    after the prefix, or a flag for a full-length prefix), narrower ones as [lo, hi] in their own
//    width, the priority, and a few tail bits: the residual flag and the rule's table. A
//    <32,32,16,16,8> record is 24 bytes. A wide dimension whose interval is no prefix keeps its
//    [lo, hi] in a side table ("ext").
//  * Tables. A table hashes, per dimension, the first `len` bits (its tuple). A rule may go to any
//    table whose tuple is no longer than the common prefix of its [lo, hi] in every dimension (so
//    any interval works: the hash finds candidates, the record check decides). At most
//    `kCollideLimit` rules of a table share a hashed key.
//  * Buckets. A table is an array of 64-byte buckets of 15 four-byte slots and an overflow counter
//    (F14-style). A slot holds (rule_id + 1) << tag_bits | tag, the tag being hash bits, so a lookup
//    compares the 15 slots with the tag at once and reads only the records of tag hits.
//  * Duplicates. Rules with the same intervals in every dimension cannot be told apart by any
//    tuple: past the collision limit of the finest table they form a group, of which only the
//    highest-priority rule (its head) sits in the table; a lookup that needs a lower one (below a
//    bound, or a residual refused) finds it in the group, by priority.
//  * Order. Tables are kept sorted by their highest priority; a lookup stops at the first table
//    whose highest priority is below the best match so far. The hashes of 8 tables are computed at
//    once (AVX-512 when the CPU has it, chosen at run time; SSE2/scalar otherwise).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the _mm512_undefined_* inside its own AVX-512 intrinsics as maybe uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LFP_CLS_X86 1
#define LFP_CLS_AVX512 __attribute__((target("avx512f,bmi,bmi2,popcnt")))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LFP_CLS_INLINE __attribute__((always_inline)) inline
#define LFP_CLS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define LFP_CLS_INLINE inline
#define LFP_CLS_INLINE_LAMBDA
#endif

namespace lfp::cls {

inline constexpr uint32_t kNoRule = UINT32_MAX;

// One rule: per dimension an inclusive interval [lo[d], hi[d]] of unsigned values of that dimension's
// width; a priority (higher wins, unique within a classifier, never UINT32_MAX); `residual`: the
// rule only matches when the caller's residual predicate accepts it.
template <int D>
struct RuleSpec {
  std::array<uint64_t, D> lo{}, hi{};
  uint32_t priority = 0;
  bool residual = false;
};

namespace detail {

constexpr uint64_t width_mask(unsigned w) { return w >= 64 ? ~uint64_t{0} : ((uint64_t{1} << w) - 1); }

// The first `len` bits of a `w`-bit value (len 0..w).
constexpr uint64_t prefix_mask(unsigned w, unsigned len) {
  return len == 0 ? 0 : len >= w ? width_mask(w) : (width_mask(w) & ~(width_mask(w) >> len));
}

// Number of leading bits that lo and hi (w-bit values) share.
constexpr unsigned common_prefix(unsigned w, uint64_t lo, uint64_t hi) {
  return w - static_cast<unsigned>(std::bit_width((lo ^ hi) & width_mask(w)));
}

// The hash of a masked key: multiply-add of its 32-bit halves with odd 32-bit constants, folded to
// 32 bits. The same arithmetic runs 8 tables at a time in AVX-512 lanes (vpmuludq).
inline constexpr uint32_t kMulK[32] = {
    0x9e3779b1u, 0x85ebca77u, 0xc2b2ae3du, 0x27d4eb2fu, 0x165667b1u, 0xd3a2646du, 0xfd7046c5u, 0xb55a4f09u,
    0x7feb352du, 0x846ca68bu, 0x2c1b3c6du, 0x297a2d39u, 0xcc9e2d51u, 0x1b873593u, 0xe6546b65u, 0x85ebca6bu,
    0x3243f6a9u, 0x8a2e0371u, 0x299f31d1u, 0xa4093823u, 0x082efa99u, 0xec4e6c89u, 0x452821e7u, 0x38d01377u,
    0xbe5466cfu, 0x34e90c6du, 0xc0ac29b7u, 0xc97c50ddu, 0x3f84d5b5u, 0xb5470917u, 0x9216d5d9u, 0x8979fb1bu};

template <int NW>
LFP_CLS_INLINE uint32_t hash_words(const uint64_t* w) {
  uint64_t s = 0;
  for (int i = 0; i < NW; ++i)
    s += (w[i] & 0xffffffffu) * kMulK[(2 * i) & 31] + (w[i] >> 32) * kMulK[(2 * i + 1) & 31];
  return static_cast<uint32_t>(s >> 32) ^ static_cast<uint32_t>(s);
}

// Bucket index of a hash among nb buckets.
LFP_CLS_INLINE uint32_t home(uint32_t h, uint64_t nb) { return static_cast<uint32_t>((uint64_t{h} * nb) >> 32); }

// 15 slots + 1 overflow counter per 64-byte bucket.
inline constexpr int kSlots = 15;
inline constexpr int kBucketWords = 16;
alignas(64) inline constexpr uint32_t kEmptyBucket[kBucketWords] = {};

// Bit i (i < 15) set when slot i is non-empty and (slot & tbm) == tag; bit 15 set when the
// bucket's overflow counter is non-zero (the chain goes on in the next bucket).
LFP_CLS_INLINE uint32_t bucket_match_generic(const uint32_t* b, uint32_t tag, uint32_t tbm) {
#if defined(LFP_CLS_X86)
  const __m128i t = _mm_set1_epi32(static_cast<int>(tag));
  const __m128i k = _mm_set1_epi32(static_cast<int>(tbm));
  const __m128i z = _mm_setzero_si128();
  uint32_t out = 0;
  for (int q = 0; q < 4; ++q) {
    __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(b) + q);
    __m128i e = _mm_andnot_si128(_mm_cmpeq_epi32(v, z), _mm_cmpeq_epi32(_mm_and_si128(v, k), t));
    out |= static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(e))) << (4 * q);
  }
  return (out & 0x7fffu) | (b[kSlots] != 0 ? 0x8000u : 0u);
#else
  uint32_t out = 0;
  for (int i = 0; i < kSlots; ++i) out |= static_cast<uint32_t>(b[i] != 0 && (b[i] & tbm) == tag) << i;
  return out | (b[kSlots] != 0 ? 0x8000u : 0u);
#endif
}

#if defined(LFP_CLS_X86)
LFP_CLS_AVX512 inline uint32_t bucket_match_avx512(const uint32_t* b, uint32_t tag, uint32_t tbm) {
  __m512i v = _mm512_load_si512(reinterpret_cast<const void*>(b));
  __mmask16 nz = _mm512_test_epi32_mask(v, v);
  __mmask16 m = _mm512_mask_cmpeq_epi32_mask(nz, _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(tbm))),
                                             _mm512_set1_epi32(static_cast<int>(tag)));
  return (static_cast<uint32_t>(m) & 0x7fffu) | (static_cast<uint32_t>(nz) & 0x8000u);
}

// Bucket addresses and tags of tables [g, g + 8) for a packed key (see hash_words and home).
template <int NW>
LFP_CLS_AVX512 inline void hash8_avx512(const uint64_t* kw, const uint64_t* pmask, size_t cap, size_t g,
                                        const uint64_t* pnb, const uint64_t* pbk, uint32_t tbm, uint64_t* addr,
                                        uint32_t* tags) {
  __m512i s = _mm512_setzero_si512();
  for (int i = 0; i < NW; ++i) {
    __m512i m = _mm512_and_si512(_mm512_loadu_si512(pmask + size_t(i) * cap + g),
                                 _mm512_set1_epi64(static_cast<long long>(kw[i])));
    s = _mm512_add_epi64(s, _mm512_mul_epu32(m, _mm512_set1_epi64(kMulK[(2 * i) & 31])));
    s = _mm512_add_epi64(s, _mm512_mul_epu32(_mm512_srli_epi64(m, 32), _mm512_set1_epi64(kMulK[(2 * i + 1) & 31])));
  }
  __m512i h = _mm512_and_si512(_mm512_xor_si512(_mm512_srli_epi64(s, 32), s), _mm512_set1_epi64(0xffffffffll));
  __m512i idx = _mm512_srli_epi64(_mm512_mul_epu32(h, _mm512_loadu_si512(pnb + g)), 32);
  __m512i a = _mm512_add_epi64(_mm512_loadu_si512(pbk + g), _mm512_slli_epi64(idx, 6));
  _mm512_storeu_si512(addr, a);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(tags),
                      _mm512_cvtepi64_epi32(_mm512_and_si512(h, _mm512_set1_epi64(tbm))));
}

inline bool cpu_has_avx512() {
  static const bool v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("bmi2") &&
                        __builtin_cpu_supports("popcnt");
  return v;
}
#else
inline bool cpu_has_avx512() { return false; }
#endif

// Bit i (i < 15) set when slot i is empty.
LFP_CLS_INLINE uint32_t bucket_empty(const uint32_t* b) {
  uint32_t out = 0;
  for (int i = 0; i < kSlots; ++i) out |= static_cast<uint32_t>(b[i] == 0) << i;
  return out;
}

LFP_CLS_INLINE void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#endif
}

template <unsigned... Ws>
struct Shape {
  static constexpr int D = sizeof...(Ws);
  static constexpr std::array<unsigned, D> W{Ws...};
  static constexpr bool is_prefix(int d) { return W[d] > 16; }  // stored as a prefix
  static constexpr unsigned vbytes(int d) { return W[d] <= 8 ? 1 : W[d] <= 16 ? 2 : W[d] <= 32 ? 4 : 8; }

  // Key packing: each dimension at a bit offset of a 64-bit word, never straddling words.
  struct Pack {
    std::array<int, D> word{};
    std::array<int, D> off{};
    int nw = 0;
  };
  static constexpr Pack pack = [] {
    Pack p{};
    int w = 0, o = 0;
    for (int d = 0; d < D; ++d) {
      if (o + static_cast<int>(W[d]) > 64) {
        ++w;
        o = 0;
      }
      p.word[d] = w;
      p.off[d] = o;
      o += static_cast<int>(W[d]);
    }
    p.nw = w + 1;
    return p;
  }();
  static constexpr int NW = pack.nw;

  // Record layout: 8-byte prefix values, priority, 4-byte prefix values, 2-byte lo/hi, 1-byte lo/hi,
  // then the tail bits: 2 per prefix dimension (0 = value with marker bit, 1 = full-length prefix,
  // 2 = ext), the residual flag, the table index.
  struct Layout {
    std::array<uint16_t, D> val{};  // prefix value, or lo of a range dimension
    std::array<uint16_t, D> hi{};   // range dimensions only
    std::array<uint8_t, D> pidx{};  // index among the prefix dimensions
    int np = 0;                     // prefix dimensions
    uint16_t prio = 0;
    uint16_t tail = 0;
    uint16_t tail_bytes = 0;
    uint16_t size = 0;
    uint16_t align = 4;
    int tidx_bits = 0;
  };
  static constexpr Layout layout = [] {
    Layout l{};
    uint16_t o = 0;
    for (int d = 0; d < D; ++d)
      if (is_prefix(d)) l.pidx[d] = static_cast<uint8_t>(l.np++);
    for (int d = 0; d < D; ++d)
      if (is_prefix(d) && vbytes(d) == 8) {
        l.val[d] = o;
        o += 8;
        l.align = 8;
      }
    l.prio = o;
    o += 4;
    for (int d = 0; d < D; ++d)
      if (is_prefix(d) && vbytes(d) == 4) {
        l.val[d] = o;
        o += 4;
      }
    for (int b : {2, 1})
      for (int d = 0; d < D; ++d)
        if (!is_prefix(d) && static_cast<int>(vbytes(d)) == b) {
          l.val[d] = o;
          o += static_cast<uint16_t>(b);
          l.hi[d] = o;
          o += static_cast<uint16_t>(b);
        }
    l.tail = o;
    int need_bits = 2 * l.np + 1 + 10;  // at least 1023 tables
    int size = o + (need_bits + 7) / 8;
    size = (size + l.align - 1) / l.align * l.align;
    l.size = static_cast<uint16_t>(size);
    l.tail_bytes = static_cast<uint16_t>(std::min(8, size - o));
    l.tidx_bits = std::min(15, 8 * l.tail_bytes - 2 * l.np - 1);
    return l;
  }();
  static constexpr size_t kRecSize = layout.size;
  static constexpr int kResidShift = 2 * layout.np;
  static constexpr int kTidxShift = 2 * layout.np + 1;
  static constexpr uint32_t kTidxMask = (1u << layout.tidx_bits) - 1;

  template <int d>
  using VT = std::conditional_t<vbytes(d) == 1, uint8_t,
                                std::conditional_t<vbytes(d) == 2, uint16_t,
                                                   std::conditional_t<vbytes(d) == 4, uint32_t, uint64_t>>>;

  template <int d>
  static uint64_t get(const uint8_t* r, uint16_t off) {
    VT<d> v;
    std::memcpy(&v, r + off, sizeof v);
    return v;
  }
  template <int d>
  static void put(uint8_t* r, uint16_t off, uint64_t x) {
    VT<d> v = static_cast<VT<d>>(x);
    std::memcpy(r + off, &v, sizeof v);
  }
  static uint32_t prio(const uint8_t* r) {
    uint32_t p;
    std::memcpy(&p, r + layout.prio, 4);
    return p;
  }
  static uint64_t tail(const uint8_t* r) {
    uint64_t t = 0;
    std::memcpy(&t, r + layout.tail, layout.tail_bytes);
    return t;
  }
  static void set_tail(uint8_t* r, uint64_t t) { std::memcpy(r + layout.tail, &t, layout.tail_bytes); }
  static uint32_t tidx(uint64_t t) { return static_cast<uint32_t>(t >> kTidxShift) & kTidxMask; }
  static bool residual(uint64_t t) { return (t >> kResidShift) & 1; }
  static unsigned kind(uint64_t t, int d) { return static_cast<unsigned>(t >> (2 * layout.pidx[d])) & 3; }
};

}  // namespace detail

template <unsigned... Widths>
class TupleClassifier {
  static_assert(sizeof...(Widths) >= 1 && sizeof...(Widths) <= 16, "1..16 dimensions");
  static_assert(((Widths >= 1 && Widths <= 64) && ...), "each width is 1..64");
  using S = detail::Shape<Widths...>;

 public:
  static constexpr int D = sizeof...(Widths);
  using Key = std::array<uint64_t, D>;
  using Rule = RuleSpec<D>;

  // Rules of one table that may share a hashed key (TupleMerge's collision limit), by default.
  static constexpr uint32_t kCollideLimit = 8;
  // Rule ids are indexes into the store: keep them dense (0..N-1 style). Ids up to this work.
  static constexpr uint32_t kMaxRuleId = (1u << 30) - 1;

  TupleClassifier() : avx512_(detail::cpu_has_avx512()) {}
  TupleClassifier(const TupleClassifier&) = delete;
  TupleClassifier& operator=(const TupleClassifier&) = delete;
  TupleClassifier(TupleClassifier&& o) noexcept : TupleClassifier() { swap(o); }
  TupleClassifier& operator=(TupleClassifier&& o) noexcept {
    if (this != &o) {
      clear();
      swap(o);
    }
    return *this;
  }
  ~TupleClassifier() { clear(); }

  // Adds a rule under the caller's id (<= kMaxRuleId). An id already present is replaced.
  void insert(uint32_t rule_id, const Rule& r);
  // Removes a rule; false if the id is absent.
  bool erase(uint32_t rule_id);
  // Changes a present rule's priority in place (its table stays: tables hash intervals, not
  // priorities). False if the id is absent. `same_rank`: the caller guarantees that no other
  // rule's priority lies between the old and the new one (the engine's relabelling keeps the
  // order): then O(1) (O(log g) in a duplicate group); else a table may rescan its priorities.
  bool set_priority(uint32_t rule_id, uint32_t priority, bool same_rank = false);
  size_t size() const { return n_; }
  void clear();

  // Highest-priority rule with priority < bound that matches key (and, when residual, ok(id)).
  template <class ResidualFn>
  uint32_t match(const Key& key, uint32_t bound, ResidualFn&& ok) const {
    if (bound == UINT32_MAX) return dispatch<false, false>(key, bound, ok, nullptr);
    return dispatch<true, false>(key, bound, ok, nullptr);
  }
  uint32_t match(const Key& key) const {
    auto no = [](uint32_t) { return false; };
    return dispatch<false, false>(key, UINT32_MAX, no, nullptr);
  }
  // out[i] = match(keys[i]) for i < n.
  void match_batch(const Key* keys, size_t n, uint32_t* out) const;

  size_t memory_bytes() const;
  // Records and buckets only (no walk over the tables' metadata).
  size_t memory_bytes_fast() const { return chunks_.size() * (kChunk * S::kRecSize) + bucket_bytes_; }
  // The priority of a present rule; kNoRule if absent.
  uint32_t priority(uint32_t rule_id) const {
    if (!present(rule_id)) return kNoRule;
    return S::prio(rec(rule_id));
  }
  bool contains(uint32_t rule_id) const { return present(rule_id); }

  // --- introspection for benchmarks and tests ---
  size_t table_count() const { return nt_; }
  // Use (true) or avoid (false) the AVX-512 lookup path; it is only used when the CPU has it.
  void set_simd(bool on) { avx512_ = on && detail::cpu_has_avx512(); }
  bool simd() const { return avx512_; }
  // match_batch: 0 = interleave packets only when the classifier outgrows the L2 cache (default),
  // 1 = always interleave, 2 = never.
  void set_batch_mode(int m) { batch_mode_ = m; }
  // Collision limit for rules inserted from now on (tuning; kCollideLimit by default).
  void set_collide_limit(uint32_t n) { collide_limit_ = std::max<uint32_t>(1, n); }
  struct ProbeStats {
    uint64_t tables = 0;      // tables probed
    uint64_t buckets = 0;     // buckets read
    uint64_t candidates = 0;  // records read (tag hits)
  };
  // match(key), counting the work done.
  uint32_t match_counting(const Key& key, ProbeStats& st) const {
    auto no = [](uint32_t) { return false; };
    return dispatch<false, true>(key, UINT32_MAX, no, &st);
  }
  struct MemoryStats {
    size_t store = 0, buckets = 0, tables = 0, slots = 0, used = 0;
  };
  MemoryStats memory_stats() const;
  struct TableInfo {
    std::array<uint8_t, D> lens;  // the tuple: bits hashed per dimension
    uint32_t rules;
    uint32_t max_priority;
    uint32_t buckets;
    uint32_t overflowing;  // buckets whose chain goes on
  };
  // The tables in lookup order.
  std::vector<TableInfo> tables() const {
    std::vector<TableInfo> v;
    for (size_t p = 0; p < nt_; ++p)
    {
      uint32_t ov = 0;
      for (size_t b = 0; b < pnb_[p]; ++b) ov += bk(p)[b * detail::kBucketWords + detail::kSlots] != 0;
      v.push_back({tables_[ptidx_[p]].lens, tables_[ptidx_[p]].count, pmax_[p], static_cast<uint32_t>(pnb_[p]), ov});
    }
    return v;
  }

 private:
  static constexpr int NW = S::NW;
  static constexpr int kChunkShift = 5;
  static constexpr uint32_t kChunk = 1u << kChunkShift;
  static constexpr uint32_t kAbsent = S::kTidxMask;  // table index of an absent record
  static constexpr uint32_t kMaxTables = S::kTidxMask;
  static constexpr int kTop = 4;
  static constexpr int kLW = (D + 7) / 8;  // 64-bit words of packed tuple lengths
  static constexpr size_t kGroupedBytes = 104;  // a grouped rule's set and map nodes, about

  struct Table {
    std::array<uint8_t, D> lens{};
    uint8_t ntop = 0;
    bool live = false;
    uint32_t count = 0;
    uint32_t pos = 0;                  // position in the priority order
    std::array<uint32_t, kTop> top{};  // the ntop highest priorities of the table, descending
  };

  // --- store ---
  bool present(uint32_t id) const {
    size_t c = id >> kChunkShift;
    return c < chunks_.size() && chunks_[c] != nullptr && S::tidx(S::tail(rec(id))) != kAbsent;
  }
  const uint8_t* rec(uint32_t id) const { return chunks_[id >> kChunkShift] + (id & (kChunk - 1)) * S::kRecSize; }
  uint8_t* rec(uint32_t id) { return chunks_[id >> kChunkShift] + (id & (kChunk - 1)) * S::kRecSize; }
  void ensure_id(uint32_t id);
  void set_tag_bits(unsigned tb);

  // --- keys ---
  static void pack_key(const Key& k, uint64_t* w) {
    for (int i = 0; i < NW; ++i) w[i] = 0;
    [&]<int... d>(std::integer_sequence<int, d...>) {
      ((w[S::pack.word[d]] |= (k[d] & detail::width_mask(S::W[d])) << S::pack.off[d]), ...);
    }(std::make_integer_sequence<int, D>{});
  }
  // The rule's lo values packed like a key (only the bits its table hashes are meaningful).
  void pack_rec(const uint8_t* r, uint64_t* w) const {
    for (int i = 0; i < NW; ++i) w[i] = 0;
    const uint64_t t = S::tail(r);
    [&]<int... d>(std::integer_sequence<int, d...>) {
      ((w[S::pack.word[d]] |= rec_lo<d>(r, t) << S::pack.off[d]), ...);
    }(std::make_integer_sequence<int, D>{});
  }
  template <int d>
  uint64_t rec_lo(const uint8_t* r, uint64_t t) const {
    uint64_t v = S::template get<d>(r, S::layout.val[d]);
    if constexpr (S::is_prefix(d)) {
      switch (S::kind(t, d)) {
        case 0: return v & (v - 1);  // drop the marker bit
        case 1: return v;
        default: return ext_[v][0];
      }
    }
    return v;
  }

  template <int d>
  LFP_CLS_INLINE bool dim_ok(const uint8_t* r, uint64_t t, uint64_t k) const {
    if constexpr (S::is_prefix(d)) {
      uint64_t v = S::template get<d>(r, S::layout.val[d]);
      unsigned kd = S::kind(t, d);
      if (kd == 2) [[unlikely]]
        return k >= ext_[v][0] && k <= ext_[v][1];
      uint64_t x = k ^ v;
      bool full = x == 0;
      bool pfx = ((x >> std::countr_zero(v | (uint64_t{1} << 63))) >> 1) == 0;
      return kd ? full : pfx;
    } else {
      uint64_t lo = S::template get<d>(r, S::layout.val[d]);
      uint64_t hi = S::template get<d>(r, S::layout.hi[d]);
      return k - lo <= hi - lo;
    }
  }
  LFP_CLS_INLINE bool verify(const uint8_t* r, uint64_t t, const Key& k) const {
    return [&]<int... d>(std::integer_sequence<int, d...>) {
      return (dim_ok<d>(r, t, k[d]) && ...);
    }(std::make_integer_sequence<int, D>{});
  }

  // --- tables ---
  static void make_masks(const std::array<uint8_t, D>& lens, uint64_t* mask, uint64_t* lw) {
    for (int i = 0; i < NW; ++i) mask[i] = 0;
    for (int i = 0; i < kLW; ++i) lw[i] = 0;
    for (int d = 0; d < D; ++d) {
      mask[S::pack.word[d]] |= detail::prefix_mask(S::W[d], lens[d]) << S::pack.off[d];
      lw[d / 8] |= uint64_t{lens[d]} << (8 * (d % 8));
    }
  }
  // Every tuple length of the table <= the rule's (SWAR: lengths are <= 64 < 128).
  bool compatible(size_t pos, const uint64_t* rlw) const {
    constexpr uint64_t H = 0x8080808080808080ull;
    bool ok = true;
    for (int i = 0; i < kLW; ++i) ok &= (((rlw[i] | H) - plw_[size_t(i) * cap_ + pos]) & H) == H;
    return ok;
  }
  uint32_t rule_hash(size_t pos, const uint8_t* r) const {
    uint64_t w[NW];
    pack_rec(r, w);
    for (int i = 0; i < NW; ++i) w[i] &= pmask_[size_t(i) * cap_ + pos];
    return detail::hash_words<NW>(w);
  }
  uint32_t* bk(size_t pos) const { return reinterpret_cast<uint32_t*>(pbk_[pos]); }
  uint32_t slot_of(uint32_t id, uint32_t h) const { return ((id + 1) << tb_) | (h & tbm_); }
  uint32_t slot_id(uint32_t s) const { return (s >> tb_) - 1; }

  bool key_full(size_t pos, const uint64_t* mw, uint32_t h) const;
  // --- duplicate groups ---
  template <int d>
  bool same_dim(const uint8_t* a, uint64_t ta, const uint8_t* b, uint64_t tb) const {
    const uint64_t va = S::template get<d>(a, S::layout.val[d]), vb = S::template get<d>(b, S::layout.val[d]);
    if constexpr (S::is_prefix(d)) {
      if (S::kind(ta, d) != S::kind(tb, d)) return false;
      return S::kind(ta, d) == 2 ? ext_[va] == ext_[vb] : va == vb;
    } else {
      return va == vb && S::template get<d>(a, S::layout.hi[d]) == S::template get<d>(b, S::layout.hi[d]);
    }
  }
  bool same_intervals(const uint8_t* a, const uint8_t* b) const {
    return [&]<int... d>(std::integer_sequence<int, d...>) {
      return (same_dim<d>(a, S::tail(a), b, S::tail(b)) && ...);
    }(std::make_integer_sequence<int, D>{});
  }
  uint32_t find_identical(uint32_t tidx, uint32_t id) const;
  void join_group(uint32_t head, uint32_t id);
  void replace_head(uint32_t old_head, uint32_t new_head, uint32_t old_p);
  void table_priority_changed(Table& t, uint32_t old_p, uint32_t new_p, bool same_rank = false);
  // The group's best rule for a lookup: priority below `limit` and >= best1 - 1, residual accepted.
  template <class F>
  __attribute__((noinline)) uint32_t group_pick(uint32_t head, uint32_t limit, uint64_t best1, F& ok) const {
    auto g = group_of_.find(head);
    if (g == group_of_.end() || limit == 0) return kNoRule;
    const Group& members = groups_[g->second.group];
    for (auto it = members.lower_bound({limit - 1, kNoRule}); it != members.end() && it->first >= best1; ++it)
      if (!S::residual(S::tail(rec(it->second))) || ok(it->second)) return it->second;
    return kNoRule;
  }
  static void place(uint32_t* bk, uint32_t nb, uint32_t b, uint32_t slot);
  static bool unplace(uint32_t* bk, uint32_t nb, uint32_t b, uint32_t slot);
  void rehash(size_t pos, uint32_t nb);
  uint32_t choose_table(const uint8_t* r, const std::array<uint8_t, D>& nat, bool& full);
  uint32_t find_or_make(const std::array<uint8_t, D>& lens);
  void drop_table(uint32_t tidx);
  void reserve_positions(size_t cap);
  void swap_positions(size_t a, size_t b);
  void reposition(size_t pos);
  void top_insert(Table& t, uint32_t p);
  static void top_drop(Table& t, uint32_t p);
  void top_refill(uint32_t tidx);
  static void top_put(Table& t, uint32_t p);
  static unsigned level(int d, int i);
  static std::array<uint8_t, D> initial_tuple(const std::array<uint8_t, D>& nat);
  static bool refine(std::array<uint8_t, D>& t, const std::array<uint8_t, D>& nat);

  // Load factor limit: a lone bucket may fill up (nothing to overflow into); more buckets keep
  // room so that overflow chains stay short.
  static bool fits(uint32_t n, uint32_t nb) {
    if (nb == 1) return n <= uint32_t{detail::kSlots};
    if (nb <= 4) return n * 8 <= nb * uint32_t{detail::kSlots} * 7;
    return n * 4 <= nb * uint32_t{detail::kSlots} * 3;
  }
  static uint32_t* alloc_buckets(uint32_t nb) {
    auto* p = static_cast<uint32_t*>(::operator new(size_t{nb} * 64, std::align_val_t{64}));
    std::memset(p, 0, size_t{nb} * 64);
    return p;
  }
  static void free_buckets(uint32_t* p) {
    if (p) ::operator delete(p, std::align_val_t{64});
  }

  // --- lookup ---
  struct Probe {  // one packet's lookup state
    uint64_t kw[NW];
    Key k;
    uint64_t best1;  // best priority + 1; 0 = none
    uint32_t best;
    bool resid;
  };
  LFP_CLS_INLINE void start(Probe& q, const Key& key) const {
    pack_key(key, q.kw);
    for (int d = 0; d < D; ++d) q.k[d] = key[d] & detail::width_mask(S::W[d]);
    q.best1 = 0;
    q.best = kNoRule;
    q.resid = n_resid_ != 0;
  }
  template <bool kAvx, bool kStats>
  LFP_CLS_INLINE uint32_t bucket_match(const uint32_t* p, uint32_t tag, ProbeStats* st) const {
    if constexpr (kStats) ++st->buckets;
    if constexpr (kAvx) {
#if defined(LFP_CLS_X86)
      return detail::bucket_match_avx512(p, tag, tbm_);
#endif
    }
    return detail::bucket_match_generic(p, tag, tbm_);
  }
  template <bool kAvx, bool kBound, bool kStats, class F>
  LFP_CLS_INLINE void chain(Probe& q, size_t t, const uint32_t* p, uint32_t tag, uint32_t m, uint32_t bound, F& ok,
                            ProbeStats* st) const;
  template <bool kAvx, bool kBound, bool kStats, class F>
  LFP_CLS_INLINE uint32_t kernel(const Key& key, uint32_t bound, F& ok, ProbeStats* st) const;
  template <bool kAvx>
  LFP_CLS_INLINE void batch_kernel(const Key* keys, size_t n, uint32_t* out) const;
#if defined(LFP_CLS_X86)
  LFP_CLS_AVX512 void batch_avx512(const Key* keys, size_t n, uint32_t* out) const {
    batch_kernel<true>(keys, n, out);
  }
#endif
#if defined(LFP_CLS_X86)
  template <bool kBound, bool kStats, class F>
  LFP_CLS_AVX512 uint32_t match_avx512(const Key& key, uint32_t bound, F& ok, ProbeStats* st) const {
    return kernel<true, kBound, kStats>(key, bound, ok, st);
  }
#endif
  template <bool kBound, bool kStats, class F>
  uint32_t match_generic(const Key& key, uint32_t bound, F& ok, ProbeStats* st) const {
    return kernel<false, kBound, kStats>(key, bound, ok, st);
  }
  template <bool kBound, bool kStats, class F>
  uint32_t dispatch(const Key& key, uint32_t bound, F& ok, ProbeStats* st) const {
#if defined(LFP_CLS_X86)
    if (avx512_) return match_avx512<kBound, kStats>(key, bound, ok, st);
#endif
    return match_generic<kBound, kStats>(key, bound, ok, st);
  }

  void swap(TupleClassifier& o) noexcept {
    std::swap(chunks_, o.chunks_);
    std::swap(pmax_, o.pmax_);
    std::swap(pmask_, o.pmask_);
    std::swap(pnb_, o.pnb_);
    std::swap(pbk_, o.pbk_);
    std::swap(plw_, o.plw_);
    std::swap(ptidx_, o.ptidx_);
    std::swap(nt_, o.nt_);
    std::swap(cap_, o.cap_);
    std::swap(tables_, o.tables_);
    std::swap(free_tables_, o.free_tables_);
    std::swap(ext_, o.ext_);
    std::swap(ext_free_, o.ext_free_);
    std::swap(groups_, o.groups_);
    std::swap(free_groups_, o.free_groups_);
    std::swap(group_of_, o.group_of_);
    std::swap(n_, o.n_);
    std::swap(n_resid_, o.n_resid_);
    std::swap(bucket_bytes_, o.bucket_bytes_);
    std::swap(tb_, o.tb_);
    std::swap(tbm_, o.tbm_);
    std::swap(avx512_, o.avx512_);
    std::swap(collide_limit_, o.collide_limit_);
    std::swap(batch_mode_, o.batch_mode_);
  }

  std::vector<uint8_t*> chunks_;  // kChunk records each
  // Tables by position (descending highest priority), structure of arrays; cap_ is a multiple of 8
  // and positions nt_..cap_-1 are padding that hashes to an empty bucket.
  std::vector<uint32_t> pmax_;   // highest priority
  std::vector<uint64_t> pmask_;  // NW * cap_: word i of position p at [i * cap_ + p]
  std::vector<uint64_t> pnb_;    // number of buckets
  std::vector<uint64_t> pbk_;    // bucket array address
  std::vector<uint64_t> plw_;    // kLW * cap_: tuple lengths, a byte each
  std::vector<uint16_t> ptidx_;  // table index
  size_t nt_ = 0, cap_ = 0;
  std::vector<Table> tables_;
  std::vector<uint32_t> free_tables_;
  std::vector<std::array<uint64_t, 2>> ext_;
  std::vector<uint32_t> ext_free_;
  // Duplicate groups: (priority, id), highest first; the first is the head, in the table.
  using Group = std::set<std::pair<uint32_t, uint32_t>, std::greater<>>;
  std::vector<Group> groups_;
  std::vector<uint32_t> free_groups_;
  struct Member {
    uint32_t group;   // index in groups_
    Group::iterator at;  // its (priority, id) there: a priority change needs no search
  };
  std::unordered_map<uint32_t, Member> group_of_;  // every grouped rule
  size_t n_ = 0;
  size_t n_resid_ = 0;
  size_t bucket_bytes_ = 0;
  unsigned tb_ = 24;          // tag bits in a slot
  uint32_t tbm_ = 0xffffffu;  // (1 << tb_) - 1
  bool avx512_ = false;
  uint32_t collide_limit_ = kCollideLimit;
  int batch_mode_ = 0;
};

// ------------------------------------------------------------------------------------------------

template <unsigned... Ws>
void TupleClassifier<Ws...>::clear() {
  for (uint8_t* c : chunks_) ::operator delete(c, std::align_val_t{8});
  for (size_t p = 0; p < nt_; ++p) free_buckets(bk(p));
  std::vector<uint8_t*>().swap(chunks_);
  std::vector<uint32_t>().swap(pmax_);
  std::vector<uint64_t>().swap(pmask_);
  std::vector<uint64_t>().swap(pnb_);
  std::vector<uint64_t>().swap(pbk_);
  std::vector<uint64_t>().swap(plw_);
  std::vector<uint16_t>().swap(ptidx_);
  nt_ = cap_ = 0;
  std::vector<Table>().swap(tables_);
  std::vector<uint32_t>().swap(free_tables_);
  std::vector<std::array<uint64_t, 2>>().swap(ext_);
  std::vector<uint32_t>().swap(ext_free_);
  std::vector<Group>().swap(groups_);
  std::vector<uint32_t>().swap(free_groups_);
  std::unordered_map<uint32_t, Member>().swap(group_of_);
  n_ = 0;
  n_resid_ = 0;
  bucket_bytes_ = 0;
  tb_ = 24;
  tbm_ = 0xffffffu;
}

template <unsigned... Ws>
auto TupleClassifier<Ws...>::memory_stats() const -> MemoryStats {
  MemoryStats m;
  m.store = chunks_.capacity() * sizeof(uint8_t*);
  for (const uint8_t* c : chunks_)
    if (c) m.store += kChunk * S::kRecSize;
  for (size_t p = 0; p < nt_; ++p) {
    m.buckets += pnb_[p] * 64;
    m.slots += pnb_[p] * detail::kSlots;
    m.used += tables_[ptidx_[p]].count;
  }
  m.tables = pmax_.capacity() * 4 + (pmask_.capacity() + pnb_.capacity() + pbk_.capacity() + plw_.capacity()) * 8 +
             ptidx_.capacity() * 2 + tables_.capacity() * sizeof(Table) + free_tables_.capacity() * 4 +
             ext_.capacity() * sizeof(ext_[0]) + ext_free_.capacity() * 4 + groups_.capacity() * sizeof(Group) +
             group_of_.size() * kGroupedBytes;
  return m;
}

template <unsigned... Ws>
size_t TupleClassifier<Ws...>::memory_bytes() const {
  MemoryStats m = memory_stats();
  return m.store + m.buckets + m.tables;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::ensure_id(uint32_t id) {
  size_t c = id >> kChunkShift;
  if (c >= chunks_.size()) {
    size_t want = c + 1;
    if (want > chunks_.capacity()) chunks_.reserve(std::max(want, chunks_.capacity() + chunks_.capacity() / 4 + 4));
    chunks_.resize(want, nullptr);
    // Slots hold id + 1 above the tag: keep enough bits for every id the store can hold.
    uint64_t ids = uint64_t{chunks_.size()} << kChunkShift;
    unsigned idbits = static_cast<unsigned>(std::bit_width(ids));
    unsigned tb = idbits >= 31 ? 1 : 32 - idbits;
    if (tb < tb_) set_tag_bits(tb);
  }
  if (!chunks_[c]) {
    auto* p = static_cast<uint8_t*>(::operator new(kChunk * S::kRecSize, std::align_val_t{8}));
    std::memset(p, 0, kChunk * S::kRecSize);
    for (uint32_t i = 0; i < kChunk; ++i) S::set_tail(p + i * S::kRecSize, uint64_t{kAbsent} << S::kTidxShift);
    chunks_[c] = p;
  }
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::set_tag_bits(unsigned tb) {
  uint32_t nm = (1u << tb) - 1;
  for (size_t p = 0; p < nt_; ++p) {
    uint32_t* b = bk(p);
    for (size_t i = 0; i < pnb_[p] * detail::kBucketWords; ++i) {
      if ((i % detail::kBucketWords) == detail::kSlots || b[i] == 0) continue;
      uint32_t id1 = b[i] >> tb_;
      b[i] = (id1 << tb) | (b[i] & nm);  // a tag is the low bits of the hash: keep fewer of them
    }
  }
  tb_ = tb;
  tbm_ = nm;
}

template <unsigned... Ws>
unsigned TupleClassifier<Ws...>::level(int d, int i) {
  // Tuple lengths a prefix dimension may take: 0, w/4, w/2, 3w/4, 7w/8, w.
  constexpr int kNum[6] = {0, 2, 4, 6, 7, 8};
  return S::W[d] * unsigned(kNum[i]) / 8;
}

template <unsigned... Ws>
auto TupleClassifier<Ws...>::initial_tuple(const std::array<uint8_t, D>& nat) -> std::array<uint8_t, D> {
  std::array<uint8_t, D> t{};
  for (int d = 0; d < D; ++d) {
    if (S::is_prefix(d)) {
      // Coarse levels first (0, w/4, w/2): rules of many lengths share a table, and the collision
      // limit sends the rest to finer tables (see choose_table and refine).
      unsigned l = 0;
      for (int i = 0; i <= 2; ++i)
        if (level(d, i) <= nat[d]) l = level(d, i);
      t[d] = static_cast<uint8_t>(l);
    } else {
      t[d] = nat[d] == S::W[d] ? static_cast<uint8_t>(S::W[d]) : 0;  // exact values only
    }
  }
  // Two address dimensions of very different lengths: hash on the longer one only.
  if constexpr (D >= 2) {
    if (S::is_prefix(0) && S::is_prefix(1) && S::W[0] == S::W[1]) {
      int delta = int(nat[0]) - int(nat[1]);
      int thr = int(S::W[0]) / 8;
      if (delta > thr) t[1] = 0;
      else if (-delta > thr) t[0] = 0;
    }
  }
  return t;
}

template <unsigned... Ws>
bool TupleClassifier<Ws...>::refine(std::array<uint8_t, D>& t, const std::array<uint8_t, D>& nat) {
  // One step finer in the dimension with the most unused bits (prefix dimensions first).
  int best = -1;
  unsigned gap = 0;
  for (int d = 0; d < D; ++d) {
    unsigned g = nat[d] - t[d];
    if (!S::is_prefix(d) && g) g = g * 2;  // narrow dimensions: hashed bits are worth more
    if (g > gap) {
      gap = g;
      best = d;
    }
  }
  if (best < 0) return false;
  if (S::is_prefix(best)) {
    unsigned l = nat[best];
    for (int i = 5; i >= 0; --i)
      if (level(best, i) > t[best] && level(best, i) < l) l = level(best, i);
    t[best] = static_cast<uint8_t>(l);
  } else {
    t[best] = nat[best];
  }
  return true;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::place(uint32_t* bk, uint32_t nb, uint32_t b, uint32_t slot) {
  for (;;) {
    uint32_t* p = bk + size_t{b} * detail::kBucketWords;
    uint32_t e = detail::bucket_empty(p);
    if (e) {
      p[std::countr_zero(e)] = slot;
      return;
    }
    ++p[detail::kSlots];  // overflow counter
    b = b + 1 == nb ? 0 : b + 1;
  }
}

template <unsigned... Ws>
bool TupleClassifier<Ws...>::unplace(uint32_t* bk, uint32_t nb, uint32_t b, uint32_t slot) {
  uint32_t start = b;
  for (;;) {
    uint32_t* p = bk + size_t{b} * detail::kBucketWords;
    for (int i = 0; i < detail::kSlots; ++i)
      if (p[i] == slot) {
        p[i] = 0;
        // Undo the overflow counts of the buckets passed from home.
        for (uint32_t c = start; c != b; c = c + 1 == nb ? 0 : c + 1)
          --bk[size_t{c} * detail::kBucketWords + detail::kSlots];
        return true;
      }
    if (p[detail::kSlots] == 0) return false;
    b = b + 1 == nb ? 0 : b + 1;
    if (b == start) return false;
  }
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::rehash(size_t pos, uint32_t nb) {
  uint32_t* nbk = alloc_buckets(nb);
  uint32_t* old = bk(pos);
  // Slots in batches whose records are fetched ahead: a large table's records are cache misses.
  constexpr size_t kBatch = 16;
  uint32_t batch[kBatch];
  size_t n = 0;
  auto flush = [&] {
    for (size_t j = 0; j < n; ++j) place(nbk, nb, detail::home(rule_hash(pos, rec(slot_id(batch[j]))), nb), batch[j]);
    n = 0;
  };
  for (size_t i = 0; i < pnb_[pos] * detail::kBucketWords; ++i) {
    if ((i % detail::kBucketWords) == detail::kSlots || old[i] == 0) continue;
    __builtin_prefetch(rec(slot_id(old[i])));
    batch[n++] = old[i];
    if (n == kBatch) flush();
  }
  flush();
  free_buckets(old);
  bucket_bytes_ = bucket_bytes_ - pnb_[pos] * 64 + size_t{nb} * 64;
  pbk_[pos] = reinterpret_cast<uint64_t>(nbk);
  pnb_[pos] = nb;
}

// Whether collide_limit_ rules of the table share the hashed key mw. Stops at the limit: a key
// that many rules share (identical conditions) costs the limit, not the chain.
template <unsigned... Ws>
bool TupleClassifier<Ws...>::key_full(size_t pos, const uint64_t* mw, uint32_t h) const {
  uint32_t n = 0;
  const uint32_t nb = static_cast<uint32_t>(pnb_[pos]);
  uint32_t b = detail::home(h, nb);
  uint32_t tag = h & tbm_;
  for (uint32_t steps = 0; steps < nb; ++steps) {
    const uint32_t* p = bk(pos) + size_t{b} * detail::kBucketWords;
    for (uint32_t m = detail::bucket_match_generic(p, tag, tbm_) & 0x7fffu; m; m &= m - 1) {
      uint64_t w[NW];
      pack_rec(rec(slot_id(p[std::countr_zero(m)])), w);
      bool same = true;
      for (int i = 0; i < NW; ++i) same &= (w[i] & pmask_[size_t(i) * cap_ + pos]) == mw[i];
      if ((n += same) >= collide_limit_) return true;
    }
    if (p[detail::kSlots] == 0) break;
    b = b + 1 == nb ? 0 : b + 1;
  }
  return false;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::reserve_positions(size_t cap) {
  // cap is a multiple of 8 and >= nt_; padding positions hash to the empty bucket.
  auto grow = [&](auto& v, size_t words, auto pad) {
    std::remove_reference_t<decltype(v)> n(words * cap, pad);
    for (size_t i = 0; i < words; ++i)
      for (size_t p = 0; p < nt_; ++p) n[i * cap + p] = v[i * cap_ + p];
    v.swap(n);
  };
  grow(pmax_, 1, uint32_t{0});
  grow(pmask_, NW, uint64_t{0});
  grow(pnb_, 1, uint64_t{1});
  grow(pbk_, 1, reinterpret_cast<uint64_t>(detail::kEmptyBucket));
  grow(plw_, kLW, uint64_t{0});
  grow(ptidx_, 1, uint16_t{0});
  cap_ = cap;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::swap_positions(size_t a, size_t b) {
  std::swap(pmax_[a], pmax_[b]);
  for (int i = 0; i < NW; ++i) std::swap(pmask_[size_t(i) * cap_ + a], pmask_[size_t(i) * cap_ + b]);
  std::swap(pnb_[a], pnb_[b]);
  std::swap(pbk_[a], pbk_[b]);
  for (int i = 0; i < kLW; ++i) std::swap(plw_[size_t(i) * cap_ + a], plw_[size_t(i) * cap_ + b]);
  std::swap(ptidx_[a], ptidx_[b]);
  tables_[ptidx_[a]].pos = static_cast<uint32_t>(a);
  tables_[ptidx_[b]].pos = static_cast<uint32_t>(b);
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::reposition(size_t pos) {
  // Restore descending highest-priority order around pos.
  while (pos > 0 && pmax_[pos - 1] < pmax_[pos]) {
    swap_positions(pos - 1, pos);
    --pos;
  }
  while (pos + 1 < nt_ && pmax_[pos + 1] > pmax_[pos]) {
    swap_positions(pos + 1, pos);
    ++pos;
  }
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::top_insert(Table& t, uint32_t p) {
  // t.top holds the ntop highest priorities of the table's rules; t.count already includes p.
  uint32_t before = t.count - 1;
  if (t.ntop > 0 && p < t.top[t.ntop - 1] && (t.ntop < before || t.ntop == kTop)) return;
  top_put(t, p);
}

// Puts p into t.top (highest first, at most kTop entries), dropping the lowest when full.
template <unsigned... Ws>
void TupleClassifier<Ws...>::top_put(Table& t, uint32_t p) {
  uint32_t i = t.ntop < kTop ? t.ntop++ : kTop - 1;
  while (i > 0 && t.top[i - 1] < p) {
    t.top[i] = t.top[i - 1];
    --i;
  }
  t.top[i] = p;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::top_refill(uint32_t tidx) {
  Table& t = tables_[tidx];
  const uint32_t* b = bk(t.pos);
  t.ntop = 0;
  for (size_t i = 0; i < pnb_[t.pos] * detail::kBucketWords; ++i) {
    if ((i % detail::kBucketWords) == detail::kSlots || b[i] == 0) continue;
    uint32_t pr = S::prio(rec(slot_id(b[i])));
    if (t.ntop == kTop && pr <= t.top[kTop - 1]) continue;
    top_put(t, pr);
  }
}

template <unsigned... Ws>
uint32_t TupleClassifier<Ws...>::find_or_make(const std::array<uint8_t, D>& lens) {
  for (size_t p = 0; p < nt_; ++p)
    if (tables_[ptidx_[p]].lens == lens) return ptidx_[p];
  if (nt_ + 1 >= kMaxTables) {
    // Out of table indexes (never in practice): the all-wildcard tuple takes any rule.
    std::array<uint8_t, D> zero{};
    if (lens != zero) return find_or_make(zero);
  }
  uint32_t tidx;
  if (!free_tables_.empty()) {
    tidx = free_tables_.back();
    free_tables_.pop_back();
  } else {
    tidx = static_cast<uint32_t>(tables_.size());
    if (tables_.size() == tables_.capacity()) tables_.reserve(tables_.size() + 8);
    tables_.emplace_back();
  }
  if (nt_ == cap_) reserve_positions(cap_ + 8);
  Table& t = tables_[tidx];
  t = Table{};
  t.lens = lens;
  t.live = true;
  size_t pos = nt_++;
  t.pos = static_cast<uint32_t>(pos);
  uint64_t mask[NW], lw[kLW];
  make_masks(lens, mask, lw);
  for (int i = 0; i < NW; ++i) pmask_[size_t(i) * cap_ + pos] = mask[i];
  for (int i = 0; i < kLW; ++i) plw_[size_t(i) * cap_ + pos] = lw[i];
  pmax_[pos] = 0;
  pnb_[pos] = 1;
  pbk_[pos] = reinterpret_cast<uint64_t>(alloc_buckets(1));
  bucket_bytes_ += 64;
  ptidx_[pos] = static_cast<uint16_t>(tidx);
  return tidx;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::drop_table(uint32_t tidx) {
  Table& t = tables_[tidx];
  size_t pos = t.pos;
  free_buckets(bk(pos));
  bucket_bytes_ -= pnb_[pos] * 64;
  pbk_[pos] = reinterpret_cast<uint64_t>(detail::kEmptyBucket);
  pnb_[pos] = 1;
  for (; pos + 1 < nt_; ++pos) swap_positions(pos, pos + 1);
  // pos == nt_ - 1 now holds the dropped table: make it padding.
  pmax_[pos] = 0;
  for (int i = 0; i < NW; ++i) pmask_[size_t(i) * cap_ + pos] = 0;
  for (int i = 0; i < kLW; ++i) plw_[size_t(i) * cap_ + pos] = 0;
  ptidx_[pos] = 0;
  --nt_;
  t.live = false;
  free_tables_.push_back(tidx);
  if (nt_ == 0) {
    // Give the memory back when the classifier empties.
    std::vector<Table>().swap(tables_);
    std::vector<uint32_t>().swap(free_tables_);
    nt_ = 0;
    std::vector<uint32_t>().swap(pmax_);
    std::vector<uint64_t>().swap(pmask_);
    std::vector<uint64_t>().swap(pnb_);
    std::vector<uint64_t>().swap(pbk_);
    std::vector<uint64_t>().swap(plw_);
    std::vector<uint16_t>().swap(ptidx_);
    cap_ = 0;
  }
}

template <unsigned... Ws>
uint32_t TupleClassifier<Ws...>::choose_table(const uint8_t* r, const std::array<uint8_t, D>& nat, bool& full) {
  full = false;
  uint64_t rlw[kLW] = {};
  for (int d = 0; d < D; ++d) rlw[d / 8] |= uint64_t{nat[d]} << (8 * (d % 8));
  uint64_t w[NW];
  pack_rec(r, w);
  // First compatible table (in priority order) with room for this key.
  for (size_t pos = 0; pos < nt_; ++pos) {
    if (!compatible(pos, rlw)) continue;
    uint64_t mw[NW];
    for (int i = 0; i < NW; ++i) mw[i] = w[i] & pmask_[size_t(i) * cap_ + pos];
    uint32_t h = detail::hash_words<NW>(mw);
    if (!key_full(pos, mw, h)) return ptidx_[pos];
  }
  // No table has room: a new table, as coarse as possible. An existing table with a tuple no
  // longer than the rule's is compatible, so it was full for this key: go one step finer.
  std::array<uint8_t, D> t = initial_tuple(nat);
  for (;;) {
    bool exists = false;
    for (size_t pos = 0; pos < nt_ && !exists; ++pos) exists = tables_[ptidx_[pos]].lens == t;
    if (!exists || !refine(t, nat)) break;
  }
  const uint32_t tidx = find_or_make(t);
  full = tables_[tidx].count > 0;  // an existing table is compatible: the loop found it full for this key
  return tidx;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::insert(uint32_t id, const Rule& r) {
  if (r.priority == UINT32_MAX) throw std::invalid_argument("TupleClassifier: priority UINT32_MAX is reserved");
  if (id > kMaxRuleId) throw std::invalid_argument("TupleClassifier: rule id too large (ids index a dense store)");
  for (int d = 0; d < D; ++d)
    if (r.lo[d] > r.hi[d] || r.hi[d] > detail::width_mask(S::W[d]))
      throw std::invalid_argument("TupleClassifier: bad interval");
  if (present(id)) erase(id);
  ensure_id(id);
  uint8_t* rp = rec(id);
  std::memset(rp, 0, S::kRecSize);
  std::memcpy(rp + S::layout.prio, &r.priority, 4);
  std::array<uint8_t, D> nat{};
  uint64_t tail = 0;
  [&]<int... d>(std::integer_sequence<int, d...>) {
    (
        [&] {
          constexpr unsigned w = S::W[d];
          uint64_t lo = r.lo[d], hi = r.hi[d];
          unsigned cp = detail::common_prefix(w, lo, hi);
          nat[d] = static_cast<uint8_t>(cp);
          if constexpr (S::is_prefix(d)) {
            uint64_t pm = detail::prefix_mask(w, cp);
            bool is_pfx = (lo & ~pm) == 0 && ((hi | pm) & detail::width_mask(w)) == detail::width_mask(w);
            unsigned kind;
            if (is_pfx && cp == w) {
              kind = 1;
              S::template put<d>(rp, S::layout.val[d], lo);
            } else if (is_pfx) {
              kind = 0;
              S::template put<d>(rp, S::layout.val[d], lo | (uint64_t{1} << (w - 1 - cp)));
            } else {
              kind = 2;
              uint32_t x;
              if (!ext_free_.empty()) {
                x = ext_free_.back();
                ext_free_.pop_back();
                ext_[x] = {lo, hi};
              } else {
                x = static_cast<uint32_t>(ext_.size());
                ext_.push_back({lo, hi});
              }
              S::template put<d>(rp, S::layout.val[d], x);
            }
            tail |= uint64_t{kind} << (2 * S::layout.pidx[d]);
          } else {
            S::template put<d>(rp, S::layout.val[d], lo);
            S::template put<d>(rp, S::layout.hi[d], hi);
          }
        }(),
        ...);
  }(std::make_integer_sequence<int, D>{});
  if (r.residual) tail |= uint64_t{1} << S::kResidShift;
  // Table index absent while choosing (the record is not in any table yet).
  S::set_tail(rp, tail | (uint64_t{kAbsent} << S::kTidxShift));

  bool full;
  uint32_t tidx = choose_table(rp, nat, full);
  S::set_tail(rp, tail | (uint64_t{tidx} << S::kTidxShift));
  n_resid_ += r.residual;
  ++n_;
  if (full) {
    // Even the finest table has no room for this key: a rule with the same intervals takes it
    // into its group (or the key's chain grows, when no rule has the same intervals).
    if (uint32_t head = find_identical(tidx, id); head != kNoRule) return join_group(head, id);
  }
  Table& t = tables_[tidx];
  size_t pos = t.pos;
  if (!fits(t.count + 1, static_cast<uint32_t>(pnb_[pos]))) {
    uint32_t nb = static_cast<uint32_t>(pnb_[pos]);
    rehash(pos, std::max(nb + 1, nb + nb / 8));  // small steps keep the load factor high
  }
  uint32_t h = rule_hash(pos, rp);
  place(bk(pos), static_cast<uint32_t>(pnb_[pos]), detail::home(h, pnb_[pos]), slot_of(id, h));
  ++t.count;
  top_insert(t, r.priority);
  if (r.priority > pmax_[pos] || t.count == 1) {
    pmax_[pos] = r.priority;
    reposition(pos);
  }
}

template <unsigned... Ws>
bool TupleClassifier<Ws...>::erase(uint32_t id) {
  if (!present(id)) return false;
  uint8_t* rp = rec(id);
  const uint64_t tail = S::tail(rp);
  const uint32_t tidx = S::tidx(tail);
  const uint32_t p = S::prio(rp);
  Table& t = tables_[tidx];
  size_t pos = t.pos;
  bool grouped = false;
  if (auto g = group_of_.empty() ? group_of_.end() : group_of_.find(id); g != group_of_.end()) {
    // A grouped rule leaves its group (the next one heads it, if it was the head); the table
    // keeps the group's entry.
    grouped = true;
    const uint32_t gi = g->second.group;
    Group& members = groups_[gi];
    const bool head = members.begin()->second == id;
    members.erase(g->second.at);
    group_of_.erase(g);
    if (head) replace_head(id, members.begin()->second, p);
    if (members.size() == 1) {
      group_of_.erase(members.begin()->second);
      members.clear();
      free_groups_.push_back(gi);
    }
  } else {
    uint32_t h = rule_hash(pos, rp);
    unplace(bk(pos), static_cast<uint32_t>(pnb_[pos]), detail::home(h, pnb_[pos]), slot_of(id, h));
  }
  [&]<int... d>(std::integer_sequence<int, d...>) {
    (
        [&] {
          if constexpr (S::is_prefix(d)) {
            if (S::kind(tail, d) == 2)
              ext_free_.push_back(static_cast<uint32_t>(S::template get<d>(rp, S::layout.val[d])));
          }
        }(),
        ...);
  }(std::make_integer_sequence<int, D>{});
  S::set_tail(rp, uint64_t{kAbsent} << S::kTidxShift);
  n_resid_ -= S::residual(tail);
  --n_;
  if (!ext_.empty() && ext_free_.size() == ext_.size()) {
    std::vector<std::array<uint64_t, 2>>().swap(ext_);
    std::vector<uint32_t>().swap(ext_free_);
  }
  if (grouped) return true;
  if (--t.count == 0) {
    drop_table(tidx);
    return true;
  }
  top_drop(t, p);
  if (t.ntop == 0) top_refill(tidx);
  const uint32_t nb = static_cast<uint32_t>(pnb_[pos]);
  if (nb > 1 && t.count * 8 < nb * uint32_t{detail::kSlots} * 3) {  // shrink below 3/8 load
    rehash(pos, std::max<uint32_t>(1, (t.count * 8 + 6 * detail::kSlots - 1) / (6 * detail::kSlots)));
  }
  if (t.top[0] != pmax_[pos]) {
    pmax_[pos] = t.top[0];
    reposition(pos);
  }
  return true;
}

template <unsigned... Ws>
bool TupleClassifier<Ws...>::set_priority(uint32_t id, uint32_t p, bool same_rank) {
  if (p == UINT32_MAX) throw std::invalid_argument("TupleClassifier: priority UINT32_MAX is reserved");
  if (!present(id)) return false;
  uint8_t* rp = rec(id);
  const uint32_t old = S::prio(rp);
  if (old == p) return true;
  std::memcpy(rp + S::layout.prio, &p, 4);
  Table& t = tables_[S::tidx(S::tail(rp))];
  auto g = group_of_.empty() ? group_of_.end() : group_of_.find(id);
  if (g == group_of_.end()) {
    table_priority_changed(t, old, p, same_rank);
    return true;
  }
  // In a group: the table sees the head's priority only.
  Group& members = groups_[g->second.group];
  const auto [head_p, head] = *members.begin();
  if (same_rank) {
    const_cast<uint32_t&>(g->second.at->first) = p;  // the set's order holds: rewritten in place
  } else {
    auto node = members.extract(g->second.at);
    node.value().first = p;
    g->second.at = members.insert(std::move(node)).position;
  }
  if (members.begin()->second != head) replace_head(head, members.begin()->second, head_p);
  else if (members.begin()->first != head_p) table_priority_changed(t, head_p, members.begin()->first, same_rank);
  return true;
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::table_priority_changed(Table& t, uint32_t old_p, uint32_t new_p, bool same_rank) {
  if (same_rank) {
    // Same rank among the table's rules: if it is one of the top priorities, it stays there.
    std::replace(t.top.begin(), t.top.begin() + t.ntop, old_p, new_p);
  } else {
    top_drop(t, old_p);
    if (t.ntop == 0) top_refill(static_cast<uint32_t>(&t - tables_.data()));  // it was the last one known
    else top_insert(t, new_p);  // as if the rule were new among the table's other t.count - 1
  }
  const size_t pos = t.pos;
  if (t.top[0] != pmax_[pos]) {
    pmax_[pos] = t.top[0];
    reposition(pos);
  }
}

// A rule of the table with the same intervals as rule id (not in the table yet), or kNoRule.
template <unsigned... Ws>
uint32_t TupleClassifier<Ws...>::find_identical(uint32_t tidx, uint32_t id) const {
  const size_t pos = tables_[tidx].pos;
  const uint8_t* r = rec(id);
  const uint32_t h = rule_hash(pos, r);
  const uint32_t nb = static_cast<uint32_t>(pnb_[pos]);
  uint32_t b = detail::home(h, nb);
  for (uint32_t steps = 0; steps < nb; ++steps) {
    const uint32_t* p = bk(pos) + size_t{b} * detail::kBucketWords;
    for (uint32_t m = detail::bucket_match_generic(p, h & tbm_, tbm_) & 0x7fffu; m; m &= m - 1) {
      const uint32_t other = slot_id(p[std::countr_zero(m)]);
      if (same_intervals(rec(other), r)) return other;
    }
    if (p[detail::kSlots] == 0) break;
    b = b + 1 == nb ? 0 : b + 1;
  }
  return kNoRule;
}

// Rule id (in the store, not in the table) joins the group of head (in the table).
template <unsigned... Ws>
void TupleClassifier<Ws...>::join_group(uint32_t head, uint32_t id) {
  auto g = group_of_.find(head);
  if (g == group_of_.end()) {
    uint32_t gi;
    if (!free_groups_.empty()) {
      gi = free_groups_.back();
      free_groups_.pop_back();
    } else {
      gi = static_cast<uint32_t>(groups_.size());
      groups_.emplace_back();
    }
    g = group_of_.emplace(head, Member{gi, groups_[gi].insert({S::prio(rec(head)), head}).first}).first;
  }
  const uint32_t gi = g->second.group;
  group_of_.emplace(id, Member{gi, groups_[gi].insert({S::prio(rec(id)), id}).first});
  if (groups_[gi].begin()->second == id) replace_head(head, id, S::prio(rec(head)));
}

// The table's entry for a group passes from old_head (whose priority the table knew as old_p) to
// new_head (same intervals, so the same hash).
template <unsigned... Ws>
void TupleClassifier<Ws...>::replace_head(uint32_t old_head, uint32_t new_head, uint32_t old_p) {
  Table& t = tables_[S::tidx(S::tail(rec(old_head)))];
  const size_t pos = t.pos;
  const uint32_t h = rule_hash(pos, rec(old_head));
  const uint32_t nb = static_cast<uint32_t>(pnb_[pos]);
  const uint32_t from = slot_of(old_head, h);
  uint32_t b = detail::home(h, nb);
  for (uint32_t steps = 0; steps < nb; ++steps, b = b + 1 == nb ? 0 : b + 1) {
    uint32_t* p = bk(pos) + size_t{b} * detail::kBucketWords;
    auto it = std::find(p, p + detail::kSlots, from);
    if (it != p + detail::kSlots) {
      *it = slot_of(new_head, h);
      break;
    }
  }
  table_priority_changed(t, old_p, S::prio(rec(new_head)));
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::top_drop(Table& t, uint32_t p) {
  for (uint32_t i = 0; i < t.ntop; ++i)
    if (t.top[i] == p) {
      for (uint32_t j = i; j + 1 < t.ntop; ++j) t.top[j] = t.top[j + 1];
      --t.ntop;
      return;
    }
}

template <unsigned... Ws>
template <bool kAvx, bool kBound, bool kStats, class F>
LFP_CLS_INLINE void TupleClassifier<Ws...>::chain(Probe& q, size_t t, const uint32_t* p, uint32_t tag, uint32_t m,
                                                  uint32_t bound, F& ok, ProbeStats* st) const {
  // The probe of the table at position t, once its bucket p gave the non-zero match mask m.
  const uint32_t tb = tb_;
  uint64_t steps = 0;
  for (;;) {
    for (uint32_t h = m & 0x7fffu; h; h &= h - 1) {
      const uint32_t id = (p[std::countr_zero(h)] >> tb) - 1;
      if constexpr (kStats) ++st->candidates;
      const uint8_t* r = rec(id);
      uint32_t pr = S::prio(r);
      if (pr < q.best1) continue;
      const uint64_t tl = S::tail(r);
      uint32_t take = id;
      if constexpr (kBound) {
        if (pr >= bound) {
          // A group's head above the bound: one of its duplicates may be below it.
          if (group_of_.empty() || !verify(r, tl, q.k)) continue;
          if ((take = group_pick(id, bound, q.best1, ok)) == kNoRule) continue;
          q.best1 = uint64_t{S::prio(rec(take))} + 1;
          q.best = take;
          continue;
        }
      }
      if (!verify(r, tl, q.k)) continue;
      if (q.resid && S::residual(tl) && !ok(id)) {
        if (group_of_.empty() || (take = group_pick(id, pr, q.best1, ok)) == kNoRule) continue;
        pr = S::prio(rec(take));
      }
      q.best1 = uint64_t{pr} + 1;
      q.best = take;
    }
    // Every entry sits within nb buckets of its home: stop there even if all counters are set.
    if (!(m & 0x8000u) || ++steps == pnb_[t]) return;
    p += detail::kBucketWords;
    if (p == bk(t) + pnb_[t] * detail::kBucketWords) p = bk(t);
    m = bucket_match<kAvx, kStats>(p, tag, st);
  }
}

template <unsigned... Ws>
template <bool kAvx, bool kBound, bool kStats, class F>
LFP_CLS_INLINE uint32_t TupleClassifier<Ws...>::kernel(const Key& key, uint32_t bound, F& ok, ProbeStats* st) const {
  Probe q;
  start(q, key);
  const size_t nt = nt_;
  const uint32_t* pmax = pmax_.data();
  if constexpr (kAvx) {
#if defined(LFP_CLS_X86)
    // 8 tables at a time: their hashes in AVX-512 lanes, then one bucket compare each.
    alignas(64) uint64_t addr[8];
    alignas(32) uint32_t tags[8];
    for (size_t g = 0; g < nt; g += 8) {
      if (pmax[g] < q.best1) break;
      detail::hash8_avx512<NW>(q.kw, pmask_.data(), cap_, g, pnb_.data(), pbk_.data(), tbm_, addr, tags);
      const size_t e = std::min(nt, g + 8);
      for (size_t t = g; t < e; ++t) {
        // Tables are in descending highest-priority order: the first one below the best ends it.
        if (pmax[t] < q.best1) return q.best;
        if constexpr (kStats) ++st->tables;
        const uint32_t* p = reinterpret_cast<const uint32_t*>(addr[t - g]);
        const uint32_t m = bucket_match<true, kStats>(p, tags[t - g], st);
        if (m) chain<true, kBound, kStats>(q, t, p, tags[t - g], m, bound, ok, st);
      }
    }
#endif
  } else {
    for (size_t t = 0; t < nt; ++t) {
      if (pmax[t] < q.best1) break;
      if constexpr (kStats) ++st->tables;
      uint64_t mw[NW];
      for (int i = 0; i < NW; ++i) mw[i] = q.kw[i] & pmask_[size_t(i) * cap_ + t];
      const uint32_t h = detail::hash_words<NW>(mw);
      const uint32_t* p = bk(t) + size_t{detail::home(h, pnb_[t])} * detail::kBucketWords;
      const uint32_t m = bucket_match<false, kStats>(p, h & tbm_, st);
      if (m) chain<false, kBound, kStats>(q, t, p, h & tbm_, m, bound, ok, st);
    }
  }
  return q.best;
}

template <unsigned... Ws>
template <bool kAvx>
LFP_CLS_INLINE void TupleClassifier<Ws...>::batch_kernel(const Key* keys, size_t n, uint32_t* out) const {
  // Packets in groups of kLanes, tables in groups of 8: the buckets of all the group's packets are
  // hashed and prefetched before any is compared, so that their cache misses overlap.
  constexpr size_t kLanes = 16;
  auto no = [](uint32_t) { return false; };
  const size_t nt = nt_;
  const uint32_t* pmax = pmax_.data();
  for (size_t base = 0; base < n; base += kLanes) {
    const size_t np = std::min(kLanes, n - base);
    Probe q[kLanes];
    alignas(64) uint64_t addr[kLanes][8];
    alignas(32) uint32_t tags[kLanes][8];
    uint32_t alive = 0;
    for (size_t i = 0; i < np; ++i) {
      start(q[i], keys[base + i]);
      alive |= 1u << i;
    }
    for (size_t g = 0; g < nt && alive; g += 8) {
      const size_t e = std::min(nt, g + 8);
      for (uint32_t a = alive; a; a &= a - 1) {
        const size_t i = static_cast<size_t>(std::countr_zero(a));
        if (pmax[g] < q[i].best1) {
          alive &= ~(1u << i);
          continue;
        }
        if constexpr (kAvx) {
#if defined(LFP_CLS_X86)
          detail::hash8_avx512<NW>(q[i].kw, pmask_.data(), cap_, g, pnb_.data(), pbk_.data(), tbm_, addr[i], tags[i]);
#endif
        } else {
          for (size_t t = g; t < e; ++t) {
            uint64_t mw[NW];
            for (int w = 0; w < NW; ++w) mw[w] = q[i].kw[w] & pmask_[size_t(w) * cap_ + t];
            const uint32_t h = detail::hash_words<NW>(mw);
            addr[i][t - g] = pbk_[t] + uint64_t{detail::home(h, pnb_[t])} * 64;
            tags[i][t - g] = h & tbm_;
          }
        }
        for (size_t t = g; t < e; ++t) detail::prefetch(reinterpret_cast<const void*>(addr[i][t - g]));
      }
      for (uint32_t a = alive; a; a &= a - 1) {
        const size_t i = static_cast<size_t>(std::countr_zero(a));
        for (size_t t = g; t < e; ++t) {
          if (pmax[t] < q[i].best1) {
            alive &= ~(1u << i);
            break;
          }
          const uint32_t* p = reinterpret_cast<const uint32_t*>(addr[i][t - g]);
          const uint32_t m = bucket_match<kAvx, false>(p, tags[i][t - g], nullptr);
          if (m) chain<kAvx, false, false>(q[i], t, p, tags[i][t - g], m, UINT32_MAX, no, nullptr);
        }
      }
    }
    for (size_t i = 0; i < np; ++i) out[base + i] = q[i].best;
  }
}

template <unsigned... Ws>
void TupleClassifier<Ws...>::match_batch(const Key* keys, size_t n, uint32_t* out) const {
  // Interleaving packets only pays when lookups miss the caches; a classifier that fits in the
  // core's L2 is faster one packet at a time.
  if (batch_mode_ == 2 || (batch_mode_ == 0 && memory_bytes_fast() < (size_t{1} << 20))) {
    for (size_t i = 0; i < n; ++i) out[i] = match(keys[i]);
    return;
  }
#if defined(LFP_CLS_X86)
  if (avx512_) return batch_avx512(keys, n, out);
#endif
  batch_kernel<false>(keys, n, out);
}

using V4Classifier = TupleClassifier<32, 32, 16, 16, 8>;
// Compiled once in engine/src/tuple_classifier.cpp.
extern template class TupleClassifier<32, 32, 16, 16, 8>;

}  // namespace lfp::cls

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
