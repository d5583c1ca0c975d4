// SPDX-License-Identifier: MIT
#pragma once
// lfpd's callout plugins (--callout, docs/callouts.md): each in a host process of its own, its
// callouts registered with the engine before the store loads, so that the data path knows them at once.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lfp/callout/host.hpp"
#include "server.hpp"

namespace lfp::daemon {

struct CalloutOptions {
  std::vector<std::string> plugins;  // the .so files
  std::string host;                  // lfp-callout-host ("": beside lfpd, in ../callouts or ../lib/lfp)
  int timeout_ms = 200;              // how long a classify waits for a plugin
};

class CalloutPlugins {
 public:
  // Starts each plugin and registers its callouts. Throws std::runtime_error.
  CalloutPlugins(Server& server, CalloutOptions options);
  // Each decision a plugin completes (FwpsCompleteOperation0): its pend handle and whether it permits.
  std::function<void(uint64_t, bool)> on_complete;
  // A plugin that failed during a drain's classifies: its callouts go now (not inside a classify).
  void reap_failed();
  // The plugins' hosts (lfpd's metrics: whether each is up, its timeouts).
  const std::vector<std::unique_ptr<callouts::CalloutHost>>& hosts() const { return hosts_; }

 private:
  void forget(callouts::CalloutHost& host);  // a reaped host: unwatched, and the kernel takes its filters back

  Server& server_;
  std::vector<std::unique_ptr<callouts::CalloutHost>> hosts_;
};

}  // namespace lfp::daemon
