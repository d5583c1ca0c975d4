// SPDX-License-Identifier: MIT
#include "status_service.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>

#include "lfp/netevents/event.hpp"

namespace lfp::daemon {

using nlohmann::json;

namespace {
std::string network_namespace() {
  struct stat st {};
  return ::stat("/proc/self/ns/net", &st) == 0 ? "net:[" + std::to_string(st.st_ino) + "]" : std::string("unknown");
}

std::map<std::string, size_t> filters_per_layer(const FilterEngine& engine) {
  std::map<std::string, size_t> per_layer;
  for (const Filter* f : engine.filters()) ++per_layer[std::string(layer_info(f->layer).name)];
  return per_layer;
}

double seconds_of(int64_t ns) { return static_cast<double>(ns) / 1e9; }
}  // namespace

StatusService::StatusService(Server& server, const DataPathService& datapath, NetEventService& events,
                             const CalloutPlugins& plugins, const DataPathOptions& options, std::string config_path)
    : server_(server), datapath_(datapath), events_(events), plugins_(plugins), options_(options),
      config_path_(std::move(config_path)),
      netns_(network_namespace()) {
  server.add_op("status", Role::READER, [this](const OpContext&, const json&) { return op_status(); });
}

// Each callout plugin: whether its host runs, and what it was asked and failed to answer.
json StatusService::plugins_json() const {
  json out = json::array();
  for (const auto& h : plugins_.hosts())
    out.push_back({{"name", h->name()}, {"up", h->alive()}, {"calls", h->calls()}, {"timeouts", h->timeouts()},
                   {"crashes", h->crashes()}});
  return out;
}

json StatusService::op_status() const {
  const auto& engine = server_.engine();
  json layers = json::object();
  const auto unenforced = server_.unenforced_layers();
  for (const auto& [name, n] : filters_per_layer(engine)) {
    json l = {{"filters", n}};
    if (auto it = unenforced.find(name); it != unenforced.end()) l["not_enforced"] = it->second;
    layers[name] = l;
  }
  const auto uptime = std::chrono::steady_clock::now() - server_.started_at();
  const std::string& cgroup = options_.kernel.cgroup;
  return json{{"version", LFP_VERSION},
              {"pid", ::getpid()},
              {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(uptime).count()},
              {"config", config_path_.empty() ? json() : json(config_path_)},
              {"cgroup", cgroup.empty() ? json() : json(cgroup)},
              {"netns", netns_},
              {"packet_layers", options_.kernel.packet_layers},
              {"fail", options_.fail},
              {"filters", engine.filter_count()},
              {"layers", layers},
              {"kernel", datapath_.kernel_status()},
              {"degraded", server_.degraded()},
              {"queues", datapath_.queues_status()},
              {"netevents", events_.coverage_json()},
              {"callout_plugins", plugins_json()}};
}

// Every value here is read where op_status reads it (plus the services' counters); docs/metrics.md
// lists them. Families with nothing to count here (no kernel path, no queue) are left out.
void StatusService::metrics(MetricsText& page) const {
  auto n = [](const json& object, const char* key) { return object.value(key, 0.0); };  // (0 when absent)
  const auto uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - server_.started_at()).count();
  page.family("lfp_start_time_seconds", "gauge", "When lfpd started, in seconds since the epoch")
      .sample(seconds_of(netevents::now_ns()) - uptime);

  page.family("lfp_filters", "gauge", "Filters in the engine, by layer");
  for (const auto& [layer, count] : filters_per_layer(server_.engine())) page.sample(static_cast<double>(count), {{"layer", layer}});
  page.family("lfp_layer_not_enforced", "gauge", "1 for each layer holding filters that nothing enforces here (lfp status says why)");
  for (const auto& [layer, why] : server_.unenforced_layers()) page.sample(1, {{"layer", layer}});
  page.family("lfp_degraded", "gauge", "1 for each part of enforcement that is down (lfp status says why)");
  for (const auto& [part, why] : server_.degraded()) page.sample(1, {{"part", part}});

  page.family("lfp_sessions", "gauge", "Sessions open on lfpd's socket").sample(static_cast<double>(server_.session_count()));
  const auto& txns = server_.txn_counts();
  page.family("lfp_transactions_total", "counter", "Write transactions ended, by outcome")
      .sample(static_cast<double>(txns.committed), {{"outcome", "committed"}})
      .sample(static_cast<double>(txns.aborted), {{"outcome", "aborted"}});
  page.family("lfp_transactions_refused_total", "counter",
              "Commits the kernel or the store could not take (TXN_ABORTED; counted among the aborted)")
      .sample(static_cast<double>(txns.refused));

  if (const json kernel = datapath_.kernel_status(); !kernel.is_null()) {
    page.family("lfp_kernel_filters", "gauge", "Filters in the kernel's policy image").sample(n(kernel, "filters"));
    page.family("lfp_kernel_userspace_filters", "gauge", "Of those, filters the kernel hands to user space")
        .sample(n(kernel, "userspace_filters"));
    page.family("lfp_kernel_entries", "gauge", "Entries of the kernel's policy image").sample(n(kernel, "entries"));
    page.family("lfp_kernel_entries_max", "gauge", "The most entries the image may take (--kernel-entries)")
        .sample(n(kernel, "entries_max"));
    page.family("lfp_kernel_memory_bytes", "gauge", "Kernel memory the two policy banks take").sample(n(kernel, "kernel_bytes"));
    page.family("lfp_kernel_hooks", "gauge", "BPF programs linked now").sample(static_cast<double>(kernel["hooks"].size()));
    page.family("lfp_kernel_events_lost_total", "counter", "Net events the hooks could not put in the full ring")
        .sample(n(kernel, "events_lost"));
    page.family("lfp_kernel_deferred_total", "counter", "Decisions the hooks deferred to user space").sample(n(kernel, "deferred"));
    page.family("lfp_kernel_flows_in_storage_total", "counter",
                "Outbound TCP flows kept in their socket's storage (their lfp_flows slots were full)")
        .sample(n(kernel, "flows_in_storage"));
    const auto& dp = datapath_.counts();
    page.family("lfp_kernel_installs_total", "counter", "Policies the kernel took, in place or compiled whole")
        .sample(static_cast<double>(dp.installs_in_place), {{"how", "in_place"}})
        .sample(static_cast<double>(dp.installs_whole), {{"how", "whole"}});
    page.family("lfp_kernel_install_failures_total", "counter",
                "Policies the kernel could not take (a refused commit, or degraded)")
        .sample(static_cast<double>(dp.install_failures));
  }

  // Decisions as the data paths report them: every drop, and permits while they are collected.
  const auto& ev = events_.counts();
  std::map<std::pair<std::string, std::string>, uint64_t> decisions;  // (layer, action)
  for (const auto& [type_layer, count] : ev.reported) {
    const auto type = netevents::event_type_from_string(type_layer.first);
    if (!type || *type == netevents::EventType::CLASSIFY_LOG) continue;
    decisions[{type_layer.second, netevents::is_drop(*type) ? "BLOCK" : "PERMIT"}] += count;
  }
  page.family("lfp_decisions_total", "counter",
              "Decisions the data paths reported, by layer and action: every BLOCK; PERMIT only while permits are "
              "collected (the CLASSIFY_ALLOW keyword)");
  for (const auto& [la, count] : decisions) page.sample(static_cast<double>(count), {{"layer", la.first}, {"action", la.second}});
  page.family("lfp_net_events_total", "counter", "Net events recorded (collected), by type");
  for (const auto& [type, count] : ev.recorded) page.sample(static_cast<double>(count), {{"type", type}});
  page.family("lfp_net_events_lost_total", "counter",
              "Net events lost: not kept (no log, a full queue) or not reported (a full ring or NFQUEUE)")
      .sample(static_cast<double>(ev.lost));
  page.family("lfp_net_events_malformed_total", "counter", "Net events a data path reported that were refused")
      .sample(static_cast<double>(ev.malformed));
  if (const auto stored = events_.stored()) page.family("lfp_net_events_stored", "gauge", "Net events in the log").sample(static_cast<double>(*stored));
  if (const auto cov = events_.coverage()) {
    page.family("lfp_net_event_log_complete_since_seconds", "gauge",
                "The log holds every collected event from then on (seconds since the epoch), except in its gaps")
        .sample(seconds_of(cov->complete_since));
    page.family("lfp_net_event_log_gaps", "gauge", "Gaps in the log's coverage (lfp show coverage lists them)")
        .sample(static_cast<double>(cov->gaps.size()));
  }

  // The user-space queues (as lfp status --json lists them).
  const json queues = datapath_.queues_status();
  const json none = json::object();
  const json& user = queues.contains("user_space_path") ? queues["user_space_path"] : none;
  const json& packet = queues.contains("packet_queue") ? queues["packet_queue"] : none;
  const json& inspect = queues.contains("inspect") ? queues["inspect"] : none;
  if (!queues.empty()) {
    page.family("lfp_queue_packets_total", "counter", "Packets lfpd took from its NFQUEUE queues, by queue");
    if (!user.empty()) page.sample(n(user, "decided") + n(user, "unknown"), {{"queue", "user_space_path"}});
    if (!packet.empty()) page.sample(n(packet, "packets"), {{"queue", "packet_queue"}});
    if (!inspect.empty()) page.sample(n(inspect, "packets"), {{"queue", "inspect"}});
    page.family("lfp_queue_classifies_total", "counter", "Classifies by the engine for queued packets, by queue");
    if (!user.empty()) page.sample(n(user, "decided"), {{"queue", "user_space_path"}});
    if (!packet.empty()) page.sample(n(packet, "classifies"), {{"queue", "packet_queue"}});
    if (!inspect.empty()) page.sample(n(inspect, "classifies"), {{"queue", "inspect"}});
  }
  if (!user.empty() || !packet.empty()) {
    page.family("lfp_queue_overflows_total", "counter", "Packets a full queue could not take: --fail decided them, by queue");
    if (!user.empty()) page.sample(n(user, "overflowed"), {{"queue", "user_space_path"}});
    if (!packet.empty()) page.sample(n(packet, "overflowed"), {{"queue", "packet_queue"}});
  }
  if (!packet.empty())
    page.family("lfp_queue_dropped_total", "counter", "Packets the packet queue dropped").sample(n(packet, "dropped"), {{"queue", "packet_queue"}});
  if (!inspect.empty()) {
    page.family("lfp_inspect_bytes_total", "counter", "Stream bytes the data layers inspected").sample(n(inspect, "bytes_inspected"));
    page.family("lfp_inspect_flows_total", "counter", "Flows the data layers decided, by action")
        .sample(n(inspect, "flows_allowed"), {{"action", "PERMIT"}})
        .sample(n(inspect, "flows_blocked"), {{"action", "BLOCK"}});
  }
  if (!user.empty()) {
    page.family("lfp_pending_decisions", "gauge", "Connects pended for a callout or a person (lfp prompt)").sample(n(user, "pending"));
    page.family("lfp_user_decision_duration_seconds", "histogram",
                "How long the engine took to decide a flow the ALE user-space path (--queue) handed it");
    datapath_.counts().user_decision_seconds.write(page);
  }

  if (!plugins_.hosts().empty()) {
    page.family("lfp_callout_plugin_up", "gauge", "1 while a callout plugin's host runs; 0 once it crashed or was stopped");
    for (const auto& h : plugins_.hosts()) page.sample(h->alive() ? 1 : 0, {{"plugin", h->name()}});
    page.family("lfp_callout_calls_total", "counter", "Requests asked of a callout plugin (classifies, notifies)");
    for (const auto& h : plugins_.hosts()) page.sample(static_cast<double>(h->calls()), {{"plugin", h->name()}});
    page.family("lfp_callout_timeouts_total", "counter", "Classifies a callout plugin did not answer in time (--callout-timeout-ms)");
    for (const auto& h : plugins_.hosts()) page.sample(static_cast<double>(h->timeouts()), {{"plugin", h->name()}});
    page.family("lfp_callout_crashes_total", "counter", "Times a callout plugin's host died (crashed, exited, stopped reading)");
    for (const auto& h : plugins_.hosts()) page.sample(static_cast<double>(h->crashes()), {{"plugin", h->name()}});
  }
}

}  // namespace lfp::daemon
