// lfpd: the base filtering engine daemon. Runs in the foreground (systemd Type=notify).
#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <deque>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <sys/stat.h>
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
#include "lfp/protocol/log_limit.hpp"
#include "lfp/protocol/request.hpp"
#include "lfp/store/files.hpp"
#include "lfp/sys/mounts.hpp"
#include "interfaces.hpp"
#include "netevents_service.hpp"
#include "server.hpp"

namespace {

// A net event's log line (from `source`: "" for the kernel's ring). Any local process can cause one
// (a blocked connect), so they are rate-limited, and what they quote (an app's path) is escaped.
void log_net_event(const nlohmann::json& ev, std::string_view source) {
  static lfp::protocol::LineLimit limit(50);
  if (!spdlog::should_log(spdlog::level::info)) return;
  uint64_t suppressed;
  const bool admitted = limit.admit(suppressed);
  if (suppressed)
    spdlog::info("net events: {} lines suppressed (at most {} a second; lfp show netevents has them all)", suppressed,
                 limit.per_second());
  if (admitted) spdlog::info("net event{}: {}", source, lfp::protocol::log_safe(lfp::datapath::summary(ev), 1024));
}

// The kernel's layers (ALE and packet), kept in step with the engine's committed policy: lfpd's
// enforcer, so a policy the kernel cannot take is refused, not committed.
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

  void install(const lfp::FilterEngine& e, const lfp::FilterChanges* changes) {
    engine = &e;
    const auto& p = kernel.install(e, 0, changes);
    const auto& how = kernel.last_install();
    if (how.in_place)
      spdlog::info("kernel: {} filters installed (in place: {} added, {} deleted, {} entries written)", p.filters,
                   changes->added.size(), changes->deleted.size(), how.entries_written);
    else
      spdlog::info("kernel: {} filters installed ({} need user space, {} entries, {} bytes of kernel memory){}", p.filters,
                   p.userspace_filters, p.bank.size(), kernel.bank_bytes(),
                   changes ? " compiled whole: " + how.why_whole : "");
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
      log_net_event(*j, "");
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

// The configuration file (docs/lfpd.md) and the command line are one parser, CLI11's TOML reader:
// every option is a key, named as its long flag without "--"; the command line wins.
constexpr const char* kDefaultConfig = "/etc/lfp/lfpd.conf";

std::string toml_quote(const std::string& v) {
  std::string q = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + '"';
}

// An option's value as TOML: what the file or the command line gave, else its default; nullopt when
// it has none (the option is off).
std::optional<std::string> toml_value(const CLI::Option& o) {
  if (o.get_expected_min() == 0) return o.as<bool>() ? "true" : "false";  // a flag (its default_str when not given)
  std::vector<std::string> values = o.results();
  if (values.empty() && !o.get_default_str().empty()) values = {o.get_default_str()};
  auto scalar = [](const std::string& v) {
    double number;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), number);
    return !v.empty() && ec == std::errc() && end == v.data() + v.size() ? v : toml_quote(v);
  };
  if (values.empty()) return std::nullopt;  // (an empty array is not a value CLI11 reads back)
  if (o.get_expected_max() > 1) {          // repeatable: an array
    std::string a = "[";
    for (size_t i = 0; i < values.size(); ++i) a += (i ? ", " : "") + scalar(values[i]);
    return a + "]";
  }
  return scalar(values.back());
}

// lfpd --print-config: every key with its description, set to what the file and the command line
// make it (a key with no value is off, or has the default its description names).
void print_config(const CLI::App& app, const std::string& config_read) {
  std::cout << "# lfpd's configuration (" << (config_read.empty() ? "no file" : config_read)
            << " and the command line; lfpd --print-config)\n";
  for (const CLI::Option* o : app.get_options()) {
    if (!o->get_configurable() || o->get_lnames().empty()) continue;
    std::cout << '\n';
    std::istringstream words(o->get_description());  // as comment lines of at most 100 characters
    std::string line = "#", word;
    while (words >> word) {
      if (line.size() + 1 + word.size() > 100) {
        std::cout << line << '\n';
        line = "#";
      }
      line += " " + word;
    }
    std::cout << line << '\n';
    const auto v = toml_value(*o);
    if (v) std::cout << o->get_lnames().front() << " = " << *v << '\n';
    else std::cout << "# " << o->get_lnames().front() << " =\n";
  }
}

// The configuration file actually read: the one --config names, else the default when it exists.
std::string config_read(const CLI::Option& config) {
  const std::string path = config.count() > 0 ? config.as<std::string>() : kDefaultConfig;
  return path.empty() || !std::filesystem::is_regular_file(path) ? "" : path;
}

}  // namespace

int main(int argc, char** argv) {
  lfp::daemon::Config cfg;
  std::string level = "info", read_access = "all", netevents_access = "own", fail = "open";
  lfp::datapath::KernelOptions kopts;
  kopts.pin_dir = "/sys/fs/bpf/lfp";
  kopts.packet_layers = true;  // with the cgroup2 root: lfpd governs the machine unless told less
  std::string cgroup;          // "": the cgroup2 root; "none": no ALE hooks
  bool detach = false, show_config = false;
  lfp::netevents::Retention retention;
  double max_age_days = 7;
  CLI::App app{"lfpd - the LFP base filtering engine"};
  app.set_version_flag("--version", "lfpd " LFP_VERSION);
  CLI::Option* config = app.set_config("--config", kDefaultConfig,
                                       "TOML file of options (keys: the long options without --; the command line "
                                       "overrides it); read when it exists; none: no file")
                             ->transform([](std::string path) { return path == "none" ? std::string() : path; });
  app.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error, not ignored
  app.add_option("--state-dir", cfg.state_dir, "Where persistent policy is kept")->capture_default_str();
  app.add_option("--socket", cfg.socket_path, "Unix socket to serve")->capture_default_str();
  app.add_option("--admin-group", cfg.admin_group, "Group whose members may change any policy")->capture_default_str();
  app.add_option("--writer-group", cfg.writer_group, "Group whose members may add objects and delete their own")
      ->capture_default_str();
  app.add_option("--read-access", read_access, "Who may read policy: all | writers")
      ->check(CLI::IsMember({"all", "writers"}))->capture_default_str();
  app.add_option("--netevents-access", netevents_access,
                 "Whose net events a reader or writer sees: own (those of its uid; admins see all) | all")
      ->check(CLI::IsMember({"own", "all"}))->capture_default_str();
  app.add_option("--txn-wait-ms", cfg.default_txn_wait_ms, "Default transaction wait timeout")
      ->check(CLI::Range(1, 3'600'000))->capture_default_str();
  app.add_option("--txn-idle-timeout-ms", cfg.txn_idle_ms,
                 "A write transaction with no request for this long is aborted (0: never)")
      ->check(CLI::Range(0, 3'600'000))->capture_default_str();
  // What one user who is not an admin may take (docs/lfpd.md, "Limits").
  app.add_option("--max-sessions-per-uid", cfg.max_sessions_per_uid, "Sessions one non-admin uid may have open")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--max-sessions", cfg.max_sessions, "Sessions of non-admin users in all")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--frame-timeout-ms", cfg.frame_timeout_ms, "A non-admin's request must arrive whole within this")
      ->check(CLI::Range(100, 3'600'000))->capture_default_str();
  app.add_option("--idle-timeout-ms", cfg.idle_timeout_ms,
                 "A non-admin session with no transaction or subscription is closed after this long idle")
      ->check(CLI::Range(100, 86'400'000))->capture_default_str();
  app.add_option("--log-level", level, "trace | debug | info | warn | error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str();
  app.add_option("--cgroup", cgroup,
                 "cgroup v2 whose sockets the ALE layers govern (default: the cgroup2 root, the whole machine); "
                 "none: no ALE hooks");
  app.add_flag("--packet-layers,!--no-packet-layers", kopts.packet_layers,
               "enforce the packet layers (IPPACKET, IPFORWARD, TRANSPORT, ICMP_ERROR, DATAGRAM_DATA, MAC_FRAME) on "
               "lfpd's network namespace: BPF programs at its netfilter hooks and on its interfaces, linked while "
               "their layers hold filters (docs/packet-layers.md)")
      ->default_str("true");  // (a flag's default is not captured)
  app.add_flag("--no-packet-cache", kopts.no_packet_cache,
               "the packet layers classify every packet instead of caching each decision by its values "
               "(lfp-packet-bench measures a flow's first packet so)")
      ->default_str("false");
  app.add_option("--bpf-pin", kopts.pin_dir, "bpffs directory where hooks and maps outlive lfpd")
      ->capture_default_str();
  app.add_option("--kernel-entries", kopts.bank_entries,
                 "the most entries the kernel's policy image may take (64 bytes each; the image is sized to the "
                 "policy, twice while a new one is filled); a policy that needs more is refused; 0: " +
                     std::to_string(lfp::datapath::kMaxBankEntries))
      ->check(CLI::Range(uint32_t{0}, lfp::datapath::kMaxBankEntries))->capture_default_str();
  int queue = -1;
  app.add_option("--queue", queue,
                 "NFQUEUE number for decisions the kernel cannot make (installs mangle OUTPUT rules in lfpd's "
                 "network namespace); without it they follow --fail at once")
      ->check(CLI::Range(0, 65535));
  app.add_option("--fail", fail, "new flows needing user space while it cannot decide: open | closed")
      ->check(CLI::IsMember({"open", "closed"}))->capture_default_str();
  app.add_flag("--log-allows", kopts.log_allows,
               "collect permitted flows as net events too (the CLASSIFY_ALLOW keyword; lfp set options --allows changes it)")
      ->default_str("false");
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
  app.add_option("--callout-host", callout_host, "the lfp-callout-host program (default: beside lfpd, in ../callouts or ../lib/lfp)");
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
               "it (lfp-packet-bench measures the user-space path so)")
      ->default_str("false");
  bool boot = false;
  app.add_flag("--boot", boot,
               "load the stored BOOTTIME filters into the kernel (hooks on --cgroup, pinned under --bpf-pin) "
               "and exit: they are enforced from then until lfpd takes over")
      ->configurable(false);
  app.add_flag("--detach", detach, "detach the hooks pinned under --bpf-pin, remove the pins, and exit")
      ->configurable(false);
  app.add_flag("--print-config", show_config,
               "print the configuration the file and the command line make, as a configuration file, and exit")
      ->configurable(false);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // CLI11 names a key the file should not have "INI was not able to parse KEY" (a section: "KEY.++").
    std::string msg = e.what();
    if (const std::string unknown = "INI was not able to parse "; msg.rfind(unknown, 0) == 0) {
      std::string key = msg.substr(unknown.size());
      const bool section = key.size() > 3 && key.ends_with(".++");
      if (section) key.resize(key.size() - 3);
      msg = (section ? "unknown section [" + key + "]" : "unknown key '" + key + "'") +
            " (the keys are lfpd's long options without --: lfpd --print-config lists them)";
    }
    if (dynamic_cast<const CLI::ConfigError*>(&e)) msg = config_read(*config) + ": " + msg;
    if (dynamic_cast<const CLI::FileError*>(&e)) msg = "--config " + msg;  // ("PATH was not readable (missing?)")
    std::cerr << "lfpd: " << msg << '\n';
    return 1;
  }
  if (show_config) {
    print_config(app, config_read(*config));
    return 0;
  }
  kopts.fail_closed = fail == "closed";
  retention.max_age_ns = static_cast<int64_t>(max_age_days * 86400e9);
  cfg.readers_all = read_access == "all";

  // What lfpd creates (its databases, the state dir) is its own: 0600 and 0700 (docs/security.md).
  ::umask(077);
  auto logger = spdlog::stderr_color_mt("lfpd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  try {
    const std::string config_path = config_read(*config);
    if (!config_path.empty()) spdlog::info("configuration: {}", config_path);
    if (detach) {
      lfp::datapath::KernelPath::remove_pins(kopts.pin_dir);
      spdlog::info("detached and removed the pins under {}", kopts.pin_dir);
      return 0;
    }
    if (cgroup.empty()) {  // the default: the whole machine
      kopts.cgroup = lfp::sys::cgroup2_mount();
      if (kopts.cgroup.empty())
        throw std::runtime_error("no cgroup v2 is mounted (mount -t cgroup2 none /sys/fs/cgroup), or give --cgroup PATH "
                                 "or --cgroup none");
    } else if (cgroup != "none") {
      kopts.cgroup = cgroup;
    }
    // The pins need a bpffs: mounted at /sys/fs/bpf when the pins go there and none is (as bpftool
    // does), else a one-line reason.
    auto prepare_pins = [&] {
      if (!kopts.pin_dir.empty()) lfp::sys::ensure_bpffs(kopts.pin_dir);
    };
    if (boot) {
      if (kopts.cgroup.empty()) throw std::runtime_error("--boot needs a cgroup (not --cgroup none)");
      prepare_pins();
      lfp::daemon::Server store_only(cfg);
      lfp::datapath::register_redirect_callouts(store_only.engine());  // (before the store: filters use them)
      store_only.engine().set_interfaces(lfp::daemon::interface_table());  // (filters naming interfaces)
      store_only.load();
      lfp::datapath::KernelPath kernel(kopts);
      const auto& p = kernel.install(store_only.engine(), lfp::BOOTTIME);
      spdlog::info("boot: {} BOOTTIME filters enforced on {} (pinned under {}) until lfpd takes over", p.filters,
                   kopts.cgroup, kopts.pin_dir);
      return 0;
    }
    lfp::daemon::Server server(cfg);
    lfp::store::ensure_private_dir(cfg.state_dir, 0700);  // (refused when another user could write it)
    // Interfaces named in filters resolve in this network namespace: before the store loads (its
    // filters take their indexes as they are added), and again whenever a link comes, goes or is
    // renamed, when the kernel takes the whole policy again (link changes are rare).
    lfp::daemon::InterfaceWatch interfaces;
    server.engine().set_interfaces(interfaces.read());
    server.watch_fd(interfaces.fd(), [&] {
      const auto start = std::chrono::steady_clock::now();
      size_t changed = 0;
      try {
        changed = server.engine().set_interfaces(interfaces.read()).size();
      } catch (const std::exception& e) {  // (the next link change reads the table again)
        spdlog::error("{}: filters naming interfaces keep the indexes they had", e.what());
      }
      if (changed == 0) return;
      server.notify_policy_changed();
      spdlog::info("interfaces: {} filters name one that came, went or was renamed; enforced again in {} us", changed,
                   std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
    });
    // Callout plugins register before the store loads, so that the data path knows them at once.
    std::vector<std::unique_ptr<lfp::callouts::CalloutHost>> hosts;
    std::unique_ptr<lfp::datapath::PendingDecisions> pending;  // (with --queue)
    if (!plugins.empty() && callout_host.empty()) {
      const auto dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
      for (const auto& c : {dir / "lfp-callout-host", dir.parent_path() / "callouts" / "lfp-callout-host",
                            dir.parent_path() / "lib" / "lfp" / "lfp-callout-host"})  // (as installed: /usr/lib/lfp)
        if (std::filesystem::exists(c)) callout_host = c.string();
      if (callout_host.empty()) throw std::runtime_error("lfp-callout-host not found beside lfpd, in ../callouts or ../lib/lfp; give --callout-host");
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
    lfp::daemon::NetEventService events(server, cfg.state_dir + "/netevents.db", retention, netevents_access == "all");
    std::unique_ptr<DataPath> dp;
    std::unique_ptr<lfp::datapath::UserPath> userpath;
    if (queue >= 0 && kopts.cgroup.empty()) throw std::runtime_error("--queue needs a cgroup (the hooks that fill it), not --cgroup none");
    if (!kopts.cgroup.empty() || kopts.packet_layers) {
      prepare_pins();
      dp = std::make_unique<DataPath>(kopts, events);
      lfp::datapath::register_redirect_callouts(server.engine());
      lfp::datapath::register_prompt_callouts(server.engine());
      // A proxy asks where a redirected connection was going, by its peer address.
      server.add_op("redirect_record", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext&, const nlohmann::json& req) {
        const auto peer = lfp::protocol::string_member(req, "peer");
        if (!peer) lfp::protocol::missing_member("peer", "the redirected connection's peer, \"ADDR:PORT\"");
        auto r = lfp::datapath::redirect_record(dp->kernel, *peer);
        if (!r) throw lfp::Error(lfp::ErrorCode::NOT_FOUND, "no redirected connection from " + lfp::protocol::log_safe(*peer, 64));
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
          if (req.contains("on") && !req["on"].is_null()) {
            const bool on = lfp::protocol::bool_member(req, "on", false);
            if (on) dp->dropped.clear();
            dp->kernel.set_keep_dropped(on);
          }
          dp->drain();
          nlohmann::json packets = nlohmann::json::array();
          for (const auto& p : dp->dropped) packets.push_back(p);
          return nlohmann::json{{"on", dp->kernel.keep_dropped()}, {"kept_at_most", DataPath::kDroppedKept},
                                {"packets", packets}};
        });
      }
      server.set_enforcer([&](const lfp::FilterEngine& e, const lfp::FilterChanges* c) { dp->install(e, c); });
      if (kopts.log_allows && !events.settings().has("CLASSIFY_ALLOW")) {
        auto s = events.settings();
        s.keywords.push_back("CLASSIFY_ALLOW");
        events.set_settings(s);
      }
      events.on_settings([&](const lfp::netevents::Settings& s) { dp->kernel.set_log_allows(s.has("CLASSIFY_ALLOW")); });
      if (queue >= 0) {
        userpath = std::make_unique<lfp::datapath::UserPath>(dp->kernel, static_cast<uint16_t>(queue), fail == "open");
        spdlog::info("user-space path: NFQUEUE {} (fail {} while lfpd is down or the queue is full)", queue, fail);
        pending = std::make_unique<lfp::datapath::PendingDecisions>(
            *userpath, server.engine(), dp->kernel, int64_t{pend_timeout_ms} * 1'000'000, pend_default == "permit");
        pending->on_event = [&](const nlohmann::json& ev) {
          log_net_event(ev, " (user space)");
          events.ingest(ev);
        };
        // lfp prompt: the pending connects (a user sees their own, an admin all), and their answers.
        server.add_op("pending_list", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext& ctx, const nlohmann::json& req) {
          return lfp::protocol::page_of(
              ctx.role == lfp::daemon::Role::ADMIN ? pending->list() : pending->list(ctx.cred.uid), req, "pending");
        });
        server.add_op("pending_complete", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext& ctx, const nlohmann::json& req) {
          // ("id" names the request itself in the protocol.)
          const auto pending_id = lfp::protocol::maybe_uint_member(req, "pending", UINT64_MAX);
          if (!pending_id) lfp::protocol::missing_member("pending", "a pending decision's id (pending_list)");
          const std::string action = lfp::protocol::string_member(req, "action").value_or("");
          if (action != "PERMIT" && action != "BLOCK")
            throw lfp::Error(lfp::ErrorCode::INVALID_PARAMETER, "/action: must be PERMIT or BLOCK, not \"" +
                                                                    lfp::protocol::log_safe(action, 64) + "\"");
          const uint64_t id = *pending_id;
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
    auto inspect_stats = [&] {
      const auto& st = inspector->stats();
      return nlohmann::json{{"packets", st.packets}, {"datagrams", st.datagrams}, {"classifies", st.classifies},
                            {"bytes_inspected", st.bytes_inspected}, {"flows", st.flows},
                            {"flows_allowed", st.flows_allowed}, {"flows_blocked", st.flows_blocked},
                            {"out_of_order", st.out_of_order}, {"modified", st.modified}, {"injected", st.injected}};
    };
    int tick_fd = -1;
    if (inspect_queue >= 0) {
      if (queue == inspect_queue) throw std::runtime_error("--inspect-queue and --queue must be different queues");
      inspector = std::make_unique<lfp::datapath::DataInspector>(server.engine(), static_cast<uint16_t>(inspect_queue),
                                                                 fail == "open");
      inspector->on_event = [&](nlohmann::json ev) {
        log_net_event(ev, " (data layer)");
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
      server.add_op("flows", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext&, const nlohmann::json& req) {
        nlohmann::json page = lfp::protocol::page_of(inspector->flows_json(), req, "flows");
        page["stats"] = inspect_stats();
        return page;
      });
      spdlog::info("data layers: NFQUEUE {} for STREAM and DATAGRAM_DATA (rules while the policy has filters there)",
                   inspect_queue);
    }
    // The packet layers' user-space path (datapath/packet_queue.hpp).
    std::unique_ptr<lfp::datapath::PacketQueue> packet_path;
    auto packet_queue_stats = [&] {
      const auto& st = packet_path->stats();
      return nlohmann::json{{"queued_hooks", packet_path->queued_hooks()}, {"packets", st.packets},
                            {"dropped", st.dropped}, {"classifies", st.classifies}, {"reads", st.reads},
                            {"verdict_messages", st.verdict_messages}, {"unparsed", st.unparsed},
                            {"overflowed", packet_path->overflowed()}};
    };
    std::function<void()> packet_overflow;  // (the queues' callbacks share it)
    if (packet_queue >= 0) {
      if (!kopts.packet_layers) throw std::runtime_error("--packet-queue needs the packet layers (not --no-packet-layers)");
      for (int q : {queue, inspect_queue})
        if (q >= packet_queue && q < packet_queue + packet_queues)
          throw std::runtime_error("--packet-queue's queues must differ from --queue and --inspect-queue");
      packet_path = std::make_unique<lfp::datapath::PacketQueue>(
          server.engine(), dp->kernel, static_cast<uint16_t>(packet_queue), static_cast<uint16_t>(packet_queues),
          fail == "open", packet_userspace);
      packet_path->set_log_allows(kopts.log_allows);
      events.on_settings([&](const lfp::netevents::Settings& s) { packet_path->set_log_allows(s.has("CLASSIFY_ALLOW")); });
      packet_path->on_event = [&](nlohmann::json ev) {
        log_net_event(ev, " (packet queue)");
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
      server.add_op("packet_queue", lfp::daemon::Role::READER,
                    [&](const lfp::daemon::OpContext&, const nlohmann::json&) { return packet_queue_stats(); });
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
    // Which layers nothing enforces in this configuration: lfp status, lfp show state, and the
    // warnings of add and apply.
    server.set_layer_check([&](lfp::LayerId layer) -> std::optional<std::string> {
      const auto kl = lfp::datapath::kernel_layer(layer);
      const bool data_layer = layer == lfp::LayerId::STREAM_V4 || layer == lfp::LayerId::STREAM_V6 ||
                              layer == lfp::LayerId::DATAGRAM_DATA_V4 || layer == lfp::LayerId::DATAGRAM_DATA_V6;
      if (data_layer && inspector) return std::nullopt;  // the data layers in user space decide them all
      if (!kl) return "lfpd decides this layer in user space only, with --inspect-queue";
      const bool ale = *kl < LFP_KL_FIRST_PACKET;
      if (ale && kopts.cgroup.empty()) return "no cgroup is governed (--cgroup none)";
      if (!ale && !kopts.packet_layers)
        return std::string("the packet layers are off (--no-packet-layers)") + (data_layer ? " and there is no --inspect-queue" : "");
      // Filters the kernel hands to user space (a callout, a condition it cannot evaluate) with no
      // queue to take them follow --fail (as the policy the kernel holds now says).
      const uint32_t deferred = dp ? dp->kernel.installed().layer_userspace[*kl] : 0;
      const bool mac = *kl == LFP_KL_MAC_IN || *kl == LFP_KL_MAC_OUT;
      if (deferred > 0 && (ale ? !userpath : (mac || !packet_path)))
        return std::to_string(deferred) + " of its filters need user space and " +
               (ale ? std::string("there is no --queue") : mac ? std::string("the MAC frame layers have no queue")
                                                               : std::string("there is no --packet-queue")) +
               ": they follow --fail " + fail;
      return std::nullopt;
    });
    // A part of enforcement that goes down (or comes back) is a mark in the net event log's coverage.
    server.on_degraded([&](const std::string& part, const std::optional<std::string>& why) { events.degraded(part, why); });
    // lfp status: what this lfpd governs and how it is doing.
    const std::string netns = [] {
      struct stat st {};
      return ::stat("/proc/self/ns/net", &st) == 0 ? "net:[" + std::to_string(st.st_ino) + "]" : std::string("unknown");
    }();
    server.add_op("status", lfp::daemon::Role::READER, [&](const lfp::daemon::OpContext&, const nlohmann::json&) {
      using nlohmann::json;
      const auto& engine = server.engine();
      std::map<std::string, size_t> per_layer;
      for (const lfp::Filter* f : engine.filters()) ++per_layer[std::string(lfp::layer_info(f->layer).name)];
      json layers = json::object();
      const auto unenforced = server.unenforced_layers();
      for (const auto& [name, n] : per_layer) {
        json l = {{"filters", n}};
        if (auto it = unenforced.find(name); it != unenforced.end()) l["not_enforced"] = it->second;
        layers[name] = l;
      }
      json kernel = nullptr;
      if (dp) {
        const auto& p = dp->kernel.installed();
        kernel = {{"filters", p.filters}, {"userspace_filters", p.userspace_filters},
                  {"entries", p.bank.size()}, {"entries_max", kopts.bank_entries ? kopts.bank_entries : lfp::datapath::kMaxBankEntries},
                  {"kernel_bytes", dp->kernel.bank_bytes()},
                  {"hooks", dp->kernel.attached_hooks()}, {"events_lost", dp->kernel.events_lost()},
                  {"bpf_pin", kopts.pin_dir}};
        // The last change: in place (a few entries written) or compiled whole, and why.
        const auto& how = dp->kernel.last_install();
        kernel["last_install"] = how.in_place ? json{{"in_place", true}, {"entries_written", how.entries_written}}
                                              : json{{"in_place", false}, {"why_whole", how.why_whole}};
      }
      json queues = json::object();
      if (userpath) queues["user_space_path"] = {{"queue", queue}, {"overflowed", userpath->overflowed()}};
      if (packet_path) queues["packet_queue"] = packet_queue_stats();
      if (inspector) queues["inspect"] = inspect_stats();
      const auto uptime = std::chrono::steady_clock::now() - server.started_at();
      return json{{"version", LFP_VERSION},
                  {"pid", ::getpid()},
                  {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(uptime).count()},
                  {"config", config_path.empty() ? json() : json(config_path)},
                  {"cgroup", kopts.cgroup.empty() ? json() : json(kopts.cgroup)},
                  {"netns", netns},
                  {"packet_layers", kopts.packet_layers},
                  {"fail", fail},
                  {"filters", engine.filter_count()},
                  {"layers", layers},
                  {"kernel", kernel},
                  {"degraded", server.degraded()},
                  {"queues", queues},
                  {"netevents", events.coverage_json()}};
    });
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
