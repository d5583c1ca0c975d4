// SPDX-License-Identifier: MIT
// lfp_eval's walk, in C++, counting the bank entries (cache lines) it reads: what the benchmarks
// report as a decision's memory cost (out of cache, each distinct entry is a miss). It follows
// datapath/bpf/lfp_classify.bpf.c step for step; the kernel's own evaluator decides.
#include <algorithm>
#include <unordered_set>

#include "lfp/datapath/compile.hpp"

namespace lfp::datapath {

namespace {

bool le128(uint64_t ah, uint64_t al, uint64_t bh, uint64_t bl) { return ah < bh || (ah == bh && al <= bl); }

bool cond_matches(const lfp_cond& c, const lfp_values& v) {
  if (c.slot >= LFP_NSLOTS || !(v.present & (1u << c.slot))) return (c.flags & LFP_C_IF_EMPTY) != 0;
  const uint64_t vh = v.v[c.slot][0], vl = v.v[c.slot][1];
  switch (c.op) {
    case LFP_OP_TRUE: return true;
    case LFP_OP_IN_RANGE:
    case LFP_OP_NOT_IN_RANGE: {
      const bool in = le128(c.lo[0], c.lo[1], vh, vl) && le128(vh, vl, c.hi[0], c.hi[1]);
      return in == (c.op == LFP_OP_IN_RANGE);
    }
    case LFP_OP_FLAGS_ALL: return (vl & c.lo[1]) == c.lo[1];
    case LFP_OP_FLAGS_ANY: return (vl & c.lo[1]) != 0;
    case LFP_OP_FLAGS_NONE: return (vl & c.lo[1]) == 0;
    default: return true;  // (user sets: a model of the walk's reads, not of its answer)
  }
}

bool guard_holds(const lfp_guard& g, const lfp_values& v) {
  if (g.slot == LFP_S_NONE) return true;
  if (g.slot >= LFP_NSLOTS || !(v.present & (1u << g.slot))) return (g.flags & LFP_C_IF_EMPTY) != 0;
  const uint64_t vl = v.v[g.slot][1];
  return v.v[g.slot][0] == g.high && g.lo <= vl && vl <= g.hi;
}

struct Cursor {
  uint32_t pos, end;
  lfp_list_elem head;  // the element at pos (a bucket's first is in the bucket: no list line read)
};

}  // namespace

WalkCost walk_cost(const KernelPolicy& policy, lfp_kl kl, const lfp_values& v) {
  WalkCost cost;
  const auto& bank = policy.bank;
  std::unordered_set<uint32_t> seen;
  auto read = [&](uint32_t entry, size_t& count) -> const lfp_entry& {
    if (seen.insert(entry).second) ++count;
    return bank.at(entry);
  };
  const lfp_layer_hdr& h = read(kl, cost.index_lines).h;
  std::vector<Cursor> cursors;
  if (h.nprobes) {
    read(LFP_PROBE_ENTRY(kl, 0), cost.index_lines);
    if (h.nprobes > LFP_PROBES_PER_ENTRY) read(LFP_PROBE_ENTRY(kl, LFP_PROBES_PER_ENTRY), cost.index_lines);
  }
  auto elem = [&](uint32_t p) -> const lfp_list_elem& {
    return read(p / LFP_LIST_PER_ENTRY, cost.list_lines).l[p % LFP_LIST_PER_ENTRY];
  };
  if (h.nprobes || h.listed)
    if (h.nresidual) cursors.push_back({h.residual, h.residual + h.nresidual, elem(h.residual)});
  for (uint32_t i = 0; i < h.nprobes; ++i) {
    const lfp_probe& p = bank.at(LFP_PROBE_ENTRY(kl, i)).p.p[i % LFP_PROBES_PER_ENTRY];
    uint64_t key[2][2]{};
    bool present = true;
    for (int f = 0; f < 2 && p.slot[f] != LFP_S_NONE; ++f) {
      present = present && p.slot[f] < LFP_NSLOTS && (v.present & (1u << p.slot[f]));
      if (!present) break;
      key[f][0] = v.v[p.slot[f]][0] & lfp_mask_high(p.plen[f]);
      key[f][1] = v.v[p.slot[f]][1] & lfp_mask_low(p.plen[f]);
    }
    if (!present) continue;
    ++cost.probes;
    const uint64_t hash = lfp_hash(key, i);
    const auto home = static_cast<uint32_t>(hash);
    for (uint32_t d = 0; d < LFP_MAX_PROBE; ++d) {
      const uint32_t at = (home + d) & h.hmask;
      const uint8_t fp = read(h.fpfirst + at / LFP_FP_PER_ENTRY, cost.fingerprint_lines).fp[at % LFP_FP_PER_ENTRY];
      if (!fp) break;
      if (fp != lfp_fingerprint(hash)) continue;
      const lfp_bucket& b = read(h.hfirst + at, cost.bucket_lines).b;
      if (b.probe == i && std::equal(&b.v[0][0], &b.v[0][0] + 4, &key[0][0])) {
        ++cost.lists;
        if (b.count) cursors.push_back({b.list, b.list + b.count, b.first});
        break;
      }
    }
  }

  uint32_t done_sub = UINT32_MAX;
  bool decided = false, hard = false;
  uint32_t all = h.gfirst;  // (a layer with no index: its guards in order)
  for (;;) {
    uint32_t gi;
    if (!h.nprobes && !h.listed) {
      if (all >= h.gfirst + h.gcount) break;
      gi = all++;
    } else {
      Cursor* best = nullptr;
      uint32_t best_order = LFP_ORDER_END;
      for (Cursor& c : cursors)
        if (c.pos < c.end && c.head.order < best_order) best = &c, best_order = c.head.order;
      if (!best) break;
      gi = best->head.guard;
      if (++best->pos < best->end) best->head = elem(best->pos);
    }
    ++cost.candidates;
    const lfp_guard& g = read(gi / 2, cost.guard_lines).g[gi % 2];
    if (g.sublayer == done_sub || !guard_holds(g, v)) continue;
    ++cost.filters_read;
    bool any = false, left = false, over = false;
    for (uint32_t j = g.cond; !left && !over; ++j) {
      const lfp_cond& c = read(j, cost.condition_lines).c;
      any = any || cond_matches(c, v);
      if (c.flags & LFP_C_GROUP_END) {
        if (!any) {
          left = true;
          break;
        }
        any = false;
      }
      if (c.flags & LFP_C_RULE_END) {
        if (c.action == LFP_A_USERSPACE) over = true;
        else {
          if (!decided || !hard) decided = true, hard = c.hard;
          done_sub = c.sublayer;
          over = hard && (c.flags & LFP_C_NO_DEFER_AFTER);
          left = true;
        }
      }
    }
    if (over) break;
  }
  return cost;
}

}  // namespace lfp::datapath
