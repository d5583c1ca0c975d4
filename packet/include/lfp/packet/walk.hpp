// SPDX-License-Identifier: MIT
#pragma once
// The layer walk of docs/packet-layers.md: which packet layers a parsed packet passes, in order, and
// the values each sees. It tracks flows (a flow's first packet passes ALE_AUTH_CONNECT or
// ALE_AUTH_RECV_ACCEPT) and reassembles IPv4 / IPv6 fragments (every layer but INBOUND_IPPACKET and
// the MAC layers sees a datagram once, at the fragment that completes it). Both tables are bounded.
//
// Driving it: begin(packet), then next() while it returns true; each time, classify layer() with
// values(). Calling next() again says the layer permitted the packet; on a BLOCK stop calling it
// (or call begin() for the next packet): the packet was dropped there, and what would have happened
// after (the flow remembered, the fragment kept for reassembly) does not happen.
#include <cstdint>
#include <optional>
#include <vector>

#include "lfp/engine/condition.hpp"
#include "lfp/packet/parse.hpp"

namespace lfp::packet {

// Seen from the host: by the packet's addresses (docs/packet-layers.md). LOOPBACK: both source and
// destination are the host's; the packet passes the outbound layers, then the inbound ones.
enum class Direction : uint8_t { NONE, INBOUND, OUTBOUND, FORWARDED, LOOPBACK };
std::string_view to_string(Direction d);

// What became of a fragment at the reassembly step (inbound: after INBOUND_IPPACKET; forwarded:
// after INBOUND_MAC_FRAME_ETHERNET; outbound and loopback: before any layer).
enum class FragmentState : uint8_t {
  NONE,       // not a fragment
  HELD,       // kept: the datagram is not complete yet, later layers wait for it
  COMPLETED,  // this fragment completed its datagram: the later layers see the datagram now
  DISCARDED,  // overlapping, inconsistent, or over the table's bounds: the datagram is dropped
};
std::string_view to_string(FragmentState s);

struct WalkOptions {
  std::optional<uint32_t> ifindex;   // INTERFACE_INDEX and friends; none: EMPTY
  bool first_source_is_local = false;  // no local address given: the first IP packet's source is one
  size_t max_flows = 65536;          // the flow table (oldest of a bucket evicted when full)
  size_t max_datagrams = 256;        // datagrams being reassembled (the oldest dropped when full)
  size_t max_fragments = 64;         // fragments per datagram (more: the datagram is dropped)
  uint64_t fragment_timeout_ns = 30'000'000'000;  // Linux's ipfrag_time; needs begin()'s time
};

// How a layer sees a packet: the values it gets also depend on the direction it is seen from, the
// hook's interfaces and flags the packet alone does not tell.
struct LayerView {
  bool outbound = false;   // local is the source
  bool fragment = false;   // FLAGS IS_FRAGMENT
  bool loopback = false;   // FLAGS IS_LOOPBACK
  std::optional<uint32_t> iface;      // the layer's interface (arrival, or the one it leaves by)
  std::optional<uint32_t> out_iface;  // IPFORWARD: the interface it leaves by
  std::optional<uint32_t> iface_type;  // INTERFACE_TYPE (IANA ifType)
  std::optional<Mac> iface_mac;        // INTERFACE_MAC_ADDRESS (the MAC frame layers)
};
// The values `layer` gets for packet `h` (its fields of the catalogue the packet supplies; the
// rest EMPTY). The walk below uses it, and so does lfpd's user-space packet path.
void layer_values(LayerId layer, const Packet& h, const LayerView& view, FieldValues& values);

class Walk {
 public:
  explicit Walk(WalkOptions options = {});

  // The host's addresses. 127.0.0.0/8 and ::1 are always the host's.
  void add_local(const IpAddr& a);
  bool is_local(const IpAddr& a) const;
  size_t local_count() const { return locals_.size(); }

  // Starts a packet. `p` must stay alive and unchanged until the walk of it is over. time_ns: the
  // capture time (0: unknown; fragments then never time out).
  void begin(const Packet& p, uint64_t time_ns = 0);
  // Advances to the next layer the packet passes (the previous one permitted it). false: no more.
  bool next();
  LayerId layer() const { return layer_; }
  const FieldValues& values() const { return values_; }

  Direction direction() const { return dir_; }
  FragmentState fragment_state() const { return frag_state_; }
  // The headers the current layer's values come from: the packet, or its datagram's first fragment.
  const Packet& headers() const { return *hdr_; }
  bool first_packet() const { return first_; }  // the current layer is an ALE layer for a new flow

  size_t flow_count() const;
  size_t datagram_count() const;

  // Starting stages (public for the table in walk.cpp).
  enum class Stage : uint8_t;

 private:
  struct FlowKey {
    IpAddr local, remote;
    uint16_t local_port = 0, remote_port = 0;
    uint8_t protocol = 0;
    friend bool operator==(const FlowKey&, const FlowKey&) = default;
  };
  struct Flow {
    bool used = false;
    FlowKey key;
    uint32_t syn_seq = 0;
    uint64_t stamp = 0;
  };
  struct Fragment {
    uint32_t start, end;
  };
  struct Datagram {
    bool used = false;
    bool v6 = false;
    IpAddr src, dst;
    uint32_t id = 0;
    uint8_t protocol = 0;  // IPv4's key has it
    uint32_t total = 0;    // known once the last fragment came
    bool has_first = false;
    Packet first;          // the first fragment's headers
    std::vector<Fragment> frags;
    uint64_t time_ns = 0, stamp = 0;
  };

  bool local_dst(const IpAddr& a) const;
  Direction classify_direction(const Packet& p);
  void plan();
  void push(Stage s) { stages_[nstages_++] = s; }
  bool run_stage(Stage s);  // true: a layer to report
  void fill(LayerId layer, bool outbound_view, bool fragment_flag);
  FlowKey flow_key(bool outbound_view) const;
  bool is_new_flow(bool outbound_view);
  void remember_flow(bool outbound_view);
  FragmentState reassemble();
  void learn_mac(const Mac& m);
  bool known_mac(const Mac& m) const;

  WalkOptions opt_;
  std::vector<IpAddr> locals_;
  std::vector<Flow> flows_;  // set-associative: kWays entries a bucket
  size_t flow_buckets_ = 0;
  std::vector<Datagram> datagrams_;
  std::array<Mac, 16> macs_{};
  size_t nmacs_ = 0, next_mac_ = 0;
  uint64_t stamp_ = 0;

  const Packet* pkt_ = nullptr;
  const Packet* hdr_ = nullptr;
  Packet reassembled_;  // the completed datagram's first fragment, kept while its walk lasts
  uint64_t time_ns_ = 0;
  Direction dir_ = Direction::NONE;
  FragmentState frag_state_ = FragmentState::NONE;
  std::array<Stage, 24> stages_{};
  size_t nstages_ = 0, pos_ = 0;
  bool first_ = false;
  bool pending_flow_ = false;  // the ALE layer just reported: remember the flow when it permits
  bool pending_outbound_ = false;
  LayerId layer_ = LayerId::INBOUND_IPPACKET_V4;
  FieldValues values_;
};

}  // namespace lfp::packet
