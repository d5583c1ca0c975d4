// SPDX-License-Identifier: MIT
#pragma once
// The packet layers' user-space path (lfpd --packet-queue N): the netfilter hooks whose layers hold a
// filter the kernel cannot decide (a registered callout) are decided by the engine in lfpd. For such a
// hook, an NFQUEUE rule in lfpd's network namespace (table inet lfp) queues every packet there and the hook's
// BPF program lets it through untouched (lfp_config.queued_hooks); lfpd walks the hook's layers as
// the BPF program would (the same values, lfp::packet::layer_values) and answers. Hooks whose layers
// the kernel can decide alone never leave it. docs/packet-layers.md has the table.
//
//   hook         chain, priority (after)                     layers
//   PRE_ROUTING  pkt-pre, raw (-300); fib daddr type         INBOUND_IPPACKET (reassembled, if conntrack is on)
//                local/broadcast/multicast
//   LOCAL_IN     pkt-in, mangle (-150)                       INBOUND_ICMP_ERROR or _TRANSPORT, DATAGRAM_DATA
//   FORWARD      pkt-fwd, mangle (-150)                      IPFORWARD
//   LOCAL_OUT    pkt-out, security (50; after the ALE queue  DATAGRAM_DATA, OUTBOUND_ICMP_ERROR or
//                and the data layers' rules)                 _TRANSPORT, OUTBOUND_IPPACKET
//
// Throughput: K queues (NFQUEUE's queue balance with cpu fanout: each CPU's packets to its own
// queue), read with recvmmsg, answered with NFQNL_MSG_VERDICT_BATCH for each run of equal verdicts,
// all of a read's verdicts in one send; no allocation per packet. The MAC frame layers (tcx) have no
// queue: a callout there follows --fail.
//
// While lfpd is down the rules stay: --fail open gives them bypass, closed does not.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/datapath/kernel.hpp"

namespace lfp::datapath {

class NfQueue;
namespace nf {
class NetfilterTable;
}

struct PacketQueueStats {
  uint64_t packets = 0, dropped = 0, classifies = 0, verdict_messages = 0, reads = 0, unparsed = 0;
};

class PacketQueue {
 public:
  // Binds queues first .. first+count-1. Rules come with update(). Throws std::runtime_error.
  // all_hooks: every hook whose layers hold a filter is queued, not only those needing user space
  // (lfp-packet-bench measures the user-space path so; it also lets one compare both paths).
  PacketQueue(const FilterEngine& engine, KernelPath& kernel, uint16_t first, uint16_t count, bool fail_open,
              bool all_hooks);
  ~PacketQueue();  // the hooks decide in the kernel again, then the rules go
  PacketQueue(const PacketQueue&) = delete;
  PacketQueue& operator=(const PacketQueue&) = delete;

  // After the kernel installed a policy: which hooks are queued.
  void update(const KernelPolicy& policy);
  uint32_t queued_hooks() const { return hooks_; }
  // The DATAGRAM_DATA layer is the data layers' (lfpd --inspect-queue takes the datagram later).
  void leave_datagrams_to_inspector(bool on) { skip_datagram_ = on; }
  void set_log_allows(bool on) { log_allows_ = on; }

  std::vector<int> fds() const;
  // Answers what queue `i` holds. Returns at once when nothing is left.
  void drain(size_t i);
  const PacketQueueStats& stats() const { return stats_; }
  // Packets the kernel could not queue (full queues): --fail decided them (NfQueue::overflowed).
  uint64_t overflowed() const;

  // Drops (and permits, with set_log_allows) as net events (datapath::describe's format).
  std::function<void(nlohmann::json)> on_event;

 private:
  struct Decision;
  void rules(uint32_t hooks);
  int decide(int hook, uint32_t in_if, uint32_t out_if, const uint8_t* data, size_t len);
  void event(const Decision& d);

  const FilterEngine& engine_;
  KernelPath& kernel_;
  uint16_t first_, count_;
  bool fail_open_, all_hooks_;
  bool skip_datagram_ = false, log_allows_ = false;
  uint32_t hooks_ = 0;
  std::array<uint32_t, LFP_KL_COUNT> layer_filters_{};
  std::vector<std::unique_ptr<NfQueue>> queues_;
  std::shared_ptr<nf::NetfilterTable> table_;
  PacketQueueStats stats_;
};

}  // namespace lfp::datapath
