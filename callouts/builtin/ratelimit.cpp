// SPDX-License-Identifier: MIT
#include "ratelimit.hpp"

#include "transport_match.hpp"

#include <algorithm>
#include <climits>

#include <nlohmann/json.hpp>

namespace lfp::inspect {

namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kSyn = 0x02, kAck = 0x10;

}  // namespace

std::optional<RateLimitConfig> parse_rate_limit_config(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<RateLimitConfig> {
    *error = why;
    return std::nullopt;
  };
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("not a JSON object");
  RateLimitConfig c;
  RateLimitConfig::Rate rate;
  bool has_hitcount = false, has_rate = false, has_per = false, has_rate_member = false, has_recent_member = false;
  auto number = [&](const nlohmann::json& v, uint64_t low, uint64_t high, uint64_t& out) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) return false;
    out = v.get<uint64_t>();
    return out >= low && out <= high;
  };
  for (const auto& [k, v] : j.items()) {
    uint64_t n = 0;
    if (k == "seconds") {
      if (!number(v, 0, 86400 * 365, n)) return fail("\"seconds\" is not a number of seconds (0 to a year)");
      c.seconds = static_cast<uint32_t>(n);
      has_recent_member = true;
    } else if (k == "hitcount") {
      if (!number(v, 1, 255, n)) return fail("\"hitcount\" is not a number from 1 to 255");
      c.hitcount = static_cast<uint32_t>(n);
      has_hitcount = has_recent_member = true;
    } else if (k == "prefix") {
      if (!number(v, 0, 128, n)) return fail("\"prefix\" is not a prefix length (0 to 128)");
      c.prefix = static_cast<int>(n);
      has_recent_member = true;
    } else if (k == "name") {
      if (!v.is_string() || v.get<std::string>().empty()) return fail("\"name\" is not a table name");
      c.name = v.get<std::string>();
    } else if (k == "max_sources") {
      if (!number(v, 1, 1u << 24, n)) return fail("\"max_sources\" is not a number from 1 to 16777216");
      c.max_sources = n;
    } else if (k == "rate") {
      if (!number(v, 1, 1'000'000'000, n)) return fail("\"rate\" is not a number of packets from 1 to 1000000000");
      rate.packets = n;
      has_rate = has_rate_member = true;
    } else if (k == "per") {
      static const std::pair<const char*, uint64_t> kUnits[] = {{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}};
      const nlohmann::json& unit = v;  // (clang before 16 cannot capture a structured binding)
      const auto* u = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& x) { return unit == x.first; });
      if (u == std::end(kUnits)) return fail("\"per\" is not second, minute, hour or day");
      rate.per_seconds = u->second;
      has_per = has_rate_member = true;
    } else if (k == "burst") {
      if (!number(v, 1, 1'000'000, n)) return fail("\"burst\" is not a number of packets from 1 to 1000000");
      rate.burst = static_cast<uint32_t>(n);
      has_rate_member = true;
    } else if (k == "blocks") {
      using B = RateLimitConfig::Rate::Blocks;
      if (v != "over" && v != "under" && v != "none") return fail("\"blocks\" is not over, under or none");
      rate.blocks = v == "over" ? B::OVER : v == "under" ? B::UNDER : B::NONE;
      has_rate_member = true;
    } else if (k == "key") {
      if (!v.is_array()) return fail("\"key\" is not a list of source, destination, source_port, destination_port");
      for (const auto& e : v) {
        bool* part = e == "source" ? &rate.source : e == "destination" ? &rate.destination
                   : e == "source_port" ? &rate.source_port : e == "destination_port" ? &rate.destination_port : nullptr;
        if (!part) return fail("\"key\" is not a list of source, destination, source_port, destination_port");
        *part = true;
      }
      has_rate_member = true;
    } else if (k == "source_prefix" || k == "destination_prefix") {
      if (!number(v, 0, 128, n)) return fail("\"" + k + "\" is not a prefix length (0 to 128)");
      (k == "source_prefix" ? rate.source_prefix : rate.destination_prefix) = static_cast<int>(n);
      has_rate_member = true;
    } else if (k == "expire") {
      if (!number(v, 0, 86'400'000ull * 365, n)) return fail("\"expire\" is not a number of milliseconds (0 to a year)");
      rate.expire_ms = static_cast<int64_t>(n);
      has_rate_member = true;
    } else {
      return fail("unknown member \"" + k +
                  "\" (known: seconds, hitcount, prefix, rate, per, burst, blocks, key, source_prefix, destination_prefix, "
                  "expire, name, max_sources)");
    }
  }
  if (has_rate_member && has_recent_member)
    return fail("a rate (rate, per, burst, ...) and a hit count (seconds, hitcount, prefix) are two kinds of limit: give one");
  if (has_rate_member) {
    if (!has_rate || !has_per) return fail(std::string("\"") + (has_rate ? "per" : "rate") + "\" is missing");
    c.rate = rate;
    return c;
  }
  if (!has_hitcount) return fail("\"hitcount\" is missing");
  return c;
}

std::optional<NewConnection> new_tcp_connection(std::span<const uint8_t> p) {
  const auto h = transport_header(p);
  if (!h || !h->first_fragment || h->protocol != kTcp || p.size() < h->offset + 14) return std::nullopt;
  const uint8_t flags = p[h->offset + 13];
  if ((flags & (kSyn | kAck)) != kSyn) return std::nullopt;
  const auto ports = ports_of(p, *h);  // (there: the flags are past them)
  return NewConnection{h->family, h->source, h->destination, ports->first, ports->second};
}

bool RateLimiter::blocks(const RateLimitConfig& c, std::span<const uint8_t> packet, int64_t now_ms) {
  const auto conn = new_tcp_connection(packet);
  if (!conn) return false;  // not a new connection: not counted
  if (!c.rate) return over_limit(c, *conn, now_ms);
  using B = RateLimitConfig::Rate::Blocks;
  const bool over = over_rate(c, *conn, now_ms);
  return c.rate->blocks == (over ? B::OVER : B::UNDER);
}

size_t RateLimiter::KeyHash::operator()(const Key& k) const noexcept {
  size_t h = 1469598103934665603ull;  // FNV-1a
  for (uint8_t b : k) h = (h ^ b) * 1099511628211ull;
  return h;
}

namespace {

// Writes `address` masked to `prefix` bits (-1: all of them) at `out`.
void put_masked(uint8_t* out, int family, const std::array<uint8_t, 16>& address, int prefix) {
  const int bits = family == 4 ? 32 : 128;
  const int keep = prefix < 0 ? bits : std::min(prefix, bits);
  for (int i = 0; i < keep / 8; ++i) out[i] = address[i];
  if (keep % 8) out[keep / 8] = address[keep / 8] & static_cast<uint8_t>(0xFF << (8 - keep % 8));
}

}  // namespace

RateLimiter::Entry& RateLimiter::entry(const RateLimitConfig& c, const Key& key, bool* made) {
  Table& t = tables_[c.name];
  auto it = t.by_key.find(key);
  *made = it == t.by_key.end();
  if (*made) {
    while (t.lru.size() >= c.max_sources && !t.lru.empty()) {  // the least recently seen key goes
      t.by_key.erase(t.lru.front().key);
      t.lru.pop_front();
      ++t.dropped;
    }
    t.lru.push_back({key, {}, 0, 0});
    it = t.by_key.emplace(key, std::prev(t.lru.end())).first;
  } else {
    t.lru.splice(t.lru.end(), t.lru, it->second);  // most recently seen
  }
  return *it->second;
}

bool RateLimiter::over_limit(const RateLimitConfig& c, const NewConnection& src, int64_t now_ms) {
  Table& t = tables_[c.name];
  t.depth = std::max<size_t>(t.depth, c.hitcount);
  Key key{};
  key[0] = static_cast<uint8_t>(src.family);
  put_masked(&key[1], src.family, src.source, c.prefix);
  bool made = false;
  std::vector<int64_t>& stamps = entry(c, key, &made).stamps;
  auto record = [&] {
    stamps.push_back(now_ms);
    if (stamps.size() > t.depth) stamps.erase(stamps.begin(), stamps.end() - static_cast<long>(t.depth));
  };
  record();  // --set
  // --update: `hitcount` recordings within the window (xt_recent skips those older than now - seconds).
  const bool over = stamps.size() >= c.hitcount &&
                    (c.seconds == 0 || stamps[stamps.size() - c.hitcount] >= now_ms - int64_t(c.seconds) * 1000);
  if (over) record();
  return over;
}

bool RateLimiter::over_rate(const RateLimitConfig& c, const NewConnection& conn, int64_t now_ms) {
  const RateLimitConfig::Rate& r = *c.rate;
  // The key: the parts the rate keys on (none: one bucket for the table), the family with an address.
  Key key{};
  if (r.source || r.destination) key[0] = static_cast<uint8_t>(conn.family);
  if (r.source) put_masked(&key[1], conn.family, conn.source, r.source_prefix);
  if (r.destination) put_masked(&key[17], conn.family, conn.destination, r.destination_prefix);
  if (r.source_port) key[33] = static_cast<uint8_t>(conn.source_port >> 8), key[34] = static_cast<uint8_t>(conn.source_port);
  if (r.destination_port)
    key[35] = static_cast<uint8_t>(conn.destination_port >> 8), key[36] = static_cast<uint8_t>(conn.destination_port);
  key[37] = 1;  // (apart from a connections-per-source key in a table of the same name)
  // In nanoseconds of refill: a packet costs per/packets, the bucket holds `burst` of them.
  const int64_t cost = static_cast<int64_t>(r.per_seconds * 1'000'000'000ull / r.packets);
  const int64_t capacity = cost > INT64_MAX / r.burst ? INT64_MAX : cost * r.burst;
  bool made = false;
  Entry& e = entry(c, key, &made);
  if (made || (r.expire_ms > 0 && now_ms - e.last_ms > r.expire_ms)) {
    e.tokens_ns = capacity;  // a new (or expired) key starts with a full bucket
  } else if (now_ms > e.last_ms) {
    const int64_t refill = (now_ms - e.last_ms) > (capacity - e.tokens_ns) / 1'000'000 ? capacity - e.tokens_ns
                                                                                        : (now_ms - e.last_ms) * 1'000'000;
    e.tokens_ns += refill;
  }
  e.last_ms = std::max(e.last_ms, now_ms);
  if (e.tokens_ns < cost) return true;
  e.tokens_ns -= cost;
  return false;
}

RateLimiter::TableStats RateLimiter::stats(const std::string& name) const {
  const auto it = tables_.find(name);
  return it == tables_.end() ? TableStats{} : TableStats{it->second.lru.size(), it->second.dropped};
}

}  // namespace lfp::inspect
