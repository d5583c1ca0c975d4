// SPDX-License-Identifier: MIT
#pragma once
// The ALE layers' user-space path: decisions the kernel cannot make (a callout, a condition it cannot
// evaluate) are taken by the engine in lfpd. The connect4/6 and sendmsg4/6 hooks let such a socket
// through with a mark naming its pending slot (lfp_kernel.h); an NFQUEUE rule in lfpd's network
// namespace (table inet lfp, chain ale-out at output priority mangle: that mark, ct state new) queues
// the flow's first packet; lfpd classifies it with the whole engine and answers the queue. Later
// packets of the flow are not NEW and never leave the kernel. A refused TCP connect is aborted (sock_diag SOCK_DESTROY), so the
// caller's connect() fails at once instead of timing out.
//
// While lfpd is down the rule stays: with --fail open it carries bypass (the packet passes
// when nobody reads the queue), with --fail closed it does not (the packet is dropped). A full
// queue follows the same choice (NFQA_CFG_F_FAIL_OPEN) and is counted.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lfp/datapath/kernel.hpp"

namespace lfp::datapath {

class NfQueue;
struct QueuedPacket;
namespace nf {
class NetfilterTable;
}

// A queued flow's first packet, with the socket's creator.
struct QueuedFlow {
  lfp_kl kl = LFP_KL_CONNECT_V4;
  int family = 4;
  uint8_t protocol = 0;
  Ip6 local_addr{}, remote_addr{};  // network order; IPv4 in the first 4 bytes
  uint16_t local_port = 0, remote_port = 0;
  uint64_t cookie = 0, app_dev = 0, app_ino = 0;
  uint32_t pid = 0, uid = 0, gid = 0;
};

class UserPath {
 public:
  // Binds the queue, installs its NFQUEUE rule (LFP's table, netfilter.hpp) in the caller's network
  // namespace and tells the hooks to use it. Throws std::runtime_error.
  UserPath(KernelPath& kernel, uint16_t queue, bool fail_open);
  ~UserPath();  // the hooks stop queueing (--fail applies at once) and the rules go
  UserPath(const UserPath&) = delete;
  UserPath& operator=(const UserPath&) = delete;

  int fd() const;
  // Reads what is queued and answers each packet with `decide`: 1 permit, 0 block, -1 the packet
  // waits (answer() later, with its id). Returns at once when nothing is left.
  using Decide = std::function<int(const QueuedFlow&, uint32_t packet_id)>;
  void drain(const Decide& decide);
  // Answers a packet that waited.
  void answer(uint32_t packet_id, const QueuedFlow& f, bool permit);
  uint64_t decided() const { return decided_; }
  uint64_t unknown() const { return unknown_; }  // queued packets with no pending slot (passed)
  // Packets the kernel could not queue (full queue, or lfpd too slow to take them): --fail decided
  // them. From /proc/net/netfilter/nfnetlink_queue (queue_dropped + user_dropped) in this namespace.
  uint64_t overflowed() const;

  // Aborts a TCP socket by its 5-tuple and cookie (sock_diag SOCK_DESTROY). False if it is gone.
  static bool destroy(const QueuedFlow& f);

 private:
  void on_packet(const QueuedPacket& packet, const Decide& decide);

  KernelPath& kernel_;
  uint16_t queue_;
  bool fail_open_;
  std::unique_ptr<NfQueue> q_;
  std::shared_ptr<nf::NetfilterTable> table_;
  uint64_t decided_ = 0, unknown_ = 0;
};

// The engine's decision on a queued flow at its ALE layer, as a net event (the format of
// datapath::describe); *permit is the verdict. Reads the creator's supplementary groups from /proc.
// `meta` goes to the callouts; `reauthorize` sets IS_REAUTHORIZE (the classify after a completion).
nlohmann::json decide(const FilterEngine& engine, const KernelPolicy& policy, const QueuedFlow& f, bool* permit,
                      ClassifyMeta* meta = nullptr, bool reauthorize = false);
// A net event's members for the filter that decided (none when no filter matched).
void add_filter_members(nlohmann::json& event, const ClassifyResult& r);

}  // namespace lfp::datapath
