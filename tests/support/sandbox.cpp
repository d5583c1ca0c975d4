// SPDX-License-Identifier: MIT
// The test sandbox: see sandbox.hpp. Clean-up uses only async-signal-safe system calls (no allocation, no
// fork), so the very same code runs from the destructor, from atexit and from the signal handlers.
#include "sandbox.hpp"

#include "lfp/sys/mounts.hpp"
#include "lfp/sys/netns.hpp"
#include "lfp/sys/spawn.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace lfp::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kPrefix = "lfpt-";
constexpr const char* kIfA = "veth-a";
constexpr const char* kIfB = "veth-b";
constexpr int kHandled[] = {SIGINT, SIGTERM, SIGABRT, SIGSEGV};
constexpr int kMaxLive = 64;

// The process-wide registry of live sandboxes, read by the atexit and signal handlers.
std::atomic<Sandbox*> g_live[kMaxLive];
std::atomic<unsigned> g_counter{0};
struct sigaction g_old[NSIG];
std::once_flag g_install_once;

// The cgroup v2 mount that sandboxes make their cgroups in, whatever the layout; "" when there is none.
const std::string& cgroup_root() {
  static const std::string root = [] {
    try {
      return lfp::sys::cgroup2_mount();
    } catch (const std::exception&) {
      return std::string();
    }
  }();
  return root;
}

// ---- async-signal-safe helpers (used by clean-up) ----

void put(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// "lfp sandbox: <what> <path>: errno N" on stderr.
void complain(const char* what, const char* path, int err) {
  char num[16];
  int i = sizeof num - 1;
  num[i] = 0;
  unsigned v = static_cast<unsigned>(err);
  do num[--i] = static_cast<char>('0' + v % 10); while ((v /= 10) && i > 0);
  put("lfp sandbox: ");
  put(what);
  put(" ");
  put(path);
  put(": errno ");
  put(num + i);
  put("\n");
}

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Joins dir + "/" + name into out (size n); false if it does not fit.
bool join(char* out, size_t n, const char* dir, const char* name) {
  size_t a = strlen(dir), b = strlen(name);
  if (a + 1 + b + 1 > n) return false;
  memcpy(out, dir, a);
  out[a] = '/';
  memcpy(out + a + 1, name, b + 1);
  return true;
}

struct Dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Calls f(name) for each entry of the open directory fd but "." and "..".
template <class F>
void each_entry(int fd, F f) {
  alignas(8) char buf[2048];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) return;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<Dirent64*>(buf + off);
      off += d->d_reclen;
      if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
      f(d->d_name);
    }
  }
}

// SIGKILLs every process whose network namespace is the one bound at nspath.
void kill_netns_procs(const char* nspath) {
  struct stat ns;
  if (stat(nspath, &ns) != 0) return;
  int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return;
  each_entry(proc, [&](const char* name) {
    if (name[0] < '0' || name[0] > '9') return;
    char path[64];
    if (!join(path, sizeof path, "/proc", name) || strlen(path) + 8 > sizeof path) return;
    strcat(path, "/ns/net");
    struct stat st;
    if (stat(path, &st) == 0 && st.st_dev == ns.st_dev && st.st_ino == ns.st_ino) ::kill(atoi(name), SIGKILL);
  });
  close(proc);
}

// Kills everything in the cgroup at dir and waits (at most 5 s) until it is empty; false if it stays populated.
bool kill_cgroup(const char* dir) {
  char path[512];
  if (!join(path, sizeof path, dir, "cgroup.kill")) return false;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "1", 1) != 1 && errno != ENOENT && errno != ENODEV) complain("cannot write", path, errno);
    close(fd);
  }
  if (!join(path, sizeof path, dir, "cgroup.procs")) return false;
  for (int i = 0; i < 500; ++i) {
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return true;
    buf[n] = 0;
    // Without cgroup.kill (kernels before 5.14), kill what is listed.
    for (char* p = buf; *p;) {
      long pid = strtol(p, &p, 10);
      if (pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
      while (*p == '\n') ++p;
    }
    sleep_ms(10);
  }
  return false;
}

void remove_cgroup(const char* dir) {
  if (access(dir, F_OK) != 0) return;
  if (!kill_cgroup(dir)) complain("processes left in", dir, EBUSY);
  for (int i = 0; i < 500; ++i) {
    if (rmdir(dir) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) break;
    sleep_ms(10);
  }
  complain("cannot remove cgroup", dir, errno);
}

void remove_netns(const char* path) {
  if (const int err = lfp::sys::remove_netns(path)) complain("cannot remove", path, err);
}

// rm -r of name in dirfd, staying on device dev (mount points are left alone).
bool remove_tree_at(int dirfd, const char* name, dev_t dev, int depth) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT;
  if (st.st_dev != dev || depth > 16) return false;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  bool ok = true;
  for (int pass = 0; pass < 8; ++pass) {  // entries can be skipped when removed while reading: read again
    bool any = false;
    lseek(fd, 0, SEEK_SET);
    each_entry(fd, [&](const char* child) {
      any = true;
      if (!remove_tree_at(fd, child, dev, depth + 1)) ok = false;
    });
    if (!any || !ok) break;
  }
  close(fd);
  return (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) && ok;  // ENOENT: a sweeper was first
}

void remove_tree(const char* path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (!remove_tree_at(AT_FDCWD, path, st.st_dev, 0)) complain("cannot remove", path, errno);
}

// Blocks SIGINT and SIGTERM while the registry or a sandbox's lists change.
class SignalBlock {
 public:
  SignalBlock() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, &old_);
  }
  ~SignalBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;

 private:
  sigset_t old_;
};

void on_signal(int sig) {
  int saved = errno;
  sandbox_cleanup_all();
  sigaction(sig, &g_old[sig], nullptr);  // then the signal does what it did before (usually: terminate)
  errno = saved;
  raise(sig);  // pending until this handler returns
}

void install_handlers() {
  std::atexit([] { sandbox_cleanup_all(); });
  for (int sig : kHandled) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0) continue;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) continue;  // ignored stays ignored
    g_old[sig] = old;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : kHandled) sigaddset(&sa.sa_mask, s);
    sigaction(sig, &sa, nullptr);
  }
}

void register_live(Sandbox* sb) {
  for (auto& slot : g_live) {
    Sandbox* none = nullptr;
    if (slot.compare_exchange_strong(none, sb)) return;
  }
  throw std::runtime_error("too many live sandboxes");
}

void unregister_live(Sandbox* sb) {
  for (auto& slot : g_live) {
    Sandbox* me = sb;
    slot.compare_exchange_strong(me, nullptr);
  }
}

// ---- ordinary helpers ----

void reap(ProcState& s, int status) {
  s.code = lfp::sys::exit_code(status);
  s.reaped = true;
}

// Reaps the process if it has exited; true once reaped.
bool try_reap(ProcState& s) {
  if (s.reaped) return true;
  int status;
  pid_t r = waitpid(s.pid, &status, WNOHANG);
  if (r == s.pid) reap(s, status);
  else if (r < 0 && errno == ECHILD) s.reaped = true;  // reaped elsewhere
  return s.reaped;
}

// The owner pid of a resource named lfpt-<pid>-..., or 0.
pid_t owner_of(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return 0;
  return static_cast<pid_t>(atol(name.c_str() + strlen(kPrefix)));
}

bool owner_dead(const std::string& name) {
  pid_t pid = owner_of(name);
  return pid > 0 && pid != getpid() && ::kill(pid, 0) != 0 && errno == ESRCH;
}

// Removes what sandboxes of processes that no longer run (killed by SIGKILL) left behind.
void sweep_stale() {
  std::error_code ec;
  for (const auto& path : lfp::sys::stale_netns(kPrefix)) {
    kill_netns_procs(path.c_str());
    remove_netns(path.c_str());
  }
  for (auto& e : fs::directory_iterator(cgroup_root(), ec)) {
    std::string n = e.path().filename();
    if (owner_dead(n)) remove_cgroup(e.path().c_str());
  }
  std::vector<std::string> dirs;
  for (auto& e : fs::directory_iterator("/tmp", ec))
    if (owner_dead(e.path().filename())) dirs.push_back(e.path());
  if (dirs.empty()) return;
  std::vector<std::string> mounts;  // bpffs mounts under them, innermost first
  for (const auto& m : lfp::sys::mounts())
    for (auto& d : dirs)
      if (m.target.rfind(d + "/", 0) == 0) mounts.push_back(m.target);
  std::sort(mounts.begin(), mounts.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
  for (auto& m : mounts) umount2(m.c_str(), MNT_DETACH);
  for (auto& d : dirs) remove_tree(d.c_str());
}

}  // namespace

// Cleans up every live sandbox this process created (atexit and signal handlers).
void sandbox_cleanup_all() noexcept {
  for (auto& slot : g_live)
    if (Sandbox* sb = slot.load()) sb->cleanup();
}

bool sandbox_available(std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = "sandbox unavailable: " + reason;
    return false;
  };
  if (geteuid() != 0) return no("not running as root");
  const std::string& cgroup2 = cgroup_root();
  if (cgroup2.empty()) return no("no cgroup2 mount in /proc/self/mountinfo");
  struct statfs fsinfo;
  if (statfs(cgroup2.c_str(), &fsinfo) != 0 || fsinfo.f_type != CGROUP2_SUPER_MAGIC)
    return no("cgroup2 is listed at " + cgroup2 + " but is not there");
  if (lfp::sys::find_program("ip").empty()) return no("`ip` (iproute2) is not installed");
  if (access("/proc/self/ns/net", F_OK) != 0) return no("no network namespaces");
  return true;
}

bool live_required() {
  const char* v = std::getenv("LFP_REQUIRE_LIVE");
  return v && std::string_view(v) == "1";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- Process ----

bool Process::running() { return s_ && !try_reap(*s_); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (!s_) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  while (!try_reap(*s_)) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return s_->code;
}

void Process::kill(int sig) {
  if (!s_ || s_->reaped) return;
  if (::kill(-s_->pid, sig) != 0) ::kill(s_->pid, sig);
}

std::string Process::out() const { return s_ ? read_text(s_->out_path) : ""; }
std::string Process::err() const { return s_ ? read_text(s_->err_path) : ""; }

// ---- Sandbox ----

Sandbox::Sandbox() : owner_(getpid()) {
  std::string why;
  if (!sandbox_available(&why)) throw std::runtime_error(why);
  std::call_once(g_install_once, install_handlers);
  sweep_stale();

  unsigned n = g_counter++;
  base_ = kPrefix + std::to_string(owner_) + "-" + std::to_string(n);
  ns_a_ = base_ + "-a";
  ns_b_ = base_ + "-b";
  ns_path_a_ = std::string(lfp::sys::kNetnsDir) + "/" + ns_a_;
  ns_path_b_ = std::string(lfp::sys::kNetnsDir) + "/" + ns_b_;
  // The namespaces are isolated, so these need not be unique; they are anyway, to tell sandboxes apart.
  // y is never 0, so the v6 text is canonical (fd00:x:0::1 would print as fd00:x::1).
  std::string x = std::to_string(20 + owner_ % 200), y = std::to_string(n % 255 + 1);
  ip4_a_ = "10." + x + "." + y + ".1";
  ip4_b_ = "10." + x + "." + y + ".2";
  ip6_a_ = "fd00:" + x + ":" + y + "::1";
  ip6_b_ = "fd00:" + x + ":" + y + "::2";
  cgroup_ = cgroup_root() + "/" + base_;

  SignalBlock block;  // a SIGINT during set-up is handled (and cleans up) right after it
  register_live(this);
  try {
    setup();
  } catch (...) {
    cleanup();
    throw;
  }
}

Sandbox::~Sandbox() { cleanup(); }

const std::string& Sandbox::ifname(Side s) const {
  static const std::string a = kIfA, b = kIfB;
  return s == Side::A ? a : b;
}

void Sandbox::check(const RunResult& r, const char* what) {
  if (!r.ok())
    throw std::runtime_error(std::string("sandbox set-up: ") + what + " failed (" + std::to_string(r.code) +
                             "): " + r.err);
}

void Sandbox::setup() {
  std::string tmpl = "/tmp/" + base_ + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + std::string(strerror(errno)));
  tmpdir_ = tmpl;
  chmod(tmpdir_.c_str(), 0755);  // programs run as nobody read their files here
  if (mkdir(cgroup_.c_str(), 0755) != 0)
    throw std::runtime_error("mkdir " + cgroup_ + ": " + std::string(strerror(errno)));

  const std::string ip = lfp::sys::find_program("ip");
  netns_a_.emplace(ns_a_);
  netns_b_.emplace(ns_b_);

  // Everything else runs inside the namespaces. No DAD, so addresses (link-local too) are usable at once;
  // links come up before they get addresses (addresses added to a link still down answer ND late).
  const std::string nodad =
      "for f in all default; do echo 0 > /proc/sys/net/ipv6/conf/$f/accept_dad; done; ";
  const ExecOptions in_a{.side = Side::A}, in_b{.side = Side::B};
  check(run("set -e; " + nodad, in_b), "disabling DAD in B");
  check(run("set -e; " + nodad + ip + " link add " + kIfA + " type veth peer name " + kIfB + " netns " + ns_b_ +
                "; " + ip + " link set lo up; " + ip + " link set " + kIfA + " up",
            in_a),
        "veth pair");
  check(run("set -e; " + ip + " link set lo up; " + ip + " link set " + kIfB + " up; " + ip + " addr add " + ip4_b_ +
                "/24 dev " + kIfB + "; " + ip + " addr add " + ip6_b_ + "/64 dev " + kIfB + " nodad",
            in_b),
        "addresses in B");
  check(run("set -e; " + ip + " addr add " + ip4_a_ + "/24 dev " + kIfA + "; " + ip + " addr add " + ip6_a_ +
                "/64 dev " + kIfA + " nodad",
            in_a),
        "addresses in A");

  // Ready when the kernel's deferred work has run (slow when many namespaces come and go): the link's
  // operational state is UP (until then its queue drops every packet), and the solicited-node group of the
  // address is joined (until then neighbour solicitations for it go unanswered; nodad addresses are never
  // shown tentative, but the join is deferred all the same).
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (Side s : {Side::A, Side::B}) {
    const std::string probe = ip + " -6 -o addr show tentative; " + ip + " -o link show dev " + ifname(s) +
                              " | grep -q 'state UP' || echo down; " + ip + " -6 maddr show dev " + ifname(s) +
                              " | grep -q ' ff02::1:ff00:" + (s == Side::A ? "1" : "2") + "$' || echo unjoined";
    for (;;) {
      RunResult r = run(probe, {.side = s});
      check(r, "readiness probe");
      if (r.out.empty()) break;
      if (Clock::now() >= deadline) throw std::runtime_error("sandbox set-up: links not ready: " + r.out);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

void Sandbox::cleanup() noexcept {
  if (owner_ != getpid() || cleaned_) return;  // a forked child never removes its parent's sandbox
  SignalBlock block;
  cleaned_ = true;

  // Every process it started, everything in its cgroup and everything in its namespaces.
  for (auto& p : procs_)
    if (!p->reaped && p->pid > 0) {
      ::kill(-p->pid, SIGKILL);
      ::kill(p->pid, SIGKILL);
    }
  if (access(cgroup_.c_str(), F_OK) == 0) kill_cgroup(cgroup_.c_str());
  kill_netns_procs(ns_path_a_.c_str());
  kill_netns_procs(ns_path_b_.c_str());
  for (auto& p : procs_) {
    for (int i = 0; i < 500 && !try_reap(*p); ++i) sleep_ms(10);
    if (!p->reaped) complain("process does not die:", "pid", p->pid);
  }

  remove_cgroup(cgroup_.c_str());
  for (auto& dir : bpffs_) {
    if (umount2(dir.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      complain("cannot unmount", dir.c_str(), errno);
    rmdir(dir.c_str());
  }
  remove_netns(ns_path_a_.c_str());
  remove_netns(ns_path_b_.c_str());
  if (!tmpdir_.empty()) remove_tree(tmpdir_.c_str());
  unregister_live(this);
}

lfp::sys::SpawnOptions Sandbox::spawn_options(const ExecOptions& opts) const {
  lfp::sys::SpawnOptions o{.own_process_group = true,  // so that clean-up kills what it starts too
                           .cgroup = opts.in_cgroup ? cgroup_ : "",
                           .netns = opts.side == Side::A ? ns_path_a_ : ns_path_b_,
                           .uid = opts.uid,
                           .gid = opts.gid,
                           .timeout = opts.timeout};
  // The programs tests run (ip, ss, nft) are in sbin.
  const char* path = getenv("PATH");
  const std::string paths = path ? path : "/usr/local/bin:/usr/bin:/bin";
  if (paths.find("/sbin") == std::string::npos) o.env.push_back("PATH=" + paths + ":/usr/sbin:/sbin");
  o.env.insert(o.env.end(), opts.env.begin(), opts.env.end());
  return o;
}

RunResult Sandbox::run(const std::string& cmd, const ExecOptions& opts) { return run_argv({"/bin/sh", "-c", cmd}, opts); }

RunResult Sandbox::run_argv(const std::vector<std::string>& argv, const ExecOptions& opts) {
  if (cleaned_) throw std::logic_error("sandbox: already cleaned up");
  try {
    const lfp::sys::SpawnResult r = lfp::sys::run(argv, spawn_options(opts));
    return {.code = r.code, .timed_out = r.timed_out, .out = r.out, .err = r.err};
  } catch (const lfp::sys::SpawnError& e) {
    throw std::runtime_error(std::string("sandbox: ") + e.what());
  }
}

Process Sandbox::spawn(const std::string& cmd, const ExecOptions& opts) {
  return spawn_argv({"/bin/sh", "-c", cmd}, opts);
}

Process Sandbox::spawn_argv(const std::vector<std::string>& argv, const ExecOptions& opts) {
  unsigned n = files_++;
  std::string out = tmpdir_ + "/proc-" + std::to_string(n) + ".out", err = tmpdir_ + "/proc-" + std::to_string(n) + ".err";
  int ofd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int efd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (ofd < 0 || efd < 0) {
    if (ofd >= 0) close(ofd);
    if (efd >= 0) close(efd);
    throw std::runtime_error("sandbox: cannot create " + out);
  }
  if (cleaned_) throw std::logic_error("sandbox: already cleaned up");
  lfp::sys::SpawnOptions o = spawn_options(opts);
  o.stdout_fd = ofd;
  o.stderr_fd = efd;
  auto st = std::make_shared<ProcState>();
  {
    SignalBlock block;  // registered before a SIGINT's clean-up can run
    try {
      st->pid = lfp::sys::spawn(argv, o);
    } catch (const lfp::sys::SpawnError& e) {
      close(ofd);
      close(efd);
      throw std::runtime_error(std::string("sandbox: ") + e.what());
    }
    procs_.push_back(st);
  }
  close(ofd);
  close(efd);
  st->out_path = out;
  st->err_path = err;
  return Process(st);
}

bool Sandbox::wait_for_port(Side side, uint16_t port, std::chrono::milliseconds timeout, bool udp) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    RunResult r = run_argv({"ss", udp ? "-Hlun" : "-Hltn", "sport = :" + std::to_string(port)},
                           {.side = side, .timeout = std::chrono::seconds(5)});
    if (r.ok() && r.out.find_first_not_of(" \n") != std::string::npos) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string Sandbox::mount_bpffs() {
  SignalBlock block;
  std::string dir = tmpdir_ + "/bpffs-" + std::to_string(bpffs_.size());
  if (mkdir(dir.c_str(), 0700) != 0) throw std::runtime_error("mkdir " + dir + ": " + strerror(errno));
  bpffs_.push_back(dir);
  if (mount("bpf", dir.c_str(), "bpf", 0, "mode=0700") != 0) {
    int e = errno;
    bpffs_.pop_back();
    rmdir(dir.c_str());
    throw std::runtime_error("mount -t bpf bpf " + dir + ": " + strerror(e));
  }
  return dir;
}

std::string Sandbox::write_file(const std::string& name, std::string_view content, mode_t mode) {
  fs::path p = fs::path(tmpdir_) / name;
  fs::create_directories(p.parent_path());
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!f) throw std::runtime_error("sandbox: cannot write " + p.string());
  }
  chmod(p.c_str(), mode);
  return p;
}

}  // namespace lfp::test
