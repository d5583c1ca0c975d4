// lfpd: the base filtering engine daemon. Runs in the foreground (systemd Type=notify).
#include <CLI/CLI.hpp>
#include <systemd/sd-daemon.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "server.hpp"

int main(int argc, char** argv) {
  lfp::daemon::Config cfg;
  std::string level = "info", read_access = "all";
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
  CLI11_PARSE(app, argc, argv);
  cfg.readers_all = read_access == "all";

  auto logger = spdlog::stderr_color_mt("lfpd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  try {
    lfp::daemon::Server server(cfg);
    server.start();
    sd_notify(0, "READY=1");
    server.run();
    sd_notify(0, "STOPPING=1");
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
