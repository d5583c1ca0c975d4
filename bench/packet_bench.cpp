// SPDX-License-Identifier: MIT
// lfp-packet-bench: what the in-kernel packet layers cost, in packets per second through a veth pair,
// measured in one run inside a test Sandbox (tests/support/sandbox.hpp). Namespace A blasts UDP datagrams (64
// bytes of payload, or --payload's; sendmmsg) from FLOWS source ports at namespace B, where a sink
// counts what arrives (recvmmsg). lfpd runs in B with --packet-layers, so its programs sit at B's
// netfilter hooks only.
//
// Configurations, measured in every round in alternating order (a h s l n, then n l s h a, ...):
//   a  no lfpd: nothing at B's hooks
//   h  lfpd --packet-layers, no filter (the hooks' fixed cost: they find no filter at the layer)
//   s  SMALL filters at INBOUND_TRANSPORT_V4 (default 10): SMALL-1 that do not match, then a permit
//   l  LARGE filters there (default 10000), likewise
//   n  l with the decision cache off (lfpd --no-packet-cache): every packet walks the whole layer,
//      as a flow's first packet does
// and the user-space path, against its own baseline:
//   t  a trivial NFQUEUE reader in B (libnetfilter_queue, a verdict per packet) behind an xtables
//      NFQUEUE rule at mangle INPUT: what any user-space packet filter pays at least
//   u  lfpd --packet-queue --packet-userspace (one queue) with SMALL filters: every packet is
//      queued at LOCAL_IN and the engine decides INBOUND_TRANSPORT_V4 in lfpd
//   v  u with LARGE filters
// u and v are also given as ratios to t (the goal: at least 0.9).
// Each figure is the median over the rounds of the received rate; ratios are medians of each round's
// own ratio to a. Before each configuration is measured, lfpd must have reported compiling the
// expected number of filters, and a probe datagram to a port that only that policy blocks must be lost.
//
// --interleave measures s and l (of --only) another way, for a machine whose speed changes from one
// second to the next: one sender and one sink run throughout while lfpd, in B all along, goes from no
// filter (h: no LFP program at any hook, checked) to s or l and back; windows of --secs alternate
// h X h Y h X ..., and each X window's rate is a ratio to the mean of the h windows on either side of
// it (so both were measured within a second or two of each other). It reports the medians of those
// ratios; --rounds is the number of windows of each of s and l. Before each window, LFP's programs
// linked at B's netfilter hooks and tcx are checked (none in h; lfp_nf_in4 alone in s and l). With e in --only it
// also measures e: no LFP program, but an empty nftables base chain at B's input hook (what any
// netfilter hook costs this path, the floor for a program there). With m, it measures SMALL filters
// at INBOUND_MAC_FRAME_ETHERNET instead: LFP's tcx program alone, no netfilter hook (what deciding
// at tcx would cost against deciding at netfilter). With o and --compare PATH, it measures s with the
// lfpd at PATH too (restarted between windows, while no program is linked): two versions of the
// packet path, side by side in the same run.
//
//   lfp-packet-bench [--json] [--rounds N] [--secs S] [--flows N] [--small N] [--large N] [--only CONFIGS] [--pin]
//                    [--bpf-stats] [--interleave] [--lfpd PATH] [--compare PATH] [--payload BYTES]
// (--pin: the sender on CPU 0, the sink on CPU 1. --lfpd: that lfpd binary instead of the one built
// beside the bench. --payload: UDP payload bytes, 1 to 1472; the sink reads the first 64 of each.
// --bpf-stats: also what LFP's programs cost per packet, as the kernel timed them.)
// Modes run inside the sandbox (argv[1]):
//   lfp-packet-bench sink PORT SECS CPU    counts datagrams for SECS after the first; prints the count
//   lfp-packet-bench sink-timeline PORT CPU   counts datagrams until SIGTERM, then prints "NS COUNT"
//                                          lines: the steady clock and the count so far, every ms
//   lfp-packet-bench blast IP PORT SECS FLOWS CPU PAYLOAD   (CPU -1: not pinned)
//   lfp-packet-bench nfq-reader QUEUE       accepts every packet queue QUEUE holds, until killed
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf_stats.hpp"
#include "daemon_support.hpp"
#include "live_support.hpp"
#include "sandbox.hpp"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using lfp::test::Sandbox;
using lfp::test::Side;
using lfp::test::when;

constexpr int kPort = 9100, kProbePort = 9101;
constexpr int kMaxPayload = 1472;  // one UDP datagram in a 1500-byte MTU, unfragmented

sockaddr_in addr_of(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) throw std::runtime_error(std::string("bad address ") + ip);
  return a;
}

// The sink's socket: UDP on `port` with a large receive buffer, read 256 datagrams at a time;
// receive() waits at most timeout_us.
class SinkSocket {
 public:
  SinkSocket(int port, long timeout_us) : fd_(socket(AF_INET, SOCK_DGRAM, 0)) {
    int big = 32 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    sockaddr_in a = addr_of("0.0.0.0", port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind to port " + std::to_string(port) + ": " + std::strerror(errno));
    for (int i = 0; i < kBatch; ++i) {
      iov_[i] = {bufs_[i], sizeof bufs_[i]};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    timeval tv{0, timeout_us};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~SinkSocket() { ::close(fd_); }
  int receive() { return recvmmsg(fd_, msgs_, kBatch, 0, nullptr); }

 private:
  static constexpr int kBatch = 256;
  int fd_;
  char bufs_[kBatch][64];
  mmsghdr msgs_[kBatch]{};
  iovec iov_[kBatch];
};

int sink(int port, double secs, int cpu) {
  lfp::test::pin_to(cpu);
  SinkSocket sock(port, 100000);
  long n = 0;
  Clock::time_point start{}, idle = Clock::now();
  for (;;) {
    const int got = sock.receive();
    const auto now = Clock::now();
    if (got > 0) {
      if (start == Clock::time_point{}) start = now;
      n += got;
    } else if (start == Clock::time_point{} && now - idle > std::chrono::seconds(10)) {
      break;  // nothing came
    }
    if (start != Clock::time_point{} && now - start >= std::chrono::duration<double>(secs)) break;
  }
  std::printf("%ld\n", n);
  return 0;
}

volatile std::sig_atomic_t g_stop = 0;

int sink_timeline(int port, int cpu) {
  lfp::test::pin_to(cpu);
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  SinkSocket sock(port, 20000);
  std::vector<std::pair<int64_t, long>> samples;
  samples.reserve(1 << 20);
  long n = 0;
  int64_t last = 0;
  while (!g_stop) {
    const int got = sock.receive();
    if (got > 0) n += got;
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    if (now - last >= 1000000 && samples.size() < samples.capacity()) {
      samples.emplace_back(now, n);
      last = now;
    }
  }
  for (const auto& [t, c] : samples) std::printf("%lld %ld\n", static_cast<long long>(t), c);
  return 0;
}

// LFP's programs linked at netfilter hooks or tcx now, by name.
std::multiset<std::string> lfp_links() {
  std::multiset<std::string> out;
  for (uint32_t id = 0; bpf_link_get_next_id(id, &id) == 0;) {
    const int fd = bpf_link_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_link_info link{};
    uint32_t len = sizeof link;
    if (bpf_obj_get_info_by_fd(fd, &link, &len) == 0) {
      const int pfd = bpf_prog_get_fd_by_id(link.prog_id);
      bpf_prog_info prog{};
      uint32_t plen = sizeof prog;
      constexpr uint32_t kProgTypeNetfilter = 32;  // (newer than this system's headers)
      if (pfd >= 0 && bpf_obj_get_info_by_fd(pfd, &prog, &plen) == 0 &&
          (prog.type == kProgTypeNetfilter || prog.type == BPF_PROG_TYPE_SCHED_CLS) &&
          std::strncmp(prog.name, "lfp_", 4) == 0)
        out.insert(prog.name);
      if (pfd >= 0) ::close(pfd);
    }
    ::close(fd);
  }
  return out;
}

int blast(const char* ip, int port, double secs, int flows, int cpu, int payload) {
  lfp::test::pin_to(cpu);
  const sockaddr_in to = addr_of(ip, port);
  std::vector<int> fds;
  for (int i = 0; i < flows; ++i) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return perror("connect"), 1;
    fds.push_back(fd);
  }
  constexpr int kBatch = 64;
  char buf[kMaxPayload] = {};
  mmsghdr msgs[kBatch]{};
  iovec iov{buf, static_cast<size_t>(payload)};
  for (auto& m : msgs) m.msg_hdr.msg_iov = &iov, m.msg_hdr.msg_iovlen = 1;
  const auto end = Clock::now() + std::chrono::duration<double>(secs + 0.5);
  for (size_t i = 0; Clock::now() < end; ++i) sendmmsg(fds[i % fds.size()], msgs, kBatch, 0);
  return 0;
}

// The trivial reader: the canonical libnetfilter_queue loop, a verdict per packet.
int nfq_reader(int queue) {
  nfq_handle* h = nfq_open();
  if (!h) return perror("nfq_open"), 1;
  nfq_q_handle* q = nfq_create_queue(
      h, static_cast<uint16_t>(queue),
      [](nfq_q_handle* qh, nfgenmsg*, nfq_data* nfa, void*) {
        const nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
        return ph ? nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, nullptr) : 0;
      },
      nullptr);
  if (!q) return std::fprintf(stderr, "cannot bind queue %d\n", queue), 1;
  nfq_set_mode(q, NFQNL_COPY_PACKET, 0xffff);
  nfq_set_queue_maxlen(q, 8192);
  const int fd = nfq_fd(h);
  int big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  alignas(8) static char buf[0xffff + 4096];
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) nfq_handle_packet(h, buf, static_cast<int>(n));
  }
}

// n filters at INBOUND_TRANSPORT_V4: n-1 that the benchmark's datagrams do not match (other local
// ports), the first of them blocking the probe port, then one permit for the benchmark's port.
json policy(int n) {
  json filters = json::array();
  filters.push_back({{"name", "probe"}, {"layer", "INBOUND_TRANSPORT_V4"}, {"action", "BLOCK"},
                     {"conditions", {when("IP_PROTOCOL", "UDP"), when("IP_LOCAL_PORT", kProbePort)}}});
  for (int i = 1; i < n - 1; ++i)
    filters.push_back({{"name", "other " + std::to_string(i)}, {"layer", "INBOUND_TRANSPORT_V4"}, {"action", "BLOCK"},
                       {"conditions", {when("IP_PROTOCOL", "UDP"), when("IP_LOCAL_PORT", 20000 + i % 40000),
                                       when("IP_REMOTE_PORT", 1 + i % 1000)}}});
  filters.push_back({{"name", "the benchmark"}, {"layer", "INBOUND_TRANSPORT_V4"}, {"action", "PERMIT"},
                     {"weight", {{"explicit", 0}}}, {"conditions", {when("IP_LOCAL_PORT", kPort)}}});
  return {{"filters", filters}};
}

// n filters at INBOUND_MAC_FRAME_ETHERNET, decided at tcx: n-1 blocks of EtherTypes nothing sends,
// then one permit for IPv4 frames.
json mac_policy(int n) {
  json filters = json::array();
  for (int i = 0; i < n - 1; ++i)
    filters.push_back({{"name", "other " + std::to_string(i)}, {"layer", "INBOUND_MAC_FRAME_ETHERNET"}, {"action", "BLOCK"},
                       {"conditions", {when("ETHER_TYPE", 0x9000 + i % 0x1000)}}});
  filters.push_back({{"name", "the benchmark"}, {"layer", "INBOUND_MAC_FRAME_ETHERNET"}, {"action", "PERMIT"},
                     {"weight", {{"explicit", 0}}}, {"conditions", {when("ETHER_TYPE", 0x0800)}}});
  return {{"filters", filters}};
}

struct Options {
  int rounds = 5, flows = 1, small = 10, large = 10000;
  int payload = 64;  // UDP payload bytes a datagram
  double secs = 2;
  bool as_json = false;
  bool pin = false;  // sender on CPU 0, sink on CPU 1
  bool bpf_stats = false;  // the kernel's run time of LFP's programs per packet (BPF_ENABLE_STATS)
  bool interleave = false;  // s and l in windows between windows of h, one sender and sink throughout
  std::string compare;  // --interleave's o: s with this lfpd binary
  std::string only = "ahslntuv";  // the configurations to measure (a is always one)
};

class Bench {
 public:
  explicit Bench(Options o) : o_(o) { self_ = std::filesystem::read_symlink("/proc/self/exe").string(); }

  // Puts the configuration in place and checks it; throws if it is not what it claims.
  void enter(char c) {
    trivial_reader(c == 't');
    if (c == 'a' || c == 't') {
      lfpd_.reset();
      session_.reset();
      if (!probe()) throw std::runtime_error(std::string("configuration ") + c + ": the probe datagram was lost");
      return;
    }
    const char mode = c == 'n' ? 'n' : c == 'u' || c == 'v' ? 'u' : 'k';
    if (!lfpd_ || mode != mode_) start_lfpd(mode, main_lfpd_);
    const int want = c == 'h' ? 0 : c == 's' || c == 'u' ? o_.small : o_.large;
    if (want != filters_) {
      session_.reset();  // a dynamic session's filters go with it
      if (want) {
        session_ = lfpd_->connect({.name = "lfp-packet-bench", .dynamic = true});
        session_->apply(policy(want));
      }
      filters_ = want;
    }
    // The probe port is blocked exactly when there are filters.
    const bool lost = !probe();
    if (lost != (want > 0)) throw std::runtime_error(std::string("configuration ") + c + ": the probe datagram was " +
                                                     (lost ? "lost" : "delivered"));
    if (mode_ == 'u' && lfpd_->connect()->call("packet_queue")["dropped"].get<uint64_t>() == 0)
      throw std::runtime_error(std::string("configuration ") + c + ": lfpd's packet queue did not see the probe");
  }

  // lfpd in B in `mode` (k kernel, n no decision cache, u user space), from binary `exe`; no filter.
  void start_lfpd(char mode, const std::string& exe) {
    session_.reset();
    lfpd_.reset();
    std::vector<std::string> args = {"--cgroup", "none", "--packet-layers", "--bpf-pin", ""};
    if (mode == 'n') args.push_back("--no-packet-cache");
    // (--fail closed: what the queue cannot take is dropped, as the trivial reader's is, not passed)
    if (mode == 'u') args.insert(args.end(), {"--packet-queue", "7501", "--packet-userspace", "--fail", "closed"});
    lfp::test::lfpd_path() = exe;
    lfpd_ = std::make_unique<lfp::test::Daemon>(args, sb_.ns_path(Side::B));
    mode_ = mode;
    exe_ = exe;
    filters_ = 0;
  }

  // The trivial reader and its rule in B, while configuration t is measured.
  void trivial_reader(bool on) {
    if (on == reader_.running()) return;
    const std::string rule = " INPUT -p udp -j NFQUEUE --queue-num 7500";
    if (!on) {
      sb_.run("iptables -w -t mangle -D" + rule, {.side = Side::B});
      reader_.kill(SIGKILL);
      reader_.wait();
      return;
    }
    reader_ = sb_.spawn_argv({self_, "nfq-reader", "7500"}, {.side = Side::B});
    for (int i = 0; i < 200 && reader_.out().find("ready") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!sb_.run("iptables -w -t mangle -A" + rule, {.side = Side::B}).ok())
      throw std::runtime_error("configuration t: cannot add the NFQUEUE rule");
  }

  double measure(char c) {
    const bool user = c == 'u' || c == 'v';
    auto queued = [&] { return lfpd_->connect()->call("packet_queue")["packets"].get<uint64_t>(); };
    const uint64_t before = user ? queued() : 0;
    auto sink = sb_.spawn_argv({self_, "sink", std::to_string(kPort), std::to_string(o_.secs), o_.pin ? "1" : "-1"},
                               {.side = Side::B});
    sb_.wait_for_port(Side::B, kPort, std::chrono::seconds(5), true);
    sb_.run_argv({self_, "blast", sb_.ip4(Side::B), std::to_string(kPort), std::to_string(o_.secs),
                  std::to_string(o_.flows), o_.pin ? "0" : "-1", std::to_string(o_.payload)},
                 {.side = Side::A, .timeout = std::chrono::seconds(static_cast<int>(o_.secs) + 30)});
    sink.wait(std::chrono::seconds(static_cast<int>(o_.secs) + 30));
    const double received = std::atof(sink.out().c_str());
    // Every datagram the sink counted must have been decided by lfpd's queue, not passed around it.
    if (user && static_cast<double>(queued() - before) < received)
      throw std::runtime_error(std::string("configuration ") + c + ": lfpd's queue decided " +
                               std::to_string(queued() - before) + " packets, the sink received " +
                               std::to_string(received));
    return received / o_.secs;
  }

  // --interleave (see the header).
  json interleaved() {
    std::vector<char> xs;
    for (char c : {'s', 'l', 'e', 'm', 'o'})
      if (o_.only.find(c) != std::string::npos) xs.push_back(c);
    if (xs.empty()) throw std::runtime_error("--interleave measures s, l, e, m or o: --only names none");
    enter('h');  // lfpd in B, no filter: the probe checks it lets everything through
    // Puts configuration c in place without a probe (the sender is running) and checks the hooks.
    auto toggle = [&](char c) {
      // e: an empty nftables base chain at B's input hook, no LFP program: what any netfilter hook costs.
      const bool chain = c == 'e';
      if (chain != empty_chain_) {
        const std::string cmd = chain ? "nft add table inet lfp_bench_e && nft add chain inet lfp_bench_e in '{ type filter hook input priority 0; }'"
                                      : "nft delete table inet lfp_bench_e";
        if (!sb_.run(cmd, {.side = Side::B}).ok()) throw std::runtime_error("cannot run: " + cmd);
        empty_chain_ = chain;
      }
      // o: s with the other lfpd (restarted while no program is linked, so h windows do not care)
      const std::string& exe = c == 'o' ? o_.compare : main_lfpd_;
      if (c != 'h' && c != 'e' && exe != exe_) start_lfpd('k', exe);
      // (m's filters are told from s's by their sign)
      const int want = c == 'h' || c == 'e' ? 0 : c == 's' || c == 'o' ? o_.small : c == 'm' ? -o_.small : o_.large;
      if (want != filters_) {
        session_.reset();
        if (want) {
          session_ = lfpd_->connect({.name = "lfp-packet-bench", .dynamic = true});
          session_->apply(want > 0 ? policy(want) : mac_policy(-want));  // (lfpd installs a policy before it answers)
        } else {
          auto frame = lfpd_->connect();
          for (int i = 0; !frame->enumerate("filter").empty(); ++i) {
            if (i > 500) throw std::runtime_error("lfpd kept the benchmark's filters after its session closed");
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }
        filters_ = want;
      }
      // What must be linked: nothing in h and e, lfp_nf_in4 alone in s, l and o, lfp_tc_ingress alone
      // (on each interface of B but lo) in m.
      const auto links = lfp_links();
      const char* want_link = c == 'm' ? "lfp_tc_ingress" : "lfp_nf_in4";
      const bool none = c == 'h' || c == 'e';
      if (none ? !links.empty() : links.count(want_link) < 1 || links.count(want_link) != links.size())
        throw std::runtime_error(std::string("configuration ") + c + ": " + std::to_string(links.size()) +
                                 " LFP programs linked at netfilter hooks or tcx, " + want_link + " " +
                                 (links.count(want_link) ? "among them" : "not among them"));
    };
    std::vector<char> seq = {'h'};
    for (int r = 0; r < o_.rounds; ++r)
      for (char x : xs) seq.insert(seq.end(), {x, 'h'});
    auto sink = sb_.spawn_argv({self_, "sink-timeline", std::to_string(kPort), o_.pin ? "1" : "-1"}, {.side = Side::B});
    sb_.wait_for_port(Side::B, kPort, std::chrono::seconds(5), true);
    auto sender = sb_.spawn_argv({self_, "blast", sb_.ip4(Side::B), std::to_string(kPort), "100000",
                                  std::to_string(o_.flows), o_.pin ? "0" : "-1", std::to_string(o_.payload)},
                                 {.side = Side::A});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    struct Window { char c; Clock::time_point t0, t1; };
    std::vector<Window> windows;
    for (char c : seq) {
      toggle(c);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // what was queued before goes first
      const auto t0 = Clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(o_.secs));
      windows.push_back({c, t0, Clock::now()});
      std::fprintf(stderr, "lfp-packet-bench: window %zu of %zu: %c\n", windows.size(), seq.size(), c);
    }
    sender.kill(SIGKILL);
    sender.wait();
    sink.kill(SIGTERM);
    sink.wait(std::chrono::seconds(10));
    // The sink's count at time t, between its samples.
    std::vector<std::pair<double, double>> tl;
    {
      std::istringstream in(sink.out());
      long long t;
      long n;
      while (in >> t >> n) tl.emplace_back(static_cast<double>(t), static_cast<double>(n));
    }
    auto count_at = [&](Clock::time_point tp) {
      const double t = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count());
      auto it = std::lower_bound(tl.begin(), tl.end(), std::make_pair(t, -1.0));
      if (it == tl.begin() || it == tl.end()) throw std::runtime_error("the sink's timeline does not cover a window");
      const auto& [t1, n1] = *it;
      const auto& [t0, n0] = *(it - 1);
      return n0 + (n1 - n0) * (t - t0) / (t1 - t0);
    };
    std::vector<double> rate;
    for (const auto& w : windows)
      rate.push_back((count_at(w.t1) - count_at(w.t0)) / std::chrono::duration<double>(w.t1 - w.t0).count());
    json out = {{"windows", windows.size()}, {"secs", o_.secs}, {"flows", o_.flows}, {"payload", o_.payload},
                {"small", o_.small}, {"large", o_.large}};
    std::map<char, std::vector<double>> pps, ratio;
    for (size_t i = 0; i < windows.size(); ++i) {
      pps[windows[i].c].push_back(rate[i]);
      if (windows[i].c != 'h') ratio[windows[i].c].push_back(rate[i] / ((rate[i - 1] + rate[i + 1]) / 2));
    }
    for (auto& [c, v] : pps) {
      out[std::string(1, c)] = {{"pps", median(v)}, {"each", v}};
      if (ratio.count(c)) out[std::string(1, c)]["ratio"] = median(ratio[c]), out[std::string(1, c)]["ratios"] = ratio[c];
    }
    return out;
  }

  json run() {
    const std::string& order = o_.only;
    std::map<char, std::vector<double>> pps, ratio;
    std::unique_ptr<lfp::bench::StatsOn> stats;
    if (o_.bpf_stats) stats = std::make_unique<lfp::bench::StatsOn>();
    std::map<char, lfp::bench::ProgStats> progs;
    std::map<char, double> packets;  // received while `progs` were counted
    for (int r = 0; r < o_.rounds; ++r) {
      std::string seq = order;
      if (r % 2) std::reverse(seq.begin(), seq.end());
      std::map<char, double> got;
      for (char c : seq) {
        enter(c);
        const lfp::bench::ProgStats before = stats ? lfp::bench::lfp_prog_stats() : lfp::bench::ProgStats{};
        got[c] = measure(c);
        if (stats) {
          lfp::bench::add_since(progs[c], before);
          packets[c] += got[c] * o_.secs;
        }
        std::fprintf(stderr, "lfp-packet-bench: round %d %c %.0f pps\n", r + 1, c, got[c]);
      }
      for (char c : order) {
        pps[c].push_back(got[c]);
        ratio[c].push_back(got[c] / got['a']);
      }
    }
    json out = {{"rounds", o_.rounds}, {"secs", o_.secs}, {"flows", o_.flows}, {"payload", o_.payload},
                {"small", o_.small}, {"large", o_.large}};
    for (char c : order) out[std::string(1, c)] = {{"pps", median(pps[c])}, {"ratio", median(ratio[c])}, {"each", pps[c]}};
    for (auto& [c, ps] : progs) {  // --bpf-stats (units: packets the sink received)
      double total = 0;
      out[std::string(1, c)]["bpf_programs"] = lfp::bench::per_unit(ps, packets[c], &total);
      out[std::string(1, c)]["bpf_ns_per_packet"] = total;
      // What LFP's programs cost against what a packet costs without LFP (a's median rate).
      if (out.contains("a") && out["a"]["pps"].get<double>() > 0)
        out[std::string(1, c)]["bpf_share_of_a"] = total / (1e9 / out["a"]["pps"].get<double>());
    }
    for (char c : {'u', 'v'}) {  // the user-space path against the trivial reader, round by round
      if (!pps.count(c) || !pps.count('t')) continue;
      std::vector<double> r;
      for (size_t i = 0; i < pps[c].size(); ++i) r.push_back(pps[c][i] / pps['t'][i]);
      out[std::string(1, c)]["ratio_to_t"] = median(r);
    }
    trivial_reader(false);
    return out;
  }

 private:
  static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  // A datagram from A to the probe port: seen by a receiver in B, or not.
  bool probe() {
    auto sink = sb_.spawn("exec timeout 2 socat -u UDP-RECV:" + std::to_string(kProbePort) + " -", {.side = Side::B});
    sb_.wait_for_port(Side::B, kProbePort, std::chrono::seconds(5), true);
    sb_.run("echo probe | socat - UDP4-SENDTO:" + sb_.ip4(Side::B) + ":" + std::to_string(kProbePort), {.side = Side::A});
    sink.wait();
    return sink.out().find("probe") != std::string::npos;
  }

  Options o_;
  Sandbox sb_;
  std::string self_;
  std::unique_ptr<lfp::test::Daemon> lfpd_;
  std::unique_ptr<lfp::client::Client> session_;
  lfp::test::Process reader_;
  char mode_ = 'k';  // lfpd's: k kernel, n no decision cache, u user space
  const std::string main_lfpd_ = lfp::test::lfpd_path();  // (after --lfpd)
  std::string exe_;  // the running lfpd's binary
  bool empty_chain_ = false;  // --interleave's e: an nftables table in B
  int filters_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 4 && a[0] == "sink") return sink(std::atoi(a[1].c_str()), std::atof(a[2].c_str()), std::atoi(a[3].c_str()));
    if (a.size() == 3 && a[0] == "sink-timeline") return sink_timeline(std::atoi(a[1].c_str()), std::atoi(a[2].c_str()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-packet-bench %s: %s\n", a[0].c_str(), e.what());
    return 1;
  }
  if (a.size() == 2 && a[0] == "nfq-reader") return nfq_reader(std::atoi(a[1].c_str()));
  if (a.size() == 7 && a[0] == "blast")
    return blast(a[1].c_str(), std::atoi(a[2].c_str()), std::atof(a[3].c_str()), std::atoi(a[4].c_str()),
                 std::atoi(a[5].c_str()), std::atoi(a[6].c_str()));
  Options o;
  for (size_t i = 0; i < a.size(); ++i) {
    auto num = [&](const char* name) {
      if (i + 1 >= a.size()) throw std::runtime_error(std::string(name) + " needs a value");
      return std::atof(a[++i].c_str());
    };
    if (a[i] == "--json") o.as_json = true;
    else if (a[i] == "--pin") o.pin = true;
    else if (a[i] == "--bpf-stats") o.bpf_stats = true;
    else if (a[i] == "--interleave") o.interleave = true;
    else if (a[i] == "--rounds") o.rounds = static_cast<int>(num("--rounds"));
    else if (a[i] == "--secs") o.secs = num("--secs");
    else if (a[i] == "--flows") o.flows = static_cast<int>(num("--flows"));
    else if (a[i] == "--small") o.small = static_cast<int>(num("--small"));
    else if (a[i] == "--large") o.large = static_cast<int>(num("--large"));
    else if (a[i] == "--payload") o.payload = static_cast<int>(num("--payload"));
    else if (a[i] == "--only" && i + 1 < a.size()) o.only = a[++i];
    else if (a[i] == "--lfpd" && i + 1 < a.size()) lfp::test::lfpd_path() = a[++i];
    else if (a[i] == "--compare" && i + 1 < a.size()) o.compare = a[++i];
    else {
      std::fprintf(stderr, "usage: lfp-packet-bench [--json] [--rounds N] [--secs S] [--flows N] [--small N] [--large N] "
                           "[--only CONFIGS] [--pin] [--bpf-stats] [--interleave] [--lfpd PATH] [--compare PATH] "
                           "[--payload BYTES]\n");
      return 2;
    }
  }
  if (o.only.find_first_not_of(o.interleave ? "ahslntuvemo" : "ahslntuv") != std::string::npos || o.only.find('a') == std::string::npos ||
      (o.only.find_first_of("uv") != std::string::npos && o.only.find('t') == std::string::npos)) {
    std::fprintf(stderr, "lfp-packet-bench: --only takes letters of ahslntuv (and e, m, o with --interleave), with a "
                         "(and t with u or v)\n");
    return 2;
  }
  if ((o.only.find('o') != std::string::npos) != !o.compare.empty()) {
    std::fprintf(stderr, "lfp-packet-bench: o in --only and --compare PATH go together\n");
    return 2;
  }
  if (o.rounds < 1 || o.secs <= 0 || o.flows < 1 || o.small < 2 || o.large < 2) {
    std::fprintf(stderr, "lfp-packet-bench: --rounds, --secs, --flows must be positive, --small and --large at least 2\n");
    return 2;
  }
  if (o.payload < 1 || o.payload > kMaxPayload) {
    std::fprintf(stderr, "lfp-packet-bench: --payload takes 1 to %d bytes (one datagram in a 1500-byte MTU)\n", kMaxPayload);
    return 2;
  }
  if (o.interleave && o.bpf_stats) {
    std::fprintf(stderr, "lfp-packet-bench: --interleave measures rates: leave --bpf-stats out\n");
    return 2;
  }
  try {
    Bench b(o);
    if (o.interleave) {
      const json r = b.interleaved();
      if (o.as_json) {
        std::printf("%s\n", r.dump(2).c_str());
        return 0;
      }
      std::printf("packets/s through a veth pair, %d-byte UDP, %d flow(s), windows of %.2f s interleaved with\n"
                  "windows of h (lfpd, no filter, no program at any hook); medians\n", o.payload, o.flows, o.secs);
      for (const auto& [id, what] : std::vector<std::pair<std::string, std::string>>{
               {"h", "no LFP program"}, {"s", std::to_string(o.small) + " filters"}, {"l", std::to_string(o.large) + " filters"},
               {"e", "an empty nftables chain"}, {"m", std::to_string(o.small) + " MAC-layer filters (tcx)"},
               {"o", std::to_string(o.small) + " filters, --compare's lfpd"}}) {
        if (!r.contains(id)) continue;
        std::printf("%s  %-30s %12.0f pps", id.c_str(), what.c_str(), r[id]["pps"].get<double>());
        if (r[id].contains("ratio")) std::printf("   %.3f of the h windows beside it", r[id]["ratio"].get<double>());
        std::printf("\n");
      }
      return 0;
    }
    const json r = b.run();
    if (o.as_json) {
      std::printf("%s\n", r.dump(2).c_str());
      return 0;
    }
    std::printf("packets/s through a veth pair, %d-byte UDP, %d flow(s), median of %d rounds of %.1f s\n", o.payload, o.flows,
                o.rounds, o.secs);
    const std::pair<const char*, std::string> rows[] = {
        {"a", "no LFP"}, {"h", "lfpd, packet layers, no filter"}, {"s", std::to_string(o.small) + " filters"},
        {"l", std::to_string(o.large) + " filters"}, {"n", std::to_string(o.large) + " filters, no decision cache"},
        {"t", "a trivial NFQUEUE reader"}, {"u", std::to_string(o.small) + " filters, user space"},
        {"v", std::to_string(o.large) + " filters, user space"}};
    for (const auto& [id, what] : rows) {
      if (!r.contains(id)) continue;
      std::printf("%s  %-40s %12.0f pps   %.3f of a", id, what.c_str(), r[id]["pps"].get<double>(),
                  r[id]["ratio"].get<double>());
      if (r[id].contains("ratio_to_t")) std::printf("   %.3f of t", r[id]["ratio_to_t"].get<double>());
      std::printf("\n");
    }
    if (o.bpf_stats) {
      std::printf("\nthe kernel's run time of LFP's programs per packet received (BPF_ENABLE_STATS), and against\n"
                  "a packet's cost without LFP (1 / a's rate)\n");
      for (const auto& [id, what] : rows) {
        if (!r.contains(id) || !r[id].contains("bpf_ns_per_packet") || r[id]["bpf_programs"].empty()) continue;
        std::printf("  %s: %.0f ns a packet (%.1f%% of a's)", id, r[id]["bpf_ns_per_packet"].get<double>(),
                    100 * r[id].value("bpf_share_of_a", 0.0));
        for (auto& [name, p] : r[id]["bpf_programs"].items())
          std::printf("; %s %.0f ns a run", name.c_str(), p["ns_per_run"].get<double>());
        std::printf("\n");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-packet-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
