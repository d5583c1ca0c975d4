// SPDX-License-Identifier: MIT
#include "lfp/datapath/packet_queue.hpp"

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <array>
#include <functional>
#include <string>

#include "lfp/datapath/userpath.hpp"
#include "lfp/packet/walk.hpp"
#include "lfp/datapath/netfilter.hpp"
#include "nfqueue.hpp"

extern "C" {
#include "lfp_kernel.h"
}

namespace lfp::datapath {

namespace {

// lfp_packet.bpf.c's hook numbers, which are netfilter's (NF_INET_PRE_ROUTING .. NF_INET_LOCAL_OUT).
constexpr int kHooks = 4;
// Each hook's chain in LFP's table, at the priority of the xtables table it was in.
struct HookChain {
  const char* name;
  int priority;
};
constexpr HookChain kChains[kHooks] = {{"pkt-pre", -300},   // raw
                                       {"pkt-in", -150},    // mangle
                                       {"pkt-fwd", -150},   // mangle
                                       {"pkt-out", 50}};    // security

constexpr size_t kBatch = 32;                 // packets a read takes (recvmmsg)
constexpr size_t kMsgBytes = 0xffff + 4096;   // one queued packet's netlink message, at most

LayerId v6_of(LayerId v4, bool v6) { return v6 ? static_cast<LayerId>(static_cast<int>(v4) + 1) : v4; }

}  // namespace

// One layer's answer for a packet, what its event says; or, with `log`, a callout's log of the packet.
struct PacketQueue::Decision {
  LayerId layer;
  const packet::Packet* p;
  bool outbound, forward, loopback;
  uint32_t iface;
  ClassifyResult r;
  const ClassifyMeta::Log* log = nullptr;
};

PacketQueue::PacketQueue(const FilterEngine& engine, KernelPath& kernel, uint16_t first, uint16_t count,
                         bool fail_open, bool all_hooks)
    : engine_(engine), kernel_(kernel), first_(first), count_(count ? count : 1), fail_open_(fail_open),
      all_hooks_(all_hooks) {
  NfQueue::Options o;
  // GSO: whole segments, as the stack has them; FAIL_OPEN: a full queue follows --fail open.
  o.flags = NFQA_CFG_F_GSO | (fail_open_ ? NFQA_CFG_F_FAIL_OPEN : 0);
  o.flags_mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
  for (uint16_t i = 0; i < count_; ++i) queues_.push_back(std::make_unique<NfQueue>(first_ + i, o));
  table_ = nf::NetfilterTable::shared();
}

PacketQueue::~PacketQueue() {
  kernel_.set_queued_hooks(0);  // the kernel decides again before the rules go: no packet undecided
  table_->withdraw("packet");
}

std::vector<int> PacketQueue::fds() const {
  std::vector<int> out;
  for (const auto& q : queues_) out.push_back(q->fd());
  return out;
}

uint64_t PacketQueue::overflowed() const {
  uint64_t n = 0;
  for (uint16_t i = 0; i < count_; ++i) n += NfQueue::overflowed(first_ + i);
  return n;
}

void PacketQueue::update(const KernelPolicy& policy) {
  layer_filters_ = policy.layer_filters;
  // A hook is queued when one of its layers needs user space (or, all_hooks, holds a filter).
  uint32_t hooks = 0;
  for (int h = 0; h < kHooks; ++h)
    for (int v6 = 0; v6 < 2; ++v6)
      for (lfp_kl kl4 : hook_layers(h)) {
        const int kl = kl4 + v6;
        if (kl4 == LFP_KL_DATAGRAM_V4 && skip_datagram_) continue;  // the data layers' queue has it
        if (policy.layer_userspace[kl] || (all_hooks_ && policy.layer_filters[kl])) hooks |= LFP_QUEUED_HOOK(h, v6 ? 6 : 4);
      }
  if (hooks == hooks_) return;
  // Rules first, then the programs step aside; the other way round when a hook leaves the queue.
  // Either way a packet meets at least one of the two, which answer alike.
  if (hooks & ~hooks_) rules(hooks | hooks_);
  kernel_.set_queued_hooks(hooks);
  rules(hooks);
  hooks_ = hooks;
}

void PacketQueue::rules(uint32_t hooks) {
  // Each CPU's packets to a queue of their own (queue-cpu-fanout) when there are several.
  const nf::QueueTo queue{first_, count_, fail_open_};
  std::vector<nf::Chain> chains;
  for (int h = 0; h < kHooks; ++h) {
    nf::Chain chain{kChains[h].name, h, kChains[h].priority, {}};
    for (const uint8_t family : {NFPROTO_IPV4, NFPROTO_IPV6}) {
      if (!(hooks & LFP_QUEUED_HOOK(h, family == NFPROTO_IPV6 ? 6 : 4))) continue;
      nf::Rule rule{.nfproto = family, .queue = queue};
      if (h != NF_INET_PRE_ROUTING) {
        chain.rules.push_back(rule);
        continue;
      }
      // INBOUND_IPPACKET is for the host's own packets (not forwarded ones).
      for (const uint32_t type : {RTN_LOCAL, RTN_MULTICAST, RTN_BROADCAST}) {
        if (type == RTN_BROADCAST && family == NFPROTO_IPV6) continue;  // (IPv6 has none)
        rule.fib_daddr_type = type;
        chain.rules.push_back(rule);
      }
    }
    if (!chain.rules.empty()) chains.push_back(std::move(chain));
  }
  table_->set("packet", std::move(chains));
}

void PacketQueue::drain(size_t i) {
  NfQueue& q = *queues_.at(i);
  // Buffers for one read, allocated once a queue (not per packet).
  struct Io {
    std::vector<char> bufs = std::vector<char>(kBatch * kMsgBytes);
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    std::array<uint32_t, kBatch * 2> ids{};
    std::array<int, kBatch * 2> verdicts{};
  };
  static thread_local std::unique_ptr<Io> io_ptr;
  if (!io_ptr) io_ptr = std::make_unique<Io>();
  Io& io = *io_ptr;
  size_t n = 0;  // packets of this read
  const std::function<void(const QueuedPacket&)> take = [&](const QueuedPacket& p) {
    if (n >= io.ids.size()) return;
    io.ids[n] = p.id;
    io.verdicts[n++] = p.data ? decide(p.hook, p.in_if, p.out_if, p.data, p.len) : NF_ACCEPT;
  };
  for (;;) {
    for (size_t k = 0; k < kBatch; ++k) {
      io.iov[k] = {io.bufs.data() + k * kMsgBytes, kMsgBytes};
      io.msgs[k].msg_hdr = {};
      io.msgs[k].msg_hdr.msg_iov = &io.iov[k];
      io.msgs[k].msg_hdr.msg_iovlen = 1;
    }
    const int got = ::recvmmsg(q.fd(), io.msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (got <= 0) break;  // EAGAIN: all read
    ++stats_.reads;
    n = 0;
    for (int k = 0; k < got; ++k) q.each(io.bufs.data() + size_t(k) * kMsgBytes, io.msgs[k].msg_len, take);
    // One message per run of equal verdicts (a batch verdict answers every packet up to its id:
    // the earlier ones are answered already), all sent at once.
    for (size_t k = 0; k < n; ++k) {
      if (k + 1 < n && io.verdicts[k + 1] == io.verdicts[k]) continue;
      const bool run = k > 0 && io.verdicts[k - 1] == io.verdicts[k];
      q.add(io.ids[k], io.verdicts[k], run);
      ++stats_.verdict_messages;
    }
    q.flush();
  }
}

int PacketQueue::decide(int hook, uint32_t in_if, uint32_t out_if, const uint8_t* data, size_t len) {
  ++stats_.packets;
  packet::Packet p;
  packet::parse({data, len}, packet::LinkType::RAW, p);
  if (!p.is_ip()) {  // not IP as the hook says: not ours to judge (as the kernel's programs)
    ++stats_.unparsed;
    return NF_ACCEPT;
  }
  const bool v6 = p.ip_version == 6;
  packet::LayerView view;
  view.fragment = p.is_fragment;
  const bool outbound = hook == NF_INET_LOCAL_OUT;
  view.outbound = outbound;
  view.iface = outbound ? out_if : in_if;
  view.loopback = *view.iface == 1;  // lo is ifindex 1 in every namespace
  if (hook == NF_INET_FORWARD) {
    view.out_iface = out_if;
    view.loopback = false;
  }
  if (const auto ifi = kernel_.iface(*view.iface)) view.iface_type = ifi->iftype;
  // The hook's layers, in the order lfp_packet.bpf.c's walk() has them.
  std::array<LayerId, 3> layers;
  size_t n = 0;
  const bool udp = p.protocol == packet::proto::UDP && !skip_datagram_;
  switch (hook) {
    case NF_INET_PRE_ROUTING: layers[n++] = LayerId::INBOUND_IPPACKET_V4; break;
    case NF_INET_LOCAL_IN:
      if (p.icmp_error) {
        layers[n++] = LayerId::INBOUND_ICMP_ERROR_V4;
      } else {
        layers[n++] = LayerId::INBOUND_TRANSPORT_V4;
        if (udp) layers[n++] = LayerId::DATAGRAM_DATA_V4;
      }
      break;
    case NF_INET_FORWARD: layers[n++] = LayerId::IPFORWARD_V4; break;
    case NF_INET_LOCAL_OUT:
      if (p.icmp_error) {
        layers[n++] = LayerId::OUTBOUND_ICMP_ERROR_V4;
      } else {
        if (udp) layers[n++] = LayerId::DATAGRAM_DATA_V4;
        layers[n++] = LayerId::OUTBOUND_TRANSPORT_V4;
      }
      layers[n++] = LayerId::OUTBOUND_IPPACKET_V4;
      break;
    default: return NF_ACCEPT;
  }
  static thread_local FieldValues values;
  std::optional<Decision> first;  // (log_allows: the first layer with a match names the permit)
  for (size_t i = 0; i < n; ++i) {
    const LayerId layer = v6_of(layers[i], v6);
    const auto kl = kernel_layer(layer);
    if (!kl || !layer_filters_[*kl]) continue;
    packet::layer_values(layer, p, view, values);  // (DATAGRAM_DATA's DIRECTION is the hook's)
    ClassifyMeta meta;  // the callouts get the packet, or at DATAGRAM_DATA its payload
    meta.data = data;
    meta.data_len = len;
    if (layers[i] == LayerId::DATAGRAM_DATA_V4) {
      const size_t at = p.ip_header_len + 8u;
      const size_t end = std::min<size_t>(len, p.ip_total_len ? p.ip_total_len : len);
      meta.data = at <= end ? data + at : nullptr;
      meta.data_len = at <= end ? end - at : 0;
    }
    ++stats_.classifies;
    Decision d{layer, &p, outbound, hook == NF_INET_FORWARD, view.loopback, *view.iface,
               engine_.classify(layer, values, false, &meta)};
    for (const ClassifyMeta::Log& log : meta.logs) {  // (the log callout: before the decision, as a LOG rule)
      Decision logged = d;
      logged.r = ClassifyResult{};
      logged.r.filter = log.filter;
      logged.log = &log;
      event(logged);
    }
    if (!d.r.permit) {
      ++stats_.dropped;
      event(d);
      return NF_DROP;
    }
    if (log_allows_ && d.r.filter && !first) first = std::move(d);
  }
  if (first) event(*first);
  return NF_ACCEPT;
}

void PacketQueue::event(const Decision& d) {
  if (!on_event) return;
  const packet::Packet& p = *d.p;
  const bool v6 = p.ip_version == 6;
  const packet::IpAddr& local = d.outbound || d.forward ? p.src : p.dst;
  const packet::IpAddr& remote = d.outbound || d.forward ? p.dst : p.src;
  const bool ports = p.has_ports();
  nlohmann::json e = {{"type", d.log ? "CLASSIFY_LOG" : d.r.permit ? "CLASSIFY_ALLOW" : "CLASSIFY_DROP"},
                      {"layer", layer_info(d.layer).name},
                      {"ip_version", v6 ? "V6" : "V4"},
                      {"ip_protocol", p.protocol},
                      {"local_address", packet::to_string(local)},
                      {"local_port", ports ? (d.outbound || d.forward ? p.src_port : p.dst_port) : 0},
                      {"remote_address", packet::to_string(remote)},
                      {"remote_port", ports ? (d.outbound || d.forward ? p.dst_port : p.src_port) : 0},
                      {"loopback", d.loopback},
                      {"interface_index", d.iface},
                      {"hard", d.r.hard},
                      {"veto", d.r.veto}};
  if (!d.forward) e["direction"] = d.outbound ? "OUTBOUND" : "INBOUND";  // (none at IPFORWARD, as WFP's)
  add_filter_members(e, d.r);
  if (d.log) {  // (it decided nothing)
    e.erase("hard");
    e.erase("veto");
    e["log_prefix"] = d.log->text;
    if (d.log->suppressed) e["log_suppressed"] = d.log->suppressed;
  }
  on_event(std::move(e));
}

}  // namespace lfp::datapath
