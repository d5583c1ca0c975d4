// SPDX-License-Identifier: MIT
#pragma once
// The sandbox every live data-path test runs in: two fresh network namespaces joined by a veth pair,
// a child cgroup v2, a temp dir and optional private bpffs mounts. Nothing here touches the machine's
// own network stack: every `ip` command runs inside the sandbox's namespaces, and every program a test
// starts is placed in one of them before it execs.
//
// Everything a Sandbox creates is removed when it is destroyed, and also, through a process-wide
// registry, from an atexit handler and from SIGINT/SIGTERM/SIGABRT/SIGSEGV handlers (which re-raise
// the signal afterwards). Leftovers of test processes that died by SIGKILL are swept by the next
// Sandbox: resources named lfpt-<pid>-… whose <pid> no longer runs.
//
//   Sandbox sb;                                          // throws if !sandbox_available()
//   auto r = sb.run("ping -c1 -W1 " + sb.ip4(Side::B));  // in namespace A by default
//   auto srv = sb.spawn("exec my-server", {.side = Side::B, .in_cgroup = true, .uid = 65534});
//   ASSERT_TRUE(sb.wait_for_port(Side::B, 8080));
#include <sys/types.h>

#include <csignal>
#include <cstdlib>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lfp/sys/netns.hpp"
#include "lfp/sys/spawn.hpp"

namespace lfp::test {

// True when sandboxes can be made here: root, a cgroup2 mount (wherever /proc/self/mountinfo says it
// is), `ip` installed. Otherwise false, with the reason in *why. Live tests use LFP_REQUIRE_SANDBOX().
bool sandbox_available(std::string* why = nullptr);

// True when LFP_REQUIRE_LIVE=1 is in the environment (CI): a live test that cannot run fails.
bool live_required();

// The first statement of every live test (or of its fixture's SetUp): skips the test when no sandbox
// can be made here, with the reason; fails it instead under LFP_REQUIRE_LIVE=1. Under ctest, also fails
// a live test that tests/CMakeLists.txt does not label `live` (the stock-layout pass selects that label).
#define LFP_REQUIRE_SANDBOX()                                                                         \
  do {                                                                                                \
    if (const char* lfp_label_ = std::getenv("LFP_CTEST_LABEL");                                      \
        lfp_label_ && std::string_view(lfp_label_) != "live")                                         \
      GTEST_FAIL() << "a live test without the ctest label `live`: add its suite to LFP_LIVE_SUITES " \
                      "in tests/CMakeLists.txt";                                                      \
    if (std::string lfp_why_; !::lfp::test::sandbox_available(&lfp_why_)) {                           \
      if (::lfp::test::live_required()) GTEST_FAIL() << lfp_why_ << " (and LFP_REQUIRE_LIVE=1)";      \
      GTEST_SKIP() << lfp_why_;                                                                       \
    }                                                                                                 \
  } while (0)

// Cleans up every live sandbox of this process now (what the atexit and signal handlers call).
void sandbox_cleanup_all() noexcept;

// The whole content of a file ("" when it cannot be read).
std::string read_text(const std::string& path);

// A: the host under test. B: the remote peer.
enum class Side { A, B };

struct ExecOptions {
  Side side = Side::A;                             // network namespace to run in
  bool in_cgroup = false;                          // join the sandbox cgroup first
  std::optional<uid_t> uid;                        // run as this user (supplementary groups dropped)
  std::optional<gid_t> gid;                        // defaults to uid when uid is set
  std::vector<std::string> env;                    // extra "NAME=VALUE" entries
  std::chrono::milliseconds timeout{10'000};       // run() only: killed after this long
};

struct RunResult {
  int code = -1;           // exit code; 128+N when killed by signal N; -1 on timeout
  bool timed_out = false;
  std::string out, err;    // everything it wrote on stdout and stderr
  bool ok() const { return code == 0; }
};

// Shared between a Process handle and its Sandbox (which kills it on clean-up).
struct ProcState {
  std::atomic<pid_t> pid{-1};
  std::atomic<bool> reaped{false};
  int code = -1;               // as RunResult::code, once reaped
  std::string out_path, err_path;
};

// A program started by Sandbox::spawn. A copyable handle; it does not kill the program when dropped
// (the Sandbox does that on clean-up). stdout/stderr go to files in the sandbox's temp dir.
class Process {
 public:
  Process() = default;
  explicit Process(std::shared_ptr<ProcState> s) : s_(std::move(s)) {}
  pid_t pid() const { return s_ ? s_->pid.load() : -1; }
  bool running();                       // false once it has exited (and then it is reaped)
  // Its exit code (as RunResult::code) once it exits, or nullopt if still running after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void kill(int sig = SIGTERM);         // to its whole process group
  std::string out() const;              // what it has written so far
  std::string err() const;

 private:
  std::shared_ptr<ProcState> s_;
};

// Use a Sandbox from one thread. Not copyable nor movable: the registry holds its address.
class Sandbox {
 public:
  Sandbox();   // throws std::runtime_error if anything cannot be set up (after removing what was)
  ~Sandbox();  // cleanup()
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const std::string& name() const { return base_; }                 // lfpt-<pid>-<n>
  const std::string& ns(Side s) const { return s == Side::A ? ns_a_ : ns_b_; }  // <name>-a, <name>-b
  std::string ns_path(Side s) const { return "/run/netns/" + ns(s); }
  const std::string& ifname(Side s) const;                          // the veth end: "veth-a" / "veth-b"
  const std::string& ip4(Side s) const { return s == Side::A ? ip4_a_ : ip4_b_; }  // 10.x.y.1 / .2 (/24)
  const std::string& ip6(Side s) const { return s == Side::A ? ip6_a_ : ip6_b_; }  // fd00:x:y::1 / ::2 (/64)
  static constexpr int kPrefix4 = 24, kPrefix6 = 64;
  const std::string& cgroup() const { return cgroup_; }             // <cgroup2 mount>/<name>
  const std::string& tmpdir() const { return tmpdir_; }             // /tmp/<name>-XXXXXX, mode 0755

  // Runs `/bin/sh -c cmd` (or argv, looked up in PATH) and waits for it, at most opts.timeout.
  RunResult run(const std::string& cmd, const ExecOptions& opts = {});
  RunResult run_argv(const std::vector<std::string>& argv, const ExecOptions& opts = {});
  // Starts it in the background; stdin is /dev/null.
  Process spawn(const std::string& cmd, const ExecOptions& opts = {});
  Process spawn_argv(const std::vector<std::string>& argv, const ExecOptions& opts = {});

  // Polls `ss -l` in that namespace until something listens on the port (TCP, or UDP when udp).
  bool wait_for_port(Side side, uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                     bool udp = false);

  // Mounts a private bpffs on a fresh directory in tmpdir() and returns its path.
  std::string mount_bpffs();
  // Writes a file under tmpdir() (name may contain subdirectories) and returns its path.
  std::string write_file(const std::string& name, std::string_view content, mode_t mode = 0644);

  // Kills every process it started and every process in its cgroup or namespaces, removes the cgroup,
  // the bpffs mounts, both namespaces and the temp dir. Idempotent; reports errors on stderr, never throws.
  // Does nothing in a forked child that did not create the sandbox.
  void cleanup() noexcept;

 private:
  friend void sandbox_cleanup_all() noexcept;
  lfp::sys::SpawnOptions spawn_options(const ExecOptions& opts) const;
  void setup();
  void check(const RunResult& r, const char* what);

  pid_t owner_;
  std::string base_, ns_a_, ns_b_, ns_path_a_, ns_path_b_, ip4_a_, ip4_b_, ip6_a_, ip6_b_, cgroup_, tmpdir_;
  std::optional<lfp::sys::NetNamespace> netns_a_, netns_b_;  // cleanup() removes them (signal-safe), by path
  std::vector<std::shared_ptr<ProcState>> procs_;  // changed only with SIGINT/SIGTERM blocked
  std::vector<std::string> bpffs_;                 // likewise
  unsigned files_ = 0;                             // names the output files of spawned programs
  bool cleaned_ = false;
};

}  // namespace lfp::test
