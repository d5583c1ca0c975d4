// SPDX-License-Identifier: MIT
#pragma once
// lfpd's data path, served beside the engine (docs/lfpd.md, docs/packet-layers.md): the kernel's
// layers (ALE hooks on a cgroup, the packet layers' programs) as the server's enforcer, and the
// user-space paths beside them (--queue, --inspect-queue, --packet-queue); which layers nothing
// enforces (the server's layer check); op redirect_record.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lfp/datapath/kernel.hpp"
#include "metrics.hpp"
#include "server.hpp"

namespace lfp::datapath {
class DataInspector;
class PacketQueue;
class PendingDecisions;
class UserPath;
}  // namespace lfp::datapath

namespace lfp::daemon {

class CalloutPlugins;
class NetEventService;

// What lfpd's options say of the data path.
struct DataPathOptions {
  datapath::KernelOptions kernel;  // (kernel.cgroup: empty for no ALE hooks)
  std::string fail = "open";       // new flows needing user space while it cannot decide: open | closed
  int queue = -1;                  // --queue: NFQUEUE for the ALE decisions the kernel cannot make (-1: none)
  int pend_timeout_ms = 30000;
  std::string pend_default = "block";
  int inspect_queue = -1;          // --inspect-queue: the data layers in user space
  int stream_hold_ms = 2000;
  int packet_queue = -1, packet_queues = 1;  // --packet-queue: the packet layers' user-space path
  bool packet_userspace = false;
};

class DataPathService {
 public:
  // Loads what the options ask for and hooks it into the server (its enforcer, layer check, watched
  // descriptors, policy observers). Throws std::runtime_error for options that do not go together.
  DataPathService(Server& server, NetEventService& events, CalloutPlugins& plugins, DataPathOptions options);
  ~DataPathService();
  DataPathService(const DataPathService&) = delete;
  DataPathService& operator=(const DataPathService&) = delete;

  // The kernel's layers; null with neither a cgroup nor the packet layers (--cgroup none --no-packet-layers).
  datapath::KernelPath* kernel();
  // The connects pended for a callout or a person (with --queue), else null.
  datapath::PendingDecisions* pending() { return pending_.get(); }
  // Reads the kernel's events into the net event log (and the dropped packets to their sink).
  void drain();
  // lfp status: the kernel's policy image (null without a kernel path) and the user-space queues.
  nlohmann::json kernel_status() const;
  nlohmann::json queues_status() const;
  // For lfpd's metrics (the loop's thread): the kernel's installs, and how long the engine took to
  // decide each flow the ALE user-space path (--queue) was handed.
  struct Counts {
    uint64_t installs_in_place = 0, installs_whole = 0, install_failures = 0;
    Histogram user_decision_seconds;
  };
  const Counts& counts() const { return counts_; }

 private:
  struct Kernel;
  void start_kernel();
  void start_user_path();
  void start_inspector();
  void start_packet_queue();
  void start_ticks();
  void record(const nlohmann::json& event, std::string_view source);  // a net event: logged, and into the log
  std::optional<std::string> why_unenforced(LayerId layer) const;  // the server's layer check
  nlohmann::json inspect_stats() const;
  nlohmann::json packet_queue_stats() const;

  Server& server_;
  NetEventService& events_;
  CalloutPlugins& plugins_;
  const DataPathOptions opts_;
  std::unique_ptr<Kernel> kernel_;
  std::unique_ptr<datapath::UserPath> userpath_;
  std::unique_ptr<datapath::PendingDecisions> pending_;
  std::unique_ptr<datapath::DataInspector> inspector_;
  std::unique_ptr<datapath::PacketQueue> packet_path_;
  std::function<void()> packet_overflow_;  // (the packet queues' callbacks share it)
  int tick_fd_ = -1;
  Counts counts_;
};

}  // namespace lfp::daemon
