// SPDX-License-Identifier: MIT
#pragma once
// Pending decisions on the ALE user-space path (WFP's FwpsPendOperation0 / FwpsCompleteOperation0):
// a callout asked at ALE_AUTH_CONNECT may pend; the flow's first packet then waits in the NFQUEUE
// (and so does the connect), copies of it (SYN retries) wait with it, until the callout completes
// the decision or the timeout applies the default. A completion classifies the flow again with
// IS_REAUTHORIZE, and the pending callout answers what it completed, so the rest of the policy still
// arbitrates.
//
// Built in: the prompt callouts (PROMPT_CALLOUT_V4/V6). A filter that names one makes every
// connection it matches wait for a person: `lfp prompt` lists them and answers (docs/callouts.md).
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/datapath/userpath.hpp"
#include "lfp/engine/engine.hpp"

namespace lfp::datapath {

extern const Guid PROMPT_CALLOUT_V4;  // 4c460000-0000-4000-8000-000000000024
extern const Guid PROMPT_CALLOUT_V6;  // 4c460000-0000-4000-8000-000000000026
void register_prompt_callouts(FilterEngine& engine);

class PendingDecisions {
 public:
  PendingDecisions(UserPath& path, const FilterEngine& engine, const KernelPath& kernel, int64_t timeout_ns,
                   bool default_permit);

  // A decision as a net event (logged when final).
  std::function<void(const nlohmann::json&)> on_event;

  // One queued packet: 1 permit, 0 block, -1 it waits (a callout pended its flow's decision).
  int decide(const QueuedFlow& f, uint32_t packet_id);
  // Completes a pended decision (the flow is classified again). False if there is no such one.
  bool complete(uint64_t handle, bool permit, const std::string& by);
  // Applies the default to decisions pending for longer than the timeout.
  void expire();

  // The pending decisions, oldest first; with `uid`, only that user's.
  nlohmann::json list(std::optional<uint32_t> uid = std::nullopt) const;
  std::optional<uint32_t> owner(uint64_t handle) const;  // the flow's user
  size_t size() const { return pending_.size(); }

 private:
  struct Pending {
    QueuedFlow flow;
    std::vector<uint32_t> packets;
    Guid pended_by;
    nlohmann::json event;  // the first classify's, for the listing
    int64_t since_ns = 0;
  };
  UserPath& path_;
  const FilterEngine& engine_;
  const KernelPath& kernel_;
  int64_t timeout_ns_;
  bool default_permit_;
  uint64_t next_handle_ = 1;
  std::map<uint64_t, Pending> pending_;
};

}  // namespace lfp::datapath
