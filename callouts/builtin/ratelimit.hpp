// SPDX-License-Identifier: MIT
#pragma once
// The built-in rate-limit callout's state (lfp_inspect_callouts, keys kRateLimitCalloutV4 / _V6 at
// INBOUND_TRANSPORT_V4 / _V6). Two kinds of limit, both on new TCP connections (a SYN without ACK):
// - connections per source in a window, as xt_recent counts them for ufw's `limit` (`-m recent
//   --set`, then `-m recent --update --seconds S --hitcount N -j REJECT`);
// - a packet rate, as a token bucket: one for the table (iptables' `-m limit`, nft's `limit rate`) or
//   one per key (`-m hashlimit` and its modes), blocking the packets over the rate, or those within
//   it, or none (a filter that only counts: the packets an ACCEPT with a rate lets through either way).
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

inline constexpr const char* kRateLimitCalloutV4 = "4c460000-0000-4000-8000-000000000109";
inline constexpr const char* kRateLimitCalloutV6 = "4c460000-0000-4000-8000-00000000010a";

// The provider context's data, JSON. Connections per source:
//   {"seconds": 30, "hitcount": 6, "prefix": 32, "name": "DEFAULT", "max_sources": 65536} (hitcount required)
// A packet rate (rate and per required; a rate and a hitcount are two kinds of limit, not one):
//   {"rate": 5, "per": "second", "burst": 5, "blocks": "over", "key": ["source", "destination_port"],
//    "source_prefix": 24, "destination_prefix": 64, "expire": 10000, "name": "line 12", "max_sources": 65536}
struct RateLimitConfig {
  uint32_t seconds = 0;          // the window; 0: no window (every recorded connection counts), as xt_recent
  uint32_t hitcount = 1;         // BLOCK when a source has this many recorded connections in the window (1..255)
  int prefix = -1;               // the source address masked to this many bits is the key (-1: the whole address)
  std::string name = "DEFAULT";  // the table: filters naming the same one count together (xt_recent --name)
  size_t max_sources = 65536;    // the table's cap; beyond it the least recently seen key is dropped

  struct Rate {
    uint64_t packets = 0;      // this many packets ...
    uint64_t per_seconds = 1;  // ... per this many seconds ("per": second, minute, hour, day)
    uint32_t burst = 5;        // the bucket holds this many packets, and starts full (xt_limit, nft)
    enum class Blocks { OVER, UNDER, NONE };
    Blocks blocks = Blocks::OVER;  // BLOCK the packets over the rate ("over"), those within it ("under"), or none ("none": counted only)
    bool source = false, destination = false, source_port = false, destination_port = false;  // the key
    int source_prefix = -1, destination_prefix = -1;  // the addresses masked to this many bits in the key
    int64_t expire_ms = 0;     // a key unseen this long starts again with a full bucket (0: never)
  };
  std::optional<Rate> rate;  // a packet rate; otherwise connections per source (xt_recent)
};
// The configuration, or why not ("seconds is not a number of seconds", ...).
std::optional<RateLimitConfig> parse_rate_limit_config(const std::string& text, std::string* error);

// What the callout needs of a packet (IPv4 or IPv6, from the IP header): whether it opens a TCP
// connection (SYN without ACK, in the datagram's first fragment), and its addresses and ports.
struct NewConnection {
  int family = 0;                         // 4 or 6
  std::array<uint8_t, 16> source{};       // v4 in the first 4 bytes
  std::array<uint8_t, 16> destination{};
  uint16_t source_port = 0, destination_port = 0;
};
// The packet's connection if the packet is a TCP SYN without ACK; nothing for any other packet.
std::optional<NewConnection> new_tcp_connection(std::span<const uint8_t> packet);

class RateLimiter {
 public:
  // The callout's answer to one packet at `now_ms` (a monotonic clock): true to BLOCK it. A packet
  // that opens no TCP connection is neither counted nor blocked.
  bool blocks(const RateLimitConfig& c, std::span<const uint8_t> packet, int64_t now_ms);

  // Connections per source: records a new connection from `source` at `now_ms` in the config's table
  // (xt_recent --set) and answers whether the source is over the limit (--update: `hitcount`
  // recorded connections within `seconds`, this one included). Over the limit, the connection is
  // recorded once more, as --update does when it matches.
  bool over_limit(const RateLimitConfig& c, const NewConnection& source, int64_t now_ms);
  // A packet rate (c.rate): takes a token from the connection's bucket and answers whether there was
  // none, i.e. the packet is over the rate (xt_limit, xt_hashlimit and nft's limit alike: a bucket of
  // `burst` packets, full at first, refilled at the rate, one token a packet that finds one).
  bool over_rate(const RateLimitConfig& c, const NewConnection& connection, int64_t now_ms);

  struct TableStats {
    size_t sources = 0;
    uint64_t dropped = 0;  // keys dropped from the table to keep it within max_sources
  };
  TableStats stats(const std::string& name) const;

 private:
  using Key = std::array<uint8_t, 38>;  // family, then what the table keys on
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Entry {
    Key key;
    std::vector<int64_t> stamps;  // connections per source: the newest `depth` recordings, oldest first
    int64_t tokens_ns = 0;        // a packet rate: the bucket, in nanoseconds of refill (one packet: a cost)
    int64_t last_ms = 0;          // when the bucket was last refilled
  };
  struct Table {
    std::list<Entry> lru;  // least recently seen first
    std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> by_key;
    size_t depth = 1;  // the largest hitcount asked of this table: older stamps cannot decide
    uint64_t dropped = 0;
  };
  // The entry for `key` in the config's table, made (and the least recently seen dropped) if need be;
  // `made` says whether it was.
  Entry& entry(const RateLimitConfig& c, const Key& key, bool* made);
  std::map<std::string, Table> tables_;
};

}  // namespace lfp::inspect
