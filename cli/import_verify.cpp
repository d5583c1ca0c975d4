// SPDX-License-Identifier: MIT
// lfp import --verify: see import_verify.hpp and docs/porting.md "Verifying an import".
//
// The kernel side. Two namespaces, lfpv-<pid>-<n>-h (the host: the original rules, the --local
// addresses) and lfpv-<pid>-<n>-p (the peer), joined by a veth pair (vh in the host, vp in the peer).
// - Inbound and forwarded packets are written by a packet socket in the peer onto vp, in an Ethernet
//   frame from a marker MAC, so they arrive on vh as from the wire: PREROUTING, then INPUT (or FORWARD).
// - Outbound packets are sent in the host by a raw socket (IP_HDRINCL) with a marker socket mark, so
//   they pass OUTPUT as the host's own packets do.
// - A table of ours, `inet lfpverify`, loaded after the original rules, counts each injected packet at
//   the first priority of its first hook (seen) and at the last priority of INPUT, FORWARD and OUTPUT
//   (passed: every other base chain of the hook accepted it). Its first OUTPUT chain drops every packet
//   the host's stack makes by itself (RSTs, ICMP errors, REJECT's answers, neighbour discovery) before
//   conntrack sees them, so only the capture's packets move the kernel's flows.
// - One packet at a time, on one CPU: a packet is injected, its seen counter waited for, and the
//   counters read, before the next one is injected.
// - Interfaces. The capture does not say which interface a packet came in or left by, and in the
//   namespace every packet comes in and leaves by vh. So a rule that names an interface (other than
//   lo) gets a shadow before it: the same rule without its interface matches and without its target,
//   which only logs (NFLOG) to a group of ours. A packet whose walk fires a shadow reached a rule its
//   interface decides: it is not compared, and the report counts it by the interfaces it needs. The
//   interfaces the rules name exactly are made in the host (veths to the peer, down: nft's iif/oif
//   need them to exist), so that the rules load as on the host.
#include "import_verify.hpp"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "lfp/import/builtin_callouts.hpp"
#include "lfp/policy/policy.hpp"
#include "lfp/sys/netns.hpp"
#include "lfp/sys/spawn.hpp"
#include "replay_cmd.hpp"

namespace lfp::cli {

using nlohmann::json;
namespace pk = lfp::packet;

bool verify_supported(const std::string& format) { return format == "iptables" || format == "nft"; }

namespace {

constexpr const char* kPrefix = "lfpv-";
constexpr uint32_t kMark = 0x4c465603;  // "LFV" 3: the outbound packets we send
constexpr const char* kMarkText = "0x4c465603";
constexpr uint8_t kPeerMac[6] = {0x02, 0x4c, 0x46, 0x50, 0x56, 0x02};    // vp
constexpr uint8_t kHostMac[6] = {0x02, 0x4c, 0x46, 0x50, 0x56, 0x01};    // vh
constexpr uint8_t kMarkerMac[6] = {0x02, 0x4c, 0x46, 0x50, 0x56, 0x03};  // the source of injected frames
constexpr const char* kPeerMacText = "02:4c:46:50:56:02";
constexpr const char* kHostMacText = "02:4c:46:50:56:01";
constexpr const char* kMarkerMacText = "02:4c:46:50:56:03";

// ---- The namespaces, removed on every exit.

// What the signal handlers remove (async-signal-safe: fixed buffers, system calls only).
char g_paths[2][128];
std::atomic<int> g_armed{0};
pid_t g_owner = 0;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGPIPE};
struct sigaction g_old[NSIG];

void remove_all_armed() {
  if (!g_armed.exchange(0) || getpid() != g_owner) return;
  for (auto& p : g_paths)
    if (p[0]) sys::remove_netns(p);
}

void on_fatal_signal(int sig) {
  const int saved = errno;
  remove_all_armed();
  sigaction(sig, &g_old[sig], nullptr);
  errno = saved;
  raise(sig);
}

struct Cmd {
  int code = -1;
  std::string out, err;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// Two fresh namespaces: made in the constructor, removed in the destructor and by the signal handlers.
// One at a time per process.
class Namespaces {
 public:
  Namespaces() {
    if (geteuid() != 0) throw VerifyUnavailable("--verify makes network namespaces: run it as root");
    if (g_armed) throw std::logic_error("--verify: namespaces already in use");
    for (const auto& stale : sys::stale_netns(kPrefix)) sys::remove_netns(stale.c_str());  // of a run killed by SIGKILL
    static unsigned counter = 0;
    const std::string base = kPrefix + std::to_string(getpid()) + "-" + std::to_string(counter++);
    // Armed before anything exists, so that a signal at any point removes what was made.
    snprintf(g_paths[0], sizeof g_paths[0], "%s/%s-h", sys::kNetnsDir, base.c_str());
    snprintf(g_paths[1], sizeof g_paths[1], "%s/%s-p", sys::kNetnsDir, base.c_str());
    g_owner = getpid();
    g_armed = 1;
    for (int s : kSignals) {
      struct sigaction sa {};
      sa.sa_handler = on_fatal_signal;
      sigemptyset(&sa.sa_mask);
      for (int t : kSignals) sigaddset(&sa.sa_mask, t);
      sigaction(s, &sa, &g_old[s]);
    }
    try {
      host_.emplace(base + "-h");
      peer_.emplace(base + "-p");
    } catch (const std::exception& e) {
      cleanup();
      throw std::runtime_error(std::string("--verify: ") + e.what());
    }
  }
  ~Namespaces() { cleanup(); }
  Namespaces(const Namespaces&) = delete;
  Namespaces& operator=(const Namespaces&) = delete;

  const sys::NetNamespace& host() const { return *host_; }
  const sys::NetNamespace& peer() const { return *peer_; }

  // Throws unless this thread is in the host's namespace (never the caller's).
  void check_in_host() const {
    if (sys::current_netns() != host_->inode()) throw std::runtime_error("--verify: not in the verify namespace");
  }

  // Runs argv in that namespace (at most 30 s).
  Cmd exec(const sys::NetNamespace& ns, const std::vector<std::string>& argv, const std::string& input = {}) const {
    try {
      const sys::SpawnResult r = sys::run(argv, {.input = input, .netns = ns.path(), .timeout = std::chrono::seconds(30)});
      return {r.code, r.out, (r.timed_out ? "timed out: " : "") + r.err};
    } catch (const sys::SpawnError& e) {
      return {-1, "", std::string(e.what()) + " (Debian: iproute2, iptables, nftables)"};
    }
  }
  void must(const sys::NetNamespace& ns, const std::vector<std::string>& argv, const std::string& input = {}) const {
    const Cmd r = exec(ns, argv, input);
    if (r.code != 0) throw std::runtime_error("--verify: " + join(argv) + " (in " + ns.name() + "): " + r.err);
  }

 private:
  void cleanup() noexcept {
    host_.reset();
    peer_.reset();
    g_armed = 0;
    for (int s : kSignals) sigaction(s, &g_old[s], nullptr);
    g_paths[0][0] = g_paths[1][0] = 0;
  }

  std::optional<sys::NetNamespace> host_, peer_;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string addr_text(const pk::IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.b.data(), buf, sizeof buf);
  return buf;
}

// ---- Rules that name interfaces, and their shadows.

constexpr uint16_t kShadowGroup = 0x4c46;      // the NFLOG group of the shadows ("LF")
constexpr const char* kShadowPrefix = "lfpv ";  // + the shadow's index
constexpr uint8_t kPostRouting = 4;             // NF_INET_POST_ROUTING (linux/netfilter.h redefines IP_PROTOCOL)

// A rule an interface decides: the interfaces it names and the rule as written.
struct InterfaceRule {
  std::vector<std::string> interfaces;
  std::string rule;
};

struct ShadowedRules {
  std::string text;                         // what the kernel loads: the rules with the shadows
  std::vector<InterfaceRule> interface_rules;  // by shadow index
  // The interfaces named exactly (not lo, not a wildcard): made in the host namespace.
  std::set<std::string> exact_interfaces() const {
    std::set<std::string> names;
    for (const auto& r : interface_rules)
      for (const auto& n : r.interfaces)
        if (!n.ends_with("+") && !n.ends_with("*") && n.size() < IFNAMSIZ && n != "vh") names.insert(n);
    return names;
  }
};

// lo is known (injected packets never use it); "+" (iptables) and "*" (nft) name every interface.
bool names_no_interface_in_particular(const std::string& name) { return name == "lo" || name == "+" || name == "*"; }

// An iptables-save line in tokens, quotes kept as written.
std::vector<std::string> iptables_tokens(const std::string& line) {
  std::vector<std::string> tokens;
  std::string cur;
  bool quoted = false, any = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\\' && i + 1 < line.size()) {
      cur += c;
      cur += line[++i];
      any = true;
    } else if (c == '"') {
      quoted = !quoted;
      cur += c;
      any = true;
    } else if (!quoted && isspace(static_cast<unsigned char>(c))) {
      if (any) tokens.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (any) tokens.push_back(cur);
  return tokens;
}

std::string unquoted(const std::string& t) {
  return t.size() >= 2 && t.front() == '"' && t.back() == '"' ? t.substr(1, t.size() - 2) : t;
}

// iptables-save text: before each `-A CHAIN ... -i|-o NAME ...`, its shadow `-A CHAIN ... -j NFLOG`.
// The shadow leaves out the matches that keep state (a rate limit, recent's lists): the original's
// state must be the original's alone, and a shadow that fires too often only compares less.
ShadowedRules shadow_iptables(const std::string& rules) {
  static const std::set<std::string> kInterfaceOptions = {"-i", "--in-interface", "-o", "--out-interface"};
  static const std::set<std::string> kStateful = {"limit", "hashlimit", "recent", "connlimit", "quota", "statistic"};
  auto is_option = [](const std::string& t) { return t.size() > 1 && t[0] == '-' && t[1] != '-'; };
  ShadowedRules out;
  std::istringstream in(rules);
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> t = iptables_tokens(line);
    if (t.size() > 2 && t[0] == "-A") {
      std::vector<std::string> kept = {t[0], t[1]};
      std::vector<std::string> names;
      for (size_t i = 2; i < t.size(); ++i) {
        if (t[i] == "-j" || t[i] == "--jump" || t[i] == "-g" || t[i] == "--goto") break;
        const bool negated = t[i] == "!" && i + 1 < t.size();
        const size_t o = negated ? i + 1 : i;
        if (kInterfaceOptions.count(t[o]) && o + 1 < t.size() && !names_no_interface_in_particular(unquoted(t[o + 1]))) {
          names.push_back(unquoted(t[o + 1]));
          i = o + 1;
        } else if (t[i] == "-m" && i + 1 < t.size() && kStateful.count(t[i + 1])) {
          for (i += 2; i < t.size() && !is_option(t[i]) && !(t[i] == "!" && i + 1 < t.size() && is_option(t[i + 1]));) ++i;
          --i;
        } else {
          kept.push_back(t[i]);
        }
      }
      if (!names.empty()) {
        std::string shadow;
        for (const auto& k : kept) shadow += k + " ";
        shadow += "-j NFLOG --nflog-group " + std::to_string(kShadowGroup) + " --nflog-prefix \"" + kShadowPrefix +
                  std::to_string(out.interface_rules.size()) + "\"";
        out.text += shadow + "\n";
        out.interface_rules.push_back({names, line});
      }
    }
    out.text += line + "\n";
  }
  return out;
}

// An nft match on an interface (meta iifname, oifname, iif, oif): the names it needs (none: lo or
// every interface). Not such a match: nullopt.
std::optional<std::vector<std::string>> interface_match(const json& match) {
  if (!match.is_object() || !match.contains("left") || !match["left"].is_object() || !match["left"].contains("meta"))
    return std::nullopt;
  const json& meta = match["left"]["meta"];
  const std::string key = meta.is_object() ? meta.value("key", "") : "";
  if (key != "iifname" && key != "oifname" && key != "iif" && key != "oif") return std::nullopt;
  std::vector<std::string> names;
  const json& right = match.value("right", json());
  const json values = right.is_object() && right.contains("set") ? right["set"] : json::array({right});
  for (const auto& v : values) {
    const std::string name = v.is_string() ? v.get<std::string>() : v.dump();
    if (!names_no_interface_in_particular(name)) names.push_back(name);
  }
  return names;
}

// `nft -j list ruleset` JSON: before each rule that matches an interface, its shadow (the rule's
// matches but those, then `log group`). Statements (rate limits, quotas, counters) and verdicts stay out.
ShadowedRules shadow_nft(const std::string& rules) {
  ShadowedRules out;
  json j = json::parse(rules, nullptr, false);
  if (!j.is_object() || !j.contains("nftables") || !j["nftables"].is_array()) {
    out.text = rules;  // the kernel says what is wrong with it
    return out;
  }
  json items = json::array();
  for (auto& item : j["nftables"]) {
    const json* rule = item.is_object() && item.contains("rule") && item["rule"].is_object() ? &item["rule"] : nullptr;
    if (rule) {
      json kept = json::array();
      std::vector<std::string> names;
      bool on_interface = false;
      for (const auto& e : rule->value("expr", json::array())) {
        if (!e.is_object() || !e.contains("match")) continue;
        if (auto n = interface_match(e["match"]); n && !n->empty()) {
          on_interface = true;
          names.insert(names.end(), n->begin(), n->end());
        } else {
          kept.push_back(e);
        }
      }
      if (on_interface) {
        const std::string index = std::to_string(out.interface_rules.size());
        kept.push_back({{"log", {{"group", kShadowGroup}, {"prefix", kShadowPrefix + index}}}});
        json shadow = {{"family", rule->value("family", "")},
                       {"table", rule->value("table", "")},
                       {"chain", rule->value("chain", "")},
                       {"expr", kept}};
        items.push_back({{"rule", shadow}});
        out.interface_rules.push_back(
            {names, "table " + rule->value("family", "") + " " + rule->value("table", "") + ", chain " +
                        rule->value("chain", "") + ", rule " + (rule->contains("handle") ? (*rule)["handle"].dump() : "?")});
      }
    }
    items.push_back(std::move(item));
  }
  out.text = json{{"nftables", items}}.dump();
  return out;
}

// The shadows' NFLOG messages, read in the host's namespace.
class ShadowLog {
 public:
  ShadowLog() = default;
  // Binds kShadowGroup, one message a packet as it comes (threshold 1), no payload.
  void open() {
    fd_ = Fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER));
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (fd_.get() < 0 || bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
      throw std::runtime_error(std::string("--verify: NFLOG socket: ") + strerror(errno));
    std::vector<uint8_t> msg(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
    auto attr = [&](uint16_t type, const void* data, size_t len) {
      const size_t at = msg.size();
      msg.resize(at + NLA_ALIGN(NLA_HDRLEN + len));
      nlattr a{static_cast<uint16_t>(NLA_HDRLEN + len), type};
      std::memcpy(&msg[at], &a, sizeof a);
      std::memcpy(&msg[at + NLA_HDRLEN], data, len);
    };
    const nfulnl_msg_config_cmd bind_cmd{NFULNL_CFG_CMD_BIND};
    nfulnl_msg_config_mode mode{};
    mode.copy_mode = NFULNL_COPY_META;
    const uint32_t threshold = htonl(1);
    attr(NFULA_CFG_CMD, &bind_cmd, sizeof bind_cmd);
    attr(NFULA_CFG_MODE, &mode, sizeof mode);
    attr(NFULA_CFG_QTHRESH, &threshold, sizeof threshold);
    nlmsghdr h{};
    h.nlmsg_len = static_cast<uint32_t>(msg.size());
    h.nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    h.nlmsg_seq = 1;
    nfgenmsg g{};
    g.nfgen_family = AF_UNSPEC;
    g.version = NFNETLINK_V0;
    g.res_id = htons(kShadowGroup);
    std::memcpy(msg.data(), &h, sizeof h);
    std::memcpy(msg.data() + NLMSG_HDRLEN, &g, sizeof g);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd_.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
      throw std::runtime_error(std::string("--verify: NFLOG bind: ") + strerror(errno));
    uint8_t buf[4096];
    for (int i = 0; i < 1000; ++i) {  // the ack, at most 1 s
      const ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
      if (n < 0 && errno == EAGAIN) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      const auto* r = reinterpret_cast<const nlmsghdr*>(buf);
      if (n < static_cast<ssize_t>(NLMSG_HDRLEN) || r->nlmsg_type != NLMSG_ERROR) break;
      const int err = -reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(r))->error;
      if (err) throw std::runtime_error(std::string("--verify: NFLOG bind: ") + strerror(err));
      return;
    }
    throw std::runtime_error("--verify: NFLOG bind: no answer from the kernel");
  }

  // The shadows fired since the last call (POSTROUTING's left out: after the verdict).
  std::set<size_t> fired() {
    std::set<size_t> shadows;
    if (fd_.get() < 0) return shadows;
    alignas(nlmsghdr) uint8_t buf[65536];
    for (;;) {
      const ssize_t n = recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && errno == EAGAIN) return shadows;
      if (n < 0) throw std::runtime_error(std::string("--verify: reading NFLOG: ") + strerror(errno));
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) continue;
        const auto* p = static_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg));
        const auto* end = reinterpret_cast<const uint8_t*>(h) + h->nlmsg_len;
        int hook = -1;
        std::string prefix;
        while (p + NLA_HDRLEN <= end) {
          nlattr a;
          std::memcpy(&a, p, sizeof a);
          if (a.nla_len < NLA_HDRLEN || p + a.nla_len > end) break;
          const uint8_t* data = p + NLA_HDRLEN;
          const size_t len = a.nla_len - NLA_HDRLEN;
          if ((a.nla_type & NLA_TYPE_MASK) == NFULA_PACKET_HDR && len >= sizeof(nfulnl_msg_packet_hdr))
            hook = reinterpret_cast<const nfulnl_msg_packet_hdr*>(data)->hook;
          else if ((a.nla_type & NLA_TYPE_MASK) == NFULA_PREFIX)
            prefix.assign(reinterpret_cast<const char*>(data), strnlen(reinterpret_cast<const char*>(data), len));
          p += NLA_ALIGN(a.nla_len);
        }
        if (hook != kPostRouting && prefix.starts_with(kShadowPrefix))
          shadows.insert(strtoul(prefix.c_str() + strlen(kShadowPrefix), nullptr, 10));
      }
    }
  }

 private:
  Fd fd_;
};

// The original rules, run by the kernel.
class Kernel {
 public:
  struct Outcome {
    bool observed = false;  // the kernel saw the packet; then accepted says what it decided
    bool accepted = false;
    std::string error;      // not observed: why
  };

  Kernel(const std::string& format, const ShadowedRules& rules, bool ip6tables, const std::vector<pk::IpAddr>& locals) {
    const sys::NetNamespace& h = ns_.host();
    const sys::NetNamespace& p = ns_.peer();
    // The peer: no addresses, no IPv6, so it sends nothing of its own.
    ns_.must(p, {"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"});
    ns_.must(h, {"sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                 "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
                 "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                 "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
                 "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"});
    ns_.must(h, {"ip", "link", "set", "lo", "up"});
    ns_.must(h, {"ip", "link", "add", "vh", "address", kHostMacText, "mtu", "65535", "type", "veth", "peer", "name", "vp",
                 "address", kPeerMacText, "mtu", "65535", "netns", p.name()});
    ns_.must(p, {"sysctl", "-q", "-w", "net.ipv6.conf.vp.disable_ipv6=1"});
    ns_.must(p, {"ip", "link", "set", "vp", "up"});
    ns_.must(h, {"ip", "link", "set", "vh", "up"});
    for (const auto& a : locals) {
      if (a.v6) ns_.must(h, {"ip", "-6", "addr", "add", addr_text(a) + "/128", "dev", "vh", "nodad"});
      else ns_.must(h, {"ip", "addr", "add", addr_text(a) + "/32", "dev", "vh"});
    }
    // Everything else is reached through the peer (its MAC, permanently: no neighbour discovery).
    ns_.must(h, {"ip", "neigh", "replace", "169.254.0.1", "lladdr", kPeerMacText, "dev", "vh", "nud", "permanent"});
    ns_.must(h, {"ip", "route", "add", "default", "via", "169.254.0.1", "dev", "vh", "onlink"});
    ns_.must(h, {"ip", "-6", "neigh", "replace", "fe80::1", "lladdr", kPeerMacText, "dev", "vh", "nud", "permanent"});
    ns_.must(h, {"ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "vh", "onlink"});

    // The interfaces the rules name, as on the host (no packet uses them: see the top of the file).
    int made = 0;
    for (const auto& name : rules.exact_interfaces())  // one the kernel refuses: a rule on it is refused too, or never matches
      ns_.exec(h, {"ip", "link", "add", name, "type", "veth", "peer", "name", "lfpv" + std::to_string(made++), "netns", p.name()});

    // The original rules (with the shadows), then our table.
    const Cmd loaded = format == "nft" ? ns_.exec(h, {"nft", "-j", "-f", "/dev/stdin"}, rules.text)
                                       : ns_.exec(h, {ip6tables ? "ip6tables-restore" : "iptables-restore", "-w"}, rules.text);
    if (loaded.code != 0)
      throw std::runtime_error("--verify: the kernel refused the original rules (" +
                               std::string(format == "nft" ? "nft -j -f" : ip6tables ? "ip6tables-restore" : "iptables-restore") +
                               " in a throwaway namespace): " + loaded.err);
    const std::string first = "-2000000000", last = "2000000000";
    const std::string marker = std::string("ether saddr ") + kMarkerMacText;
    const std::string ours =
        "table inet lfpverify {\n"
        "  counter in_seen {}\n  counter in_passed {}\n  counter fwd_passed {}\n"
        "  counter out_seen {}\n  counter out_passed {}\n"
        "  chain first_in { type filter hook prerouting priority " + first + "; policy accept; " + marker +
        " counter name \"in_seen\"; }\n"
        "  chain first_out { type filter hook output priority " + first + "; policy accept; meta mark != " + kMarkText +
        " drop; meta mark set 0 counter name \"out_seen\"; }\n"
        "  chain last_in { type filter hook input priority " + last + "; policy accept; " + marker +
        " counter name \"in_passed\"; }\n"
        "  chain last_fwd { type filter hook forward priority " + last + "; policy accept; " + marker +
        " counter name \"fwd_passed\"; }\n"
        "  chain last_out { type filter hook output priority " + last + "; policy accept; counter name \"out_passed\"; }\n"
        "}\n";
    ns_.must(h, {"nft", "-f", "/dev/stdin"}, ours);
    // A capture of a host's own packets often has the checksums its NIC fills in later: conntrack takes
    // them as they are (the key exists once the rules use conntrack).
    ns_.exec(h, {"sysctl", "-q", "-e", "-w", "net.netfilter.nf_conntrack_checksum=0"});

    // Sockets: the packet socket in the peer, the raw sockets and nft in the host. This thread stays
    // in the host's namespace until the end.
    {
      sys::NetnsScope in_peer(p);
      const unsigned vp = if_nametoindex("vp");
      packet_ = Fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
      if (!vp || packet_.get() < 0) throw std::runtime_error(std::string("--verify: packet socket: ") + strerror(errno));
      peer_if_ = static_cast<int>(vp);
    }
    in_host_.emplace(h);
    vh_ = static_cast<int>(if_nametoindex("vh"));
    raw4_ = Fd(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
    raw6_ = Fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
    const uint32_t mark = kMark;
    for (int fd : {raw4_.get(), raw6_.get()})
      if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0)
        throw std::runtime_error(std::string("--verify: raw socket: ") + strerror(errno));
    if (!rules.interface_rules.empty()) shadows_.open();
    ns_.check_in_host();
    nft_.reset(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!nft_) throw std::runtime_error("--verify: libnftables");
    nft_ctx_output_set_flags(nft_.get(), NFT_CTX_OUTPUT_JSON);
    nft_ctx_buffer_output(nft_.get());
    nft_ctx_buffer_error(nft_.get());
    last_ = counters();

    // One CPU: a packet injected is processed (softirq) on the CPU that sent it, before this thread
    // reads the counters there.
    if (sched_getaffinity(0, sizeof saved_cpus_, &saved_cpus_) == 0) {
      const int cpu = sched_getcpu();
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu >= 0 ? cpu : 0, &one);
      pinned_ = sched_setaffinity(0, sizeof one, &one) == 0;
    }
  }

  ~Kernel() {
    if (pinned_) sched_setaffinity(0, sizeof saved_cpus_, &saved_cpus_);
    nft_.reset();  // before the namespaces go (ns_ is destroyed last)
  }

  // The rules an interface decides (their shadows' indexes) that the last packet reached.
  std::set<size_t> interface_rules_reached() { return shadows_.fired(); }

  // Inbound or forwarded: the IP packet in a frame from the peer.
  Outcome inject_inbound(std::span<const uint8_t> ip, bool v6, bool forwarded) {
    std::vector<uint8_t> frame(kHostMac, kHostMac + 6);
    frame.insert(frame.end(), kMarkerMac, kMarkerMac + 6);
    frame.push_back(v6 ? 0x86 : 0x08);
    frame.push_back(v6 ? 0xdd : 0x00);
    frame.insert(frame.end(), ip.begin(), ip.end());
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = peer_if_;
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, kHostMac, 6);
    Outcome o;
    if (sendto(packet_.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
      o.error = std::string("cannot be sent into the namespace: ") + strerror(errno);
      return o;
    }
    Counters now;
    for (int i = 0; i < 2000; ++i) {  // at most 2 s
      now = counters();
      if (now.in_seen > last_.in_seen) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (now.in_seen <= last_.in_seen) {
      o.error = "the kernel never saw it";
      return o;
    }
    const bool in = now.in_passed > last_.in_passed, fwd = now.fwd_passed > last_.fwd_passed;
    last_ = now;
    if (forwarded ? in : fwd) {
      o.error = forwarded ? "the kernel delivered it locally, LFP takes it as forwarded"
                          : "the kernel forwarded it, LFP takes it as the host's";
      return o;
    }
    o.observed = true;
    o.accepted = forwarded ? fwd : in;
    return o;
  }

  // Outbound: the host sends it (OUTPUT).
  Outcome inject_outbound(std::span<const uint8_t> ip, bool v6, const pk::IpAddr& dst) {
    Outcome o;
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      std::memcpy(&s6->sin6_addr, dst.b.data(), 16);
      s6->sin6_scope_id = static_cast<uint32_t>(vh_);
      len = sizeof *s6;
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      s4->sin_family = AF_INET;
      std::memcpy(&s4->sin_addr, dst.b.data(), 4);
      len = sizeof *s4;
    }
    const ssize_t n = sendto(v6 ? raw6_.get() : raw4_.get(), ip.data(), ip.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    const int err = errno;
    const Counters now = counters();
    const bool seen = now.out_seen > last_.out_seen, passed = now.out_passed > last_.out_passed;
    last_ = now;
    if (!seen) {
      o.error = std::string("the kernel did not send it: ") + (n < 0 ? strerror(err) : "not seen at OUTPUT");
      return o;
    }
    o.observed = true;
    o.accepted = passed;  // a drop is EPERM from sendto; a held fragment is neither
    return o;
  }

 private:
  struct Counters {
    uint64_t in_seen = 0, in_passed = 0, fwd_passed = 0, out_seen = 0, out_passed = 0;
  };
  Counters counters() {
    ns_.check_in_host();
    if (nft_run_cmd_from_buffer(nft_.get(), "list counters table inet lfpverify") != 0) {
      const char* e = nft_ctx_get_error_buffer(nft_.get());
      throw std::runtime_error(std::string("--verify: reading the counters: ") + (e ? e : "?"));
    }
    Counters c;
    const json j = json::parse(nft_ctx_get_output_buffer(nft_.get()), nullptr, false);
    if (!j.is_object() || !j.contains("nftables")) throw std::runtime_error("--verify: unreadable counters");
    for (const auto& item : j["nftables"]) {
      if (!item.contains("counter")) continue;
      const auto& k = item["counter"];
      const std::string name = k.value("name", "");
      const uint64_t v = k.value("packets", uint64_t{0});
      if (name == "in_seen") c.in_seen = v;
      else if (name == "in_passed") c.in_passed = v;
      else if (name == "fwd_passed") c.fwd_passed = v;
      else if (name == "out_seen") c.out_seen = v;
      else if (name == "out_passed") c.out_passed = v;
    }
    return c;
  }

  Namespaces ns_;  // first: made first, removed last
  std::optional<sys::NetnsScope> in_host_;  // this thread in the host's namespace, from set-up to the end
  Fd packet_, raw4_, raw6_;
  ShadowLog shadows_;
  int peer_if_ = 0, vh_ = 0;
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> nft_{nullptr, nft_ctx_free};
  Counters last_;
  cpu_set_t saved_cpus_{};
  bool pinned_ = false;
};

bool v4_in(const pk::IpAddr& a, uint32_t net, int bits) {
  return !a.v6 && (bits == 0 || (a.v4() >> (32 - bits)) == (net >> (32 - bits)));
}
bool is_multicast(const pk::IpAddr& a) { return a.v6 ? a.b[0] == 0xff : v4_in(a, 0xe0000000u, 4); }
bool is_unspecified_or_loopback(const pk::IpAddr& a) {
  if (!a.v6) return v4_in(a, 0, 8) || v4_in(a, 0x7f000000u, 8);
  for (size_t i = 0; i < 15; ++i)
    if (a.b[i]) return false;
  return a.b[15] <= 1;
}
bool is_link_local6(const pk::IpAddr& a) { return a.v6 && a.b[0] == 0xfe && (a.b[1] & 0xc0) == 0x80; }

const char* protocol_name(uint8_t proto) {
  switch (proto) {
    case pk::proto::TCP: return "TCP";
    case pk::proto::UDP: return "UDP";
    case pk::proto::ICMP: return "ICMP";
    case pk::proto::ICMPV6: return "ICMPV6";
    default: return nullptr;
  }
}

// Why a packet is not injected (empty: it is).
std::string not_injectable(const ReplayedPacket& rp) {
  const pk::Packet& p = *rp.packet;
  if (!p.is_ip()) return "not an IP packet";
  if (p.status != pk::Status::OK) return "the parser could not read it whole: " + std::string(pk::describe(p.status));
  switch (rp.walk->direction()) {
    case pk::Direction::LOOPBACK: return "loopback (both ends are the host's): not injected";
    case pk::Direction::INBOUND:
      if (is_multicast(p.dst) || (!p.dst.v6 && (p.dst.v4() == 0xffffffffu))) return "a multicast or broadcast destination";
      if (is_unspecified_or_loopback(p.dst)) return "a loopback destination cannot arrive on an interface";
      if (is_multicast(p.src) || is_unspecified_or_loopback(p.src)) return "a martian source the kernel drops when routing";
      break;
    case pk::Direction::FORWARDED:
      if (is_multicast(p.dst) || is_link_local6(p.dst) || is_link_local6(p.src) || is_unspecified_or_loopback(p.src) ||
          is_multicast(p.src))
        return "an address the kernel never forwards";
      if (p.ttl <= 1) return "TTL / hop limit 1: the kernel does not forward it";
      break;
    case pk::Direction::OUTBOUND:
      if (is_multicast(p.dst) || (!p.dst.v6 && (p.dst.v4() == 0xffffffffu))) return "a multicast or broadcast destination";
      break;
    default: return "no direction";
  }
  return "";
}

// The host's addresses: --local's, or else (as lfp replay takes them) the first IP packet's source.
// The capture is opened here, before any namespace is made: an unreadable one fails first.
std::vector<pk::IpAddr> host_addresses(const FilterEngine& engine, ReplayArgs& ra) {
  std::vector<pk::IpAddr> locals;
  for (const auto& l : ra.locals) {
    auto ip = pk::parse_ip(l);
    if (!ip) throw std::invalid_argument("--local: '" + l + "' is not an IPv4 or IPv6 address");
    locals.push_back(*ip);
  }
  const bool find_local = locals.empty();
  replay_capture(engine, ra, [&](const ReplayedPacket& rp) {
    if (!find_local) return false;
    if (!rp.packet->is_ip()) return true;
    locals.push_back(rp.packet->src);
    return false;
  });
  for (const auto& a : find_local ? locals : std::vector<pk::IpAddr>{}) ra.locals.push_back(addr_text(a));
  for (const auto& a : locals)
    if (is_multicast(a) || is_unspecified_or_loopback(a))
      throw std::invalid_argument("--local: " + addr_text(a) + " cannot be the host's address on an interface");
  return locals;
}

// Each packet through the kernel and through LFP, and the report of what they decided.
class Comparison {
 public:
  Comparison(Kernel& kernel, const ShadowedRules& shadowed, const import::BuiltinCallouts& callouts)
      : kernel_(kernel), shadowed_(shadowed), callouts_(callouts) {}

  // One packet of the capture (replay_capture's callback: true to go on).
  bool add(const ReplayedPacket& rp) {
    ++packets_;
    const pk::Packet& p = *rp.packet;
    if (const std::string why = not_injectable(rp); !why.empty()) return skip(rp, why);
    const size_t off = link_header_length(p);
    if (rp.bytes.size() < off + 1 || (rp.bytes[off] >> 4) != p.ip_version) return skip(rp, "no IP header where the link type puts it");
    const size_t len = p.ip_total_len;
    if (len == 0 || rp.bytes.size() < off + len) return skip(rp, "cut short by the capture (snap length): not injected");
    const auto ip = rp.bytes.subspan(off, len);
    const pk::Direction dir = rp.walk->direction();
    const Kernel::Outcome k = dir == pk::Direction::OUTBOUND
                                  ? kernel_.inject_outbound(ip, p.ip_version == 6, p.dst)
                                  : kernel_.inject_inbound(ip, p.ip_version == 6, dir == pk::Direction::FORWARDED);
    const std::set<size_t> reached = kernel_.interface_rules_reached();
    if (!k.observed) return skip(rp, k.error);
    switch (rp.walk->fragment_state()) {
      case pk::FragmentState::HELD: return skip(rp, "a fragment held for reassembly (its datagram is compared)");
      case pk::FragmentState::DISCARDED: return skip(rp, "a fragment LFP discards");
      default: break;
    }
    if (const std::string why = needs_interface(reached); !why.empty()) return skip(rp, why);
    if (const std::string& limit = callouts_.decided_by_time(); !limit.empty())
      return skip(rp, "decided by a rate limit on the capture's clock (\"" + limit + "\"), which the original counts on " +
                          "the replay's, where the capture's time passes in a moment: the kernel's verdict here is not the one " +
                          "it gave when the capture was taken");
    ++compared_;
    if (k.accepted) ++accepted_;
    if (rp.permit() == k.accepted) ++alike_;
    else differences_.push_back(difference(rp, k.accepted));
    return true;
  }

  json report(const VerifyArgs& args, const ReplayArgs& ra) const {
    return {{"capture", args.pcap},
            {"locals", ra.locals},
            {"packets", packets_},
            {"compared", compared_},
            {"alike", alike_},
            {"original_accepted", accepted_},
            {"original_dropped", compared_ - accepted_},
            {"different", differences_.size()},
            {"not_compared", skipped_.size()},
            {"compared_fraction", packets_ ? static_cast<double>(compared_) / static_cast<double>(packets_) : 0.0},
            {"needs_interface", needs_interface_},
            {"differences", differences_},
            {"skipped", skipped_}};
  }

 private:
  bool skip(const ReplayedPacket& rp, const std::string& why) {
    skipped_.push_back({{"index", rp.index}, {"packet", packet_summary(*rp.packet)}, {"reason", why}});
    return true;
  }

  // Why a packet whose walk reached rules an interface decides is not compared ("": it reached none).
  std::string needs_interface(const std::set<size_t>& reached) {
    std::set<std::string> names;
    std::string rule_list;
    for (size_t r : reached) {
      if (r >= shadowed_.interface_rules.size()) continue;  // a log of the original's own to our group
      const InterfaceRule& rule = shadowed_.interface_rules[r];
      names.insert(rule.interfaces.begin(), rule.interfaces.end());
      rule_list += (rule_list.empty() ? "" : "; ") + rule.rule;
    }
    if (names.empty()) return "";
    std::string name_list;
    for (const auto& n : names) {
      ++needs_interface_[n];
      name_list += (name_list.empty() ? "" : ", ") + n;
    }
    return "needs interface " + name_list + ", which the capture does not show: the original decides it by " +
           "which interface it came in or left by (" + rule_list + ")";
  }

  // A packet decided differently, with the layer and filter that decided it for LFP: the one that
  // blocked, or the last one a filter decided.
  static json difference(const ReplayedPacket& rp, bool original_accepted) {
    const pk::Packet& p = *rp.packet;
    const pk::Direction dir = rp.walk->direction();
    const bool lfp = rp.permit();
    const ReplayedPacket::Layer* decided = nullptr;
    for (const auto& l : rp.layers)
      if (!l.result.permit || l.result.filter) decided = &l;
    bool ale = false;
    for (const auto& l : rp.layers)
      ale = ale || l.layer == LayerId::ALE_AUTH_CONNECT_V4 || l.layer == LayerId::ALE_AUTH_CONNECT_V6 ||
            l.layer == LayerId::ALE_AUTH_RECV_ACCEPT_V4 || l.layer == LayerId::ALE_AUTH_RECV_ACCEPT_V6;
    json d = {{"index", rp.index},
              {"packet", packet_summary(p)},
              {"direction", pk::to_string(dir)},
              {"source", addr_text(p.src)},
              {"destination", addr_text(p.dst)},
              {"original", original_accepted ? "ACCEPT" : "DROP"},
              {"lfp", lfp ? "PERMIT" : "BLOCK"},
              {"layer", decided ? json(layer_info(decided->layer).name) : json(nullptr)},
              {"filter", decided && decided->result.filter
                             ? json{{"key", decided->result.filter->key.str()}, {"name", decided->result.filter->display.name}}
                             : json(nullptr)}};
    const char* proto = protocol_name(p.protocol);
    d["protocol"] = proto ? json(proto) : json(p.protocol);
    d["source_port"] = p.has_ports() ? json(p.src_port) : json(nullptr);
    d["destination_port"] = p.has_ports() ? json(p.dst_port) : json(nullptr);
    if (!ale && lfp && (dir == pk::Direction::INBOUND || dir == pk::Direction::OUTBOUND))
      d["note"] = p.has_ports()
                      ? "not a flow's first packet for LFP (its ALE layers decide first packets only): the kernel's "
                        "conntrack did not take it as part of a flow it knows (a capture that starts mid-flow?)"
                      : "the imported INPUT/OUTPUT filters decide flows with ports (TCP, UDP) at the ALE layers and ICMP "
                        "requests at the transport layers, not this packet, while the original chain decides it";
    return d;
  }

  Kernel& kernel_;
  const ShadowedRules& shadowed_;
  const import::BuiltinCallouts& callouts_;
  json differences_ = json::array(), skipped_ = json::array();
  uint64_t packets_ = 0, compared_ = 0, alike_ = 0, accepted_ = 0;
  std::map<std::string, uint64_t> needs_interface_;  // packets not compared, by an interface they need
};

}  // namespace

json verify_import(const std::string& format, const std::string& rules, const json& policy, const VerifyArgs& args) {
  if (!verify_supported(format))
    throw VerifyUnavailable("--verify runs the original rules in the kernel: " + format +
                            " rules have no semantics Linux can run (iptables and nft only)");
  FilterEngine engine;
  policy::apply_policy(engine, policy::policy_from_json(policy));
  ReplayArgs ra;
  ra.pcap = args.pcap;
  ra.locals = args.locals;
  const std::vector<pk::IpAddr> locals = host_addresses(engine, ra);

  bool ip6tables = false;
  if (format == "iptables")
    for (const auto& f : policy.value("filters", json::array()))
      if (f.value("layer", "").ends_with("_V6")) ip6tables = true;

  const ShadowedRules shadowed = format == "nft" ? shadow_nft(rules) : shadow_iptables(rules);
  Kernel kernel(format, shadowed, ip6tables, locals);
  // The built-in callouts the import's filters name, as lfpd runs them, on the capture's clock (and,
  // to tell which rate-limit verdicts the kernel's replay cannot reproduce, on the replay's).
  import::BuiltinCallouts callouts(engine);
  auto clocks = [&](uint64_t capture_ns) {
    const auto replay = std::chrono::steady_clock::now().time_since_epoch();
    callouts.set_clocks(static_cast<int64_t>(capture_ns / 1'000'000),
                        std::chrono::duration_cast<std::chrono::milliseconds>(replay).count());
  };
  Comparison comparison(kernel, shadowed, callouts);
  replay_capture(engine, ra, [&](const ReplayedPacket& rp) { return comparison.add(rp); }, clocks);
  return comparison.report(args, ra);
}

void print_verify_report(const json& r, std::ostream& out) {
  // The summary: how much of the capture was compared (a verify that compares little proves little).
  char percent[16];
  snprintf(percent, sizeof percent, "%.1f%%", 100.0 * r.value("compared_fraction", 0.0));
  out << "lfp import --verify " << r.value("capture", "") << ": compared " << r.value("compared", 0) << " of "
      << r.value("packets", 0) << " packets (" << percent << "): " << r.value("alike", 0) << " decided alike, "
      << r.value("different", 0) << " differently; " << r.value("not_compared", 0) << " not compared";
  std::string needs;
  const json needs_interface = r.value("needs_interface", json::object());
  for (const auto& [name, count] : needs_interface.items())
    needs += (needs.empty() ? "" : ", ") + std::to_string(count.get<uint64_t>()) + " need interface " + name;
  if (!needs.empty()) out << " (" << needs << ", which the capture does not show)";
  out << '\n';
  for (const auto& d : r["differences"]) {
    out << "  packet " << d.value("index", 0) << " " << d.value("packet", "") << " " << d.value("direction", "")
        << ": original " << d.value("original", "") << ", LFP " << d.value("lfp", "");
    if (d["layer"].is_string()) out << " at " << d["layer"].get<std::string>();
    if (d["filter"].is_object())
      out << " by \"" << d["filter"].value("name", "") << "\" " << d["filter"].value("key", "");
    out << '\n';
    if (d.contains("note")) out << "      " << d["note"].get<std::string>() << '\n';
  }
  for (const auto& s : r["skipped"])
    out << "  not compared: packet " << s.value("index", 0) << " " << s.value("packet", "") << ": "
        << s.value("reason", "") << '\n';
}

}  // namespace lfp::cli
