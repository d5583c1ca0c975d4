// SPDX-License-Identifier: GPL-2.0
/* LFP's ALE layers in the kernel: cgroup sock_addr, sock, sock_ops and skb hooks classify against the policy user space compiled into lfp_banks (lfp_kernel.h), with WFP's
 * arbitration. Decisions that need user space are reported as such (defer).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/socket.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lfp_kernel.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef SOL_SOCKET
#define SOL_SOCKET 1
#endif
#ifndef SO_MARK
#define SO_MARK 36
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* The few kernel types read through CO-RE (field offsets are relocated against the running kernel). */
struct super_block { unsigned int s_dev; } __attribute__((preserve_access_index));
struct inode { unsigned long i_ino; struct super_block *i_sb; } __attribute__((preserve_access_index));
struct file { struct inode *f_inode; } __attribute__((preserve_access_index));
struct mm_struct { struct file *exe_file; } __attribute__((preserve_access_index));
struct task_struct { struct mm_struct *mm; } __attribute__((preserve_access_index));

/* The policy: two banks (lfp_config.gen_bank says which is in force), each an array map of its own
 * that user space sizes to the policy it holds (BPF_F_INNER_MAP: banks of any size). */
struct lfp_bank {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(union lfp_entry)); /* (libbpf 1.1 cannot size a union named by __type here) */
};
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 2);
  __type(key, __u32);
  __array(values, struct lfp_bank);
} lfp_banks SEC(".maps");

/* Entry idx of bank `bank`; 0 past its end or when it has no map. */
static __always_inline const union lfp_entry *bank_entry(__u32 bank, __u32 idx) {
  void *m = bpf_map_lookup_elem(&lfp_banks, &bank);
  return m ? bpf_map_lookup_elem(m, &idx) : 0;
}

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct lfp_config);
} lfp_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct lfp_user_key);
  __type(value, __u8);
} lfp_user_sets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE); /* accepted sockets inherit their listener's */
  __type(key, int);
  __type(value, struct lfp_sock_attr);
} lfp_sk_attr SEC(".maps");

/* Outbound TCP flows: who connected, and the policy generation the flow was authorized under
 * (re-authorization). A slot is claimed at connect() and freed at close(), rather than socket storage
 * or a hash map entry: allocating storage cost a connection about 1 us here and a hash map's
 * insert and delete about 0.9 us, a slot a few loads and one compare-and-swap. A flow is not tracked
 * when the slots of its group all hold other open flows (counted). */
struct lfp_flow_slot {
  __u64 cookie; /* 0: free */
  /* The flow's record: the first LFP_FLOW_REC bytes of a struct lfp_sock_attr (an outbound flow has
   * no redirect fields here: a redirected one keeps them in its storage). One cache line a slot. */
  __u8 rec[LFP_FLOW_REC];
  __u64 sk; /* the socket's address: one a socket that never closed (no release) left is taken back */
};
_Static_assert(sizeof(struct lfp_flow_slot) == 64, "one cache line a slot");
static __always_inline struct lfp_sock_attr *slot_rec(struct lfp_flow_slot *e) { return (struct lfp_sock_attr *)e->rec; }
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, LFP_FLOWS);
  __type(key, __u32);
  __type(value, struct lfp_flow_slot);
} lfp_flows SEC(".maps");

/* Datagram flows already authorized (or refused): key socket cookie, remote, generation. */
struct dgram_key {
  __u64 cookie;
  __u64 gen;
  __u64 remote[2];
  __u16 port;
  __u8 dir;
  __u8 pad[5];
};
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct dgram_key);
  __type(value, __u8);
} lfp_dgram SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 22);
} lfp_events SEC(".maps");

/* ALE_CONNECT_REDIRECT targets, by filter id (written before the policy that uses them is flipped in). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct lfp_redirect);
} lfp_redirects SEC(".maps");

/* Redirected connections by their local address and port (what the proxy sees as its peer). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct lfp_redirect_key);
  __type(value, struct lfp_redirect_record);
} lfp_redirect_records SEC(".maps");

/* Sockets whose first packet waits for user space's decision, by slot (the low 16 bits of its mark). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, LFP_PENDING);
  __type(key, __u32);
  __type(value, struct lfp_pending);
} lfp_pending SEC(".maps");

/* Counters user space reads: [0] events lost (ring full), [1] decisions deferred to user space,
 * [2] outbound TCP flows not tracked for re-authorization (the slots of their group all taken). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} lfp_counters SEC(".maps");

static __always_inline void count(__u32 i) {
  __u64 *c = bpf_map_lookup_elem(&lfp_counters, &i);
  if (c) *c += 1;
}

static __always_inline struct lfp_config *config(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&lfp_cfg, &zero);
}

/* ---- Evaluation ---------------------------------------------------------------------------- */

/* gen_bank is written by user space with one 8-byte store; loads are not reordered on x86 (the
 * BPF backend of clang 14 has no acquire load). */
static __always_inline __u64 read_gen(struct lfp_config *cfg) {
  __u64 g = *(volatile __u64 *)&cfg->gen_bank;
  asm volatile("" ::: "memory");
  return g;
}

/* The evaluation's state lives in a per-CPU map value rather than on the stack: the verifier does
 * not track what a map value holds, so it checks the loop body once instead of once per combination
 * of known state (which took 0.4 s and 260k instructions per program). Slots by nesting depth: a
 * softirq hook may interrupt a process-context one on the same CPU. */
struct eval_state {
  __u64 gen_bank;
  __u32 kl;
  __u32 bank;    /* the bank in force when the walk started */
  __u32 j;       /* bank-relative */
  __u32 in_filter; /* 0: at the next candidate's guard; 1: at the conditions of the filter it let through */
  __u32 done_sub;
  __u32 any;
  __u32 started;
  __u32 ncur;    /* the lists being merged (the index's cursors) */
  __u32 all_guards; /* no index: cursor 0 runs over the layer's guards themselves */
  __u32 pos[LFP_CURSORS], end_pos[LFP_CURSORS]; /* bank-relative list elements */
  __u32 head[LFP_CURSORS];  /* each list's next order key; LFP_ORDER_END: the list is done */
  __u32 hguard[LFP_CURSORS]; /* and that filter's guard index */
  struct lfp_layer_hdr hdr __attribute__((aligned(8))); /* the layer's, while the lists are found (aligned: copied 8 bytes at a time) */
  struct lfp_probes probes[2] __attribute__((aligned(8))); /* the layer's shapes (two entries) */
  __u64 key[2][2];
  __u32 home;
  __u32 best, at;  /* lfp_next_candidate's least head and its cursor */
  __u32 pad;
  struct lfp_verdict out;
};
struct scratch {
  struct lfp_values v;
  struct eval_state st;
};
#define LFP_NEST 4
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LFP_NEST + 1); /* [LFP_NEST].st.j holds the depth */
  __type(key, __u32);
  __type(value, struct scratch);
} lfp_scratch SEC(".maps");

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
  st->home = (__u32)lfp_hash(st->key, i);
  for (__u32 j = 0; j < LFP_MAX_PROBE; ++j) {
    const union lfp_entry *e = bank_entry(st->bank, st->hdr.hfirst + ((st->home + j) & st->hdr.hmask));
    if (!e || !e->b.used) return 0;
    const struct lfp_bucket *bk = &e->b;
    if (bk->probe == i && bk->v[0][0] == st->key[0][0] && bk->v[0][1] == st->key[0][1] &&
        bk->v[1][0] == st->key[1][0] && bk->v[1][1] == st->key[1][1]) {
      add_cursor(st, bk->list, bk->count);
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

/* Takes the scratch slot of this nesting depth (a softirq hook may interrupt a process-context one on
 * the same CPU); 0 when every slot is taken. scratch_pop gives it back. */
static __always_inline struct scratch *scratch_push(__u32 *slot) {
  __u32 top = LFP_NEST;
  struct scratch *d = bpf_map_lookup_elem(&lfp_scratch, &top);
  if (!d) return 0;
  const __u32 s = d->st.j;
  struct scratch *sc = s < LFP_NEST ? bpf_map_lookup_elem(&lfp_scratch, &s) : 0;
  if (!sc) return 0;
  d->st.j = s + 1;
  *slot = s;
  return sc;
}

static __always_inline void scratch_pop(__u32 slot) {
  __u32 top = LFP_NEST;
  struct scratch *d = bpf_map_lookup_elem(&lfp_scratch, &top);
  if (d) d->st.j = slot;
}

/* A global function: the verifier checks it once, not at every call site. */
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

/* True when the active policy has no filter at `kl`: the hook skips the walk (most policies have
 * none at the redirect and flow-established layers, and a connect() should not pay for them). */
static __always_inline int layer_empty(__u32 kl) {
  struct lfp_config *cfg = config();
  if (!cfg) return 1;
  const __u64 gb = read_gen(cfg);
  if (gb == 0) return 1;
  const union lfp_entry *h = bank_entry(gb & 1, kl);
  return !h || h->h.count == 0;
}

/* ---- Attribution ----------------------------------------------------------------------------- */

static __always_inline void current_app(struct lfp_sock_attr *a) {
  /* A BTF pointer: the loads below are plain (fault-safe) loads, not a helper call each. */
  struct task_struct *t = bpf_get_current_task_btf();
  struct mm_struct *mm = t->mm;
  struct file *exe = mm ? mm->exe_file : 0;
  struct inode *ino = exe ? exe->f_inode : 0;
  if (ino) {
    a->app_ino = ino->i_ino;
    a->app_dev = ino->i_sb->s_dev;
  }
  __u64 ug = bpf_get_current_uid_gid();
  a->uid = (__u32)ug;
  a->gid = ug >> 32;
  a->pid = bpf_get_current_pid_tgid() >> 32;
}

static __always_inline void set_attr(struct lfp_values *v, const struct lfp_sock_attr *a) {
  v->v[LFP_S_APP][0] = a->app_dev;
  v->v[LFP_S_APP][1] = a->app_ino;
  v->uid = a->uid;
  v->gid = a->gid;
  v->present |= 1u << LFP_S_APP | 1u << LFP_S_USER;
}

static __always_inline void set_u(struct lfp_values *v, int slot, __u64 x) {
  if (slot >= 0 && slot < LFP_NSLOTS) {
    v->v[slot][0] = 0;
    v->v[slot][1] = x;
    v->present |= 1u << slot;
  }
}

static __always_inline __u64 be64_of(const __u32 *w) {
  return (__u64)bpf_ntohl(w[0]) << 32 | bpf_ntohl(w[1]);
}

static __always_inline void set_ip6(struct lfp_values *v, int slot, const __u32 *w /* network order */) {
  if (slot >= 0 && slot < LFP_NSLOTS) {
    v->v[slot][0] = be64_of(w);
    v->v[slot][1] = be64_of(w + 2);
    v->present |= 1u << slot;
  }
}

static __always_inline int ip4_loopback(__u32 host) { return (host >> 24) == 127; }
static __always_inline int ip6_loopback(const __u32 *w) { return !w[0] && !w[1] && !w[2] && w[3] == bpf_htonl(1); }
static __always_inline int ip6_any(const __u32 *w) { return !w[0] && !w[1] && !w[2] && !w[3]; }

/* A socket's own address (bind, listen): LOCAL_ADDR, and FLAGS with IS_WILDCARD_BIND when unbound. */
static __always_inline void set_bound_local(struct lfp_values *v, int family, const __u32 *local) {
  int wildcard;
  if (family == AF_INET) {
    set_u(v, LFP_S_LOCAL_ADDR, bpf_ntohl(local[0]));
    wildcard = local[0] == 0;
  } else {
    set_ip6(v, LFP_S_LOCAL_ADDR, local);
    wildcard = ip6_any(local);
  }
  set_u(v, LFP_S_FLAGS, wildcard ? 0x8 /* IS_WILDCARD_BIND */ : 0);
}

/* ---- Events ---------------------------------------------------------------------------------- */

/* A filled event the caller submits (0 when the ring is full: counted). */
static __always_inline struct lfp_event *new_event(__u32 kl, const struct lfp_verdict *d, const struct lfp_sock_attr *a,
                                                   int family, __u8 proto, const __u32 *local, __u16 lport,
                                                   const __u32 *remote, __u16 rport, __u32 ifindex, int blocked,
                                                   __u8 packet_dir) {
  struct lfp_event *e = bpf_ringbuf_reserve(&lfp_events, sizeof(*e), 0);
  if (!e) {
    count(0);
    return 0;
  }
  __builtin_memset(e, 0, sizeof(*e));
  e->boot_ns = bpf_ktime_get_boot_ns();
  e->filter_id = d->filter_id;
  e->sublayer = d->sublayer;
  e->permit = !blocked;
  e->hard = d->hard;
  e->defer = d->defer;
  e->kl = kl;
  e->family = family == AF_INET6 ? 6 : 4;
  e->protocol = proto;
  if (a) { /* packets (lfp_packet.h) have no creator */
    e->app_dev = a->app_dev;
    e->app_ino = a->app_ino;
    e->pid = a->pid;
    e->uid = a->uid;
    e->gid = a->gid;
  }
  e->ifindex = ifindex;
  e->packet_dir = packet_dir;
  e->local_port = lport;
  e->remote_port = rport;
  if (local) __builtin_memcpy(e->local_addr, local, 16);
  if (remote) __builtin_memcpy(e->remote_addr, remote, 16);
  return e;
}

/* Every block, and every permit with log_allows. */
static __always_inline void report_event(__u32 kl, const struct lfp_verdict *d, const struct lfp_sock_attr *a,
                                         int family, __u8 proto, const __u32 *local, __u16 lport,
                                         const __u32 *remote, __u16 rport, __u32 ifindex, int blocked, __u8 packet_dir) {
  struct lfp_config *cfg = config();
  if (!blocked && !(cfg && cfg->log_allows)) return;
  struct lfp_event *e = new_event(kl, d, a, family, proto, local, lport, remote, rport, ifindex, blocked, packet_dir);
  if (e) bpf_ringbuf_submit(e, 0);
}

static __always_inline void report(__u32 kl, const struct lfp_verdict *d, const struct lfp_sock_attr *a, int family,
                                   __u8 proto, const __u32 *local, __u16 lport, const __u32 *remote, __u16 rport,
                                   __u32 ifindex, int blocked) {
  report_event(kl, d, a, family, proto, local, lport, remote, rport, ifindex, blocked, 0);
}

/* The hook's answer: 1 allow, 0 refuse. A deferred decision follows --fail while user space has not
 * taken over the flow (the NFQUEUE path). */
static __always_inline int allowed(const struct lfp_verdict *d) {
  if (d->defer) {
    count(1);
    struct lfp_config *cfg = config();
    return !(cfg && cfg->fail_closed);
  }
  return !d->decided || d->permit;
}

/* The datagram cache: the answer for (socket, remote, direction) under the current policy generation.
 * Returns 0 or 1 on a hit, -1 on a miss (then dk is ready for dgram_store). */
static __always_inline int dgram_lookup(struct dgram_key *dk, __u64 cookie, const struct lfp_values *v, __u16 rport,
                                        __u8 dir) {
  struct lfp_config *cfg = config();
  if (!cfg) return -1;
  dk->cookie = cookie;
  dk->gen = cfg->gen_bank;
  dk->remote[0] = v->v[LFP_S_REMOTE_ADDR][0];
  dk->remote[1] = v->v[LFP_S_REMOTE_ADDR][1];
  dk->port = rport;
  dk->dir = dir;
  __u8 *seen = bpf_map_lookup_elem(&lfp_dgram, dk);
  return seen ? (*seen ? 1 : 0) : -1;
}

static __always_inline void dgram_store(const struct dgram_key *dk, const struct lfp_verdict *d, int ok) {
  if (d->defer) return; /* user space decides each time */
  __u8 val = ok;
  bpf_map_update_elem(&lfp_dgram, dk, &val, BPF_ANY);
}

/* ---- ALE_AUTH_CONNECT: connect() and the first datagram to a remote ------------------------------ */

/* Hands a decision to user space: records who created the socket in a pending slot and marks the
 * socket with it, so that lfpd's NFQUEUE rule queues the flow's first packet. False when lfpd does
 * not read the queue (then --fail applies at once). */
static __always_inline int to_userspace(struct bpf_sock_addr *ctx, __u32 kl, const struct lfp_sock_attr *a) {
  struct lfp_config *cfg = config();
  if (!cfg || !cfg->userspace) return 0;
  /* Socket cookies count up: the low bits are distinct for the last LFP_PENDING sockets. */
  const __u64 cookie = bpf_get_socket_cookie(ctx);
  __u32 slot = cookie & (LFP_PENDING - 1);
  struct lfp_pending *p = bpf_map_lookup_elem(&lfp_pending, &slot);
  if (!p) return 0;
  p->app_dev = a->app_dev;
  p->app_ino = a->app_ino;
  p->cookie = cookie;
  p->pid = a->pid;
  p->uid = a->uid;
  p->gid = a->gid;
  p->kl = kl;
  int mark = LFP_MARK_BASE | slot;
  if (bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof mark)) return 0;
  count(1);
  return 1;
}

/* ---- Who created a socket ----------------------------------------------------------------------
 * A socket's creator is kept in its storage where hooks that run outside its process need it: a UDP
 * socket's when it first binds, connects or sends (any of which it does before it can receive), a TCP
 * listener's when it binds or listens (the connections it accepts inherit it). A TCP connect()'s flow
 * is in lfp_flows instead. (No sock_create hook: it would run on every socket, mostly for nothing.) */
static __always_inline void keep_creator(struct bpf_sock *sk) {
  struct lfp_sock_attr *s = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (s && !s->pid) current_app(s); /* (new: no process has pid 0) */
}

/* A socket's address in the kernel, as a number (0: none). The verifier lets a privileged program
 * store a pointer in a map and read it back as a number; a program that interrupts this one on the
 * same CPU may use the buffer in between, so the number is checked against the pointer. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} lfp_sk_addr SEC(".maps");

static __always_inline __u64 sock_addr(const void *sk) {
  __u32 zero = 0;
  __u64 *b = bpf_map_lookup_elem(&lfp_sk_addr, &zero);
  if (!b || !sk) return 0;
  *(const void *volatile *)b = sk;
  const __u64 n = *(volatile __u64 *)b;
  return n == (__u64)sk ? n : 0;
}

/* Where a flow's slots are: the LFP_FLOW_WAYS slots of the group its socket's address names. The
 * kernel hands a new socket the memory of the one closed last, so a connect()/close() loop keeps
 * taking the slot it just gave back, in cache (the cookie, which counts up, would walk the whole
 * table: a cold cache line a connection). */
struct flow_at {
  __u64 sk;
  __u32 group;
};
static __always_inline struct flow_at flow_at(const void *sk) {
  struct flow_at f = {.sk = sock_addr(sk)};
  /* (a TCP socket is over 2 KB: the low bits say nothing) */
  f.group = (__u32)(((f.sk >> 11) * 0x9E3779B97F4A7C15ull) >> 40) & (LFP_FLOWS / LFP_FLOW_WAYS - 1);
  return f;
}

static __always_inline struct lfp_flow_slot *flow_slot(const struct flow_at *f, __u32 way) {
  __u32 i = f->group * LFP_FLOW_WAYS + way;
  return bpf_map_lookup_elem(&lfp_flows, &i);
}

/* The slot of a tracked outbound flow (0: none). */
static __always_inline struct lfp_flow_slot *flow_find(const void *sk, __u64 cookie) {
  const struct flow_at f = flow_at(sk);
  if (!f.sk) return 0;
  for (__u32 w = 0; w < LFP_FLOW_WAYS; ++w) {
    struct lfp_flow_slot *e = flow_slot(&f, w);
    if (e && e->cookie == cookie) return e;
  }
  return 0;
}

static __always_inline struct lfp_sock_attr *flow_record(const void *sk, __u64 cookie) {
  struct lfp_flow_slot *e = flow_find(sk, cookie);
  return e ? slot_rec(e) : 0;
}

/* A slot for an outbound TCP flow: the first of its group that holds it already (connect() again),
 * is free, or was left by a socket at this same address (so gone without a release: one created
 * before the hooks were attached). 0 when all hold other open flows (counted: the record goes in the
 * socket's storage). */
static __always_inline struct lfp_flow_slot *flow_claim(const void *sk, __u64 cookie) {
  const struct flow_at f = flow_at(sk);
  if (f.sk) {
    for (__u32 w = 0; w < LFP_FLOW_WAYS; ++w) {
      struct lfp_flow_slot *e = flow_slot(&f, w);
      if (!e) break;
      const __u64 seen = e->cookie;
      const __u64 expect = seen && seen != cookie && e->sk == f.sk ? seen : 0;
      const __u64 held = __sync_val_compare_and_swap(&e->cookie, expect, cookie);
      if (held == expect || held == cookie) {
        e->sk = f.sk;
        return e;
      }
    }
  }
  count(2);
  return 0;
}

/* 1 allow, 0 refuse. `a` is who connects, filled here: for a TCP connect() it is the flow's record
 * in its slot (lfp_flows), kept with the generation the decision is made under. */
static __always_inline int auth_connect(struct bpf_sock_addr *ctx, int family, int dgram_cache, struct lfp_sock_attr *a) {
  struct lfp_values v = {};
  struct lfp_verdict d;
  __u32 remote[4] = {}, local[4] = {};
  __u8 proto = ctx->protocol;
  __u32 kl = family == AF_INET ? LFP_KL_CONNECT_V4 : LFP_KL_CONNECT_V6;
  __u16 rport = bpf_ntohs(ctx->user_port), lport = 0;
  int loop;

  struct lfp_config *cfg = config();
  current_app(a);
  /* The generation the decision is made under, read before the walk: a policy flipped during it
   * makes the flow re-authorized. */
  a->auth_gen = cfg ? read_gen(cfg) : 0;
  /* No filter to meet (and no permit to log): the connect costs nothing more. */
  if (cfg && !cfg->log_allows && layer_empty(kl) &&
      (dgram_cache || layer_empty(family == AF_INET ? LFP_KL_REDIRECT_V4 : LFP_KL_REDIRECT_V6)))
    return 1;
  set_attr(&v, a);
  set_u(&v, LFP_S_PROTOCOL, proto);
  set_u(&v, LFP_S_REMOTE_PORT, rport);
  if (family == AF_INET) {
    remote[0] = ctx->user_ip4;
    set_u(&v, LFP_S_REMOTE_ADDR, bpf_ntohl(remote[0]));
    loop = ip4_loopback(bpf_ntohl(remote[0]));
  } else {
    remote[0] = ctx->user_ip6[0];
    remote[1] = ctx->user_ip6[1];
    remote[2] = ctx->user_ip6[2];
    remote[3] = ctx->user_ip6[3];
    set_ip6(&v, LFP_S_REMOTE_ADDR, remote);
    loop = ip6_loopback(remote);
  }
  set_u(&v, LFP_S_FLAGS, loop ? 0x1 /* IS_LOOPBACK */ : 0);
  /* The local address and port, when the socket is bound already. */
  struct bpf_sock *sk = ctx->sk;
  if (sk) {
    lport = sk->src_port;
    if (lport) set_u(&v, LFP_S_LOCAL_PORT, lport);
    if (family == AF_INET && sk->src_ip4) {
      local[0] = sk->src_ip4;
      set_u(&v, LFP_S_LOCAL_ADDR, bpf_ntohl(local[0]));
    } else if (family == AF_INET6) {
      local[0] = sk->src_ip6[0];
      local[1] = sk->src_ip6[1];
      local[2] = sk->src_ip6[2];
      local[3] = sk->src_ip6[3];
      if (!ip6_any(local)) set_ip6(&v, LFP_S_LOCAL_ADDR, local);
    }
  }

  struct dgram_key dk = {};
  if (dgram_cache) {
    int hit = dgram_lookup(&dk, bpf_get_socket_cookie(ctx), &v, rport, 0);
    if (hit >= 0) return hit;
  } else if (sk && !layer_empty(family == AF_INET ? LFP_KL_REDIRECT_V4 : LFP_KL_REDIRECT_V6)) {
    /* ALE_CONNECT_REDIRECT first: a connect() may be sent elsewhere, then authorized there. */
    lfp_eval(family == AF_INET ? LFP_KL_REDIRECT_V4 : LFP_KL_REDIRECT_V6, &v, &d);
    if (d.decided && !d.permit) {
      report(family == AF_INET ? LFP_KL_REDIRECT_V4 : LFP_KL_REDIRECT_V6, &d, a, family, proto, local, lport, remote,
             rport, 0, 1);
      return 0;
    }
    struct lfp_redirect *t = d.decided && d.filter_id ? bpf_map_lookup_elem(&lfp_redirects, &d.filter_id) : 0;
    struct lfp_sock_attr *ap = t ? bpf_sk_storage_get(&lfp_sk_attr, sk, 0, BPF_SK_STORAGE_GET_F_CREATE) : 0;
    if (t && ap) {
      __builtin_memcpy(ap, a, LFP_FLOW_REC); /* (`a` may be a slot's record: only that much) */
      ap->redirected = 1;
      ap->redirect_filter = d.filter_id;
      ap->orig_port = rport;
      __builtin_memcpy(ap->orig_addr, remote, 16);
      rport = t->port;
      ctx->user_port = bpf_htons(t->port);
      if (family == AF_INET) {
        __builtin_memcpy(&remote[0], t->addr, 4);
        ctx->user_ip4 = remote[0];
        set_u(&v, LFP_S_REMOTE_ADDR, bpf_ntohl(remote[0]));
      } else {
        __builtin_memcpy(remote, t->addr, 16);
        ctx->user_ip6[0] = remote[0];
        ctx->user_ip6[1] = remote[1];
        ctx->user_ip6[2] = remote[2];
        ctx->user_ip6[3] = remote[3];
        set_ip6(&v, LFP_S_REMOTE_ADDR, remote);
      }
      set_u(&v, LFP_S_REMOTE_PORT, rport);
    }
  }
  lfp_eval(kl, &v, &d);
  int ok = 1;
  if (!(d.defer && to_userspace(ctx, kl, a))) { /* (else the queue decides on the first packet) */
    ok = allowed(&d);
    report(kl, &d, a, family, proto, local, lport, remote, rport, 0, !ok);
    if (dgram_cache) dgram_store(&dk, &d, ok);
  }
  return ok;
}

static __always_inline int connect_hook(struct bpf_sock_addr *ctx, int family, int dgram_cache) {
  struct lfp_sock_attr local = {}, *a = &local;
  struct lfp_flow_slot *slot = 0;
  if (ctx->protocol == IPPROTO_UDP && ctx->sk) keep_creator(ctx->sk);
  if (!dgram_cache && ctx->protocol == IPPROTO_TCP) {
    slot = flow_claim(ctx->sk, bpf_get_socket_cookie(ctx));
    if (slot) {
      __builtin_memset(slot->rec, 0, LFP_FLOW_REC);
      a = slot_rec(slot);
    } else if (ctx->sk) { /* its group is full: the record goes in its storage (dearer) */
      struct lfp_sock_attr *s = bpf_sk_storage_get(&lfp_sk_attr, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
      if (s) a = s;
    }
    a->flow = LFP_FLOW_OUTBOUND;
  }
  const int ok = auth_connect(ctx, family, dgram_cache, a);
  if (!ok) {
    if (slot) slot->cookie = 0; /* refused: no flow */
    a->flow = 0;
  }
  return ok;
}

SEC("cgroup/connect4")
int lfp_connect4(struct bpf_sock_addr *ctx) { return connect_hook(ctx, AF_INET, 0); }

SEC("cgroup/connect6")
int lfp_connect6(struct bpf_sock_addr *ctx) { return connect_hook(ctx, AF_INET6, 0); }

SEC("cgroup/sendmsg4")
int lfp_sendmsg4(struct bpf_sock_addr *ctx) { return connect_hook(ctx, AF_INET, 1); }

SEC("cgroup/sendmsg6")
int lfp_sendmsg6(struct bpf_sock_addr *ctx) { return connect_hook(ctx, AF_INET6, 1); }

/* ---- ALE_BIND_REDIRECT: bind() ---------------------------------------------------------------------
 * An explicit bind() may be sent to another local address (and port) before it happens; a BLOCK
 * here refuses it. ALE_RESOURCE_ASSIGNMENT (post_bind) then sees the address the socket got. */

static __always_inline int bind_redirect(struct bpf_sock_addr *ctx, int family) {
  struct lfp_values v = {};
  struct lfp_sock_attr a = {};
  struct lfp_verdict d;
  __u32 local[4] = {};
  const __u32 kl = family == AF_INET ? LFP_KL_BIND_REDIRECT_V4 : LFP_KL_BIND_REDIRECT_V6;
  const __u16 lport = bpf_ntohs(ctx->user_port);
  if (layer_empty(kl)) return 1;
  current_app(&a);
  set_attr(&v, &a);
  set_u(&v, LFP_S_PROTOCOL, ctx->protocol);
  set_u(&v, LFP_S_LOCAL_PORT, lport);
  if (family == AF_INET) {
    local[0] = ctx->user_ip4;
  } else {
    local[0] = ctx->user_ip6[0];
    local[1] = ctx->user_ip6[1];
    local[2] = ctx->user_ip6[2];
    local[3] = ctx->user_ip6[3];
  }
  set_bound_local(&v, family, local);
  lfp_eval(kl, &v, &d);
  if (d.decided && !d.permit) {
    report(kl, &d, &a, family, ctx->protocol, local, lport, 0, 0, 0, 1);
    return 0;
  }
  struct lfp_redirect *t = d.decided && d.filter_id ? bpf_map_lookup_elem(&lfp_redirects, &d.filter_id) : 0;
  if (!t) return 1;
  if (t->port) ctx->user_port = bpf_htons(t->port);
  if (family == AF_INET) {
    __u32 a4;
    __builtin_memcpy(&a4, t->addr, 4);
    ctx->user_ip4 = a4;
  } else {
    __u32 a6[4];
    __builtin_memcpy(a6, t->addr, 16);
    ctx->user_ip6[0] = a6[0];
    ctx->user_ip6[1] = a6[1];
    ctx->user_ip6[2] = a6[2];
    ctx->user_ip6[3] = a6[3];
  }
  return 1;
}

SEC("cgroup/bind4")
int lfp_bind4(struct bpf_sock_addr *ctx) { return bind_redirect(ctx, AF_INET); }

SEC("cgroup/bind6")
int lfp_bind6(struct bpf_sock_addr *ctx) { return bind_redirect(ctx, AF_INET6); }

/* ---- ALE_ENDPOINT_CLOSURE and ALE_RESOURCE_RELEASE: the socket is released -------------------------
 * Notification layers: the socket is going away, nothing is refused. A socket with a remote (TCP, a
 * connected UDP socket) is an endpoint closed, else one that holds a port releases it. The hook
 * reports to lfpd only when the layer's callouts must be called (a filter needing user space was
 * reached) or permits are logged; lfpd then classifies there with the engine (notify.hpp). */

/* sock_release's context may not read src_ip4/6 or src_port (the kernel allows them at post_bind
 * only), so the addresses come from the socket itself through CO-RE. The local port is inet_sport:
 * a TCP connection gone to TIME_WAIT has already given its bound port (inet_num) to the timewait
 * socket. */
struct sock_common {
  __be32 skc_daddr;
  __be32 skc_rcv_saddr;
  __be16 skc_dport;
  unsigned short skc_family;
  volatile unsigned char skc_state;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));
struct sock {
  struct sock_common __sk_common;
  int sk_rx_dst_ifindex;
} __attribute__((preserve_access_index));
struct inet_sock { __be16 inet_sport; } __attribute__((preserve_access_index));

/* A packet's addresses and ports, seen from the socket: local and remote. */
struct pkt {
  __u32 local[4], remote[4];
  __u16 lport, rport;
  __u8 proto;
  __u8 syn_only;
  int family;
};

/* A socket's own addresses and ports (TCP or UDP). */
static __always_inline void sock_pkt(const struct sock *sk, int v4, __u8 proto, struct pkt *p) {
  p->family = v4 ? AF_INET : AF_INET6;
  p->proto = proto;
  p->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  p->lport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
  if (v4) {
    p->local[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
    p->remote[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
  } else {
    bpf_core_read(p->local, sizeof p->local, &sk->__sk_common.skc_v6_rcv_saddr);
    bpf_core_read(p->remote, sizeof p->remote, &sk->__sk_common.skc_v6_daddr);
  }
}

static __always_inline void packet_values(struct lfp_values *v, const struct pkt *p, __u32 ifindex, __u32 flags) {
  int loop;
  set_u(v, LFP_S_PROTOCOL, p->proto);
  set_u(v, LFP_S_LOCAL_PORT, p->lport);
  set_u(v, LFP_S_REMOTE_PORT, p->rport);
  if (ifindex) set_u(v, LFP_S_IFACE, ifindex);
  if (p->family == AF_INET) {
    set_u(v, LFP_S_LOCAL_ADDR, bpf_ntohl(p->local[0]));
    set_u(v, LFP_S_REMOTE_ADDR, bpf_ntohl(p->remote[0]));
    loop = ip4_loopback(bpf_ntohl(p->remote[0]));
  } else {
    set_ip6(v, LFP_S_LOCAL_ADDR, p->local);
    set_ip6(v, LFP_S_REMOTE_ADDR, p->remote);
    loop = ip6_loopback(p->remote);
  }
  set_u(v, LFP_S_FLAGS, (loop ? 0x1 /* IS_LOOPBACK */ : 0) | flags);
}


SEC("cgroup/sock_release")
int lfp_sock_release(struct bpf_sock *ctx) {
  const int family = ctx->family;
  const __u8 proto = ctx->protocol;
  if ((family != AF_INET && family != AF_INET6) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP)) return 1;
  const int v4 = family == AF_INET;
  struct lfp_sock_attr a = {}, *ap = 0;
  /* An outbound flow ends here for re-authorization: its slot is free again (only this socket's
   * release frees it), its record kept for the closure layer if that holds filters. */
  struct lfp_flow_slot *slot = proto == IPPROTO_TCP ? flow_find(ctx, bpf_get_socket_cookie(ctx)) : 0;
  if (layer_empty(v4 ? LFP_KL_CLOSURE_V4 : LFP_KL_CLOSURE_V6) && layer_empty(v4 ? LFP_KL_RELEASE_V4 : LFP_KL_RELEASE_V6)) {
    if (slot) slot->cookie = 0;
    return 1; /* what almost every close() costs: two lookups (and a TCP flow's removal) */
  }
  if (slot) {
    __builtin_memcpy(&a, slot->rec, LFP_FLOW_REC);
    ap = &a;
    slot->cookie = 0;
  }
  struct pkt p = {};
  sock_pkt((const struct sock *)ctx, v4, proto, &p); /* (the context is the kernel's struct sock) */
  const __u32 kl = p.rport ? (v4 ? LFP_KL_CLOSURE_V4 : LFP_KL_CLOSURE_V6) : (v4 ? LFP_KL_RELEASE_V4 : LFP_KL_RELEASE_V6);
  if (layer_empty(kl)) return 1;
  if (!p.rport && !p.lport) return 1; /* never bound: it held nothing */

  struct lfp_values v = {};
  struct lfp_verdict d;
  if (!ap) ap = bpf_sk_storage_get(&lfp_sk_attr, ctx, 0, 0);
  if (!ap) { /* created before the hooks were attached: the process closing it */
    current_app(&a);
    ap = &a;
  }
  set_attr(&v, ap);
  if (p.rport) {
    packet_values(&v, &p, 0, 0);
  } else {
    set_u(&v, LFP_S_PROTOCOL, proto);
    if (p.lport) set_u(&v, LFP_S_LOCAL_PORT, p.lport);
    set_bound_local(&v, family, p.local);
  }
  lfp_eval(kl, &v, &d);
  struct lfp_config *cfg = config();
  if (!d.defer && !(d.decided && cfg && cfg->log_allows)) return 1;
  struct lfp_event *e = new_event(kl, &d, ap, family, proto, p.local, p.lport, p.rport ? p.remote : 0, p.rport, 0, 0, 0);
  if (e) {
    e->cookie = bpf_get_socket_cookie(ctx);
    e->flags = v.v[LFP_S_FLAGS][1];
    bpf_ringbuf_submit(e, 0);
  }
  return 1;
}

/* ---- ALE_RESOURCE_ASSIGNMENT: bind() --------------------------------------------------------------- */

static __always_inline int resource_assignment(struct bpf_sock *sk, int family) {
  struct lfp_values v = {};
  struct lfp_sock_attr a = {};
  struct lfp_verdict d;
  __u32 local[4] = {};
  __u32 kl = family == AF_INET ? LFP_KL_RESOURCE_V4 : LFP_KL_RESOURCE_V6;

  current_app(&a);
  set_attr(&v, &a);
  set_u(&v, LFP_S_PROTOCOL, sk->protocol);
  set_u(&v, LFP_S_LOCAL_PORT, sk->src_port);
  if (family == AF_INET) {
    local[0] = sk->src_ip4;
  } else {
    local[0] = sk->src_ip6[0];
    local[1] = sk->src_ip6[1];
    local[2] = sk->src_ip6[2];
    local[3] = sk->src_ip6[3];
  }
  set_bound_local(&v, family, local);
  lfp_eval(kl, &v, &d);
  int ok = allowed(&d);
  report(kl, &d, &a, family, sk->protocol, local, sk->src_port, 0, 0, 0, !ok);
  if (ok && (sk->protocol == IPPROTO_TCP || sk->protocol == IPPROTO_UDP)) { /* see keep_creator */
    struct lfp_sock_attr *s = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (s) *s = a;
  }
  return ok;
}

SEC("cgroup/post_bind4")
int lfp_post_bind4(struct bpf_sock *sk) { return resource_assignment(sk, AF_INET); }

SEC("cgroup/post_bind6")
int lfp_post_bind6(struct bpf_sock *sk) { return resource_assignment(sk, AF_INET6); }

/* Cuts a flow: its packets are dropped from now on. The mark also goes in the socket's storage: an
 * outbound flow's record goes with its slot at close(), while data it queued may still leave. */
static __always_inline void cut_flow(struct bpf_sock *sk, struct lfp_sock_attr *a) {
  a->cut = 1;
  struct lfp_sock_attr *s = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (s) s->cut = 1;
}

/* ---- ALE_AUTH_LISTEN: listen() ---------------------------------------------------------------------
 * This kernel refuses BPF LSM programs (lockdown), and no cgroup hook can fail listen(). So the
 * decision is made in sock_ops when the socket starts listening, kept in its storage, and a listener
 * that was refused never completes a connection: lfp_ingress drops every SYN it gets. */

/* ALE_FLOW_ESTABLISHED: the TCP flow is up. A BLOCK here cuts it (every later packet is dropped),
 * as WFP drops a flow blocked at this layer. */
static __always_inline void flow_established(struct bpf_sock_ops *ops, struct lfp_sock_attr *ap) {
  struct lfp_values v = {};
  struct lfp_verdict d;
  __u32 local[4] = {}, remote[4] = {};
  const int family = ops->family;
  const __u32 kl = family == AF_INET ? LFP_KL_FLOW_V4 : LFP_KL_FLOW_V6;
  const __u16 lport = ops->local_port, rport = bpf_ntohl(ops->remote_port) & 0xffff;
  if (layer_empty(kl)) return;
  set_attr(&v, ap);
  set_u(&v, LFP_S_PROTOCOL, IPPROTO_TCP);
  set_u(&v, LFP_S_LOCAL_PORT, lport);
  set_u(&v, LFP_S_REMOTE_PORT, rport);
  set_u(&v, LFP_S_DIRECTION, ap->flow == LFP_FLOW_INBOUND ? 1 : 0);
  if (family == AF_INET) {
    local[0] = ops->local_ip4;
    remote[0] = ops->remote_ip4;
    set_u(&v, LFP_S_LOCAL_ADDR, bpf_ntohl(local[0]));
    set_u(&v, LFP_S_REMOTE_ADDR, bpf_ntohl(remote[0]));
    set_u(&v, LFP_S_FLAGS, ip4_loopback(bpf_ntohl(remote[0])) ? 0x1 : 0);
  } else {
    local[0] = *(volatile __u32 *)&ops->local_ip6[0];
    local[1] = *(volatile __u32 *)&ops->local_ip6[1];
    local[2] = *(volatile __u32 *)&ops->local_ip6[2];
    local[3] = *(volatile __u32 *)&ops->local_ip6[3];
    remote[0] = *(volatile __u32 *)&ops->remote_ip6[0];
    remote[1] = *(volatile __u32 *)&ops->remote_ip6[1];
    remote[2] = *(volatile __u32 *)&ops->remote_ip6[2];
    remote[3] = *(volatile __u32 *)&ops->remote_ip6[3];
    set_ip6(&v, LFP_S_LOCAL_ADDR, local);
    set_ip6(&v, LFP_S_REMOTE_ADDR, remote);
    set_u(&v, LFP_S_FLAGS, ip6_loopback(remote) ? 0x1 : 0);
  }
  lfp_eval(kl, &v, &d);
  /* A decision that needs user space follows --fail here: the flow's first packet has gone. */
  int ok = allowed(&d);
  if (!ok && ops->sk) cut_flow(ops->sk, ap);
  report(kl, &d, ap, family, IPPROTO_TCP, local, lport, remote, rport, 0, !ok);
}

SEC("sockops")
int lfp_sockops(struct bpf_sock_ops *ops) {
  const int active = ops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB;
  if (active || ops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
    struct bpf_sock *sk = ops->sk;
    if (!sk) return 1;
    /* Who the flow belongs to: an accepted connection has its listener's storage (cloned, with the
     * generation its SYN was authorized under); a connect()'s flow is in lfp_flows. */
    struct lfp_sock_attr *ap = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, 0), *f = ap;
    if (active) {
      f = flow_record(sk, bpf_get_socket_cookie(ops));
      if (!f) f = ap;
    }
    if (!f) return 1;
    if (!active) f->flow = LFP_FLOW_INBOUND;
    flow_established(ops, f);
    if (active && ap && ap->redirected) {
      /* The proxy accepts this connection with our local address and port as its peer. */
      struct lfp_redirect_key k = {};
      struct lfp_redirect_record r = {};
      k.family = ops->family == AF_INET6 ? 6 : 4;
      k.port = ops->local_port;
      __u32 l[4] = {};
      if (ops->family == AF_INET6) {
        /* One 4-byte context read each (the verifier refuses a merged 8-byte one). */
        l[0] = *(volatile __u32 *)&ops->local_ip6[0];
        l[1] = *(volatile __u32 *)&ops->local_ip6[1];
        l[2] = *(volatile __u32 *)&ops->local_ip6[2];
        l[3] = *(volatile __u32 *)&ops->local_ip6[3];
      } else {
        l[0] = ops->local_ip4;
      }
      __builtin_memcpy(k.addr, l, 16);
      __builtin_memcpy(r.orig_addr, ap->orig_addr, 16);
      r.orig_port = ap->orig_port;
      r.pid = ap->pid;
      r.uid = ap->uid;
      r.gid = ap->gid;
      r.app_dev = ap->app_dev;
      r.app_ino = ap->app_ino;
      r.filter_id = ap->redirect_filter;
      bpf_map_update_elem(&lfp_redirect_records, &k, &r, BPF_ANY);
    }
    return 1;
  }
  if (ops->op != BPF_SOCK_OPS_TCP_LISTEN_CB) return 1;
  struct bpf_sock *sk = ops->sk;
  if (!sk) return 1;
  struct lfp_sock_attr *ap = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, 0);
  if (!ap) { /* listen() without bind(): its creator is the process listening (in listen()'s context) */
    ap = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!ap) return 1;
    current_app(ap);
  }
  struct lfp_values v = {};
  struct lfp_verdict d;
  __u32 local[4] = {};
  int family = ops->family;
  __u16 port = ops->local_port;
  __u32 kl = family == AF_INET ? LFP_KL_LISTEN_V4 : LFP_KL_LISTEN_V6;

  set_attr(&v, ap);
  set_u(&v, LFP_S_LOCAL_PORT, port);
  if (family == AF_INET) {
    local[0] = ops->local_ip4;
  } else {
    local[0] = ops->local_ip6[0];
    local[1] = ops->local_ip6[1];
    local[2] = ops->local_ip6[2];
    local[3] = ops->local_ip6[3];
  }
  set_bound_local(&v, family, local);
  lfp_eval(kl, &v, &d);
  int ok = allowed(&d);
  ap->listen_refused = !ok;
  report(kl, &d, ap, family, IPPROTO_TCP, local, port, 0, 0, 0, !ok);
  return 1;
}

/* ---- Packets: ALE_AUTH_RECV_ACCEPT and re-authorization ------------------------------------------- */

static __always_inline int parse(struct __sk_buff *skb, int inbound, struct pkt *p) {
  __u32 off;
  __u32 *src = inbound ? p->remote : p->local, *dst = inbound ? p->local : p->remote;
  if (skb->protocol == bpf_htons(0x0800)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof ip)) return 0;
    p->proto = ip.protocol;
    off = ip.ihl * 4;
    src[0] = ip.saddr;
    dst[0] = ip.daddr;
    p->family = AF_INET;
  } else if (skb->protocol == bpf_htons(0x86DD)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof ip6)) return 0;
    p->proto = ip6.nexthdr; /* extension headers: not parsed (such packets are classified as their header) */
    off = sizeof ip6;
    __builtin_memcpy(src, &ip6.saddr, 16);
    __builtin_memcpy(dst, &ip6.daddr, 16);
    p->family = AF_INET6;
  } else {
    return 0;
  }
  __u16 sport, dport;
  if (p->proto == IPPROTO_TCP) {
    struct tcphdr th;
    if (bpf_skb_load_bytes(skb, off, &th, sizeof th)) return 0;
    sport = th.source, dport = th.dest;
    p->syn_only = th.syn && !th.ack;
  } else if (p->proto == IPPROTO_UDP) {
    struct udphdr uh;
    if (bpf_skb_load_bytes(skb, off, &uh, sizeof uh)) return 0;
    sport = uh.source, dport = uh.dest;
  } else {
    return 0;
  }
  p->lport = bpf_ntohs(inbound ? dport : sport);
  p->rport = bpf_ntohs(inbound ? sport : dport);
  return 1;
}

/* A flow cut (ALE_FLOW_ESTABLISHED blocked it) sends nothing more. Attached only while the
 * ALE_FLOW_ESTABLISHED layers hold filters: re-authorization walks the sockets instead (lfp_reauth). */
static __always_inline int cut(struct bpf_sock *sk) {
  const struct lfp_sock_attr *a = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, 0);
  return a && a->cut;
}

SEC("cgroup_skb/egress")
int lfp_egress(struct __sk_buff *skb) {
  struct bpf_sock *sk = skb->sk;
  if (!sk) return 1;
  sk = bpf_sk_fullsock(sk);
  return !(sk && sk->protocol == IPPROTO_TCP && cut(sk));
}

/* ALE_AUTH_RECV_ACCEPT: an inbound TCP SYN to a listener, or a datagram from a new remote; and a cut
 * flow's packets. Attached only while ALE_AUTH_RECV_ACCEPT, ALE_AUTH_LISTEN or ALE_FLOW_ESTABLISHED
 * hold filters. */
SEC("cgroup_skb/ingress")
int lfp_ingress(struct __sk_buff *skb) {
  struct bpf_sock *sk = skb->sk;
  if (!sk) return 1;
  sk = bpf_sk_fullsock(sk);
  if (!sk) return 1;
  if (sk->protocol == IPPROTO_TCP && sk->state != BPF_TCP_LISTEN) return !cut(sk);
  struct pkt p = {};
  if (!parse(skb, 1, &p)) return 1;
  struct lfp_sock_attr *ap = bpf_sk_storage_get(&lfp_sk_attr, sk, 0, 0);
  if (p.proto == IPPROTO_TCP) {
    if (!p.syn_only) return 1; /* only a new connection */
    if (ap && ap->listen_refused) return 0;
    /* The connection this SYN opens inherits the listener's storage (BPF_F_CLONE): it is authorized
     * under the policy of now (read before the walk, as in auth_connect). */
    struct lfp_config *cfg = config();
    if (ap && cfg) {
      ap->flow = LFP_FLOW_INBOUND;
      ap->auth_gen = read_gen(cfg);
    }
  }
  struct lfp_sock_attr a = {};
  struct lfp_values v = {};
  if (ap) {
    a = *ap;
    set_attr(&v, &a);
  }
  __u32 kl = p.family == AF_INET ? LFP_KL_RECV_ACCEPT_V4 : LFP_KL_RECV_ACCEPT_V6;
  packet_values(&v, &p, skb->ifindex, 0);

  struct dgram_key dk = {};
  const int dgram = p.proto == IPPROTO_UDP;
  if (dgram) {
    int hit = dgram_lookup(&dk, bpf_get_socket_cookie(skb), &v, p.rport, 1);
    if (hit >= 0) return hit;
  }
  struct lfp_verdict d;
  lfp_eval(kl, &v, &d);
  int ok = allowed(&d);
  report(kl, &d, &a, p.family, p.proto, p.local, p.lport, p.remote, p.rport, skb->ifindex, !ok);
  if (dgram) dgram_store(&dk, &d, ok);
  return ok;
}

/* ---- Re-authorization (WFP's ALE reauthorization) -------------------------------------------------
 * When the policy changes, lfpd walks the TCP sockets of each network namespace its cgroup's
 * processes are in with this iterator (KernelPath::reauthorize). A flow authorized under an older
 * policy is classified again, with IS_REAUTHORIZE, at the layer that let it in: a connect()'s at
 * ALE_AUTH_CONNECT (its record is its slot in lfp_flows), an accepted connection's at
 * ALE_AUTH_RECV_ACCEPT (its record is its storage, cloned from its listener's). A flow the new policy
 * blocks, or one cut at ALE_FLOW_ESTABLISHED, is aborted (bpf_sock_destroy: the application sees
 * ECONNABORTED, the peer a reset). So no packet pays for re-authorization. */
struct bpf_iter_meta;
struct bpf_iter__tcp {
  struct bpf_iter_meta *meta;
  struct sock_common *sk_common;
} __attribute__((preserve_access_index));
struct tcp_sock;
extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

SEC("iter/tcp")
int lfp_reauth(struct bpf_iter__tcp *ctx) {
  struct sock_common *skc = ctx->sk_common;
  if (!skc) return 0;
  const int family = skc->skc_family;
  const __u8 st = skc->skc_state;
  /* (a listener, a closed socket, and the kernel's mini-sockets for TIME_WAIT and a SYN received:
   * no flow of an application) */
  if ((family != AF_INET && family != AF_INET6) || st == BPF_TCP_LISTEN || st == BPF_TCP_CLOSE ||
      st == BPF_TCP_TIME_WAIT || st == BPF_TCP_NEW_SYN_RECV)
    return 0;
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
  struct lfp_config *cfg = config();
  if (!tp || !cfg) return 0;
  struct lfp_sock_attr *s = bpf_sk_storage_get(&lfp_sk_attr, tp, 0, 0);
  struct lfp_sock_attr *a = flow_record(tp, bpf_get_socket_cookie(tp));
  int out = 1;
  if (!a) { /* no slot: an accepted connection, or a connect() that found its group full */
    a = s;
    out = s && s->flow == LFP_FLOW_OUTBOUND;
  }
  if (!a) return 0; /* not created in the cgroup, or before the hooks were attached */
  if (a->cut || (s && s->cut)) {
    bpf_sock_destroy(skc);
    return 0;
  }
  const __u64 g = read_gen(cfg);
  if (a->auth_gen == g) return 0;
  struct pkt p = {};
  sock_pkt((const struct sock *)tp, family == AF_INET, IPPROTO_TCP, &p);
  __u32 ifindex = 0;
  if (!out && bpf_core_field_exists(((struct sock *)0)->sk_rx_dst_ifindex))
    ifindex = BPF_CORE_READ((const struct sock *)tp, sk_rx_dst_ifindex);
  struct lfp_values v = {};
  const __u32 kl = family == AF_INET ? (out ? LFP_KL_CONNECT_V4 : LFP_KL_RECV_ACCEPT_V4)
                                     : (out ? LFP_KL_CONNECT_V6 : LFP_KL_RECV_ACCEPT_V6);
  set_attr(&v, a);
  packet_values(&v, &p, ifindex, 0x4 /* IS_REAUTHORIZE */);
  struct lfp_verdict d;
  lfp_eval(kl, &v, &d);
  a->auth_gen = g;
  if (d.defer || !d.decided || d.permit) return 0; /* a flow is never cut for want of user space */
  a->cut = 1;
  report(kl, &d, a, p.family, p.proto, p.local, p.lport, p.remote, p.rport, ifindex, 1);
  bpf_sock_destroy(skc);
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

#include "lfp_packet.h"
