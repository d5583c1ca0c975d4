// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* What every hook family shares (inline): the classifier's entry point (lfp_eval, a global function
 * of lfp_classify.bpf.c) and the inline helpers around it: the settings, a layer's emptiness, the
 * values a hook fills, the hook's answer, the events and counters, the per-CPU scratch.
 */
#ifndef LFP_HELPERS_H
#define LFP_HELPERS_H

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

#include "lfp_maps.h"

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

/* The classifier (lfp_classify.bpf.c): the verdict of layer `kl`'s policy in force on the values
 * `v`, with WFP's arbitration. A global function: the verifier checks it once, not at every call. */
int lfp_eval(__u32 kl, const struct lfp_values *v, struct lfp_verdict *out);

static __always_inline void count(enum lfp_counter i) {
  __u32 key = i;
  __u64 *c = bpf_map_lookup_elem(&lfp_counters, &key);
  if (c) *c += 1;
}

static __always_inline struct lfp_config *config(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&lfp_cfg, &zero);
}

/* gen_bank is written by user space with one 8-byte store; loads are not reordered on x86 (the
 * BPF backend of clang 14 has no acquire load). */
static __always_inline __u64 read_gen(struct lfp_config *cfg) {
  __u64 g = *(volatile __u64 *)&cfg->gen_bank;
  asm volatile("" ::: "memory");
  return g;
}

/* Entry idx of bank `bank`; 0 past its end or when it has no map. */
static __always_inline const union lfp_entry *bank_entry(__u32 bank, __u32 idx) {
  void *m = bpf_map_lookup_elem(&lfp_banks, &bank);
  return m ? bpf_map_lookup_elem(m, &idx) : 0;
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

/* ---- The values a hook fills ---------------------------------------------------------------------- */

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

/* ---- The answer, and what is reported --------------------------------------------------------------- */

/* The hook's answer: 1 allow, 0 refuse. A deferred decision follows --fail while user space has not
 * taken over the flow (the NFQUEUE path). */
static __always_inline int allowed(const struct lfp_verdict *d) {
  if (d->defer) {
    count(LFP_CNT_DEFERRED);
    struct lfp_config *cfg = config();
    return !(cfg && cfg->fail_closed);
  }
  return !d->decided || d->permit;
}

/* A filled event the caller submits (0 when the ring is full: counted). */
static __always_inline struct lfp_event *new_event(__u32 kl, const struct lfp_verdict *d, const struct lfp_sock_attr *a,
                                                   int family, __u8 proto, const __u32 *local, __u16 lport,
                                                   const __u32 *remote, __u16 rport, __u32 ifindex, int blocked,
                                                   __u8 packet_dir) {
  struct lfp_event *e = bpf_ringbuf_reserve(&lfp_events, sizeof(*e), 0);
  if (!e) {
    count(LFP_CNT_EVENTS_LOST);
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
  if (a) { /* packets (the packet layers) have no creator */
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

#endif
