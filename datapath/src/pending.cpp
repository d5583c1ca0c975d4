// SPDX-License-Identifier: MIT
#include "lfp/datapath/pending.hpp"

#include <chrono>
#include <memory>

#include "lfp/engine/callout.hpp"
#include "lfp/packet/parse.hpp"

namespace lfp::datapath {

using nlohmann::json;

const Guid PROMPT_CALLOUT_V4 = *Guid::parse("4c460000-0000-4000-8000-000000000024");
const Guid PROMPT_CALLOUT_V6 = *Guid::parse("4c460000-0000-4000-8000-000000000026");

namespace {

int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Asks a person: pends every decision that can pend; elsewhere (lfp classify) it blocks, as an
// unanswered prompt does by default.
class PromptCallout : public CalloutDriver {
 public:
  explicit PromptCallout(Guid key) : key_(key) {}
  void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) override {
    if (answer_completion(key_, in.meta, out)) return;
    out.verdict = CalloutVerdict::BLOCK;
    if (in.meta && in.meta->pend_handle && !in.meta->pended) {
      in.meta->pended = true;
      in.meta->pended_by = key_;
    }
  }

 private:
  Guid key_;
};

}  // namespace

void register_prompt_callouts(FilterEngine& engine) {
  engine.register_callout(PROMPT_CALLOUT_V4, std::make_shared<PromptCallout>(PROMPT_CALLOUT_V4));
  engine.register_callout(PROMPT_CALLOUT_V6, std::make_shared<PromptCallout>(PROMPT_CALLOUT_V6));
}

PendingDecisions::PendingDecisions(UserPath& path, const FilterEngine& engine, const KernelPath& kernel,
                                   int64_t timeout_ns, bool default_permit)
    : path_(path), engine_(engine), kernel_(kernel), timeout_ns_(timeout_ns), default_permit_(default_permit) {}

int PendingDecisions::decide(const QueuedFlow& f, uint32_t packet_id) {
  // A copy of a packet whose flow waits (a SYN retry, another datagram): waits with it.
  for (auto& [h, p] : pending_)
    if (p.flow.cookie == f.cookie) {
      p.packets.push_back(packet_id);
      return -1;
    }
  ClassifyMeta meta;
  meta.pid = f.pid;
  meta.flow_handle = f.cookie;
  meta.pend_handle = next_handle_;
  bool permit = false;
  json ev = datapath::decide(engine_, kernel_.installed(), f, &permit, &meta);
  if (!meta.pended) {
    if (on_event) on_event(ev);
    return permit ? 1 : 0;
  }
  Pending& p = pending_[next_handle_++];
  p.flow = f;
  p.packets.push_back(packet_id);
  p.pended_by = meta.pended_by;
  p.event = std::move(ev);
  p.since_ns = mono_ns();
  return -1;
}

bool PendingDecisions::complete(uint64_t handle, bool permit, const std::string& by) {
  auto it = pending_.find(handle);
  if (it == pending_.end()) return false;
  Pending p = std::move(it->second);
  pending_.erase(it);
  // FwpsCompleteOperation0: the flow is authorized again, and the pending callout answers.
  ClassifyMeta meta;
  meta.pid = p.flow.pid;
  meta.flow_handle = p.flow.cookie;
  meta.completed_permit = permit;
  meta.completed_by = p.pended_by;
  bool final_permit = false;
  json ev = datapath::decide(engine_, kernel_.installed(), p.flow, &final_permit, &meta, /*reauthorize=*/true);
  ev["completed_by"] = by;
  for (uint32_t id : p.packets) path_.answer(id, p.flow, final_permit);
  if (on_event) on_event(ev);
  return true;
}

void PendingDecisions::expire() {
  const int64_t now = mono_ns();
  std::vector<uint64_t> old;
  for (const auto& [h, p] : pending_)
    if (now - p.since_ns > timeout_ns_) old.push_back(h);
  for (uint64_t h : old) complete(h, default_permit_, "timeout");
}

json PendingDecisions::list(std::optional<uint32_t> uid) const {
  json a = json::array();
  const int64_t now = mono_ns();
  for (const auto& [h, p] : pending_) {
    if (uid && p.flow.uid != *uid) continue;
    json e = {{"id", h},
              {"layer", p.event.value("layer", "")},
              {"ip_protocol", p.flow.protocol},
              {"local_address", packet::to_string(packet::IpAddr{p.flow.family == 6, p.flow.local_addr})},
              {"local_port", p.flow.local_port},
              {"remote_address", packet::to_string(packet::IpAddr{p.flow.family == 6, p.flow.remote_addr})},
              {"remote_port", p.flow.remote_port},
              {"pid", p.flow.pid},
              {"uid", p.flow.uid},
              {"gid", p.flow.gid},
              {"callout", p.pended_by.str()},
              {"waiting_ms", (now - p.since_ns) / 1000000},
              {"timeout_ms", timeout_ns_ / 1000000},
              {"packets", p.packets.size()}};
    for (const char* k : {"app_id", "filter_key", "filter_name", "sublayer", "provider"})
      if (p.event.contains(k)) e[k] = p.event[k];
    a.push_back(std::move(e));
  }
  return a;
}

std::optional<uint32_t> PendingDecisions::owner(uint64_t handle) const {
  auto it = pending_.find(handle);
  if (it == pending_.end()) return std::nullopt;
  return it->second.flow.uid;
}

}  // namespace lfp::datapath
