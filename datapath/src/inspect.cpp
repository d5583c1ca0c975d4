// SPDX-License-Identifier: MIT
#include "lfp/datapath/inspect.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <tuple>

#include "lfp/datapath/userpath.hpp"
#include "lfp/packet/build.hpp"
#include "lfp/packet/parse.hpp"
#include "lfp/datapath/netfilter.hpp"
#include "nfqueue.hpp"

#undef IP_PROTOCOL  // (linux/in.h's socket option, not the engine's field)

namespace lfp::datapath {

using nlohmann::json;

// One queued packet, parsed.
struct DataInspector::Packet {
  uint32_t id = 0;
  bool out = false;  // LOCAL_OUT: sent by this host
  bool loopback = false;
  packet::Packet ip;
  const uint8_t* payload = nullptr;  // the transport payload
  size_t payload_len = 0;
  const uint8_t* raw = nullptr;  // the whole packet
  size_t raw_len = 0;
};

namespace {

std::string ip_text(bool v6, const Ip6& a) { return packet::to_string(packet::IpAddr{v6, a}); }

bool seq_before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
void put16(std::string& s, size_t at, uint16_t v) {
  s[at] = static_cast<char>(v >> 8);
  s[at + 1] = static_cast<char>(v);
}

// Sets an IP packet's lengths and its IPv4 header, UDP and TCP checksums (in full: the kernel takes a
// packet changed in the queue as it is). False if it is not one LFP can fix. *parsed: its headers.
bool fix_packet(std::string& pkt, packet::Packet* parsed = nullptr) {
  auto* b = reinterpret_cast<uint8_t*>(pkt.data());
  const size_t len = pkt.size();
  // The IP length first: the parser reads the headers by it.
  const bool v6 = len && b[0] >> 4 == 6;
  if (len < (v6 ? 40u : 20u) || len - (v6 ? 40 : 0) > 0xffff) return false;
  put16(pkt, v6 ? 4 : 2, static_cast<uint16_t>(v6 ? len - 40 : len));
  packet::Packet p;
  packet::parse({b, len}, packet::LinkType::RAW, p);
  if (parsed) *parsed = p;
  if (!p.is_ip()) return false;
  const size_t l4 = p.ip_header_len;
  const uint8_t proto = p.protocol;
  uint32_t pseudo;
  if (!v6) {
    put16(pkt, 10, 0);
    put16(pkt, 10, fold(sum16(b, l4)));
    pseudo = sum16(b + 12, 8) + proto + static_cast<uint32_t>(len - l4);
  } else {
    pseudo = sum16(b + 8, 32) + proto + static_cast<uint32_t>(len - l4);
  }
  size_t at;
  if (proto == IPPROTO_UDP && len >= l4 + 8) {
    put16(pkt, l4 + 4, static_cast<uint16_t>(len - l4));
    at = l4 + 6;
  } else if (proto == IPPROTO_TCP && len >= l4 + 20) {
    at = l4 + 16;
  } else {
    return proto != IPPROTO_UDP && proto != IPPROTO_TCP;
  }
  put16(pkt, at, 0);
  uint16_t c = fold(sum16(b + l4, len - l4, pseudo));
  if (proto == IPPROTO_UDP && c == 0) c = 0xffff;
  put16(pkt, at, c);
  return true;
}

// Sends a whole IP packet as it is: to one of the host's addresses it is received, else sent on.
bool inject_packet(std::string pkt) {
  packet::Packet p;
  if (!fix_packet(pkt, &p)) return false;
  const bool v6 = p.ip_version == 6;
  const int s = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);  // (IPPROTO_RAW: header included)
  if (s < 0) return false;
  sockaddr_storage to{};
  socklen_t tl;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&to);
    a->sin6_family = AF_INET6;
    std::memcpy(&a->sin6_addr, p.dst.b.data(), 16);
    tl = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&to);
    a->sin_family = AF_INET;
    std::memcpy(&a->sin_addr, p.dst.b.data(), 4);
    tl = sizeof *a;
  }
  const bool ok = ::sendto(s, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), tl) == static_cast<ssize_t>(pkt.size());
  ::close(s);
  return ok;
}

// A RST from the local end to the remote with sequence number `seq` (the peer's next expected
// byte: only that one resets an established connection, RFC 5961).
void send_reset(bool v6, const Ip6& from, uint16_t sport, const Ip6& to, uint16_t dport, uint32_t seq) {
  namespace build = packet::build;
  const build::Bytes tcp = build::tcp(sport, dport, packet::tcp_flag::RST, seq, 0);
  const packet::IpAddr src{v6, from}, dst{v6, to};
  const build::Bytes pkt = v6 ? build::ipv6(src, dst, packet::proto::TCP, tcp) : build::ipv4(src, dst, packet::proto::TCP, tcp);
  inject_packet(std::string(pkt.begin(), pkt.end()));  // (checksums: fix_packet's)
}

int64_t mono_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

}  // namespace

size_t DataInspector::FlowKeyHash::operator()(const FlowKey& k) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  mix(k.a.data(), k.v6 ? 16 : 4);
  mix(k.b.data(), k.v6 ? 16 : 4);
  const uint32_t ports = uint32_t{k.pa} << 16 | k.pb;
  mix(reinterpret_cast<const uint8_t*>(&ports), 4);
  return h;
}

DataInspector::DataInspector(const FilterEngine& engine, uint16_t queue, bool fail_open)
    : engine_(engine), queue_(queue), fail_open_(fail_open) {
  // GSO: whole segments as the stack has them (no re-segmenting); FAIL_OPEN: --fail open.
  NfQueue::Options o;
  o.flags = NFQA_CFG_F_GSO | (fail_open_ ? NFQA_CFG_F_FAIL_OPEN : 0);
  o.flags_mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
  q_ = std::make_unique<NfQueue>(queue_, o);
  table_ = nf::NetfilterTable::shared();
}

DataInspector::~DataInspector() {
  table_->withdraw("data");
  for (auto& [key, f] : flows_)
    for (const auto& [callout, ctx] : f->contexts) engine_.flow_delete(callout, f->handle, ctx);
}

int DataInspector::fd() const { return q_->fd(); }

void DataInspector::update() {
  FilterTemplate t;
  bool tcp = false, udp = false;
  for (LayerId l : {LayerId::STREAM_V4, LayerId::STREAM_V6}) {
    t.layer = l;
    tcp = tcp || !engine_.filters(t).empty();
  }
  for (LayerId l : {LayerId::DATAGRAM_DATA_V4, LayerId::DATAGRAM_DATA_V6}) {
    t.layer = l;
    udp = udp || !engine_.filters(t).empty();
  }
  if (tcp != tcp_ || udp != udp_) rules(tcp, udp);
}

void DataInspector::rules(bool tcp, bool udp) {
  std::vector<nf::Chain> chains;
  if (tcp || udp) {
    // filter INPUT (not from lo: loopback packets are seen once, on the way out) and OUTPUT.
    std::vector<nf::Rule> rules;
    rules.push_back({.ct_mark = nf::Masked{kFlowDoneMark, kFlowDoneMark}});  // flows marked done: not queued again
    for (const auto& [proto, wanted] : {std::pair{packet::proto::TCP, tcp}, std::pair{packet::proto::UDP, udp}})
      if (wanted) rules.push_back({.l4proto = proto, .queue = nf::QueueTo{queue_, 1, fail_open_}});
    chains.push_back({"data-out", NF_INET_LOCAL_OUT, 0, rules});
    nf::Rule from_lo;
    from_lo.iifname = "lo";
    rules.insert(rules.begin(), from_lo);
    chains.push_back({"data-in", NF_INET_LOCAL_IN, 0, std::move(rules)});
  }
  table_->set("data", std::move(chains));
  tcp_ = tcp;
  udp_ = udp;
}

void DataInspector::verdict(uint32_t id, bool accept, bool mark_done, const std::string* packet) {
  alignas(8) char buf[MNL_SOCKET_BUFFER_SIZE + 0x10000];
  nlmsghdr* nlh = q_->start_verdict(buf, id, accept ? NF_ACCEPT : NF_DROP);
  if (packet) nfq_nlmsg_verdict_put_pkt(nlh, packet->data(), static_cast<uint32_t>(packet->size()));  // modified
  if (mark_done) {  // the conntrack entry's mark, through ctnetlink's glue: only our bit changes
    nlattr* nest = mnl_attr_nest_start(nlh, NFQA_CT);
    mnl_attr_put_u32(nlh, CTA_MARK, htonl(kFlowDoneMark));
    mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(~kFlowDoneMark));
    mnl_attr_nest_end(nlh, nest);
  }
  q_->send(nlh);
}

void DataInspector::drain() {
  q_->drain([&](const QueuedPacket& queued) {
    Packet p;
    p.id = queued.id;
    p.out = queued.hook == NF_INET_LOCAL_OUT;
    p.loopback = (queued.out_if ? queued.out_if : queued.in_if) == 1;  // lo is ifindex 1 in every namespace
    if (!queued.data) return verdict(p.id, true);
    packet::parse({queued.data, queued.len}, packet::LinkType::RAW, p.ip);
    p.raw = queued.data;
    p.raw_len = queued.len;
    if (!p.ip.has_ports() || p.ip.is_fragment) return verdict(p.id, true);  // not a flow LFP reads (the packet layers see it)
    const size_t l4 = p.ip.ip_header_len + (p.ip.protocol == packet::proto::TCP ? p.ip.tcp_header_len : 8u);
    const size_t end = std::min<size_t>(queued.len, p.ip.ip_total_len ? p.ip.ip_total_len : queued.len);
    if (l4 <= end) {
      p.payload = queued.data + l4;
      p.payload_len = end - l4;
    }
    on_packet(p);
  });
}

void DataInspector::on_packet(const Packet& p) {
  ++stats_.packets;
  if (p.ip.protocol == packet::proto::TCP) on_tcp(p);
  else on_udp(p);
}

json DataInspector::event(const Flow& f, LayerId layer, const ClassifyResult& r, int d) const {
  json e = {{"type", r.permit ? "CLASSIFY_ALLOW" : "CLASSIFY_DROP"},
            {"layer", layer_info(layer).name},
            {"ip_version", f.v6 ? "V6" : "V4"},
            {"ip_protocol", layer == LayerId::STREAM_V4 || layer == LayerId::STREAM_V6 ? 6 : 17},
            {"local_address", ip_text(f.v6, f.local)},
            {"local_port", f.local_port},
            {"remote_address", ip_text(f.v6, f.remote)},
            {"remote_port", f.remote_port},
            {"direction", (d >= 0 ? d == 0 : f.outbound) ? "OUTBOUND" : "INBOUND"},
            {"loopback", f.loopback},
            {"hard", r.hard},
            {"veto", r.veto}};
  add_filter_members(e, r);
  return e;
}

FieldValues DataInspector::values(const Flow& f, LayerId layer, int d) const {
  const LayerInfo& info = layer_info(layer);
  FieldValues v;
  auto num = [&](FieldId field, uint64_t x) {
    if (layer_has_field(info, field)) v.set(field, Value{field_type(field, info.family), x});
  };
  auto addr = [&](FieldId field, const Ip6& a) {
    if (layer_has_field(info, field)) v.set(field, packet::value_of(packet::IpAddr{f.v6, a}));
  };
  // DIRECTION: a datagram's own at DATAGRAM_DATA, the connection's at STREAM.
  num(FieldId::DIRECTION, d >= 0 ? d : f.outbound ? 0 : 1);
  num(FieldId::FLAGS, f.loopback ? 0x1 /* IS_LOOPBACK */ : 0);
  num(FieldId::IP_PROTOCOL, layer == LayerId::STREAM_V4 || layer == LayerId::STREAM_V6 ? 6 : 17);
  addr(FieldId::IP_LOCAL_ADDRESS, f.local);
  addr(FieldId::IP_REMOTE_ADDRESS, f.remote);
  num(FieldId::IP_LOCAL_PORT, f.local_port);
  num(FieldId::IP_REMOTE_PORT, f.remote_port);
  return v;
}

// --- DATAGRAM_DATA: each datagram, with its payload -------------------------------------------

void DataInspector::on_udp(const Packet& p) {
  ++stats_.datagrams;
  const bool v6 = p.ip.src.v6;
  const LayerId layer = v6 ? LayerId::DATAGRAM_DATA_V6 : LayerId::DATAGRAM_DATA_V4;
  Flow f;  // (a datagram's view; not kept)
  f.v6 = v6;
  f.local = p.out ? p.ip.src.b : p.ip.dst.b;
  f.remote = p.out ? p.ip.dst.b : p.ip.src.b;
  f.local_port = p.out ? p.ip.src_port : p.ip.dst_port;
  f.remote_port = p.out ? p.ip.dst_port : p.ip.src_port;
  f.loopback = p.loopback;
  const FieldValues vals = values(f, layer, p.out ? 0 : 1);
  ClassifyMeta meta;
  meta.data = p.payload;
  meta.data_len = p.payload_len;
  ++stats_.classifies;
  stats_.bytes_inspected += p.payload_len;
  const ClassifyResult r = engine_.classify(layer, vals, false, &meta);
  // A callout's new payload: the same headers, lengths and checksums fixed.
  std::string changed;
  if (r.permit && meta.new_data && p.payload) {
    changed.assign(reinterpret_cast<const char*>(p.raw), static_cast<size_t>(p.payload - p.raw));
    changed += *meta.new_data;
    if (changed.size() <= 0xffff && fix_packet(changed)) ++stats_.modified;
    else changed.clear();
  }
  verdict(p.id, r.permit, false, changed.empty() ? nullptr : &changed);
  for (const auto& pkt : meta.inject) stats_.injected += inject_packet(pkt);
  if (!r.permit && on_event) on_event(event(f, layer, r, p.out ? 0 : 1));
}

// --- STREAM: each direction of a TCP flow, in order -------------------------------------------

void DataInspector::on_tcp(const Packet& p) {
  FlowKey key{p.ip.src.b, p.ip.dst.b, p.ip.src_port, p.ip.dst_port, p.ip.src.v6};
  if (std::tie(key.b, key.pb) < std::tie(key.a, key.pa)) std::swap(key.a, key.b), std::swap(key.pa, key.pb);
  const uint8_t flags = p.ip.tcp_flags;
  constexpr uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, ACK = 0x10;
  auto it = flows_.find(key);
  if (it == flows_.end()) {
    if (flags & RST) return verdict(p.id, true);
    auto f = std::make_unique<Flow>();
    f->handle = next_handle_++;
    f->v6 = p.ip.src.v6;
    // The local end: the sender of an outgoing packet, the receiver of an incoming one.
    const bool local_is_src = p.out;
    f->local = local_is_src ? p.ip.src.b : p.ip.dst.b;
    f->remote = local_is_src ? p.ip.dst.b : p.ip.src.b;
    f->local_port = local_is_src ? p.ip.src_port : p.ip.dst_port;
    f->remote_port = local_is_src ? p.ip.dst_port : p.ip.src_port;
    // Locally initiated: our SYN went out, or (mid-flow) the first packet seen went out.
    f->outbound = (flags & SYN) && (flags & ACK) ? !p.out : p.out;
    f->loopback = p.loopback;
    ++stats_.flows;
    ++stats_.flows_live;
    it = flows_.emplace(key, std::move(f)).first;
  }
  Flow& f = *it->second;
  f.last_ns = 0;
  const bool from_local = p.ip.src.b == f.local && p.ip.src_port == f.local_port;
  const int d = from_local ? 0 : 1;
  Direction& dir = f.dir[d];
  if (f.blocked) return verdict(p.id, (flags & RST) != 0);  // (our own resets pass)
  if (flags & RST) {
    verdict(p.id, true);
    return end_flow(key);
  }
  if (f.done) return verdict(p.id, true, true);
  const uint32_t seq = p.ip.tcp_seq;
  if (flags & SYN) {
    dir.seq_known = true;
    dir.next = seq + 1;
    return verdict(p.id, true);
  }
  if (!dir.seq_known) {  // a flow that began before the rules: from here on
    dir.seq_known = true;
    dir.next = seq;
  }
  if (flags & FIN) dir.fin = true;
  if (p.payload_len == 0) {
    verdict(p.id, true);
    if (f.dir[0].fin && f.dir[1].fin && f.dir[0].held.empty() && f.dir[1].held.empty()) end_flow(key);
    return;
  }
  const uint32_t end = seq + static_cast<uint32_t>(p.payload_len);
  if (seq_before(dir.next, seq)) {  // after a hole: waits for it
    ++stats_.out_of_order;
    // A copy of one already waiting, or more than lfpd holds after a hole: dropped (TCP sends again).
    if (dir.ooo.count(seq) || dir.ooo.size() >= kMaxOutOfOrder) return verdict(p.id, false);
    dir.ooo[seq] = {p.id, std::string(reinterpret_cast<const char*>(p.payload), p.payload_len)};
    return;
  }
  if (!seq_before(dir.next, end)) {  // nothing new: a retransmission
    // Of decided bytes: passes. Of bytes still waiting: the first copy waits already.
    const uint32_t undecided = dir.next - static_cast<uint32_t>(dir.pending.size());
    return verdict(p.id, !seq_before(undecided, end));
  }
  auto take = [&](uint32_t id, uint32_t s, const uint8_t* bytes, size_t len) {
    const uint32_t skip = dir.next - s;  // bytes already had
    dir.pending.append(reinterpret_cast<const char*>(bytes) + skip, len - skip);
    dir.next = s + static_cast<uint32_t>(len);
    dir.bytes += len - skip;
    if (dir.held.empty()) dir.held_since = mono_ns();
    dir.held.push_back({id, dir.next});
  };
  take(p.id, seq, p.payload, p.payload_len);
  // The segments that waited for this one.
  while (!dir.ooo.empty()) {
    auto o = dir.ooo.begin();
    // (a std::map orders by raw sequence numbers; near a wrap the smallest is not the next: search)
    for (auto x = dir.ooo.begin(); x != dir.ooo.end(); ++x)
      if (!seq_before(dir.next, x->first)) {
        o = x;
        break;
      }
    if (seq_before(dir.next, o->first)) break;
    const uint32_t s = o->first;
    auto [id, bytes] = std::move(o->second);
    dir.ooo.erase(o);
    if (seq_before(dir.next, s + static_cast<uint32_t>(bytes.size())))
      take(id, s, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    else
      verdict(id, true);  // covered already
  }
  if (dir.pending.size() >= dir.need) stream_classify(f, d, dir.pending.size() >= kBufferLimit);
  if (!f.blocked && !f.done && f.dir[0].fin && f.dir[1].fin && f.dir[0].held.empty() && f.dir[1].held.empty())
    end_flow(key);
}

void DataInspector::stream_classify(Flow& f, int d, bool limit) {
  Direction& dir = f.dir[d];
  const LayerId layer = f.v6 ? LayerId::STREAM_V6 : LayerId::STREAM_V4;
  const FieldValues vals = values(f, layer, -1);
  ClassifyMeta meta;
  meta.flow_handle = f.handle;
  meta.data = reinterpret_cast<const uint8_t*>(dir.pending.data());
  meta.data_len = dir.pending.size();
  meta.stream_offset = dir.decided;
  meta.stream_flags = (d == 0 ? STREAM_FLAG_SEND : STREAM_FLAG_RECEIVE) |
                      (dir.fin ? uint32_t{d == 0 ? STREAM_FLAG_SEND_DISCONNECT : STREAM_FLAG_RECEIVE_DISCONNECT} : 0u) |
                      (limit ? 0x10000u : 0);  // BUFFER_LIMIT_REACHED
  meta.flow_contexts = &f.contexts;
  ++stats_.classifies;
  stats_.bytes_inspected += dir.pending.size();
  const ClassifyResult r = engine_.classify(layer, vals, false, &meta);
  switch (meta.stream_action) {
    case StreamAction::ALLOW_CONNECTION: return allow_flow(f);
    case StreamAction::DROP_CONNECTION: return block_flow(f, &r);
    case StreamAction::NEED_MORE_DATA:
    case StreamAction::DEFER:
      if (!limit) {
        dir.need = dir.pending.size() + std::max<uint32_t>(1, meta.count_bytes_required);
        return;
      }
      return allow_flow(f);  // asked for more than lfpd holds: the rest of the flow passes
    case StreamAction::NONE: break;
  }
  if (!r.permit) return block_flow(f, &r);
  if (!r.callout_called) return allow_flow(f);  // the filters alone decided: so for the whole flow
  for (const Held& h : dir.held) verdict(h.id, true);
  dir.held.clear();
  dir.decided += dir.pending.size();
  dir.pending.clear();
  dir.need = 1;
}

void DataInspector::allow_flow(Flow& f) {
  f.done = true;
  ++stats_.flows_allowed;
  for (Direction& dir : f.dir) {
    for (const Held& h : dir.held) verdict(h.id, true, true);
    for (const auto& [seq, o] : dir.ooo) verdict(o.first, true, true);
    dir.held.clear();
    dir.ooo.clear();
    dir.decided += dir.pending.size();
    dir.pending.clear();
  }
}

void DataInspector::block_flow(Flow& f, const ClassifyResult* r) {
  f.blocked = true;
  ++stats_.flows_blocked;
  // The peer expects the first byte it has not had: the first one waiting here.
  const uint32_t peer_next = f.dir[0].next - static_cast<uint32_t>(f.dir[0].pending.size());
  const bool peer_seq_known = f.dir[0].seq_known;
  for (Direction& dir : f.dir) {
    for (const Held& h : dir.held) verdict(h.id, false);
    for (const auto& [seq, o] : dir.ooo) verdict(o.first, false);
    dir.held.clear();
    dir.ooo.clear();
    dir.pending.clear();
  }
  // Reset both ends: the peer by a RST in its window (the local socket's own would come after the
  // bytes dropped here, and be ignored), the local socket by aborting it. On loopback both are ours.
  if (peer_seq_known && !f.loopback) send_reset(f.v6, f.local, f.local_port, f.remote, f.remote_port, peer_next);
  QueuedFlow q;
  q.family = f.v6 ? 6 : 4;
  q.protocol = 6;
  q.local_addr = f.local;
  q.remote_addr = f.remote;
  q.local_port = f.local_port;
  q.remote_port = f.remote_port;
  q.cookie = ~uint64_t{0};  // INET_DIAG_NOCOOKIE: by the 5-tuple alone
  UserPath::destroy(q);
  if (f.loopback) {
    std::swap(q.local_addr, q.remote_addr);
    std::swap(q.local_port, q.remote_port);
    UserPath::destroy(q);
  }
  if (r && on_event) on_event(event(f, f.v6 ? LayerId::STREAM_V6 : LayerId::STREAM_V4, *r, -1));
}

void DataInspector::end_flow(const FlowKey& key) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return;
  Flow& f = *it->second;
  for (Direction& dir : f.dir) {  // (what still waits passes: the flow is over)
    for (const Held& h : dir.held) verdict(h.id, !f.blocked);
    for (const auto& [seq, o] : dir.ooo) verdict(o.first, !f.blocked);
  }
  for (const auto& [callout, ctx] : f.contexts) engine_.flow_delete(callout, f.handle, ctx);
  flows_.erase(it);
  --stats_.flows_live;
}

void DataInspector::sweep(int64_t idle_ns, int64_t hold_ns) {
  const int64_t now_ns = mono_ns();
  std::vector<FlowKey> idle;
  for (auto& [key, f] : flows_) {
    // Bytes a callout waits for that do not come: it decides on what is there.
    for (int d = 0; d < 2; ++d)
      if (!f->done && !f->blocked && !f->dir[d].held.empty() && now_ns - f->dir[d].held_since > hold_ns)
        stream_classify(*f, d, true);
    if (f->last_ns == 0) f->last_ns = now_ns;  // (touched since the last sweep)
    else if (now_ns - f->last_ns > idle_ns) idle.push_back(key);
  }
  for (const auto& k : idle) end_flow(k);
}

json DataInspector::flows_json() const {
  json a = json::array();
  for (const auto& [key, f] : flows_)
    a.push_back({{"flow", f->handle},
                 {"local", ip_text(f->v6, f->local) + ":" + std::to_string(f->local_port)},
                 {"remote", ip_text(f->v6, f->remote) + ":" + std::to_string(f->remote_port)},
                 {"direction", f->outbound ? "OUTBOUND" : "INBOUND"},
                 {"bytes_sent", f->dir[0].bytes},
                 {"bytes_received", f->dir[1].bytes},
                 {"state", f->blocked ? "blocked" : f->done ? "allowed" : "inspected"}});
  return a;
}

}  // namespace lfp::datapath
