// SPDX-License-Identifier: MIT
// lfp::sys::run and spawn (sys/include/lfp/sys/spawn.hpp): exit codes, stdin and stdout, a program
// that is not there, timeouts, passed fds, and the forked path's steps.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lfp/sys/proc.hpp"
#include "lfp/sys/spawn.hpp"

namespace {

using lfp::sys::run;

TEST(SysSpawn, ExitCodes) {
  EXPECT_EQ(run({"true"}).code, 0);
  EXPECT_EQ(run({"false"}).code, 1);
  const auto r = run({"sh", "-c", "exit 7"});
  EXPECT_EQ(r.code, 7);
  EXPECT_FALSE(r.ok());
  const auto killed = run({"sh", "-c", "kill -9 $$"});
  EXPECT_EQ(killed.code, 128 + 9);
  EXPECT_EQ(killed.signal, 9);
}

TEST(SysSpawn, InputAndOutput) {
  const auto r = run({"cat"}, {.input = "line one\nline two\n"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out, "line one\nline two\n");
  EXPECT_EQ(r.err, "");
  const auto both = run({"sh", "-c", "echo out; echo err >&2"});
  EXPECT_EQ(both.out, "out\n");
  EXPECT_EQ(both.err, "err\n");
  // Without input, stdin is /dev/null: cat ends at once.
  EXPECT_EQ(run({"cat"}, {.timeout = std::chrono::seconds(5)}).out, "");
  // More than a pipe holds, both ways.
  const std::string big(1 << 20, 'x');
  EXPECT_EQ(run({"cat"}, {.input = big}).out.size(), big.size());
}

TEST(SysSpawn, MissingProgramIsAClearError) {
  try {
    run({"lfp-no-such-program"});
    FAIL() << "expected a SpawnError";
  } catch (const lfp::sys::SpawnError& e) {
    EXPECT_STREQ(e.what(), "cannot start lfp-no-such-program: not found in PATH");
  }
  EXPECT_THROW(run({"/nonexistent/prog"}), lfp::sys::SpawnError);
  EXPECT_THROW(run({}), lfp::sys::SpawnError);
}

TEST(SysSpawn, TimeoutKillsItsGroup) {
  const auto start = std::chrono::steady_clock::now();
  const auto r = run({"sh", "-c", "sleep 30 & sleep 30"}, {.own_process_group = true, .timeout = std::chrono::milliseconds(200)});
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.code, -1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(SysSpawn, EnvironmentAndCapturedOutputLimit) {
  EXPECT_EQ(run({"sh", "-c", "echo $LFP_SPAWN_TEST"}, {.env = {"LFP_SPAWN_TEST=yes"}}).out, "yes\n");
  EXPECT_EQ(run({"sh", "-c", "echo 0123456789"}, {.max_output = 4}).out, "0123");
}

TEST(SysSpawn, PassesFdsAndClosesTheRest) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int leaked = fcntl(sv[1], F_DUPFD, 20);  // no CLOEXEC: closed in the child all the same
  const auto r = run({"sh", "-c", "echo hi >&3; ls /proc/self/fd"}, {.pass_fds = {{sv[1], 3}}});
  EXPECT_TRUE(r.ok()) << r.err;
  char buf[8] = {};
  ASSERT_EQ(read(sv[0], buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "hi\n");
  EXPECT_EQ(("\n" + r.out).find("\n" + std::to_string(leaked) + "\n"), std::string::npos) << r.out;
  for (int fd : {sv[0], sv[1], leaked}) close(fd);
}

TEST(SysSpawn, SpawnAndWait) {
  const pid_t pid = lfp::sys::spawn({"sh", "-c", "exit 3"});
  ASSERT_GT(pid, 0);
  EXPECT_EQ(lfp::sys::wait_exit(pid), 3);
  EXPECT_EQ(lfp::sys::wait_exit(pid), -1);  // reaped
}

// The forked path: a step posix_spawn cannot take, and one that fails, named.
TEST(SysSpawn, ForkedStepsAndTheirErrors) {
  try {
    run({"true"}, {.netns = "/nonexistent/netns"});
    FAIL() << "expected a SpawnError";
  } catch (const lfp::sys::SpawnError& e) {
    EXPECT_STREQ(e.what(), "cannot start true: entering the network namespace: No such file or directory");
  }
  if (geteuid() != 0) GTEST_SKIP() << "switching user needs root";
  const auto r = run({"sh", "-c", "id -u; id -g"}, {.uid = 65534});
  EXPECT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out, "65534\n65534\n");
}

TEST(SysProc, StatusFieldsByName) {
  const auto s = lfp::sys::ProcStatus::parse("Name:\tlfpd\nUid:\t0\t1000\t0\t0\nGroups:\t4 24 27 \nVmRSS:\t   1234 kB\n");
  EXPECT_EQ(s.text("Name"), "lfpd");
  EXPECT_EQ(s.numbers("Uid"), (std::vector<uint64_t>{0, 1000, 0, 0}));
  EXPECT_EQ(s.numbers("Groups"), (std::vector<uint64_t>{4, 24, 27}));
  EXPECT_EQ(s.numbers("VmRSS"), (std::vector<uint64_t>{1234}));
  EXPECT_EQ(s.text("Gid"), std::nullopt);
  EXPECT_TRUE(s.numbers("Gid").empty());
  const lfp::sys::ProcStatus self;
  EXPECT_EQ(self.numbers("Uid").at(1), geteuid());
  EXPECT_EQ(self.numbers("Pid").at(0), static_cast<uint64_t>(getpid()));
  EXPECT_THROW(lfp::sys::ProcStatus(999'999'999), std::runtime_error);
}

}  // namespace
