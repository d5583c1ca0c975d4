// SPDX-License-Identifier: MIT
#pragma once
// Starting programs: one way for lfpd's helpers, the CLI, the tests and the benches. No shell: argv as
// given, argv[0] looked up in PATH (then /usr/sbin and /sbin). posix_spawn starts the child, unless it
// must take a step posix_spawn cannot (join a cgroup, enter a network namespace, a mount namespace of
// its own, another user, die with its parent): then it is forked, takes those steps and execs, and a step that fails is
// reported as a SpawnError naming the step, like a program that is not there.
//
//   auto r = lfp::sys::run({"nft", "-f", "-"}, {.input = rules, .netns = "/run/netns/NAME"});
//   if (!r.ok()) throw std::runtime_error("nft: " + r.err);
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lfp::sys {

// A program that could not be started, with a one-line reason ("cannot start nft: not found in PATH").
class SpawnError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SpawnOptions {
  std::optional<std::string> input;  // its standard input: this text; otherwise /dev/null
  // Where its output goes; -1: run() captures it, spawn() leaves it on this process's own.
  int stdout_fd = -1, stderr_fd = -1;
  std::vector<std::pair<int, int>> pass_fds;  // {fd here, its number in the child}; every other fd from 3 is closed
  std::vector<std::string> env;               // NAME=VALUE entries over this process's environment
  bool own_process_group = false;             // so that killing its group reaches what it starts
  // The steps posix_spawn cannot take, in this order, before exec:
  std::string cgroup;                      // a cgroup v2 directory to join (first: all it does is counted there)
  std::string netns;                       // a network namespace to enter, by path (/run/netns/NAME)
  std::vector<std::string> hide_mounts;    // a mount namespace of its own, / private, with every mount here detached
  std::optional<uid_t> uid;                // run as this user (supplementary groups dropped)
  std::optional<gid_t> gid;                //   and group (default: the uid's number)
  bool die_with_parent = false;            // SIGTERM to it when the thread that started it ends (benches)
  std::chrono::milliseconds timeout{30'000};  // run() only: killed (with its group) after this long
  size_t max_output = 64u << 20;              // run() only: what is captured of each stream, at most
};

struct SpawnResult {
  int code = -1;       // its exit code; 128+N when signal N killed it; -1 when it timed out
  int signal = 0;      // the signal that killed it, 0 when it exited
  bool timed_out = false;
  std::string out, err;  // what it wrote (when captured)
  bool ok() const { return code == 0; }
};

// The program's path: `name` itself when it holds a '/', else the first executable in PATH, /usr/sbin,
// /sbin; "" when there is none.
std::string find_program(const std::string& name);

// Starts argv and returns its pid (the caller waits for it: wait_exit). Throws SpawnError.
pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& opts = {});

// Starts argv, waits for it (at most opts.timeout), and returns how it ended, with its output. Throws
// SpawnError when it cannot be started.
SpawnResult run(const std::vector<std::string>& argv, const SpawnOptions& opts = {});

// Waits for a child started by spawn() and returns SpawnResult::code's value for it (-1: not a child).
int wait_exit(pid_t pid);

// A wait status as SpawnResult::code: the exit code, or 128+N for signal N.
int exit_code(int wait_status);

}  // namespace lfp::sys
