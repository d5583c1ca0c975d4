#include "lfp/datapath/packet_queue.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <sys/socket.h>

#include <array>
#include <string>

#include "command.hpp"
#include "lfp/datapath/userpath.hpp"
#include "lfp/packet/walk.hpp"
#include "nfqueue.hpp"

extern "C" {
#include "lfp_kernel.h"
}

namespace lfp::datapath {

namespace {

// lfp_packet.h's hook numbers, which are netfilter's (NF_INET_PRE_ROUTING .. NF_INET_LOCAL_OUT).
constexpr int kHooks = 4;
struct HookRule {
  const char* table;
  const char* chain;
  const char* ours;  // the chain lfpd fills (one a hook: two share the mangle table)
};
constexpr HookRule kRules[kHooks] = {{"raw", "PREROUTING", "LFP-PKT-PRE"},
                                     {"mangle", "INPUT", "LFP-PKT-IN"},
                                     {"mangle", "FORWARD", "LFP-PKT-FWD"},
                                     {"security", "OUTPUT", "LFP-PKT-OUT"}};

constexpr size_t kBatch = 32;                 // packets a read takes (recvmmsg)
constexpr size_t kMsgBytes = 0xffff + 4096;   // one queued packet's netlink message, at most

LayerId v6_of(LayerId v4, bool v6) { return v6 ? static_cast<LayerId>(static_cast<int>(v4) + 1) : v4; }

std::string ip_text(const packet::IpAddr& a) {
  return a.v6 ? format_ip6(a.b) : format_ip4(a.v4());
}

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
  remove_rules();  // (what a crashed lfpd left)
}

PacketQueue::~PacketQueue() {
  kernel_.set_queued_hooks(0);  // the kernel decides again before the rules go: no packet undecided
  remove_rules();
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

void PacketQueue::remove_rules() {
  for (const char* tool : {"iptables", "ip6tables"})
    for (const HookRule& r : kRules) {
      run_command({tool, "-w", "-t", r.table, "-D", r.chain, "-j", r.ours});
      run_command({tool, "-w", "-t", r.table, "-F", r.ours});
      run_command({tool, "-w", "-t", r.table, "-X", r.ours});
    }
}

void PacketQueue::rules(uint32_t hooks) {
  std::vector<std::string> target = {"-j", "NFQUEUE"};
  if (count_ == 1) {
    target.insert(target.end(), {"--queue-num", std::to_string(first_)});
  } else {  // each CPU's packets to a queue of their own
    target.insert(target.end(), {"--queue-balance", std::to_string(first_) + ":" + std::to_string(first_ + count_ - 1),
                                 "--queue-cpu-fanout"});
  }
  if (fail_open_) target.push_back("--queue-bypass");
  for (int v6 = 0; v6 < 2; ++v6) {
    const std::string tool = v6 ? "ip6tables" : "iptables";
    for (int h = 0; h < kHooks; ++h) {
      const HookRule& r = kRules[h];
      auto ipt = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {tool, "-w", "-t", r.table});
        return run_command(args);
      };
      const bool want = hooks & LFP_QUEUED_HOOK(h, v6 ? 6 : 4);
      const bool have = ipt({"-C", r.chain, "-j", r.ours}) == 0;
      if (!want) {
        if (have) ipt({"-D", r.chain, "-j", r.ours});
        ipt({"-F", r.ours});
        ipt({"-X", r.ours});
        continue;
      }
      if (have) continue;
      ipt({"-N", r.ours});
      ipt({"-F", r.ours});
      auto queue = [&](std::vector<std::string> match) {
        match.insert(match.begin(), {"-A", r.ours});
        match.insert(match.end(), target.begin(), target.end());
        return ipt(match);
      };
      bool ok;
      if (h == NF_INET_PRE_ROUTING) {  // INBOUND_IPPACKET is for the host's own packets (not forwarded ones)
        ok = queue({"-m", "addrtype", "--dst-type", "LOCAL"}) == 0 &&
             queue({"-m", "addrtype", "--dst-type", "MULTICAST"}) == 0;
        if (!v6) ok = ok && queue({"-m", "addrtype", "--dst-type", "BROADCAST"}) == 0;
      } else {
        ok = queue({}) == 0;
      }
      if (!ok || ipt({"-I", r.chain, "-j", r.ours}) != 0)
        throw std::runtime_error(tool + ": cannot add the " + r.ours + " NFQUEUE rules to " + r.table + " " + r.chain);
    }
  }
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
  struct Ctx {
    PacketQueue* self;
    Io* io;
    size_t n = 0;
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
    Ctx ctx{this, &io};
    for (int k = 0; k < got; ++k) {
      mnl_cb_run(
          io.bufs.data() + size_t(k) * kMsgBytes, io.msgs[k].msg_len, 0, q.portid(),
          [](const nlmsghdr* nlh, void* cp) -> int {
            auto* c = static_cast<Ctx*>(cp);
            nlattr* attr[NFQA_MAX + 1] = {};
            if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR] || c->n >= c->io->ids.size()) return MNL_CB_OK;
            const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
            const uint32_t in = attr[NFQA_IFINDEX_INDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV])) : 0;
            const uint32_t out = attr[NFQA_IFINDEX_OUTDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV])) : 0;
            int verdict = NF_ACCEPT;
            if (attr[NFQA_PAYLOAD])
              verdict = c->self->decide(ph->hook, in, out, static_cast<const uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD])),
                                        mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]));
            c->io->ids[c->n] = ntohl(ph->packet_id);
            c->io->verdicts[c->n++] = verdict;
            return MNL_CB_OK;
          },
          &ctx);
    }
    // One message per run of equal verdicts (a batch verdict answers every packet up to its id:
    // the earlier ones are answered already), all sent at once.
    for (size_t k = 0; k < ctx.n; ++k) {
      if (k + 1 < ctx.n && io.verdicts[k + 1] == io.verdicts[k]) continue;
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
  // The hook's layers, in the order lfp_packet.h's walk() has them.
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
                      {"local_address", ip_text(local)},
                      {"local_port", ports ? (d.outbound || d.forward ? p.src_port : p.dst_port) : 0},
                      {"remote_address", ip_text(remote)},
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
