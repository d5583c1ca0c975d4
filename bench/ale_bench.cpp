// SPDX-License-Identifier: MIT
// lfp-ale-bench: what the in-kernel ALE layers cost real TCP traffic, measured in one run inside a
// test Sandbox (tests/support/sandbox.hpp): two private network namespaces joined by a veth pair and a child
// cgroup. Nothing runs in the machine's own network namespace or cgroup; all traffic goes from
// namespace A (in the sandbox cgroup, the one lfpd governs) to namespace B.
//
//   1. connect() latency (p50/p99) and connections per second of a socket/connect/close loop, in
//      these configurations: (a) no lfpd and no hooks attached; (h) lfpd attached to the sandbox
//      cgroup, no filter (the hooks' fixed cost); (b) a realistic ALE_AUTH_CONNECT_V4 policy:
//      non-matching filters (remote ports, remote addresses, other applications) in two sublayers
//      ahead of one permit that matches, so the kernel walks the whole policy on every connect;
//      (c) the same plus a bulk of further non-matching filters (1000 in all by default); (u) one filter
//      the kernel cannot decide (a PREFIX match on the app): lfpd, in namespace A with --queue, decides
//      each connect on its first packet through NFQUEUE (the user-space path).
//   2. established TCP throughput with iperf3, A->B and B->A (-R), in a and b.
//
// Rounds alternate the order (a h b c, then c b h a, ...) and the figures are medians over the
// rounds, since the machine is shared and noisy. Each state is checked before it is measured: no
// program attached to the cgroup in a; lfpd reported compiling the expected number of filters, none
// needing user space; and probe connects to ports that only b's or only c's policy blocks are refused
// (EPERM) exactly when they should be. Defaults take about 40 s. Notes: docs/ale-bench-notes.md.
//
//   lfp-ale-bench [--json] [--rounds N] [--conns N] [--warmup N] [--filters N] [--large N]
//                 [--iperf-secs S] [--iperf-rounds N] [--no-hooks-only] [--no-userspace] [--no-pin] [--bpf-stats]
//                 [--port P]
//                 [--lfpd PATH]
//
// The same binary also serves as the programs that run inside the sandbox (selected by argv[1]):
//   lfp-ale-bench serve PORT CPU                          accept()+close() loop (in B)
//   lfp-ale-bench connect IP PORT COUNT WARMUP FILE CPU   the measuring client (in A, in the cgroup)
//   lfp-ale-bench probe IP PORT                           one connect(); prints OK or the errno's name
// (CPU: the one to pin to, -1 for none.)
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/client/client.hpp"
#include "bpf_stats.hpp"
#include "lfp/sys/spawn.hpp"
#include "lfpd_ready.hpp"
#include "live_support.hpp"
#include "sandbox.hpp"

using nlohmann::json;
using lfp::test::ExecOptions;
using lfp::test::Sandbox;
using lfp::test::Side;
using lfp::test::when;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// Child modes: they run inside the sandbox's namespaces.

sockaddr_in addr_of(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    std::fprintf(stderr, "bad IPv4 address %s\n", ip);
    std::exit(2);
  }
  return a;
}

// accept()+close() for ever (the sandbox kills it).
int child_serve(int port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = addr_of("0.0.0.0", port);
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 4096) != 0) {
    std::perror("serve: bind/listen");
    return 1;
  }
  for (;;) {
    int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) close(c);
    else if (errno != EINTR && errno != ECONNABORTED) std::perror("serve: accept");
  }
}


// COUNT measured connections after WARMUP unmeasured ones. Each: socket, SO_LINGER 0 (the close
// sends a RST, so no TIME_WAIT uses up the ephemeral ports), connect, close. Writes, per connection,
// the connect() time and the whole cycle's time in ns (two uint32) to FILE, and prints the loop's
// wall time in ns.
int child_connect(const char* ip, int port, long count, long warmup, const char* file) {
  const sockaddr_in a = addr_of(ip, port);
  std::vector<uint32_t> ns;
  ns.reserve(2 * static_cast<size_t>(count));
  const linger lg{1, 0};
  auto since = [](Clock::time_point from, Clock::time_point to) {
    return static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
  };
  Clock::time_point start;
  for (long i = 0; i < warmup + count; ++i) {
    const auto t_socket = Clock::now();
    if (i == warmup) start = t_socket;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      std::perror("connect: socket");
      return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    const auto t0 = Clock::now();
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    const auto t1 = Clock::now();
    if (r != 0) {
      std::fprintf(stderr, "connect %s:%d: %s (after %ld connections)\n", ip, port, strerror(errno), i);
      return 1;
    }
    close(fd);
    if (i >= warmup) {
      ns.push_back(since(t0, t1));
      ns.push_back(since(t_socket, Clock::now()));
    }
  }
  const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(ns.data()), static_cast<std::streamsize>(ns.size() * sizeof(uint32_t)));
  if (!out) {
    std::fprintf(stderr, "connect: cannot write %s\n", file);
    return 1;
  }
  std::printf("%lld\n", static_cast<long long>(wall));
  return 0;
}

int child_probe(const char* ip, int port) {
  const sockaddr_in a = addr_of(ip, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) std::printf("OK\n");
  else std::printf("%s\n", errno == EPERM ? "EPERM" : errno == ECONNREFUSED ? "ECONNREFUSED" : strerror(errno));
  close(fd);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

struct Options {
  bool json = false;
  int rounds = 21;
  long conns = 3000, warmup = 300;
  int filters = 50;   // configuration b: non-matching filters (plus one permit)
  int large = 1000;   // configuration c: non-matching filters in all (0: no configuration c)
  int iperf_secs = 1;
  int iperf_rounds = 7;  // 0: no iperf3
  bool hooks_only = true;  // configuration h: lfpd attached, no filter
  bool pin = true;         // the connect loop on CPU 0, its accept loop on CPU 1 (iperf3 is left alone)
  bool userspace = true;   // configuration u: every connect decided by lfpd through NFQUEUE
  bool bpf_stats = false;  // the kernel's run time of each LFP program, per connection (BPF_ENABLE_STATS)
  int port = 18080;      // the accept loop; port+1 and port+2 are probes nothing listens on
  int iperf_port = 5201;
  std::string lfpd = LFPD_PATH;
};

void note(const std::string& s) { std::fprintf(stderr, "lfp-ale-bench: %s\n", s.c_str()); }

using lfp::bench::ProgStats;

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot read /proc/self/exe");
  return p;
}

// How many programs are attached to the cgroup itself for this attach type (BPF_PROG_QUERY).
int attached_programs(const std::string& cgroup, bpf_attach_type type) {
  int fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + cgroup + ": " + strerror(errno));
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.query.target_fd = static_cast<uint32_t>(fd);
  attr.query.attach_type = type;
  long r = syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof attr);
  int err = errno;
  close(fd);
  if (r != 0) throw std::runtime_error("BPF_PROG_QUERY on " + cgroup + ": " + strerror(err));
  return static_cast<int>(attr.query.prog_cnt);
}

// Appends to `log` (for a child's stdout and stderr): an fd closed when it goes out of scope.
struct LogFd {
  explicit LogFd(const std::string& path) : fd(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {
    if (fd < 0) throw std::runtime_error("open " + path + ": " + strerror(errno));
  }
  ~LogFd() { close(fd); }
  LogFd(const LogFd&) = delete;
  LogFd& operator=(const LogFd&) = delete;
  int fd;
};

// Runs a program in this process's namespaces and waits; its output goes to `log`. Exit code.
int run_host(const std::vector<std::string>& args, const std::string& log) {
  const LogFd out(log);
  return lfp::sys::wait_exit(lfp::sys::spawn(args, {.stdout_fd = out.fd, .stderr_fd = out.fd}));
}

// A real lfpd governing the sandbox cgroup, its state and socket inside the sandbox's temp dir.
// It gets SIGTERM if this process dies, whatever the way (PR_SET_PDEATHSIG).
class Lfpd {
 public:
  Lfpd(const Options& o, Sandbox& sb, std::string pins) : o_(o), sb_(sb), pins_(std::move(pins)) {
    dir_ = sb.tmpdir() + "/lfpd";
    fs::create_directories(dir_);
    socket_ = dir_ + "/lfpd.sock";
    log_ = dir_ + "/lfpd.log";
  }
  ~Lfpd() {
    try {
      stop();
    } catch (const std::exception& e) {
      note(std::string("stopping lfpd: ") + e.what());  // the sandbox's clean-up detaches the hooks anyway
    }
  }

  bool running() const { return pid_ > 0; }
  bool userspace() const { return userspace_; }

  // What lfpd last reported compiling into the kernel: {filters, of which need user space}.
  std::optional<std::pair<int, int>> last_install() const {
    const std::string log = lfp::test::read_text(log_);
    const std::string tag = " filters installed (";
    size_t at = log.rfind(tag);
    if (at == std::string::npos) return std::nullopt;
    size_t start = log.rfind("kernel: ", at);
    if (start == std::string::npos) return std::nullopt;
    return std::make_pair(std::atoi(log.c_str() + start + 8), std::atoi(log.c_str() + at + tag.size()));
  }
  const std::string& socket() const { return socket_; }

  // userspace: lfpd runs in namespace A (where the client's packets are) with an NFQUEUE, for the
  // decisions the kernel hands to user space.
  void start(bool userspace = false) {
    if (pid_ > 0) return;
    std::error_code ec;
    fs::remove_all(dir_ + "/state", ec);  // each start is a fresh lfpd (nothing is persistent anyway)
    // The sandbox's cgroup; no packet layers (lfpd may run in the host's namespace, and this measures ALE).
    std::vector<std::string> args = {o_.lfpd, "--state-dir", dir_ + "/state", "--socket", socket_, "--log-level",
                                     "info", "--cgroup", sb_.cgroup(), "--no-packet-layers", "--bpf-pin", pins_};
    if (userspace) args.insert(args.end(), {"--queue", "7348"});
    userspace_ = userspace;
    const LogFd out(log_);
    pid_ = lfp::sys::spawn(args, {.stdout_fd = out.fd,
                                  .stderr_fd = out.fd,
                                  .netns = userspace ? sb_.ns_path(Side::A) : "",
                                  .die_with_parent = true});
    detached_ = false;  // from now on stop() detaches what it may have attached
    // (ready when a session opens: the hooks are attached by then)
    lfp::test::wait_until_serving(socket_, pid_, 10, [&] { return ": " + lfp::test::read_text(log_); });
  }

  // Stops lfpd, then detaches the hooks it left pinned (`lfpd --detach`): no LFP at all afterwards.
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    if (!detached_) {
      int rc = run_host({o_.lfpd, "--detach", "--bpf-pin", pins_}, log_);
      if (rc != 0) note("lfpd --detach exited " + std::to_string(rc) + ": " + lfp::test::read_text(log_));
      detached_ = true;
    }
  }

 private:
  const Options& o_;
  Sandbox& sb_;
  std::string pins_, dir_, socket_, log_;
  pid_t pid_ = -1;
  bool detached_ = true;
  bool userspace_ = false;
};

// ---- the policy ----


constexpr const char* kProvider = "6c1e0d2a-3b7f-4c55-9e21-a1b2c3d4e501";
constexpr const char* kSubHi = "6c1e0d2a-3b7f-4c55-9e21-a1b2c3d4e5a1";  // weight 0xc000
constexpr const char* kSubLo = "6c1e0d2a-3b7f-4c55-9e21-a1b2c3d4e5a2";  // weight 0x1000

// Executables whose paths app filters name: none is this program or iperf3 (by device and inode).
std::vector<std::string> other_apps(const std::vector<std::string>& exclude, size_t want) {
  std::vector<std::pair<dev_t, ino_t>> ex;
  for (auto& p : exclude) {
    struct stat st;
    if (stat(p.c_str(), &st) == 0) ex.emplace_back(st.st_dev, st.st_ino);
  }
  std::vector<std::string> names;
  std::error_code ec;
  for (auto& e : fs::directory_iterator("/usr/bin", ec)) {
    struct stat st;
    if (lstat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) continue;
    if (std::find(ex.begin(), ex.end(), std::make_pair(st.st_dev, st.st_ino)) != ex.end()) continue;
    names.push_back(e.path());
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) throw std::runtime_error("no executables in /usr/bin to name in app filters");
  if (names.size() > want) names.resize(want);
  return names;
}

// The i-th non-matching filter: blocks to remote ports, remote addresses, other applications. None
// matches the benchmark's flows (to B's address, ports `port` and iperf3's, from this program or
// iperf3). Filter `probe_port` blocks one probe port the benchmark checks enforcement with.
json blocker(int i, const std::vector<std::string>& apps, bool hi) {
  json f = {{"name", "bench block " + std::to_string(i)},
            {"layer", "ALE_AUTH_CONNECT_V4"},
            {"action", "BLOCK"},
            {"provider", kProvider},
            {"sublayer", hi ? kSubHi : kSubLo},
            {"weight", 100000 + i}};
  switch (i % 4) {
    case 0:  // TCP to a remote port
      f["conditions"] = {when("IP_PROTOCOL", "TCP"), when("IP_REMOTE_PORT", 20000 + i % 40000)};
      break;
    case 1:  // a remote host (RFC 2544 benchmark range: never routed here)
      f["conditions"] = {when("IP_REMOTE_ADDRESS", "198.18." + std::to_string((i >> 8) & 255) + "." +
                                                       std::to_string(i & 255) + "/32")};
      break;
    case 2:  // an application
      f["conditions"] = {when("ALE_APP_ID", apps[static_cast<size_t>(i / 4) % apps.size()])};
      break;
    default:  // privileged ports of a subnet (shared address space: never routed here)
      f["conditions"] = {when("IP_REMOTE_ADDRESS", "100.64." + std::to_string((i >> 2) & 255) + ".0/24"),
                         when("IP_REMOTE_PORT", {{"low", 1}, {"high", 1023}}, "RANGE")};
      break;
  }
  return f;
}

json probe_blocker(int port, const char* sublayer, const std::string& name) {
  return {{"name", name},
          {"layer", "ALE_AUTH_CONNECT_V4"},
          {"action", "BLOCK"},
          {"provider", kProvider},
          {"sublayer", sublayer},
          {"weight", 99999},
          {"conditions", {when("IP_PROTOCOL", "TCP"), when("IP_REMOTE_PORT", port)}}};
}
// The provider and the two sublayers, applied by a static session as soon as lfpd starts (they cost
// the kernel nothing: only filters are compiled into it).
json frame_policy() {
  return {{"providers", {{{"key", kProvider}, {"name", "lfp-ale-bench"}}}},
          {"sublayers", {{{"key", kSubHi}, {"name", "bench hi"}, {"provider", kProvider}, {"weight", 0xc000}},
                         {{"key", kSubLo}, {"name", "bench lo"}, {"provider", kProvider}, {"weight", 0x1000}}}}};
}

// Configuration b: o.filters non-matching filters over the two sublayers (one blocks probe port+1),
// then the permit that matches the benchmark's flows, last in evaluation order.
json base_policy(const Options& o, const Sandbox& sb, const std::vector<std::string>& apps,
                 const std::vector<std::string>& permitted_apps) {
  json filters = json::array();
  filters.push_back(probe_blocker(o.port + 1, kSubHi, "bench probe 1"));
  for (int i = 1; i < o.filters; ++i) filters.push_back(blocker(i, apps, i % 2 == 0));
  json permit = {{"name", "bench permit"},
                 {"layer", "ALE_AUTH_CONNECT_V4"},
                 {"action", "PERMIT"},
                 {"provider", kProvider},
                 {"sublayer", kSubLo},
                 {"weight", {{"explicit", 0}}},
                 {"conditions", {when("IP_REMOTE_ADDRESS", sb.ip4(Side::B) + "/32")}}};
  for (auto& a : permitted_apps) permit["conditions"].push_back(when("ALE_APP_ID", a));  // OR'ed
  filters.push_back(permit);
  return {{"filters", filters}};
}

// Configuration c adds these: o.large non-matching filters in all, one blocking probe port+2.
json bulk_policy(const Options& o, const std::vector<std::string>& apps) {
  json filters = json::array();
  filters.push_back(probe_blocker(o.port + 2, kSubLo, "bench probe 2"));
  for (int i = o.filters + 1; i < o.large; ++i) filters.push_back(blocker(i, apps, i % 2 == 0));
  return {{"filters", filters}};
}

// ---- statistics ----

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct ConnectRun {
  double p50_us, p99_us, mean_us, cycle_p50_us, per_sec;
};

// The states the benchmark moves between, in this order (levels).
enum Level { kNone = 0, kHooks = 1, kBase = 2, kBulk = 3, kUser = 4 /* apart: the user-space path */ };

struct Config {
  std::string id, label;
  Level level;
  int filters = 0;
  std::vector<ConnectRun> runs;
  std::vector<double> fwd_gbps, rev_gbps;
  ProgStats bpf;         // --bpf-stats: what its connect loops ran, by program
  uint64_t bpf_conns = 0;  // connections those loops made (warm-up included)
};

// ---- the benchmark ----

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  json run() {
    const auto t_start = Clock::now();
    exe_ = self_exe();
    iperf3_ = "/usr/bin/iperf3";
    if (o_.iperf_rounds > 0 && access(iperf3_.c_str(), X_OK) != 0)
      throw std::runtime_error("iperf3 is not installed (Debian package iperf3); --iperf-rounds 0 skips it");
    if (o_.filters < 1) throw std::runtime_error("--filters must be at least 1");
    if (o_.large > 0 && o_.large <= o_.filters) o_.large = 0;
    const int ncpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    if (o_.pin && ncpu < 2) o_.pin = false;

    if (o_.bpf_stats) stats_ = std::make_unique<lfp::bench::StatsOn>();
    note("setting up the sandbox");
    sb_ = std::make_unique<Sandbox>();
    pins_ = sb_->mount_bpffs();
    lfpd_ = std::make_unique<Lfpd>(o_, *sb_, pins_);
    ip_b_ = sb_->ip4(Side::B);

    sb_->spawn_argv({exe_, "serve", std::to_string(o_.port), o_.pin ? "1" : "-1"}, {.side = Side::B});
    if (!sb_->wait_for_port(Side::B, static_cast<uint16_t>(o_.port)))
      throw std::runtime_error("the accept loop did not start");
    if (o_.iperf_rounds > 0) {
      sb_->spawn_argv({iperf3_, "-s", "-p", std::to_string(o_.iperf_port)}, {.side = Side::B});
      if (!sb_->wait_for_port(Side::B, static_cast<uint16_t>(o_.iperf_port)))
        throw std::runtime_error("the iperf3 server did not start");
    }

    const auto apps = other_apps({exe_, iperf3_}, 400);
    base_ = base_policy(o_, *sb_, apps, {exe_, iperf3_});
    if (o_.large > 0) bulk_ = bulk_policy(o_, apps);

    configs_.push_back({"a", "no LFP (no lfpd, no hooks)", kNone, 0, {}, {}, {}});
    if (o_.hooks_only) configs_.push_back({"h", "lfpd, hooks, no filter", kHooks, 0, {}, {}, {}});
    configs_.push_back({"b", "lfpd, " + std::to_string(o_.filters + 1) + " filters", kBase, o_.filters + 1, {}, {}, {}});
    if (o_.large > 0)
      configs_.push_back({"c", "lfpd, " + std::to_string(o_.large + 1) + " filters", kBulk, o_.large + 1, {}, {}, {}});
    if (o_.userspace)
      configs_.push_back({"u", "lfpd, user-space decision", kUser, 1, {}, {}, {}});

    for (int r = 0; r < o_.rounds; ++r) {
      std::vector<size_t> order;
      for (size_t i = 0; i < configs_.size(); ++i) order.push_back(i);
      if (r % 2) std::reverse(order.begin(), order.end());  // a h b c, c b h a, ...: drift cancels out
      for (size_t i : order) {
        Config& c = configs_[i];
        enter(c.level);
        const ProgStats before = stats_ ? lfp::bench::lfp_prog_stats() : ProgStats{};
        c.runs.push_back(measure_connect());
        if (stats_) {
          lfp::bench::add_since(c.bpf, before);
          c.bpf_conns += static_cast<uint64_t>(o_.conns + o_.warmup);
        }
        const bool iperf = (c.level == kNone || c.level == kBase) && r < o_.iperf_rounds;
        if (iperf) {
          c.fwd_gbps.push_back(measure_iperf(false));
          c.rev_gbps.push_back(measure_iperf(true));
        }
        note("round " + std::to_string(r + 1) + "/" + std::to_string(o_.rounds) + " " + c.id + ": connect p50 " +
             fmt(c.runs.back().p50_us, 1) + " us, cycle p50 " + fmt(c.runs.back().cycle_p50_us, 1) + " us, " +
             fmt(c.runs.back().per_sec, 0) + " conn/s" +
             (iperf ? ", iperf3 " + fmt(c.fwd_gbps.back(), 2) + " / " + fmt(c.rev_gbps.back(), 2) + " Gbit/s" : ""));
      }
    }
    enter(kNone);
    lfpd_.reset();
    sb_->cleanup();
    sb_.reset();
    stats_.reset();
    return report(std::chrono::duration<double>(Clock::now() - t_start).count());
  }

 private:
  static std::string fmt(double v, int prec) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
  }

  // Waits until lfpd holds exactly `want` filters (a closed dynamic session's go asynchronously).
  void wait_filters(size_t want) {
    for (int i = 0; frame_client_->enumerate("filter").size() != want; ++i) {
      if (i > 1000) throw std::runtime_error("lfpd did not remove the filters of a closed dynamic session");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Puts the machine in the state `level`, and checks that the kernel enforces what it says. The
  // filters of b and c are added by dynamic sessions, so that closing a session takes them away.
  void enter(Level level) {
    if (level == kUser || (lfpd_->userspace() && lfpd_->running())) {  // lfpd starts afresh for it and after it
      bulk_client_.reset();
      base_client_.reset();
      frame_client_.reset();
      lfpd_->stop();
    }
    if (level == kUser) {
      lfpd_->start(true);
      frame_client_ = std::make_unique<lfp::client::Client>(lfpd_->socket(), lfp::client::SessionOptions{.name = "bench"});
      // A PREFIX (WFP: suffix) match on the app the kernel cannot evaluate: every connect's first
      // packet goes to lfpd's queue, and the engine permits it there.
      frame_client_->apply({{"filters", {{{"name", "bench permit, in user space"}, {"layer", "ALE_AUTH_CONNECT_V4"},
                                          {"action", "PERMIT"},
                                          {"conditions", {when("ALE_APP_ID", "lfp-ale-bench", "PREFIX")}}}}}});
      std::optional<std::pair<int, int>> got;
      for (int i = 0; i < 200 && !(got = lfpd_->last_install(), got && got->second == 1); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!got || got->second != 1) throw std::runtime_error("lfpd did not report one filter needing user space");
      expect_probes("ECONNREFUSED", "ECONNREFUSED");  // permitted by the engine, refused by B
      return;
    }
    if (level == kNone) {
      bulk_client_.reset();
      base_client_.reset();
      frame_client_.reset();
      lfpd_->stop();
      if (attached_programs(sb_->cgroup(), BPF_CGROUP_INET4_CONNECT) != 0)
        throw std::runtime_error("hooks still attached to the sandbox cgroup after lfpd --detach");
      expect_probes("ECONNREFUSED", "ECONNREFUSED");
      return;
    }
    if (!lfpd_->running()) {
      lfpd_->start();
      if (attached_programs(sb_->cgroup(), BPF_CGROUP_INET4_CONNECT) < 1)
        throw std::runtime_error("lfpd attached no connect4 hook to the sandbox cgroup");
      frame_client_ = std::make_unique<lfp::client::Client>(lfpd_->socket(), lfp::client::SessionOptions{.name = "bench"});
      frame_client_->apply(frame_policy());
    }
    const size_t nbase = base_["filters"].size();
    if (level < kBulk && bulk_client_) {
      bulk_client_.reset();
      wait_filters(nbase);
    }
    if (level < kBase && base_client_) {
      base_client_.reset();
      wait_filters(0);
    }
    auto open_with = [&](const char* name, const json& policy) {
      auto c = std::make_unique<lfp::client::Client>(lfpd_->socket(),
                                                     lfp::client::SessionOptions{.name = name, .dynamic = true});
      c->begin();
      c->apply(policy);
      c->commit();
      return c;
    };
    if (level >= kBase && !base_client_) base_client_ = open_with("bench base", base_);
    if (level >= kBulk && !bulk_client_) bulk_client_ = open_with("bench bulk", bulk_);
    const size_t want = (level >= kBase ? nbase : 0) + (level >= kBulk ? bulk_["filters"].size() : 0);
    std::optional<std::pair<int, int>> got;
    for (int i = 0; i < 200; ++i) {
      got = lfpd_->last_install();
      if (got && got->first == static_cast<int>(want)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!got || got->first != static_cast<int>(want) || got->second != 0)
      throw std::runtime_error("lfpd did not report " + std::to_string(want) +
                               " kernel filters, none needing user space" +
                               (got ? " (last: " + std::to_string(got->first) + ", " + std::to_string(got->second) + ")"
                                    : ""));
    expect_probes(level >= kBase ? "EPERM" : "ECONNREFUSED", level >= kBulk ? "EPERM" : "ECONNREFUSED");
  }

  // Enforcement check: probe ports port+1 (blocked by b and c) and port+2 (blocked by c only); with
  // nothing listening there, a connect that the policy lets through is refused by B.
  void expect_probes(const std::string& p1, const std::string& p2) {
    for (int k = 1; k <= 2; ++k) {
      const std::string want = k == 1 ? p1 : p2;
      std::string got;
      for (int attempt = 0; attempt < 100; ++attempt) {  // a policy change may take a moment to be installed
        auto r = sb_->run_argv({exe_, "probe", ip_b_, std::to_string(o_.port + k)}, {.side = Side::A, .in_cgroup = true});
        got = r.out.substr(0, r.out.find('\n'));
        if (got == want) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (got != want)
        throw std::runtime_error("enforcement check: connect to port " + std::to_string(o_.port + k) + " gave " + got +
                                 ", expected " + want);
    }
  }

  ConnectRun measure_connect() {
    const std::string file = sb_->tmpdir() + "/latencies.bin";
    auto r = sb_->run_argv({exe_, "connect", ip_b_, std::to_string(o_.port), std::to_string(o_.conns),
                            std::to_string(o_.warmup), file, o_.pin ? "0" : "-1"},
                           {.side = Side::A, .in_cgroup = true, .timeout = std::chrono::seconds(120)});
    if (!r.ok()) throw std::runtime_error("the connect loop failed (" + std::to_string(r.code) + "): " + r.err);
    const double wall_ns = std::stod(r.out);
    const std::string raw = lfp::test::read_text(file);
    const size_t n = raw.size() / (2 * sizeof(uint32_t));
    if (n != static_cast<size_t>(o_.conns)) throw std::runtime_error("the connect loop wrote too few samples");
    std::vector<double> connect_us(n), cycle_us(n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      uint32_t v[2];
      std::memcpy(v, raw.data() + i * sizeof v, sizeof v);
      connect_us[i] = v[0] / 1000.0;
      cycle_us[i] = v[1] / 1000.0;
      sum += connect_us[i];
    }
    return {percentile(connect_us, 0.5), percentile(connect_us, 0.99), sum / static_cast<double>(n),
            percentile(cycle_us, 0.5), static_cast<double>(o_.conns) / (wall_ns / 1e9)};
  }

  // iperf3 from A (in the cgroup) to B; reverse: B sends, A receives. Gbit/s the receiver counted.
  double measure_iperf(bool reverse) {
    std::vector<std::string> argv = {iperf3_, "-c", ip_b_, "-p", std::to_string(o_.iperf_port), "-t",
                                     std::to_string(o_.iperf_secs), "-J"};
    if (reverse) argv.push_back("-R");
    std::string err;
    for (int attempt = 0; attempt < 3; ++attempt) {  // the server may still be closing the previous test
      auto r = sb_->run_argv(argv, {.side = Side::A, .in_cgroup = true,
                                    .timeout = std::chrono::seconds(o_.iperf_secs + 20)});
      try {
        json j = json::parse(r.out);
        if (r.ok() && j.contains("end") && j["end"].contains("sum_received"))
          return j["end"]["sum_received"]["bits_per_second"].get<double>() / 1e9;
        err = j.value("error", r.err);
      } catch (const json::exception&) {
        err = r.err.empty() ? r.out : r.err;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    throw std::runtime_error("iperf3 failed: " + err);
  }

  json report(double seconds) {
    json out = {{"seconds", seconds},
                {"rounds", o_.rounds},
                {"connections_per_round", o_.conns},
                {"warmup", o_.warmup},
                {"pinned", o_.pin},
                {"iperf_rounds", std::min(o_.iperf_rounds, o_.rounds)},
                {"iperf_secs", o_.iperf_secs},
                {"order", json::array()},
                {"configs", json::object()}};
    for (auto& c : configs_) {
      std::vector<double> p50, p99, mean, cycle, rate;
      for (auto& r : c.runs) {
        p50.push_back(r.p50_us);
        p99.push_back(r.p99_us);
        mean.push_back(r.mean_us);
        cycle.push_back(r.cycle_p50_us);
        rate.push_back(r.per_sec);
      }
      json j = {{"label", c.label},
                {"filters", c.filters},
                {"connect_p50_us", median(p50)},
                {"connect_p99_us", median(p99)},
                {"connect_mean_us", median(mean)},
                {"cycle_p50_us", median(cycle)},
                {"connections_per_sec", median(rate)},
                {"rounds_connect_p50_us", p50},
                {"rounds_connections_per_sec", rate}};
      if (!c.fwd_gbps.empty()) {
        j["iperf_a_to_b_gbps"] = median(c.fwd_gbps);
        j["iperf_b_to_a_gbps"] = median(c.rev_gbps);
        j["rounds_iperf_a_to_b_gbps"] = c.fwd_gbps;
        j["rounds_iperf_b_to_a_gbps"] = c.rev_gbps;
      }
      if (c.bpf_conns > 0) {  // (units: connections)
        double total = 0;
        j["bpf_programs"] = lfp::bench::per_unit(c.bpf, static_cast<double>(c.bpf_conns), &total);
        j["bpf_ns_per_connection"] = total;
      }
      out["order"].push_back(c.id);
      out["configs"][c.id] = j;
    }
    // Ratios to a: the median over rounds of each round's x/a (the runs of one round are close in
    // time, so load from elsewhere on the machine mostly cancels out), and the ratio of the medians.
    const Config& ca = configs_.front();
    const json& a = out["configs"]["a"];
    auto of_medians = [&](const json& x, const char* k) { return x[k].get<double>() / a[k].get<double>(); };
    auto paired = [](const std::vector<double>& x, const std::vector<double>& base) {
      std::vector<double> r;
      for (size_t i = 0; i < std::min(x.size(), base.size()); ++i) r.push_back(x[i] / base[i]);
      return median(r);
    };
    auto paired_delta = [](const std::vector<double>& x, const std::vector<double>& base) {
      std::vector<double> r;
      for (size_t i = 0; i < std::min(x.size(), base.size()); ++i) r.push_back(x[i] - base[i]);
      return median(r);
    };
    auto field = [](const Config& c, double ConnectRun::*m) {
      std::vector<double> v;
      for (auto& r : c.runs) v.push_back(r.*m);
      return v;
    };
    json ratios = json::object(), ratios_m = json::object();
    for (auto& c : configs_) {
      if (c.id == "a") continue;
      const json& x = out["configs"][c.id];
      json r = {{"connect_p50", paired(field(c, &ConnectRun::p50_us), field(ca, &ConnectRun::p50_us))},
                {"connect_p99", paired(field(c, &ConnectRun::p99_us), field(ca, &ConnectRun::p99_us))},
                {"cycle_p50", paired(field(c, &ConnectRun::cycle_p50_us), field(ca, &ConnectRun::cycle_p50_us))},
                {"connections_per_sec", paired(field(c, &ConnectRun::per_sec), field(ca, &ConnectRun::per_sec))},
                {"connect_p50_delta_us", paired_delta(field(c, &ConnectRun::p50_us), field(ca, &ConnectRun::p50_us))},
                {"cycle_p50_delta_us",
                 paired_delta(field(c, &ConnectRun::cycle_p50_us), field(ca, &ConnectRun::cycle_p50_us))}};
      json m = {{"connect_p50", of_medians(x, "connect_p50_us")},
                {"connect_p99", of_medians(x, "connect_p99_us")},
                {"cycle_p50", of_medians(x, "cycle_p50_us")},
                {"connections_per_sec", of_medians(x, "connections_per_sec")}};
      if (!c.fwd_gbps.empty() && !ca.fwd_gbps.empty()) {
        r["iperf_a_to_b"] = paired(c.fwd_gbps, ca.fwd_gbps);
        r["iperf_b_to_a"] = paired(c.rev_gbps, ca.rev_gbps);
        m["iperf_a_to_b"] = of_medians(x, "iperf_a_to_b_gbps");
        m["iperf_b_to_a"] = of_medians(x, "iperf_b_to_a_gbps");
      }
      ratios[c.id + "/a"] = r;
      ratios_m[c.id + "/a"] = m;
    }
    out["ratios_of_medians"] = ratios_m;
    out["ratios"] = ratios;
    return out;
  }

  Options o_;
  std::unique_ptr<Sandbox> sb_;  // destroyed last: lfpd stops and the sessions close before it goes
  std::unique_ptr<Lfpd> lfpd_;
  std::unique_ptr<lfp::client::Client> frame_client_, base_client_, bulk_client_;
  std::string exe_, iperf3_, pins_, ip_b_;
  json base_, bulk_;
  std::vector<Config> configs_;
  std::unique_ptr<lfp::bench::StatsOn> stats_;  // --bpf-stats
};

void print_table(const json& r) {
  std::printf("lfp-ale-bench: TCP socket()+connect()+close() from netns A (in the governed cgroup) to netns B over veth\n");
  std::printf("median of %d rounds x %ld connections (after %ld warm-up); rounds alternate the order%s\n\n",
              r["rounds"].get<int>(), r["connections_per_round"].get<long>(), r["warmup"].get<long>(),
              r["pinned"].get<bool>() ? "; client pinned to CPU 0, server to CPU 1" : "");
  std::printf("%-3s %-28s %9s %9s %9s %10s %10s\n", "", "configuration", "p50 us", "p99 us", "mean us", "cycle us",
              "conn/s");
  for (auto& id : r["order"]) {
    const json& c = r["configs"][id.get<std::string>()];
    std::printf("%-3s %-28s %9.1f %9.1f %9.1f %10.1f %10.0f\n", id.get<std::string>().c_str(),
                c["label"].get<std::string>().c_str(), c["connect_p50_us"].get<double>(),
                c["connect_p99_us"].get<double>(), c["connect_mean_us"].get<double>(), c["cycle_p50_us"].get<double>(),
                c["connections_per_sec"].get<double>());
  }
  std::printf("(p50/p99/mean: connect() alone; cycle: p50 of socket+connect+close; conn/s: wall clock)\n");
  if (r["configs"]["a"].contains("iperf_a_to_b_gbps")) {
    std::printf("\niperf3, established TCP, median of %d runs x %d s each way\n\n", r["iperf_rounds"].get<int>(),
                r["iperf_secs"].get<int>());
    std::printf("%-3s %-28s %14s %14s\n", "", "configuration", "A->B Gbit/s", "B->A Gbit/s");
    for (auto& id : r["order"]) {
      const json& c = r["configs"][id.get<std::string>()];
      if (c.contains("iperf_a_to_b_gbps"))
        std::printf("%-3s %-28s %14.2f %14.2f\n", id.get<std::string>().c_str(), c["label"].get<std::string>().c_str(),
                    c["iperf_a_to_b_gbps"].get<double>(), c["iperf_b_to_a_gbps"].get<double>());
    }
  }
  std::printf("\nratios to no LFP, median over rounds of the round's ratio (latencies: 1.05 = 5%% slower; rates:\n"
              "0.95 = 5%% fewer); in brackets the median of the round's difference\n");
  for (auto& id : r["order"]) {
    const std::string key = id.get<std::string>() + "/a";
    if (!r["ratios"].contains(key)) continue;
    const json& x = r["ratios"][key];
    std::printf("  %s: connect p50 %.3f (%+.1f us), p99 %.3f, cycle p50 %.3f (%+.1f us), conn/s %.3f", key.c_str(),
                x["connect_p50"].get<double>(), x["connect_p50_delta_us"].get<double>(), x["connect_p99"].get<double>(),
                x["cycle_p50"].get<double>(), x["cycle_p50_delta_us"].get<double>(),
                x["connections_per_sec"].get<double>());
    if (x.contains("iperf_a_to_b"))
      std::printf(", iperf3 A->B %.3f, B->A %.3f", x["iperf_a_to_b"].get<double>(), x["iperf_b_to_a"].get<double>());
    std::printf("\n");
  }
  bool stats = false;
  for (auto& id : r["order"]) stats = stats || r["configs"][id.get<std::string>()].contains("bpf_programs");
  if (stats) {
    std::printf("\nthe kernel's run time of LFP's programs per connection (BPF_ENABLE_STATS; the timing adds a\n"
                "little to each run), ns and runs per connection\n");
    for (auto& id : r["order"]) {
      const json& c = r["configs"][id.get<std::string>()];
      if (!c.contains("bpf_programs")) continue;
      std::printf("  %s: %.0f ns", id.get<std::string>().c_str(), c["bpf_ns_per_connection"].get<double>());
      for (auto& [name, p] : c["bpf_programs"].items())
        std::printf("; %s %.0f (%.1f)", name.c_str(), p["ns_per_unit"].get<double>(), p["runs_per_unit"].get<double>());
      std::printf("\n");
    }
  }
  std::printf("\n(%.1f s)\n", r["seconds"].get<double>());
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "%s\n"
               "usage: lfp-ale-bench [--json] [--rounds N] [--conns N] [--warmup N] [--filters N] [--large N]\n"
               "                     [--iperf-secs S] [--iperf-rounds N] [--no-hooks-only] [--no-pin] [--bpf-stats]\n"
               "                     [--port P]\n"
               "                     [--lfpd PATH]\n"
               "  --rounds N        rounds of connect loops, each configuration once per round (default 21)\n"
               "  --conns N         measured connections per loop (3000), after --warmup N more (300)\n"
               "  --filters N       configuration b: N non-matching ALE_AUTH_CONNECT_V4 filters + 1 permit (50)\n"
               "  --large N         configuration c: N non-matching filters + 1 permit; 0: no c (1000)\n"
               "  --iperf-secs S    length of each iperf3 run (1)\n"
               "  --iperf-rounds N  iperf3 runs each way, with and without lfpd; 0: no iperf3 (7)\n"
               "  --no-hooks-only   leave out configuration h (lfpd attached, no filter)\n"
               "  --no-userspace    leave out configuration u (each connect decided in user space, NFQUEUE)\n"
               "  --no-pin          do not pin the connect loop to CPU 0 and its accept loop to CPU 1\n"
               "  --bpf-stats       also the kernel's run time of each LFP program per connection\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0 && argc == 4) {
    lfp::test::pin_to(std::atoi(argv[3]));
    return child_serve(std::atoi(argv[2]));
  }
  if (argc >= 2 && std::strcmp(argv[1], "connect") == 0 && argc == 8) {
    lfp::test::pin_to(std::atoi(argv[7]));
    return child_connect(argv[2], std::atoi(argv[3]), std::atol(argv[4]), std::atol(argv[5]), argv[6]);
  }
  if (argc >= 2 && std::strcmp(argv[1], "probe") == 0 && argc == 4) return child_probe(argv[2], std::atoi(argv[3]));

  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto num = [&]() -> long {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      char* end;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end || v < 0) usage(("bad value for " + a).c_str());
      return v;
    };
    if (a == "--json") o.json = true;
    else if (a == "--rounds") o.rounds = static_cast<int>(std::max(1L, num()));
    else if (a == "--conns") o.conns = std::max(1L, num());
    else if (a == "--warmup") o.warmup = num();
    else if (a == "--filters") o.filters = static_cast<int>(num());
    else if (a == "--large") o.large = static_cast<int>(num());
    else if (a == "--iperf-secs") o.iperf_secs = static_cast<int>(std::max(1L, num()));
    else if (a == "--iperf-rounds") o.iperf_rounds = static_cast<int>(num());
    else if (a == "--no-hooks-only") o.hooks_only = false;
    else if (a == "--no-userspace") o.userspace = false;
    else if (a == "--no-pin") o.pin = false;
    else if (a == "--bpf-stats") o.bpf_stats = true;
    else if (a == "--port") o.port = static_cast<int>(std::clamp(num(), 1024L, 65533L));
    else if (a == "--lfpd") {
      if (i + 1 >= argc) usage("missing value after --lfpd");
      o.lfpd = argv[++i];
    } else if (a == "-h" || a == "--help") usage("lfp-ale-bench: what the in-kernel ALE layers cost real TCP traffic");
    else usage(("unknown argument " + a).c_str());
  }
  if (std::string why; !lfp::test::sandbox_available(&why)) {
    std::fprintf(stderr, "lfp-ale-bench: %s\n", why.c_str());
    return 77;
  }
  try {
    json r = Bench(o).run();
    if (o.json) std::printf("%s\n", r.dump(2).c_str());
    else print_table(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-ale-bench: %s\n", e.what());
    return 1;  // by then the Bench is gone: lfpd stopped, hooks detached, sandbox removed
  }
  return 0;
}
