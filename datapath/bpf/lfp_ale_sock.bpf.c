// SPDX-License-Identifier: GPL-2.0
/* The ALE layers at a socket's own calls: the cgroup sock_addr hooks (connect, sendmsg, bind) and sock
 * hooks (post_bind, sock_release). ALE_AUTH_CONNECT and ALE_CONNECT_REDIRECT at connect() and a
 * datagram's send, ALE_BIND_REDIRECT at bind(), ALE_RESOURCE_ASSIGNMENT after it, and the notification
 * layers ALE_RESOURCE_RELEASE and ALE_ENDPOINT_CLOSURE when the socket is released. Decisions that
 * need user space are handed to it (the NFQUEUE path) or reported as such.
 */
#include "lfp_ale.h"

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
  count(LFP_CNT_DEFERRED);
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
  set_u(&v, LFP_S_FLAGS, loop ? LFP_FLAG_IS_LOOPBACK : 0);
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
