// SPDX-License-Identifier: MIT
#include "lfpd_options.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "metrics.hpp"

namespace lfp::daemon {

namespace {

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

// What the options say that LfpdOptions holds in another form.
struct Given {
  std::string read_access = "all", netevents_access = "own";
  double max_age_days = 7;
  bool show_config = false;
};

// Every option is a key of the configuration file, in the order --print-config lists them.
void add_server_options(CLI::App& app, LfpdOptions& o, Given& given) {
  app.add_option("--state-dir", o.server.state_dir, "Where persistent policy is kept")->capture_default_str();
  app.add_option("--socket", o.server.socket_path, "Unix socket to serve")->capture_default_str();
  app.add_option("--admin-group", o.server.admin_group, "Group whose members may change any policy")->capture_default_str();
  app.add_option("--writer-group", o.server.writer_group, "Group whose members may add objects and delete their own")
      ->capture_default_str();
  app.add_option("--read-access", given.read_access, "Who may read policy: all | writers")
      ->check(CLI::IsMember({"all", "writers"}))->capture_default_str();
  app.add_option("--netevents-access", given.netevents_access,
                 "Whose net events a reader or writer sees: own (those of its uid; admins see all) | all")
      ->check(CLI::IsMember({"own", "all"}))->capture_default_str();
  app.add_option("--txn-wait-ms", o.server.default_txn_wait_ms, "Default transaction wait timeout")
      ->check(CLI::Range(1, 3'600'000))->capture_default_str();
  app.add_option("--txn-idle-timeout-ms", o.server.txn_idle_ms,
                 "A write transaction with no request for this long is aborted (0: never)")
      ->check(CLI::Range(0, 3'600'000))->capture_default_str();
  // What one user who is not an admin may take (docs/lfpd.md, "Limits").
  app.add_option("--max-sessions-per-uid", o.server.max_sessions_per_uid, "Sessions one non-admin uid may have open")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--max-sessions", o.server.max_sessions, "Sessions of non-admin users in all")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--frame-timeout-ms", o.server.frame_timeout_ms, "A non-admin's request must arrive whole within this")
      ->check(CLI::Range(100, 3'600'000))->capture_default_str();
  app.add_option("--idle-timeout-ms", o.server.idle_timeout_ms,
                 "A non-admin session with no transaction or subscription is closed after this long idle")
      ->check(CLI::Range(100, 86'400'000))->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace | debug | info | warn | error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str();
}

void add_kernel_options(CLI::App& app, LfpdOptions& o, Given& given) {
  app.add_option("--cgroup", o.cgroup,
                 "cgroup v2 whose sockets the ALE layers govern (default: the cgroup2 root, the whole machine); "
                 "none: no ALE hooks");
  app.add_flag("--packet-layers,!--no-packet-layers", o.datapath.kernel.packet_layers,
               "enforce the packet layers (IPPACKET, IPFORWARD, TRANSPORT, ICMP_ERROR, DATAGRAM_DATA, MAC_FRAME) on "
               "lfpd's network namespace: BPF programs at its netfilter hooks and on its interfaces, linked while "
               "their layers hold filters (docs/packet-layers.md)")
      ->default_str("true");  // (a flag's default is not captured)
  app.add_flag("--no-packet-cache", o.datapath.kernel.no_packet_cache,
               "the packet layers classify every packet instead of caching each decision by its values "
               "(lfp-packet-bench measures a flow's first packet so)")
      ->default_str("false");
  app.add_option("--bpf-pin", o.datapath.kernel.pin_dir, "bpffs directory where hooks and maps outlive lfpd")
      ->capture_default_str();
  app.add_option("--kernel-entries", o.datapath.kernel.bank_entries,
                 "the most entries the kernel's policy image may take (64 bytes each; the image is sized to the "
                 "policy, twice while a new one is filled); a policy that needs more is refused; 0: " +
                     std::to_string(lfp::datapath::kMaxBankEntries))
      ->check(CLI::Range(uint32_t{0}, lfp::datapath::kMaxBankEntries))->capture_default_str();
  app.add_option("--queue", o.datapath.queue,
                 "NFQUEUE number for decisions the kernel cannot make (installs mangle OUTPUT rules in lfpd's "
                 "network namespace); without it they follow --fail at once")
      ->check(CLI::Range(0, 65535));
  app.add_option("--fail", o.datapath.fail, "new flows needing user space while it cannot decide: open | closed")
      ->check(CLI::IsMember({"open", "closed"}))->capture_default_str();
  app.add_flag("--log-allows", o.datapath.kernel.log_allows,
               "collect permitted flows as net events too (the CLASSIFY_ALLOW keyword; lfp set options --allows changes it)")
      ->default_str("false");
  app.add_option("--netevents-max", o.retention.max_events, "net events kept (the oldest go first)")
      ->check(CLI::Range(uint64_t{1000}, uint64_t{1} << 40))->capture_default_str();
  app.add_option("--netevents-max-age-days", given.max_age_days, "net events older than this go")
      ->check(CLI::Range(0.001, 3650.0))->capture_default_str();
}

void add_user_space_options(CLI::App& app, LfpdOptions& o) {
  app.add_option("--callout", o.callouts.plugins, "a callout plugin (.so) to load, each in a host process of its own; repeatable");
  app.add_option("--callout-timeout-ms", o.callouts.timeout_ms,
                 "how long a classify waits for a plugin; then the plugin is stopped and its callouts act as unregistered")
      ->check(CLI::Range(1, 60000))->capture_default_str();
  app.add_option("--callout-host", o.callouts.host, "the lfp-callout-host program (default: beside lfpd, in ../callouts or ../lib/lfp)");
  app.add_option("--pend-timeout-ms", o.datapath.pend_timeout_ms,
                 "how long a pended connect waits for its callout (or a person, lfp prompt) to complete it")
      ->check(CLI::Range(1, 3600000))->capture_default_str();
  app.add_option("--pend-default", o.datapath.pend_default, "what a pended connect gets at the timeout: block | permit")
      ->check(CLI::IsMember({"block", "permit"}))->capture_default_str();
  app.add_option("--inspect-queue", o.datapath.inspect_queue,
                 "NFQUEUE number for the data layers STREAM and DATAGRAM_DATA (callouts see stream bytes and "
                 "payloads; installs filter INPUT/OUTPUT rules in lfpd's network namespace while the policy has "
                 "filters there)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--stream-hold-ms", o.datapath.stream_hold_ms,
                 "how long stream bytes wait for more that a callout asked for (NEED_MORE_DATA); then it decides "
                 "on what is there")
      ->check(CLI::Range(1, 600000))->capture_default_str();
  app.add_option("--packet-queue", o.datapath.packet_queue,
                 "first NFQUEUE number for the packet layers' user-space path: a netfilter hook whose layers hold a "
                 "filter the kernel cannot decide (a callout) is decided by lfpd (docs/packet-layers.md); without it "
                 "such filters follow --fail")
      ->check(CLI::Range(0, 65535));
  app.add_option("--packet-queues", o.datapath.packet_queues, "queues for the packet layers, from --packet-queue on (one a CPU)")
      ->check(CLI::Range(1, 64))->capture_default_str();
  app.add_flag("--packet-userspace", o.datapath.packet_userspace,
               "with --packet-queue: decide every packet layer that holds a filter in lfpd, not only those that need "
               "it (lfp-packet-bench measures the user-space path so)")
      ->default_str("false");
}

// What lfpd tells the host's monitoring (docs/metrics.md).
void add_export_options(CLI::App& app, LfpdOptions& o) {
  app.add_option("--metrics-listen", o.metrics_listen,
                 "serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9464; [::1]:9464); off by default")
      ->check([](const std::string& v) {
        try {
          parse_listen_address(v);
          return std::string();
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
      });
  app.add_flag("--events-journal", o.events.journal,
               "send every net event to journald too, with structured fields (LFP_FILTER_KEY=, LFP_LAYER=, ...)")
      ->default_str("false");
  app.add_option("--events-file", o.events.file,
                 "append every net event to this file too, one JSON object a line (reopened when rotated)");
}

// What lfpd does instead of serving (command line only).
void add_action_flags(CLI::App& app, LfpdOptions& o, Given& given) {
  app.add_flag("--boot", o.boot,
               "load the stored BOOTTIME filters into the kernel (hooks on --cgroup, pinned under --bpf-pin) "
               "and exit: they are enforced from then until lfpd takes over")
      ->configurable(false);
  app.add_flag("--detach", o.detach, "detach the hooks pinned under --bpf-pin, remove the pins, and exit")
      ->configurable(false);
  app.add_flag("--print-config", given.show_config,
               "print the configuration the file and the command line make, as a configuration file, and exit")
      ->configurable(false);
}

}  // namespace

std::optional<int> parse_options(int argc, char** argv, LfpdOptions& o) {
  Given given;
  CLI::App app{"lfpd - the LFP base filtering engine"};
  app.set_version_flag("--version", "lfpd " LFP_VERSION);
  CLI::Option* config = app.set_config("--config", kDefaultConfig,
                                       "TOML file of options (keys: the long options without --; the command line "
                                       "overrides it); read when it exists; none: no file")
                             ->transform([](std::string path) { return path == "none" ? std::string() : path; });
  app.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error, not ignored
  add_server_options(app, o, given);
  add_kernel_options(app, o, given);
  add_user_space_options(app, o);
  add_export_options(app, o);
  add_action_flags(app, o, given);
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
  if (given.show_config) {
    print_config(app, config_read(*config));
    return 0;
  }
  o.datapath.kernel.fail_closed = o.datapath.fail == "closed";
  o.retention.max_age_ns = static_cast<int64_t>(given.max_age_days * 86400e9);
  o.server.readers_all = given.read_access == "all";
  o.netevents_all = given.netevents_access == "all";
  o.config_path = config_read(*config);
  return std::nullopt;
}

}  // namespace lfp::daemon
