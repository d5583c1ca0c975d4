// SPDX-License-Identifier: MIT
#pragma once
// lfpd's Server in the test process, on a real socket and a real store in a temporary directory, so a
// test can give it the data path's hooks (an enforcer, a layer check) and drive its loop.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "server.hpp"

namespace lfp::test {

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lfp-server-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    std::filesystem::permissions(path_, std::filesystem::perms(0755));  // other users reach the socket
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline daemon::Config server_config(const std::string& dir) {
  daemon::Config cfg;
  cfg.state_dir = dir + "/state";
  cfg.socket_path = dir + "/lfpd.sock";
  cfg.default_txn_wait_ms = 2000;
  return cfg;
}

// A Server, started (store loaded, socket bound). `setup` runs before start (set_enforcer, ...).
// With `background`, a thread serves it until the object goes; else the test calls serve_once.
class InProcessServer {
 public:
  InProcessServer(const daemon::Config& cfg, const std::function<void(daemon::Server&)>& setup, bool background = true)
      : server_(cfg) {
    spdlog::set_level(spdlog::level::warn);  // (as the Daemon of daemon_support.hpp runs lfpd)
    setup(server_);
    // The server's loop polls this: wake() runs `on_wake` there (as lfpd's watch callbacks run).
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    server_.watch_fd(wake_fd_, [this] {
      uint64_t n;
      while (::read(wake_fd_, &n, sizeof n) == sizeof n) {
      }
      if (on_wake_) on_wake_();
      woken_.fetch_add(1);
    });
    // start() blocks SIGINT and SIGTERM in the calling thread (lfpd reads them from a signalfd):
    // a thread of its own, so that the test process still dies of them.
    std::exception_ptr failed;
    std::thread([&] {
      try {
        server_.start();
      } catch (...) {
        failed = std::current_exception();
      }
    }).join();
    if (failed) std::rethrow_exception(failed);
    if (background)
      loop_ = std::thread([this] {
        while (!stop_) server_.serve_once(20);
      });
  }
  ~InProcessServer() {
    stop_ = true;
    if (loop_.joinable()) loop_.join();
    ::close(wake_fd_);
  }
  daemon::Server& server() { return server_; }
  // Runs `fn` in the server's loop and waits for it (the background loop only).
  void run_in_loop(std::function<void()> fn) {
    on_wake_ = std::move(fn);
    const int before = woken_.load();
    uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) != sizeof one) throw std::runtime_error("eventfd write failed");
    for (int i = 0; i < 500 && woken_.load() == before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (woken_.load() == before) throw std::runtime_error("the server's loop did not run the call");
  }

 private:
  daemon::Server server_;
  int wake_fd_ = -1;
  std::function<void()> on_wake_;
  std::atomic<int> woken_{0};
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

}  // namespace lfp::test
