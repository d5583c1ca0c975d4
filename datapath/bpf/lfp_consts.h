// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* The constants LFP's BPF programs and user space share: kernel layers, value slots, condition
 * operators, the index's sizes, counters, and the kernel's numbers that Debian 12's headers lack.
 * Plain C, no types (lfp_structs.h has those); included by lfp_kernel.h.
 */
#ifndef LFP_CONSTS_H
#define LFP_CONSTS_H

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
  /* The packet layers (lfp_packet.bpf.c): netfilter and tcx hooks in lfpd's network namespace. */
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

/* The bits of the FLAGS and L2_FLAGS values the hooks set (WFP's FWP_CONDITION_FLAG_* and
 * FWP_CONDITION_L2_*, engine/include/lfp/engine/catalogue.hpp). */
#define LFP_FLAG_IS_LOOPBACK 0x1
#define LFP_FLAG_IS_REAUTHORIZE 0x4
#define LFP_FLAG_IS_WILDCARD_BIND 0x8
#define LFP_FLAG_IS_FRAGMENT 0x20
#define LFP_L2_IS_NATIVE_ETHERNET 0x1
#define LFP_L2_IS_IP_FRAGMENT_GROUP 0x40

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

/* The index's sizes (lfp_structs.h, docs/kernel-index.md). */
#define LFP_PROBES 31     /* key shapes a layer's table holds */
#define LFP_CURSORS (LFP_PROBES + 1) /* lists merged by one decision: the residual one and one a probe */
#define LFP_PROBES_PER_ENTRY 16
/* Entries [LFP_KL_COUNT, 3 * LFP_KL_COUNT) of a bank: each layer's key shapes, 0-15 in entry
 * LFP_KL_COUNT + the layer, 16-30 in entry 2 * LFP_KL_COUNT + the layer. */
#define LFP_PROBE_ENTRY(kl, i) (LFP_KL_COUNT * (1 + (i) / LFP_PROBES_PER_ENTRY) + (kl))
#define LFP_HEADER_ENTRIES (3 * LFP_KL_COUNT)
#define LFP_MAX_PROBE 64  /* a key is within this many buckets of its home (user space grows the table) */
#define LFP_LIST_PER_ENTRY 8
#define LFP_FP_PER_ENTRY 64 /* bucket fingerprints an entry */
#define LFP_ORDER_END 0xffffffffu /* no filter has it: a list that is done */

/* The netfilter hooks of the packet layers, netfilter's own numbers (NF_INET_PRE_ROUTING ..
 * NF_INET_LOCAL_OUT), then the two tcx directions of the MAC frame layers. */
#define LFP_HOOK_PRE 0
#define LFP_HOOK_IN 1
#define LFP_HOOK_FWD 2
#define LFP_HOOK_OUT 3
#define LFP_HOOK_MAC_IN 4
#define LFP_HOOK_MAC_OUT 5
/* A netfilter hook (LFP_HOOK_PRE .. _OUT) and family 4 or 6, as a bit of lfp_config.queued_hooks. */
#define LFP_QUEUED_HOOK(hook, family) (1u << ((hook) * 2 + ((family) == 6)))

/* A packet the packet layers dropped, its first LFP_DROP_SNAP bytes (ring buffer lfp_dropped). */
#define LFP_DROP_SNAP 256
#define LFP_LINK_RAW 0      /* from the IP header (the netfilter hooks) */
#define LFP_LINK_ETHERNET 1 /* from the Ethernet header (tcx) */

/* The user-space path (datapath/src/userpath.cpp): a connect() or first datagram whose decision needs
 * the engine is let through the hook with SO_MARK = LFP_MARK_BASE | slot; lfpd's NFQUEUE rule takes
 * the flow's first packet (ctstate NEW) to user space, which reads the socket's creator from
 * lfp_pending[slot] and decides. */
#define LFP_MARK_BASE 0x4c460000u /* "LF" */
#define LFP_MARK_MASK 0xffff0000u
#define LFP_PENDING 65536u

#define LFP_FLOWS 16384u  /* slots for outbound TCP flows tracked for re-authorization (lfp_flows) */
#define LFP_FLOW_WAYS 4u  /* the slots a flow may take (one group); when all hold open flows it is counted */
/* What an outbound flow's slot keeps of its lfp_sock_attr (lfp_flows): everything before orig_addr. */
#define LFP_FLOW_REC 48u
#define LFP_FLOW_OUTBOUND 1 /* connect(): re-authorized at ALE_AUTH_CONNECT */
#define LFP_FLOW_INBOUND 2  /* accepted: re-authorized at ALE_AUTH_RECV_ACCEPT */

#define LFP_DIR_OUTBOUND 1  /* lfp_event.packet_dir */
#define LFP_DIR_INBOUND 2

/* The counters user space reads (per-CPU array lfp_counters, by this index). */
enum lfp_counter {
  LFP_CNT_EVENTS_LOST,      /* events the ring had no room for */
  LFP_CNT_DEFERRED,         /* decisions deferred to user space */
  LFP_CNT_FLOWS_IN_STORAGE, /* outbound TCP flows whose group of lfp_flows slots was full */
  LFP_NCOUNTERS
};
#define LFP_COUNTER_SLOTS 4 /* lfp_counters' size: kept as pinned maps of earlier versions have it */

/* What the programs return: netfilter's verdicts and tc's. */
#define LFP_NF_DROP 0
#define LFP_NF_ACCEPT 1
#define LFP_TC_OK 0
#define LFP_TC_SHOT 2

/* The kernel's numbers for BPF netfilter programs (kernel 6.4) and tcx links (6.6). Debian 12's
 * linux-libc-dev (6.1 uapi) and libbpf 1.1 predate them, so they are spelled here as the kernel's
 * uapi has them (include/uapi/linux/bpf.h, linux/netfilter.h); kernel.cpp sets the programs' type
 * and makes the links with BPF_LINK_CREATE itself. */
#define LFP_BPF_PROG_TYPE_NETFILTER 32    /* enum bpf_prog_type BPF_PROG_TYPE_NETFILTER */
#define LFP_BPF_NETFILTER 45              /* enum bpf_attach_type BPF_NETFILTER */
#define LFP_BPF_TCX_INGRESS 46            /* BPF_TCX_INGRESS */
#define LFP_BPF_TCX_EGRESS 47             /* BPF_TCX_EGRESS */
#define LFP_BPF_F_NETFILTER_IP_DEFRAG 1u  /* BPF_F_NETFILTER_IP_DEFRAG: the link asks for reassembly */
#define LFP_NFPROTO_IPV4 2                /* NFPROTO_IPV4 */
#define LFP_NFPROTO_IPV6 10               /* NFPROTO_IPV6 */

#endif
