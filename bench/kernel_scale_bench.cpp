// SPDX-License-Identifier: MIT
// lfp-kernel-scale-bench: LFP's kernel path as the policy grows, against no firewall and nftables, in
// one run (issue 24). Blocklists of N BLOCK filters on distinct remote /32s (every third address of
// 100.64.0.0/10) plus one low-weight PERMIT for the test peer, for each N of --sizes; and ClassBench
// policies (fw1_10k, fw1_100k: 5-tuples with prefixes, port ranges and protocols) compiled into the
// kernel at INBOUND_TRANSPORT_V4.
//
// Every configuration lives in a test Sandbox of its own (tests/support/sandbox.hpp: two network namespaces
// joined by a veth pair, a child cgroup), all set up alike, so that each state is loaded once and the
// rounds only alternate which sandbox is measured:
//   none          no firewall (serves both metrics)
//   lfp           connect(): lfpd governing the sandbox's cgroup, N ALE_AUTH_CONNECT_V4 filters;
//                 packets: lfpd in namespace B with the packet layers and --no-packet-cache (every
//                 packet is a new decision), N INBOUND_TRANSPORT_V4 filters
//   nft-set       a named nftables set of the N addresses: `ip daddr @blk drop` in A's output hook
//                 (connect), `ip saddr @blk drop` in B's input hook (packets)
//   nft-interval  the same with `flags interval`
//   nft-linear    N plain rules (N <= --linear-max, 10k)
// Metrics: each round measures every configuration between two windows of none (none c1 none c2 none
// ..., the order reversed every other round); figures are medians over the rounds of each window's
// ratio to the mean of the none windows beside it:
//   connect   p50 and p99 of connect() from a process in the sandbox cgroup in A to a listener in B
//   packets   UDP packets/s from A (raw socket, --flows source ports) delivered at B (Ip InDelivers)
//   enforce   time from the start of the apply (lfp apply FILE; nft -f FILE) until a connect to a
//             blocked address is refused; and for one more filter added afterwards (client; nft add)
//   memory    kernel memory charged to the loader (lfpd, nft) in a memory cgroup of its own (kmem),
//             and for LFP the memlock of lfpd's BPF maps (fdinfo)
// ClassBench: uncached packets/s with a sample of the trace's headers (TCP and UDP, routable) as the
// packets, lfpd against none; B takes every destination as local (a policy route on its veth).
// Each state is checked before it is measured: lfpd reports the filters compiled; a blocked probe is
// refused and an allowed one passes. Notes and figures: docs/kernel-scale.md.
//
//   lfp-kernel-scale-bench [--json] [--sizes 10,1000,...] [--configs none,lfp,...] [--rounds N] [--conns N]
//                          [--warmup N] [--secs S] [--flows N] [--classbench fw1_10k,fw1_100k|none]
//                          [--classbench-dir DIR] [--sample N] [--linear-max N] [--enforce-timeout S]
//                          [--kernel-entries N] [--lfpd PATH]
// The same binary runs the programs inside the sandboxes (argv[1]): serve, sink, connect, probe, watch,
// blast, udp-recv, udp-send. `lfp-kernel-scale-bench table FILE` prints the table of a --json output.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sched.h>
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
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "classbench_kernel.hpp"
#include "lfp/datapath/kernel.hpp"
#include "lfp/client/client.hpp"
#include "lfp/datapath/compile.hpp"
#include "lfp/sys/spawn.hpp"
#include "lfpd_ready.hpp"
#include "live_support.hpp"
#include "sandbox.hpp"

namespace {

using nlohmann::json;
using lfp::test::Sandbox;
using lfp::test::Side;
using lfp::test::when;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int kTcpPort = 18080;  // B's accept loop (every address of B)
constexpr int kUdpPort = 9100;   // B's UDP sink
constexpr int kProbePort = 9101; // the UDP probes
constexpr int kPayload = 64;     // UDP payload bytes a datagram

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

sockaddr_in addr_of(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) throw std::runtime_error("bad IPv4 address " + ip);
  return a;
}

// This build's `lfp` (beside its lfpd: whichever lfpd --lfpd names, the policy goes through this one).
std::string lfp_cli() {
  const std::string d = LFPD_PATH;
  return d.substr(0, d.rfind("/daemon/")) + "/cli/lfp";
}

std::string dotted(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, b, sizeof b);
  return b;
}

// The blocklist: every third address of 100.64.0.0/10 (no two adjacent, so an interval set holds N
// intervals), and one more address no list holds (the filter added afterwards).
constexpr uint32_t kBlockBase = 0x64400000;  // 100.64.0.0
constexpr long kMaxSize = 1'300'000;
uint32_t blocked(long i) { return kBlockBase + 3 * static_cast<uint32_t>(i) + 1; }
uint32_t extra_address(long n) { return kBlockBase + 3 * static_cast<uint32_t>(n) + 2; }

// ---------------------------------------------------------------------------------------------
// Child modes: they run inside the sandboxes' namespaces.

// The measuring programs run at the highest priority: the machine is shared, and what is measured is
// the firewall's cost, not the scheduler's.
void measuring() {
  lfp::test::pin_to(0);
  setpriority(PRIO_PROCESS, 0, -20);
}

int child_serve(int port) {  // accept()+close() for ever, on CPU 1 (the client is on CPU 0)
  lfp::test::pin_to(1);
  setpriority(PRIO_PROCESS, 0, -20);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = addr_of("0.0.0.0", port);
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 4096) != 0) return perror("serve"), 1;
  for (;;) {
    int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) close(c);
  }
}

int child_sink(int port) {  // drains UDP for ever (what arrives is counted by B's Ip InDelivers)
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int big = 32 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  sockaddr_in a = addr_of("0.0.0.0", port);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return perror("sink"), 1;
  constexpr int kBatch = 256;
  static char bufs[kBatch][64];
  static mmsghdr msgs[kBatch];
  static iovec iov[kBatch];
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {bufs[i], sizeof bufs[i]};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  for (;;) recvmmsg(s, msgs, kBatch, 0, nullptr);
}

// COUNT connections after WARMUP (socket, SO_LINGER 0, connect, close); writes each connect()'s ns
// (uint32) to FILE.
int child_connect(const std::string& ip, int port, long count, long warmup, const char* file) {
  measuring();
  const sockaddr_in a = addr_of(ip, port);
  std::vector<uint32_t> ns;
  ns.reserve(static_cast<size_t>(count));
  const linger lg{1, 0};
  for (long i = 0; i < warmup + count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return perror("connect: socket"), 1;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    const auto t0 = Clock::now();
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    const auto t1 = Clock::now();
    if (r != 0) return std::fprintf(stderr, "connect %s:%d: %s\n", ip.c_str(), port, strerror(errno)), 1;
    close(fd);
    if (i >= warmup) ns.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(ns.data()), static_cast<std::streamsize>(ns.size() * sizeof(uint32_t)));
  return out ? 0 : 1;
}

// One non-blocking connect: "OK", "EPERM" (a cgroup hook refused it), "TIMEOUT" (dropped on the way:
// nftables), or another errno's name.
std::string probe_once(const sockaddr_in& a, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  std::string res;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) res = "OK";
  else if (errno != EINPROGRESS) res = errno == EPERM ? "EPERM" : strerrorname_np(errno);
  else {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) == 0) res = "TIMEOUT";
    else {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      res = err == 0 ? "OK" : err == EPERM ? "EPERM" : strerrorname_np(err);
    }
  }
  close(fd);
  return res;
}

// Until a connect to IP is not OK (or LIMIT s): prints "ready" after the first OK, then "blocked NS
// WHAT", NS the steady clock when the refused attempt started.
int child_watch(const std::string& ip, int port, double limit_s) {
  const sockaddr_in a = addr_of(ip, port);
  const std::string first = probe_once(a, 1000);
  if (first != "OK") return std::printf("not-ok %s\n", first.c_str()), 1;
  std::printf("ready\n");
  std::fflush(stdout);
  const auto end = Clock::now() + std::chrono::duration<double>(limit_s);
  while (Clock::now() < end) {
    const int64_t t = now_ns();
    const std::string r = probe_once(a, 20);
    if (r != "OK") return std::printf("blocked %lld %s\n", static_cast<long long>(t), r.c_str()), 0;
    usleep(200);
  }
  std::printf("timeout\n");
  return 1;
}

// Sends the packets of FILE (records: dst u32 network order, len u16, bytes) round and round from a
// raw socket (IP_HDRINCL) for SECS seconds.
int child_blast(const char* file, double secs) {
  measuring();
  const std::string raw = lfp::test::read_text(file);
  std::vector<sockaddr_in> to;
  std::vector<iovec> iov;
  for (size_t at = 0; at + 6 <= raw.size();) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    std::memcpy(&a.sin_addr.s_addr, raw.data() + at, 4);
    uint16_t len;
    std::memcpy(&len, raw.data() + at + 4, 2);
    to.push_back(a);
    iov.push_back({const_cast<char*>(raw.data() + at + 6), len});
    at += 6 + len;
  }
  if (to.empty()) return std::fprintf(stderr, "blast: no packets in %s\n", file), 1;
  std::vector<mmsghdr> msgs(to.size());
  for (size_t i = 0; i < to.size(); ++i) {
    msgs[i].msg_hdr.msg_name = &to[i];
    msgs[i].msg_hdr.msg_namelen = sizeof to[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (s < 0) return perror("blast: raw socket"), 1;
  int big = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  constexpr size_t kBatch = 64;
  const auto end = Clock::now() + std::chrono::duration<double>(secs);
  long sent = 0, failed = 0;
  int err = 0;
  for (size_t i = 0; Clock::now() < end; i = (i + kBatch) % msgs.size()) {
    const int r = sendmmsg(s, msgs.data() + i, static_cast<unsigned>(std::min(kBatch, msgs.size() - i)), 0);
    if (r > 0) sent += r;
    else ++failed, err = errno;
  }
  std::printf("sent %ld failed %ld %s\n", sent, failed, err ? strerrorname_np(err) : "");
  return 0;
}

// Counts the datagrams to PORT for MS ms; prints "SOURCE COUNT" lines.
int child_udp_recv(int port, int ms) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = addr_of("0.0.0.0", port);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return perror("udp-recv"), 1;
  std::map<std::string, int> got;
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[256];
    sockaddr_in from{};
    socklen_t fl = sizeof from;
    if (recvfrom(s, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl) >= 0) ++got[dotted(ntohl(from.sin_addr.s_addr))];
  }
  for (auto& [src, n] : got) std::printf("%s %d\n", src.c_str(), n);
  return 0;
}

// Five datagrams from each SOURCE (a local address) to IP:PORT.
int child_udp_send(const std::string& ip, int port, const std::vector<std::string>& sources) {
  const sockaddr_in to = addr_of(ip, port);
  for (auto& src : sources) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in from = addr_of(src, 0);
    if (bind(s, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) return perror(("udp-send: bind " + src).c_str()), 1;
    for (int i = 0; i < 5; ++i) {
      sendto(s, "probe", 5, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
      usleep(2000);
    }
    close(s);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Packets for the blaster.

struct Header {
  uint32_t src, dst;  // host order
  uint16_t sport, dport;
  uint8_t proto;      // 6 or 17
};

// UDP with kPayload bytes (checksum 0: none), or a TCP RST (answered by nothing). The kernel fills in
// the IP checksum and length.
void append_packet(std::string& out, const Header& h) {
  const size_t l4 = h.proto == 6 ? 20 : 8 + kPayload;
  std::string p(20 + l4, '\0');
  auto* b = reinterpret_cast<unsigned char*>(p.data());
  b[0] = 0x45;
  const uint16_t tot = htons(static_cast<uint16_t>(p.size()));
  std::memcpy(b + 2, &tot, 2);
  b[8] = 64;
  b[9] = h.proto;
  const uint32_t s = htonl(h.src), d = htonl(h.dst);
  std::memcpy(b + 12, &s, 4);
  std::memcpy(b + 16, &d, 4);
  const uint16_t sp = htons(h.sport), dp = htons(h.dport);
  std::memcpy(b + 20, &sp, 2);
  std::memcpy(b + 22, &dp, 2);
  if (h.proto == 6) {
    b[32] = 5 << 4;  // data offset
    b[33] = 0x04;    // RST
  } else {
    const uint16_t ulen = htons(static_cast<uint16_t>(l4));
    std::memcpy(b + 24, &ulen, 2);
  }
  out.append(reinterpret_cast<const char*>(&d), 4);
  const uint16_t len = static_cast<uint16_t>(p.size());
  out.append(reinterpret_cast<const char*>(&len), 2);
  out += p;
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

struct Options {
  bool json = false;
  std::vector<long> sizes = {10, 1000, 10000, 100000};
  std::vector<std::string> configs = {"none", "lfp", "nft-set", "nft-interval", "nft-linear"};
  int rounds = 7;
  long conns = 2000, warmup = 200;
  double secs = 0.5;
  int flows = 1024;
  std::vector<std::string> classbench = {"fw1_10k", "fw1_100k"};
  std::string classbench_dir = LFP_CLASSBENCH_DIR;
  size_t sample = 65536;
  long linear_max = 10000;
  double enforce_timeout = 300;
  long kernel_entries = 0;  // lfpd --kernel-entries (0: not given)
  std::string lfpd = LFPD_PATH;
};

void note(const std::string& s) {
  std::fprintf(stderr, "lfp-kernel-scale-bench: %s\n", s.c_str());
  std::fflush(stderr);
}

std::string fmt(double v, int prec) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

std::string self_exe() { return fs::read_symlink("/proc/self/exe").string(); }

// The kernel memory a state takes: the process that loads it (lfpd, nft) joins a memory cgroup of
// its own before it execs, and the kernel objects made for the state (BPF maps and programs,
// nftables sets, elements and rules) are charged to it: its kmem usage. The v1 hierarchy holds the
// memory controller on this machine; without it, Slab + VmallocUsed + Percpu of /proc/meminfo
// (machine-wide, so whatever else runs shows in it).
class KernelMemory {
 public:
  explicit KernelMemory(const std::string& name) {
    const std::string root = "/sys/fs/cgroup/memory";
    if (access((root + "/memory.kmem.usage_in_bytes").c_str(), R_OK) == 0 && mkdir((root + "/" + name).c_str(), 0755) == 0)
      dir_ = root + "/" + name;
  }
  ~KernelMemory() {
    for (int i = 0; !dir_.empty() && rmdir(dir_.c_str()) != 0 && errno == EBUSY && i < 100; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // (its last process is still exiting)
  }
  // Removes the (empty) groups of runs that died by a signal: lfpt-<pid>-<n>-kmem, <pid> gone.
  static void sweep() {
    std::error_code ec;
    for (auto& e : fs::directory_iterator("/sys/fs/cgroup/memory", ec)) {
      const std::string name = e.path().filename();
      if (name.rfind("lfpt-", 0) != 0 || !name.ends_with("-kmem")) continue;
      const pid_t pid = std::atoi(name.c_str() + 5);
      if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) rmdir(e.path().c_str());
    }
  }
  KernelMemory(const KernelMemory&) = delete;
  KernelMemory& operator=(const KernelMemory&) = delete;
  // The group a loader joins ("": none, meminfo is used), and the file it writes "0" to, to join.
  const std::string& dir() const { return dir_; }
  std::string procs() const { return dir_.empty() ? "" : dir_ + "/cgroup.procs"; }
  const char* source() const { return dir_.empty() ? "meminfo" : "memcg"; }
  int64_t bytes() const {
    if (!dir_.empty()) return std::atoll(lfp::test::read_text(dir_ + "/memory.kmem.usage_in_bytes").c_str());
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    int64_t kb, total = 0;
    while (in >> key >> kb) {
      if (key == "Slab:" || key == "VmallocUsed:" || key == "Percpu:") total += kb;
      std::getline(in, unit);
    }
    return total * 1024;
  }

 private:
  std::string dir_;
};

// The memlock of the BPF maps a process holds (its fdinfo), bytes.
int64_t bpf_map_memlock(pid_t pid) {
  int64_t total = 0;
  std::error_code ec;
  for (auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
    std::ifstream in(e.path());
    std::string line;
    bool map = false;
    int64_t memlock = 0;
    while (std::getline(in, line)) {
      if (line.rfind("map_type:", 0) == 0) map = true;
      if (line.rfind("memlock:", 0) == 0) memlock = std::atoll(line.c_str() + 8);
    }
    if (map) total += memlock;
  }
  return total;
}

// Ip InDelivers of the network namespace process `pid` is in.
double ip_in_delivers(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/snmp");
  std::string names, values;
  while (std::getline(in, names) && names.rfind("Ip:", 0) != 0) {
  }
  std::getline(in, values);
  std::istringstream n(names), v(values);
  std::string name, value;
  while (n >> name && v >> value)
    if (name == "InDelivers") return std::stod(value);
  throw std::runtime_error("no Ip InDelivers in /proc/" + std::to_string(pid) + "/net/snmp");
}

// What lfpd --help offers (options being added while issue 24 lands): used only when present.
struct LfpdFeatures {
  bool no_packet_layers = false, config = false;
};
LfpdFeatures lfpd_features(const std::string& lfpd) {
  const lfp::sys::SpawnResult r = lfp::sys::run({lfpd, "--help"});
  const std::string help = r.out + r.err;
  return {help.find("--no-packet-layers") != std::string::npos, help.find("--config") != std::string::npos};
}

// A real lfpd in namespace B of a sandbox, its state, socket, log and pins in the sandbox's temp dir.
class Lfpd {
 public:
  // cgroup: the one its ALE layers govern ("none": none); packets: the packet layers, uncached.
  // memcg: a cgroup (v1 memory) it joins first ("": none).
  Lfpd(const Options& o, const LfpdFeatures& f, Sandbox& sb, const std::string& cgroup, bool packets,
       const std::string& memcg)
      : lfpd_(o.lfpd), pins_(sb.mount_bpffs()) {
    const std::string dir = sb.tmpdir() + "/lfpd";
    fs::create_directories(dir);
    socket_ = dir + "/lfpd.sock";
    log_ = dir + "/lfpd.log";
    std::vector<std::string> args = {o.lfpd, "--state-dir", dir + "/state", "--socket", socket_, "--log-level", "info",
                                     "--cgroup", cgroup, "--bpf-pin", pins_};
    if (f.config) args.insert(args.end(), {"--config", "none"});
    if (packets) args.insert(args.end(), {"--packet-layers", "--no-packet-cache"});
    else if (f.no_packet_layers) args.push_back("--no-packet-layers");
    if (o.kernel_entries > 0) args.insert(args.end(), {"--kernel-entries", std::to_string(o.kernel_entries)});
    const int log = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) throw std::runtime_error("open " + log_ + ": " + strerror(errno));
    try {
      pid_ = lfp::sys::spawn(args, {.stdout_fd = log,
                                    .stderr_fd = log,
                                    .cgroup = memcg,
                                    .netns = sb.ns_path(Side::B),
                                    .die_with_parent = true});
    } catch (...) {
      close(log);
      throw;
    }
    close(log);
    lfp::test::wait_until_serving(socket_, pid_, 60, [&] { return ": " + lfp::test::read_text(log_); });
  }
  ~Lfpd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    // Detach what it left pinned (the sandbox's clean-up would too).
    if (!lfp::sys::run({lfpd_, "--detach", "--bpf-pin", pins_}).ok()) note("lfpd --detach failed for " + pins_);
  }
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  std::string log() const { return lfp::test::read_text(log_); }
  // The filter count of lfpd's last "kernel: N filters installed" line (-1: none yet).
  long installed() const {
    const std::string l = log();
    const size_t at = l.rfind(" filters installed (");
    if (at == std::string::npos) return -1;
    const size_t start = l.rfind("kernel: ", at);
    return start == std::string::npos ? -1 : std::atol(l.c_str() + start + 8);
  }
  void wait_installed(long want) const {
    for (int i = 0; i < 6000 && installed() != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (installed() != want)
      throw std::runtime_error("lfpd did not report " + std::to_string(want) + " filters installed (last: " +
                               std::to_string(installed()) + ")");
  }

 private:
  std::string lfpd_, pins_, socket_, log_;
  pid_t pid_ = -1;
};

enum class Metric { Connect, Packets, ClassBench };

// One configuration's state in a sandbox of its own.
struct Cell {
  std::string config;  // none, lfp, nft-set, nft-interval, nft-linear
  Metric metric;       // what it is measured with (none: Connect and Packets)
  std::unique_ptr<KernelMemory> kmem;  // (destroyed after the sandbox: its processes are gone then)
  std::unique_ptr<Sandbox> sb;
  std::unique_ptr<Lfpd> lfpd;
  pid_t b_pid = -1;     // a process in B (its /proc/PID/net/snmp is B's)
  std::string packets;  // the blaster's packet file
  std::string failed;   // why the state could not be put in place ("": it is)
  json facts = json::object();  // enforce, add-one, memory
  std::vector<double> p50, p99, pps, sent;
  std::vector<double> r_p50, r_p99, r_pps;  // ratios to the none windows beside each
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)), feat_(lfpd_features(o_.lfpd)) {}

  json run() {
    const auto t_start = Clock::now();
    exe_ = self_exe();
    KernelMemory::sweep();
    json out = {{"sizes", json::array()}, {"classbench", json::array()},
                {"rounds", o_.rounds}, {"conns", o_.conns}, {"secs", o_.secs}, {"flows", o_.flows},
                {"kernel_entries", o_.kernel_entries}};
    for (long n : o_.sizes) out["sizes"].push_back(run_size(n));
    for (auto& name : o_.classbench) out["classbench"].push_back(run_classbench(name));
    out["seconds"] = std::chrono::duration<double>(Clock::now() - t_start).count();
    return out;
  }

 private:
  // A sandbox set up like every other: B's accept loop and UDP sink; the probe addresses (blocked(0),
  // blocked(n-1) and the extra address on B, blocked(1) on A); routes for 100.64.0.0/10 each way.
  // classbench: every destination is local to B (a policy route for what comes in on its veth), and
  // A routes everything to B.
  void prepare(Cell& c, long n, bool classbench) {
    c.sb = std::make_unique<Sandbox>();
    Sandbox& sb = *c.sb;
    const std::string a = sb.ip4(Side::A), b = sb.ip4(Side::B);
    auto must = [&](const std::string& cmd, Side side) {
      auto r = sb.run("set -e; " + cmd, {.side = side});
      if (!r.ok()) throw std::runtime_error("in namespace " + std::string(side == Side::A ? "A" : "B") + ": " + cmd + ": " + r.err);
    };
    must("ip addr add " + dotted(blocked(1)) + "/32 dev veth-a; ip route add 100.64.0.0/10 via " + b + " src " + a, Side::A);
    must("ip addr add " + dotted(blocked(0)) + "/32 dev veth-b; ip addr add " + dotted(blocked(n - 1)) +
             "/32 dev veth-b; ip addr add " + dotted(extra_address(n)) + "/32 dev veth-b; ip route add 100.64.0.0/10 via " +
             a + " src " + b,
         Side::B);
    if (classbench) {
      must("ip route add default via " + b + " src " + a, Side::A);
      must("ip rule add iif veth-b lookup 100 pref 10; ip route add local 0.0.0.0/0 dev lo table 100; "
           "sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth-b.rp_filter=0",
           Side::B);
      // No ICMP errors for the trace's datagrams to closed ports (where the kernel has these per namespace).
      sb.run("sysctl -qw net.ipv4.icmp_msgs_per_sec=0 net.ipv4.icmp_msgs_burst=0", {.side = Side::B});
    }
    sb.spawn_argv({exe_, "serve", std::to_string(kTcpPort)}, {.side = Side::B});
    c.b_pid = sb.spawn_argv({exe_, "sink", std::to_string(kUdpPort)}, {.side = Side::B}).pid();
    if (!sb.wait_for_port(Side::B, kTcpPort) || !sb.wait_for_port(Side::B, kUdpPort, std::chrono::seconds(5), true))
      throw std::runtime_error("the accept loop or the UDP sink did not start");
  }

  // ---- the blocklists ----

  json blocklist(const std::string& layer, long n) const {
    json filters = json::array();
    for (long i = 0; i < n; ++i)
      filters.push_back({{"name", "b" + std::to_string(i)}, {"layer", layer}, {"action", "BLOCK"},
                         {"conditions", {when("IP_REMOTE_ADDRESS", dotted(blocked(i)) + "/32")}}});
    return filters;
  }
  json permit_peer(const std::string& layer, const std::string& peer) const {
    return {{"name", "the test peer"}, {"layer", layer}, {"action", "PERMIT"}, {"weight", {{"explicit", 0}}},
            {"conditions", {when("IP_REMOTE_ADDRESS", peer + "/32")}}};
  }

  std::string nft_script(const std::string& config, const std::string& chain, long n) const {
    const bool out = chain == "out";
    std::string s = "add table ip lfpb\nadd chain ip lfpb " + chain + " { type filter hook " +
                    (out ? "output" : "input") + " priority 0; policy accept; }\n";
    const std::string field = out ? "ip daddr " : "ip saddr ";
    if (config == "nft-linear") {
      for (long i = 0; i < n; ++i) s += "add rule ip lfpb " + chain + " " + field + dotted(blocked(i)) + " drop\n";
      return s;
    }
    s += std::string("add set ip lfpb blk { type ipv4_addr; ") + (config == "nft-interval" ? "flags interval; " : "") + "}\n";
    s += "add rule ip lfpb " + chain + " " + field + "@blk drop\n";
    for (long i = 0; i < n; i += 10000) {
      s += "add element ip lfpb blk { ";
      for (long j = i; j < std::min(n, i + 10000); ++j) s += (j > i ? ", " : "") + dotted(blocked(j));
      s += " }\n";
    }
    return s;
  }

  // Starts a watcher in A (in the cgroup) on a connect to `ip`; returns once its first connect passed.
  lfp::test::Process start_watch(Sandbox& sb, uint32_t ip) {
    auto w = sb.spawn_argv({exe_, "watch", dotted(ip), std::to_string(kTcpPort), fmt(o_.enforce_timeout, 0)},
                           {.side = Side::A, .in_cgroup = true});
    for (int i = 0; i < 500 && w.out().find("ready") == std::string::npos; ++i) {
      if (!w.running()) throw std::runtime_error("the enforcement watcher failed: " + w.out() + w.err());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (w.out().find("ready") == std::string::npos) throw std::runtime_error("the enforcement watcher did not start");
    return w;
  }
  // Seconds from t0 until the watcher saw its connect refused.
  double watched(lfp::test::Process& w, int64_t t0) {
    w.wait(std::chrono::milliseconds(static_cast<long>(o_.enforce_timeout * 1000) + 5000));
    const std::string out = w.out();
    const size_t at = out.find("blocked ");
    if (at == std::string::npos) throw std::runtime_error("not enforced within " + fmt(o_.enforce_timeout, 0) + " s (" + out + ")");
    return static_cast<double>(std::atoll(out.c_str() + at + 8) - t0) / 1e9;
  }

  std::string probe(Sandbox& sb, const std::string& ip) {
    auto r = sb.run_argv({exe_, "probe", ip, std::to_string(kTcpPort)}, {.side = Side::A, .in_cgroup = true});
    return r.out.substr(0, r.out.find('\n'));
  }
  // Connects to B's address pass, to blocked(0) and blocked(n-1) are refused (blocking: not OK).
  void check_connect(Cell& c, long n, bool blocking) {
    Sandbox& sb = *c.sb;
    const std::string peer = probe(sb, sb.ip4(Side::B));
    if (peer != "OK") throw std::runtime_error("check: a connect to the test peer gave " + peer);
    for (uint32_t ip : {blocked(0), blocked(n - 1)}) {
      const std::string got = probe(sb, dotted(ip));
      if ((got == "OK") == blocking)
        throw std::runtime_error("check: a connect to " + dotted(ip) + " gave " + got + (blocking ? ", not refused" : ""));
    }
  }
  // A datagram from blocked(1) is dropped at B (when blocking) and one from A's address arrives.
  void check_packets(Cell& c, bool blocking) {
    Sandbox& sb = *c.sb;
    auto recv = sb.spawn_argv({exe_, "udp-recv", std::to_string(kProbePort), "600"}, {.side = Side::B});
    sb.wait_for_port(Side::B, kProbePort, std::chrono::seconds(5), true);
    sb.run_argv({exe_, "udp-send", sb.ip4(Side::B), std::to_string(kProbePort), dotted(blocked(1)), sb.ip4(Side::A)},
                {.side = Side::A});
    recv.wait();
    const std::string out = recv.out();
    const bool peer = out.find(sb.ip4(Side::A) + " ") != std::string::npos;
    const bool listed = out.find(dotted(blocked(1)) + " ") != std::string::npos;
    if (!peer || listed == blocking)
      throw std::runtime_error("check: datagrams from the peer " + std::string(peer ? "arrived" : "were lost") +
                               ", from " + dotted(blocked(1)) + (listed ? " arrived" : " were lost"));
  }

  // Loads a configuration's state into its sandbox: the time until enforced (connect cells), the
  // memory it took, one filter added afterwards; then the checks.
  void load(Cell& c, long n) {
    Sandbox& sb = *c.sb;
    const bool connect = c.metric == Metric::Connect;
    if (c.config == "none") {
      check_connect(c, n, false);
      check_packets(c, false);
      return;
    }
    c.kmem = std::make_unique<KernelMemory>(sb.name() + "-kmem");
    const int64_t mem0 = c.kmem->bytes();
    if (c.config == "lfp") {
      c.lfpd = std::make_unique<Lfpd>(o_, feat_, sb, connect ? sb.cgroup() : "none", !connect, c.kmem->dir());
      c.facts["kmem_empty_bytes"] = c.kmem->bytes() - mem0;  // lfpd, its maps and programs, no filter
    }
    std::optional<lfp::test::Process> watch;
    if (connect) watch = start_watch(sb, blocked(n - 1));
    double ack = 0;
    int64_t t0 = 0;
    if (c.config == "lfp") {
      // `lfp apply FILE`, as a user applies a policy (and as nft -f reads its file below): the
      // file's parse counts, its writing does not.
      const char* layer = connect ? "ALE_AUTH_CONNECT_V4" : "INBOUND_TRANSPORT_V4";
      const std::string peer = connect ? sb.ip4(Side::B) : sb.ip4(Side::A);
      json filters = blocklist(layer, n);
      filters.push_back(permit_peer(layer, peer));
      const std::string file = sb.write_file("policy.json", json{{"filters", std::move(filters)}}.dump());
      t0 = now_ns();
      auto r = sb.run_argv({lfp_cli(), "--socket", c.lfpd->socket(), "apply", file},
                           {.side = connect ? Side::A : Side::B, .timeout = std::chrono::seconds(900)});
      if (!r.ok()) {
        if (watch) watch->kill(SIGKILL);
        throw std::runtime_error("lfp apply failed: " + r.err.substr(0, 300));
      }
      ack = static_cast<double>(now_ns() - t0) / 1e9;
    } else {
      const std::string file = sb.write_file("state.nft", nft_script(c.config, connect ? "out" : "in", n));
      t0 = now_ns();
      const std::string procs = c.kmem->procs();
      auto r = sb.run_argv(procs.empty() ? std::vector<std::string>{"nft", "-f", file}
                                         : std::vector<std::string>{"sh", "-c", "echo 0 > " + procs + " && exec nft -f " + file},
                           {.side = connect ? Side::A : Side::B, .timeout = std::chrono::seconds(900)});
      if (!r.ok()) {
        if (watch) watch->kill(SIGKILL);
        throw std::runtime_error("nft -f failed: " + r.err.substr(0, 300));
      }
      ack = static_cast<double>(now_ns() - t0) / 1e9;
    }
    c.facts["apply_returned_s"] = ack;
    if (watch) c.facts["enforced_s"] = watched(*watch, t0);
    if (c.lfpd) c.lfpd->wait_installed(n + 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // (deferred frees and resizes settle)
    c.facts["kmem_bytes"] = c.kmem->bytes() - mem0;
    c.facts["kmem_source"] = c.kmem->source();
    if (c.lfpd) c.facts["bpf_map_memlock_bytes"] = bpf_map_memlock(c.lfpd->pid());
    if (connect) {
      check_connect(c, n, true);
      add_one(c, n);
    } else {
      check_packets(c, true);
    }
  }

  // One more blocked address (extra_address(n)): time from the start of the change until refused.
  void add_one(Cell& c, long n) {
    Sandbox& sb = *c.sb;
    const std::string ip = dotted(extra_address(n));
    auto watch = start_watch(sb, extra_address(n));
    int64_t t0 = 0;
    if (c.lfpd) {
      lfp::client::Client client(c.lfpd->socket(), {.name = "lfp-kernel-scale-bench add"});
      json f = {{"name", "added"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"}, {"conditions", {when("IP_REMOTE_ADDRESS", ip + "/32")}}};
      t0 = now_ns();
      client.begin();
      client.add("filter", f);
      client.commit();
    } else {
      std::vector<std::string> argv = c.config == "nft-linear"
                                          ? std::vector<std::string>{"nft", "add", "rule", "ip", "lfpb", "out", "ip", "daddr", ip, "drop"}
                                          : std::vector<std::string>{"nft", "add", "element", "ip", "lfpb", "blk", "{ " + ip + " }"};
      t0 = now_ns();
      auto r = sb.run_argv(argv, {.side = Side::A, .timeout = std::chrono::seconds(300)});
      if (!r.ok()) throw std::runtime_error("nft add failed: " + r.err);
    }
    c.facts["add_one_ms"] = watched(watch, t0) * 1000;
    if (c.lfpd) c.lfpd->wait_installed(n + 2);
  }

  void measure_connect(Cell& c) {
    Sandbox& sb = *c.sb;
    const std::string file = sb.tmpdir() + "/latencies.bin";
    auto r = sb.run_argv({exe_, "connect", sb.ip4(Side::B), std::to_string(kTcpPort), std::to_string(o_.conns),
                          std::to_string(o_.warmup), file},
                         {.side = Side::A, .in_cgroup = true, .timeout = std::chrono::seconds(300)});
    if (!r.ok()) throw std::runtime_error(c.config + ": the connect loop failed: " + r.err);
    const std::string raw = lfp::test::read_text(file);
    std::vector<double> us(raw.size() / 4);
    for (size_t i = 0; i < us.size(); ++i) {
      uint32_t v;
      std::memcpy(&v, raw.data() + 4 * i, 4);
      us[i] = v / 1000.0;
    }
    c.p50.push_back(percentile(us, 0.5));
    c.p99.push_back(percentile(us, 0.99));
  }

  // Packets delivered at B per second while A blasts c.packets (a window of o_.secs after 0.3 s).
  void measure_packets(Cell& c) {
    Sandbox& sb = *c.sb;
    auto sender = sb.spawn_argv({exe_, "blast", c.packets, fmt(o_.secs + 0.6, 2)}, {.side = Side::A});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const double n0 = ip_in_delivers(c.b_pid);
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.secs));
    const double n1 = ip_in_delivers(c.b_pid);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    sender.wait(std::chrono::seconds(10));
    c.pps.push_back((n1 - n0) / dt);
    const std::string out = sender.out();
    if (out.rfind("sent ", 0) != 0) throw std::runtime_error(c.config + ": the sender failed: " + out + sender.err());
    c.sent.push_back(std::atof(out.c_str() + 5) / (o_.secs + 0.6));
  }

  // Rounds: the first cell (none) is measured before and after each other one (none c1 none c2 none
  // ..., the others' order reversed every other round), and each window's figure becomes a ratio to
  // the mean of the two none windows beside it: load elsewhere on the machine, which changes from one
  // second to the next, mostly cancels out.
  void rounds(std::vector<Cell*> cells, bool connect, const std::string& what) {
    std::erase_if(cells, [](Cell* c) { return !c->failed.empty(); });
    Cell& base = *cells.front();
    std::vector<Cell*> others(cells.begin() + 1, cells.end());
    auto measure = [&](Cell& c) {
      if (connect) measure_connect(c);
      else measure_packets(c);
      return connect ? fmt(c.p50.back(), 1) : fmt(c.pps.back(), 0) + " (sent " + fmt(c.sent.back(), 0) + ")";
    };
    auto beside = [](const std::vector<double>& v) { return (v[v.size() - 2] + v.back()) / 2; };
    for (int r = 0; r < o_.rounds; ++r) {
      if (r % 2) std::reverse(others.begin(), others.end());
      std::string line = " none " + measure(base);
      for (Cell* c : others) {
        line += ", " + c->config + " " + measure(*c);
        line += ", none " + measure(base);
        if (connect) {
          c->r_p50.push_back(c->p50.back() / beside(base.p50));
          c->r_p99.push_back(c->p99.back() / beside(base.p99));
        } else {
          c->r_pps.push_back(c->pps.back() / beside(base.pps));
        }
      }
      note(what + " round " + std::to_string(r + 1) + ":" + line);
    }
  }

  std::string uniform_packets(Sandbox& sb) {
    std::string p;
    auto host = [](const std::string& ip) { return ntohl(addr_of(ip, 0).sin_addr.s_addr); };
    const uint32_t a = host(sb.ip4(Side::A)), b = host(sb.ip4(Side::B));
    for (int i = 0; i < o_.flows; ++i) append_packet(p, {a, b, static_cast<uint16_t>(10000 + i), kUdpPort, 17});
    return sb.write_file("packets.bin", p);
  }

  json run_size(long n) {
    note("N = " + std::to_string(n) + ": setting up");
    std::vector<std::unique_ptr<Cell>> cells;
    for (const std::string& config : o_.configs) {
      if (config == "nft-linear" && n > o_.linear_max) continue;
      for (Metric m : {Metric::Connect, Metric::Packets}) {
        if (config == "none" && m == Metric::Packets) continue;  // (one none serves both)
        auto c = std::make_unique<Cell>();
        c->config = config;
        c->metric = m;
        const auto t = Clock::now();
        try {
          prepare(*c, n, false);
          c->packets = uniform_packets(*c->sb);
          load(*c, n);
        } catch (const std::exception& e) {
          c->failed = e.what();
          if (c->lfpd) c->failed += "\n  lfpd's log ends: " + tail(c->lfpd->log(), 600);
          c->lfpd.reset();
          c->sb.reset();
        }
        note(config + (config == "none" ? "" : m == Metric::Connect ? " (connect)" : " (packets)") + ": " +
             (c->failed.empty() ? "ready" : "NOT ENFORCED: " + c->failed) + " (" +
             fmt(std::chrono::duration<double>(Clock::now() - t).count(), 1) + " s) " + c->facts.dump());
        cells.push_back(std::move(c));
      }
    }
    if (!cells.front() || cells.front()->config != "none" || !cells.front()->failed.empty())
      throw std::runtime_error("the configuration none is needed (first in --configs) and must work");
    Cell& none = *cells.front();
    std::vector<Cell*> conn = {&none}, pkt = {&none};
    for (auto& c : cells)
      if (c.get() != &none) (c->metric == Metric::Connect ? conn : pkt).push_back(c.get());
    rounds(conn, true, "N=" + std::to_string(n) + " connect p50 us");
    rounds(pkt, false, "N=" + std::to_string(n) + " packets/s");

    json out = {{"n", n}, {"configs", json::object()}};
    for (auto& c : cells) {
      json& j = out["configs"][c->config];
      if (!c->failed.empty()) {
        j[c->metric == Metric::Connect ? "connect_failed" : "packets_failed"] = c->failed;
        continue;
      }
      if (c->metric == Metric::Connect) {
        j["connect_p50_us"] = median(c->p50);
        j["connect_p99_us"] = median(c->p99);
        if (c.get() != &none) {
          j["connect_p50_ratio"] = median(c->r_p50);
          j["connect_p99_ratio"] = median(c->r_p99);
          j["rounds_connect_p50_ratio"] = c->r_p50;
        }
        j["rounds_connect_p50_us"] = c->p50;
        for (auto& [k, v] : c->facts.items()) j[k] = v;
      }
      if (c->metric == Metric::Packets || c.get() == &none) {
        j["pps"] = median(c->pps);
        j["rounds_pps"] = c->pps;
        if (c.get() != &none) {
          j["pps_ratio"] = median(c->r_pps);
          j["rounds_pps_ratio"] = c->r_pps;
        }
        j["sent_pps"] = median(c->sent);
        for (auto& [k, v] : c->facts.items()) j["packets_" + k] = v;
      }
    }
    cells.clear();  // lfpd stopped, hooks detached, sandboxes removed
    return out;
  }

  static std::string tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

  // ---- ClassBench ----

  static std::string prefix(uint32_t a, uint8_t len) {
    const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    return dotted(a & mask) + "/" + std::to_string(len);
  }
  static void port_condition(json& conds, const char* field, uint16_t lo, uint16_t hi) {
    if (lo == 0 && hi == 65535) return;
    if (lo == hi) conds.push_back(when(field, lo));
    else conds.push_back(when(field, {{"low", lo}, {"high", hi}}, "RANGE"));
  }
  // Rule i of n (first match wins in ClassBench) as an INBOUND_TRANSPORT_V4 PERMIT of weight n - i:
  // remote = the source, local = the destination. (PERMIT, so that every packet is delivered and
  // counted whatever rule it meets; the decision's cost is the same.)
  static json classbench_filter(const lfp::classbench::Rule& r, size_t i, size_t n) {
    json conds = json::array();
    if (r.src_len) conds.push_back(when("IP_REMOTE_ADDRESS", prefix(r.src, r.src_len)));
    if (r.dst_len) conds.push_back(when("IP_LOCAL_ADDRESS", prefix(r.dst, r.dst_len)));
    port_condition(conds, "IP_REMOTE_PORT", r.sport_lo, r.sport_hi);
    port_condition(conds, "IP_LOCAL_PORT", r.dport_lo, r.dport_hi);
    if (r.proto_mask == 0xff) conds.push_back(when("IP_PROTOCOL", r.proto));
    else if (r.proto_mask != 0)
      conds.push_back(when("IP_PROTOCOL", {{"low", r.proto & r.proto_mask}, {"high", (r.proto & r.proto_mask) | (~r.proto_mask & 0xff)}}, "RANGE"));
    return {{"name", "r" + std::to_string(i)}, {"layer", "INBOUND_TRANSPORT_V4"}, {"action", "PERMIT"},
            {"weight", {{"explicit", n - i + 16}}},
            {"conditions", conds}};
  }

  json run_classbench(const std::string& name) {
    const std::string base = o_.classbench_dir + "/" + name;
    note("ClassBench " + name + ": reading " + base + ".rules.xz and .trace.xz");
    const auto rules = lfp::classbench::read_rules(base + ".rules.xz");
    const auto trace = lfp::classbench::read_trace(base + ".trace.xz");
    // The sample: TCP and UDP headers whose addresses route (no 0/8, 127/8, 224/3), evenly spaced.
    auto routable = [](uint32_t a) { return (a >> 24) != 0 && (a >> 24) != 127 && (a >> 24) < 224; };
    std::vector<Header> headers;
    for (auto& p : trace)
      if ((p.proto == 6 || p.proto == 17) && routable(p.src) && routable(p.dst))
        headers.push_back({p.src, p.dst, p.sport, p.dport, p.proto});
    if (headers.empty()) throw std::runtime_error(name + ": no TCP or UDP header in the trace routes");
    const size_t usable = headers.size();
    if (headers.size() > o_.sample) {
      std::vector<Header> s;
      for (size_t i = 0; i < o_.sample; ++i) s.push_back(headers[i * headers.size() / o_.sample]);
      headers = std::move(s);
    }
    Cell none{.config = "none", .metric = Metric::ClassBench}, lfp{.config = "lfp", .metric = Metric::ClassBench};
    json out = {{"name", name}, {"rules", rules.size()}, {"trace_headers", trace.size()},
                {"usable_headers", usable}, {"sample", headers.size()}};
    for (Cell* c : {&none, &lfp}) {
      try {
        prepare(*c, 3, true);
        std::string p;
        for (auto& h : headers) append_packet(p, h);
        c->packets = c->sb->write_file("packets.bin", p);
        if (c == &none) {
          check_packets(*c, false);
          continue;
        }
        json filters = json::array();
        // First: the probe's block (datagrams from blocked(1) to the probe port), above every rule.
        filters.push_back({{"name", "probe"}, {"layer", "INBOUND_TRANSPORT_V4"}, {"action", "BLOCK"},
                           {"weight", {{"explicit", rules.size() + 100}}},
                           {"conditions", {when("IP_REMOTE_ADDRESS", dotted(blocked(1)) + "/32"),
                                           when("IP_LOCAL_PORT", kProbePort)}}});
        for (size_t i = 0; i < rules.size(); ++i) filters.push_back(classbench_filter(rules[i], i, rules.size()));
        c->kmem = std::make_unique<KernelMemory>(c->sb->name() + "-kmem");
        c->lfpd = std::make_unique<Lfpd>(o_, feat_, *c->sb, "none", true, c->kmem->dir());
        out["kmem_empty_bytes"] = c->kmem->bytes();
        lfp::client::Client client(c->lfpd->socket(), {.name = "lfp-kernel-scale-bench"});
        const long nfilters = static_cast<long>(filters.size());
        const json policy = {{"filters", std::move(filters)}};
        const int64_t t0 = now_ns();
        client.apply(policy);
        out["apply_returned_s"] = static_cast<double>(now_ns() - t0) / 1e9;
        c->lfpd->wait_installed(nfilters);
        out["bpf_map_memlock_bytes"] = bpf_map_memlock(c->lfpd->pid());
        out["kmem_bytes"] = c->kmem->bytes();
        check_packets(*c, true);
      } catch (const std::exception& e) {
        c->failed = e.what();
        if (c->lfpd) c->failed += "\n  lfpd's log ends: " + tail(c->lfpd->log(), 600);
      }
      note("ClassBench " + name + " " + c->config + ": " + (c->failed.empty() ? "ready" : "NOT ENFORCED: " + c->failed));
    }
    if (!none.failed.empty()) throw std::runtime_error("ClassBench without a firewall failed: " + none.failed);
    rounds({&none, &lfp}, false, "ClassBench " + name + " packets/s");
    out["none_pps"] = median(none.pps);
    if (lfp.failed.empty()) {
      out["lfp_pps"] = median(lfp.pps);
      out["ratio"] = median(lfp.r_pps);
      out["rounds_ratio"] = lfp.r_pps;
      out["rounds_none_pps"] = none.pps;
      out["rounds_lfp_pps"] = lfp.pps;
    } else {
      out["lfp_failed"] = lfp.failed;
    }
    return out;
  }

  Options o_;
  LfpdFeatures feat_;
  std::string exe_;
};

// ---- output ----

std::string mb(const json& j, const char* key) {
  return j.contains(key) ? fmt(j[key].get<double>() / 1048576.0, 1) : "-";
}

// `index NAME`: a ClassBench set compiled as lfpd compiles it, without the kernel: how many filters
// the index leaves on the residual list, and how many a decision visits over the set's trace.
int print_index(const std::string& name) {
  const std::string dir = std::string(LFP_CLASSBENCH_DIR) + "/";
  const auto rules = lfp::classbench::read_rules(dir + name + ".rules.xz");
  const auto trace = lfp::classbench::read_trace(dir + name + ".trace.xz");
  lfp::FilterEngine engine;
  auto weight = static_cast<uint64_t>(rules.size());
  for (const auto& r : rules) engine.add_filter(lfp::classbench::to_filter(r, weight--));
  const auto t0 = std::chrono::steady_clock::now();
  const auto pol = lfp::datapath::compile(engine, [](const std::string&) { return lfp::datapath::AppKey{}; }, 1);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<size_t> visits;
  for (const auto& p : trace) {
    visits.push_back(lfp::datapath::index_candidates(pol, LFP_KL_TRANSPORT_IN_V4, lfp::classbench::kernel_values(p)));
  }
  lfp::datapath::WalkCost sum_cost;
  for (const auto& p : trace) {
    const auto c = lfp::datapath::walk_cost(pol, LFP_KL_TRANSPORT_IN_V4, lfp::classbench::kernel_values(p));
    sum_cost.probes += c.probes, sum_cost.lists += c.lists, sum_cost.candidates += c.candidates;
    sum_cost.filters_read += c.filters_read, sum_cost.index_lines += c.index_lines;
    sum_cost.fingerprint_lines += c.fingerprint_lines, sum_cost.bucket_lines += c.bucket_lines;
    sum_cost.list_lines += c.list_lines;
    sum_cost.guard_lines += c.guard_lines, sum_cost.condition_lines += c.condition_lines;
  }
  const double nt = static_cast<double>(trace.size());
  auto per = [&](size_t x) { return static_cast<double>(x) / nt; };
  std::printf("the walk, a decision (mean): %.1f probes, %.1f lists, %.1f guards read, %.1f filters' conditions read;\n"
              "  cache lines %.1f: index %.1f, fingerprints %.1f, buckets %.1f, lists %.1f, guards %.1f, conditions %.1f\n",
              per(sum_cost.probes), per(sum_cost.lists), per(sum_cost.candidates), per(sum_cost.filters_read),
              per(sum_cost.lines()), per(sum_cost.index_lines), per(sum_cost.fingerprint_lines), per(sum_cost.bucket_lines),
              per(sum_cost.list_lines),
              per(sum_cost.guard_lines), per(sum_cost.condition_lines));
  std::sort(visits.begin(), visits.end());
  double sum = 0;
  for (size_t x : visits) sum += static_cast<double>(x);
  const lfp_layer_hdr& h = pol.bank[LFP_KL_TRANSPORT_IN_V4].h;
  std::printf("%s: %zu filters, %u probes, %zu keys, %u on the residual list, %zu under wider keys; compiled in %.2f s\n"
              "filters a decision visits over %zu trace headers: mean %.1f, p50 %zu, p99 %zu, max %zu\n",
              name.c_str(), pol.filters, h.nprobes, pol.index_keys, h.nresidual, pol.widened_filters, secs, visits.size(),
              sum / static_cast<double>(visits.size()), visits[visits.size() / 2], visits[visits.size() * 99 / 100], visits.back());
  // The kernel's own evaluator on 200 of the trace's headers, as it times them (BPF_PROG_TEST_RUN; root).
  if (::geteuid() == 0) {
    lfp::datapath::KernelPath k(lfp::datapath::KernelOptions{});  // (loaded, attached nowhere)
    k.install(engine);
    double ns = 0;
    const size_t step = std::max<size_t>(1, trace.size() / 200);
    size_t timed = 0;
    for (size_t i = 0; i < trace.size(); i += step, ++timed)
      ns += k.time_evaluate(LFP_KL_TRANSPORT_IN_V4, lfp::classbench::kernel_values(trace[i]), 2000);
    std::printf("a decision in the kernel (lfp_eval): mean %.0f ns over %zu headers\n", ns / static_cast<double>(timed), timed);
  }
  return 0;
}

void print_table(const json& r) {
  std::printf("lfp-kernel-scale-bench: blocklists of N /32s + one permit; ratios to no firewall are medians of\n"
              "per-round ratios (%d rounds; connect: %ld connect() a window; packets: %.1f s windows, %d flows, uncached)\n",
              r["rounds"].get<int>(), r["conns"].get<long>(), r["secs"].get<double>(), r["flows"].get<int>());
  for (auto& s : r["sizes"]) {
    std::printf("\nN = %ld\n", s["n"].get<long>());
    std::printf("%-13s %9s %7s %7s %11s %7s %10s %10s %9s %9s %9s\n", "config", "conn p50", "ratio", "p99 r",
                "pkts/s", "ratio", "enforced", "apply ret", "add one", "kmem MB", "maps MB");
    for (auto& [name, c] : s["configs"].items()) {
      auto num = [&](const char* k, int prec, double scale = 1) {
        return c.contains(k) ? fmt(c[k].get<double>() * scale, prec) : std::string("-");
      };
      std::printf("%-13s %9s %7s %7s %11s %7s %10s %10s %9s %9s %9s\n", name.c_str(), num("connect_p50_us", 1).c_str(),
                  num("connect_p50_ratio", 3).c_str(), num("connect_p99_ratio", 3).c_str(), num("pps", 0).c_str(),
                  num("pps_ratio", 3).c_str(), (num("enforced_s", 3) + (c.contains("enforced_s") ? "s" : "")).c_str(),
                  (num("apply_returned_s", 3) + (c.contains("apply_returned_s") ? "s" : "")).c_str(),
                  (num("add_one_ms", 2) + (c.contains("add_one_ms") ? "ms" : "")).c_str(),
                  mb(c, c.contains("kmem_bytes") ? "kmem_bytes" : "packets_kmem_bytes").c_str(),
                  mb(c, c.contains("bpf_map_memlock_bytes") ? "bpf_map_memlock_bytes" : "packets_bpf_map_memlock_bytes").c_str());
      for (const char* f : {"connect_failed", "packets_failed"})
        if (c.contains(f)) std::printf("  %s: %s\n", f, c[f].get<std::string>().c_str());
    }
  }
  if (!r["classbench"].empty()) {
    std::printf("\nClassBench policies at INBOUND_TRANSPORT_V4, uncached, the trace's headers as packets\n");
    std::printf("%-10s %8s %8s %12s %12s %7s %10s %9s %9s\n", "policy", "rules", "sample", "none pkts/s", "lfp pkts/s",
                "ratio", "apply ret", "kmem MB", "maps MB");
    for (auto& c : r["classbench"]) {
      std::printf("%-10s %8zu %8zu %12.0f %12s %7s %10s %9s %9s\n", c["name"].get<std::string>().c_str(),
                  c["rules"].get<size_t>(), c["sample"].get<size_t>(), c["none_pps"].get<double>(),
                  c.contains("lfp_pps") ? fmt(c["lfp_pps"].get<double>(), 0).c_str() : "-",
                  c.contains("ratio") ? fmt(c["ratio"].get<double>(), 3).c_str() : "-",
                  c.contains("apply_returned_s") ? (fmt(c["apply_returned_s"].get<double>(), 2) + "s").c_str() : "-",
                  mb(c, "kmem_bytes").c_str(), mb(c, "bpf_map_memlock_bytes").c_str());
      if (c.contains("lfp_failed")) std::printf("  lfp failed: %s\n", c["lfp_failed"].get<std::string>().c_str());
    }
  }
  std::printf("\n(enforced: from the start of the apply until a connect to a blocked address is refused; apply ret:\n"
              "until the transaction or nft -f returned; add one: one more blocked address, until refused; kmem:\n"
              "kernel memory charged to the loader's memory cgroup (lfpd: with its empty image); maps: memlock of lfpd's BPF maps)\n");
  std::printf("(%.1f s)\n", r["seconds"].get<double>());
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "%s\n"
               "usage: lfp-kernel-scale-bench [--json] [--sizes 10,1000,10000,100000] [--configs none,lfp,nft-set,...]\n"
               "         [--rounds 5] [--conns 2000] [--warmup 200] [--secs 1] [--flows 1024]\n"
               "         [--classbench fw1_10k,fw1_100k|none] [--classbench-dir DIR] [--sample 65536]\n"
               "         [--linear-max 10000] [--enforce-timeout 300] [--kernel-entries N] [--lfpd PATH]\n"
               "  --sizes        blocklist sizes N (3 to 1300000; 1000000 on request: it takes a while)\n"
               "  --configs      of none (needed, first), lfp, nft-set, nft-interval, nft-linear\n"
               "  --linear-max   the largest N for nft-linear (N plain rules)\n"
               "  --classbench   ClassBench policies (NAME.rules.xz and NAME.trace.xz in --classbench-dir)\n"
               "  --sample       trace headers sent as packets, at most\n"
               "  --kernel-entries  passed to lfpd (the most entries its kernel image may take)\n",
               why.c_str());
  std::exit(2);
}


}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 2 && a[0] == "serve") return child_serve(std::stoi(a[1]));
    if (a.size() == 2 && a[0] == "sink") return child_sink(std::stoi(a[1]));
    if (a.size() == 6 && a[0] == "connect")
      return child_connect(a[1], std::stoi(a[2]), std::stol(a[3]), std::stol(a[4]), a[5].c_str());
    if (a.size() == 3 && a[0] == "probe") return std::printf("%s\n", probe_once(addr_of(a[1], std::stoi(a[2])), 300).c_str()), 0;
    if (a.size() == 4 && a[0] == "watch") return child_watch(a[1], std::stoi(a[2]), std::stod(a[3]));
    if (a.size() == 3 && a[0] == "blast") return child_blast(a[1].c_str(), std::stod(a[2]));
    if (a.size() == 3 && a[0] == "udp-recv") return child_udp_recv(std::stoi(a[1]), std::stoi(a[2]));
    if (a.size() == 2 && a[0] == "table") return print_table(json::parse(lfp::test::read_text(a[1]))), 0;  // a --json file
    if (a.size() == 2 && a[0] == "index") return print_index(a[1]);
    if (a.size() >= 4 && a[0] == "udp-send")
      return child_udp_send(a[1], std::stoi(a[2]), std::vector<std::string>(a.begin() + 3, a.end()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-kernel-scale-bench %s: %s\n", a[0].c_str(), e.what());
    return 1;
  }
  Options o;
  for (size_t i = 0; i < a.size(); ++i) {
    auto value = [&]() -> const std::string& {
      if (i + 1 >= a.size()) usage("missing value after " + a[i]);
      return a[++i];
    };
    auto num = [&](double lo, double hi) {
      const std::string& flag = a[i];
      const std::string& v = value();
      char* end;
      const double x = std::strtod(v.c_str(), &end);
      if (*end || v.empty() || x < lo || x > hi) usage("bad value for " + flag + ": " + v);
      return x;
    };
    if (a[i] == "--json") o.json = true;
    else if (a[i] == "--sizes") {
      o.sizes.clear();
      for (auto& s : lfp::bench::split_list(value())) {
        char* end;
        const long n = std::strtol(s.c_str(), &end, 10);
        if (*end || n < 3 || n > kMaxSize) usage("--sizes takes numbers from 3 to " + std::to_string(kMaxSize) + ": " + s);
        o.sizes.push_back(n);
      }
    } else if (a[i] == "--configs") {
      o.configs = lfp::bench::split_list(value());
      for (auto& c : o.configs)
        if (c != "none" && c != "lfp" && c != "nft-set" && c != "nft-interval" && c != "nft-linear")
          usage("unknown configuration " + c);
      if (o.configs.empty() || o.configs.front() != "none") usage("--configs must start with none");
    } else if (a[i] == "--rounds") o.rounds = static_cast<int>(num(1, 1000));
    else if (a[i] == "--conns") o.conns = static_cast<long>(num(10, 1e7));
    else if (a[i] == "--warmup") o.warmup = static_cast<long>(num(0, 1e7));
    else if (a[i] == "--secs") o.secs = num(0.1, 60);
    else if (a[i] == "--flows") o.flows = static_cast<int>(num(1, 50000));
    else if (a[i] == "--classbench") {
      o.classbench = lfp::bench::split_list(value());
      if (o.classbench == std::vector<std::string>{"none"}) o.classbench.clear();
    } else if (a[i] == "--classbench-dir") o.classbench_dir = value();
    else if (a[i] == "--sample") o.sample = static_cast<size_t>(num(1, 1e7));
    else if (a[i] == "--linear-max") o.linear_max = static_cast<long>(num(0, kMaxSize));
    else if (a[i] == "--enforce-timeout") o.enforce_timeout = num(1, 3600);
    else if (a[i] == "--lfpd") o.lfpd = value();
    else if (a[i] == "--kernel-entries") o.kernel_entries = static_cast<long>(num(1, 1e9));
    else if (a[i] == "-h" || a[i] == "--help") usage("lfp-kernel-scale-bench: LFP's kernel path as the policy grows, against nftables");
    else usage("unknown argument " + a[i]);
  }
  if (std::string why; !lfp::test::sandbox_available(&why)) {
    std::fprintf(stderr, "lfp-kernel-scale-bench: %s\n", why.c_str());
    return 77;
  }
  if (access("/usr/sbin/nft", X_OK) != 0 && o.configs.size() > 2) {
    std::fprintf(stderr, "lfp-kernel-scale-bench: nft is not installed (Debian package nftables); --configs none,lfp\n");
    return 2;
  }
  try {
    const json r = Bench(o).run();
    if (o.json) std::printf("%s\n", r.dump(2).c_str());
    else print_table(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-kernel-scale-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
