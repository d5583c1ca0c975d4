/* The in-kernel form of LFP's ALE policy, shared by the BPF programs (lfp_ale.bpf.c) and the
 * user-space compiler (datapath/src/compile.cpp). Plain C, fixed-width types only.
 *
 * A layer's enforced filters are flattened, in the engine's evaluation order (sublayer weight,
 * filter weight, id), into a run of conditions. A filter's conditions are grouped by field: a group
 * is OR'ed, groups are AND'ed. The last condition of a filter carries its action. The kernel walks
 * the run once and applies WFP's arbitration (see lfp_eval in lfp_ale.bpf.c).
 *
 * The policy lives in two banks of one array map; user space fills the idle bank and then flips
 * `lfp_config.gen_bank` with one atomic store. A reader re-checks gen_bank after each read, so it
 * never mixes two policies (a seqlock).
 */
#ifndef LFP_KERNEL_H
#define LFP_KERNEL_H

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
typedef uint8_t lfp_u8;
typedef uint16_t lfp_u16;
typedef uint32_t lfp_u32;
typedef uint64_t lfp_u64;
#else
typedef __u8 lfp_u8;
typedef __u16 lfp_u16;
typedef __u32 lfp_u32;
typedef __u64 lfp_u64;
#endif

/* The kernel layers: one per (ALE layer, family) that a cgroup or LSM hook feeds. */
enum lfp_kl {
  LFP_KL_CONNECT_V4,      /* ALE_AUTH_CONNECT_V4: connect4, sendmsg4 (first datagram to a remote) */
  LFP_KL_CONNECT_V6,
  LFP_KL_RECV_ACCEPT_V4,  /* ALE_AUTH_RECV_ACCEPT_V4: cgroup_skb ingress, TCP SYN or first datagram */
  LFP_KL_RECV_ACCEPT_V6,
  LFP_KL_LISTEN_V4,       /* ALE_AUTH_LISTEN_V4: sock_ops TCP_LISTEN_CB */
  LFP_KL_LISTEN_V6,
  LFP_KL_RESOURCE_V4,     /* ALE_RESOURCE_ASSIGNMENT_V4: post_bind4 */
  LFP_KL_RESOURCE_V6,
  LFP_KL_REDIRECT_V4,     /* ALE_CONNECT_REDIRECT_V4: connect4, before ALE_AUTH_CONNECT_V4 */
  LFP_KL_REDIRECT_V6,
  LFP_KL_FLOW_V4,         /* ALE_FLOW_ESTABLISHED_V4: sock_ops *_ESTABLISHED_CB (TCP) */
  LFP_KL_FLOW_V6,
  LFP_KL_BIND_REDIRECT_V4, /* ALE_BIND_REDIRECT_V4: bind4, before the bind (and ALE_RESOURCE_ASSIGNMENT) */
  LFP_KL_BIND_REDIRECT_V6,
  LFP_KL_RELEASE_V4,      /* ALE_RESOURCE_RELEASE_V4: sock_release of a socket without a remote that holds a port */
  LFP_KL_RELEASE_V6,
  LFP_KL_CLOSURE_V4,      /* ALE_ENDPOINT_CLOSURE_V4: sock_release of a socket with a remote (TCP, connected UDP) */
  LFP_KL_CLOSURE_V6,
  /* The packet layers (lfp_packet.h): netfilter hooks in lfpd's network namespace. */
  LFP_KL_IPPACKET_IN_V4,   /* INBOUND_IPPACKET_V4: PRE_ROUTING, before reassembly, for local destinations */
  LFP_KL_IPPACKET_IN_V6,
  LFP_KL_IPPACKET_OUT_V4,  /* OUTBOUND_IPPACKET_V4: LOCAL_OUT, after the transport layer */
  LFP_KL_IPPACKET_OUT_V6,
  LFP_KL_FORWARD_V4,       /* IPFORWARD_V4: FORWARD */
  LFP_KL_FORWARD_V6,
  LFP_KL_TRANSPORT_IN_V4,  /* INBOUND_TRANSPORT_V4: LOCAL_IN, reassembled */
  LFP_KL_TRANSPORT_IN_V6,
  LFP_KL_TRANSPORT_OUT_V4, /* OUTBOUND_TRANSPORT_V4: LOCAL_OUT */
  LFP_KL_TRANSPORT_OUT_V6,
  LFP_KL_ICMP_ERR_IN_V4,   /* INBOUND_ICMP_ERROR_V4: LOCAL_IN, an ICMP error instead of the transport layer */
  LFP_KL_ICMP_ERR_IN_V6,
  LFP_KL_ICMP_ERR_OUT_V4,  /* OUTBOUND_ICMP_ERROR_V4: LOCAL_OUT */
  LFP_KL_ICMP_ERR_OUT_V6,
  LFP_KL_DATAGRAM_V4,      /* DATAGRAM_DATA_V4: LOCAL_IN after the transport layer, LOCAL_OUT before it (UDP) */
  LFP_KL_DATAGRAM_V6,
  LFP_KL_MAC_IN,           /* INBOUND_MAC_FRAME_ETHERNET: tcx ingress of each interface in lfpd's namespace */
  LFP_KL_MAC_OUT,          /* OUTBOUND_MAC_FRAME_ETHERNET: tcx egress */
  LFP_KL_COUNT
};
#define LFP_KL_FIRST_PACKET LFP_KL_IPPACKET_IN_V4

/* The values a hook supplies. Each is 128 bits, [0] the high half: an IPv6 address in network byte
 * order read as a big-endian number, everything else in [1]. */
enum lfp_slot {
  LFP_S_LOCAL_ADDR,   /* IP_LOCAL_ADDRESS */
  LFP_S_REMOTE_ADDR,  /* IP_REMOTE_ADDRESS */
  LFP_S_LOCAL_PORT,   /* IP_LOCAL_PORT */
  LFP_S_REMOTE_PORT,  /* IP_REMOTE_PORT */
  LFP_S_PROTOCOL,     /* IP_PROTOCOL */
  LFP_S_APP,          /* ALE_APP_ID: the executable file, [0] device (kernel dev_t), [1] inode */
  LFP_S_FLAGS,        /* FLAGS */
  LFP_S_IFACE,        /* IP_LOCAL_INTERFACE, INTERFACE_INDEX: the ifindex */
  LFP_S_USER,         /* ALE_USER_ID: uid and gid */
  LFP_S_DIRECTION,    /* DIRECTION: 0 outbound, 1 inbound */
  LFP_S_EXTRA,        /* EMBEDDED_REMOTE_ADDRESS (ICMP error layers), INTERFACE_MAC_ADDRESS (MAC frame layers) */
  LFP_S_IFTYPE,       /* INTERFACE_TYPE: the IANA ifType of the layer's interface (lfp_ifaces) */
  LFP_NSLOTS,
  LFP_S_NONE = 31     /* a field no hook supplies: always empty */
};

/* The packet layers have no app or user: their other fields reuse those slots (compile.cpp, slot_of). */
#define LFP_S_ADDR_TYPE LFP_S_APP        /* IP_LOCAL_ADDRESS_TYPE, EMBEDDED_LOCAL_ADDRESS_TYPE */
#define LFP_S_DEST_TYPE LFP_S_USER       /* IP_DESTINATION_ADDRESS_TYPE */
#define LFP_S_ICMP_TYPE LFP_S_LOCAL_PORT /* ICMP_TYPE (ICMP error layers) */
#define LFP_S_ICMP_CODE LFP_S_REMOTE_PORT
#define LFP_S_EMB_PROTO LFP_S_PROTOCOL   /* EMBEDDED_PROTOCOL */
#define LFP_S_EMB_LPORT LFP_S_USER       /* EMBEDDED_LOCAL_PORT */
#define LFP_S_EMB_RPORT LFP_S_DIRECTION  /* EMBEDDED_REMOTE_PORT */
#define LFP_S_OUT_IFACE LFP_S_LOCAL_PORT /* IPFORWARD: DESTINATION_INTERFACE_INDEX, IP_FORWARD_INTERFACE */
/* The MAC frame layers: MAC_LOCAL/REMOTE_ADDRESS in the address slots (48 bits), */
#define LFP_S_ETHER_TYPE LFP_S_LOCAL_PORT
#define LFP_S_VLAN_ID LFP_S_REMOTE_PORT
#define LFP_S_MAC_LOCAL_TYPE LFP_S_APP    /* MAC_LOCAL_ADDRESS_TYPE (DL_ADDRESS_TYPE) */
#define LFP_S_MAC_REMOTE_TYPE LFP_S_USER  /* MAC_REMOTE_ADDRESS_TYPE */
/* INTERFACE and INTERFACE_INDEX in LFP_S_IFACE, INTERFACE_MAC_ADDRESS in LFP_S_EXTRA, L2_FLAGS in LFP_S_FLAGS
 * (IS_NATIVE_ETHERNET, IS_IP_FRAGMENT_GROUP). */

/* lfpd's interfaces, by ifindex (lfp_ifaces, kept by lfpd from getifaddrs and rtnetlink). */
struct lfp_iface {
  lfp_u32 iftype; /* IANA ifType (iftype_of_arphrd) */
  lfp_u8 mac[6];  /* its hardware address (zero when it has none) */
  lfp_u8 pad[2];
};

/* The host's own addresses in lfpd's namespace (lfp_local_addrs), which make a packet inbound. */
struct lfp_local_key {
  lfp_u8 addr[16];  /* v4: the first 4 bytes; network order */
  lfp_u8 family;    /* 4 or 6 */
  lfp_u8 pad[3];
};
#define LFP_NLAT_UNICAST 1   /* NL_ADDRESS_TYPE */
#define LFP_NLAT_MULTICAST 3
#define LFP_NLAT_BROADCAST 4

enum lfp_op {
  LFP_OP_FALSE,        /* when the value is present */
  LFP_OP_TRUE,
  LFP_OP_IN_RANGE,     /* lo <= v <= hi */
  LFP_OP_NOT_IN_RANGE,
  LFP_OP_FLAGS_ALL,    /* (v & lo) == lo, 64-bit */
  LFP_OP_FLAGS_ANY,
  LFP_OP_FLAGS_NONE,
  LFP_OP_USER_IN,      /* uid or gid in the user set lo[1] (map lfp_user_sets) */
  LFP_OP_USER_NOT_IN,
};

/* lfp_cond.flags */
#define LFP_C_GROUP_END 0x1      /* last condition on its field */
#define LFP_C_RULE_END 0x2       /* last condition of its filter: action, hard, filter_id are valid */
#define LFP_C_IF_EMPTY 0x4       /* the result when the hook has no value for the field */
#define LFP_C_NO_DEFER_AFTER 0x8 /* no filter needing user space follows in this layer */

/* lfp_cond.action */
enum lfp_action {
  LFP_A_BLOCK,
  LFP_A_PERMIT,
  LFP_A_USERSPACE, /* the engine must decide: a callout, or a condition the kernel cannot evaluate */
};

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
#define LFP_PROBES 31     /* key shapes a layer's table holds */
#define LFP_CURSORS (LFP_PROBES + 1) /* lists merged by one decision: the residual one and one a probe */
#define LFP_PROBES_PER_ENTRY 16
struct lfp_probes {
  struct lfp_probe p[LFP_PROBES_PER_ENTRY];
};
/* Entries [LFP_KL_COUNT, 3 * LFP_KL_COUNT) of a bank: each layer's key shapes, 0-15 in entry
 * LFP_KL_COUNT + the layer, 16-30 in entry 2 * LFP_KL_COUNT + the layer. */
#define LFP_PROBE_ENTRY(kl, i) (LFP_KL_COUNT * (1 + (i) / LFP_PROBES_PER_ENTRY) + (kl))
#define LFP_HEADER_ENTRIES (3 * LFP_KL_COUNT)

struct lfp_bucket {
  lfp_u64 v[2][2]; /* the key's values (each as lfp_values holds it, cut to its length); [1] zero for one field */
  lfp_u32 list;    /* its filters (struct lfp_list_elem): in elements from the bank's start (entry list / 8) */
  lfp_u32 count;
  lfp_u8 probe;    /* its shape: the layer's probe */
  lfp_u8 used;
  lfp_u8 pad[22];
};
#define LFP_MAX_PROBE 64  /* a key is within this many buckets of its home (user space grows the table) */

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

/* A list element: a filter's place in evaluation order (lists are sorted by it) and its guard. */
struct lfp_list_elem {
  lfp_u32 order;
  lfp_u32 guard;
};
#define LFP_LIST_PER_ENTRY 8
#define LFP_ORDER_END 0xffffffffu /* no filter has it: a list that is done */

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
  lfp_u8 pad[24];
};

union lfp_entry {
  struct lfp_cond c;
  struct lfp_layer_hdr h;
  struct lfp_guard g[2];
  struct lfp_bucket b;
  struct lfp_probes p;
  struct lfp_list_elem l[LFP_LIST_PER_ENTRY];
};

struct lfp_config {
  lfp_u64 gen_bank;   /* generation << 1 | active bank; 0: no policy yet (everything permitted) */
  lfp_u32 fail_closed; /* a decision that needs user space blocks when user space is not there */
  lfp_u32 log_allows;  /* also report permits as events */
  lfp_u32 userspace;   /* lfpd reads the queue: a connect that needs user space goes there (mark) */
  lfp_u32 no_packet_cache; /* the packet layers classify every packet (lfp-packet-bench: a first packet's cost) */
  lfp_u32 keep_dropped;    /* the packet layers copy what they drop to lfp_dropped (lfp capture) */
  lfp_u32 datagrams_inspected; /* lfpd's data layers decide DATAGRAM_DATA next: a defer there passes on to them */
  lfp_u32 queued_hooks; /* LFP_QUEUED_HOOK bits: lfpd's packet queue decides that hook's layers (packet_queue.hpp) */
};
/* A netfilter hook of the packet layers (LFP_HOOK_PRE .. _OUT, lfp_packet.h) and family 4 or 6. */
#define LFP_QUEUED_HOOK(hook, family) (1u << ((hook) * 2 + ((family) == 6)))

/* A packet the packet layers dropped, its first LFP_DROP_SNAP bytes (ring buffer lfp_dropped). */
#define LFP_DROP_SNAP 256
#define LFP_LINK_RAW 0      /* from the IP header (the netfilter hooks) */
#define LFP_LINK_ETHERNET 1 /* from the Ethernet header (tcx) */
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

/* The user-space path (datapath/src/userpath.cpp): a connect() or first datagram whose decision needs
 * the engine is let through the hook with SO_MARK = LFP_MARK_BASE | slot; lfpd's NFQUEUE rule takes
 * the flow's first packet (ctstate NEW) to user space, which reads the socket's creator from
 * lfp_pending[slot] and decides. */
#define LFP_MARK_BASE 0x4c460000u /* "LF" */
#define LFP_MARK_MASK 0xffff0000u
#define LFP_PENDING 65536u
struct lfp_pending {
  lfp_u64 app_dev;
  lfp_u64 app_ino;
  lfp_u64 cookie;
  lfp_u32 pid;
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 kl;
};

struct lfp_user_key {
  lfp_u32 set;
  lfp_u32 kind; /* 0 uid, 1 gid */
  lfp_u32 id;
};

struct lfp_values {
  lfp_u64 v[LFP_NSLOTS][2];
  lfp_u32 present; /* bit per slot */
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 pad;
};

struct lfp_verdict {
  lfp_u64 filter_id; /* 0: no filter decided */
  lfp_u32 sublayer;
  lfp_u8 decided;
  lfp_u8 permit;
  lfp_u8 hard;
  lfp_u8 defer;      /* a filter needing user space was reached: the engine must decide */
};

/* What a socket's creator was, kept in socket storage for hooks that run outside its context. */
struct lfp_sock_attr {
  lfp_u64 app_dev;
  lfp_u64 app_ino;
  lfp_u32 pid;
  lfp_u32 uid;
  lfp_u32 gid;
  lfp_u32 listen_refused; /* ALE_AUTH_LISTEN refused this listener: its SYNs are dropped */
  /* Re-authorization of TCP flows (lfp_ale.bpf.c, lfp_reauth). */
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
#define LFP_FLOWS 16384u  /* slots for outbound TCP flows tracked for re-authorization (lfp_flows) */
#define LFP_FLOW_WAYS 4u  /* the slots a flow may take (one group); when all hold open flows it is counted */
/* What an outbound flow's slot keeps of its lfp_sock_attr (lfp_flows): everything before orig_addr. */
#define LFP_FLOW_REC 48u
#ifdef __cplusplus
static_assert(offsetof(lfp_sock_attr, orig_addr) == LFP_FLOW_REC, "a flow slot keeps what comes before orig_addr");
#endif
#define LFP_FLOW_OUTBOUND 1 /* connect(): re-authorized at ALE_AUTH_CONNECT */
#define LFP_FLOW_INBOUND 2  /* accepted: re-authorized at ALE_AUTH_RECV_ACCEPT */

/* ALE_CONNECT_REDIRECT: where a redirect filter sends connects (lfp_redirects, by filter id), and
 * the record a proxy reads to recover the original destination (lfp_redirect_records, by the
 * redirected socket's local address and port: the proxy's peer). */
struct lfp_redirect {
  lfp_u8 addr[16];  /* v4: the first 4 bytes; network order */
  lfp_u16 port;     /* host order */
  lfp_u8 pad[6];
};
struct lfp_redirect_key {
  lfp_u8 addr[16];  /* the redirected socket's local address (v4: first 4 bytes) */
  lfp_u16 port;     /* its local port, host order */
  lfp_u8 family;    /* 4 or 6 */
  lfp_u8 pad[5];
};
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

#define LFP_DIR_OUTBOUND 1
#define LFP_DIR_INBOUND 2

/* The equivalence test's entry point (a BPF_PROG_TYPE_SYSCALL program run by BPF_PROG_TEST_RUN). */
struct lfp_test_ctx {
  lfp_u32 kl;
  lfp_u32 pad;
  struct lfp_values values;
  struct lfp_verdict out;
};

#endif
