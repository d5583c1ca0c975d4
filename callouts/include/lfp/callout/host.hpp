#pragma once
// lfpd's side of a callout plugin: the plugin runs in a host process of its own (lfp-callout-host,
// callouts/src/host_main.cpp), and lfpd registers a driver per callout that asks the host over a
// socketpair, one JSON line each way. A classify waits at most `timeout_ms`; a host that crashes or
// does not answer in time is killed, and until lfpd reaps it (unregistering its callouts, so that the
// kernel takes those filters back) its filters act as unregistered: BLOCK, or PERMIT with
// PERMIT_IF_CALLOUT_UNREGISTERED.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lfp/engine/engine.hpp"

namespace lfp::callouts {

class CalloutHost {
 public:
  // Starts `host_exe PLUGIN` and reads its registration. Throws std::runtime_error (the plugin is
  // missing, of another API version, or does not register in time).
  CalloutHost(std::string plugin, std::string host_exe, int timeout_ms);
  ~CalloutHost();
  CalloutHost(const CalloutHost&) = delete;
  CalloutHost& operator=(const CalloutHost&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<std::pair<Guid, LayerId>>& callouts() const { return callouts_; }
  // Registers a driver per callout with `engine` (FwpsCalloutRegister).
  void register_with(FilterEngine& engine);
  bool alive() const { return pid_ > 0 && !dead_; }
  int fd() const { return fd_; }  // readable when the host wrote something unasked, or died
  // After the host died or was killed: unregisters its callouts. True if it did (the policy the
  // engine decides with changed).
  bool reap(FilterEngine& engine);
  uint64_t timeouts() const { return timeouts_; }

  // One classify (the drivers' side). False when the host could not answer; then *why says so.
  bool classify(const std::string& request_json, std::string* reply, std::string* why);

 private:
  void kill_host(const char* why);
  std::string plugin_, name_;
  std::vector<std::pair<Guid, LayerId>> callouts_;
  int timeout_ms_;
  pid_t pid_ = -1;
  int fd_ = -1;
  bool dead_ = false, registered_ = false;
  uint64_t next_id_ = 1, timeouts_ = 0;
  std::string buf_;
};

}  // namespace lfp::callouts
