// SPDX-License-Identifier: MIT
#pragma once
// lfp capture's op (docs/netevents.md): capture_packets turns the keeping of the packets the packet
// layers drop on or off, and returns those kept (the newest kKept).
#include <cstddef>
#include <deque>

#include <nlohmann/json.hpp>

#include "datapath_service.hpp"
#include "server.hpp"

namespace lfp::daemon {

class CaptureService {
 public:
  static constexpr size_t kKept = 4096;
  // `datapath` has a kernel with the packet layers.
  CaptureService(Server& server, DataPathService& datapath);
  ~CaptureService();
  CaptureService(const CaptureService&) = delete;
  CaptureService& operator=(const CaptureService&) = delete;

 private:
  nlohmann::json op_capture(const nlohmann::json& req);

  DataPathService& datapath_;
  datapath::KernelPath& kernel_;
  std::deque<nlohmann::json> dropped_;  // the packets dropped while a capture runs (the newest)
};

}  // namespace lfp::daemon
