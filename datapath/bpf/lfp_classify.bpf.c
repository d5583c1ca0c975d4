// SPDX-License-Identifier: GPL-2.0
/* The classifier every hook calls: lfp_eval walks a layer's compiled policy (lfp_structs.h) with
 * WFP's arbitration, visiting only the filters the layer's index says can match
 * (docs/kernel-index.md). Its entry points are global functions, defined here once and called from
 * every hook family's translation unit: the verifier checks each once, on its own, rather than at
 * every place a hook calls it. Also the equivalence test's way in (lfp_test_eval).
 */
#include "lfp_helpers.h"

static __always_inline int le128(__u64 ah, __u64 al, __u64 bh, __u64 bl) {
  return ah < bh || (ah == bh && al <= bl);
}

static __always_inline int user_in(__u64 set, const struct lfp_values *v) {
  struct lfp_user_key k = {.set = (__u32)set, .kind = 0, .id = v->uid};
  if (bpf_map_lookup_elem(&lfp_user_sets, &k)) return 1;
  k.kind = 1;
  k.id = v->gid;
  return bpf_map_lookup_elem(&lfp_user_sets, &k) != 0;
}

static __always_inline int cond_matches(const struct lfp_cond *c, const struct lfp_values *v) {
  __u32 slot = c->slot;
  if (slot >= LFP_NSLOTS || !(v->present & (1u << slot))) return (c->flags & LFP_C_IF_EMPTY) != 0;
  __u64 vh = v->v[slot][0], vl = v->v[slot][1];
  int in;
  switch (c->op) {
    case LFP_OP_TRUE: return 1;
    case LFP_OP_IN_RANGE:
    case LFP_OP_NOT_IN_RANGE:
      in = le128(c->lo[0], c->lo[1], vh, vl) && le128(vh, vl, c->hi[0], c->hi[1]);
      return in == (c->op == LFP_OP_IN_RANGE);
    case LFP_OP_FLAGS_ALL: return (vl & c->lo[1]) == c->lo[1];
    case LFP_OP_FLAGS_ANY: return (vl & c->lo[1]) != 0;
    case LFP_OP_FLAGS_NONE: return (vl & c->lo[1]) == 0;
    case LFP_OP_USER_IN:
    case LFP_OP_USER_NOT_IN: return user_in(c->lo[1], v) == (c->op == LFP_OP_USER_IN);
    default: return 0;
  }
}

/* Element p of a bank's lists (bank-relative) becomes cursor c's head; LFP_ORDER_END when out of the map. */
static __always_inline void set_head(struct eval_state *st, __u32 c, __u32 p) {
  if (c >= LFP_CURSORS) return;
  const union lfp_entry *e = bank_entry(st->bank, p / LFP_LIST_PER_ENTRY);
  st->head[c] = e ? e->l[p % LFP_LIST_PER_ENTRY].order : LFP_ORDER_END;
  st->hguard[c] = e ? e->l[p % LFP_LIST_PER_ENTRY].guard : ~0u;
}

/* Adds a list to merge: its first element becomes its head. */
static __always_inline void add_cursor(struct eval_state *st, __u32 list, __u32 count) {
  const __u32 c = st->ncur;
  if (!count || c >= LFP_CURSORS) return;
  st->pos[c] = list;
  st->end_pos[c] = list + count;
  set_head(st, c, list);
  st->ncur = c + 1;
}

/* Adds a bucket's list to merge: its first element is in the bucket (no list line read for it). */
static __always_inline void add_bucket_list(struct eval_state *st, const struct lfp_bucket *bk) {
  const __u32 c = st->ncur;
  if (!bk->count || c >= LFP_CURSORS) return;
  st->pos[c] = bk->list;
  st->end_pos[c] = bk->list + bk->count;
  st->head[c] = bk->first.order;
  st->hguard[c] = bk->first.guard;
  st->ncur = c + 1;
}

/* A layer with no index: its guards in order, read one after another (no list to read). */
static __always_inline void add_all_guards(struct eval_state *st, __u32 gfirst, __u32 gcount) {
  if (!gcount) return;
  st->pos[0] = gfirst;
  st->end_pos[0] = gfirst + gcount;
  st->head[0] = gfirst;
  st->ncur = 1;
}

/* Probe i of the layer: the bucket of the hook's values cut to the probe's shape, as a list to merge.
 * (What the loop needs is read from *st, not held in registers: the frames of these global functions
 * add to the deepest hook's stack.) A global function, verified once, not once a probe. */
__attribute__((noinline)) int lfp_probe(struct eval_state *st, const struct lfp_values *v, __u32 i) {
  if (!st || !v || i >= LFP_PROBES) return 0;
  for (int f = 0; f < 2; ++f) {
    const struct lfp_probe *pr = &st->probes[i / LFP_PROBES_PER_ENTRY].p[i % LFP_PROBES_PER_ENTRY];
    const __u32 slot = pr->slot[f], plen = pr->plen[f];
    if (slot == LFP_S_NONE && f == 1) {
      st->key[1][0] = st->key[1][1] = 0;
      break;
    }
    if (slot >= LFP_NSLOTS || !(v->present & (1u << slot))) return 0; /* the key's condition fails */
    st->key[f][0] = v->v[slot][0] & lfp_mask_high(plen);
    st->key[f][1] = v->v[slot][1] & lfp_mask_low(plen);
  }
  const __u64 hash = lfp_hash(st->key, i);
  st->home = (__u32)hash;
  st->fingerprint = lfp_fingerprint(hash);
  for (__u32 j = 0; j < LFP_MAX_PROBE; ++j) {
    const __u32 b = (st->home + j) & st->hdr.hmask;
    const union lfp_entry *fe = bank_entry(st->bank, st->hdr.fpfirst + b / LFP_FP_PER_ENTRY);
    if (!fe) return 0;
    const __u8 fp = fe->fp[b % LFP_FP_PER_ENTRY];
    if (!fp) return 0; /* a free bucket ends the run: the key is not there */
    if (fp != st->fingerprint) continue;
    const union lfp_entry *e = bank_entry(st->bank, st->hdr.hfirst + b);
    if (!e) return 0;
    const struct lfp_bucket *bk = &e->b;
    if (bk->probe == i && bk->v[0][0] == st->key[0][0] && bk->v[0][1] == st->key[0][1] &&
        bk->v[1][0] == st->key[1][0] && bk->v[1][1] == st->key[1][1]) {
      add_bucket_list(st, bk);
      return 1;
    }
  }
  return 0;
}

/* The lists a decision merges: the layer's residual list and the buckets of the values the hook has.
 * A global function: the verifier checks it once, apart from the walk. */
__attribute__((noinline)) int lfp_index_start(struct eval_state *st, const struct lfp_values *v) {
  if (!st || !v) return 0;
  const union lfp_entry *he = bank_entry(st->bank, st->kl);
  if (!he) return 0;
  st->hdr = he->h;
  st->ncur = 0;
  /* (eval_start sets the range up: this frame stays small) */
  st->all_guards = !st->hdr.nprobes && !st->hdr.listed;
  if (st->all_guards) return 1;
  add_cursor(st, st->hdr.residual, st->hdr.nresidual);
  const union lfp_entry *pe = bank_entry(st->bank, LFP_PROBE_ENTRY(st->kl, 0));
  if (!pe) return 0;
  st->probes[0] = pe->p;
  if (st->hdr.nprobes > LFP_PROBES_PER_ENTRY) {
    pe = bank_entry(st->bank, LFP_PROBE_ENTRY(st->kl, LFP_PROBES_PER_ENTRY));
    if (!pe) return 0;
    st->probes[1] = pe->p;
  }
  for (__u32 i = 0; i < LFP_PROBES; ++i) {
    if (i >= st->hdr.nprobes) break;
    lfp_probe(st, v, i);
  }
  return 1;
}

/* (Re)starts an evaluation on the policy that is active now. */
static __always_inline int eval_start(struct scratch *s, struct lfp_config *cfg) {
  struct eval_state *st = &s->st;
  st->gen_bank = read_gen(cfg);
  if (st->gen_bank == 0) return 0; /* no policy yet: nothing to evaluate */
  st->bank = st->gen_bank & 1;
  if (!lfp_index_start(st, &s->v)) return 0;
  if (st->all_guards) add_all_guards(st, st->hdr.gfirst, st->hdr.gcount);
  st->in_filter = 0;
  st->done_sub = 0xffffffff;
  st->any = 0;
  __builtin_memset(&st->out, 0, sizeof(st->out));
  st->started = 1;
  return 1;
}

/* The next candidate's guard index, the least head of the lists in evaluation order (whose list moves
 * on); -1 at the end. A global function: the verifier checks it once, not within every step of the walk. */
__attribute__((noinline)) int lfp_next_candidate(struct eval_state *st) {
  if (!st) return -1;
  /* (The least head and its cursor in memory, not registers: the verifier then does not tell apart a
   * state for each cursor and range they could be, 2^LFP_CURSORS of them.) */
  volatile __u32 *best_p = &st->best, *at_p = &st->at;
  *best_p = LFP_ORDER_END;
  *at_p = 0;
  for (__u32 c = 0; c < LFP_CURSORS; ++c) {
    if (c >= st->ncur) break;
    const __u32 h = st->head[c];
    if (h < *best_p) {
      *best_p = h;
      *at_p = c;
    }
  }
  const __u32 best = *best_p, at = *at_p;
  if (best == LFP_ORDER_END || at >= LFP_CURSORS) return -1;
  const __u32 guard = st->hguard[at];
  const __u32 p = ++st->pos[at];
  if (p < st->end_pos[at]) set_head(st, at, p);
  else st->head[at] = LFP_ORDER_END;
  return guard < 0x80000000u ? (int)guard : -1;
}

static __always_inline int guard_holds(const struct lfp_guard *g, const struct lfp_values *v) {
  __u32 slot = g->slot;
  if (slot == LFP_S_NONE) return 1;
  if (slot >= LFP_NSLOTS || !(v->present & (1u << slot))) return (g->flags & LFP_C_IF_EMPTY) != 0;
  const __u64 vl = v->v[slot][1];
  return v->v[slot][0] == g->high && g->lo <= vl && vl <= g->hi;
}

/* The walk, in steps of bpf_loop. A step first finds the next filter whose guard holds (up to
 * LFP_PER_STEP candidates: one whose guard fails, or whose sublayer is done, is not read), then reads
 * that filter's conditions (up to LFP_PER_STEP of them; the next step goes on where this one stopped).
 * The two loops are apart so that the verifier checks each once rather than every mix of the two.
 * A few items a step: the call, its look-ups and the seqlock's check cost as much as an item. */
#define LFP_PER_STEP 8

/* 0: st->j is at a filter's first condition (in_filter); 1: none in this step's candidates; 2: no
 * candidate is left. */
static __always_inline int find_filter(struct scratch *s) {
  struct eval_state *st = &s->st;
  for (int k = 0; k < LFP_PER_STEP; ++k) {
    int next;
    if (st->all_guards) { /* one range, no list: the next guard */
      const __u32 g = st->head[0];
      if (g >= st->end_pos[0]) return 2;
      st->head[0] = g + 1;
      next = (int)g;
    } else {
      next = lfp_next_candidate(st);
    }
    if (next < 0) return 2;
    const __u32 gi = (__u32)next;
    const union lfp_entry *ge = bank_entry(st->bank, gi >> 1);
    if (!ge) return 2;
    const struct lfp_guard *g = &ge->g[gi & 1];
    if (g->sublayer == st->done_sub || !guard_holds(g, &s->v)) continue;
    st->j = g->cond;
    st->in_filter = 1;
    return 0;
  }
  return 1;
}

/* One condition of the filter at st->j: 0 to go on, 1 when the walk is over, 2 when the filter is left
 * (a condition group failed, or it matched and the walk goes on). */
static __always_inline int eval_cond(struct scratch *s) {
  struct eval_state *st = &s->st;
  const union lfp_entry *e = bank_entry(st->bank, st->j);
  if (!e) return 1;
  const struct lfp_cond *c = &e->c;
  int m = cond_matches(c, &s->v);
  st->any |= m;
  if (c->flags & LFP_C_GROUP_END) {
    int ok = st->any;
    st->any = 0;
    if (!ok) return 2;
  }
  if (c->flags & LFP_C_RULE_END) {
    /* The filter matches: WFP's arbitration (engine/src/engine.cpp, FilterEngine::arbitrate). */
    if (c->action == LFP_A_USERSPACE) {
      st->out.defer = 1;
      return 1;
    }
    if (!st->out.decided || !st->out.hard) {
      st->out.decided = 1;
      st->out.permit = c->action == LFP_A_PERMIT;
      st->out.hard = c->hard;
      st->out.filter_id = c->filter_id;
      st->out.sublayer = c->sublayer;
    }
    st->done_sub = c->sublayer;
    /* After a hard decision only a callout (user space) could still veto. */
    if (st->out.hard && (c->flags & LFP_C_NO_DEFER_AFTER)) return 1;
    return 2;
  }
  st->j++;
  return 0;
}

static long eval_step(__u32 i, void *ctx) {
  __u32 slot = *(__u32 *)ctx;
  struct scratch *s = bpf_map_lookup_elem(&lfp_scratch, &slot);
  struct lfp_config *cfg = config();
  if (!s || !cfg) return 1;
  struct eval_state *st = &s->st;
  if (!st->started) return 1;
  int done = 0;
  if (!st->in_filter) {
    const int f = find_filter(s);
    done = f == 2;
  }
  if (st->in_filter && !done) {
    for (int k = 0; k < LFP_PER_STEP; ++k) {
      const int r = eval_cond(s);
      if (r == 0) continue;
      if (r == 1) done = 1;
      else st->in_filter = 0;
      break;
    }
  }
  /* Seqlock: what this step read is ours only if the policy did not change meanwhile (then lfp_eval
   * starts the walk again on the new one). */
  if (read_gen(cfg) != st->gen_bank) {
    st->started = 0;
    return 1;
  }
  return done;
}

/* (lfp_helpers.h declares it for the hooks.) */
__attribute__((noinline)) int lfp_eval(__u32 kl, const struct lfp_values *v, struct lfp_verdict *out) {
  if (!out) return 0;
  __builtin_memset(out, 0, sizeof(*out));
  out->defer = 1; /* unless evaluated below */
  __u32 slot;
  struct scratch *s = v && kl < LFP_KL_COUNT ? scratch_push(&slot) : 0;
  if (!s) return 0;
  s->v = *v;
  __builtin_memset(&s->st, 0, sizeof(s->st));
  s->st.kl = kl;
  /* A walk whose policy was replaced under it starts again once on the new one; should that one be
   * replaced too, user space decides (one bpf_loop call site a try: the verifier checks each). */
  struct lfp_config *cfg = config();
  if (cfg && eval_start(s, cfg)) {
    bpf_loop(1 << 23, eval_step, &slot, 0); /* (the most bpf_loop allows: a walk ends long before) */
    if (!s->st.started && eval_start(s, cfg)) {
      bpf_loop(1 << 23, eval_step, &slot, 0);
      if (!s->st.started) {
        __builtin_memset(&s->st.out, 0, sizeof(s->st.out));
        s->st.out.defer = 1;
      }
    }
  }
  *out = s->st.out;
  scratch_pop(slot);
  return 0;
}

/* ---- The equivalence test's way in: the same lfp_eval on values the test chooses ------------------ */

SEC("syscall")
int lfp_test_eval(struct lfp_test_ctx *ctx) {
  struct lfp_values v;
  struct lfp_verdict d;
  __builtin_memcpy(&v, &ctx->values, sizeof v);
  lfp_eval(ctx->kl, &v, &d);
  ctx->out = d;
  return 0;
}
