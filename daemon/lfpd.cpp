// lfpd: the base filtering engine daemon. Runs in the foreground (systemd Type=notify).
#include <CLI/CLI.hpp>
#include <deque>
#include <filesystem>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "lfp/callout/host.hpp"
#include "lfp/datapath/events.hpp"
#include "lfp/datapath/inspect.hpp"
#include "lfp/datapath/kernel.hpp"
#include "lfp/datapath/notify.hpp"
#include "lfp/datapath/packet_queue.hpp"
#include "lfp/datapath/pending.hpp"
#include "lfp/datapath/redirect.hpp"
#include "lfp/datapath/userpath.hpp"
#include "lfp/engine/error.hpp"
#include "lfp/netevents/event.hpp"
#include "netevents_service.hpp"
#include "server.hpp"

namespace {

// The ALE layers in the kernel, kept in step with the engine's committed policy.
struct DataPath {
  lfp::datapath::KernelPath kernel;
  lfp::daemon::NetEventService& events;
  const lfp::FilterEngine* engine = nullptr;
  uint64_t lost_seen;            // the ring's loss counter (pinned: it counts across restarts)
  int64_t lost_checked;          // when it was last read

  std::deque<nlohmann::json> dropped;  // packets the packet layers dropped while a capture runs (the newest)
  static constexpr size_t kDroppedKept = 4096;

  DataPath(lfp::datapath::KernelOptions o, lfp::daemon::NetEventService& ev)
      : kernel(std::move(o)), events(ev), lost_seen(kernel.events_lost()), lost_checked(lfp::netevents::now_ns()) {
    kernel.set_dropped_sink([this](const lfp_dropped& p) {
      if (dropped.size() == kDroppedKept) dropped.pop_front();
      dropped.push_back(lfp::datapath::describe_dropped(p, *engine));
    });
  }

  void install(const lfp::FilterEngine& e) {
    engine = &e;
    const auto& p = kernel.install(e);
    spdlog::info("kernel: {} filters installed ({} need user space, {} conditions)", p.filters,
                 p.userspace_filters, p.bank.size() - LFP_KL_COUNT);
  }
  void drain() {
    kernel.drain_events([&](const lfp_event& ev) {
      // A released socket: its layer's callouts are called; recorded only when permits are logged.
      std::optional<nlohmann::json> j;
      if (lfp::datapath::notification_layer(ev.kl))
        j = lfp::datapath::notify_release(ev, *engine, kernel.installed(), kernel.log_allows());
      else
        j = lfp::datapath::describe(ev, *engine, kernel.installed());
      if (!j) return;
      spdlog::info("net event: {}", lfp::datapath::summary(*j));
      events.ingest(*j);
    });
    // Events the hooks could not put in a full ring: a gap in the log, with their number.
    const int64_t now = lfp::netevents::now_ns();
    if (const uint64_t lost = kernel.events_lost(); lost > lost_seen) {
      events.lost(lost_checked, now, lost - lost_seen, "the kernel's event ring was full");
      lost_seen = lost;
    }
    lost_checked = now;
    if (const uint64_t u = kernel.flows_in_storage(); u > in_storage_seen) {
      spdlog::info("kernel: {} more outbound TCP flows kept in their sockets' storage (the {} slots their "
                   "addresses name in the {} of lfp_flows all held open flows)",
                   u - in_storage_seen, LFP_FLOW_WAYS, LFP_FLOWS);
      in_storage_seen = u;
    }
  }
  uint64_t in_storage_seen = 0;
};

}  // namespace

int main(int argc, char** argv) {
  lfp::daemon::Config cfg;
  std::string level = "info", read_access = "all", fail = "open";
  lfp::datapath::KernelOptions kopts;
  kopts.pin_dir = "/sys/fs/bpf/lfp";
  bool detach = false;
  lfp::netevents::Retention retention;
  double max_age_days = 7;
  CLI::App app{"lfpd - the LFP base filtering engine"};
  app.set_version_flag("--version", "lfpd 0.1.0");
  app.add_option("--state-dir", cfg.state_dir, "Where persistent policy is kept")->capture_default_str();
  app.add_option("--socket", cfg.socket_path, "Unix socket to serve")->capture_default_str();
  app.add_option("--admin-group", cfg.admin_group, "Group whose members may change any policy")->capture_default_str();
  app.add_option("--writer-group", cfg.writer_group, "Group whose members may add objects and delete their own")
      ->capture_default_str();
  app.add_option("--read-access", read_access, "Who may read policy: all | writers")
      ->check(CLI::IsMember({"all", "writers"}))->capture_default_str();
  app.add_option("--txn-wait-ms", cfg.default_txn_wait_ms, "Default transaction wait timeout")->capture_default_str();
  app.add_option("--log-level", level, "trace | debug | info | warn | error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str();
  app.add_option("--cgroup", kopts.cgroup,
                 "cgroup v2 whose sockets the ALE layers govern (e.g. /sys/fs/cgroup for the whole machine); "
                 "none: no kernel data path");
  app.add_flag("--packet-layers", kopts.packet_layers,
               "enforce the packet layers (IPPACKET, IPFORWARD, TRANSPORT, ICMP_ERROR, DATAGRAM_DATA, MAC_FRAME) on "
               "lfpd's network namespace: BPF programs at its netfilter hooks and on its interfaces (docs/packet-layers.md)");
  app.add_flag("--no-packet-cache", kopts.no_packet_cache,
               "the packet layers classify every packet instead of caching each decision by its values "
               "(lfp-packet-bench measures a flow's first packet so)");
  app.add_option("--bpf-pin", kopts.pin_dir, "bpffs directory where hooks and maps outlive lfpd")
      ->capture_default_str();
  int queue = -1;
  app.add_option("--queue", queue,
                 "NFQUEUE number for decisions the kernel cannot make (installs mangle OUTPUT rules in lfpd's "
                 "network namespace); without it they follow --fail at once")
      ->check(CLI::Range(0, 65535));
  app.add_option("--fail", fail, "new flows needing user space while it cannot decide: open | closed")
      ->check(CLI::IsMember({"open", "closed"}))->capture_default_str();
  app.add_flag("--log-allows", kopts.log_allows,
               "collect permitted flows as net events too (the CLASSIFY_ALLOW keyword; lfp set options --allows changes it)");
  app.add_option("--netevents-max", retention.max_events, "net events kept (the oldest go first)")
      ->check(CLI::Range(uint64_t{1000}, uint64_t{1} << 40))->capture_default_str();
  app.add_option("--netevents-max-age-days", max_age_days, "net events older than this go")
      ->check(CLI::Range(0.001, 3650.0))->capture_default_str();
  std::vector<std::string> plugins;
  int callout_timeout_ms = 200;
  std::string callout_host;
  app.add_option("--callout", plugins, "a callout plugin (.so) to load, each in a host process of its own; repeatable");
  app.add_option("--callout-timeout-ms", callout_timeout_ms,
                 "how long a classify waits for a plugin; then the plugin is stopped and its callouts act as unregistered")
      ->check(CLI::Range(1, 60000))->capture_default_str();
  app.add_option("--callout-host", callout_host, "the lfp-callout-host program (default: beside lfpd)");
  int pend_timeout_ms = 30000;
  std::string pend_default = "block";
  app.add_option("--pend-timeout-ms", pend_timeout_ms,
                 "how long a pended connect waits for its callout (or a person, lfp prompt) to complete it")
      ->check(CLI::Range(1, 3600000))->capture_default_str();
  app.add_option("--pend-default", pend_default, "what a pended connect gets at the timeout: block | permit")
      ->check(CLI::IsMember({"block", "permit"}))->capture_default_str();
  int inspect_queue = -1, stream_hold_ms = 2000;
  app.add_option("--inspect-queue", inspect_queue,
                 "NFQUEUE number for the data layers STREAM and DATAGRAM_DATA (callouts see stream bytes and "
                 "payloads; installs filter INPUT/OUTPUT rules in lfpd's network namespace while the policy has "
                 "filters there)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--stream-hold-ms", stream_hold_ms,
                 "how long stream bytes wait for more that a callout asked for (NEED_MORE_DATA); then it decides "
                 "on what is there")
      ->check(CLI::Range(1, 600000))->capture_default_str();
  int packet_queue = -1, packet_queues = 1;
  bool packet_userspace = false;
  app.add_option("--packet-queue", packet_queue,
                 "first NFQUEUE number for the packet layers' user-space path: a netfilter hook whose layers hold a "
                 "filter the kernel cannot decide (a callout) is decided by lfpd (docs/packet-layers.md); without it "
                 "such filters follow --fail")
      ->check(CLI::Range(0, 65535));
  app.add_option("--packet-queues", packet_queues, "queues for the packet layers, from --packet-queue on (one a CPU)")
      ->check(CLI::Range(1, 64))->capture_default_str();
  app.add_flag("--packet-userspace", packet_userspace,
               "with --packet-queue: decide every packet layer that holds a filter in lfpd, not only those that need "
               "it (lfp-packet-bench measures the user-space path so)");
  bool boot = false;
  app.add_flag("--boot", boot,
               "load the stored BOOTTIME filters into the kernel (hooks on --cgroup, pinned under --bpf-pin) "
               "and exit: they are enforced from then until lfpd takes over");
  app.add_flag("--detach", detach, "detach the hooks pinned under --bpf-pin, remove the pins, and exit");
  CLI11_PARSE(app, argc, argv);
  kopts.fail_closed = fail == "closed";
  retention.max_age_ns = static_cast<int64_t>(max_age_days * 86400e9);
  if (kopts.cgroup == "none") kopts.cgroup.clear();
  cfg.readers_all = read_access == "all";

  auto logger = spdlog::stderr_color_mt("lfpd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  try {
    if (detach) {
      lfp::datapath::KernelPath::remove_pins(kopts.pin_dir);
      spdlog::info("detached and removed the pins under {}", kopts.pin_dir);
      return 0;
    }
    if (boot) {
      if (kopts.cgroup.empty()) throw std::runtime_error("--boot needs --cgroup");
      lfp::daemon::Server store_only(cfg);
      lfp::datapath::register_redirect_callouts(store_only.engine());  // (before the store: filters use them)
      store_only.load();
      lfp::datapath::KernelPath kernel(kopts);
      const auto& p = kernel.install(store_only.engine(), lfp::BOOTTIME);
      spdlog::info("boot: {} BOOTTIME filters enforced on {} (pinned under {}) until lfpd takes over", p.filters,
                   kopts.cgroup, kopts.pin_dir);
      return 0;
    }
    lfp::daemon::Server server(cfg);
    std::filesystem::create_directories(cfg.state_dir);
    // Callout plugins register before the store loads, so that the data path knows them at once.
    std::vector<std::unique_ptr<lfp::callouts::CalloutHost>> hosts;
    std::unique_ptr<lfp::datapath::PendingDecisions> pending;  // (with --queue)
    if (!plugins.empty() && callout_host.empty()) {
      const auto dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
      for (const auto& c : {dir / "lfp-callout-host", dir.parent_path() / "callouts" / "lfp-callout-host"})
        if (std::filesystem::exists(c)) callout_host = c.string();
      if (callout_host.empty()) throw std::runtime_error("lfp-callout-host not found beside lfpd; give --callout-host");
    }
    for (const auto& plugin : plugins) {
      auto& h = hosts.emplace_back(std::make_unique<lfp::callouts::CalloutHost>(plugin, callout_host, callout_timeout_ms));
      h->register_with(server.engine());
      spdlog::info("callout plugin {} ({}): {} callouts", h->name(), plugin, h->callouts().size());
      lfp::callouts::CalloutHost* hp = h.get();
      server.watch_fd(h->fd(), [&server, &pending, hp] {
        if (hp->reap(server.engine())) {
          server.unwatch_fd(hp->fd());
          server.notify_policy_changed();  // the kernel takes the plugin's filters back
        }
        for (const auto& [handle, permit] : hp->take_completions())  // FwpsCompleteOperation0
          if (pending) pending->complete(handle, permit, "callout");
      });
    }
    // A plugin that failed during a drain's classifies: its callouts go now (not inside a classify).
    auto reap_failed_plugins = [&] {
      for (auto& h : hosts)
        if (!h->alive() && h->reap(server.engine())) {
          server.unwatch_fd(h->fd());
          server.notify_policy_changed();
        }
    };
    lfp::daemon::NetEventService events(server, cfg.state_dir + "/netevents.db", retention);
    std::unique_ptr<DataPath> dp;
    std::unique_ptr<lfp::datapath::UserPath> userpath;
    if (queue >= 0 && kopts.cgroup.empty()) throw std::runtime_error("--queue needs --cgroup (the hooks that fill it)");
    if (!kopts.cgroup.empty() || kopts.packet_layers) {
      dp = std::make_unique<DataPath>(kopts, events);
      lfp::datapath::register_redirect_callouts(server.engine());
      lfp::datapath::register_prompt_callouts(server.engine());
      // A proxy asks where a redirected connection was going, by its peer address.
      server.add_op("redirect_record", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext&, const nlohmann::json& req) {
        if (!req.contains("peer") || !req["peer"].is_string())
          throw lfp::Error(lfp::ErrorCode::INVALID_PARAMETER, "'peer' must be \"ADDR:PORT\"");
        auto r = lfp::datapath::redirect_record(dp->kernel, req["peer"].get<std::string>());
        if (!r) throw lfp::Error(lfp::ErrorCode::NOT_FOUND, "no redirected connection from " + req["peer"].get<std::string>());
        return *r;
      });
      if (!kopts.cgroup.empty())
        spdlog::info("kernel: ALE hooks attached to {} (pins under {}, fail {})", kopts.cgroup, kopts.pin_dir, fail);
      if (kopts.packet_layers) {
        spdlog::info("kernel: packet layers linked into this network namespace's netfilter hooks (pins under {})",
                     kopts.pin_dir);
        server.watch_fd(dp->kernel.address_fd(), [&] { dp->kernel.refresh_interfaces(); });
        // lfp capture: the packets the packet layers drop, kept while a capture runs.
        server.add_op("capture_packets", lfp::daemon::Role::ADMIN, [&](const lfp::daemon::OpContext&, const nlohmann::json& req) {
          if (req.contains("on")) {
            if (!req["on"].is_boolean()) throw lfp::Error(lfp::ErrorCode::INVALID_PARAMETER, "'on' must be true or false");
            if (req["on"].get<bool>()) dp->dropped.clear();
            dp->kernel.set_keep_dropped(req["on"].get<bool>());
          }
          dp->drain();
          nlohmann::json packets = nlohmann::json::array();
          for (const auto& p : dp->dropped) packets.push_back(p);
          return nlohmann::json{{"on", dp->kernel.keep_dropped()}, {"kept_at_most", DataPath::kDroppedKept},
                                {"packets", packets}};
        });
      }
      server.on_policy_change([&](const lfp::FilterEngine& e) { dp->install(e); });
      if (kopts.log_allows && !events.log().settings().has("CLASSIFY_ALLOW")) {
        auto s = events.log().settings();
        s.keywords.push_back("CLASSIFY_ALLOW");
        events.log().set_settings(s);
      }
      events.on_settings([&](const lfp::netevents::Settings& s) { dp->kernel.set_log_allows(s.has("CLASSIFY_ALLOW")); });
      if (queue >= 0) {
        userpath = std::make_unique<lfp::datapath::UserPath>(dp->kernel, static_cast<uint16_t>(queue), fail == "open");
        spdlog::info("user-space path: NFQUEUE {} (fail {} while lfpd is down or the queue is full)", queue, fail);
        pending = std::make_unique<lfp::datapath::PendingDecisions>(
            *userpath, server.engine(), dp->kernel, int64_t{pend_timeout_ms} * 1'000'000, pend_default == "permit");
        pending->on_event = [&](const nlohmann::json& ev) {
          spdlog::info("net event (user space): {}", lfp::datapath::summary(ev));
          events.ingest(ev);
        };
        // lfp prompt: the pending connects (a user sees their own, an admin all), and their answers.
        server.add_op("pending_list", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext& ctx, const nlohmann::json&) {
          if (ctx.role == lfp::daemon::Role::ADMIN) return nlohmann::json{{"pending", pending->list()}};
          return nlohmann::json{{"pending", pending->list(ctx.cred.uid)}};
        });
        server.add_op("pending_complete", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext& ctx, const nlohmann::json& req) {
          // ("id" names the request itself in the protocol.)
          if (!req.contains("pending") || !req["pending"].is_number_unsigned())
            throw lfp::Error(lfp::ErrorCode::INVALID_PARAMETER, "'pending' must be a pending decision's id (pending_list)");
          const std::string action = req.value("action", "");
          if (action != "PERMIT" && action != "BLOCK")
            throw lfp::Error(lfp::ErrorCode::INVALID_PARAMETER, "'action' must be PERMIT or BLOCK");
          const uint64_t id = req["pending"].get<uint64_t>();
          const auto uid = pending->owner(id);
          if (!uid) throw lfp::Error(lfp::ErrorCode::NOT_FOUND, "no pending decision " + std::to_string(id) + " (answered, or timed out)");
          if (ctx.role != lfp::daemon::Role::ADMIN && ctx.cred.uid != *uid)
            throw lfp::Error(lfp::ErrorCode::ACCESS_DENIED, "only the connection's user or an admin may answer it");
          pending->complete(id, action == "PERMIT", "uid " + std::to_string(ctx.cred.uid));
          return nlohmann::json{{"pending", id}, {"action", action}};
        });
        server.watch_fd(userpath->fd(), [&, overflow_seen = userpath->overflowed(),
                                          checked = lfp::netevents::now_ns()]() mutable {
          userpath->drain([&](const lfp::datapath::QueuedFlow& f, uint32_t id) { return pending->decide(f, id); });
          reap_failed_plugins();
          // Flows the queue could not take were decided by --fail, unseen: counted and logged.
          const int64_t now = lfp::netevents::now_ns();
          if (const uint64_t o = userpath->overflowed(); o > overflow_seen) {
            spdlog::warn("user-space path: {} new flows overflowed NFQUEUE {} and were {} (--fail {})", o - overflow_seen,
                         queue, fail == "open" ? "passed" : "dropped", fail);
            events.lost(checked, now, o - overflow_seen, "NFQUEUE overflow: decided by --fail " + fail);
            overflow_seen = o;
          }
          checked = now;
        });
      }
      server.watch_fd(dp->kernel.events_fd(), [&] {
        dp->drain();
        reap_failed_plugins();  // (the release layers' callouts are called there)
      });
    }
    // The data layers in user space (datapath/inspect.hpp).
    std::unique_ptr<lfp::datapath::DataInspector> inspector;
    int tick_fd = -1;
    if (inspect_queue >= 0) {
      if (queue == inspect_queue) throw std::runtime_error("--inspect-queue and --queue must be different queues");
      inspector = std::make_unique<lfp::datapath::DataInspector>(server.engine(), static_cast<uint16_t>(inspect_queue),
                                                                 fail == "open");
      inspector->on_event = [&](nlohmann::json ev) {
        spdlog::info("net event (data layer): {}", lfp::datapath::summary(ev));
        events.ingest(ev);
      };
      server.on_policy_change([&](const lfp::FilterEngine&) {
        inspector->update();
        if (dp) dp->kernel.set_datagrams_inspected(inspector->queues_datagrams());
      });
      server.watch_fd(inspector->fd(), [&] {
        inspector->drain();
        reap_failed_plugins();
      });
      server.add_op("flows", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext&, const nlohmann::json&) {
        const auto& st = inspector->stats();
        return nlohmann::json{{"flows", inspector->flows_json()},
                              {"stats", {{"packets", st.packets}, {"datagrams", st.datagrams}, {"classifies", st.classifies},
                                         {"bytes_inspected", st.bytes_inspected}, {"flows", st.flows},
                                         {"flows_allowed", st.flows_allowed}, {"flows_blocked", st.flows_blocked},
                                         {"out_of_order", st.out_of_order}, {"modified", st.modified},
                                         {"injected", st.injected}}}};
      });
      spdlog::info("data layers: NFQUEUE {} for STREAM and DATAGRAM_DATA (rules while the policy has filters there)",
                   inspect_queue);
    }
    // The packet layers' user-space path (datapath/packet_queue.hpp).
    std::unique_ptr<lfp::datapath::PacketQueue> packet_path;
    std::function<void()> packet_overflow;  // (the queues' callbacks share it)
    if (packet_queue >= 0) {
      if (!kopts.packet_layers) throw std::runtime_error("--packet-queue needs --packet-layers");
      for (int q : {queue, inspect_queue})
        if (q >= packet_queue && q < packet_queue + packet_queues)
          throw std::runtime_error("--packet-queue's queues must differ from --queue and --inspect-queue");
      packet_path = std::make_unique<lfp::datapath::PacketQueue>(
          server.engine(), dp->kernel, static_cast<uint16_t>(packet_queue), static_cast<uint16_t>(packet_queues),
          fail == "open", packet_userspace);
      packet_path->set_log_allows(kopts.log_allows);
      events.on_settings([&](const lfp::netevents::Settings& s) { packet_path->set_log_allows(s.has("CLASSIFY_ALLOW")); });
      packet_path->on_event = [&](nlohmann::json ev) {
        spdlog::info("net event (packet queue): {}", lfp::datapath::summary(ev));
        events.ingest(ev);
      };
      server.on_policy_change([&](const lfp::FilterEngine&) {  // (after the kernel's install, above)
        packet_path->leave_datagrams_to_inspector(inspector && inspector->queues_datagrams());
        packet_path->update(dp->kernel.installed());
      });
      // Packets the queues could not take were decided by --fail, unseen: counted and logged (at most
      // once a second: the count is read from /proc).
      packet_overflow = [&, seen = packet_path->overflowed(), checked = lfp::netevents::now_ns()]() mutable {
        const int64_t now = lfp::netevents::now_ns();
        if (now - checked < 1'000'000'000) return;
        if (const uint64_t o = packet_path->overflowed(); o > seen) {
          spdlog::warn("packet queue: {} packets overflowed and were {} (--fail {})", o - seen,
                       fail == "open" ? "passed" : "dropped", fail);
          events.lost(checked, now, o - seen, "packet queue overflow: decided by --fail " + fail);
          seen = o;
        }
        checked = now;
      };
      const auto fds = packet_path->fds();
      for (size_t i = 0; i < fds.size(); ++i)
        server.watch_fd(fds[i], [&, i] {
          packet_path->drain(i);
          packet_overflow();
        });
      server.add_op("packet_queue", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext&, const nlohmann::json&) {
        const auto& st = packet_path->stats();
        return nlohmann::json{{"queued_hooks", packet_path->queued_hooks()}, {"packets", st.packets},
                              {"dropped", st.dropped}, {"classifies", st.classifies}, {"reads", st.reads},
                              {"verdict_messages", st.verdict_messages}, {"unparsed", st.unparsed},
                              {"overflowed", packet_path->overflowed()}};
      });
      spdlog::info("packet layers: NFQUEUE {}..{} for the hooks that need user space{}", packet_queue,
                   packet_queue + packet_queues - 1, packet_userspace ? " (all hooks with filters: --packet-userspace)" : "");
    } else if (packet_userspace) {
      throw std::runtime_error("--packet-userspace needs --packet-queue");
    }
    // Five times a second: pended connects time out, stream bytes stop waiting, idle flows end.
    if (inspector || pending) {
      tick_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
      const itimerspec every{{0, 200'000'000}, {0, 200'000'000}};
      ::timerfd_settime(tick_fd, 0, &every, nullptr);
      server.watch_fd(tick_fd, [&] {
        uint64_t n;
        while (::read(tick_fd, &n, sizeof n) > 0) {}
        if (pending) pending->expire();
        if (inspector) inspector->sweep(120'000'000'000LL, int64_t{stream_hold_ms} * 1'000'000);
      });
    }
    server.start();
    sd_notify(0, "READY=1");
    server.run();
    sd_notify(0, "STOPPING=1");
    if (tick_fd >= 0) ::close(tick_fd);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
