#pragma once
// Starts a real lfpd on a temporary state dir and socket for integration tests.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lfp/client/client.hpp"

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

class Daemon {
 public:
  // netns: a network namespace file (/run/netns/NAME) lfpd runs in; empty: the caller's.
  explicit Daemon(std::vector<std::string> extra_args = {}, std::string netns = {})
      : extra_(std::move(extra_args)), netns_(std::move(netns)) {
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
    pid_ = fork();
    if (pid_ == 0) {
      if (!netns_.empty()) {
        int fd = ::open(netns_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) _exit(126);
      }
      const std::string exe = lfpd_path();
      std::vector<std::string> args = {exe, "--state-dir", dir_ + "/state", "--socket", socket_,
                                       "--log-level", "warn"};
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(exe.c_str(), argv.data());
      _exit(127);
    }
    // Ready when a session can be opened.
    for (int i = 0; i < 500; ++i) {
      try {
        client::Client probe(socket_);
        return;
      } catch (const client::ClientError&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("lfpd exited at start");
      }
    }
    throw std::runtime_error("lfpd did not start");
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
  std::vector<std::string> extra_;
  std::string netns_;
  std::string dir_, socket_;
  pid_t pid_ = -1;
};

}  // namespace lfp::test
