// SPDX-License-Identifier: MIT
#include "log.hpp"

#include "transport_match.hpp"

#include <nlohmann/json.hpp>

namespace lfp::inspect {

std::optional<LogConfig> parse_log_config(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<LogConfig> {
    *error = why;
    return std::nullopt;
  };
  LogConfig c;
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return c;  // no configuration: no prefix, no rate
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("not a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (k == "prefix" || k == "level") {
      if (!v.is_string()) return fail("\"" + k + "\" is not a string");
      (k == "prefix" ? c.prefix : c.level) = v.get<std::string>();
    } else if (k == "first_packets") {
      if (!v.is_boolean()) return fail("\"first_packets\" is not true or false");
      c.first_packets = v.get<bool>();
    } else if (k == "limit") {
      std::string why;
      auto limit = v.is_object() ? parse_rate_limit_config(v.dump(), &why) : std::nullopt;
      if (!limit || !limit->rate) return fail("\"limit\" is not a packet rate (" + (why.empty() ? "rate and per are required" : why) + ")");
      if (limit->rate->blocks != RateLimitConfig::Rate::Blocks::OVER) return fail("\"limit\": a log writes within its rate (no \"blocks\")");
      c.limit = std::move(limit);
    } else {
      return fail("unknown member \"" + k + "\" (known: prefix, level, first_packets, limit)");
    }
  }
  return c;
}

PacketLog::Entry PacketLog::log(const std::string& filter_key, const LogConfig& c, std::span<const uint8_t> packet, int64_t now_ms) {
  const auto h = transport_header(packet);
  if (!h) return {};  // not IP: nothing to say
  constexpr uint8_t kTcp = 6;
  if (c.first_packets && h->protocol == kTcp && !new_tcp_connection(packet)) return {};  // within a connection
  if (c.limit) {
    NewConnection key{h->family, h->source, h->destination, 0, 0};
    if (const auto ports = ports_of(packet, *h)) key.source_port = ports->first, key.destination_port = ports->second;
    RateLimitConfig bucket = *c.limit;
    bucket.name = filter_key;  // the filter's own bucket(s)
    if (rates_.over_rate(bucket, key, now_ms)) {
      ++suppressed_[filter_key];
      return {};
    }
  }
  const auto it = suppressed_.find(filter_key);
  Entry e{true, it == suppressed_.end() ? 0 : it->second};
  if (it != suppressed_.end()) suppressed_.erase(it);
  return e;
}

}  // namespace lfp::inspect
