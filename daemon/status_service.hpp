// SPDX-License-Identifier: MIT
#pragma once
// lfp status's op (docs/lfpd.md, Status): what this lfpd governs and how it is doing: its
// configuration, the filters per layer and those not enforced, the kernel's policy image, the
// user-space queues, the degraded parts and the net event log's coverage.
#include <string>

#include "callout_plugins.hpp"
#include "datapath_service.hpp"
#include "metrics.hpp"
#include "netevents_service.hpp"
#include "server.hpp"

namespace lfp::daemon {

class StatusService {
 public:
  // `config_path`: the configuration file read ("" for none).
  StatusService(Server& server, const DataPathService& datapath, NetEventService& events, const CalloutPlugins& plugins,
                const DataPathOptions& options, std::string config_path);
  // The same state as Prometheus metrics (lfpd --metrics-listen, docs/metrics.md), from the same sources.
  void metrics(MetricsText& page) const;

 private:
  nlohmann::json op_status() const;
  nlohmann::json plugins_json() const;

  const Server& server_;
  const DataPathService& datapath_;
  NetEventService& events_;
  const CalloutPlugins& plugins_;
  const DataPathOptions& options_;
  const std::string config_path_;
  const std::string netns_;  // this lfpd's network namespace, "net:[INODE]"
};

}  // namespace lfp::daemon
