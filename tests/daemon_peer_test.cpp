// SPDX-License-Identifier: MIT
// Who a client is comes from its socket, as it was when it connected: groups gained later, or the
// groups of another process that took its pid, lend it nothing. lfpd's Server in this process
// accepts when the test says (serve_once); clients are real processes on its real socket.
#include <gtest/gtest.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "lfp/protocol/wire.hpp"
#include "lfp/sys/proc.hpp"
#include "daemon_support.hpp"
#include "server_support.hpp"

namespace lfp {
namespace {

using nlohmann::json;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// A group made for the test (groupadd), removed after.
class TestGroup {
 public:
  explicit TestGroup(const std::string& role)
      : name_("lfptest-" + role + "-" + std::to_string(getpid())) {
    if (std::system(("groupadd " + name_).c_str()) != 0) throw std::runtime_error("groupadd " + name_ + " failed");
    const group* g = getgrnam(name_.c_str());
    if (!g) throw std::runtime_error("group " + name_ + " not found after groupadd");
    gid_ = g->gr_gid;
  }
  ~TestGroup() { (void)!std::system(("groupdel " + name_ + " 2>/dev/null").c_str()); }
  const std::string& name() const { return name_; }
  gid_t gid() const { return gid_; }

 private:
  std::string name_;
  gid_t gid_ = 0;
};

sockaddr_un address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  return a;
}

// Opens the session on `fd` (connected, not yet accepted) while the server serves; returns the
// hello reply's session ({"uid", "role", ...}).
json hello(daemon::Server& server, int fd) {
  std::string err, reply;
  timeval tv{0, 10'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (!wire::write_frame(fd, R"({"id":1,"op":"hello","name":"peer test"})", err)) throw std::runtime_error(err);
  for (int i = 0; i < 300; ++i) {
    server.serve_once(10);
    if (wire::read_frame(fd, reply, err)) return json::parse(reply).at("result").at("session");
  }
  throw std::runtime_error("no reply to hello");
}

// A process that dropped to uid nobody with `groups`, connected to `socket_path` through `fd`
// (shared with the caller, which keeps the connection), ran `then`, and waits to be ended.
class Connector {
 public:
  Connector(int fd, const std::string& socket_path, const std::vector<gid_t>& groups,
            const std::function<void()>& then = [] {}) {
    int ready[2];
    if (pipe(ready) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      // (setresuid keeps root as the saved uid, so that `then` may still change the groups.)
      if (setgroups(groups.size(), groups.data()) != 0 || setgid(kNogroup) != 0 ||
          setresuid(kNobody, kNobody, 0) != 0)
        _exit(10);
      sockaddr_un a = address(socket_path);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(11);
      then();
      (void)!write(ready[1], "x", 1);
      pause();
      _exit(0);
    }
    close(ready[1]);
    char x;
    const bool ok = read(ready[0], &x, 1) == 1;
    close(ready[0]);
    if (!ok) {
      end();
      throw std::runtime_error("the connecting child failed");
    }
  }
  ~Connector() { end(); }
  // Ends the process (its connection stays: the caller holds it).
  void end() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

class ServerPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    LFP_REQUIRE_ROOT("it makes groups and runs clients in them");
    admin_.emplace("admin");
    writer_.emplace("writer");
    cfg_ = test::server_config(dir_.path());
    cfg_.admin_group = admin_->name();
    cfg_.writer_group = writer_->name();
    server_ = std::make_unique<test::InProcessServer>(cfg_, [](daemon::Server&) {}, /*background=*/false);
  }
  daemon::Server& server() { return server_->server(); }
  // The session of a client that connects with these groups and does `then` before lfpd accepts
  // it (the client lives until lfpd has answered).
  json session_of(const std::vector<gid_t>& groups, const std::function<void()>& then = [] {}) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    Connector client(fd, cfg_.socket_path, groups, then);
    json s = hello(server(), fd);
    ::close(fd);
    return s;
  }

  test::TempDir dir_;
  std::optional<TestGroup> admin_, writer_;
  daemon::Config cfg_;
  std::unique_ptr<test::InProcessServer> server_;
};

TEST_F(ServerPeer, RolesComeFromTheGroupsAtConnect) {
  EXPECT_EQ(session_of({})["role"], "reader");
  EXPECT_EQ(session_of({admin_->gid()})["role"], "admin");
  EXPECT_EQ(session_of({kNogroup, writer_->gid()})["role"], "writer");
  json s = session_of({writer_->gid(), admin_->gid()});
  EXPECT_EQ(s["role"], "admin");
  EXPECT_EQ(s["uid"], kNobody);
}

TEST_F(ServerPeer, GroupsGainedAfterConnectAreNotLent) {
  const gid_t admin = admin_->gid();
  json s = session_of({}, [admin] {
    // Connected as a reader; now in the admin group, before lfpd accepts.
    if (seteuid(0) != 0 || setgroups(1, &admin) != 0 || seteuid(kNobody) != 0) _exit(20);
  });
  EXPECT_EQ(s["role"], "reader");
}

// A client connects and exits before lfpd accepts; a process in the admin group takes its pid
// (through ns_last_pid). The connection is still the first client's.
TEST_F(ServerPeer, ReusedPidCannotLendItsGroups) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  pid_t gone;
  {
    Connector client(fd, cfg_.socket_path, {});
    gone = client.pid();
  }
  pid_t taker = -1;
  int ready[2] = {-1, -1};
  for (int attempt = 0; attempt < 200 && taker != gone; ++attempt) {
    if (taker > 0) {
      kill(taker, SIGKILL);
      waitpid(taker, nullptr, 0);
      close(ready[0]);
      close(ready[1]);
    }
    ASSERT_EQ(pipe(ready), 0);
    {
      std::ofstream last("/proc/sys/kernel/ns_last_pid");
      last << gone - 1;
    }
    taker = fork();
    if (taker == 0) {
      const gid_t admin = admin_->gid();
      if (setgroups(1, &admin) != 0) _exit(20);
      (void)!write(ready[1], "x", 1);
      pause();
      _exit(0);
    }
  }
  ASSERT_EQ(taker, gone) << "could not make a process take pid " << gone << " (another process forked first, 200 times)";
  char x;
  ASSERT_EQ(read(ready[0], &x, 1), 1);  // (it is in the admin group now)
  const std::vector<uint64_t> groups = sys::ProcStatus(gone).numbers("Groups");
  EXPECT_NE(std::find(groups.begin(), groups.end(), admin_->gid()), groups.end());

  json s = hello(server(), fd);
  EXPECT_EQ(s["uid"], kNobody);
  EXPECT_EQ(s["role"], "reader");
  kill(taker, SIGKILL);
  waitpid(taker, nullptr, 0);
  ::close(fd);
  close(ready[0]);
  close(ready[1]);
}

// A group name that does not resolve: nobody is in it (and root still is admin).
TEST(ServerPeerConfig, UnknownGroupHasNoMembers) {
  LFP_REQUIRE_ROOT("it runs a client as nobody");
  test::TempDir dir;
  auto cfg = test::server_config(dir.path());
  cfg.admin_group = "lfptest-no-such-group";
  cfg.writer_group = "";
  test::InProcessServer srv(cfg, [](daemon::Server&) {}, /*background=*/false);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Connector client(fd, cfg.socket_path, {});
  EXPECT_EQ(hello(srv.server(), fd)["role"], "reader");
  ::close(fd);
}

}  // namespace
}  // namespace lfp
