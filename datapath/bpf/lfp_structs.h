// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* The structs LFP's BPF programs and user space share: the compiled policy's bank entries (read by
 * the classifier, lfp_classify.bpf.c; written by datapath/src/compile.cpp), the maps' keys and values
 * user space reads or writes, and the events. Plain C, fixed-width types only; included by
 * lfp_kernel.h.
 *
 * A layer's enforced filters are flattened, in the engine's evaluation order (sublayer weight,
 * filter weight, id), into a run of conditions. A filter's conditions are grouped by field: a group
 * is OR'ed, groups are AND'ed. The last condition of a filter carries its action. The kernel walks
 * the run once and applies WFP's arbitration (lfp_eval in lfp_classify.bpf.c).
 *
 * The policy lives in two banks (lfp_banks); user space fills the idle bank and then flips
 * `lfp_config.gen_bank` with one atomic store. A reader re-checks gen_bank after each read, so it
 * never mixes two policies (a seqlock).
 *
 * Each struct's size and the offsets either side relies on are asserted here, in the C++ and in the
 * BPF C that include this, so that a change to one side's idea of a layout fails the build.
 */
#ifndef LFP_STRUCTS_H
#define LFP_STRUCTS_H

#include "lfp_consts.h"

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t lfp_u8;
typedef uint16_t lfp_u16;
typedef uint32_t lfp_u32;
typedef uint64_t lfp_u64;
#define LFP_STATIC_ASSERT static_assert
#else
typedef __u8 lfp_u8;
typedef __u16 lfp_u16;
typedef __u32 lfp_u32;
typedef __u64 lfp_u64;
#define LFP_STATIC_ASSERT _Static_assert
#endif
#define LFP_SIZE(type, n) LFP_STATIC_ASSERT(sizeof(type) == (n), "the size of " #type " both sides know")
#define LFP_OFFSET(type, member, n) \
  LFP_STATIC_ASSERT(__builtin_offsetof(type, member) == (n), "the offset of " #type "." #member " both sides know")

/* lfpd's interfaces, by ifindex (lfp_ifaces, kept by lfpd from getifaddrs and rtnetlink). */
struct lfp_iface {
  lfp_u32 iftype; /* IANA ifType (iftype_of_arphrd) */
  lfp_u8 mac[6];  /* its hardware address (zero when it has none) */
  lfp_u8 pad[2];
};
LFP_SIZE(struct lfp_iface, 12);
LFP_OFFSET(struct lfp_iface, mac, 4);

/* The host's own addresses in lfpd's namespace (lfp_local_addrs), which make a packet inbound. */
struct lfp_local_key {
  lfp_u8 addr[16];  /* v4: the first 4 bytes; network order */
  lfp_u8 family;    /* 4 or 6 */
  lfp_u8 pad[3];
};
LFP_SIZE(struct lfp_local_key, 20);
LFP_OFFSET(struct lfp_local_key, family, 16);

struct lfp_cond {
  lfp_u64 lo[2];
  lfp_u64 hi[2];
  lfp_u64 filter_id;
  lfp_u16 sublayer;  /* ordinal of the filter's sublayer in evaluation order */
  lfp_u8 slot;
  lfp_u8 op;
  lfp_u8 flags;
  lfp_u8 action;
  lfp_u8 hard;
  lfp_u8 pad[13];
};
LFP_SIZE(struct lfp_cond, 64);
LFP_OFFSET(struct lfp_cond, filter_id, 32);
LFP_OFFSET(struct lfp_cond, sublayer, 40);
LFP_OFFSET(struct lfp_cond, hard, 46);

/* A filter's guard: one of its conditions that is alone on its field (so the filter matches only if
 * it holds), tested before any of the filter's conditions is read. Most filters of a layer fail
 * theirs; a layer's guards sit side by side, two an entry, after the bank's conditions, so the walk
 * reads one cache line for two filters it skips rather than one or more for each. */
struct lfp_guard {
  lfp_u64 lo, hi;  /* the value's low half in [lo, hi] */
  lfp_u64 high;    /* and its high half this */
  lfp_u32 cond;    /* bank index of the filter's first condition */
  lfp_u16 sublayer;
  lfp_u8 slot;     /* LFP_S_NONE: no guard (the filter's conditions are read) */
  lfp_u8 flags;    /* LFP_C_IF_EMPTY: holds when the hook has no value for the field */
};
LFP_SIZE(struct lfp_guard, 32);
LFP_OFFSET(struct lfp_guard, cond, 24);
LFP_OFFSET(struct lfp_guard, flags, 31);

/* The index (docs/kernel-index.md): a decision visits only the filters that can match, not every
 * filter of the layer. A filter's key is one or two of its conditions, each alone on its field and
 * admitting one aligned block of values (an exact address, port, protocol or app; an address prefix; a
 * port block such as 1024-2047): (slot, prefix length, the block's first value) for each. It is listed
 * in its layer's hash table under the key; a filter without one is on the layer's residual list. A
 * layer's keys are of at most LFP_PROBES shapes (lfp_probe: which slots, cut to which lengths). A
 * decision probes each shape with its own values cut to it, then merges the lists it found with the
 * residual one in evaluation order (a list element is a filter's order key and its guard index), so
 * WFP's arbitration sees the same filters in the same order as a walk of the whole layer would, less
 * those that cannot match. Values are 128 bits (lfp_values); a prefix length counts from the top bit,
 * so a v4 /24 is 120 and an exact port 128.
 *
 * Order keys leave room between filters: a filter added later (an incremental update, compile.cpp's
 * update()) takes a key between its neighbours' and a guard and conditions past the compiled ones, and
 * joins its list by a copy of the list with it in place; a deleted filter's guard is made one that
 * never holds. */
struct lfp_probe {
  lfp_u8 slot[2]; /* the key's slots; slot[1] LFP_S_NONE: a key of one field */
  lfp_u8 plen[2];
};
struct lfp_probes {
  struct lfp_probe p[LFP_PROBES_PER_ENTRY];
};
LFP_SIZE(struct lfp_probe, 4);
LFP_SIZE(struct lfp_probes, 64);

/* A list element: a filter's place in evaluation order (lists are sorted by it) and its guard. */
struct lfp_list_elem {
  lfp_u32 order;
  lfp_u32 guard;
};
LFP_SIZE(struct lfp_list_elem, 8);

struct lfp_bucket {
  lfp_u64 v[2][2]; /* the key's values (each as lfp_values holds it, cut to its length); [1] zero for one field */
  lfp_u32 list;    /* its filters (struct lfp_list_elem): in elements from the bank's start (entry list / 8) */
  lfp_u32 count;
  lfp_u8 probe;    /* its shape: the layer's probe */
  lfp_u8 used;
  lfp_u8 pad[2];
  struct lfp_list_elem first; /* the list's first element: a walk that stops at it reads no list line */
  lfp_u8 pad2[12];
};
LFP_SIZE(struct lfp_bucket, 64);
LFP_OFFSET(struct lfp_bucket, list, 32);
LFP_OFFSET(struct lfp_bucket, probe, 40);
LFP_OFFSET(struct lfp_bucket, first, 44);

/* A bucket's fingerprint, kept a byte a bucket apart from the buckets (lfp_layer_hdr.fpfirst): a
 * probe reads the fingerprints of its run, one cache line for 64 buckets, and a bucket only when its
 * fingerprint is the key's. Most probes find no key: they read no bucket. 0: a free bucket. */
static inline lfp_u8 lfp_fingerprint(lfp_u64 hash) {
  const lfp_u8 f = (lfp_u8)(hash >> 56);
  return f ? f : 1;
}

/* The bucket a key starts its probe at: the same mix in the hooks and in the compiler (murmur3's
 * 64-bit finalizer, so that keys differing only in their high bits, as prefixes do, spread too). */
static inline lfp_u64 lfp_hash(const lfp_u64 v[2][2], lfp_u32 probe) {
  lfp_u64 h = v[0][1] ^ (v[0][0] * 0x9e3779b97f4a7c15ull) ^ (v[1][1] * 0xc2b2ae3d27d4eb4full) ^
              (v[1][0] * 0x165667b19e3779f9ull) ^ ((lfp_u64)probe << 56);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}
/* The top `plen` bits of a 128-bit value's high and low halves. */
static inline lfp_u64 lfp_mask_high(lfp_u32 plen) { return plen == 0 ? 0 : plen >= 64 ? ~0ull : ~0ull << (64 - plen); }
static inline lfp_u64 lfp_mask_low(lfp_u32 plen) { return plen <= 64 ? 0 : plen >= 128 ? ~0ull : ~0ull << (128 - plen); }

/* Entries [0, LFP_KL_COUNT) of a bank: where each layer's conditions, guards and index are. */
struct lfp_layer_hdr {
  lfp_u32 first;
  lfp_u32 count;
  lfp_u32 gfirst;     /* guard index (two an entry: entry gfirst / 2) */
  lfp_u32 gcount;     /* one a filter, in evaluation order (as compiled: updates add guards elsewhere) */
  lfp_u32 residual;   /* the filters no bucket holds: a list (in elements), in evaluation order */
  lfp_u32 nresidual;
  lfp_u32 hfirst;     /* the hash table's first entry (one bucket an entry) */
  lfp_u32 hmask;      /* buckets - 1 (a power of two) */
  lfp_u32 nprobes;    /* key shapes, in entry LFP_KL_COUNT + the layer */
  lfp_u32 listed;     /* a layer with no probes: its residual list (all its filters), not its guards, is
                         walked (an update added a filter to it) */
  lfp_u32 fpfirst;    /* the table's fingerprints (lfp_fingerprint): bucket b's is byte b % LFP_FP_PER_ENTRY of entry
                         fpfirst + b / LFP_FP_PER_ENTRY */
  lfp_u8 pad[20];
};
LFP_SIZE(struct lfp_layer_hdr, 64);
LFP_OFFSET(struct lfp_layer_hdr, listed, 36);
LFP_OFFSET(struct lfp_layer_hdr, fpfirst, 40);

union lfp_entry {
  struct lfp_cond c;
  struct lfp_layer_hdr h;
  struct lfp_guard g[2];
  struct lfp_bucket b;
  struct lfp_probes p;
  struct lfp_list_elem l[LFP_LIST_PER_ENTRY];
  lfp_u8 fp[LFP_FP_PER_ENTRY];
};
LFP_SIZE(union lfp_entry, 64); /* one cache line: the banks' unit */

struct lfp_config {
  lfp_u64 gen_bank;   /* generation << 1 | active bank; 0: no policy yet (everything permitted) */
  lfp_u32 fail_closed; /* a decision that needs user space blocks when user space is not there */
  lfp_u32 log_allows;  /* also report permits as events */
  lfp_u32 userspace;   /* lfpd reads the queue: a connect that needs user space goes there (mark) */
  lfp_u32 no_packet_cache; /* the packet layers classify every packet (lfp-packet-bench: a first packet's cost) */
  lfp_u32 keep_dropped;    /* the packet layers copy what they drop to lfp_dropped (lfp capture) */
  lfp_u32 datagrams_inspected; /* lfpd's data layers decide DATAGRAM_DATA next: a defer there passes on to them */
  lfp_u32 queued_hooks; /* LFP_QUEUED_HOOK bits: lfpd's packet queue decides that hook's layers (packet_queue.hpp) */
  lfp_u32 pad;
};
LFP_SIZE(struct lfp_config, 40);
LFP_OFFSET(struct lfp_config, queued_hooks, 32);

struct lfp_dropped {
  lfp_u64 boot_ns;
  lfp_u64 filter_id;
  lfp_u32 ifindex;
  lfp_u32 len;    /* the packet's length */
  lfp_u16 caplen; /* bytes in data */
  lfp_u8 kl;
  lfp_u8 link;
  lfp_u8 pad[4];
  lfp_u8 data[2 * LFP_DROP_SNAP]; /* (room for the verifier's bound on the copy: a mask, 2 * SNAP - 1) */
};
LFP_SIZE(struct lfp_dropped, 32 + 2 * LFP_DROP_SNAP);
LFP_OFFSET(struct lfp_dropped, data, 32);

struct lfp_pending {
  lfp_u64 app_dev;
  lfp_u64 app_ino;
  lfp_u64 cookie;
  lfp_u32 pid;
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 kl;
};
LFP_SIZE(struct lfp_pending, 40);
LFP_OFFSET(struct lfp_pending, pid, 24);

struct lfp_user_key {
  lfp_u32 set;
  lfp_u32 kind; /* 0 uid, 1 gid */
  lfp_u32 id;
};
LFP_SIZE(struct lfp_user_key, 12);

struct lfp_values {
  lfp_u64 v[LFP_NSLOTS][2];
  lfp_u32 present; /* bit per slot */
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 pad;
};
LFP_SIZE(struct lfp_values, 16 * LFP_NSLOTS + 16);
LFP_OFFSET(struct lfp_values, present, 16 * LFP_NSLOTS);

struct lfp_verdict {
  lfp_u64 filter_id; /* 0: no filter decided */
  lfp_u32 sublayer;
  lfp_u8 decided;
  lfp_u8 permit;
  lfp_u8 hard;
  lfp_u8 defer;      /* a filter needing user space was reached: the engine must decide */
};
LFP_SIZE(struct lfp_verdict, 16);
LFP_OFFSET(struct lfp_verdict, decided, 12);

/* What a socket's creator was, kept in socket storage for hooks that run outside its context. */
struct lfp_sock_attr {
  lfp_u64 app_dev;
  lfp_u64 app_ino;
  lfp_u32 pid;
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 listen_refused; /* ALE_AUTH_LISTEN refused this listener: its SYNs are dropped */
  /* Re-authorization of TCP flows (lfp_ale_flow.bpf.c, lfp_reauth). */
  lfp_u64 auth_gen;        /* the policy generation the flow was last authorized under (a listener's:
                              its last SYN's, which the connection it completes inherits) */
  lfp_u8 flow;             /* LFP_FLOW_* */
  lfp_u8 cut;              /* a new policy blocks it: every packet is dropped */
  lfp_u8 redirected;       /* ALE_CONNECT_REDIRECT rewrote its connect(): orig_* is where it was going */
  lfp_u8 pad[3];
  lfp_u16 orig_port;
  lfp_u8 orig_addr[16];    /* v4: the first 4 bytes; network order */
  lfp_u64 redirect_filter;
};
LFP_SIZE(struct lfp_sock_attr, 72);
LFP_OFFSET(struct lfp_sock_attr, auth_gen, 32);
/* An outbound flow's slot in lfp_flows keeps the record up to orig_addr. */
LFP_OFFSET(struct lfp_sock_attr, orig_addr, LFP_FLOW_REC);
LFP_OFFSET(struct lfp_sock_attr, redirect_filter, 64);

/* ALE_CONNECT_REDIRECT: where a redirect filter sends connects (lfp_redirects, by filter id), and
 * the record a proxy reads to recover the original destination (lfp_redirect_records, by the
 * redirected socket's local address and port: the proxy's peer). */
struct lfp_redirect {
  lfp_u8 addr[16];  /* v4: the first 4 bytes; network order */
  lfp_u16 port;     /* host order */
  lfp_u8 pad[6];
};
LFP_SIZE(struct lfp_redirect, 24);
LFP_OFFSET(struct lfp_redirect, port, 16);
struct lfp_redirect_key {
  lfp_u8 addr[16];  /* the redirected socket's local address (v4: first 4 bytes) */
  lfp_u16 port;     /* its local port, host order */
  lfp_u8 family;    /* 4 or 6 */
  lfp_u8 pad[5];
};
LFP_SIZE(struct lfp_redirect_key, 24);
LFP_OFFSET(struct lfp_redirect_key, family, 18);
struct lfp_redirect_record {
  lfp_u8 orig_addr[16];
  lfp_u16 orig_port;
  lfp_u8 pad[2];
  lfp_u32 pid;
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u64 app_dev;
  lfp_u64 app_ino;
  lfp_u64 filter_id;
};
LFP_SIZE(struct lfp_redirect_record, 56);
LFP_OFFSET(struct lfp_redirect_record, filter_id, 48);

/* One decision reported to user space (ring buffer lfp_events). */
struct lfp_event {
  lfp_u64 boot_ns;
  lfp_u64 filter_id;
  lfp_u64 app_dev;
  lfp_u64 app_ino;
  lfp_u32 pid;
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 sublayer;
  lfp_u32 ifindex;
  lfp_u16 local_port;
  lfp_u16 remote_port;
  lfp_u8 kl;
  lfp_u8 family;   /* 4 or 6 */
  lfp_u8 protocol;
  lfp_u8 permit;
  lfp_u8 hard;
  lfp_u8 defer;
  lfp_u8 packet_dir; /* the packet layers: LFP_DIR_OUTBOUND or LFP_DIR_INBOUND (0 at the ALE layers) */
  lfp_u8 pad;
  lfp_u8 local_addr[16];  /* v4: the first 4 bytes, network order */
  lfp_u8 remote_addr[16];
  /* At RESOURCE_RELEASE and ENDPOINT_CLOSURE (else 0), what lfpd classifies with there (notify.hpp): */
  lfp_u64 cookie; /* the socket cookie (a callout's flow handle, as at ALE_AUTH_CONNECT) */
  lfp_u32 flags;  /* FLAGS */
  lfp_u32 pad2;
};
LFP_SIZE(struct lfp_event, 112);
LFP_OFFSET(struct lfp_event, local_addr, 64);
LFP_OFFSET(struct lfp_event, cookie, 96);


/* The equivalence test's entry point (a BPF_PROG_TYPE_SYSCALL program run by BPF_PROG_TEST_RUN). */
struct lfp_test_ctx {
  lfp_u32 kl;
  lfp_u32 pad;
  struct lfp_values values;
  struct lfp_verdict out;
};
LFP_SIZE(struct lfp_test_ctx, 232);
LFP_OFFSET(struct lfp_test_ctx, values, 8);
LFP_OFFSET(struct lfp_test_ctx, out, 216);

#endif
