// SPDX-License-Identifier: MIT
// lfpd: the base filtering engine daemon. Runs in the foreground (systemd Type=notify). main only
// wires the services: the Server (sessions, transactions, lfpd's own ops) and beside it the net event
// log, the data path, prompts, capture and status, each registering its ops in the Server's op table.
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <optional>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "callout_plugins.hpp"
#include "capture_service.hpp"
#include "datapath_service.hpp"
#include "event_export.hpp"
#include "interfaces.hpp"
#include "lfp/datapath/redirect.hpp"
#include "lfp/store/files.hpp"
#include "lfp/sys/mounts.hpp"
#include "lfpd_options.hpp"
#include "metrics.hpp"
#include "netevents_service.hpp"
#include "prompts_service.hpp"
#include "server.hpp"
#include "status_service.hpp"

namespace {

using namespace lfp::daemon;

// The cgroup whose sockets the ALE layers govern: --cgroup's, else the cgroup2 root (the whole
// machine); "" for --cgroup none.
std::string governed_cgroup(const std::string& given) {
  if (given == "none") return "";
  if (!given.empty()) return given;
  std::string root = lfp::sys::cgroup2_mount();
  if (root.empty())
    throw std::runtime_error("no cgroup v2 is mounted (mount -t cgroup2 none /sys/fs/cgroup), or give --cgroup PATH "
                             "or --cgroup none");
  return root;
}

// lfpd --boot: the stored BOOTTIME filters into the kernel, enforced until lfpd takes over.
int boot(const LfpdOptions& o) {
  const lfp::datapath::KernelOptions& kopts = o.datapath.kernel;
  if (kopts.cgroup.empty()) throw std::runtime_error("--boot needs a cgroup (not --cgroup none)");
  if (!kopts.pin_dir.empty()) lfp::sys::ensure_bpffs(kopts.pin_dir);
  Server store_only(o.server);
  lfp::datapath::register_redirect_callouts(store_only.engine());  // (before the store: filters use them)
  store_only.engine().set_interfaces(interface_table());           // (filters naming interfaces)
  store_only.load();
  lfp::datapath::KernelPath kernel(kopts);
  const auto& p = kernel.install(store_only.engine(), lfp::BOOTTIME);
  spdlog::info("boot: {} BOOTTIME filters enforced on {} (pinned under {}) until lfpd takes over", p.filters,
               kopts.cgroup, kopts.pin_dir);
  return 0;
}

int serve(const LfpdOptions& o) {
  Server server(o.server);
  lfp::store::ensure_private_dir(o.server.state_dir, 0700);  // (refused when another user could write it)
  InterfaceWatch interfaces;
  keep_interfaces_current(server, interfaces);
  CalloutPlugins plugins(server, o.callouts);
  NetEventService events(server, o.server.state_dir + "/netevents.db", o.retention, o.netevents_all);
  EventExport exporter(o.events);  // (before the data path, which records events until it goes)
  if (exporter.active()) events.on_recorded([&exporter](const nlohmann::json& e) { exporter.send(e); });
  DataPathService datapath(server, events, plugins, o.datapath);
  if (datapath.kernel() && o.datapath.kernel.packet_layers)  // (their address table and MAC hooks)
    interfaces.on_change([&datapath] { datapath.kernel()->refresh_interfaces(); });
  std::optional<PromptsService> prompts;
  if (datapath.pending()) prompts.emplace(server, *datapath.pending());
  std::optional<CaptureService> capture;
  if (datapath.kernel() && o.datapath.kernel.packet_layers) capture.emplace(server, datapath);
  StatusService status(server, datapath, events, plugins, o.datapath, o.config_path);
  std::optional<MetricsEndpoint> metrics;
  if (!o.metrics_listen.empty())
    metrics.emplace(server, o.metrics_listen, [&status, &exporter] {
      MetricsText page;
      status.metrics(page);
      exporter.metrics(page);
      return page.text();
    });
  server.start();
  sd_notify(0, "READY=1");
  server.run();
  sd_notify(0, "STOPPING=1");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  LfpdOptions o;
  if (const auto exit_code = parse_options(argc, argv, o)) return *exit_code;
  // What lfpd creates (its databases, the state dir) is its own: 0600 and 0700 (docs/security.md).
  ::umask(077);
  auto logger = spdlog::stderr_color_mt("lfpd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  try {
    if (!o.config_path.empty()) spdlog::info("configuration: {}", o.config_path);
    if (o.detach) {
      lfp::datapath::KernelPath::remove_pins(o.datapath.kernel.pin_dir);
      spdlog::info("detached and removed the pins under {}", o.datapath.kernel.pin_dir);
      return 0;
    }
    o.datapath.kernel.cgroup = governed_cgroup(o.cgroup);
    return o.boot ? boot(o) : serve(o);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
