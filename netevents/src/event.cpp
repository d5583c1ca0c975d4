// SPDX-License-Identifier: MIT
#include "lfp/netevents/event.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/guid.hpp"

namespace lfp::netevents {

using nlohmann::json;

namespace {

constexpr std::string_view kTypeNames[kEventTypeCount] = {
    "CLASSIFY_DROP",     "CLASSIFY_ALLOW",    "CLASSIFY_DROP_MAC", "CAPABILITY_DROP",   "CAPABILITY_ALLOW",
    "IKEEXT_MM_FAILURE", "IKEEXT_QM_FAILURE", "IKEEXT_EM_FAILURE", "IPSEC_KERNEL_DROP", "IPSEC_DOSP_DROP",
    "CLASSIFY_LOG"};

[[noreturn]] void bad(const std::string& member, const std::string& why) {
  throw EventError("/" + member + ": " + why);
}

uint64_t unsigned_member(const json& v, const std::string& name, uint64_t max) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<uint64_t>() > max)
    bad(name, "must be an integer 0.." + std::to_string(max));
  return v.get<uint64_t>();
}

std::string string_member(const json& v, const std::string& name) {
  if (!v.is_string()) bad(name, "must be a string");
  return v.get<std::string>();
}

int protocol_number(const json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "tcp") return 6;
    if (s == "udp") return 17;
    if (s == "icmp") return 1;
    if (s == "icmpv6") return 58;
    bad("ip_protocol", "unknown protocol '" + v.get<std::string>() + "' (a number, or tcp, udp, icmp, icmpv6)");
  }
  return static_cast<int>(unsigned_member(v, "ip_protocol", 255));
}

}  // namespace

std::string_view to_string(EventType t) { return kTypeNames[static_cast<size_t>(t)]; }

std::optional<EventType> event_type_from_string(std::string_view s) {
  for (int i = 0; i < kEventTypeCount; ++i)
    if (kTypeNames[i] == s) return static_cast<EventType>(i);
  return std::nullopt;
}

bool is_drop(EventType t) {
  return t != EventType::CLASSIFY_ALLOW && t != EventType::CAPABILITY_ALLOW && t != EventType::CLASSIFY_LOG;
}

std::optional<AddrKey> parse_address(std::string_view s) {
  if (s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  AddrKey k{};
  in_addr a4;
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    k[10] = k[11] = 0xff;
    std::memcpy(&k[12], &a4, 4);
    return k;
  }
  if (inet_pton(AF_INET6, buf, k.data()) == 1) return k;
  return std::nullopt;
}

std::optional<AddrRange> parse_address_range(std::string_view s) {
  const size_t slash = s.find('/');
  auto a = parse_address(s.substr(0, slash));
  if (!a) return std::nullopt;
  if (slash == std::string_view::npos) return AddrRange{*a, *a};
  const bool v4 = s.substr(0, slash).find(':') == std::string_view::npos;
  const std::string_view len_text = s.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 3 ||
      !std::all_of(len_text.begin(), len_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int len = std::stoi(std::string(len_text));
  if (len > (v4 ? 32 : 128)) return std::nullopt;
  if (v4) len += 96;  // within ::ffff:0:0/96
  AddrRange r{*a, *a};
  for (int bit = len; bit < 128; ++bit) {
    const uint8_t m = static_cast<uint8_t>(0x80u >> (bit % 8));
    r.lo[bit / 8] &= static_cast<uint8_t>(~m);
    r.hi[bit / 8] |= m;
  }
  return r;
}

std::string app_file_of(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(uint64_t{major(st.st_dev)} << 20 | minor(st.st_dev)) + ":" + std::to_string(st.st_ino);
}

int64_t now_ns() {
  timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

std::string format_time(int64_t ns) {
  time_t s = static_cast<time_t>(ns / 1000000000);
  int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --s;
  }
  tm t;
  ::gmtime_r(&s, &t);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(frac / 1000));
  return buf;
}

std::optional<int64_t> parse_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); a space may stand for the T.
  auto digits = [&](size_t pos, size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto Y = digits(0, 4), M = digits(5, 2), D = digits(8, 2), h = digits(11, 2), m = digits(14, 2), sec = digits(17, 2);
  if (!Y || !M || !D || !h || !m || !sec || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (*M < 1 || *M > 12 || *D < 1 || *D > 31 || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
  if (*Y < 1970 || *Y > 2200) return std::nullopt;  // ns since the epoch fit an int64 until 2262
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100000000;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om || s[pos + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset_s = (*oh * 3600 + *om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;  // a time without a zone is ambiguous
  }
  if (pos != s.size()) return std::nullopt;
  tm t{};
  t.tm_year = *Y - 1900;
  t.tm_mon = *M - 1;
  t.tm_mday = *D;
  t.tm_hour = *h;
  t.tm_min = *m;
  t.tm_sec = *sec;
  const time_t secs = ::timegm(&t);
  return (int64_t{secs} - offset_s) * 1000000000 + frac_ns;
}

Record parse_event(const json& j, int64_t now) {
  if (!j.is_object()) throw EventError("/: an event must be a JSON object");
  Record r;
  json& b = r.body = json::object();
  for (const auto& [name, v] : j.items()) {
    if (name == "type") {
      auto t = v.is_string() ? event_type_from_string(v.get<std::string>()) : std::nullopt;
      if (!t) bad(name, "must be a net event type (CLASSIFY_DROP, CLASSIFY_ALLOW, CLASSIFY_DROP_MAC, CAPABILITY_DROP, ...)");
      r.type = *t;
      b[name] = to_string(*t);
    } else if (name == "time") {
      auto t = v.is_string() ? parse_time(v.get<std::string>()) : std::nullopt;
      if (!t) bad(name, "must be an ISO 8601 time with a zone, e.g. 2026-11-23T10:00:00Z");
      r.time_ns = *t;
    } else if (name == "ip_version") {
      if (v != "V4" && v != "V6") bad(name, "must be \"V4\" or \"V6\"");
      b[name] = v;
    } else if (name == "ip_protocol") {
      r.ip_protocol = protocol_number(v);
      b[name] = r.ip_protocol;
    } else if (name == "local_address" || name == "remote_address") {
      const std::string s = string_member(v, name);
      auto a = parse_address(s);
      if (!a) bad(name, "'" + s + "' is not an IPv4 or IPv6 address");
      (name[0] == 'l' ? r.local_addr : r.remote_addr) = a;
      b[name] = s;
      if (!j.contains("ip_version")) b["ip_version"] = s.find(':') == std::string::npos ? "V4" : "V6";
    } else if (name == "local_port" || name == "remote_port") {
      (name[0] == 'l' ? r.local_port : r.remote_port) = static_cast<int>(unsigned_member(v, name, 65535));
      b[name] = v;
    } else if (name == "app_id") {
      r.app_id = string_member(v, name);
      b[name] = v;
    } else if (name == "app_file") {
      r.app_file = string_member(v, name);
      const size_t colon = r.app_file.find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == r.app_file.size() ||
          r.app_file.find_first_not_of("0123456789:") != std::string::npos || r.app_file.find(':', colon + 1) != std::string::npos)
        bad(name, "must be \"DEV:INO\" (decimal)");
      b[name] = v;
    } else if (name == "uid") {
      r.uid = static_cast<int64_t>(unsigned_member(v, name, UINT32_MAX));
      b[name] = v;
    } else if (name == "gid" || name == "pid" || name == "interface_index" || name == "vlan_id" ||
               name == "ether_type") {
      unsigned_member(v, name, name == "vlan_id" ? 4095 : name == "ether_type" ? 65535 : UINT32_MAX);
      b[name] = v;
    } else if (name == "filter_id" || name == "log_suppressed") {
      unsigned_member(v, name, UINT64_MAX);
      b[name] = v;
    } else if (name == "layer") {
      const std::string s = string_member(v, name);
      if (!layer_from_string(s)) bad(name, "unknown layer '" + s + "'");
      r.layer = s;
      b[name] = v;
    } else if (name == "filter_key" || name == "sublayer" || name == "provider") {
      auto g = Guid::parse(string_member(v, name));
      if (!g) bad(name, "must be a GUID");
      if (name == "filter_key") r.filter_key = g->str();
      if (name == "provider") r.provider = g->str();
      b[name] = g->str();
    } else if (name == "filter_name" || name == "reason" || name == "local_mac" || name == "remote_mac" ||
               name == "completed_by" || name == "log_prefix") {
      string_member(v, name);
      b[name] = v;
    } else if (name == "hard" || name == "veto" || name == "loopback") {
      if (!v.is_boolean()) bad(name, "must be true or false");
      b[name] = v;
    } else if (name == "direction") {
      if (v != "INBOUND" && v != "OUTBOUND") bad(name, "must be \"INBOUND\" or \"OUTBOUND\"");
      b[name] = v;
    } else {
      bad(name, "unknown member (docs/netevents.md lists the event's members)");
    }
  }
  if (!j.contains("type")) bad("type", "is required");
  if (!j.contains("time")) r.time_ns = now;
  b["time"] = format_time(r.time_ns);
  return r;
}

}  // namespace lfp::netevents
