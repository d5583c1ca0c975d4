// SPDX-License-Identifier: GPL-2.0
/* The ALE layers of a socket's flows and packets: sock_ops (ALE_AUTH_LISTEN when a socket listens,
 * ALE_FLOW_ESTABLISHED when a TCP flow is up), cgroup_skb ingress and egress (ALE_AUTH_RECV_ACCEPT
 * for a SYN or a new datagram; a cut flow's packets dropped), and the TCP iterator that
 * re-authorizes flows when the policy changes.
 */
#include "lfp_ale.h"

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
    set_u(&v, LFP_S_FLAGS, ip4_loopback(bpf_ntohl(remote[0])) ? LFP_FLAG_IS_LOOPBACK : 0);
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
    set_u(&v, LFP_S_FLAGS, ip6_loopback(remote) ? LFP_FLAG_IS_LOOPBACK : 0);
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
  packet_values(&v, &p, ifindex, LFP_FLAG_IS_REAUTHORIZE);
  struct lfp_verdict d;
  lfp_eval(kl, &v, &d);
  a->auth_gen = g;
  if (d.defer || !d.decided || d.permit) return 0; /* a flow is never cut for want of user space */
  a->cut = 1;
  report(kl, &d, a, p.family, p.proto, p.local, p.lport, p.remote, p.rport, ifindex, 1);
  bpf_sock_destroy(skc);
  return 0;
}
