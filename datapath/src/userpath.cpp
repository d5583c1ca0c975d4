#include "lfp/datapath/userpath.hpp"

#include "command.hpp"
#include "nfqueue.hpp"

#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/inet_diag.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>


namespace lfp::datapath {

using nlohmann::json;

namespace {

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

std::string ip_text(int family, const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof buf);
  return buf;
}

// The first packet of an outbound flow: addresses, protocol and ports (TCP/UDP). False if it is
// not one LFP can read.
bool parse(const uint8_t* p, int len, QueuedFlow& f) {
  if (len < 20) return false;
  const int version = p[0] >> 4;
  int l4 = 0;
  if (version == 4) {
    const int ihl = (p[0] & 15) * 4;
    if (ihl < 20 || len < ihl) return false;
    f.family = 4;
    f.protocol = p[9];
    f.local_addr = ip_text(4, p + 12);
    f.remote_addr = ip_text(4, p + 16);
    l4 = ihl;
  } else if (version == 6) {
    if (len < 40) return false;
    f.family = 6;
    f.protocol = p[6];
    f.local_addr = ip_text(6, p + 8);
    f.remote_addr = ip_text(6, p + 24);
    l4 = 40;
  } else {
    return false;
  }
  if ((f.protocol == IPPROTO_TCP || f.protocol == IPPROTO_UDP) && len >= l4 + 4) {
    f.local_port = static_cast<uint16_t>(p[l4] << 8 | p[l4 + 1]);
    f.remote_port = static_cast<uint16_t>(p[l4 + 2] << 8 | p[l4 + 3]);
  }
  return true;
}

}  // namespace

UserPath::UserPath(KernelPath& kernel, uint16_t queue, bool fail_open)
    : kernel_(kernel), queue_(queue), fail_open_(fail_open) {
  h_ = nfq_open();
  if (!h_) throw std::runtime_error(std::string("NFQUEUE: cannot open: ") + std::strerror(errno));
  q_ = nfq_create_queue(h_, queue_, &UserPath::on_packet, this);
  if (!q_) {
    nfq_close(h_);
    throw std::runtime_error("NFQUEUE: cannot bind queue " + std::to_string(queue_) + " (another reader?)");
  }
  nfq_set_mode(q_, NFQNL_COPY_PACKET, 128);  // headers are enough
  nfq_set_queue_maxlen(q_, 4096);
  // Overflow: with --fail open the kernel passes what it cannot queue; closed, it drops it.
  const uint32_t flags = fail_open_ ? NFQA_CFG_F_FAIL_OPEN : 0;
  nfq_set_queue_flags(q_, NFQA_CFG_F_FAIL_OPEN, flags);
  try {
    rules(true);
  } catch (...) {
    nfq_destroy_queue(q_);
    nfq_close(h_);
    throw;
  }
  kernel_.set_userspace(true);
}

UserPath::~UserPath() {
  kernel_.set_userspace(false);
  rules(false);
  nfq_destroy_queue(q_);
  nfq_close(h_);
}

int UserPath::fd() const { return nfq_fd(h_); }

uint64_t UserPath::overflowed() const { return NfQueue::overflowed(queue_); }

void UserPath::rules(bool install) {
  for (const char* tool : {"iptables", "ip6tables"}) {
    auto ipt = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {tool, "-w", "-t", "mangle"});
      return run_command(args);
    };
    if (!install) {
      ipt({"-D", "OUTPUT", "-j", "LFP-ALE"});
      ipt({"-F", "LFP-ALE"});
      ipt({"-X", "LFP-ALE"});
      continue;
    }
    ipt({"-N", "LFP-ALE"});  // (exists after a crash: reused)
    ipt({"-F", "LFP-ALE"});
    if (ipt({"-C", "OUTPUT", "-j", "LFP-ALE"}) != 0 && ipt({"-I", "OUTPUT", "-j", "LFP-ALE"}) != 0)
      throw std::runtime_error(std::string(tool) + ": cannot add the LFP-ALE chain to mangle OUTPUT");
    std::vector<std::string> rule = {"-A", "LFP-ALE", "-m", "mark", "--mark", hex(LFP_MARK_BASE) + "/" + hex(LFP_MARK_MASK),
                                     "-m", "conntrack", "--ctstate", "NEW", "-j", "NFQUEUE", "--queue-num",
                                     std::to_string(queue_)};
    if (fail_open_) rule.push_back("--queue-bypass");
    if (ipt(rule) != 0) throw std::runtime_error(std::string(tool) + ": cannot add the NFQUEUE rule");
  }
}

void UserPath::drain(const Decide& decide) {
  decide_ = &decide;
  alignas(8) char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;  // EAGAIN: all read (ENOBUFS: the kernel dropped some; the queue flags decided)
    nfq_handle_packet(h_, buf, static_cast<int>(n));
  }
  decide_ = nullptr;
}

int UserPath::on_packet(nfq_q_handle* q, nfgenmsg*, nfq_data* nfa, void* self_ptr) {
  auto* self = static_cast<UserPath*>(self_ptr);
  const nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  const uint32_t id = ntohl(ph->packet_id);
  const uint32_t mark = nfq_get_nfmark(nfa);
  unsigned char* data = nullptr;
  const int len = nfq_get_payload(nfa, &data);
  QueuedFlow f;
  auto p = self->kernel_.pending(mark & ~LFP_MARK_MASK);
  if ((mark & LFP_MARK_MASK) != LFP_MARK_BASE || !p || !p->cookie || len <= 0 || !parse(data, len, f) || !self->decide_) {
    ++self->unknown_;  // not ours to decide
    return nfq_set_verdict(q, id, NF_ACCEPT, 0, nullptr);
  }
  f.kl = static_cast<lfp_kl>(p->kl < LFP_KL_COUNT ? p->kl : 0);
  f.cookie = p->cookie;
  f.app_dev = p->app_dev;
  f.app_ino = p->app_ino;
  f.pid = p->pid;
  f.uid = p->uid;
  f.gid = p->gid;
  const int verdict = (*self->decide_)(f, id);
  if (verdict >= 0) self->answer(id, f, verdict == 1);
  return 0;
}

void UserPath::answer(uint32_t id, const QueuedFlow& f, bool permit) {
  ++decided_;
  nfq_set_verdict(q_, id, permit ? NF_ACCEPT : NF_DROP, 0, nullptr);
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
  inet_pton(f.family == 6 ? AF_INET6 : AF_INET, f.local_addr.c_str(), msg.req.id.idiag_src);
  inet_pton(f.family == 6 ? AF_INET6 : AF_INET, f.remote_addr.c_str(), msg.req.id.idiag_dst);
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
