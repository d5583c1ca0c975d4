// SPDX-License-Identifier: MIT
// Reading ClassBench filter sets and traces (plain text or xz-compressed), header-only.
// Link with liblzma (LibLZMA::LibLZMA). Errors are reported as std::runtime_error with the file
// name and line number.
#pragma once

#include <lzma.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lfp/engine/objects.hpp"
#include "lfp/engine/tuple_classifier.hpp"

namespace lfp::classbench {

struct Rule {
  uint32_t src = 0, dst = 0;
  uint8_t src_len = 0, dst_len = 0;
  uint16_t sport_lo = 0, sport_hi = 65535, dport_lo = 0, dport_hi = 65535;
  uint8_t proto = 0, proto_mask = 0;
};

struct Packet {
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t proto = 0;
  uint32_t rule = 0;  // 0-based line of the rule the header was generated from
};

// The whole file, decompressed when it starts with the xz magic.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const unsigned char kMagic[6] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
  if (raw.size() < 6 || std::memcmp(raw.data(), kMagic, 6) != 0) return raw;
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
    throw std::runtime_error(path + ": lzma_stream_decoder failed");
  std::string out;
  out.resize(raw.size() * 8 + 4096);
  s.next_in = reinterpret_cast<const uint8_t*>(raw.data());
  s.avail_in = raw.size();
  size_t done = 0;
  for (;;) {
    if (done == out.size()) out.resize(out.size() * 2);
    s.next_out = reinterpret_cast<uint8_t*>(out.data()) + done;
    s.avail_out = out.size() - done;
    lzma_ret r = lzma_code(&s, LZMA_FINISH);
    done = out.size() - s.avail_out;
    if (r == LZMA_STREAM_END) break;
    if (r != LZMA_OK) {
      lzma_end(&s);
      throw std::runtime_error(path + ": xz data is corrupt (lzma error " + std::to_string(int(r)) + ")");
    }
  }
  lzma_end(&s);
  out.resize(done);
  return out;
}

namespace detail {

struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool at_end() const { return i >= s.size(); }
  void skip_ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    skip_ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  // Unsigned decimal (or 0x-hex when hex_ok) no larger than max.
  bool num(uint64_t max, uint64_t& v, bool hex_ok = false) {
    skip_ws();
    size_t start = i;
    v = 0;
    if (hex_ok && i + 1 < s.size() && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
      i += 2;
      size_t ds = i;
      while (i < s.size()) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) break;
        v = v * 16 + uint64_t(d);
        if (v > max) return false;
        ++i;
      }
      return i > ds;
    }
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + uint64_t(s[i] - '0');
      if (v > max) return false;
      ++i;
    }
    return i > start;
  }
};

inline std::runtime_error line_error(const std::string& what, size_t line, const std::string& msg) {
  return std::runtime_error(what + ":" + std::to_string(line) + ": " + msg);
}

template <class F>
inline void for_each_line(std::string_view text, F&& f) {
  size_t line = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    ++line;
    std::string_view l = text.substr(pos, nl - pos);
    pos = nl + 1;
    size_t a = l.find_first_not_of(" \t\r");
    if (a == std::string_view::npos) continue;  // blank line
    f(l, line);
  }
}

inline bool parse_prefix(Cursor& c, uint32_t& addr, uint8_t& len) {
  uint64_t v = 0, a = 0;
  for (int k = 0; k < 4; ++k) {
    if (k && !c.eat('.')) return false;
    if (!c.num(255, v)) return false;
    a = (a << 8) | v;
  }
  if (!c.eat('/') || !c.num(32, v)) return false;
  len = uint8_t(v);
  uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  addr = uint32_t(a) & mask;
  return true;
}

inline bool parse_range(Cursor& c, uint16_t& lo, uint16_t& hi) {
  uint64_t a, b;
  if (!c.num(65535, a) || !c.eat(':') || !c.num(65535, b) || a > b) return false;
  lo = uint16_t(a);
  hi = uint16_t(b);
  return true;
}

}  // namespace detail

// `@src/len  dst/len  lo : hi  lo : hi  0xPP/0xMM  [flags/mask]`, TAB or space separated.
inline std::vector<Rule> parse_rules(std::string_view text, const std::string& what = "rules") {
  std::vector<Rule> out;
  detail::for_each_line(text, [&](std::string_view l, size_t line) {
    detail::Cursor c{l};
    Rule r;
    uint64_t v, m;
    if (!c.eat('@')) throw detail::line_error(what, line, "a rule line starts with '@'");
    if (!detail::parse_prefix(c, r.src, r.src_len)) throw detail::line_error(what, line, "bad source prefix");
    if (!detail::parse_prefix(c, r.dst, r.dst_len)) throw detail::line_error(what, line, "bad destination prefix");
    if (!detail::parse_range(c, r.sport_lo, r.sport_hi)) throw detail::line_error(what, line, "bad source port range");
    if (!detail::parse_range(c, r.dport_lo, r.dport_hi)) throw detail::line_error(what, line, "bad destination port range");
    if (!c.num(255, v, true) || !c.eat('/') || !c.num(255, m, true))
      throw detail::line_error(what, line, "bad protocol value/mask");
    if (m != 0 && m != 0xff) {
      // A contiguous mask is a prefix of the protocol byte; anything else is no interval.
      uint32_t inv = uint32_t(~m) & 0xff;
      if ((inv & (inv + 1)) != 0) throw detail::line_error(what, line, "protocol mask is not a prefix");
    }
    r.proto = uint8_t(v & m);
    r.proto_mask = uint8_t(m);
    // Optional sixth field (flags value/mask): ignored, but must be well formed if present.
    c.skip_ws();
    if (!c.at_end()) {
      if (!c.num(UINT64_MAX, v, true) || !c.eat('/') || !c.num(UINT64_MAX, m, true))
        throw detail::line_error(what, line, "bad flags value/mask");
      c.skip_ws();
      if (!c.at_end()) throw detail::line_error(what, line, "unexpected text after the flags field");
    }
    out.push_back(r);
  });
  return out;
}

// `src dst sport dport proto [flags] rule` (7 fields; 6 fields = no flags).
inline std::vector<Packet> parse_trace(std::string_view text, const std::string& what = "trace") {
  std::vector<Packet> out;
  out.reserve(text.size() / 40);
  detail::for_each_line(text, [&](std::string_view l, size_t line) {
    detail::Cursor c{l};
    uint64_t f[8];
    int n = 0;
    for (;;) {
      c.skip_ws();
      if (c.at_end()) break;
      if (n == 8 || !c.num(UINT32_MAX, f[n])) throw detail::line_error(what, line, "expected unsigned decimal fields");
      ++n;
    }
    if (n != 7 && n != 6) throw detail::line_error(what, line, "expected 7 fields, got " + std::to_string(n));
    if (f[2] > 65535 || f[3] > 65535 || f[4] > 255) throw detail::line_error(what, line, "port or protocol out of range");
    Packet p;
    p.src = uint32_t(f[0]);
    p.dst = uint32_t(f[1]);
    p.sport = uint16_t(f[2]);
    p.dport = uint16_t(f[3]);
    p.proto = uint8_t(f[4]);
    p.rule = uint32_t(f[n - 1]);
    out.push_back(p);
  });
  return out;
}

inline std::vector<Rule> read_rules(const std::string& path) { return parse_rules(read_file(path), path); }
inline std::vector<Packet> read_trace(const std::string& path) { return parse_trace(read_file(path), path); }

// A rule as the filter the benchmarks and tests classify with: INBOUND_TRANSPORT_V4, the source as
// the remote end, a field a rule leaves whole left out.
inline Filter to_filter(const Rule& r, uint64_t weight, ActionType action = ActionType::BLOCK) {
  Filter f;
  f.display.name = "classbench";
  f.layer = LayerId::INBOUND_TRANSPORT_V4;
  f.action.type = action;
  f.weight = Weight::explicit_weight(weight);
  auto add = [&](FieldId field, MatchType m, ConditionValue v) { f.conditions.push_back({field, m, std::move(v)}); };
  if (r.src_len) add(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::v4_prefix(r.src, r.src_len));
  if (r.dst_len) add(FieldId::IP_LOCAL_ADDRESS, MatchType::EQUAL, ConditionValue::v4_prefix(r.dst, r.dst_len));
  auto ports = [&](FieldId field, uint16_t lo, uint16_t hi) {
    if (lo == 0 && hi == 65535) return;
    if (lo == hi) add(field, MatchType::EQUAL, ConditionValue::uint(DataType::UINT16, lo));
    else add(field, MatchType::RANGE, ConditionValue::range({DataType::UINT16, lo}, {DataType::UINT16, hi}));
  };
  ports(FieldId::IP_REMOTE_PORT, r.sport_lo, r.sport_hi);
  ports(FieldId::IP_LOCAL_PORT, r.dport_lo, r.dport_hi);
  if (r.proto_mask == 0xff) add(FieldId::IP_PROTOCOL, MatchType::EQUAL, ConditionValue::uint(DataType::UINT8, r.proto));
  return f;
}

// Rule i of n gets priority n - i. Dimensions: source, destination, source port, destination port,
// protocol (as lfp::cls::V4Classifier orders them: remote, local, remote port, local port, proto).
inline lfp::cls::RuleSpec<5> to_spec(const Rule& r, uint32_t priority) {
  lfp::cls::RuleSpec<5> s;
  auto pfx = [](uint32_t a, uint8_t len, uint64_t& lo, uint64_t& hi) {
    uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    lo = a & mask;
    hi = (a & mask) | ~mask;
  };
  pfx(r.src, r.src_len, s.lo[0], s.hi[0]);
  pfx(r.dst, r.dst_len, s.lo[1], s.hi[1]);
  s.lo[2] = r.sport_lo;
  s.hi[2] = r.sport_hi;
  s.lo[3] = r.dport_lo;
  s.hi[3] = r.dport_hi;
  s.lo[4] = r.proto & r.proto_mask;
  s.hi[4] = (r.proto & r.proto_mask) | (~r.proto_mask & 0xffu);
  s.priority = priority;
  return s;
}

inline std::array<uint64_t, 5> to_key(const Packet& p) { return {p.src, p.dst, p.sport, p.dport, p.proto}; }

inline bool rule_matches(const Rule& r, const Packet& p) {
  uint32_t sm = r.src_len == 0 ? 0 : ~uint32_t{0} << (32 - r.src_len);
  uint32_t dm = r.dst_len == 0 ? 0 : ~uint32_t{0} << (32 - r.dst_len);
  return ((p.src ^ r.src) & sm) == 0 && ((p.dst ^ r.dst) & dm) == 0 && p.sport >= r.sport_lo &&
         p.sport <= r.sport_hi && p.dport >= r.dport_lo && p.dport <= r.dport_hi &&
         ((p.proto ^ r.proto) & r.proto_mask) == 0;
}

}  // namespace lfp::classbench
