// SPDX-License-Identifier: MIT
// The inspection callouts' parsers (parsers.hpp). Every read is bounds-checked against the span.
#include "parsers.hpp"

#include <algorithm>

namespace lfp::inspect {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// A bounds-checked reader over a span: every get fails (and stays failed) past the end.
class Reader {
 public:
  explicit Reader(Bytes b) : b_(b) {}
  bool ok() const { return ok_; }
  size_t left() const { return ok_ ? b_.size() - pos_ : 0; }
  uint32_t get(size_t n) {  // n <= 4 bytes, big-endian
    if (!ok_ || n > left()) return ok_ = false, 0;
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v << 8 | b_[pos_ + i];
    pos_ += n;
    return v;
  }
  Bytes take(size_t n) {
    if (!ok_ || n > left()) return ok_ = false, Bytes{};
    Bytes s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  Bytes b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// ---- TLS ------------------------------------------------------------------------------------------

constexpr uint8_t kHandshake = 22, kClientHello = 1;
constexpr size_t kRecordHeader = 5, kHandshakeHeader = 4;
constexpr size_t kMaxRecord = 16384;     // TLSPlaintext.length (RFC 8446 5.1)
constexpr size_t kMinClientHello = 38;   // version, random, three empty vectors' lengths

// server_name (RFC 6066 3): ServerNameList { NameType name_type; opaque HostName<1..2^16-1>; }
void server_names(Bytes ext, std::vector<std::string>& names, bool& malformed) {
  Reader r(ext);
  const size_t list = r.get(2);
  if (!r.ok() || list != r.left() || list == 0) return void(malformed = true);
  while (r.ok() && r.left() > 0) {
    const uint32_t type = r.get(1);
    const size_t len = r.get(2);
    const Bytes name = r.take(len);
    if (!r.ok() || len == 0) return void(malformed = true);
    if (type != 0) continue;  // host_name is the only type there is
    if (auto n = normalize_name(std::string_view(reinterpret_cast<const char*>(name.data()), name.size())))
      names.push_back(std::move(*n));
    else
      malformed = true;
  }
}

// The ClientHello body (after the handshake header), whole or (truncated) its first bytes. Returns
// false if it is malformed; host names of whole server_name extensions go to `names` either way.
bool client_hello_body(Bytes body, bool truncated, TlsHello& out) {
  Reader r(body);
  out.legacy_version = static_cast<uint16_t>(r.get(2));
  r.take(32);                       // random
  const size_t sid = r.get(1);
  r.take(sid);
  const size_t suites = r.get(2);
  r.take(suites);
  const size_t comp = r.get(1);
  r.take(comp);
  if (!r.ok()) return truncated;
  if (sid > 32 || suites < 2 || suites % 2 || comp < 1) return false;
  if (r.left() == 0) return true;   // no extensions (possible before TLS 1.3)
  const size_t ext_total = r.get(2);
  if (!r.ok()) return truncated;
  if (!truncated && ext_total != r.left()) return false;
  bool malformed = false, seen_sni = false;
  while (r.left() >= 4) {
    const uint32_t type = r.get(2);
    const size_t len = r.get(2);
    const Bytes ext = r.take(len);
    if (!r.ok()) return truncated;  // the extension runs past the bytes given
    if (type == 0) {
      if (seen_sni) malformed = true;  // a second server_name: servers refuse it, but look at it too
      seen_sni = true;
      server_names(ext, out.names, malformed);
    }
  }
  if (r.left() != 0 && !truncated) return false;
  return !malformed;
}

}  // namespace

TlsHello parse_tls_client_hello(Bytes d) {
  TlsHello out;
  std::vector<uint8_t> hs;  // the handshake bytes gathered from the records
  size_t hs_needed = kHandshakeHeader;  // at least this many handshake bytes make the ClientHello
  // Checks the handshake header once it is there; false: not a ClientHello.
  auto header_ok = [&] {
    if (hs.size() < kHandshakeHeader) return true;
    if (hs[0] != kClientHello) return false;
    const size_t len = size_t{hs[1]} << 16 | size_t{hs[2]} << 8 | hs[3];
    if (len < kMinClientHello || len > kMaxClientHello) return false;
    hs_needed = kHandshakeHeader + len;
    return true;
  };
  auto incomplete = [&](size_t need) {
    out.status = Parse::INCOMPLETE;
    out.need = std::max<size_t>(need, 1);
    if (hs.size() > kHandshakeHeader)
      client_hello_body(Bytes(hs).subspan(kHandshakeHeader), true, out);
    return out;
  };
  auto not_tls = [&] {
    out = TlsHello{};
    return out;
  };

  size_t pos = 0;
  for (;;) {
    if (!header_ok()) return not_tls();
    if (hs.size() >= hs_needed && hs.size() >= kHandshakeHeader) break;
    const size_t avail = d.size() - pos;
    // The record header: handshake, version 3.x (x <= 4), length 1..2^14.
    if (avail >= 1 && d[pos] != kHandshake) return not_tls();
    if (avail >= 2 && d[pos + 1] != 3) return not_tls();
    if (avail >= 3 && d[pos + 2] > 4) return not_tls();
    if (avail < kRecordHeader) {
      const size_t more_hs = hs_needed > hs.size() ? hs_needed - hs.size() : 1;
      return incomplete(kRecordHeader - avail + more_hs);
    }
    const size_t len = size_t{d[pos + 3]} << 8 | d[pos + 4];
    if (len == 0 || len > kMaxRecord) return not_tls();
    const size_t take = std::min(len, avail - kRecordHeader);
    hs.insert(hs.end(), d.begin() + static_cast<std::ptrdiff_t>(pos + kRecordHeader),
              d.begin() + static_cast<std::ptrdiff_t>(pos + kRecordHeader + take));
    if (take < len) {
      if (!header_ok()) return not_tls();
      const size_t pending = len - take, after = hs.size() + pending;
      // This record's rest, and if the ClientHello goes on past it, at least another record.
      return incomplete(pending + (after < hs_needed ? kRecordHeader + (hs_needed - after) : 0));
    }
    pos += kRecordHeader + len;
  }
  const Bytes body = Bytes(hs).subspan(kHandshakeHeader, hs_needed - kHandshakeHeader);
  const bool ok = client_hello_body(body, false, out);
  out.status = ok ? Parse::COMPLETE : Parse::NOT_THIS;
  return out;
}

// ---- HTTP -----------------------------------------------------------------------------------------

namespace {

bool method_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }
constexpr size_t kMaxMethod = 24;

// "host[:port]" or "[v6]:port" -> host.
std::string_view strip_port(std::string_view v) {
  if (!v.empty() && v[0] == '[') {
    const size_t close = v.find(']');
    return close == std::string_view::npos ? v : v.substr(0, close + 1);
  }
  const size_t colon = v.rfind(':');
  if (colon == std::string_view::npos || v.find(':') != colon) return v;  // none, or a bare IPv6 address
  const std::string_view port = v.substr(colon + 1);
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return v;
  return v.substr(0, colon);
}

void add_host(std::string_view hostport, std::vector<std::string>& names) {
  if (auto n = normalize_name(strip_port(hostport))) names.push_back(std::move(*n));
}

// The authority of an absolute-form ("http://host:port/path") or authority-form (CONNECT) target.
void target_host(std::string_view method, std::string_view target, std::vector<std::string>& names) {
  if (method == "CONNECT") return add_host(target, names);
  const size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) return;
  const std::string_view scheme = target.substr(0, scheme_end);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return;
  std::string_view auth = target.substr(scheme_end + 3);
  auth = auth.substr(0, std::min(auth.find_first_of("/?#"), auth.size()));
  if (const size_t at = auth.rfind('@'); at != std::string_view::npos) auth = auth.substr(at + 1);
  add_host(auth, names);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

HttpRequest parse_http_request(Bytes data) {
  HttpRequest out;
  const std::string_view all(reinterpret_cast<const char*>(data.data()), std::min(data.size(), kMaxHttpHeaders));
  auto not_http = [&] {
    out = HttpRequest{};
    return out;
  };
  auto incomplete = [&](size_t need) {
    if (data.size() >= kMaxHttpHeaders) {  // past the cap: decide on the complete lines (names kept)
      out.status = Parse::NOT_THIS;
      out.need = 0;
      return out;
    }
    out.status = Parse::INCOMPLETE;
    out.need = std::max<size_t>(1, std::min(need, kMaxHttpHeaders - data.size()));
    return out;
  };

  // Request line: METHOD SP target SP "HTTP/1." DIGIT [CR] LF, checked as far as it goes.
  size_t i = 0;
  while (i < all.size() && method_char(static_cast<uint8_t>(all[i]))) ++i;
  if (i > kMaxMethod || (i < all.size() && (i == 0 || all[i] != ' '))) return not_http();
  if (i == all.size()) return incomplete(13);  // SP t SP HTTP/1.1 LF LF
  const std::string_view method = all.substr(0, i);
  const size_t target_start = ++i;
  while (i < all.size() && static_cast<uint8_t>(all[i]) > 0x20 && static_cast<uint8_t>(all[i]) < 0x7f) ++i;
  if (i < all.size() && (i == target_start || all[i] != ' ')) return not_http();
  if (i == all.size()) return incomplete(i == target_start ? 12 : 11);  // [t] SP HTTP/1.1 LF LF
  const std::string_view target = all.substr(target_start, i - target_start);
  ++i;
  constexpr std::string_view kVersion = "HTTP/1.";
  for (size_t k = 0; k < kVersion.size(); ++k, ++i) {
    if (i == all.size()) return incomplete(kVersion.size() - k + 3);
    if (all[i] != kVersion[k]) return not_http();
  }
  if (i == all.size()) return incomplete(3);
  if (all[i] < '0' || all[i] > '9') return not_http();
  ++i;
  if (i < all.size() && all[i] == '\r') ++i;
  if (i == all.size()) return incomplete(2);
  if (all[i] != '\n') return not_http();
  ++i;
  out.method = std::string(method);
  target_host(method, target, out.names);

  // Header fields, one a line, up to an empty line.
  for (;;) {
    const size_t lf = all.find('\n', i);
    if (lf == std::string_view::npos) return incomplete(1);  // a bare LF may end the headers
    std::string_view line = all.substr(i, lf - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    i = lf + 1;
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') continue;  // obs-fold: a continuation
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // not a field (a server answers 400)
    if (iequals(trim(line.substr(0, colon)), "host")) add_host(trim(line.substr(colon + 1)), out.names);
  }
  out.status = Parse::COMPLETE;
  return out;
}

// ---- DNS ------------------------------------------------------------------------------------------

std::optional<std::pair<std::string, size_t>> parse_dns_name(Bytes msg, size_t offset) {
  std::string name;
  size_t pos = offset, seg_start = offset, end = 0, wire = 0;
  bool jumped = false;
  for (int steps = 0; steps < 512; ++steps) {
    if (pos >= msg.size()) return std::nullopt;
    const uint8_t b = msg[pos];
    if (b == 0) {
      if (!jumped) end = pos + 1;
      if (name.empty()) name = ".";
      return std::pair{std::move(name), end};
    }
    if ((b & 0xC0) == 0xC0) {  // a compression pointer: strictly backwards, so it cannot loop
      if (pos + 1 >= msg.size()) return std::nullopt;
      const size_t target = size_t{b & 0x3Fu} << 8 | msg[pos + 1];
      if (target >= seg_start) return std::nullopt;
      if (!jumped) end = pos + 2;
      jumped = true;
      pos = seg_start = target;
      continue;
    }
    if (b & 0xC0) return std::nullopt;  // 0x40 (extended) and 0x80 (reserved) label types
    wire += 1 + b;
    if (wire + 1 > 255 || pos + 1 + b > msg.size()) return std::nullopt;
    if (!name.empty()) name += '.';
    for (size_t k = 0; k < b; ++k) {
      const char c = static_cast<char>(msg[pos + 1 + k]);
      const char l = lower(c);
      if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-' || l == '_') {
        name += l;
      } else {
        const unsigned v = static_cast<uint8_t>(c);
        name += '\\';
        name += static_cast<char>('0' + v / 100);
        name += static_cast<char>('0' + v / 10 % 10);
        name += static_cast<char>('0' + v % 10);
      }
    }
    pos += 1 + b;
  }
  return std::nullopt;
}

std::optional<DnsMessage> parse_dns(Bytes d) {
  Reader r(d);
  DnsMessage m;
  m.id = static_cast<uint16_t>(r.get(2));
  const uint32_t flags = r.get(2);
  m.qdcount = static_cast<uint16_t>(r.get(2));
  m.ancount = static_cast<uint16_t>(r.get(2));
  m.nscount = static_cast<uint16_t>(r.get(2));
  m.arcount = static_cast<uint16_t>(r.get(2));
  if (!r.ok() || m.qdcount == 0) return std::nullopt;
  m.response = flags & 0x8000;
  m.opcode = static_cast<uint8_t>(flags >> 11 & 0xF);
  m.rcode = static_cast<uint8_t>(flags & 0xF);
  if (m.opcode == 3 || m.opcode > 6) return std::nullopt;  // unassigned opcodes: not DNS
  size_t pos = 12;
  for (size_t q = 0; q < m.qdcount && q < kMaxDnsQuestions; ++q) {
    auto name = parse_dns_name(d, pos);
    if (!name || name->second + 4 > d.size()) {
      if (q == 0) return std::nullopt;
      break;  // later questions that do not parse are left out
    }
    pos = name->second;
    DnsQuestion question;
    question.name = std::move(name->first);
    question.qtype = static_cast<uint16_t>(d[pos] << 8 | d[pos + 1]);
    question.qclass = static_cast<uint16_t>(d[pos + 2] << 8 | d[pos + 3]);
    pos += 4;
    m.questions.push_back(std::move(question));
  }
  return m;
}

std::string dns_type_name(uint16_t t) {
  switch (t) {
    case 1: return "A";
    case 2: return "NS";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 13: return "HINFO";
    case 15: return "MX";
    case 16: return "TXT";
    case 28: return "AAAA";
    case 33: return "SRV";
    case 35: return "NAPTR";
    case 39: return "DNAME";
    case 41: return "OPT";
    case 43: return "DS";
    case 46: return "RRSIG";
    case 47: return "NSEC";
    case 48: return "DNSKEY";
    case 52: return "TLSA";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    case 99: return "SPF";
    case 251: return "IXFR";
    case 252: return "AXFR";
    case 255: return "ANY";
    case 257: return "CAA";
    default: return "TYPE" + std::to_string(t);
  }
}

// ---- Names ----------------------------------------------------------------------------------------

std::optional<std::string> normalize_name(std::string_view n) {
  if (!n.empty() && n.back() == '.') n.remove_suffix(1);
  if (n.empty() || n.size() > 253) return std::nullopt;
  std::string s;
  s.reserve(n.size());
  for (char c : n) {
    const auto u = static_cast<uint8_t>(c);
    if (u <= 0x20 || u >= 0x7f) return std::nullopt;
    s += lower(c);
  }
  if (s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) return std::nullopt;  // an empty label
  return s;
}

std::optional<NamePattern> parse_pattern(std::string_view text) {
  NamePattern p;
  if (text.substr(0, 2) == "*.") {
    p.wildcard = true;
    text.remove_prefix(2);
  }
  auto n = normalize_name(text);
  if (!n || n->find('*') != std::string::npos) return std::nullopt;
  p.suffix = std::move(*n);
  return p;
}

bool name_matches(const NamePattern& p, std::string_view name) {
  if (!p.wildcard) return name == p.suffix;
  return name.size() > p.suffix.size() + 1 && name.substr(name.size() - p.suffix.size()) == p.suffix &&
         name[name.size() - p.suffix.size() - 1] == '.';
}

bool any_matches(const std::vector<NamePattern>& list, std::string_view name) {
  const auto n = normalize_name(name);
  if (!n) return false;
  return std::any_of(list.begin(), list.end(), [&](const NamePattern& p) { return name_matches(p, *n); });
}

}  // namespace lfp::inspect
