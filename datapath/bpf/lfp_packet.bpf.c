// SPDX-License-Identifier: GPL-2.0
/* The packet layers: BPF netfilter programs (BPF_PROG_TYPE_NETFILTER) that lfpd links into its own
 * network namespace's PRE_ROUTING, LOCAL_IN, FORWARD and LOCAL_OUT hooks, and the MAC frame layers'
 * tc programs that it links with tcx to each interface there but loopback, each while its layers
 * hold filters. Which layers a packet passes, in which order and with which values is
 * docs/packet-layers.md; `lfp replay` walks a capture the same way.
 *
 *   PRE_ROUTING (before reassembly)  INBOUND_IPPACKET, for packets to the host's own addresses
 *   LOCAL_IN (reassembled)           INBOUND_ICMP_ERROR or INBOUND_TRANSPORT, then DATAGRAM_DATA (UDP)
 *   FORWARD                          IPFORWARD
 *   LOCAL_OUT                        DATAGRAM_DATA (UDP), OUTBOUND_ICMP_ERROR or _TRANSPORT, OUTBOUND_IPPACKET
 *   tcx ingress / egress             INBOUND_ / OUTBOUND_MAC_FRAME_ETHERNET, on each interface but lo
 *
 * libbpf 1.1 does not know the netfilter program type: kernel.cpp sets it before loading
 * (LFP_BPF_PROG_TYPE_NETFILTER), and links the programs with BPF_LINK_CREATE itself. (The two
 * families are one unit: both copy what they drop with the kfunc bpf_dynptr_from_skb, and libbpf
 * 1.1's linker cannot link a kfunc that two objects declare.)
 */
#include "lfp_helpers.h"

/* What the programs read of the kernel's types (CO-RE: offsets relocated against the running kernel). */
struct net_device { int ifindex; } __attribute__((preserve_access_index));
struct nf_hook_state { struct net_device *in; struct net_device *out; } __attribute__((preserve_access_index));
struct sk_buff {
  unsigned int len;
  unsigned int tail; /* sk_buff_data_t: an offset from head on 64-bit kernels */
  __u16 network_header;
  unsigned char *head;
} __attribute__((preserve_access_index));
struct bpf_nf_ctx { const struct nf_hook_state *state; struct sk_buff *skb; } __attribute__((preserve_access_index));

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset, void *buffer__opt, __u32 buffer__szk) __ksym;
/* A kernel address as a read-only pointer to a kernel type: the verifier turns it into no instruction,
 * and loads through it into plain loads that read 0 if the address faults. */
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id__k) __ksym;

/* ---- The decision cache (lfp_pkt_cache, and each CPU's lfp_pkt_fast in front of it) ------------- */

static __always_inline __u32 fast_index(const struct pkt_key *k) {
  __u64 h = ((__u64)k->saddr[0] << 32 | k->daddr[0]) ^ ((__u64)k->saddr[3] << 32 | k->daddr[3]) ^
            ((__u64)k->sport << 48 | (__u64)k->dport << 32 | k->in_if) ^ ((__u64)k->proto << 8 | k->hook);
  return (__u32)((h * 0x9E3779B97F4A7C15ull) >> 54) & (LFP_FAST_SLOTS - 1);
}

static __always_inline int key_eq(const struct pkt_key *a, const struct pkt_key *b) {
  const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
  return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4] && x[5] == y[5] &&
         x[6] == y[6];
}

static __always_inline void fast_put(const struct pkt_key *k, const struct pkt_decision *d) {
  __u32 i = fast_index(k), b = LFP_FAST_SLOTS;
  struct fast_entry *busy = bpf_map_lookup_elem(&lfp_pkt_fast, &b);
  struct fast_entry *e = bpf_map_lookup_elem(&lfp_pkt_fast, &i);
  if (!busy || !e || busy->key.gen) return;
  busy->key.gen = 1;
  /* The key's generation last: a hook that interrupts this on the same CPU sees no half-written entry. */
  e->key.gen = 0;
  asm volatile("" ::: "memory");
  e->dec = *d;
  __builtin_memcpy((char *)&e->key + sizeof(e->key.gen), (const char *)k + sizeof(k->gen), sizeof(*k) - sizeof(k->gen));
  asm volatile("" ::: "memory");
  e->key.gen = k->gen;
  asm volatile("" ::: "memory");
  busy->key.gen = 0;
}

/* The cached decision for `k`, from this CPU's copy or from lfp_pkt_cache; 0 when there is none. */
static __always_inline int cache_get(const struct pkt_key *k, struct pkt_decision *dec) {
  __u32 i = fast_index(k);
  struct fast_entry *e = bpf_map_lookup_elem(&lfp_pkt_fast, &i);
  if (e && e->key.gen == k->gen) {
    const struct pkt_decision d = e->dec;
    asm volatile("" ::: "memory");
    if (key_eq(&e->key, k)) { /* (checked after the copy: a write in between changes the key) */
      *dec = d;
      return 1;
    }
  }
  const struct pkt_decision *hit = bpf_map_lookup_elem(&lfp_pkt_cache, k);
  if (!hit) return 0;
  *dec = *hit;
  fast_put(k, dec);
  return 1;
}

static __always_inline void cache_put(const struct pkt_key *k, const struct pkt_decision *dec) {
  bpf_map_update_elem(&lfp_pkt_cache, k, dec, BPF_ANY);
  fast_put(k, dec);
}

/* ---- One layer ------------------------------------------------------------------------------------ */

/* Classifies at one layer; true when the packet may go on. */
static __always_inline int pkt_layer(int kl, struct lfp_values *v, struct pkt_decision *out) {
  struct lfp_verdict d;
  if (layer_empty(kl)) return 1;
  lfp_eval(kl, v, &d);
  int ok = allowed(&d);
  if (!ok && d.defer && (kl == LFP_KL_DATAGRAM_V4 || kl == LFP_KL_DATAGRAM_V6)) {
    struct lfp_config *cfg = config();
    ok = cfg && cfg->datagrams_inspected; /* (lfpd --inspect-queue takes the datagram next, whatever --fail) */
  }
  if (!ok || !out->kl) { /* the deciding layer, or the first one, names the decision */
    out->filter_id = d.filter_id;
    out->sublayer = d.sublayer;
    out->hard = d.hard;
    out->defer = d.defer;
    out->kl = kl;
  }
  out->drop = !ok;
  return ok;
}


/* ---- What a drop keeps and reports ------------------------------------------------------------------ */

/* How many bytes of a packet of `len` are kept, bounded where the verifier sees it (a mask in the
 * register the copy gets: a bound tested in C is lost to the compiler's rewriting). */
static __always_inline __u32 snap_len(__u32 len) {
  __u32 n = len < LFP_DROP_SNAP ? len : LFP_DROP_SNAP;
  asm volatile("%[n] &= %[mask]" : [n] "+r"(n) : [mask] "i"(2 * LFP_DROP_SNAP - 1));
  return n;
}

/* Keeps a dropped packet's first bytes for user space (lfp capture), when asked to: `skb` from its
 * first byte (the IP header at netfilter, the Ethernet header at tcx), `len` its length. */
static __always_inline void keep_dropped(struct __sk_buff *skb, __u32 len, const struct pkt_decision *dec, __u32 ifindex,
                                         __u8 link) {
  struct lfp_dropped *e = bpf_ringbuf_reserve(&lfp_dropped, sizeof(*e), 0);
  if (!e) return;
  e->boot_ns = bpf_ktime_get_boot_ns();
  e->filter_id = dec->filter_id;
  e->ifindex = ifindex;
  e->len = len;
  e->caplen = len < LFP_DROP_SNAP ? len : LFP_DROP_SNAP;
  e->kl = dec->kl;
  e->link = link;
  struct bpf_dynptr p;
  const __u32 n = snap_len(len);
  if (!n || bpf_dynptr_from_skb(skb, 0, &p) || bpf_dynptr_read(e->data, n, &p, 0, 0))
    bpf_ringbuf_discard(e, 0);
  else
    bpf_ringbuf_submit(e, 0);
}

/* The event of a packet's decision (a drop, or with log_allows a permit a layer made): no app or
 * user; `local` and `remote` are seen from the host. */
static __always_inline void report_packet(const struct pkt_decision *dec, int family, __u8 proto, const __u32 *local,
                                          __u16 lport, const __u32 *remote, __u16 rport, __u32 ifindex, int inbound) {
  struct lfp_verdict v = {.filter_id = dec->filter_id, .sublayer = dec->sublayer, .decided = 1, .permit = !dec->drop,
                          .hard = dec->hard, .defer = dec->defer};
  report_event(dec->kl, &v, 0, family, proto, local, lport, remote, rport, ifindex, dec->drop,
               inbound ? LFP_DIR_INBOUND : LFP_DIR_OUTBOUND);
}

/* ---- The netfilter hooks ---------------------------------------------------------------------- */

/* One packet, parsed. Addresses in network order; ports host order. */
struct pkt_info {
  __u32 saddr[4], daddr[4];
  __u32 emb_daddr[4]; /* ICMP error: the quoted packet's destination */
  __u16 sport, dport;
  __u16 emb_sport, emb_dport;
  __u8 family, proto, frag, l4;  /* l4: the ports (or ICMP type and code) were read */
  __u8 icmp_err, icmp_type, icmp_code, emb_proto;
  __u8 emb_l4;
};

static __always_inline int icmp_is_error(int family, __u8 type) {
  if (family == 4) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return type >= 1 && type <= 4;
}

/* Reads an IPv4 or IPv6 header at `off` (the family is the hook's), its fragment state and where
 * its transport header starts. Returns the transport offset, or -1. */
static __always_inline int parse_ip(const struct bpf_dynptr *p, __u32 off, int family, __u32 *saddr, __u32 *daddr,
                                    __u8 *proto, __u8 *frag, int *first, const int ext_headers) {
  if (family == 4) {
    __u8 b[20];
    struct iphdr *ip = bpf_dynptr_slice(p, off, b, sizeof b);
    if (!ip || ip->ihl < 5) return -1;
    saddr[0] = ip->saddr;
    daddr[0] = ip->daddr;
    *proto = ip->protocol;
    const __u16 fo = bpf_ntohs(ip->frag_off);
    *frag = (fo & 0x3fff) != 0; /* MF or an offset */
    *first = (fo & 0x1fff) == 0;
    return off + ip->ihl * 4;
  }
  __u8 b[40];
  struct ipv6hdr *ip6 = bpf_dynptr_slice(p, off, b, sizeof b);
  if (!ip6) return -1;
  __builtin_memcpy(saddr, &ip6->saddr, 16);
  __builtin_memcpy(daddr, &ip6->daddr, 16);
  __u8 nh = ip6->nexthdr;
  __u32 at = off + 40;
  *frag = 0;
  *first = 1;
  /* Extension headers: hop-by-hop, routing, fragment, destination options, AH (at most 6; a quoted
   * packet's are not walked). */
  for (int i = 0; i < (ext_headers ? 6 : 0); ++i) {
    if (nh != 0 && nh != 43 && nh != 44 && nh != 60 && nh != 51) break;
    __u8 e[4];
    __u8 *x = bpf_dynptr_slice(p, at, e, sizeof e);
    if (!x) return -1;
    if (nh == 44) {
      *frag = 1;
      *first = ((x[2] << 8 | x[3]) & 0xfff8) == 0;
    }
    const __u32 len = nh == 44 ? 8 : nh == 51 ? (x[1] + 2) * 4 : (x[1] + 1) * 8;
    nh = x[0];
    at = (at + len) & 0xfff; /* bounded, for the verifier; a header chain that long fails the slice */
  }
  *proto = nh;
  return at;
}

/* Not inlined: its buffers are off the stack while the evaluator runs (the verifier adds up the
 * frames of a call chain, at most 512 bytes). */
static __attribute__((noinline)) int parse_pkt(struct bpf_nf_ctx *ctx, int family, struct pkt_info *k) {
  struct bpf_dynptr p;
  if (bpf_dynptr_from_skb((struct __sk_buff *)ctx->skb, 0, &p)) return 0;
  int first;
  int l4 = parse_ip(&p, 0, family, k->saddr, k->daddr, &k->proto, &k->frag, &first, 1);
  if (l4 < 0) return 0;
  k->family = family;
  if (!first) return 1;
  const __u8 icmp = family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) {
    __u8 b[4];
    __u16 *ports = bpf_dynptr_slice(&p, l4, b, sizeof b);
    if (!ports) return 1;
    k->sport = bpf_ntohs(ports[0]);
    k->dport = bpf_ntohs(ports[1]);
    k->l4 = 1;
  } else if (k->proto == icmp) {
    __u8 b[2];
    __u8 *t = bpf_dynptr_slice(&p, l4, b, sizeof b);
    if (!t) return 1;
    k->icmp_type = t[0];
    k->icmp_code = t[1];
    k->l4 = 1;
    k->icmp_err = icmp_is_error(family, t[0]);
    if (k->icmp_err) { /* the packet it quotes, after the 8-byte ICMP header */
      __u32 es[4], ed[4];
      __u8 ef;
      int efirst;
      int el4 = parse_ip(&p, l4 + 8, family, es, ed, &k->emb_proto, &ef, &efirst, 0);
      if (el4 < 0) return 1;
      __builtin_memcpy(k->emb_daddr, ed, 16);
      if ((k->emb_proto == IPPROTO_TCP || k->emb_proto == IPPROTO_UDP) && efirst) {
        __u8 pb[4];
        __u16 *ports = bpf_dynptr_slice(&p, el4, pb, sizeof pb);
        if (ports) {
          k->emb_sport = bpf_ntohs(ports[0]);
          k->emb_dport = bpf_ntohs(ports[1]);
          k->emb_l4 = 1;
        }
      }
    }
  }
  return 1;
}

static __always_inline void set_addr(struct lfp_values *v, int slot, int family, const __u32 *a) {
  if (family == 4) set_u(v, slot, bpf_ntohl(a[0]));
  else set_ip6(v, slot, a);
}

/* NL_ADDRESS_TYPE of an address; `local` when it is one of the host's (its type is in the map). */
static __always_inline __u8 addr_type(int family, const __u32 *a, int *local) {
  struct lfp_local_key key = {.family = family};
  if (family == 4) __builtin_memcpy(key.addr, a, 4);
  else __builtin_memcpy(key.addr, a, 16);
  __u8 *t = bpf_map_lookup_elem(&lfp_local_addrs, &key);
  *local = t != 0;
  if (t) return *t;
  if (family == 4) {
    const __u32 h = bpf_ntohl(a[0]);
    if (h == 0xffffffff) {
      *local = 1;
      return LFP_NLAT_BROADCAST;
    }
    if ((h >> 28) == 0xe) {
      *local = 1;
      return LFP_NLAT_MULTICAST;
    }
    return LFP_NLAT_UNICAST;
  }
  if ((bpf_ntohl(a[0]) >> 24) == 0xff) {
    *local = 1;
    return LFP_NLAT_MULTICAST;
  }
  return LFP_NLAT_UNICAST;
}

static __always_inline int klv(int family, int kl4) { return family == 4 ? kl4 : kl4 + 1; }


/* The values every layer of a hook shares: addresses seen from the host, the interface, FLAGS. */
static __always_inline void host_values(struct lfp_values *v, const struct pkt_info *k, int inbound, __u32 ifindex,
                                        __u8 local_type) {
  const __u32 *local = inbound ? k->daddr : k->saddr, *remote = inbound ? k->saddr : k->daddr;
  set_addr(v, LFP_S_LOCAL_ADDR, k->family, local);
  set_addr(v, LFP_S_REMOTE_ADDR, k->family, remote);
  set_u(v, LFP_S_ADDR_TYPE, local_type);
  set_u(v, LFP_S_IFACE, ifindex);
  const struct lfp_iface *ifi = bpf_map_lookup_elem(&lfp_ifaces, &ifindex);
  if (ifi) set_u(v, LFP_S_IFTYPE, ifi->iftype);
  /* The loopback device is ifindex 1 in every namespace. */
  set_u(v, LFP_S_FLAGS, (k->frag ? LFP_FLAG_IS_FRAGMENT : 0) | (ifindex == 1 ? LFP_FLAG_IS_LOOPBACK : 0));
}

static __always_inline void transport_values(struct lfp_values *v, const struct pkt_info *k, int inbound) {
  set_u(v, LFP_S_PROTOCOL, k->proto);
  if (!k->l4) return;
  if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) {
    set_u(v, LFP_S_LOCAL_PORT, inbound ? k->dport : k->sport);
    set_u(v, LFP_S_REMOTE_PORT, inbound ? k->sport : k->dport);
  } else { /* ICMP at the transport layers: WFP puts the type in the local port, the code in the remote */
    set_u(v, LFP_S_LOCAL_PORT, k->icmp_type);
    set_u(v, LFP_S_REMOTE_PORT, k->icmp_code);
  }
}

static __always_inline void icmp_error_values(struct lfp_values *v, const struct pkt_info *k) {
  set_u(v, LFP_S_ICMP_TYPE, k->icmp_type);
  set_u(v, LFP_S_ICMP_CODE, k->icmp_code);
  if (k->emb_proto) {
    int unused;
    set_u(v, LFP_S_EMB_PROTO, k->emb_proto);
    set_addr(v, LFP_S_EXTRA, k->family, k->emb_daddr);
    set_u(v, LFP_S_ADDR_TYPE, addr_type(k->family, k->emb_daddr, &unused) == LFP_NLAT_MULTICAST ? LFP_NLAT_MULTICAST
                                                                                             : LFP_NLAT_UNICAST);
  }
  if (k->emb_l4) {
    set_u(v, LFP_S_EMB_LPORT, k->emb_sport);
    set_u(v, LFP_S_EMB_RPORT, k->emb_dport);
  }
}

/* The layers of one hook, for a packet whose values are not cached; fills dec. v is scratch space
 * (a per-CPU slot: the stack is too small for it next to the evaluator's frames). */
static __always_inline void walk(int family, int hook, const struct pkt_info *k, __u32 in_if, __u32 out_if,
                                 struct lfp_values *v, struct pkt_decision *dec) {
  int local = 0, ok = 1;
  if (hook == LFP_HOOK_PRE) {
    const __u8 t = addr_type(family, k->daddr, &local);
    if (local) { /* not forwarded (that is IPFORWARD's) */
      host_values(v, k, 1, in_if, t);
      pkt_layer(klv(family, LFP_KL_IPPACKET_IN_V4), v, dec);
    }
  } else if (hook == LFP_HOOK_FWD) {
    set_addr(v, LFP_S_LOCAL_ADDR, family, k->saddr);  /* IP_SOURCE_ADDRESS */
    set_addr(v, LFP_S_REMOTE_ADDR, family, k->daddr); /* IP_DESTINATION_ADDRESS */
    set_u(v, LFP_S_DEST_TYPE, addr_type(family, k->daddr, &local));
    set_u(v, LFP_S_IFACE, in_if);
    set_u(v, LFP_S_OUT_IFACE, out_if);
    set_u(v, LFP_S_FLAGS, k->frag ? LFP_FLAG_IS_FRAGMENT : 0);
    pkt_layer(klv(family, LFP_KL_FORWARD_V4), v, dec);
  } else if (hook == LFP_HOOK_IN) {
    host_values(v, k, 1, in_if, addr_type(family, k->daddr, &local));
    if (k->icmp_err) {
      icmp_error_values(v, k);
      pkt_layer(klv(family, LFP_KL_ICMP_ERR_IN_V4), v, dec);
    } else {
      transport_values(v, k, 1);
      ok = pkt_layer(klv(family, LFP_KL_TRANSPORT_IN_V4), v, dec);
      if (ok && k->proto == IPPROTO_UDP) {
        set_u(v, LFP_S_DIRECTION, 1);
        pkt_layer(klv(family, LFP_KL_DATAGRAM_V4), v, dec);
      }
    }
  } else {
    host_values(v, k, 0, out_if, addr_type(family, k->saddr, &local));
    if (k->icmp_err) {
      icmp_error_values(v, k);
      ok = pkt_layer(klv(family, LFP_KL_ICMP_ERR_OUT_V4), v, dec);
    } else {
      transport_values(v, k, 0);
      set_u(v, LFP_S_DEST_TYPE, addr_type(family, k->daddr, &local));
      if (k->proto == IPPROTO_UDP) {
        set_u(v, LFP_S_DIRECTION, 0);
        ok = pkt_layer(klv(family, LFP_KL_DATAGRAM_V4), v, dec);
        v->present &= ~(1u << LFP_S_DIRECTION);
      }
      if (ok) ok = pkt_layer(klv(family, LFP_KL_TRANSPORT_OUT_V4), v, dec);
    }
    if (ok) {
      v->present = 0; /* OUTBOUND_IPPACKET has no ports */
      host_values(v, k, 0, out_if, addr_type(family, k->saddr, &local));
      pkt_layer(klv(family, LFP_KL_IPPACKET_OUT_V4), v, dec);
    }
  }
}

/* The common packet's key, read in place from the skb's linear part with plain loads (no kfunc, no
 * copy): unfragmented TCP or UDP whose ports follow the IPv4 header or the fixed IPv6 header. The
 * key is the one packet_hook builds from parse_pkt for the same packet. 0 for anything else. */
static __always_inline int peek_key(const struct sk_buff *skb, int family, struct pkt_key *key) {
  const __u64 head = (__u64)(unsigned long)skb->head;
  const __u32 nh = skb->network_header, tail = skb->tail;
  __u32 l4;
  if (family == 4) {
    if (nh + 20 > tail) return 0;
    const struct iphdr *ip = bpf_rdonly_cast((void *)(unsigned long)(head + nh), bpf_core_type_id_kernel(struct iphdr));
    const __u8 ihl = ip->ihl;
    if (ihl < 5 || (bpf_ntohs(ip->frag_off) & 0x3fff)) return 0;
    key->proto = ip->protocol;
    key->saddr[0] = ip->saddr;
    key->daddr[0] = ip->daddr;
    l4 = nh + ihl * 4;
  } else {
    if (nh + 40 > tail) return 0;
    const struct ipv6hdr *ip6 = bpf_rdonly_cast((void *)(unsigned long)(head + nh), bpf_core_type_id_kernel(struct ipv6hdr));
    key->proto = ip6->nexthdr;
    for (int i = 0; i < 4; ++i) {
      key->saddr[i] = ip6->saddr.in6_u.u6_addr32[i];
      key->daddr[i] = ip6->daddr.in6_u.u6_addr32[i];
    }
    l4 = nh + 40;
  }
  if ((key->proto != IPPROTO_TCP && key->proto != IPPROTO_UDP) || l4 + 4 > tail) return 0;
  const struct udphdr *ports = bpf_rdonly_cast((void *)(unsigned long)(head + l4), bpf_core_type_id_kernel(struct udphdr));
  key->sport = bpf_ntohs(ports->source);
  key->dport = bpf_ntohs(ports->dest);
  return 1;
}

/* A hook: the decision is cached by the values it depends on (ICMP errors are not cached: the packet
 * they quote is part of their values, and they are rare). */
static __always_inline int packet_hook(struct bpf_nf_ctx *ctx, int family, int hook) {
  /* (A hook is linked only while one of its layers holds a filter: kernel.cpp, sync_hooks.) */
  struct lfp_config *cfg = config();
  if (!cfg) return LFP_NF_ACCEPT;
  if (cfg->queued_hooks & LFP_QUEUED_HOOK(hook, family)) return LFP_NF_ACCEPT; /* lfpd's packet queue decides */
  const struct nf_hook_state *st = ctx->state;
  const __u32 in_if = st->in ? st->in->ifindex : 0, out_if = st->out ? st->out->ifindex : 0;
  struct pkt_key key = {.gen = read_gen(cfg), .hook = hook, .family = family, .in_if = in_if, .out_if = out_if};
  struct pkt_decision dec = {};
  /* Most packets: a cached permit with nothing to report, found without parsing or a call (the rest,
   * a drop among them, go the whole way below, which finds the same cache entry). */
  if (!cfg->no_packet_cache && peek_key(ctx->skb, family, &key) && cache_get(&key, &dec) &&
      !dec.drop && !(cfg->log_allows && dec.kl))
    return LFP_NF_ACCEPT;

  struct pkt_info k = {};
  if (!parse_pkt(ctx, family, &k)) return LFP_NF_ACCEPT; /* not IP as the hook says: not ours to judge */
  key.proto = k.proto;
  key.frag = k.frag;
  key.sport = k.sport;
  key.dport = k.dport;
  __builtin_memcpy(key.saddr, k.saddr, 16);
  __builtin_memcpy(key.daddr, k.daddr, 16);
  if (k.l4 && !(k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP)) key.sport = k.icmp_type << 8 | k.icmp_code;
  dec = (struct pkt_decision){};
  const int cache = !k.icmp_err && !cfg->no_packet_cache;
  if (!cache || !cache_get(&key, &dec)) {
    __u32 slot;
    struct scratch *s = scratch_push(&slot);
    if (!s) return LFP_NF_ACCEPT;
    s->v.present = 0;
    walk(family, hook, &k, in_if, out_if, &s->v, &dec);
    scratch_pop(slot);
    if (cache && !dec.defer) cache_put(&key, &dec);
  }
  const __u32 ifindex = hook == LFP_HOOK_OUT ? out_if : in_if;
  if (dec.drop && cfg->keep_dropped)
    keep_dropped((struct __sk_buff *)ctx->skb, ctx->skb->len, &dec, ifindex, LFP_LINK_RAW);
  if (dec.drop || (cfg->log_allows && dec.kl)) {
    /* Seen from the host; at IPFORWARD "local" is the source. */
    const int inbound = hook == LFP_HOOK_PRE || hook == LFP_HOOK_IN;
    report_packet(&dec, family == 4 ? AF_INET : AF_INET6, k.proto, inbound ? k.daddr : k.saddr,
                  inbound ? k.dport : k.sport, inbound ? k.saddr : k.daddr, inbound ? k.sport : k.dport, ifindex,
                  inbound);
  }
  return dec.drop ? LFP_NF_DROP : LFP_NF_ACCEPT;
}

SEC("lfp_netfilter")
int lfp_nf_pre4(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 4, LFP_HOOK_PRE); }
SEC("lfp_netfilter")
int lfp_nf_pre6(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 6, LFP_HOOK_PRE); }
SEC("lfp_netfilter")
int lfp_nf_in4(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 4, LFP_HOOK_IN); }
SEC("lfp_netfilter")
int lfp_nf_in6(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 6, LFP_HOOK_IN); }
SEC("lfp_netfilter")
int lfp_nf_fwd4(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 4, LFP_HOOK_FWD); }
SEC("lfp_netfilter")
int lfp_nf_fwd6(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 6, LFP_HOOK_FWD); }
SEC("lfp_netfilter")
int lfp_nf_out4(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 4, LFP_HOOK_OUT); }
SEC("lfp_netfilter")
int lfp_nf_out6(struct bpf_nf_ctx *ctx) { return packet_hook(ctx, 6, LFP_HOOK_OUT); }

/* ---- The MAC frame layers: tcx on each interface ------------------------------------------------ */

static __always_inline __u64 mac48(const __u8 *m) {
  return (__u64)m[0] << 40 | (__u64)m[1] << 32 | (__u64)m[2] << 24 | (__u64)m[3] << 16 | (__u64)m[4] << 8 | m[5];
}
/* DL_ADDRESS_TYPE: 0 unicast, 1 multicast, 2 broadcast. */
static __always_inline __u8 mac_type(__u64 m) {
  if (m == 0xffffffffffffull) return 2;
  return (m >> 40) & 1;
}

static __always_inline int mac_hook(struct __sk_buff *skb, int inbound) {
  const int kl = inbound ? LFP_KL_MAC_IN : LFP_KL_MAC_OUT;
  if (layer_empty(kl)) return LFP_TC_OK;
  /* The frame's first 26 bytes: Ethernet, one tag, and the IP header's first 8. Read in place when
   * the linear part holds them (15 to 20 ns a run less than a copy: docs/packet-layers.md), else copied. */
  __u8 buf[26] = {};
  const __u8 *eth = (const __u8 *)(long)skb->data;
  const __u32 have = skb->len < sizeof buf ? skb->len : sizeof buf;
  if (have < 14) return LFP_TC_OK;
  if (eth + sizeof buf > (const __u8 *)(long)skb->data_end) {
    if (bpf_skb_load_bytes(skb, 0, buf, have)) return LFP_TC_OK;
    eth = buf;
  }
  const __u64 dst = mac48(eth), src = mac48(eth + 6);
  __u16 type = eth[12] << 8 | eth[13], vlan = 0;
  const __u8 *ip = eth + 14;
  __u8 frag = 0;
  if (skb->vlan_present) { /* the outer tag, taken off by the driver or the stack */
    vlan = skb->vlan_tci & 0xfff;
  } else if ((type == 0x8100 || type == 0x88a8) && have >= 18) {
    vlan = (eth[14] << 8 | eth[15]) & 0xfff;
    type = eth[16] << 8 | eth[17];
    ip = eth + 18;
  }
  /* L2_FLAGS IS_IP_FRAGMENT_GROUP: an IPv4 fragment, or IPv6 whose first header after the fixed one is
   * a fragment header (lfp replay reads it the same way). */
  if (ip + 8 <= eth + have) {
    if (type == 0x0800) frag = ((ip[6] << 8 | ip[7]) & 0x3fff) != 0;
    else if (type == 0x86dd) frag = ip[6] == 44;
  }
  struct lfp_config *cfg = config();
  if (!cfg) return LFP_TC_OK;
  const __u64 local = inbound ? dst : src, remote = inbound ? src : dst;
  struct pkt_key key = {.gen = read_gen(cfg), .hook = inbound ? LFP_HOOK_MAC_IN : LFP_HOOK_MAC_OUT,
                        .in_if = skb->ifindex, .sport = type, .dport = vlan, .frag = frag};
  key.saddr[0] = (__u32)local, key.saddr[1] = local >> 32;
  key.daddr[0] = (__u32)remote, key.daddr[1] = remote >> 32;
  struct pkt_decision dec = {};
  const int cache = !cfg->no_packet_cache;
  if (!cache || !cache_get(&key, &dec)) {
    __u32 slot;
    struct scratch *sc = scratch_push(&slot);
    if (!sc) return LFP_TC_OK;
    struct lfp_values *v = &sc->v;
    v->present = 0;
    set_u(v, LFP_S_LOCAL_ADDR, local);
    set_u(v, LFP_S_REMOTE_ADDR, remote);
    set_u(v, LFP_S_ETHER_TYPE, type);
    set_u(v, LFP_S_VLAN_ID, vlan);
    set_u(v, LFP_S_MAC_LOCAL_TYPE, mac_type(local));
    set_u(v, LFP_S_MAC_REMOTE_TYPE, mac_type(remote));
    set_u(v, LFP_S_IFACE, skb->ifindex);
    __u32 ifindex = skb->ifindex;
    const struct lfp_iface *ifi = bpf_map_lookup_elem(&lfp_ifaces, &ifindex);
    if (ifi) set_u(v, LFP_S_EXTRA, mac48(ifi->mac)); /* INTERFACE_MAC_ADDRESS */
    set_u(v, LFP_S_FLAGS, (ifi && ifi->iftype == 6 ? LFP_L2_IS_NATIVE_ETHERNET : 0) |
                              (frag ? LFP_L2_IS_IP_FRAGMENT_GROUP : 0)); /* L2_FLAGS */
    pkt_layer(kl, v, &dec);
    scratch_pop(slot);
    if (cache && !dec.defer) cache_put(&key, &dec);
  }
  if (dec.drop && cfg->keep_dropped) keep_dropped(skb, skb->len, &dec, skb->ifindex, LFP_LINK_ETHERNET);
  if (dec.drop || (cfg->log_allows && dec.kl)) {
    /* The MACs in the address fields (6 bytes, network order), EtherType and VLAN in the ports. */
    __u32 l[4] = {}, r[4] = {};
    __builtin_memcpy(l, inbound ? eth : eth + 6, 6);
    __builtin_memcpy(r, inbound ? eth + 6 : eth, 6);
    report_packet(&dec, 0, 0, l, type, r, vlan, skb->ifindex, inbound);
  }
  return dec.drop ? LFP_TC_SHOT : LFP_TC_OK;
}

SEC("tc")
int lfp_tc_ingress(struct __sk_buff *skb) { return mac_hook(skb, 1); }
SEC("tc")
int lfp_tc_egress(struct __sk_buff *skb) { return mac_hook(skb, 0); }
