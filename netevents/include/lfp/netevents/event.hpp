// SPDX-License-Identifier: MIT
#pragma once
// Net events as WFP names them (FWPM_NET_EVENT_TYPE): WFP's header (time, IP version, protocol, local
// and remote address and port, app, user) and the drop or allow details (layer, filter id and key,
// filter name, sublayer, provider, hard, veto, direction, loopback; a log filter's log_prefix). An
// event travels as one JSON object (docs/netevents.md); a Record holds it with the values the log
// indexes and templates match.
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lfp::netevents {

enum class EventType : uint8_t {
  CLASSIFY_DROP,
  CLASSIFY_ALLOW,       // only while allow collection is on
  CLASSIFY_DROP_MAC,
  CAPABILITY_DROP,
  CAPABILITY_ALLOW,
  IKEEXT_MM_FAILURE,    // IPsec types: reserved for a later source
  IKEEXT_QM_FAILURE,
  IKEEXT_EM_FAILURE,
  IPSEC_KERNEL_DROP,
  IPSEC_DOSP_DROP,
  CLASSIFY_LOG,         // LFP's own: a log filter (an imported LOG rule) matched; it decided nothing
};
inline constexpr int kEventTypeCount = 11;
std::string_view to_string(EventType t);
std::optional<EventType> event_type_from_string(std::string_view s);
// Drops (what a diagnosis looks for): everything but the *_ALLOW types and CLASSIFY_LOG.
bool is_drop(EventType t);

// An address as the log keeps it: 16 bytes, IPv4 as ::ffff:a.b.c.d, so that v4 and v6 compare alike
// and a prefix is a range of keys.
using AddrKey = std::array<uint8_t, 16>;
std::optional<AddrKey> parse_address(std::string_view s);
struct AddrRange {
  AddrKey lo, hi;
};
// "ADDR" or "ADDR/PREFIX" (prefix length of the address's own family).
std::optional<AddrRange> parse_address_range(std::string_view s);

class EventError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Record {
  nlohmann::json body;  // the event, normalized (what enumeration returns)
  uint64_t seq = 0;     // assigned by the log, in arrival order
  int64_t time_ns = 0;  // UTC, ns since the epoch
  EventType type = EventType::CLASSIFY_DROP;
  int ip_protocol = -1;  // -1: not known (so is every other -1 / empty / nullopt below)
  std::optional<AddrKey> local_addr, remote_addr;
  int local_port = -1, remote_port = -1;
  std::string app_id;
  std::string app_file;  // the executable's identity "DEV:INO" (kernel dev_t), as the kernel matches apps
  int64_t uid = -1;
  std::string layer, filter_key, provider;
};

// Checks and normalizes one event in the ingestion format; an event without "time" happened at
// `now_ns`. Throws EventError naming the member ("/remote_port: must be 0..65535").
Record parse_event(const nlohmann::json& j, int64_t now_ns);

// "DEV:INO" of the executable at `path` (the kernel's dev_t: MAJOR << 20 | MINOR), or "" if there is
// none. The kernel knows a process's executable by this identity even when its path is gone.
std::string app_file_of(const std::string& path);

// Times: ISO 8601 ("2026-11-23T10:00:00.123456Z"; an offset such as +01:00 instead of Z) <-> UTC ns.
std::optional<int64_t> parse_time(std::string_view s);
std::string format_time(int64_t ns);
int64_t now_ns();

}  // namespace lfp::netevents
