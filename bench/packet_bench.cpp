// lfp-packet-bench: what the in-kernel packet layers cost, in packets per second through a veth pair,
// measured in one run inside a test Sandbox (tests/sandbox.hpp). Namespace A blasts 64-byte UDP
// datagrams (sendmmsg) from FLOWS source ports at namespace B, where a sink counts what arrives
// (recvmmsg). lfpd runs in B with --packet-layers, so its programs sit at B's netfilter hooks only.
//
// Configurations, measured in every round in alternating order (a h s l n, then n l s h a, ...):
//   a  no lfpd: nothing at B's hooks
//   h  lfpd --packet-layers, no filter (the hooks' fixed cost: they find no filter at the layer)
//   s  SMALL filters at INBOUND_TRANSPORT_V4 (default 10): SMALL-1 that do not match, then a permit
//   l  LARGE filters there (default 10000), likewise
//   n  l with the decision cache off (lfpd --no-packet-cache): every packet walks the whole layer,
//      as a flow's first packet does
// Each figure is the median over the rounds of the received rate; ratios are medians of each round's
// own ratio to a. Before each configuration is measured, lfpd must have reported compiling the
// expected number of filters, and a probe datagram to a port that only that policy blocks must be lost.
//
//   lfp-packet-bench [--json] [--rounds N] [--secs S] [--flows N] [--small N] [--large N]
// Modes run inside the sandbox (argv[1]):
//   lfp-packet-bench sink PORT SECS        counts datagrams for SECS after the first; prints the count
//   lfp-packet-bench blast IP PORT SECS FLOWS
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

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

sockaddr_in addr_of(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) throw std::runtime_error(std::string("bad address ") + ip);
  return a;
}

int sink(int port, double secs) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 32 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  sockaddr_in a = addr_of("0.0.0.0", port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return perror("bind"), 1;
  constexpr int kBatch = 256;
  static char bufs[kBatch][64];
  mmsghdr msgs[kBatch]{};
  iovec iov[kBatch];
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {bufs[i], sizeof bufs[i]};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  long n = 0;
  Clock::time_point start{}, idle = Clock::now();
  for (;;) {
    const int got = recvmmsg(fd, msgs, kBatch, 0, nullptr);
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

int blast(const char* ip, int port, double secs, int flows) {
  const sockaddr_in to = addr_of(ip, port);
  std::vector<int> fds;
  for (int i = 0; i < flows; ++i) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return perror("connect"), 1;
    fds.push_back(fd);
  }
  constexpr int kBatch = 64;
  char buf[64] = {};
  mmsghdr msgs[kBatch]{};
  iovec iov{buf, sizeof buf};
  for (auto& m : msgs) m.msg_hdr.msg_iov = &iov, m.msg_hdr.msg_iovlen = 1;
  const auto end = Clock::now() + std::chrono::duration<double>(secs + 0.5);
  for (size_t i = 0; Clock::now() < end; ++i) sendmmsg(fds[i % fds.size()], msgs, kBatch, 0);
  return 0;
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

struct Options {
  int rounds = 5, flows = 1, small = 10, large = 10000;
  double secs = 2;
  bool as_json = false;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(o) { self_ = std::filesystem::read_symlink("/proc/self/exe").string(); }

  // Puts the configuration in place and checks it; throws if it is not what it claims.
  void enter(char c) {
    if (c == 'a') {
      lfpd_.reset();
      return;
    }
    const bool nocache = c == 'n';
    if (!lfpd_ || nocache != nocache_) {
      lfpd_.reset();
      std::vector<std::string> args = {"--cgroup", "none", "--packet-layers", "--bpf-pin", ""};
      if (nocache) args.push_back("--no-packet-cache");
      lfpd_ = std::make_unique<lfp::test::Daemon>(args, sb_.ns_path(Side::B));
      nocache_ = nocache;
      filters_ = 0;
    }
    const int want = c == 'h' ? 0 : c == 's' ? o_.small : o_.large;
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
  }

  double measure() {
    auto sink = sb_.spawn_argv({self_, "sink", std::to_string(kPort), std::to_string(o_.secs)}, {.side = Side::B});
    sb_.wait_for_port(Side::B, kPort, std::chrono::seconds(5), true);
    sb_.run_argv({self_, "blast", sb_.ip4(Side::B), std::to_string(kPort), std::to_string(o_.secs),
                  std::to_string(o_.flows)},
                 {.side = Side::A, .timeout = std::chrono::seconds(static_cast<int>(o_.secs) + 30)});
    sink.wait(std::chrono::seconds(static_cast<int>(o_.secs) + 30));
    return std::atof(sink.out().c_str()) / o_.secs;
  }

  json run() {
    const std::string order = "ahsln";
    std::map<char, std::vector<double>> pps, ratio;
    for (int r = 0; r < o_.rounds; ++r) {
      std::string seq = order;
      if (r % 2) std::reverse(seq.begin(), seq.end());
      std::map<char, double> got;
      for (char c : seq) {
        enter(c);
        got[c] = measure();
        std::fprintf(stderr, "lfp-packet-bench: round %d %c %.0f pps\n", r + 1, c, got[c]);
      }
      for (char c : order) {
        pps[c].push_back(got[c]);
        ratio[c].push_back(got[c] / got['a']);
      }
    }
    json out = {{"rounds", o_.rounds}, {"secs", o_.secs}, {"flows", o_.flows}, {"small", o_.small}, {"large", o_.large}};
    for (char c : order) out[std::string(1, c)] = {{"pps", median(pps[c])}, {"ratio", median(ratio[c])}, {"each", pps[c]}};
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
  bool nocache_ = false;
  int filters_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "sink") return sink(std::atoi(a[1].c_str()), std::atof(a[2].c_str()));
  if (a.size() == 5 && a[0] == "blast")
    return blast(a[1].c_str(), std::atoi(a[2].c_str()), std::atof(a[3].c_str()), std::atoi(a[4].c_str()));
  Options o;
  for (size_t i = 0; i < a.size(); ++i) {
    auto num = [&](const char* name) {
      if (i + 1 >= a.size()) throw std::runtime_error(std::string(name) + " needs a value");
      return std::atof(a[++i].c_str());
    };
    if (a[i] == "--json") o.as_json = true;
    else if (a[i] == "--rounds") o.rounds = static_cast<int>(num("--rounds"));
    else if (a[i] == "--secs") o.secs = num("--secs");
    else if (a[i] == "--flows") o.flows = static_cast<int>(num("--flows"));
    else if (a[i] == "--small") o.small = static_cast<int>(num("--small"));
    else if (a[i] == "--large") o.large = static_cast<int>(num("--large"));
    else {
      std::fprintf(stderr, "usage: lfp-packet-bench [--json] [--rounds N] [--secs S] [--flows N] [--small N] [--large N]\n");
      return 2;
    }
  }
  if (o.rounds < 1 || o.secs <= 0 || o.flows < 1 || o.small < 2 || o.large < 2) {
    std::fprintf(stderr, "lfp-packet-bench: --rounds, --secs, --flows must be positive, --small and --large at least 2\n");
    return 2;
  }
  try {
    Bench b(o);
    const json r = b.run();
    if (o.as_json) {
      std::printf("%s\n", r.dump(2).c_str());
      return 0;
    }
    std::printf("packets/s through a veth pair, 64-byte UDP, %d flow(s), median of %d rounds of %.1f s\n", o.flows,
                o.rounds, o.secs);
    const std::pair<const char*, std::string> rows[] = {
        {"a", "no LFP"}, {"h", "lfpd, packet layers, no filter"}, {"s", std::to_string(o.small) + " filters"},
        {"l", std::to_string(o.large) + " filters"}, {"n", std::to_string(o.large) + " filters, no decision cache"}};
    for (const auto& [id, what] : rows)
      std::printf("%s  %-40s %12.0f pps   %.3f of a\n", id, what.c_str(), r[id]["pps"].get<double>(),
                  r[id]["ratio"].get<double>());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfp-packet-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
