// SPDX-License-Identifier: MIT
#include "replay_cmd.hpp"

#include <pcap/pcap.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "lfp/packet/parse.hpp"
#include "lfp/packet/walk.hpp"

namespace lfp::cli {

using nlohmann::json;
namespace pk = lfp::packet;

namespace {

std::string addr_text(const pk::IpAddr& a) {
  return a.v6 ? "[" + format_ip6(a.b) + "]" : format_ip4(a.v4());
}

std::string hex16(uint16_t v) {
  static const char* d = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 12; i >= 0; i -= 4) s += d[(v >> i) & 0xf];
  return s;
}

}  // namespace

std::string packet_summary(const pk::Packet& p) {
  std::ostringstream o;
  if (p.ip_version == 0) {
    o << (p.has_ethernet || p.ether_type ? "EtherType " + hex16(p.ether_type) : std::string("?"));
    return o.str();
  }
  o << (p.ip_version == 4 ? "IPv4 " : "IPv6 ");
  const bool ports = p.has_ports();
  switch (p.protocol) {
    case pk::proto::TCP: o << "TCP "; break;
    case pk::proto::UDP: o << "UDP "; break;
    case pk::proto::ICMP: o << "ICMP "; break;
    case pk::proto::ICMPV6: o << "ICMPv6 "; break;
    default: o << "proto " << int{p.protocol} << ' ';
  }
  o << addr_text(p.src);
  if (ports) o << ':' << p.src_port;
  o << " > " << addr_text(p.dst);
  if (ports) o << ':' << p.dst_port;
  if (p.protocol == pk::proto::TCP && p.has_transport) {
    static constexpr std::pair<uint8_t, const char*> kFlags[] = {
        {pk::tcp_flag::SYN, "SYN"}, {pk::tcp_flag::ACK, "ACK"}, {pk::tcp_flag::FIN, "FIN"},
        {pk::tcp_flag::RST, "RST"}, {pk::tcp_flag::PSH, "PSH"}};
    std::string f;
    for (auto [bit, name] : kFlags)
      if (p.tcp_flags & bit) f += (f.empty() ? "" : ",") + std::string(name);
    if (!f.empty()) o << ' ' << f;
  }
  if (p.has_transport && !ports && p.protocol != pk::proto::TCP && p.protocol != pk::proto::UDP)
    o << " type " << int{p.icmp_type} << " code " << int{p.icmp_code};
  if (p.is_fragment) o << " fragment id " << p.frag_id << " offset " << p.frag_offset << (p.more_fragments ? " MF" : "");
  return o.str();
}

namespace {

std::string problem_text(const pk::Packet& p) {
  std::string s(pk::describe(p.status));
  if (p.status == pk::Status::NOT_IP) s = "not IP: EtherType " + hex16(p.ether_type);
  return s;
}

}  // namespace

size_t link_header_length(const pk::Packet& p) {
  switch (p.link) {
    case pk::LinkType::ETHERNET: return 14 + 4u * p.vlan_count;
    case pk::LinkType::LINUX_SLL: return 16;
    case pk::LinkType::LINUX_SLL2: return 20;
    case pk::LinkType::RAW: return 0;
  }
  return 0;
}

void replay_capture(const FilterEngine& engine, const ReplayArgs& a,
                    const std::function<bool(const ReplayedPacket&)>& on_packet,
                    const std::function<void(uint64_t time_ns)>& before_walk) {
  pk::WalkOptions opt;
  if (a.ifindex >= 0) opt.ifindex = static_cast<uint32_t>(a.ifindex);
  opt.first_source_is_local = a.locals.empty();
  pk::Walk walk(opt);
  for (const auto& l : a.locals) {
    auto ip = pk::parse_ip(l);
    if (!ip) throw std::invalid_argument("--local: '" + l + "' is not an IPv4 or IPv6 address");
    walk.add_local(*ip);
  }

  char err[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> pc(
      pcap_open_offline_with_tstamp_precision(a.pcap.c_str(), PCAP_TSTAMP_PRECISION_NANO, err), pcap_close);
  if (!pc) throw std::runtime_error(a.pcap + ": " + err);
  const int dlt = pcap_datalink(pc.get());
  const auto link = pk::link_type_from_dlt(dlt);
  if (!link) {
    const char* name = pcap_datalink_val_to_name(dlt);
    throw std::runtime_error(a.pcap + ": link type " + std::to_string(dlt) + " (" + (name ? name : "unknown") +
                             ") is not one lfp replay reads (Ethernet, raw IP, Linux cooked SLL/SLL2)");
  }

  pk::Packet p;
  ReplayedPacket out;
  out.link = *link;
  out.packet = &p;
  out.walk = &walk;
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  for (uint64_t index = 0;; ++index) {
    const int rc = pcap_next_ex(pc.get(), &hdr, &data);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc != 1) throw std::runtime_error(a.pcap + ": packet " + std::to_string(index) + ": " + pcap_geterr(pc.get()));
    pk::parse({data, hdr->caplen}, *link, p);
    const uint64_t ts = static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(hdr->ts.tv_usec);
    if (before_walk) before_walk(ts);
    walk.begin(p, ts);
    out.index = index;
    out.bytes = {data, hdr->caplen};
    out.wire_length = hdr->len;
    out.layers.clear();
    // The callouts' data: the IP packet as captured (cut to its length), or its UDP payload.
    const size_t at = std::min<size_t>(link_header_length(p), hdr->caplen);
    const std::span<const uint8_t> ip = out.bytes.subspan(at, std::min<size_t>(hdr->caplen - at, p.ip_total_len ? p.ip_total_len : hdr->caplen));
    const std::span<const uint8_t> payload = ip.size() >= p.ip_header_len + 8u ? ip.subspan(p.ip_header_len + 8u) : std::span<const uint8_t>{};
    while (walk.next()) {
      const LayerId layer = walk.layer();
      const bool datagram = layer == LayerId::DATAGRAM_DATA_V4 || layer == LayerId::DATAGRAM_DATA_V6;
      ClassifyMeta meta;
      meta.data = datagram ? payload.data() : ip.data();
      meta.data_len = datagram ? payload.size() : ip.size();
      out.layers.push_back({layer, engine.classify(layer, walk.values(), false, &meta)});
      if (!out.layers.back().result.permit) break;  // dropped here: the later layers never see it
    }
    if (!on_packet(out)) break;
  }
}

namespace {

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& a) {
  auto* cmd = app.add_subcommand("replay", "Walk a capture's packets through the packet layers against a policy");
  cmd->add_option("--policy", a.policy, "Policy file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--pcap", a.pcap, "Capture file (pcap or pcapng)")->required();
  cmd->add_option("--local", a.locals, "An address of the host (repeatable; default: the first IP packet's source)");
  cmd->add_option("--ifindex", a.ifindex, "The capture interface's index (default: none, fields EMPTY)")
      ->check(CLI::Range(int64_t{0}, int64_t{UINT32_MAX}));
  return cmd;
}

int run_replay(const FilterEngine& engine, const ReplayArgs& a, bool as_json) {
  replay_capture(engine, a, [&](const ReplayedPacket& rp) {
    const pk::Packet& p = *rp.packet;
    const pk::Walk& walk = *rp.walk;
    json layers = json::array();
    std::string text;
    for (const auto& [layer, r] : rp.layers) {
      const std::string_view name = layer_info(layer).name;
      const char* action = r.permit ? "PERMIT" : "BLOCK";
      if (as_json) {
        layers.push_back({{"layer", name}, {"action", action},
                          {"filter", r.filter ? json(r.filter->key.str()) : json(nullptr)}});
      } else {
        text += "  " + std::string(name) + ' ' + action;
        if (r.filter) text += " by \"" + r.filter->display.name + "\" " + r.filter->key.str();
      }
    }
    const bool problem = p.status != pk::Status::OK;
    if (as_json) {
      json out = {{"index", rp.index}, {"layers", layers}};
      if (problem) out["problem"] = problem_text(p);
      std::cout << out.dump() << '\n';
    } else {
      std::cout << rp.index << ' ' << packet_summary(p) << ' ' << pk::to_string(walk.direction());
      if (walk.fragment_state() == pk::FragmentState::HELD) std::cout << " (fragment held for reassembly)";
      if (walk.fragment_state() == pk::FragmentState::DISCARDED) std::cout << " (fragment discarded)";
      if (walk.fragment_state() == pk::FragmentState::COMPLETED) std::cout << " (completes its datagram)";
      if (problem) std::cout << " problem: " << problem_text(p);
      std::cout << text << '\n';
    }
    return true;
  });
  return 0;
}

}  // namespace

void add_replay_verb(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<ReplayArgs>();
  auto* replay = add_replay_command(app, *a);
  replay->add_flag("--json", g.as_json, "JSON output (one object a packet)");
  verbs[replay] = [&g, a] {
    FilterEngine engine;
    load_policy(engine, a->policy);
    return run_replay(engine, *a, g.as_json);
  };
}

}  // namespace lfp::cli
