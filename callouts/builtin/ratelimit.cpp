#include "ratelimit.hpp"

#include "transport_match.hpp"

#include <algorithm>

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
  bool has_hitcount = false;
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
    } else if (k == "hitcount") {
      if (!number(v, 1, 255, n)) return fail("\"hitcount\" is not a number from 1 to 255");
      c.hitcount = static_cast<uint32_t>(n);
      has_hitcount = true;
    } else if (k == "prefix") {
      if (!number(v, 0, 128, n)) return fail("\"prefix\" is not a prefix length (0 to 128)");
      c.prefix = static_cast<int>(n);
    } else if (k == "name") {
      if (!v.is_string() || v.get<std::string>().empty()) return fail("\"name\" is not a table name");
      c.name = v.get<std::string>();
    } else if (k == "max_sources") {
      if (!number(v, 1, 1u << 24, n)) return fail("\"max_sources\" is not a number from 1 to 16777216");
      c.max_sources = n;
    } else {
      return fail("unknown member \"" + k + "\" (known: seconds, hitcount, prefix, name, max_sources)");
    }
  }
  if (!has_hitcount) return fail("\"hitcount\" is missing");
  return c;
}

std::optional<NewConnection> new_tcp_connection(std::span<const uint8_t> p) {
  const auto h = transport_header(p);
  if (!h || !h->first_fragment || h->protocol != kTcp || p.size() < h->offset + 14) return std::nullopt;
  const uint8_t flags = p[h->offset + 13];
  if ((flags & (kSyn | kAck)) != kSyn) return std::nullopt;
  return NewConnection{h->family, h->source};
}

size_t RateLimiter::KeyHash::operator()(const Key& k) const noexcept {
  size_t h = 1469598103934665603ull;  // FNV-1a
  for (uint8_t b : k) h = (h ^ b) * 1099511628211ull;
  return h;
}

bool RateLimiter::over_limit(const RateLimitConfig& c, const NewConnection& src, int64_t now_ms) {
  Table& t = tables_[c.name];
  t.depth = std::max<size_t>(t.depth, c.hitcount);
  Key key{};
  key[0] = static_cast<uint8_t>(src.family);
  const int bits = src.family == 4 ? 32 : 128;
  const int keep = c.prefix < 0 ? bits : std::min(c.prefix, bits);
  for (int i = 0; i < keep / 8; ++i) key[1 + i] = src.source[i];
  if (keep % 8) key[1 + keep / 8] = src.source[keep / 8] & static_cast<uint8_t>(0xFF << (8 - keep % 8));

  auto it = t.by_key.find(key);
  if (it == t.by_key.end()) {
    while (t.lru.size() >= c.max_sources && !t.lru.empty()) {  // the least recently seen source goes
      t.by_key.erase(t.lru.front().key);
      t.lru.pop_front();
      ++t.dropped;
    }
    t.lru.push_back({key, {}});
    it = t.by_key.emplace(key, std::prev(t.lru.end())).first;
  } else {
    t.lru.splice(t.lru.end(), t.lru, it->second);  // most recently seen
  }
  std::vector<int64_t>& stamps = it->second->stamps;
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

RateLimiter::TableStats RateLimiter::stats(const std::string& name) const {
  const auto it = tables_.find(name);
  return it == tables_.end() ? TableStats{} : TableStats{it->second.lru.size(), it->second.dropped};
}

}  // namespace lfp::inspect
