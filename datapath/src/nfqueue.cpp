// SPDX-License-Identifier: MIT
#include "nfqueue.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace lfp::datapath {

NfQueue::NfQueue(uint16_t queue, const Options& o) : queue_(queue) {
  nl_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl_ || mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    if (nl_) mnl_socket_close(nl_);
    throw std::runtime_error(std::string("NFQUEUE: cannot open netlink: ") + std::strerror(errno));
  }
  portid_ = mnl_socket_get_portid(nl_);
  int on = 1, rcvbuf = 8 << 20;
  setsockopt(fd(), SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);
  setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  auto config = [&](auto&& fill) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_);
    nlh->nlmsg_flags |= NLM_F_ACK;
    fill(nlh);
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return false;
    const ssize_t n = mnl_socket_recvfrom(nl_, buf, sizeof buf);
    return n > 0 && mnl_cb_run(buf, static_cast<size_t>(n), 0, portid_, nullptr, nullptr) >= 0;
  };
  const bool ok = config([](nlmsghdr* h) { nfq_nlmsg_cfg_put_cmd(h, AF_INET, NFQNL_CFG_CMD_BIND); }) &&
                  config([&](nlmsghdr* h) { nfq_nlmsg_cfg_put_params(h, NFQNL_COPY_PACKET, static_cast<int>(o.copy_range)); }) &&
                  config([&](nlmsghdr* h) { nfq_nlmsg_cfg_put_qmaxlen(h, o.max_len); }) &&
                  (!o.flags_mask || config([&](nlmsghdr* h) {
                    mnl_attr_put_u32(h, NFQA_CFG_FLAGS, htonl(o.flags));
                    mnl_attr_put_u32(h, NFQA_CFG_MASK, htonl(o.flags_mask));
                  }));
  if (!ok) {
    const int e = errno;
    mnl_socket_close(nl_);
    throw std::runtime_error("NFQUEUE: cannot bind queue " + std::to_string(queue_) + ": " + std::strerror(e) +
                             " (another reader?)");
  }
}

NfQueue::~NfQueue() { mnl_socket_close(nl_); }

int NfQueue::fd() const { return mnl_socket_get_fd(nl_); }

uint64_t NfQueue::overflowed(uint16_t queue) {
  // Columns: queue number, peer port id, queue total, copy mode, copy range, queue dropped,
  // user dropped, id sequence, 1.
  FILE* f = std::fopen("/proc/net/netfilter/nfnetlink_queue", "r");
  if (!f) return 0;
  unsigned num, mode, range;
  unsigned long long portid, total, qdropped, udropped, seq, one;
  uint64_t out = 0;
  while (std::fscanf(f, "%u %llu %llu %u %u %llu %llu %llu %llu", &num, &portid, &total, &mode, &range, &qdropped,
                     &udropped, &seq, &one) == 9)
    if (num == queue) out = qdropped + udropped;
  std::fclose(f);
  return out;
}

void NfQueue::each(const char* buf, size_t n, const std::function<void(const QueuedPacket&)>& on_packet) const {
  auto one = [](const nlmsghdr* nlh, void* fn) -> int {
    nlattr* attr[NFQA_MAX + 1] = {};
    if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) return MNL_CB_OK;
    const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
    auto u32 = [&](int a) { return attr[a] ? ntohl(mnl_attr_get_u32(attr[a])) : 0u; };
    QueuedPacket p;
    p.id = ntohl(ph->packet_id);
    p.hook = ph->hook;
    p.mark = u32(NFQA_MARK);
    p.in_if = u32(NFQA_IFINDEX_INDEV);
    p.out_if = u32(NFQA_IFINDEX_OUTDEV);
    if (attr[NFQA_PAYLOAD]) {
      p.data = static_cast<const uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD]));
      p.len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    }
    (*static_cast<const std::function<void(const QueuedPacket&)>*>(fn))(p);
    return MNL_CB_OK;
  };
  mnl_cb_run(buf, n, 0, portid_, one, const_cast<std::function<void(const QueuedPacket&)>*>(&on_packet));
}

void NfQueue::drain(const std::function<void(const QueuedPacket&)>& on_packet) {
  alignas(8) static thread_local char buf[0xffff + 4096];  // (one packet's message at most; not on the stack)
  for (;;) {
    const ssize_t n = ::recv(fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;  // EAGAIN: all read (ENOBUFS: the kernel dropped some; the queue flags decided)
    each(buf, static_cast<size_t>(n), on_packet);
  }
  flush();
}

nlmsghdr* NfQueue::start_verdict(void* buf, uint32_t id, int verdict, bool batch) const {
  nlmsghdr* nlh = nfq_nlmsg_put(static_cast<char*>(buf), batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, queue_);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), verdict);
  return nlh;
}

void NfQueue::send(const nlmsghdr* nlh) { mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len); }

void NfQueue::add(uint32_t id, int verdict, bool batch) {
  alignas(8) char buf[256];
  const nlmsghdr* nlh = start_verdict(buf, id, verdict, batch);
  pending_.insert(pending_.end(), buf, buf + NLMSG_ALIGN(nlh->nlmsg_len));
  if (pending_.size() > 60000) flush();  // (within one netlink send)
}

void NfQueue::flush() {
  if (pending_.empty()) return;
  mnl_socket_sendto(nl_, pending_.data(), pending_.size());
  pending_.clear();
}

}  // namespace lfp::datapath
