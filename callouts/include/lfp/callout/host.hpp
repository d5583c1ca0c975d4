// SPDX-License-Identifier: MIT
#pragma once
// lfpd's side of a callout plugin: the plugin runs in a host process of its own (lfp-callout-host,
// callouts/src/host_main.cpp), and lfpd registers a driver per callout that asks the host over a
// socketpair, one JSON line each way. A classify waits at most `timeout_ms`; a host that crashes or
// does not answer in time is killed, and until lfpd reaps it (unregistering its callouts, so that the
// kernel takes those filters back) its filters act as unregistered: BLOCK, or PERMIT with
// PERMIT_IF_CALLOUT_UNREGISTERED.
#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

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
  // When fd() is readable: takes what the host wrote unasked (completions). If the host died or was
  // killed, unregisters its callouts; true if it did (the policy the engine decides with changed).
  bool reap(FilterEngine& engine);
  // Requests asked of the plugin (classifies, and notifies of its filters), those it did not answer in time, and the times its host died
  // (crashed, exited, stopped reading) rather than being stopped.
  uint64_t calls() const { return calls_; }
  uint64_t timeouts() const { return timeouts_; }
  uint64_t crashes() const { return crashes_; }
  // Pended decisions the plugin completed since the last call: (pend handle, permit).
  std::vector<std::pair<uint64_t, bool>> take_completions();
  void expect_completion(uint64_t pend_handle) { pending_.insert(pend_handle); }

  // One request and its answer (the drivers' side); `data` follows the line. A null request only
  // reads (the registration). False when the host could not answer; then *why says so.
  // `bytes` (may be null) gets what followed the answer's line (modified or injected packets).
  bool classify(const nlohmann::json& req, std::string_view data, std::string* reply, std::string* why,
                std::string* bytes = nullptr);
  void send_only(const nlohmann::json& req);  // a request without an answer (flow_delete)

 private:
  bool send(nlohmann::json req, std::string_view data, std::string* why);
  bool take_line(std::string* line, std::string* bytes);  // the next answer in buf_; completions are set aside
  bool read_unasked();                // false: the host is gone
  void kill_host(const char* why);
  std::string plugin_, name_;
  std::vector<std::pair<Guid, LayerId>> callouts_;
  int timeout_ms_;
  pid_t pid_ = -1;
  int fd_ = -1;
  bool dead_ = false, registered_ = false;
  uint64_t next_id_ = 1, calls_ = 0, timeouts_ = 0, crashes_ = 0;
  std::string buf_;
  std::set<uint64_t> pending_;  // pend handles the plugin may complete
  std::vector<std::pair<uint64_t, bool>> completions_;
};

}  // namespace lfp::callouts
