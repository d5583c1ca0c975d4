// SPDX-License-Identifier: MIT
#pragma once
// One bound NFQUEUE on a libmnl socket: what the data path's queue readers (the data layers, the
// packet queue) share. Verdicts can be gathered and sent together (one sendmsg for many).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct mnl_socket;
struct nlmsghdr;

namespace lfp::datapath {

// One queued packet, as the kernel sent it.
struct QueuedPacket {
  uint32_t id = 0;
  uint8_t hook = 0;                 // NF_INET_*
  uint32_t mark = 0;
  uint32_t in_if = 0, out_if = 0;   // ifindex, 0: none
  const uint8_t* data = nullptr;    // from the IP header (copy_range bytes at most); null: none copied
  size_t len = 0;
};

class NfQueue {
 public:
  struct Options {
    uint32_t copy_range = 0xffff;  // bytes of each packet copied to user space
    uint32_t max_len = 8192;       // packets the kernel holds for us
    uint32_t flags = 0;            // NFQA_CFG_F_* to set
    uint32_t flags_mask = 0;       // NFQA_CFG_F_* to change
  };
  // Binds `queue`. Throws std::runtime_error (a queue already bound by another reader fails).
  NfQueue(uint16_t queue, const Options& o);
  ~NfQueue();  // (packets not answered are accepted when the queue goes)
  NfQueue(const NfQueue&) = delete;
  NfQueue& operator=(const NfQueue&) = delete;

  int fd() const;
  // Packets the kernel could not queue to `queue` (full, or its reader too slow): queue_dropped +
  // user_dropped of /proc/net/netfilter/nfnetlink_queue, in the caller's network namespace.
  static uint64_t overflowed(uint16_t queue);
  uint32_t portid() const { return portid_; }
  uint16_t queue() const { return queue_; }
  mnl_socket* socket() { return nl_; }

  // Calls `on_packet` for each packet in `n` bytes read from fd().
  void each(const char* buf, size_t n, const std::function<void(const QueuedPacket&)>& on_packet) const;
  // Reads what is queued and calls `on_packet` for each packet; then sends the verdicts add()
  // gathered. Returns at once when nothing is left.
  void drain(const std::function<void(const QueuedPacket&)>& on_packet);

  // A verdict message in a buffer of the caller's (at least MNL_SOCKET_BUFFER_SIZE bytes); add
  // attributes to it, then send(). batch: NFQNL_MSG_VERDICT_BATCH, for every packet up to `id`.
  nlmsghdr* start_verdict(void* buf, uint32_t id, int verdict, bool batch = false) const;
  void send(const nlmsghdr* nlh);
  // Gathered verdicts: add() appends, flush() sends them all in one sendmsg.
  void add(uint32_t id, int verdict, bool batch);
  void flush();

 private:
  mnl_socket* nl_ = nullptr;
  uint32_t portid_ = 0;
  uint16_t queue_;
  std::vector<char> pending_;  // verdict messages not sent yet
};

}  // namespace lfp::datapath
