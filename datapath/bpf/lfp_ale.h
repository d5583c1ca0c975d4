// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* What the ALE layers' two families share (lfp_ale_sock.bpf.c: the socket-address and socket hooks;
 * lfp_ale_flow.bpf.c: the flows, their packets and re-authorization), inline: who a socket's creator
 * is, the values of a bound socket or of a packet seen from its socket, the datagram cache, and the
 * slots of outbound TCP flows.
 */
#ifndef LFP_ALE_H
#define LFP_ALE_H

#include "lfp_helpers.h"

/* The few kernel types read through CO-RE (field offsets are relocated against the running kernel). */
struct super_block { unsigned int s_dev; } __attribute__((preserve_access_index));
struct inode { unsigned long i_ino; struct super_block *i_sb; } __attribute__((preserve_access_index));
struct file { struct inode *f_inode; } __attribute__((preserve_access_index));
struct mm_struct { struct file *exe_file; } __attribute__((preserve_access_index));
struct task_struct { struct mm_struct *mm; } __attribute__((preserve_access_index));

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
  set_u(v, LFP_S_FLAGS, wildcard ? LFP_FLAG_IS_WILDCARD_BIND : 0);
}

static __always_inline void report(__u32 kl, const struct lfp_verdict *d, const struct lfp_sock_attr *a, int family,
                                   __u8 proto, const __u32 *local, __u16 lport, const __u32 *remote, __u16 rport,
                                   __u32 ifindex, int blocked) {
  report_event(kl, d, a, family, proto, local, lport, remote, rport, ifindex, blocked, 0);
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

/* ---- A packet seen from its socket ---------------------------------------------------------------- */

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
  set_u(v, LFP_S_FLAGS, (loop ? LFP_FLAG_IS_LOOPBACK : 0) | flags);
}

/* ---- The slots of outbound TCP flows (lfp_flows) ---------------------------------------------- */

static __always_inline struct lfp_sock_attr *slot_rec(struct lfp_flow_slot *e) { return (struct lfp_sock_attr *)e->rec; }

/* A socket's address in the kernel, as a number (0: none). The verifier lets a privileged program
 * store a pointer in a map (lfp_sk_addr) and read it back as a number; a program that interrupts this
 * one on the same CPU may use the buffer in between, so the number is checked against the pointer. */
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
  count(LFP_CNT_FLOWS_IN_STORAGE);
  return 0;
}

#endif
