// SPDX-License-Identifier: MIT
#pragma once
// The built-in log callout's logic (lfp_inspect_callouts, keys kLogCallout* at INBOUND_TRANSPORT,
// OUTBOUND_TRANSPORT and IPFORWARD, v4 and v6): an imported LOG rule (iptables' `-j LOG`, nftables'
// `log`). It decides nothing (CONTINUE: arbitration goes on as if its filter had not matched) and asks
// lfpd for a net event (CLASSIFY_LOG, with the rule's prefix as `log_prefix`) for the packets that reach
// it, at most at the rule's rate (`-m limit`): the events over the rate are counted, and the next
// event written says how many were not (`log_suppressed`). Pure: no I/O, no clock (the caller passes
// the time), no locking (the plugin holds a mutex).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "ratelimit.hpp"

namespace lfp::inspect {

inline constexpr const char* kLogCalloutInboundV4 = "4c460000-0000-4000-8000-00000000010d";
inline constexpr const char* kLogCalloutInboundV6 = "4c460000-0000-4000-8000-00000000010e";
inline constexpr const char* kLogCalloutOutboundV4 = "4c460000-0000-4000-8000-00000000010f";
inline constexpr const char* kLogCalloutOutboundV6 = "4c460000-0000-4000-8000-000000000110";
inline constexpr const char* kLogCalloutForwardV4 = "4c460000-0000-4000-8000-000000000111";
inline constexpr const char* kLogCalloutForwardV6 = "4c460000-0000-4000-8000-000000000112";

// The provider context's data, JSON (every member optional):
//   {"prefix": "[UFW BLOCK] ", "level": "warn", "first_packets": true,
//    "limit": {"rate": 3, "per": "minute", "burst": 10}}
// "level" is the rule's syslog level, kept as the rule had it; "first_packets": a TCP packet is logged
// only when it opens a connection (a SYN without ACK), as a rule the ALE layers decide sees a
// connection's first packet only; "limit" is a packet rate as the rate-limit callout takes it
// (ratelimit.hpp: rate, per, burst, key, ...), one bucket for the filter unless it names a key.
struct LogConfig {
  std::string prefix, level;
  bool first_packets = false;
  std::optional<RateLimitConfig> limit;  // (a packet rate: limit->rate is set)
};
// The configuration, or why not ("\"prefix\" is not a string", ...).
std::optional<LogConfig> parse_log_config(const std::string& text, std::string* error);

class PacketLog {
 public:
  struct Entry {
    bool write = false;       // write an event for this packet
    uint64_t suppressed = 0;  // with it: the filter's events not written (over its rate) since its last one
  };
  // The callout's answer for one packet that reached filter `filter_key` at `now_ms` (a monotonic clock).
  Entry log(const std::string& filter_key, const LogConfig& c, std::span<const uint8_t> packet, int64_t now_ms);

 private:
  RateLimiter rates_;  // a table per filter (named by its key)
  std::unordered_map<std::string, uint64_t> suppressed_;  // per filter, since its last event written
};

}  // namespace lfp::inspect
