// SPDX-License-Identifier: MIT
#include "lfp/datapath/userpath.hpp"

#include "lfp/datapath/netfilter.hpp"
#include "nfqueue.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "lfp/packet/parse.hpp"

namespace lfp::datapath {

namespace {

// The first packet of an outbound flow: addresses, protocol and ports (TCP/UDP). False if it is
// not one LFP can read.
bool parse(const uint8_t* data, size_t len, QueuedFlow& f) {
  if (!data) return false;
  packet::Packet p;
  packet::parse({data, len}, packet::LinkType::RAW, p);
  if (!p.is_ip()) return false;
  f.family = p.ip_version;
  f.protocol = p.protocol;
  f.local_addr = p.src.b;
  f.remote_addr = p.dst.b;
  if (p.has_ports()) {
    f.local_port = p.src_port;
    f.remote_port = p.dst_port;
  }
  return true;
}

}  // namespace

UserPath::UserPath(KernelPath& kernel, uint16_t queue, bool fail_open)
    : kernel_(kernel), queue_(queue), fail_open_(fail_open) {
  NfQueue::Options o;
  o.copy_range = 128;  // headers are enough
  o.max_len = 4096;
  // Overflow: with --fail open the kernel passes what it cannot queue; closed, it drops it.
  o.flags = fail_open_ ? NFQA_CFG_F_FAIL_OPEN : 0;
  o.flags_mask = NFQA_CFG_F_FAIL_OPEN;
  q_ = std::make_unique<NfQueue>(queue_, o);
  table_ = nf::NetfilterTable::shared();
  // mangle OUTPUT: a new flow the hooks marked with a pending slot is queued.
  nf::Rule rule;
  rule.mark = nf::Masked{LFP_MARK_BASE, LFP_MARK_MASK};
  rule.ct_new = true;
  rule.queue = nf::QueueTo{queue_, 1, fail_open_};
  table_->set("ale", {nf::Chain{"ale-out", NF_INET_LOCAL_OUT, -150, {rule}}});
  kernel_.set_userspace(true);
}

UserPath::~UserPath() {
  kernel_.set_userspace(false);
  table_->withdraw("ale");
}

int UserPath::fd() const { return q_->fd(); }

uint64_t UserPath::overflowed() const { return NfQueue::overflowed(queue_); }

void UserPath::drain(const Decide& decide) {
  q_->drain([&](const QueuedPacket& p) { on_packet(p, decide); });
}

void UserPath::on_packet(const QueuedPacket& packet, const Decide& decide) {
  QueuedFlow f;
  auto p = kernel_.pending(packet.mark & ~LFP_MARK_MASK);
  if ((packet.mark & LFP_MARK_MASK) != LFP_MARK_BASE || !p || !p->cookie || !parse(packet.data, packet.len, f)) {
    ++unknown_;  // not ours to decide
    return q_->add(packet.id, NF_ACCEPT, false);
  }
  f.kl = static_cast<lfp_kl>(p->kl < LFP_KL_COUNT ? p->kl : 0);
  f.cookie = p->cookie;
  f.app_dev = p->app_dev;
  f.app_ino = p->app_ino;
  f.pid = p->pid;
  f.uid = p->uid;
  f.gid = p->gid;
  const int verdict = decide(f, packet.id);
  if (verdict >= 0) answer(packet.id, f, verdict == 1);
}

void UserPath::answer(uint32_t id, const QueuedFlow& f, bool permit) {
  ++decided_;
  q_->add(id, permit ? NF_ACCEPT : NF_DROP, false);
  q_->flush();
  if (!permit && f.protocol == IPPROTO_TCP) destroy(f);  // connect() fails now, not after retries
}

bool UserPath::destroy(const QueuedFlow& f) {
  int s = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (s < 0) return false;
  struct {
    nlmsghdr nh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nh.nlmsg_len = sizeof msg;
  msg.nh.nlmsg_type = SOCK_DESTROY;
  msg.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  msg.req.sdiag_family = f.family == 6 ? AF_INET6 : AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  msg.req.id.idiag_sport = htons(f.local_port);
  msg.req.id.idiag_dport = htons(f.remote_port);
  std::memcpy(msg.req.id.idiag_src, f.local_addr.data(), f.family == 6 ? 16 : 4);
  std::memcpy(msg.req.id.idiag_dst, f.remote_addr.data(), f.family == 6 ? 16 : 4);
  msg.req.id.idiag_cookie[0] = static_cast<uint32_t>(f.cookie);
  msg.req.id.idiag_cookie[1] = static_cast<uint32_t>(f.cookie >> 32);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  bool ok = ::sendto(s, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) == sizeof msg;
  if (ok) {
    char buf[512];
    const ssize_t n = ::recv(s, buf, sizeof buf, 0);
    const auto* nh = reinterpret_cast<const nlmsghdr*>(buf);
    ok = n >= static_cast<ssize_t>(sizeof(nlmsghdr) + sizeof(nlmsgerr)) && nh->nlmsg_type == NLMSG_ERROR &&
         reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(nh))->error == 0;
  }
  ::close(s);
  return ok;
}

}  // namespace lfp::datapath
