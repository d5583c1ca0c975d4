// SPDX-License-Identifier: MIT
#include "status_service.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>

namespace lfp::daemon {

using nlohmann::json;

namespace {
std::string network_namespace() {
  struct stat st {};
  return ::stat("/proc/self/ns/net", &st) == 0 ? "net:[" + std::to_string(st.st_ino) + "]" : std::string("unknown");
}
}  // namespace

StatusService::StatusService(Server& server, const DataPathService& datapath, NetEventService& events,
                             const DataPathOptions& options, std::string config_path)
    : server_(server), datapath_(datapath), events_(events), options_(options), config_path_(std::move(config_path)),
      netns_(network_namespace()) {
  server.add_op("status", Role::READER, [this](const OpContext&, const json&) { return op_status(); });
}

json StatusService::op_status() const {
  const auto& engine = server_.engine();
  std::map<std::string, size_t> per_layer;
  for (const Filter* f : engine.filters()) ++per_layer[std::string(layer_info(f->layer).name)];
  json layers = json::object();
  const auto unenforced = server_.unenforced_layers();
  for (const auto& [name, n] : per_layer) {
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
              {"netevents", events_.coverage_json()}};
}

}  // namespace lfp::daemon
