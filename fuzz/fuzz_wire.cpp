// SPDX-License-Identifier: MIT
// lfpd's wire protocol under fuzzing: the input is the byte stream a client sends (frames, JSON,
// anything). A real Server (store in a temporary dir) serves it over a socketpair as an admin session;
// it must answer or drop the connection, never crash, and keep serving a well-behaved session.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "lfp/protocol/wire.hpp"
#include "server.hpp"

namespace {

std::string g_dir;  // the server's temporary state dir, removed at exit

lfp::daemon::Server* server() {
  static lfp::daemon::Server* s = [] {
    spdlog::set_level(spdlog::level::off);
    char tmpl[] = "/tmp/lfp-fuzz-wire-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    g_dir = dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(g_dir, ec);
    });
    lfp::daemon::Config cfg;
    cfg.state_dir = dir + "/state";
    cfg.socket_path = dir + "/lfpd.sock";
    cfg.default_txn_wait_ms = 1;  // never wait long for a lock an abandoned input still holds
    auto* srv = new lfp::daemon::Server(cfg);
    srv->start();
    return srv;
  }();
  return s;
}

// Serves until the server has no sessions left (or a bounded number of turns).
void settle(lfp::daemon::Server& s, int fd) {
  char buf[65536];
  for (int i = 0; i < 200 && s.session_count() > 0; ++i) {
    s.serve_once(0);
    while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lfp::daemon::Server& s = *server();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  ucred root{getpid(), 0, 0};
  s.adopt(sv[1], root);
  // Write what fits, serving in between so the daemon drains the socket.
  size_t off = 0;
  for (int turns = 0; off < size && turns < 1000; ++turns) {
    ssize_t w = ::send(sv[0], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) off += static_cast<size_t>(w);
    s.serve_once(0);
    char buf[65536];
    while (::recv(sv[0], buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
  }
  ::shutdown(sv[0], SHUT_WR);
  settle(s, sv[0]);
  ::close(sv[0]);
  settle(s, -1);
  return 0;
}
