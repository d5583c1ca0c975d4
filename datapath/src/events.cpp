// SPDX-License-Identifier: MIT
#include "lfp/datapath/events.hpp"
#include "lfp/datapath/notify.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace lfp::datapath {

namespace {

// CLOCK_BOOTTIME nanoseconds (what the hooks stamp) as an ISO 8601 UTC time.
std::string wall_time(uint64_t boot_ns) {
  timespec rt, bt;
  ::clock_gettime(CLOCK_REALTIME, &rt);
  ::clock_gettime(CLOCK_BOOTTIME, &bt);
  const int64_t offset = (int64_t{rt.tv_sec} - bt.tv_sec) * 1000000000 + (rt.tv_nsec - bt.tv_nsec);
  const int64_t ns = static_cast<int64_t>(boot_ns) + offset;
  const time_t s = ns / 1000000000;
  tm t;
  ::gmtime_r(&s, &t);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(ns % 1000000000 / 1000));
  return buf;
}

std::string address(const uint8_t* a, bool v6) {
  if (!v6) return format_ip4(uint32_t{a[0]} << 24 | uint32_t{a[1]} << 16 | uint32_t{a[2]} << 8 | a[3]);
  Ip6 x;
  std::memcpy(x.data(), a, 16);
  return format_ip6(x);
}

std::string app_path(const lfp_event& ev, const KernelPolicy& policy) {
  auto it = policy.apps.find(AppKey{ev.app_dev, ev.app_ino});
  if (it != policy.apps.end()) return it->second;
  char buf[4096];
  const std::string link = "/proc/" + std::to_string(ev.pid) + "/exe";
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

nlohmann::json describe(const lfp_event& ev, const FilterEngine& engine, const KernelPolicy& policy) {
  using nlohmann::json;
  const bool v6 = ev.family == 6;
  json j = {
      {"time", wall_time(ev.boot_ns)},
      {"layer", layer_info(engine_layer(static_cast<lfp_kl>(ev.kl < LFP_KL_COUNT ? ev.kl : 0))).name},
      {"type", ev.permit ? "CLASSIFY_ALLOW" : "CLASSIFY_DROP"},
      {"ip_version", v6 ? "V6" : "V4"},
      {"ip_protocol", ev.protocol},
  };
  if (ev.kl == LFP_KL_MAC_IN || ev.kl == LFP_KL_MAC_OUT) {  // a frame: MACs, EtherType and VLAN (lfp_packet.bpf.c)
    auto mac = [](const uint8_t* m) {
      Ip6 b{};
      std::memcpy(b.data(), m, 6);
      return format_mac(b);
    };
    j["type"] = ev.permit ? "CLASSIFY_ALLOW" : "CLASSIFY_DROP_MAC";
    j.erase("ip_version");
    j.erase("ip_protocol");
    j["local_mac"] = mac(ev.local_addr);
    j["remote_mac"] = mac(ev.remote_addr);
    j["ether_type"] = ev.local_port;
    j["vlan_id"] = ev.remote_port;
    j["direction"] = ev.packet_dir == LFP_DIR_INBOUND ? "INBOUND" : "OUTBOUND";
  } else if (!ev.packet_dir) {  // a socket's event: who made it (a packet's names no process)
    j["app_id"] = app_path(ev, policy);
    j["pid"] = ev.pid;
    j["uid"] = ev.uid;
    j["gid"] = ev.gid;
    if (j["app_id"] == "") j.erase("app_id");  // gone before the event was drained: app_file still says which
  }
  if (ev.app_dev || ev.app_ino) j["app_file"] = std::to_string(ev.app_dev) + ":" + std::to_string(ev.app_ino);
  static const uint8_t zero[16] = {};
  const bool frame = j.contains("local_mac");  // (MAC addresses instead of IP ones)
  // A connect() before bind has neither a local address nor a port.
  if (!frame && (ev.local_port || std::memcmp(ev.local_addr, zero, 16) != 0)) {
    j["local_address"] = address(ev.local_addr, v6);
    j["local_port"] = ev.local_port;
  }
  if (!frame && ev.kl != LFP_KL_LISTEN_V4 && ev.kl != LFP_KL_LISTEN_V6 && ev.kl != LFP_KL_RESOURCE_V4 &&
      ev.kl != LFP_KL_RESOURCE_V6 && ev.kl != LFP_KL_RELEASE_V4 && ev.kl != LFP_KL_RELEASE_V6) {
    j["remote_address"] = address(ev.remote_addr, v6);
    j["remote_port"] = ev.remote_port;
    const bool inbound = ev.packet_dir ? ev.packet_dir == LFP_DIR_INBOUND
                                       : ev.kl == LFP_KL_RECV_ACCEPT_V4 || ev.kl == LFP_KL_RECV_ACCEPT_V6;
    // (A forwarded packet is neither: WFP's events have no direction at IPFORWARD.)
    const bool forward = ev.kl == LFP_KL_FORWARD_V4 || ev.kl == LFP_KL_FORWARD_V6;
    if (!forward && ev.kl != LFP_KL_FLOW_V4 && ev.kl != LFP_KL_FLOW_V6 && !notification_layer(ev.kl))
      j["direction"] = inbound ? "INBOUND" : "OUTBOUND";
    const bool loop4 = !v6 && ev.remote_addr[0] == 127;
    static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    j["loopback"] = loop4 || (v6 && std::memcmp(ev.remote_addr, one, 16) == 0) ||
                    (std::memcmp(ev.remote_addr, ev.local_addr, v6 ? 16 : 4) == 0);
  }
  if (ev.ifindex) j["interface_index"] = ev.ifindex;
  if (ev.defer && !notification_layer(ev.kl)) {  // (at a notification layer lfpd classifies: notify.hpp)
    j["reason"] = "needs user space, which could not decide (--fail)";
  } else if (ev.filter_id) {
    j["hard"] = bool(ev.hard);
    j["filter_id"] = ev.filter_id;
    if (const Filter* f = engine.filter_by_id(ev.filter_id)) {
      j["filter_key"] = f->key.str();
      j["filter_name"] = f->display.name;
      j["sublayer"] = (f->sublayer ? *f->sublayer : builtin::SUBLAYER_UNIVERSAL).str();
      if (f->provider) j["provider"] = f->provider->str();
    }
  }
  return j;
}

nlohmann::json describe_dropped(const lfp_dropped& p, const FilterEngine& engine) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  const unsigned n = std::min<unsigned>(p.caplen, LFP_DROP_SNAP);
  for (unsigned i = 0; i < n; ++i) hex += {digits[p.data[i] >> 4], digits[p.data[i] & 15]};
  nlohmann::json j = {{"time", wall_time(p.boot_ns)},
                      {"layer", layer_info(engine_layer(static_cast<lfp_kl>(p.kl < LFP_KL_COUNT ? p.kl : 0))).name},
                      {"interface_index", p.ifindex},
                      {"len", p.len},
                      {"link", p.link == LFP_LINK_ETHERNET ? "ETHERNET" : "RAW"},
                      {"data", hex}};
  if (const Filter* f = engine.filter_by_id(p.filter_id)) j["filter_key"] = f->key.str();
  return j;
}

std::string summary(const nlohmann::json& e) {
  const int proto = e.value("ip_protocol", 0);
  std::string s = std::string(e.value("type", "") == "CLASSIFY_ALLOW" ? "PERMIT" : "BLOCK") + " " + e.value("layer", "");
  if (e.contains("local_mac"))
    s += " local " + e["local_mac"].get<std::string>() + " remote " + e["remote_mac"].get<std::string>() +
         " ether_type " + std::to_string(e.value("ether_type", 0)) + " vlan " + std::to_string(e.value("vlan_id", 0));
  else
    s += std::string(" ") + (proto == 6 ? "tcp" : proto == 17 ? "udp" : std::to_string(proto));
  if (e.contains("local_address"))
    s += " local " + e["local_address"].get<std::string>() + ":" + std::to_string(e.value("local_port", 0));
  if (e.contains("remote_address"))
    s += " remote " + e["remote_address"].get<std::string>() + ":" + std::to_string(e.value("remote_port", 0));
  if (e.contains("pid"))
    s += " app " + e.value("app_id", "?") + " pid " + std::to_string(e.value("pid", 0)) + " uid " +
         std::to_string(e.value("uid", 0));
  else if (e.contains("interface_index"))
    s += " interface " + std::to_string(e.value("interface_index", 0));
  if (e.contains("filter_name"))
    s += " by filter \"" + e["filter_name"].get<std::string>() + "\" " + e.value("filter_key", "") +
         (e.value("hard", false) ? " (hard)" : "");
  if (e.contains("reason")) s += ": " + e["reason"].get<std::string>();
  return s;
}

}  // namespace lfp::datapath
