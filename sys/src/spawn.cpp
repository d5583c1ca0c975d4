// SPDX-License-Identifier: MIT
#include "lfp/sys/spawn.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char** environ;

namespace lfp::sys {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int err) { return std::strerror(err); }

// An fd closed when it goes out of scope.
class OwnedFd {
 public:
  explicit OwnedFd(int fd = -1) : fd_(fd) {}
  ~OwnedFd() { reset(); }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Its standard input: a memfd holding the text (any size, no writer to block), or /dev/null.
int open_input(const std::optional<std::string>& input) {
  if (!input) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw SpawnError("cannot open /dev/null: " + errno_text(errno));
    return fd;
  }
  const int fd = memfd_create("lfp-spawn-input", MFD_CLOEXEC);
  if (fd < 0) throw SpawnError("cannot make its input: memfd_create: " + errno_text(errno));
  for (size_t done = 0; done < input->size();) {
    const ssize_t n = ::write(fd, input->data() + done, input->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw SpawnError("cannot write its input: " + errno_text(err));
    }
    done += static_cast<size_t>(n);
  }
  ::lseek(fd, 0, SEEK_SET);
  return fd;
}

// This process's environment with opts.env's entries over it.
std::vector<std::string> child_env(const std::vector<std::string>& overrides) {
  auto overridden = [&](const char* entry) {
    return std::any_of(overrides.begin(), overrides.end(), [&](const std::string& o) {
      const size_t eq = o.find('=');
      return eq != std::string::npos && std::strncmp(entry, o.c_str(), eq + 1) == 0;
    });
  };
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (!overridden(*e)) env.emplace_back(*e);
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Everything the child needs, made before it starts: between fork and exec it only makes system calls.
struct Launch {
  std::string path;
  std::vector<std::string> argv_strings, env_strings;
  std::vector<char*> argv, envp;
  int stdio[3];
  int first_closed = 3;  // every fd from here on is closed in the child
};

bool needs_fork(const SpawnOptions& o) {
  return !o.cgroup.empty() || !o.netns.empty() || !o.hide_mounts.empty() || o.uid || o.gid || o.die_with_parent;
}

pid_t spawn_posix(const Launch& l, const SpawnOptions& o) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  for (int i = 0; i < 3; ++i) posix_spawn_file_actions_adddup2(&actions, l.stdio[i], i);
  for (const auto& [fd, as] : o.pass_fds) posix_spawn_file_actions_adddup2(&actions, fd, as);
  posix_spawn_file_actions_addclosefrom_np(&actions, l.first_closed);
  // No signal blocked or ignored (lfpd blocks SIGTERM for its signalfd; the child must not inherit that).
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.own_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, l.path.c_str(), &actions, &attr, l.argv.data(), l.envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw SpawnError("cannot start " + l.argv_strings[0] + ": " + errno_text(rc));
  return pid;
}

// The child's steps, in order; a failing one is reported through the pipe as {step, errno}.
enum Step : int { kParentGone = 1, kJoinCgroup, kEnterNetns, kMountNamespace, kStdio, kSwitchUser, kExec };
const char* step_name(int step) {
  switch (step) {
    case kParentGone: return "its parent is gone";
    case kJoinCgroup: return "joining the cgroup";
    case kEnterNetns: return "entering the network namespace";
    case kMountNamespace: return "making its mount namespace";
    case kStdio: return "redirecting its stdio";
    case kSwitchUser: return "switching user";
    default: return "exec";
  }
}

[[noreturn]] void child(const Launch& l, const SpawnOptions& o, const std::string& cgroup_procs, pid_t parent, int report) {
  auto fail = [&](int step) {
    const int info[2] = {step, errno};
    (void)!::write(report, info, sizeof info);
    _exit(127);
  };
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (o.own_process_group) setpgid(0, 0);
  if (o.die_with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)) fail(kParentGone);
  if (!o.cgroup.empty()) {
    const int fd = ::open(cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) fail(kJoinCgroup);
    ::close(fd);
  }
  if (!o.netns.empty()) {
    const int fd = ::open(o.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) fail(kEnterNetns);
    ::close(fd);
  }
  if (!o.hide_mounts.empty()) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail(kMountNamespace);
    for (const auto& m : o.hide_mounts)
      while (umount2(m.c_str(), MNT_DETACH) == 0) {
      }
  }
  for (int i = 0; i < 3; ++i)
    if (::dup2(l.stdio[i], i) < 0) fail(kStdio);
  for (const auto& [fd, as] : o.pass_fds)
    if (::dup2(fd, as) < 0) fail(kStdio);
  if (o.uid || o.gid) {
    const uid_t uid = o.uid.value_or(getuid());
    const gid_t gid = o.gid.value_or(static_cast<gid_t>(uid));
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) fail(kSwitchUser);
  }
  syscall(SYS_close_range, static_cast<unsigned>(l.first_closed), ~0U, CLOSE_RANGE_CLOEXEC);  // (the report pipe stays open until exec)
  execve(l.path.c_str(), l.argv.data(), l.envp.data());
  fail(kExec);
  _exit(127);
}

pid_t spawn_forked(const Launch& l, const SpawnOptions& o) {
  const std::string cgroup_procs = o.cgroup.empty() ? "" : o.cgroup + "/cgroup.procs";
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) throw SpawnError("cannot start " + l.argv_strings[0] + ": pipe: " + errno_text(errno));
  // The report's write end is above every fd passed on, so that no dup2 in the child replaces it.
  if (report[1] < l.first_closed) {
    const int high = fcntl(report[1], F_DUPFD_CLOEXEC, l.first_closed);
    ::close(report[1]);
    report[1] = high;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of this process runs in the child
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) child(l, o, cgroup_procs, parent, report[1]);
  const int fork_errno = errno;
  if (pid > 0 && o.own_process_group) setpgid(pid, pid);  // also here: a kill of the group works whoever runs first
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    throw SpawnError("cannot start " + l.argv_strings[0] + ": fork: " + errno_text(fork_errno));
  }
  int info[2];
  ssize_t n;
  do n = ::read(report[0], info, sizeof info);
  while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n != static_cast<ssize_t>(sizeof info)) return pid;  // exec closed the pipe: it runs
  waitpid(pid, nullptr, 0);
  throw SpawnError("cannot start " + l.argv_strings[0] + ": " + step_name(info[0]) + ": " + errno_text(info[1]));
}

}  // namespace

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* env = std::getenv("PATH");
  const std::string path = std::string(env ? env : "/usr/local/bin:/usr/bin:/bin") + ":/usr/sbin:/sbin";
  for (size_t a = 0; a <= path.size();) {
    size_t b = path.find(':', a);
    if (b == std::string::npos) b = path.size();
    const std::string candidate = path.substr(a, b - a) + "/" + name;
    if (b > a && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    a = b + 1;
  }
  return "";
}

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

int wait_exit(pid_t pid) {
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  return r == pid ? exit_code(status) : -1;
}

pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  if (argv.empty() || argv[0].empty()) throw SpawnError("cannot start a program: empty command");
  Launch l;
  l.path = find_program(argv[0]);
  if (l.path.empty()) throw SpawnError("cannot start " + argv[0] + ": not found in PATH");
  l.argv_strings = argv;
  l.env_strings = child_env(opts.env);
  l.argv = c_strings(l.argv_strings);
  l.envp = c_strings(l.env_strings);
  OwnedFd input(open_input(opts.input));
  l.stdio[0] = input.get();
  l.stdio[1] = opts.stdout_fd >= 0 ? opts.stdout_fd : STDOUT_FILENO;
  l.stdio[2] = opts.stderr_fd >= 0 ? opts.stderr_fd : STDERR_FILENO;
  for (const auto& [fd, as] : opts.pass_fds) l.first_closed = std::max(l.first_closed, as + 1);
  return needs_fork(opts) ? spawn_forked(l, opts) : spawn_posix(l, opts);
}

SpawnResult run(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  const bool capture[2] = {opts.stdout_fd < 0, opts.stderr_fd < 0};
  if ((capture[0] && pipe2(out_pipe, O_CLOEXEC) != 0) || (capture[1] && pipe2(err_pipe, O_CLOEXEC) != 0)) {
    const int err = errno;
    for (int fd : {out_pipe[0], out_pipe[1]})
      if (fd >= 0) ::close(fd);
    throw SpawnError("cannot start " + (argv.empty() ? std::string("a program") : argv[0]) + ": pipe: " + errno_text(err));
  }
  OwnedFd out_read(out_pipe[0]), out_write(out_pipe[1]), err_read(err_pipe[0]), err_write(err_pipe[1]);
  SpawnOptions child_opts = opts;
  if (capture[0]) child_opts.stdout_fd = out_write.get();
  if (capture[1]) child_opts.stderr_fd = err_write.get();
  const pid_t pid = spawn(argv, child_opts);
  out_write.reset();
  err_write.reset();
  OwnedFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));

  SpawnResult r;
  std::string* sinks[2] = {&r.out, &r.err};
  const int fds[2] = {out_read.get(), err_read.get()};
  bool open[2] = {capture[0], capture[1]};
  auto drain = [&](int i) {  // what is there now; false at the end of the stream
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fds[i], buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, std::min(static_cast<size_t>(n), opts.max_output - std::min(opts.max_output, sinks[i]->size())));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && errno == EAGAIN;
    }
  };
  for (int i = 0; i < 2; ++i)
    if (open[i]) fcntl(fds[i], F_SETFL, O_NONBLOCK);
  const auto deadline = Clock::now() + opts.timeout;
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      if (opts.own_process_group) ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    pollfd p[3];
    int np = 0, which[3];
    for (int i = 0; i < 2; ++i)
      if (open[i]) which[np] = i, p[np++] = {fds[i], POLLIN, 0};
    if (pidfd.get() >= 0) which[np] = -1, p[np++] = {pidfd.get(), POLLIN, 0};
    const int wait_ms = static_cast<int>(std::min<long long>(left, pidfd.get() >= 0 ? 1000 : 5));
    if (poll(p, static_cast<nfds_t>(np), wait_ms) <= 0) continue;
    for (int k = 0; k < np; ++k)
      if (which[k] >= 0 && (p[k].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(which[k])) open[which[k]] = false;
  }
  for (int i = 0; i < 2; ++i)  // what is left (a background grandchild may still hold the pipe: no waiting for it)
    if (open[i]) drain(i);
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.code = r.timed_out ? -1 : exit_code(status);
  return r;
}

}  // namespace lfp::sys
