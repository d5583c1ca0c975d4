// SPDX-License-Identifier: MIT
#include "lfp/packet/walk.hpp"

#include <algorithm>

namespace lfp::packet {

enum class Walk::Stage : uint8_t {
  MAC_IN,
  MAC_OUT,
  IPPACKET_IN,
  IPPACKET_OUT,
  IPFORWARD,
  REASSEMBLE,  // not a layer: holds a fragment until its datagram is complete
  TRANSPORT_IN,
  TRANSPORT_OUT,
  RECV_ACCEPT,
  CONNECT,
  DATAGRAM_IN,
  DATAGRAM_OUT,
};

namespace {

constexpr size_t kWays = 4;

// _V4 and _V6 layers are adjacent in the catalogue.
LayerId pick(LayerId v4, const Packet& p) {
  return p.ip_version == 6 ? static_cast<LayerId>(static_cast<int>(v4) + 1) : v4;
}

// NL_ADDRESS_TYPE: 1 unicast, 3 multicast, 4 broadcast.
uint8_t nl_address_type(const IpAddr& a) {
  if (a.v6) return a.b[0] == 0xff ? 3 : 1;
  if (a.v4() == 0xffffffffu) return 4;
  return (a.b[0] & 0xf0) == 0xe0 ? 3 : 1;
}

// DL_ADDRESS_TYPE: 0 unicast, 1 multicast, 2 broadcast.
uint8_t dl_address_type(const Mac& m) {
  if (std::all_of(m.begin(), m.end(), [](uint8_t b) { return b == 0xff; })) return 2;
  return m[0] & 1 ? 1 : 0;
}

bool needs_transport_header(const Packet& p) {
  return p.protocol == proto::TCP || p.protocol == proto::UDP || (p.protocol == proto::ICMP && p.ip_version == 4) ||
         (p.protocol == proto::ICMPV6 && p.ip_version == 6);
}

// The transport layers need the transport header when the protocol has one we read.
bool transport_ready(const Packet& p) {
  return p.is_ip() && p.first_fragment() && (!needs_transport_header(p) || p.has_transport);
}

bool is_loopback_addr(const IpAddr& a) {
  if (!a.v6) return a.b[0] == 127;
  for (size_t i = 0; i < 15; ++i)
    if (a.b[i]) return false;
  return a.b[15] == 1;
}

uint64_t hash_bytes(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::NONE: return "NONE";
    case Direction::INBOUND: return "INBOUND";
    case Direction::OUTBOUND: return "OUTBOUND";
    case Direction::FORWARDED: return "FORWARDED";
    case Direction::LOOPBACK: return "LOOPBACK";
  }
  return "?";
}

std::string_view to_string(FragmentState s) {
  switch (s) {
    case FragmentState::NONE: return "NONE";
    case FragmentState::HELD: return "HELD";
    case FragmentState::COMPLETED: return "COMPLETED";
    case FragmentState::DISCARDED: return "DISCARDED";
  }
  return "?";
}

Walk::Walk(WalkOptions options) : opt_(options) {
  size_t buckets = 1;
  while (buckets * kWays < std::max<size_t>(opt_.max_flows, kWays)) buckets <<= 1;
  flow_buckets_ = buckets;
  flows_.resize(buckets * kWays);
  opt_.max_datagrams = std::max<size_t>(opt_.max_datagrams, 1);
  opt_.max_fragments = std::max<size_t>(opt_.max_fragments, 1);
  datagrams_.resize(opt_.max_datagrams);
  for (auto& d : datagrams_) d.frags.reserve(opt_.max_fragments);  // no allocation per packet later
}

void Walk::add_local(const IpAddr& a) {
  if (!is_local(a)) locals_.push_back(a);
}

bool Walk::is_local(const IpAddr& a) const {
  return is_loopback_addr(a) || std::find(locals_.begin(), locals_.end(), a) != locals_.end();
}

bool Walk::local_dst(const IpAddr& a) const { return is_local(a) || nl_address_type(a) != 1; }

void Walk::learn_mac(const Mac& m) {
  if (dl_address_type(m) != 0 || known_mac(m)) return;
  macs_[next_mac_] = m;
  next_mac_ = (next_mac_ + 1) % macs_.size();
  nmacs_ = std::min(nmacs_ + 1, macs_.size());
}

bool Walk::known_mac(const Mac& m) const {
  return std::find(macs_.begin(), macs_.begin() + static_cast<ptrdiff_t>(nmacs_), m) !=
         macs_.begin() + static_cast<ptrdiff_t>(nmacs_);
}

Direction Walk::classify_direction(const Packet& p) {
  if (p.is_ip()) {
    const bool src = is_local(p.src), dst = is_local(p.dst);
    Direction d = src && dst ? Direction::LOOPBACK
                  : src       ? Direction::OUTBOUND
                  : local_dst(p.dst) ? Direction::INBOUND
                                     : Direction::FORWARDED;
    // The host's MACs, for the frames that carry no IP header.
    if (p.has_ethernet) {
      if (d == Direction::OUTBOUND) learn_mac(p.eth_src);
      if (d == Direction::INBOUND) learn_mac(p.eth_dst);
    }
    return d;
  }
  if (p.has_ethernet) return known_mac(p.eth_src) ? Direction::OUTBOUND : Direction::INBOUND;
  return Direction::NONE;
}

void Walk::begin(const Packet& p, uint64_t time_ns) {
  pkt_ = hdr_ = &p;
  time_ns_ = time_ns;
  frag_state_ = FragmentState::NONE;
  first_ = pending_flow_ = false;
  nstages_ = pos_ = 0;
  if (opt_.first_source_is_local && locals_.empty() && p.is_ip()) add_local(p.src);
  dir_ = classify_direction(p);
  plan();
}

void Walk::plan() {
  const Packet& p = *pkt_;
  const bool mac = p.has_ethernet && dir_ != Direction::LOOPBACK;  // loopback has no MAC frame
  // Linux reassembles a datagram before anything but INBOUND_IPPACKET sees it (local delivery, and
  // conntrack's defragmentation for forwarding and output): every other layer sees it once, whole.
  const bool frag = p.is_ip() && p.is_fragment;
  if (frag && dir_ != Direction::INBOUND && dir_ != Direction::FORWARDED) push(Stage::REASSEMBLE);
  auto outbound = [&] {
    if (p.is_ip()) {
      push(Stage::CONNECT);
      push(Stage::DATAGRAM_OUT);
      push(Stage::TRANSPORT_OUT);
      push(Stage::IPPACKET_OUT);
    }
    if (mac) push(Stage::MAC_OUT);
  };
  auto inbound = [&] {
    if (mac) push(Stage::MAC_IN);
    if (!p.is_ip()) return;
    push(Stage::IPPACKET_IN);
    if (frag && dir_ == Direction::INBOUND) push(Stage::REASSEMBLE);
    push(Stage::TRANSPORT_IN);
    push(Stage::RECV_ACCEPT);
    push(Stage::DATAGRAM_IN);
  };
  switch (dir_) {
    case Direction::NONE: break;
    case Direction::INBOUND: inbound(); break;
    case Direction::OUTBOUND: outbound(); break;
    case Direction::LOOPBACK:
      outbound();
      inbound();
      break;
    case Direction::FORWARDED:
      if (mac) push(Stage::MAC_IN);
      if (frag) push(Stage::REASSEMBLE);
      push(Stage::IPFORWARD);
      if (mac) push(Stage::MAC_OUT);
      break;
  }
}

bool Walk::next() {
  if (!pkt_) return false;
  if (pending_flow_) {  // the ALE layer permitted: the flow is known from now on
    remember_flow(pending_outbound_);
    pending_flow_ = false;
  }
  first_ = false;
  while (pos_ < nstages_)
    if (run_stage(stages_[pos_++])) return true;
  pkt_ = nullptr;
  return false;
}

bool Walk::run_stage(Stage s) {
  const Packet& p = *pkt_;
  const Packet& h = *hdr_;
  switch (s) {
    case Stage::MAC_IN:
      fill(LayerId::INBOUND_MAC_FRAME_ETHERNET, false, false);
      return true;
    case Stage::MAC_OUT:
      fill(LayerId::OUTBOUND_MAC_FRAME_ETHERNET, true, false);
      return true;
    case Stage::IPPACKET_IN:
      fill(pick(LayerId::INBOUND_IPPACKET_V4, p), false, p.is_fragment && dir_ != Direction::LOOPBACK);
      return true;
    case Stage::IPPACKET_OUT:
      fill(pick(LayerId::OUTBOUND_IPPACKET_V4, p), true, false);
      return true;
    case Stage::IPFORWARD:
      fill(pick(LayerId::IPFORWARD_V4, p), false, false);
      return true;
    case Stage::REASSEMBLE:
      frag_state_ = reassemble();
      if (frag_state_ != FragmentState::COMPLETED) pos_ = nstages_;  // later layers wait (or never come)
      else hdr_ = &reassembled_;
      return false;
    case Stage::TRANSPORT_IN:
    case Stage::TRANSPORT_OUT: {
      if (!transport_ready(h)) return false;
      const bool out = s == Stage::TRANSPORT_OUT;
      if (h.icmp_error) fill(pick(out ? LayerId::OUTBOUND_ICMP_ERROR_V4 : LayerId::INBOUND_ICMP_ERROR_V4, h), out, false);
      else fill(pick(out ? LayerId::OUTBOUND_TRANSPORT_V4 : LayerId::INBOUND_TRANSPORT_V4, h), out, false);
      return true;
    }
    case Stage::CONNECT:
    case Stage::RECV_ACCEPT: {
      if (!transport_ready(h) || !h.has_ports()) return false;
      const bool out = s == Stage::CONNECT;
      if (!is_new_flow(out)) return false;
      fill(pick(out ? LayerId::ALE_AUTH_CONNECT_V4 : LayerId::ALE_AUTH_RECV_ACCEPT_V4, h), out, false);
      first_ = pending_flow_ = true;
      pending_outbound_ = out;
      return true;
    }
    case Stage::DATAGRAM_IN:
    case Stage::DATAGRAM_OUT:
      if (!transport_ready(h) || h.protocol != proto::UDP) return false;
      fill(pick(LayerId::DATAGRAM_DATA_V4, h), s == Stage::DATAGRAM_OUT, false);
      return true;
  }
  return false;
}

void Walk::fill(LayerId layer, bool out, bool fragment_flag) {
  layer_ = layer;
  // The MAC layers and INBOUND_IPPACKET see this frame (a fragment); the others see the datagram,
  // with its first fragment's headers.
  const bool per_fragment = layer_info(layer).family == IpFamily::NONE || layer == pick(LayerId::INBOUND_IPPACKET_V4, *pkt_);
  LayerView view;
  view.outbound = out;
  view.fragment = fragment_flag;
  view.loopback = dir_ == Direction::LOOPBACK;
  view.iface = opt_.ifindex;  // replay knows one interface: a forwarded packet's outgoing one is unknown
  // A frame read from an Ethernet capture came over an Ethernet interface, whose address is the local
  // end's (of a unicast frame).
  const bool ale = layer == pick(LayerId::ALE_AUTH_CONNECT_V4, *hdr_) || layer == pick(LayerId::ALE_AUTH_RECV_ACCEPT_V4, *hdr_);
  if (pkt_->has_ethernet && !ale) {  // (the kernel's ALE hooks do not supply these)
    view.iface_type = iftype::ETHERNET_CSMACD;
    const Mac& local_mac = out ? pkt_->eth_src : pkt_->eth_dst;
    if (dl_address_type(local_mac) == 0) view.iface_mac = local_mac;
  }
  layer_values(layer, per_fragment ? *pkt_ : *hdr_, view, values_);
}

void layer_values(LayerId layer, const Packet& h, const LayerView& view, FieldValues& values) {
  values.clear();
  const LayerInfo& info = layer_info(layer);
  const bool out = view.outbound;
  const IpFamily fam = info.family;
  const IpAddr& local = out ? h.src : h.dst;
  const IpAddr& remote = out ? h.dst : h.src;
  const Mac& mac_local = out ? h.eth_src : h.eth_dst;
  const Mac& mac_remote = out ? h.eth_dst : h.eth_src;
  const bool icmp = h.has_transport && !h.has_ports() && needs_transport_header(h);
  const bool forward = layer == LayerId::IPFORWARD_V4 || layer == LayerId::IPFORWARD_V6;
  auto num = [&](FieldId f, uint64_t v) { values.set(f, Value{field_type(f, fam), v}); };
  auto addr = [&](FieldId f, const IpAddr& a) {
    if (a.v6 != (fam == IpFamily::V6)) return;  // e.g. an IPv6 packet quoted by ICMPv4: no value
    values.set(f, value_of(a));
  };
  auto iface = [&](FieldId f, const std::optional<uint32_t>& i) {
    if (i) num(f, *i);
  };
  const Embedded& e = h.embedded;
  const bool emb = e.present;
  for (FieldId f : info.fields) {
    switch (f) {
      case FieldId::IP_LOCAL_ADDRESS: addr(f, local); break;
      case FieldId::IP_REMOTE_ADDRESS: addr(f, remote); break;
      case FieldId::IP_SOURCE_ADDRESS: addr(f, h.src); break;
      case FieldId::IP_DESTINATION_ADDRESS: addr(f, h.dst); break;
      case FieldId::IP_LOCAL_ADDRESS_TYPE: num(f, nl_address_type(local)); break;
      case FieldId::IP_DESTINATION_ADDRESS_TYPE: num(f, nl_address_type(h.dst)); break;
      case FieldId::IP_LOCAL_PORT:
        if (h.has_ports()) num(f, out ? h.src_port : h.dst_port);
        else if (icmp) num(f, h.icmp_type);  // WFP: ICMP type and code in the port fields
        break;
      case FieldId::IP_REMOTE_PORT:
        if (h.has_ports()) num(f, out ? h.dst_port : h.src_port);
        else if (icmp) num(f, h.icmp_code);
        break;
      case FieldId::IP_PROTOCOL: num(f, h.protocol); break;
      case FieldId::FLAGS:
        num(f, (view.fragment ? condition_flag::IS_FRAGMENT : 0u) | (view.loopback ? condition_flag::IS_LOOPBACK : 0u));
        break;
      case FieldId::IP_LOCAL_INTERFACE: iface(f, forward ? view.out_iface : view.iface); break;
      case FieldId::INTERFACE_INDEX:
      case FieldId::INTERFACE:
      case FieldId::SOURCE_INTERFACE_INDEX: iface(f, view.iface); break;
      case FieldId::IP_ARRIVAL_INTERFACE:  // (at the ICMP error layers: the kernel's ALE hooks do not supply it)
        if (layer == LayerId::INBOUND_ICMP_ERROR_V4 || layer == LayerId::INBOUND_ICMP_ERROR_V6) iface(f, view.iface);
        break;
      case FieldId::DESTINATION_INTERFACE_INDEX:
      case FieldId::IP_FORWARD_INTERFACE: iface(f, view.out_iface); break;
      case FieldId::ICMP_TYPE: num(f, h.icmp_type); break;
      case FieldId::ICMP_CODE: num(f, h.icmp_code); break;
      // The quoted packet is one the host sent: its destination is the remote end.
      case FieldId::EMBEDDED_REMOTE_ADDRESS:
        if (emb) addr(f, e.dst);
        break;
      case FieldId::EMBEDDED_LOCAL_ADDRESS_TYPE:
        if (emb) num(f, nl_address_type(e.src));
        break;
      case FieldId::EMBEDDED_PROTOCOL:
        if (emb) num(f, e.protocol);
        break;
      case FieldId::EMBEDDED_LOCAL_PORT:
        if (emb && e.has_ports) num(f, e.src_port);
        break;
      case FieldId::EMBEDDED_REMOTE_PORT:
        if (emb && e.has_ports) num(f, e.dst_port);
        break;
      case FieldId::DIRECTION: num(f, out ? DIRECTION_OUTBOUND : DIRECTION_INBOUND); break;
      case FieldId::MAC_LOCAL_ADDRESS: values.set(f, Value::mac(mac_local)); break;
      case FieldId::MAC_REMOTE_ADDRESS: values.set(f, Value::mac(mac_remote)); break;
      case FieldId::MAC_LOCAL_ADDRESS_TYPE: num(f, dl_address_type(mac_local)); break;
      case FieldId::MAC_REMOTE_ADDRESS_TYPE: num(f, dl_address_type(mac_remote)); break;
      case FieldId::ETHER_TYPE: num(f, h.ether_type); break;
      case FieldId::VLAN_ID: num(f, h.vlan_id()); break;
      case FieldId::INTERFACE_TYPE:
        if (view.iface_type) num(f, *view.iface_type);
        break;
      case FieldId::INTERFACE_MAC_ADDRESS:
        if (view.iface_mac) values.set(f, Value::mac(*view.iface_mac));
        break;
      case FieldId::L2_FLAGS: {  // (an IPv6 fragment: its first extension header is one, as the kernel reads it)
        const bool frag_group = h.ip_version == 4 ? h.is_fragment
                                                  : h.ip_version == 6 && h.ext_count && h.ext_headers[0] == proto::FRAGMENT;
        num(f, (view.iface_type == iftype::ETHERNET_CSMACD ? l2_flag::IS_NATIVE_ETHERNET : 0u) |
                   (frag_group ? l2_flag::IS_IP_FRAGMENT_GROUP : 0u));
        break;
      }
      default: break;  // no value from a packet: EMPTY
    }
  }
}

// --- Flows.

Walk::FlowKey Walk::flow_key(bool out) const {
  const Packet& h = *hdr_;
  FlowKey k;
  k.local = out ? h.src : h.dst;
  k.remote = out ? h.dst : h.src;
  k.local_port = out ? h.src_port : h.dst_port;
  k.remote_port = out ? h.dst_port : h.src_port;
  k.protocol = h.protocol;
  return k;
}

namespace {
uint64_t flow_hash(const IpAddr& l, const IpAddr& r, uint16_t lp, uint16_t rp, uint8_t proto) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = hash_bytes(h, l.b.data(), 16);
  h = hash_bytes(h, r.b.data(), 16);
  const uint8_t rest[6] = {static_cast<uint8_t>(lp >> 8), static_cast<uint8_t>(lp), static_cast<uint8_t>(rp >> 8),
                           static_cast<uint8_t>(rp), proto, static_cast<uint8_t>(l.v6)};
  return hash_bytes(h, rest, sizeof rest);
}
}  // namespace

bool Walk::is_new_flow(bool out) {
  const Packet& h = *hdr_;
  const FlowKey k = flow_key(out);
  const size_t b = flow_hash(k.local, k.remote, k.local_port, k.remote_port, k.protocol) & (flow_buckets_ - 1);
  const Flow* found = nullptr;
  for (size_t i = 0; i < kWays; ++i)
    if (flows_[b * kWays + i].used && flows_[b * kWays + i].key == k) found = &flows_[b * kWays + i];
  if (h.protocol == proto::TCP) {
    if (!(h.tcp_flags & tcp_flag::SYN) || (h.tcp_flags & tcp_flag::ACK)) return false;
    return !found || found->syn_seq != h.tcp_seq;  // the same SYN again is a retransmission
  }
  return !found;
}

void Walk::remember_flow(bool out) {
  const FlowKey k = flow_key(out);
  const size_t b = flow_hash(k.local, k.remote, k.local_port, k.remote_port, k.protocol) & (flow_buckets_ - 1);
  Flow* slot = nullptr;
  for (size_t i = 0; i < kWays && !slot; ++i)
    if (flows_[b * kWays + i].used && flows_[b * kWays + i].key == k) slot = &flows_[b * kWays + i];
  for (size_t i = 0; i < kWays && !slot; ++i)
    if (!flows_[b * kWays + i].used) slot = &flows_[b * kWays + i];
  if (!slot) {  // the bucket is full: forget its oldest flow
    slot = &flows_[b * kWays];
    for (size_t i = 1; i < kWays; ++i)
      if (flows_[b * kWays + i].stamp < slot->stamp) slot = &flows_[b * kWays + i];
  }
  slot->used = true;
  slot->key = k;
  slot->syn_seq = hdr_->tcp_seq;
  slot->stamp = ++stamp_;
}

size_t Walk::flow_count() const {
  return static_cast<size_t>(std::count_if(flows_.begin(), flows_.end(), [](const Flow& f) { return f.used; }));
}

// --- Fragments (RFC 791 / 8200 reassembly, with Linux's rules: overlaps drop the datagram, an exact
// duplicate is ignored).

FragmentState Walk::reassemble() {
  const Packet& p = *pkt_;
  Datagram* d = nullptr;
  Datagram* free_slot = nullptr;
  Datagram* oldest = nullptr;
  for (auto& x : datagrams_) {
    if (x.used && opt_.fragment_timeout_ns && time_ns_ && x.time_ns && time_ns_ > x.time_ns &&
        time_ns_ - x.time_ns > opt_.fragment_timeout_ns)
      x.used = false;  // timed out
    if (!x.used) {
      if (!free_slot) free_slot = &x;
      continue;
    }
    if (x.v6 == (p.ip_version == 6) && x.src == p.src && x.dst == p.dst && x.id == p.frag_id &&
        (x.v6 || x.protocol == p.protocol))
      d = &x;
    if (!oldest || x.stamp < oldest->stamp) oldest = &x;
  }
  if (!d) {
    d = free_slot ? free_slot : oldest;  // full: the oldest datagram is dropped
    d->used = true;
    d->v6 = p.ip_version == 6;
    d->src = p.src;
    d->dst = p.dst;
    d->id = p.frag_id;
    d->protocol = p.protocol;
    d->total = 0;
    d->has_first = false;
    d->frags.clear();
    d->time_ns = time_ns_;
    d->stamp = ++stamp_;
  }
  auto discard = [&] {
    d->used = false;
    return FragmentState::DISCARDED;
  };
  const uint32_t start = p.frag_offset, len = p.frag_data_len(), end = start + len;
  if (len == 0 || (p.more_fragments && len % 8 != 0)) return discard();
  if (!p.more_fragments) {
    if (d->total && d->total != end) return discard();
    for (const auto& f : d->frags)
      if (f.end > end) return discard();
    d->total = end;
  } else if (d->total && end > d->total) {
    return discard();
  }
  for (const auto& f : d->frags) {
    if (f.start == start && f.end == end) return FragmentState::HELD;  // a duplicate: ignored
    if (start < f.end && f.start < end) return discard();
  }
  if (d->frags.size() >= opt_.max_fragments) return discard();
  d->frags.push_back({start, end});
  if (start == 0) {
    d->first = p;
    d->has_first = true;
  }
  uint32_t sum = 0;
  for (const auto& f : d->frags) sum += f.end - f.start;
  if (d->total && d->has_first && sum == d->total) {
    reassembled_ = d->first;
    d->used = false;
    return FragmentState::COMPLETED;
  }
  return FragmentState::HELD;
}

size_t Walk::datagram_count() const {
  return static_cast<size_t>(std::count_if(datagrams_.begin(), datagrams_.end(), [](const Datagram& d) { return d.used; }));
}

}  // namespace lfp::packet
