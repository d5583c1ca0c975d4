// SPDX-License-Identifier: MIT
// What one local user who is not an admin can take from lfpd (issue 30, "exhaustion"): sessions,
// half-sent requests, idle connections; and the client's own timeouts. Each test's attacker is a
// child process running as nobody; root (an admin) must still get through.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "daemon_support.hpp"
#include "lfp/protocol/wire.hpp"

namespace lfp {
namespace {

using test::Daemon;

// Runs `body` as nobody in a child; its exit code (0: as expected).
int as_nobody(const std::function<int()>& body) {
  const pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    try {
      _exit(body());
    } catch (...) {
      _exit(101);
    }
  }
  int status = -1;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

int raw_connect(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

TEST(LfpdLimits, OneUserCannotTakeEverySession) {
  LFP_REQUIRE_ROOT("it runs a client as nobody");
  Daemon d({"--max-sessions-per-uid", "8"});
  int held_pipe[2], go_pipe[2];
  ASSERT_EQ(pipe(held_pipe), 0);
  ASSERT_EQ(pipe(go_pipe), 0);
  const pid_t child = fork();
  if (child == 0) {
    ::close(held_pipe[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    try {
      std::vector<std::unique_ptr<client::Client>> held;
      for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<client::Client>(d.socket()));
      try {
        client::Client ninth(d.socket());
        _exit(1);  // accepted past the cap
      } catch (const client::ClientError& e) {
        if (e.code() != "TOO_MANY_SESSIONS") _exit(2);
        if (std::string(e.what()).find("uid 65534 has 8 sessions open") == std::string::npos) _exit(3);
      }
      char c;
      if (::write(held_pipe[1], "h", 1) != 1 || ::read(go_pipe[0], &c, 1) != 1) _exit(4);
      for (auto& s : held) s->call("ping");  // the eight still work
      _exit(0);
    } catch (...) {
      _exit(101);
    }
  }
  ::close(held_pipe[1]);
  char c;
  if (::read(held_pipe[0], &c, 1) == 1) {  // while nobody holds its eight, root (an admin) gets through
    std::vector<std::unique_ptr<client::Client>> roots;
    for (int i = 0; i < 12; ++i) roots.push_back(d.connect());
    EXPECT_NO_THROW(roots.back()->call("state"));
  }
  [[maybe_unused]] auto w = ::write(go_pipe[1], "g", 1);
  int status = -1;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  for (int fd : {held_pipe[0], go_pipe[0], go_pipe[1]}) ::close(fd);
}

TEST(LfpdLimits, AHalfSentRequestIsClosedAfterTheFrameTimeout) {
  LFP_REQUIRE_ROOT("it runs a client as nobody");
  Daemon d({"--frame-timeout-ms", "300"});
  const int rc = as_nobody([&] {
    const int fd = raw_connect(d.socket());
    if (fd < 0) return 1;
    // A header announcing 1000 bytes, then 10 of them: then nothing.
    const char part[] = "\x00\x00\x03\xe8{\"id\":1,\"o";
    if (::write(fd, part, 14) != 14) return 2;
    const timeval tv{3, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto t0 = std::chrono::steady_clock::now();
    std::string payload, err;
    if (!wire::read_frame(fd, payload, err)) return 3;  // the error comes first...
    if (payload.find("\"TIMEOUT\"") == std::string::npos || payload.find("within 300 ms") == std::string::npos) return 4;
    char byte;
    if (::read(fd, &byte, 1) != 0) return 5;  // ... then the end of the connection
    if (std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(2500)) return 6;
    ::close(fd);
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_NO_THROW(d.connect()->call("state"));
}

TEST(LfpdLimits, AnIdleSessionOfAUserIsClosed) {
  LFP_REQUIRE_ROOT("it runs a client as nobody");
  Daemon d({"--idle-timeout-ms", "300"});
  const int rc = as_nobody([&] {
    client::Client c(d.socket());
    c.call("ping");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    try {
      c.call("ping");
      return 1;  // still open
    } catch (const client::ClientError& e) {
      const std::string what = e.what();  // (closed under it: the write or the read finds out)
      return what.find("connection closed") != std::string::npos || what.find("Broken pipe") != std::string::npos ? 0 : 2;
    }
  });
  EXPECT_EQ(rc, 0);
  // An admin's idle session stays.
  auto root = d.connect();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_NO_THROW(root->call("ping"));
}

// lfp does not hang on an lfpd that takes the connection and never answers.
TEST(LfpdLimits, TheClientTimesOutOnAStuckDaemon) {
  char dir[] = "/tmp/lfp-stuck-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/stuck.sock";
  const int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 4), 0);  // (never accepts: the kernel queues the connection)
  const auto t0 = std::chrono::steady_clock::now();
  try {
    client::Client c(path, {.name = "stuck", .reply_timeout_ms = 300});
    ADD_FAILURE() << "a session opened on a daemon that never answers";
  } catch (const client::ClientError& e) {
    EXPECT_EQ(e.code(), "TIMEOUT") << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ::close(l);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lfp
