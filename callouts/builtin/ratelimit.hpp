#pragma once
// The built-in rate-limit callout's state (lfp_inspect_callouts, keys ...0109 / ...010a at
// INBOUND_TRANSPORT_V4 / _V6): new TCP connections counted per source, as xt_recent counts them for
// ufw's `limit` (`-m recent --set`, then `-m recent --update --seconds S --hitcount N -j REJECT`).
// Pure: no I/O, no clock (the caller passes the time), no locking (the plugin holds a mutex).
#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace lfp::inspect {

// The provider context's data, JSON: {"seconds": 30, "hitcount": 6, "prefix": 32, "name": "DEFAULT",
// "max_sources": 65536}. Only hitcount is required.
struct RateLimitConfig {
  uint32_t seconds = 0;          // the window; 0: no window (every recorded connection counts), as xt_recent
  uint32_t hitcount = 1;         // BLOCK when a source has this many recorded connections in the window (1..255)
  int prefix = -1;               // the source address masked to this many bits is the key (-1: the whole address)
  std::string name = "DEFAULT";  // the table: filters naming the same one count together (xt_recent --name)
  size_t max_sources = 65536;    // the table's cap; beyond it the least recently seen source is dropped
};
// The configuration, or why not ("seconds is not a number of seconds", ...).
std::optional<RateLimitConfig> parse_rate_limit_config(const std::string& text, std::string* error);

// What the callout needs of a packet (IPv4 or IPv6, from the IP header): whether it opens a TCP
// connection (SYN without ACK, in the datagram's first fragment) and its source address.
struct NewConnection {
  int family = 0;                   // 4 or 6
  std::array<uint8_t, 16> source{};  // v4 in the first 4 bytes
};
// The packet's source if the packet is a TCP SYN without ACK; nothing for any other packet.
std::optional<NewConnection> new_tcp_connection(std::span<const uint8_t> packet);

class RateLimiter {
 public:
  // Records a new connection from `source` at `now_ms` (a monotonic clock) in the config's table
  // (xt_recent --set) and answers whether the source is over the limit (--update: `hitcount`
  // recorded connections within `seconds`, this one included). Over the limit, the connection is
  // recorded once more, as --update does when it matches.
  bool over_limit(const RateLimitConfig& c, const NewConnection& source, int64_t now_ms);

  struct TableStats {
    size_t sources = 0;
    uint64_t dropped = 0;  // sources dropped from the table to keep it within max_sources
  };
  TableStats stats(const std::string& name) const;

 private:
  using Key = std::array<uint8_t, 17>;  // family, then the masked address
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Source {
    Key key;
    std::vector<int64_t> stamps;  // the newest `depth` recordings, oldest first
  };
  struct Table {
    std::list<Source> lru;  // least recently recorded first
    std::unordered_map<Key, std::list<Source>::iterator, KeyHash> by_key;
    size_t depth = 1;  // the largest hitcount asked of this table: older stamps cannot decide
    uint64_t dropped = 0;
  };
  std::map<std::string, Table> tables_;
};

}  // namespace lfp::inspect
