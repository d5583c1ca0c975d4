// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* The maps of LFP's BPF object, and the structs only the programs use. lfp_maps.bpf.c defines them
 * (LFP_MAPS_DEFINED_HERE); every other translation unit declares them extern, and `bpftool gen
 * object` links the units into one object, one map of each name (pinned by that name: a restart
 * reuses them). A map's type and sizes must not change between versions: lfpd reuses the pinned map.
 */
#ifndef LFP_MAPS_H
#define LFP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lfp_kernel.h"

#ifdef LFP_MAPS_DEFINED_HERE
#define LFP_MAP
#else
#define LFP_MAP extern
#endif

/* ---- The policy and its settings (lfp_structs.h) ------------------------------------------------ */

/* Two banks (lfp_config.gen_bank says which is in force), each an array map of its own that user
 * space sizes to the policy it holds (BPF_F_INNER_MAP: banks of any size). */
struct lfp_bank {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(union lfp_entry)); /* (libbpf 1.1 cannot size a union named by __type here) */
};
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 2);
  __type(key, __u32);
  __array(values, struct lfp_bank);
} lfp_banks SEC(".maps");

LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct lfp_config);
} lfp_cfg SEC(".maps");

LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct lfp_user_key);
  __type(value, __u8);
} lfp_user_sets SEC(".maps");

/* ALE_CONNECT_REDIRECT and ALE_BIND_REDIRECT targets, by filter id (written before the policy that
 * uses them is flipped in). */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct lfp_redirect);
} lfp_redirects SEC(".maps");

/* ---- What the hooks report ---------------------------------------------------------------------- */

LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 22);
} lfp_events SEC(".maps");

/* Counters user space reads, by enum lfp_counter. */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LFP_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} lfp_counters SEC(".maps");
_Static_assert(LFP_NCOUNTERS <= LFP_COUNTER_SLOTS, "a slot for each counter");

/* ---- The classifier's working state (lfp_classify.bpf.c) ---------------------------------------- */

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
  __u32 fingerprint; /* the probed key's */
  struct lfp_verdict out;
};
struct scratch {
  struct lfp_values v;
  struct eval_state st;
};
#define LFP_NEST 4
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LFP_NEST + 1); /* [LFP_NEST].st.j holds the depth */
  __type(key, __u32);
  __type(value, struct scratch);
} lfp_scratch SEC(".maps");

/* ---- The ALE layers' sockets and flows (lfp_ale.h) ---------------------------------------------- */

LFP_MAP struct {
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
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, LFP_FLOWS);
  __type(key, __u32);
  __type(value, struct lfp_flow_slot);
} lfp_flows SEC(".maps");

/* A socket's address in the kernel, read back as a number (lfp_ale.h, sock_addr). */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} lfp_sk_addr SEC(".maps");

/* Datagram flows already authorized (or refused): key socket cookie, remote, generation. */
struct dgram_key {
  __u64 cookie;
  __u64 gen;
  __u64 remote[2];
  __u16 port;
  __u8 dir;
  __u8 pad[5];
};
_Static_assert(sizeof(struct dgram_key) == 40, "no hole a hash key's bytes could differ in");
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct dgram_key);
  __type(value, __u8);
} lfp_dgram SEC(".maps");

/* Sockets whose first packet waits for user space's decision, by slot (the low 16 bits of its mark). */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, LFP_PENDING);
  __type(key, __u32);
  __type(value, struct lfp_pending);
} lfp_pending SEC(".maps");

/* Redirected connections by their local address and port (what the proxy sees as its peer). */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct lfp_redirect_key);
  __type(value, struct lfp_redirect_record);
} lfp_redirect_records SEC(".maps");

/* ---- The packet layers (lfp_packet.bpf.c) ------------------------------------------------------- */

/* The host's addresses (lfpd keeps them current): value LFP_NLAT_UNICAST or LFP_NLAT_BROADCAST. */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct lfp_local_key);
  __type(value, __u8);
} lfp_local_addrs SEC(".maps");

/* The interfaces' types and MAC addresses (lfpd keeps them current). */
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, struct lfp_iface);
} lfp_ifaces SEC(".maps");

/* A hook's decision for the values it classified, under one policy generation: a packet whose values
 * were classified before costs one lookup (classification is a function of the values alone). */
struct pkt_key {
  __u64 gen;
  __u32 saddr[4];
  __u32 daddr[4];
  __u16 sport, dport;
  __u32 in_if, out_if;
  __u8 hook, family, proto, frag;
};
_Static_assert(sizeof(struct pkt_key) == 7 * sizeof(__u64), "key_eq compares seven words");
struct pkt_decision {
  __u64 filter_id;
  __u32 sublayer;
  __u8 drop, kl, hard, defer;
};
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct pkt_key);
  __type(value, struct pkt_decision);
} lfp_pkt_cache SEC(".maps");

/* In front of lfp_pkt_cache, each CPU's own small direct-mapped copy of the decisions it used last:
 * no lock, no hash of the whole key, memory this CPU has just touched. [LFP_FAST_SLOTS] is not a slot:
 * its key.gen is set while this CPU writes one (a hook interrupting the write then does not write). */
#define LFP_FAST_SLOTS 1024u
struct fast_entry {
  struct pkt_key key; /* key.gen 0: being written (or empty) */
  struct pkt_decision dec;
};
LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LFP_FAST_SLOTS + 1);
  __type(key, __u32);
  __type(value, struct fast_entry);
} lfp_pkt_fast SEC(".maps");

LFP_MAP struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} lfp_dropped SEC(".maps");

#endif
