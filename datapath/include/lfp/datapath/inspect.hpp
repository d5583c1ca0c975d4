// SPDX-License-Identifier: MIT
#pragma once
// The data layers in user space: STREAM_V4/V6 (a TCP flow's bytes per direction, in order) and
// DATAGRAM_DATA_V4/V6 with their payload, for callouts (docs/callouts.md, "Stream and datagram
// data"). NFQUEUE rules in lfpd's network namespace (table inet lfp, chains data-in and data-out at
// input and output priority filter) queue the TCP and UDP packets of local flows, only while the
// policy has filters at those layers. lfpd reassembles each direction of a TCP flow from the queued segments (in order,
// whatever order they came in), and classifies the bytes no earlier classify decided:
//   - NEED_MORE_DATA: the segments wait (unanswered in the queue) until that many more bytes came;
//   - ALLOW_CONNECTION, or a decision no callout took part in: the flow's conntrack entry gets a mark
//     and its later packets are not queued (permit the rest of the flow);
//   - BLOCK (or DROP_CONNECTION): the waiting segments are dropped and the local socket aborted
//     (sock_diag SOCK_DESTROY), which resets the peer too: both ends are reset, mid-stream.
// Callouts may attach flow contexts; when the flow ends (FIN both ways, RST, idle) they get
// flow_delete. Datagrams are classified one by one with their payload; a callout may give a new
// payload (the datagram goes on with it, lengths and checksums fixed) and packets to inject (raw
// sockets: to the host's own address they are received, else sent).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/engine/engine.hpp"

namespace lfp::datapath {

class NfQueue;
namespace nf {
class NetfilterTable;
}

struct InspectStats {
  uint64_t packets = 0, datagrams = 0, classifies = 0, bytes_inspected = 0;
  uint64_t flows = 0, flows_allowed = 0, flows_blocked = 0, out_of_order = 0, flows_live = 0;
  uint64_t modified = 0, injected = 0;  // datagrams a callout rewrote; packets callouts injected
};

class DataInspector {
 public:
  static constexpr uint32_t kFlowDoneMark = 0x40000000;  // conntrack mark bit: the rest of the flow passes
  static constexpr size_t kBufferLimit = 256 * 1024;     // bytes held per direction before BUFFER_LIMIT_REACHED
  static constexpr size_t kMaxOutOfOrder = 256;          // segments held per direction after a hole

  // Binds NFQUEUE `queue`. Rules come with update(). Throws std::runtime_error.
  DataInspector(const FilterEngine& engine, uint16_t queue, bool fail_open);
  ~DataInspector();  // the rules go; queued packets pass (the queue is unbound)
  DataInspector(const DataInspector&) = delete;
  DataInspector& operator=(const DataInspector&) = delete;

  int fd() const;
  // Answers what is queued. Returns at once when nothing is left.
  void drain();
  // After a policy change: queue TCP while STREAM has filters, UDP while DATAGRAM_DATA has.
  void update();
  // Every so often: ends flows idle for longer than `idle_ns` (flow_delete to their callouts), and
  // has callouts decide on bytes that waited longer than `hold_ns` for more (BUFFER_LIMIT_REACHED).
  void sweep(int64_t idle_ns, int64_t hold_ns);
  // A blocked stream or datagram, as a net event (the format of datapath::describe).
  std::function<void(nlohmann::json)> on_event;
  const InspectStats& stats() const { return stats_; }
  bool queues_datagrams() const { return udp_; }
  nlohmann::json flows_json() const;  // the live flows, with bytes per direction

 private:
  struct Held {
    uint32_t id;
    uint32_t end;  // sequence number after its bytes
  };
  struct Direction {
    bool seq_known = false;
    uint32_t next = 0;         // next byte expected, in order
    uint64_t decided = 0;      // bytes before `pending` that were decided
    std::string pending;       // in-order bytes not decided yet
    size_t need = 1;           // classify when pending holds this many bytes
    std::vector<Held> held;    // packets whose bytes are in `pending`, unanswered
    int64_t held_since = 0;    // (CLOCK_MONOTONIC ns) when the oldest of them came
    std::map<uint32_t, std::pair<uint32_t, std::string>> ooo;  // seq -> (packet id, payload): after a hole
    bool fin = false;
    uint64_t bytes = 0;
  };
  // Both ends of a flow, the lower first: the same key for both directions.
  struct FlowKey {
    Ip6 a{}, b{};
    uint16_t pa = 0, pb = 0;
    bool v6 = false;
    friend bool operator==(const FlowKey&, const FlowKey&) = default;
  };
  struct FlowKeyHash {
    size_t operator()(const FlowKey& k) const;
  };
  struct Flow {
    uint64_t handle = 0;
    bool v6 = false;
    Ip6 local{}, remote{};  // the local end: the one on this host's side of the first packet
    uint16_t local_port = 0, remote_port = 0;
    bool outbound = true;   // locally initiated (DIRECTION at STREAM is the connection's)
    bool loopback = false;
    bool done = false, blocked = false;
    Direction dir[2];       // 0: sent by the local end, 1: received
    std::unordered_map<Guid, uint64_t> contexts;
    int64_t last_ns = 0;
  };
  struct Packet;

  void on_packet(const Packet& p);
  void on_tcp(const Packet& p);
  void on_udp(const Packet& p);
  void stream_classify(Flow& f, int d, bool limit);
  void allow_flow(Flow& f);
  void block_flow(Flow& f, const ClassifyResult* r);
  void end_flow(const FlowKey& key);
  void verdict(uint32_t id, bool accept, bool mark_done = false, const std::string* packet = nullptr);
  void rules(bool tcp, bool udp);
  nlohmann::json event(const Flow& f, LayerId layer, const ClassifyResult& r, int d) const;
  // The layer's values for a flow (d: a datagram's direction, 0 out, 1 in; -1: the connection's).
  FieldValues values(const Flow& f, LayerId layer, int d) const;

  const FilterEngine& engine_;
  uint16_t queue_;
  bool fail_open_;
  std::unique_ptr<NfQueue> q_;
  std::shared_ptr<nf::NetfilterTable> table_;
  bool tcp_ = false, udp_ = false;
  uint64_t next_handle_ = 1;
  std::unordered_map<FlowKey, std::unique_ptr<Flow>, FlowKeyHash> flows_;
  InspectStats stats_;
};

}  // namespace lfp::datapath
