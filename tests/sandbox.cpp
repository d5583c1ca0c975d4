// The test sandbox: see sandbox.hpp. Clean-up uses only async-signal-safe system calls (no allocation, no
// fork), so the very same code runs from the destructor, from atexit and from the signal handlers.
#include "sandbox.hpp"

#include "lfp/sys/mounts.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
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
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char** environ;

namespace lfp::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kNetnsDir = "/run/netns";
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

// What `ip netns del` does: detach the bind mount of the namespace and remove its file.
void remove_netns(const char* path) {
  if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) complain("cannot unmount", path, errno);
  if (unlink(path) != 0 && errno != ENOENT) complain("cannot remove", path, errno);
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

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* env = getenv("PATH");
  std::string path = std::string(env ? env : "/usr/local/bin:/usr/bin:/bin") + ":/usr/sbin:/sbin";
  std::stringstream ss(path);
  for (std::string dir; std::getline(ss, dir, ':');) {
    if (dir.empty()) continue;
    std::string p = dir + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void reap(ProcState& s, int status) {
  s.code = decode_status(status);
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
  for (auto& e : fs::directory_iterator(kNetnsDir, ec)) {
    std::string n = e.path().filename();
    if (!owner_dead(n)) continue;
    kill_netns_procs(e.path().c_str());
    remove_netns(e.path().c_str());
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
  if (find_program("ip").empty()) return no("`ip` (iproute2) is not installed");
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
  ns_path_a_ = std::string(kNetnsDir) + "/" + ns_a_;
  ns_path_b_ = std::string(kNetnsDir) + "/" + ns_b_;
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

  const std::string ip = find_program("ip");
  check(run_impl({ip, "netns", "add", ns_a_}, {}, true), "ip netns add");
  check(run_impl({ip, "netns", "add", ns_b_}, {}, true), "ip netns add");

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

std::shared_ptr<ProcState> Sandbox::launch(const std::vector<std::string>& argv, const ExecOptions& opts,
                                           bool in_host_ns, int out_fd, int err_fd) {
  if (argv.empty()) throw std::invalid_argument("sandbox: empty command");
  if (cleaned_) throw std::logic_error("sandbox: already cleaned up");
  // Everything the child needs is prepared here: between fork and exec it only makes system calls.
  const std::string path = find_program(argv[0]);
  if (path.empty()) throw std::runtime_error("sandbox: program not found: " + argv[0]);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  std::vector<std::string> env;
  auto overridden = [&](const char* e) {
    for (auto& x : opts.env) {
      auto eq = x.find('=');
      if (eq != std::string::npos && strncmp(e, x.c_str(), eq + 1) == 0) return true;
    }
    return false;
  };
  for (char** e = environ; e && *e; ++e) {
    if (overridden(*e)) continue;
    std::string s = *e;
    if (s.rfind("PATH=", 0) == 0 && s.find("/sbin") == std::string::npos) s += ":/usr/sbin:/sbin";
    env.push_back(std::move(s));
  }
  env.insert(env.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> cenv;
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  const std::string procs = cgroup_ + "/cgroup.procs";
  const char* cg = opts.in_cgroup ? procs.c_str() : nullptr;
  const char* nsp = in_host_ns ? nullptr : (opts.side == Side::A ? ns_path_a_.c_str() : ns_path_b_.c_str());
  const bool drop = opts.uid.has_value();
  const uid_t uid = opts.uid.value_or(0);
  const gid_t gid = opts.gid.value_or(static_cast<gid_t>(uid));

  int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];
  if (in_fd < 0 || pipe2(report, O_CLOEXEC) != 0) {
    if (in_fd >= 0) close(in_fd);
    throw std::runtime_error("sandbox: cannot prepare a child");
  }
  auto state = std::make_shared<ProcState>();

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler runs in the child, nor while procs_ changes
  procs_.reserve(procs_.size() + 1);
  pid_t pid = fork();
  if (pid == 0) {
    // Child: a failing step writes {step, errno} to the report pipe; a successful exec closes it.
    auto fail = [&](int step) {
      int info[2] = {step, errno};
      (void)!write(report[1], info, sizeof info);
      _exit(127);
    };
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) sigaction(s, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    setpgid(0, 0);
    if (cg) {  // 1. the cgroup (before anything else, so all it does is accounted there)
      int fd = open(cg, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) fail(1);
      close(fd);
    }
    if (nsp) {  // 2. the network namespace
      int fd = open(nsp, O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) fail(2);
      close(fd);
    }
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) fail(3);
    if (drop && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) fail(4);  // 3. the user
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(path.c_str(), cargv.data(), cenv.data());
    fail(5);
  }
  if (pid > 0) {
    setpgid(pid, pid);  // also here, so that killing the group works whoever runs first
    state->pid = pid;
    procs_.push_back(state);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close(in_fd);
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    throw std::runtime_error("sandbox: fork: " + std::string(strerror(fork_errno)));
  }
  int info[2];
  ssize_t n;
  do n = read(report[0], info, sizeof info);
  while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof info)) {
    int status;
    waitpid(pid, &status, 0);
    reap(*state, status);
    static const char* const steps[] = {"", "joining the cgroup", "entering the namespace", "redirecting stdio",
                                        "switching user", "exec"};
    throw std::runtime_error("sandbox: cannot start " + argv[0] + ": " + steps[info[0]] + ": " + strerror(info[1]));
  }
  return state;
}

RunResult Sandbox::run_impl(const std::vector<std::string>& argv, const ExecOptions& opts, bool in_host_ns) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("sandbox: pipe");
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    throw std::runtime_error("sandbox: pipe");
  }
  std::shared_ptr<ProcState> st;
  try {
    st = launch(argv, opts, in_host_ns, out[1], err[1]);
  } catch (...) {
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    throw;
  }
  close(out[1]);
  close(err[1]);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, st->pid.load(), 0));

  RunResult r;
  std::string* sinks[2] = {&r.out, &r.err};
  int fds[2] = {out[0], err[0]};
  auto drain = [&](int i) {  // reads what is there; false at EOF
    char buf[4096];
    for (;;) {
      ssize_t n = read(fds[i], buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && errno == EAGAIN;
    }
  };
  for (int fd : fds) fcntl(fd, F_SETFL, O_NONBLOCK);
  const auto deadline = Clock::now() + opts.timeout;
  bool open_[2] = {true, true};
  for (;;) {
    if (try_reap(*st)) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      ::kill(-st->pid, SIGKILL);
      ::kill(st->pid, SIGKILL);
      int status;
      waitpid(st->pid, &status, 0);
      reap(*st, status);
      r.timed_out = true;
      break;
    }
    pollfd p[3];
    int np = 0, idx[3];
    for (int i = 0; i < 2; ++i)
      if (open_[i]) {
        idx[np] = i;
        p[np++] = {fds[i], POLLIN, 0};
      }
    if (pidfd >= 0) {
      idx[np] = -1;
      p[np++] = {pidfd, POLLIN, 0};
    }
    int wait_ms = static_cast<int>(std::min<long long>(left, pidfd >= 0 ? 1000 : 5));
    if (poll(p, static_cast<nfds_t>(np), wait_ms) <= 0) continue;
    for (int k = 0; k < np; ++k)
      if (idx[k] >= 0 && (p[k].revents & (POLLIN | POLLHUP | POLLERR)))
        if (!drain(idx[k])) open_[idx[k]] = false;
  }
  for (int i = 0; i < 2; ++i)  // what is left in the pipes (a background grandchild may keep them open)
    if (open_[i]) drain(i);
  for (int fd : fds) close(fd);
  if (pidfd >= 0) close(pidfd);
  r.code = r.timed_out ? -1 : st->code;
  return r;
}

RunResult Sandbox::run(const std::string& cmd, const ExecOptions& opts) {
  return run_impl({"/bin/sh", "-c", cmd}, opts, false);
}
RunResult Sandbox::run_argv(const std::vector<std::string>& argv, const ExecOptions& opts) {
  return run_impl(argv, opts, false);
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
  std::shared_ptr<ProcState> st;
  try {
    st = launch(argv, opts, false, ofd, efd);
  } catch (...) {
    close(ofd);
    close(efd);
    throw;
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
