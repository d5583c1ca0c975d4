// SPDX-License-Identifier: MIT
#pragma once
// Starts a real lfpd on a temporary state dir and socket for integration tests.
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lfp/client/client.hpp"
#include "lfp/sys/spawn.hpp"
#include "lfpd_ready.hpp"

namespace lfp::test {

// The lfpd binary the Daemon starts: the one built with the tests, unless a caller (lfpd-bench's
// --lfpd, to compare two builds in one run) sets another.
inline std::string& lfpd_path() {
  static std::string path = LFPD_PATH;
  return path;
}

// The lfp command line built beside that lfpd.
inline std::string lfp_cli_path() {
  const std::string d = LFPD_PATH;
  return d.substr(0, d.rfind("/daemon/")) + "/cli/lfp";
}

// lfpd makes uid 0 an admin: a test run as another user gets the role through its own group (lfpd's
// --admin-group, the Server's admin_group), this one; nullopt as root.
inline std::optional<std::string> own_admin_group() {
  if (::geteuid() == 0) return std::nullopt;
  const group* g = ::getgrgid(::getegid());
  return g ? std::optional<std::string>(g->gr_name) : std::nullopt;
}

// The first statement of a test that needs root for more than lfpd's admin role (switching users,
// chown, mounts): skips it as another user, saying why.
#define LFP_REQUIRE_ROOT(why)                                                  \
  do {                                                                         \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: " << (why);             \
  } while (0)

struct DaemonOptions {
  // lfpd's own defaults for what the extra args do not name (the packet layers): only inside a
  // sandbox's network namespace, with its child --cgroup.
  bool lfpd_defaults = false;
  // A mount namespace of its own (private propagation) with nothing at /sys/fs/bpf: the bpffs lfpd
  // mounts there stays in it, and goes with it.
  bool private_mounts = false;
  // lfpd's standard error goes to dir()/lfpd.log, which a failure to start quotes.
  bool log_file = false;
};

class Daemon {
 public:
  // netns: a network namespace file (/run/netns/NAME) lfpd runs in; empty: the caller's.
  explicit Daemon(std::vector<std::string> extra_args = {}, std::string netns = {}, DaemonOptions opts = {})
      : extra_(std::move(extra_args)), netns_(std::move(netns)), opts_(opts) {
    if (opts_.lfpd_defaults && (netns_.empty() || !named("--cgroup")))
      throw std::invalid_argument("lfpd's defaults in a test need a sandbox network namespace and a child --cgroup");
    // A data path pins under --bpf-pin, whose default (/sys/fs/bpf/lfp) is the host's own.
    const auto cgroup = std::find(extra_.begin(), extra_.end(), "--cgroup");
    const bool data_path = (cgroup != extra_.end() && cgroup + 1 != extra_.end() && cgroup[1] != "none") ||
                           named("--packet-layers");
    if (data_path && !named("--bpf-pin") && !opts_.private_mounts)
      throw std::invalid_argument("a test's lfpd with a data path needs --bpf-pin on a sandbox's bpffs "
                                  "(Sandbox::mount_bpffs): the default is the host's /sys/fs/bpf");
    char tmpl[] = "/tmp/lfpd-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);  // other users (nobody) must reach the socket
    socket_ = dir_ + "/lfpd.sock";
    start();
  }
  ~Daemon() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start() {
    std::vector<std::string> args = {lfpd_path(), "--state-dir", dir_ + "/state", "--socket", socket_, "--log-level", "warn"};
    // lfpd's defaults govern the whole machine (the cgroup2 root, packet layers in its namespace) and
    // read /etc/lfp/lfpd.conf: a test gets only what it asks for.
    if (!named("--cgroup")) args.insert(args.end(), {"--cgroup", "none"});
    if (!named("--packet-layers") && !opts_.lfpd_defaults) args.push_back("--no-packet-layers");
    if (!named("--config")) args.insert(args.end(), {"--config", "none"});
    if (const auto group = own_admin_group(); group && !named("--admin-group")) args.insert(args.end(), {"--admin-group", *group});
    args.insert(args.end(), extra_.begin(), extra_.end());
    sys::SpawnOptions spawn{.netns = netns_};
    if (opts_.private_mounts) spawn.hide_mounts = {"/sys/fs/bpf"};  // (the host's bpffs, if any, is not lfpd's to use)
    int log = -1;
    if (opts_.log_file) {
      log = ::open((dir_ + "/lfpd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log < 0) throw std::runtime_error("cannot open " + dir_ + "/lfpd.log");
      spawn.stderr_fd = log;
    }
    try {
      pid_ = sys::spawn(args, spawn);
    } catch (...) {
      if (log >= 0) ::close(log);
      throw;
    }
    if (log >= 0) ::close(log);
    wait_until_serving(socket_, pid_, 20, [&] { return log_text(); });
  }
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void restart() {
    stop();
    start();
  }
  std::unique_ptr<client::Client> connect(client::SessionOptions o = {}) {
    return std::make_unique<client::Client>(socket_, o);
  }
  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }

 private:
  std::string log_text() const {
    if (!opts_.log_file) return "";
    std::ifstream in(dir_ + "/lfpd.log");
    return ": " + std::string(std::istreambuf_iterator<char>(in), {});
  }
  bool named(const std::string& flag) const {  // (--flag VALUE or --flag=VALUE)
    return std::any_of(extra_.begin(), extra_.end(), [&](const std::string& a) { return a == flag || a.rfind(flag + "=", 0) == 0; });
  }

  std::vector<std::string> extra_;
  std::string netns_;
  DaemonOptions opts_;
  std::string dir_, socket_;
  pid_t pid_ = -1;
};

}  // namespace lfp::test
