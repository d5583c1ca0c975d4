// SPDX-License-Identifier: MIT
// The importers decide as the original: jumps, gotos and RETURNs (conditional or not) flattened into
// first-match filters, checked against a chain walk written here on random rule sets; ufw's own
// chains; nftables verdict maps, sets, jump, goto and return; and the coverage report.
#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>


#include <gtest/gtest.h>

#include "lfp/engine/engine.hpp"
#include "lfp/engine/guid.hpp"
#include "lfp/import/iptables.hpp"
#include "lfp/import/nft.hpp"
#include "lfp/policy/policy.hpp"
#include "log.hpp"
#include "ratelimit.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

std::string read_fixture(const std::string& file) {
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/tests/data/import/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A packet as the ALE layers see it.
struct Packet {
  std::string remote, local;
  int proto, remote_port, local_port;
  bool loopback = false;
};

// The log callout as lfpd runs it (liblfp_inspect_callouts.so): it decides nothing.
struct ContinuingLog : CalloutDriver {
  void classify(const CalloutClassifyIn&, CalloutClassifyOut& out) override { out.verdict = CalloutVerdict::CONTINUE; }
};

// The imported policy in a FilterEngine (with the log callout registered, as lfpd has it).
class Imported {
 public:
  explicit Imported(const json& policy) {
    for (const char* key : {inspect::kLogCalloutInboundV4, inspect::kLogCalloutInboundV6, inspect::kLogCalloutOutboundV4,
                            inspect::kLogCalloutOutboundV6, inspect::kLogCalloutForwardV4, inspect::kLogCalloutForwardV6})
      engine_.register_callout(*Guid::parse(key), std::make_shared<ContinuingLog>());
    policy::apply_policy(engine_, policy::policy_from_json(policy));
  }

  bool permits(const char* layer, const Packet& p) {
    const json values = {{"IP_PROTOCOL", p.proto},           {"FLAGS", p.loopback ? json("IS_LOOPBACK") : json(0)},
                         {"IP_REMOTE_ADDRESS", p.remote},    {"IP_LOCAL_ADDRESS", p.local},
                         {"IP_REMOTE_PORT", p.remote_port},  {"IP_LOCAL_PORT", p.local_port}};
    policy::Request req;
    policy::parse_request(json{{"layer", layer}, {"values", values}}, req);
    return engine_.classify(req.layer, req.values).permit;
  }

  // The name of the filter that decides the packet at `layer` ("" if none).
  std::string decided_by(const char* layer, const Packet& p) {
    const json values = {{"IP_PROTOCOL", p.proto}, {"IP_REMOTE_ADDRESS", p.remote}, {"IP_LOCAL_ADDRESS", p.local},
                         {"IP_REMOTE_PORT", p.remote_port}, {"IP_LOCAL_PORT", p.local_port}};
    policy::Request req;
    policy::parse_request(json{{"layer", layer}, {"values", values}}, req);
    const auto r = engine_.classify(req.layer, req.values);
    return r.filter ? r.filter->display.name : "";
  }

 private:
  FilterEngine engine_;
};

// ---- Random rule sets against a chain walk ----

// A rule of the generated sets, as data: the walk below reads this, the importer the text it renders to.
struct GenRule {
  std::optional<std::string> src;  // a prefix
  bool src_neg = false;
  std::optional<int> proto;        // 6 or 17
  bool proto_neg = false;
  std::vector<std::pair<int, int>> dports;  // OR'ed ranges (a multiport list); needs proto
  bool dports_neg = false;
  std::string target;  // ACCEPT, DROP, RETURN, or a chain
  bool go = false;
};

struct GenSet {
  std::string policy;
  std::map<std::string, std::vector<GenRule>> chains;  // INPUT, U0, U1, U2
};

bool in_prefix(const std::string& addr, const std::string& prefix) {
  auto v4 = [](const std::string& a) {
    unsigned b[4];
    sscanf(a.c_str(), "%u.%u.%u.%u", &b[0], &b[1], &b[2], &b[3]);
    return b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
  };
  const size_t slash = prefix.find('/');
  const int len = std::stoi(prefix.substr(slash + 1));
  const uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
  return (v4(addr) & mask) == (v4(prefix.substr(0, slash)) & mask);
}

bool matches(const GenRule& r, const Packet& p) {
  if (r.src && in_prefix(p.remote, *r.src) == r.src_neg) return false;
  if (r.proto && (p.proto == *r.proto) == r.proto_neg) return false;
  if (!r.dports.empty()) {
    const bool in = std::any_of(r.dports.begin(), r.dports.end(), [&](auto d) { return p.local_port >= d.first && p.local_port <= d.second; });
    if (in == r.dports_neg) return false;
  }
  return true;
}

// iptables' walk: "ACCEPT"/"DROP", or "" when the chain returns.
std::string walk(const GenSet& s, const std::string& chain, const Packet& p) {
  for (const GenRule& r : s.chains.at(chain)) {
    if (!matches(r, p)) continue;
    if (r.target == "ACCEPT" || r.target == "DROP") return r.target;
    if (r.target == "RETURN") return "";
    const std::string v = walk(s, r.target, p);
    if (!v.empty() || r.go) return v;  // a goto's chain returns from this chain too
  }
  return "";
}

std::string render(const GenSet& s) {
  std::string out = "*filter\n:INPUT " + s.policy + " [0:0]\n:OUTPUT ACCEPT [0:0]\n";
  for (const auto& [name, rules] : s.chains)
    if (name != "INPUT") out += ":" + name + " - [0:0]\n";
  for (const auto& [name, rules] : s.chains)
    for (const GenRule& r : rules) {
      out += "-A " + name;
      if (r.src) out += std::string(r.src_neg ? " !" : "") + " -s " + *r.src;
      if (r.proto) out += std::string(r.proto_neg ? " !" : "") + " -p " + (*r.proto == 6 ? "tcp" : "udp");
      if (!r.dports.empty()) {
        std::string list;
        for (auto [lo, hi] : r.dports) list += (list.empty() ? "" : ",") + std::to_string(lo) + (hi != lo ? ":" + std::to_string(hi) : "");
        out += " -m multiport" + std::string(r.dports_neg ? " !" : "") + " --dports " + list;
      }
      out += (r.go ? " -g " : " -j ") + r.target + "\n";
    }
  return out + "COMMIT\n";
}

GenSet generate(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> prefixes = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "192.0.2.0/24", "0.0.0.0/1"};
  const std::vector<std::pair<int, int>> ports = {{22, 22}, {80, 80}, {443, 443}, {1000, 2000}, {6000, 6007}, {0, 1023}};
  GenSet s;
  s.policy = pick(2) ? "ACCEPT" : "DROP";
  const std::vector<std::string> names = {"INPUT", "U0", "U1", "U2"};
  for (size_t c = 0; c < names.size(); ++c) {
    auto& rules = s.chains[names[c]];
    for (int n = 1 + pick(5); n > 0; --n) {
      GenRule r;
      if (pick(2)) r.src = prefixes[pick(prefixes.size())], r.src_neg = pick(4) == 0;
      if (pick(3)) {
        r.proto = pick(2) ? 6 : 17;
        r.proto_neg = pick(5) == 0;
        if (!r.proto_neg && pick(2)) {
          for (int k = 1 + pick(2); k > 0; --k) r.dports.push_back(ports[pick(ports.size())]);
          r.dports_neg = pick(4) == 0;
        }
      }
      const int t = pick(c + 1 < names.size() ? 6 : 3);
      if (t < 3) r.target = t == 0 ? "ACCEPT" : t == 1 ? "DROP" : (c == 0 ? "ACCEPT" : "RETURN");
      else r.target = names[c + 1 + pick(names.size() - c - 1)], r.go = t == 5;
      rules.push_back(r);
    }
  }
  return s;
}

TEST(ImportChains, RandomRuleSetsDecideAsTheChainWalk) {
  std::mt19937 rng(26);
  const std::vector<std::string> sources = {"10.1.2.3", "10.1.9.9", "10.200.0.1", "192.0.2.7", "198.51.100.1", "172.16.0.1"};
  const std::vector<int> dports = {22, 80, 443, 1500, 6003, 8080};
  int sets = 0, packets = 0, with_returns = 0;
  for (; sets < 300; ++sets) {
    const GenSet s = generate(rng);
    const std::string text = render(s);
    const auto r = import::import_iptables(text);
    ASSERT_TRUE(r.unmapped.empty()) << text << r.unmapped[0].line << ": " << r.unmapped[0].reason;
    with_returns += text.find("RETURN") != std::string::npos || text.find(" -g ") != std::string::npos;
    Imported lfp(r.policy);
    for (const auto& src : sources)
      for (int proto : {6, 17})
        for (int port : dports) {
          const Packet p{src, "10.9.9.9", proto, 40000, port};
          std::string original = walk(s, "INPUT", p);
          if (original.empty()) original = s.policy;
          ++packets;
          ASSERT_EQ(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", p), original == "ACCEPT")
              << text << "from " << src << " proto " << proto << " port " << port << ": the chain walk says " << original
              << "\n" << r.policy["filters"].dump(1);
        }
  }
  EXPECT_GT(with_returns, 200);  // most sets exercise RETURN or goto
  std::cout << sets << " rule sets, " << packets << " packets decided as the chain walk\n";
}

// ---- Conditional RETURN and goto, by hand ----

TEST(ImportChains, ConditionalReturnAndGoto) {
  const auto r = import::import_iptables(R"(*filter
:INPUT DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CHECK - [0:0]
:SSH - [0:0]
-A INPUT -p tcp -j CHECK
-A INPUT -p tcp --dport 80 -j ACCEPT
-A INPUT -p udp --dport 53 -g SSH
-A INPUT -p udp -j ACCEPT
-A CHECK -s 10.0.0.0/8 -j RETURN
-A CHECK -p tcp --dport 22 -j ACCEPT
-A CHECK -j DROP
-A SSH -s 192.0.2.1 -j DROP
COMMIT
)");
  EXPECT_TRUE(r.unmapped.empty()) << r.unmapped[0].reason;
  Imported lfp(r.policy);
  auto in = [&](const std::string& src, int proto, int port) { return lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", {src, "10.9.9.9", proto, 40000, port}); };
  EXPECT_TRUE(in("10.1.1.1", 6, 80));       // CHECK returns: INPUT accepts port 80
  EXPECT_FALSE(in("10.1.1.1", 6, 22));      // CHECK returns before its ssh rule: the policy drops
  EXPECT_TRUE(in("192.168.1.1", 6, 22));    // CHECK accepts
  EXPECT_FALSE(in("192.168.1.1", 6, 80));   // CHECK drops
  EXPECT_FALSE(in("192.0.2.1", 17, 53));    // SSH drops
  EXPECT_FALSE(in("192.0.2.2", 17, 53));    // SSH returns from INPUT (a goto): the policy drops
  EXPECT_TRUE(in("192.0.2.2", 17, 54));     // not the goto's: INPUT accepts udp
  // The report: every rule, what it became.
  std::map<int, import::RuleReport> acct;
  for (const auto& c : r.coverage) acct[c.line] = c;
  ASSERT_EQ(acct.size(), 8u);
  EXPECT_NE(acct[10].notes.at(0).find("carry its negation"), std::string::npos);
  EXPECT_EQ(acct[7].filters, (std::vector<std::string>{"INPUT line 7"}));
  // The ssh accept carries the RETURN's negation: the source outside 10.0.0.0/8, as two ranges.
  ASSERT_EQ(acct[11].filters.size(), 1u);
  for (const auto& f : r.policy["filters"])
    if (f["name"] == acct[11].filters[0])
      EXPECT_EQ(f["conditions"][1], json::parse(R"({"field":"IP_REMOTE_ADDRESS","match":"RANGE","value":{"low":"0.0.0.0","high":"9.255.255.255"}})"))
          << f["conditions"].dump();
  EXPECT_NE(acct[8].notes.at(0).find("goto SSH"), std::string::npos);
}

TEST(ImportChains, NegationsAndTheirBounds) {
  // A negated prefix and port list: the complement as ranges.
  const auto r = import::import_iptables(R"(*filter
:INPUT ACCEPT [0:0]
-A INPUT ! -s 10.0.0.0/8 -p tcp -m multiport ! --dports 22,80 -j DROP
COMMIT
)");
  ASSERT_TRUE(r.unmapped.empty());
  Imported lfp(r.policy);
  auto in = [&](const std::string& src, int port) { return lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", {src, "10.9.9.9", 6, 40000, port}); };
  EXPECT_TRUE(in("10.2.3.4", 443));
  EXPECT_TRUE(in("11.0.0.1", 80));
  EXPECT_FALSE(in("11.0.0.1", 443));
  EXPECT_FALSE(in("9.255.255.255", 21));
  // IPv6: a negated prefix, and an address type that is an address range (multicast: ff00::/8).
  const auto r6 = import::import_iptables(R"(*filter
:INPUT ACCEPT [0:0]
:U - [0:0]
-A INPUT -p udp -j U
-A U -m addrtype --dst-type MULTICAST -j RETURN
-A U ! -s fd00::/8 -j DROP
COMMIT
)");
  ASSERT_TRUE(r6.unmapped.empty()) << r6.unmapped[0].reason;
  Imported lfp6(r6.policy);
  auto in6 = [&](const std::string& src, const std::string& dst) { return lfp6.permits("ALE_AUTH_RECV_ACCEPT_V6", {src, dst, 17, 40000, 53}); };
  EXPECT_TRUE(in6("fd12::1", "fd12::2"));
  EXPECT_FALSE(in6("2001:db8::1", "fd12::2"));
  EXPECT_TRUE(in6("2001:db8::1", "ff02::fb"));  // multicast returns before the drop
  EXPECT_FALSE(in6("fc00::1", "fd12::2"));  // the complement of fd00::/8: below it
  EXPECT_FALSE(in6("fe00::1", "fd12::2"));  // and above it
  // A RETURN whose negation splits past the bound is reported, not silently wrong.
  std::string text = "*filter\n:INPUT DROP [0:0]\n:U - [0:0]\n-A INPUT -j U\n";
  for (int i = 0; i < 12; ++i) text += "-A U -s 10." + std::to_string(i) + ".0.0/16 -p tcp --dport " + std::to_string(100 + i) + " -j RETURN\n";
  text += "-A U -j ACCEPT\nCOMMIT\n";
  const auto big = import::import_iptables(text);
  ASSERT_FALSE(big.unmapped.empty());
  EXPECT_NE(big.unmapped.back().reason.find("splits into more than"), std::string::npos) << big.unmapped.back().reason;
}

TEST(ImportChains, IcmpRequestsAtTheTransportLayers) {
  const auto r = import::import_iptables(R"(*filter
:INPUT DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 192.0.2.0/24 -j DROP
-A INPUT -p icmp --icmp-type echo-request -j ACCEPT
-A INPUT -p tcp --dport 22 -j ACCEPT
-A OUTPUT -p icmp -m icmp --icmp-type 8 -d 203.0.113.0/24 -j REJECT
COMMIT
)");
  EXPECT_TRUE(r.unmapped.size() == 1 && r.unmapped[0].line == 4) << r.unmapped.size();  // only the implied accept
  Imported lfp(r.policy);
  auto ping_in = [&](const std::string& src, int type) { return lfp.permits("INBOUND_TRANSPORT_V4", {src, "10.9.9.9", 1, 0, type}); };
  EXPECT_TRUE(ping_in("198.51.100.7", 8));
  EXPECT_FALSE(ping_in("192.0.2.9", 8));        // the source's drop comes first
  EXPECT_FALSE(ping_in("198.51.100.7", 17));    // an address mask request: the policy
  EXPECT_TRUE(ping_in("192.0.2.9", 0));         // replies and errors belong to flows
  EXPECT_TRUE(ping_in("192.0.2.9", 3));
  EXPECT_TRUE(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", {"198.51.100.7", "10.9.9.9", 6, 40000, 22}));
  EXPECT_FALSE(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", {"192.0.2.9", "10.9.9.9", 6, 40000, 22}));
  EXPECT_FALSE(lfp.permits("OUTBOUND_TRANSPORT_V4", {"203.0.113.5", "10.9.9.9", 1, 0, 8}));
  EXPECT_TRUE(lfp.permits("OUTBOUND_TRANSPORT_V4", {"198.51.100.7", "10.9.9.9", 1, 0, 8}));
  EXPECT_NE(r.needs.at(0).find("packet layers"), std::string::npos);
}

// ---- ufw's generated chains ----

TEST(ImportChains, UfwDecidesAsUfw) {
  const auto r = import::import_iptables(read_fixture("ufw.rules"));
  Imported lfp(r.policy);
  const std::string me = "10.9.9.9";
  auto in = [&](const std::string& src, int proto, int port, const std::string& dst = "10.9.9.9", int sport = 40000) {
    return lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", {src, dst, proto, sport, port});
  };
  const std::string any = "198.51.100.7", denied = "192.0.2.5";
  EXPECT_TRUE(in(any, 6, 22));            // ufw allow 22/tcp
  EXPECT_TRUE(in(denied, 6, 22));         // ... which comes before the deny
  EXPECT_TRUE(in(any, 6, 6000));          // ufw allow 6000:6007/tcp
  EXPECT_TRUE(in(any, 6, 6007));
  EXPECT_FALSE(in(any, 6, 6008));         // default deny incoming
  EXPECT_FALSE(in(any, 6, 80));
  EXPECT_FALSE(in(denied, 6, 80));        // ufw deny from 192.0.2.0/24
  EXPECT_FALSE(in(denied, 17, 5353));     // ... which comes before allow 5353/udp
  EXPECT_TRUE(in(any, 17, 5353));         // ufw allow 5353/udp
  EXPECT_TRUE(in(any, 6, 2222));          // ufw limit 2222/tcp: allowed (the limit is the rate-limit callout's)
  EXPECT_TRUE(in(denied, 17, 5353, "224.0.0.251"));  // mDNS: before.rules accepts it before the user rules
  EXPECT_TRUE(in(any, 17, 1900, "239.255.255.250"));  // UPnP likewise
  EXPECT_FALSE(in(any, 17, 1901, "239.255.255.250"));
  EXPECT_TRUE(in(any, 17, 5353, "239.1.2.3"));       // ufw-not-local returns on multicast
  EXPECT_TRUE(in(any, 17, 5353, "255.255.255.255")); // and on broadcast
  EXPECT_FALSE(in(any, 17, 137));         // ufw-after-input: netbios goes to the policy
  EXPECT_TRUE(in("10.0.0.1", 17, 68, me, 67));  // DHCP replies
  EXPECT_FALSE(in("10.0.0.1", 17, 68, me, 99));
  Packet lo{"127.0.0.1", "127.0.0.1", 6, 40000, 80};
  lo.loopback = true;
  EXPECT_TRUE(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", lo));  // -i lo -j ACCEPT
  // ICMP at the transport layer (the type in the local port, the code in the remote): before.rules
  // accepts echo requests from anyone, the policy drops other requests; replies and errors pass.
  auto icmp = [&](const std::string& src, int type) { return lfp.permits("INBOUND_TRANSPORT_V4", {src, me, 1, 0, type}); };
  EXPECT_TRUE(icmp(denied, 8));
  EXPECT_FALSE(icmp(any, 13));  // a timestamp request
  EXPECT_TRUE(icmp(any, 0));    // an echo reply: ESTABLISHED
  EXPECT_TRUE(lfp.permits("INBOUND_TRANSPORT_V4", {any, me, 6, 40000, 80}));  // TCP is the ALE layers'
  EXPECT_EQ(r.needs.size(), 3u);  // the packet layers (ICMP), their user-space path and the callouts (the limit, the logs)
  EXPECT_TRUE(lfp.permits("ALE_AUTH_CONNECT_V4", {"203.0.113.1", me, 6, 443, 40000}));  // outgoing: allowed

  // Every rule is accounted for, and what is not imported says why.
  size_t rule_lines = 0;
  std::istringstream lines(read_fixture("ufw.rules"));
  for (std::string line; std::getline(lines, line);) rule_lines += line.rfind("-A ", 0) == 0;
  EXPECT_EQ(r.coverage.size(), rule_lines);
  std::map<std::string, std::string> why;  // by the rule's text
  for (const auto& c : r.coverage) {
    EXPECT_FALSE(c.filters.empty() && c.notes.empty()) << c.text;
    for (const auto& n : c.notes) why[c.text] += n + "|";
  }
  auto reason = [&](const std::string& needle) {
    for (const auto& [text, w] : why)
      if (text.find(needle) != std::string::npos) return w;
    return std::string("(no such rule)");
  };
  EXPECT_NE(reason("--dst-type LOCAL -j RETURN").find("carry its negation"), std::string::npos);
  EXPECT_NE(reason("--hitcount 6").find("rate limit: a new TCP connection (a SYN) over 6 in 30 s"), std::string::npos) << reason("--hitcount 6");
  // The broadcast rule of ufw-after-input goes to the policy's own verdict: not needed, so not a difference.
  EXPECT_NE(reason("ufw-skip-to-policy-input -j DROP").find("not needed (addrtype BROADCAST"), std::string::npos) << reason("ufw-skip-to-policy-input -j DROP");
  EXPECT_NE(reason("ufw-not-local -j DROP").find("never reached"), std::string::npos) << reason("ufw-not-local -j DROP");
  EXPECT_NE(reason("ufw-before-input -p icmp -m icmp --icmp-type 3 -j ACCEPT").find("replies and errors"), std::string::npos);
}

// ufw's `limit 2222/tcp` (-m recent --set, then --update ... -j ufw-user-limit, which logs and
// rejects): a filter of the rate-limit callout at INBOUND_TRANSPORT with xt_recent's parameters, on
// the same path as the rule (after ufw's deny from 192.0.2.0/24); the ALE layers permit the rest.
TEST(ImportChains, UfwLimitBecomesTheRateLimitCallout) {
  const auto r = import::import_iptables(read_fixture("ufw.rules"));
  const json& pol = r.policy;
  const std::string callout = "4c460000-0000-4000-8000-000000000109";
  const json callouts = pol.value("callouts", json::array());
  const auto limit_callout = std::find_if(callouts.begin(), callouts.end(), [&](const json& c) { return c["key"] == callout; });
  ASSERT_NE(limit_callout, callouts.end()) << pol.dump();
  EXPECT_EQ((*limit_callout)["layer"], "INBOUND_TRANSPORT_V4");
  EXPECT_EQ(callouts.size(), 3u);  // and the log callout's at INBOUND_TRANSPORT_V4 and IPFORWARD_V4 (ufw's logging)
  std::vector<json> limits;
  for (const auto& f : pol["filters"])
    if (f["action"].is_object() && f["action"].value("callout", "") == callout) limits.push_back(f);
  ASSERT_EQ(limits.size(), 1u);
  const json& f = limits[0];
  EXPECT_EQ(f["name"], "INPUT line 106 limit");
  EXPECT_EQ(f["layer"], "INBOUND_TRANSPORT_V4");
  EXPECT_EQ(f["action"]["type"], "CALLOUT_TERMINATING");
  const json contexts = pol["provider_contexts"];
  const auto context = std::find_if(contexts.begin(), contexts.end(), [&](const json& c) { return c["key"] == f["provider_context"]; });
  ASSERT_NE(context, contexts.end());
  EXPECT_EQ(json::parse((*context)["data"].get<std::string>()),
            json({{"seconds", 30}, {"hitcount", 6}, {"name", "DEFAULT"}}));  // --mask 255.255.255.255: the whole address

  Imported lfp(pol);
  const std::string me = "10.9.9.9";
  const Packet from_any{"198.51.100.7", me, 6, 40000, 2222}, from_denied{"192.0.2.5", me, 6, 40000, 2222};
  EXPECT_EQ(lfp.decided_by("INBOUND_TRANSPORT_V4", from_any), "INPUT line 106 limit");
  // ufw's deny comes first: passed on uncounted, and the ALE layers deny it.
  EXPECT_EQ(lfp.decided_by("INBOUND_TRANSPORT_V4", from_denied), "INPUT line 104 before the limit");
  EXPECT_TRUE(lfp.permits("INBOUND_TRANSPORT_V4", from_denied));
  EXPECT_EQ(lfp.decided_by("INBOUND_TRANSPORT_V4", {"198.51.100.7", me, 6, 40000, 2223}), "");
  EXPECT_EQ(lfp.decided_by("INBOUND_TRANSPORT_V4", {"198.51.100.7", me, 17, 40000, 2222}), "");
  EXPECT_TRUE(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", from_any));  // under the limit: ufw-user-limit-accept
  EXPECT_FALSE(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", from_denied));

  // What lfpd needs for it, as `lfp import` prints it.
  const auto need = std::find_if(r.needs.begin(), r.needs.end(), [](const std::string& n) { return n.find("--packet-queue") != std::string::npos; });
  ASSERT_NE(need, r.needs.end());
  EXPECT_NE(need->find("--callout liblfp_inspect_callouts.so"), std::string::npos) << *need;
  // Each rule of the pattern says what it became; none of it is left out.
  std::map<int, import::RuleReport> acct;
  for (const auto& c : r.coverage) acct[c.line] = c;
  EXPECT_NE(acct[105].notes.at(0).find("recorded by the rate-limit callout"), std::string::npos) << acct[105].notes.at(0);
  EXPECT_EQ(acct[106].filters, std::vector<std::string>{"INPUT line 106 limit"});
  EXPECT_EQ(acct[104].filters, (std::vector<std::string>{"INPUT line 104", "INPUT line 104 before the limit", "INPUT line 104 icmp"}));
  EXPECT_NE(acct[106].notes.back().find("lfp import --verify runs the callout too"), std::string::npos);
  EXPECT_NE(acct[109].notes.at(0).find("LOG decides nothing"), std::string::npos);
  EXPECT_NE(acct[110].notes.at(0).find("the rate-limit filter of line 106 blocks in its place"), std::string::npos);
  for (const auto& u : r.unmapped) EXPECT_TRUE(u.line < 105 || u.line > 111) << u.line << ": " << u.reason;
}

// ip6tables: the V6 callout, --mask as a prefix; and what is not ufw's pair stays reported, each why.
TEST(ImportChains, RecentRulesThatAreNotUfwsLimitAreReported) {
  const auto r6 = import::import_iptables(R"(*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 2001:db8:1::/48 -j DROP
-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name SSH --mask ffff:ffff:ffff:ffff:: --rsource
-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 4 --name SSH --mask ffff:ffff:ffff:ffff:: --rsource -j DROP
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
)");
  ASSERT_EQ(r6.policy["callouts"].size(), 1u);
  EXPECT_EQ(r6.policy["callouts"][0]["key"], "4c460000-0000-4000-8000-00000000010a");
  EXPECT_EQ(r6.policy["callouts"][0]["layer"], "INBOUND_TRANSPORT_V6");
  EXPECT_EQ(json::parse(r6.policy["provider_contexts"][0]["data"].get<std::string>()),
            json({{"seconds", 60}, {"hitcount", 4}, {"name", "SSH"}, {"prefix", 64}}));
  EXPECT_TRUE(r6.unmapped.empty()) << r6.unmapped[0].reason;

  const auto r = import::import_iptables(R"(*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp --dport 53 -m conntrack --ctstate NEW -m recent --set
-A INPUT -p udp --dport 53 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 -j DROP
-A INPUT -p tcp --dport 22 -m recent --set
-A INPUT -p tcp --dport 22 -m recent --update --seconds 30 --hitcount 6 -j DROP
-A INPUT -p tcp --dport 23 -m conntrack --ctstate NEW -m recent --set --rdest
-A INPUT -p tcp --dport 23 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 --rdest -j DROP
-A INPUT -p tcp --dport 24 -m conntrack --ctstate NEW -m recent --set
-A INPUT -p tcp --dport 24 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 -j ACCEPT
-A INPUT -p tcp --dport 25 -m conntrack --ctstate NEW -m recent --set
-A INPUT -p tcp --dport 26 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 -j DROP
-A INPUT -p tcp -m limit --limit 3/min -j ACCEPT
COMMIT
)");
  EXPECT_FALSE(r.policy.contains("callouts"));
  std::map<int, std::string> why;
  for (const auto& u : r.unmapped) why[u.line] += u.reason;
  EXPECT_NE(why[6].find("TCP connections (their SYN) only"), std::string::npos) << why[6];
  EXPECT_NE(why[5].find("its pair has no LFP form"), std::string::npos) << why[5];
  EXPECT_NE(why[8].find("counts every packet"), std::string::npos) << why[8];
  EXPECT_NE(why[10].find("recent --rdest has no form"), std::string::npos) << why[10];
  EXPECT_NE(why[12].find("does not reject or drop"), std::string::npos) << why[12];
  EXPECT_NE(why[14].find("differ in their matches"), std::string::npos) << why[14];  // the --set before it is for port 25
  EXPECT_NE(why[15].find("counts every packet that reaches it"), std::string::npos) << why[15];  // (-m limit: no --ctstate NEW)
  EXPECT_TRUE(r.needs.empty() || r.needs[0].find("--packet-queue") == std::string::npos);
}

// Packet rates (-m limit, -m hashlimit, nft's limit) on rules that decide new TCP connections: filters
// of the rate-limit callout at INBOUND_TRANSPORT with the rate as their provider context. A blocking
// target blocks the side of the rate that matches; an ACCEPT's other side is blocked where the later
// rules block it and only counted where they let it in. What the callout cannot count is reported.
TEST(ImportChains, PacketRatesBecomeTheRateLimitCallout) {
  const auto r = import::import_iptables(R"(*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 192.0.2.0/24 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -m limit --limit 10/sec --limit-burst 20 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 --syn -m hashlimit --hashlimit-above 3/min --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name ssh -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -m limit --limit 1/sec -j ACCEPT
-A INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 443 -j ACCEPT
-A INPUT -p icmp -m limit --limit 1/sec -j ACCEPT
-A INPUT -m limit --limit 3/min -j LOG --log-prefix "[drop] "
-A INPUT -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -m hashlimit --hashlimit-upto 1mb/s --hashlimit-name bytes -j ACCEPT
COMMIT
)", {.source = "rates.rules"});
  std::map<std::string, json> limits;  // the rate-limit filters by name, with their configuration
  for (const auto& f : r.policy["filters"])
    if (f["action"].is_object() && f["action"].value("callout", "") == inspect::kRateLimitCalloutV4) {
      json config;
      for (const auto& c : r.policy["provider_contexts"])
        if (c["key"] == f["provider_context"]) config = json::parse(c["data"].get<std::string>());
      limits[f["name"]] = {{"config", config}, {"conditions", f["conditions"]}};
    }
  ASSERT_EQ(limits.size(), 4u) << r.policy["filters"].dump();
  EXPECT_EQ(limits["INPUT line 6 limit"]["config"],
            json({{"rate", 10}, {"per", "second"}, {"burst", 20}, {"blocks", "over"}, {"name", "rates.rules line 6"}}));
  EXPECT_EQ(limits["INPUT line 7 limit"]["config"],
            json({{"rate", 3}, {"per", "minute"}, {"burst", 3}, {"blocks", "over"}, {"key", {"source"}}, {"expire", 10000},
                  {"name", "hashlimit ssh (IPv4)"}}));
  // Line 9: over the rate, line 10 still accepts 198.51.100.0/24 (counted only), the policy drops the rest.
  const json nine = limits["INPUT line 9 limit"]["config"], nine_b = limits["INPUT line 9 limit (2)"]["config"];
  EXPECT_EQ(nine.value("blocks", ""), "over") << nine;
  EXPECT_EQ(nine_b.value("blocks", ""), "none") << nine_b;
  EXPECT_EQ(nine.value("name", ""), "rates.rules line 9");
  EXPECT_EQ(nine_b.value("name", ""), "rates.rules line 9");  // one bucket
  EXPECT_NE(limits["INPUT line 9 limit (2)"]["conditions"].dump().find("198.51.100.0/24"), std::string::npos)
      << limits["INPUT line 9 limit (2)"]["conditions"];

  std::map<int, import::RuleReport> acct;
  for (const auto& c : r.coverage) acct[c.line] = c;
  // The ACCEPT, its rate, and (the LOG of line 12 after it) the ACCEPT again at INBOUND_TRANSPORT, above the log.
  EXPECT_EQ(acct[6].filters, (std::vector<std::string>{"INPUT line 6", "INPUT line 6 limit", "INPUT line 6 before the log"}));
  EXPECT_NE(acct[6].notes.at(0).find("within 10/second (burst 20)"), std::string::npos) << acct[6].notes.at(0);
  EXPECT_EQ(acct[7].filters, std::vector<std::string>{"INPUT line 7 limit"});  // the DROP is the callout's alone
  EXPECT_NE(acct[7].notes.at(0).find("over 3/minute (burst 3, per [\"source\"]) are blocked"), std::string::npos) << acct[7].notes.at(0);
  EXPECT_EQ(acct[5].filters, (std::vector<std::string>{"INPUT line 5", "INPUT line 5 before the limit", "INPUT line 5 icmp"}));
  std::map<int, std::string> why;
  for (const auto& u : r.unmapped) why[u.line] += u.reason;
  EXPECT_NE(why[11].find("TCP connections (their SYN) only"), std::string::npos) << why[11];
  EXPECT_EQ(why.count(12), 0u) << why[12];  // the LOG's rate is its log's
  EXPECT_EQ(acct[12].filters, (std::vector<std::string>{"INPUT line 12 log", "INPUT line 12 icmp log"}));
  EXPECT_NE(why[13].find("--hashlimit-upto 1mb/s: a rate the rate-limit callout does not count"), std::string::npos) << why[13];
  for (int line : {6, 7, 9}) EXPECT_EQ(why.count(line), 0u) << line << ": " << why[line];
  const auto need = std::find_if(r.needs.begin(), r.needs.end(), [](const std::string& n) { return n.find("--packet-queue") != std::string::npos; });
  EXPECT_NE(need, r.needs.end());

  // nftables: `limit rate over 5/second burst 10 packets drop` on new TCP connections.
  const auto n = import::import_nft(R"({"nftables": [
    {"table": {"family": "inet", "name": "f", "handle": 1}},
    {"chain": {"family": "inet", "table": "f", "name": "input", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 3, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 25}},
      {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
      {"limit": {"rate": 5, "burst": 10, "per": "second", "inv": true}}, {"drop": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 4, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 26}},
      {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
      {"limit": {"rate": 1, "per": "second", "rate_unit": "mbytes"}}, {"accept": null}]}}]})", {.source = "rates.json"});
  std::vector<json> configs;
  for (const auto& c : n.policy.value("provider_contexts", json::array())) configs.push_back(json::parse(c["data"].get<std::string>()));
  ASSERT_EQ(configs.size(), 1u) << n.policy.dump();  // the inet rule's v4 and v6 filters share it: one bucket, as nftables'
  EXPECT_EQ(configs[0], json({{"rate", 5}, {"per", "second"}, {"burst", 10}, {"blocks", "over"}, {"name", "rates.json item 2"}}));  // (items count from 0)
  std::string byte_rate;
  for (const auto& u : n.unmapped) byte_rate += u.reason;
  EXPECT_NE(byte_rate.find("a byte rate"), std::string::npos) << byte_rate;
}

// ---- nftables: verdict maps, sets, jump, goto, return ----

TEST(ImportChains, NftVerdictMapsSetsAndChains) {
  const std::string rs = R"({"nftables": [
    {"table": {"family": "inet", "name": "f", "handle": 1}},
    {"set": {"family": "inet", "name": "admins", "table": "f", "type": "ipv4_addr", "flags": ["interval"], "handle": 2,
             "elem": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, {"range": ["10.2.0.1", "10.2.0.9"]}]}},
    {"map": {"family": "inet", "name": "svc", "table": "f", "type": "inet_service", "map": "verdict", "handle": 3,
             "elem": [[25, {"drop": null}], [587, {"jump": {"target": "mail"}}]]}},
    {"chain": {"family": "inet", "table": "f", "name": "input", "handle": 4, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
    {"chain": {"family": "inet", "table": "f", "name": "mail", "handle": 5}},
    {"chain": {"family": "inet", "table": "f", "name": "trusted", "handle": 6}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 7, "expr": [
      {"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 8, "expr": [
      {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 9, "expr": [
      {"vmap": {"key": {"payload": {"protocol": "th", "field": "dport"}}, "data": {"set": [[7000, {"drop": null}], [7001, {"accept": null}]]}}}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 10, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@admins"}}, {"goto": {"target": "trusted"}}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 11, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9}}, {"counter": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 12, "expr": [
      {"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": "@svc"}}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 13, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443, {"range": [8000, 8099]}]}}}, {"accept": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "mail", "handle": 14, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "192.0.2.0", "len": 24}}}}, {"return": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "mail", "handle": 15, "expr": [{"accept": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "trusted", "handle": 16, "expr": [
      {"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 2222]}}}, {"return": null}]}},
    {"rule": {"family": "inet", "table": "f", "chain": "trusted", "handle": 17, "expr": [{"accept": null}]}}
  ]})";
  const auto r = import::import_nft(rs);
  Imported lfp(r.policy);
  auto in = [&](const std::string& src, int proto, int port) { return lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", {src, "10.9.9.9", proto, 40000, port}); };
  const std::string any = "198.51.100.7";
  EXPECT_FALSE(in(any, 6, 7000));   // the verdict map: drop
  EXPECT_TRUE(in(any, 17, 7001));   // accept, any transport
  EXPECT_FALSE(in(any, 6, 7002));   // not in the map: the policy
  EXPECT_TRUE(in("10.1.5.5", 6, 22));     // @admins, goto trusted: ssh accepted
  EXPECT_TRUE(in("10.2.0.5", 6, 2222));   // the set's range
  EXPECT_FALSE(in("10.2.0.10", 6, 22));   // not in the set
  EXPECT_FALSE(in("10.1.5.5", 6, 80));    // trusted returns from input too (a goto): the policy, not rule 13
  EXPECT_TRUE(in(any, 6, 80));            // the anonymous set with a range
  EXPECT_TRUE(in(any, 6, 8050));
  EXPECT_FALSE(in(any, 6, 25));           // the named verdict map: drop
  EXPECT_TRUE(in(any, 6, 587));           // jump mail: accept
  EXPECT_FALSE(in("192.0.2.9", 6, 587));  // mail returns for 192.0.2.0/24: on to rule 13, then the policy
  Packet lo{"127.0.0.1", "127.0.0.1", 6, 40000, 9};
  lo.loopback = true;
  EXPECT_TRUE(lfp.permits("ALE_AUTH_RECV_ACCEPT_V4", lo));
  std::map<int, import::RuleReport> acct;
  for (const auto& c : r.coverage) acct[c.line] = c;
  EXPECT_EQ(acct.size(), 11u);
  // Random damage: an error or a policy the reader takes, never a crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = rs;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) bad[rng() % bad.size()] = "{}[]\":,0-9@a"[rng() % 13];
    try {
      policy::policy_from_json(import::import_nft(bad).policy);
    } catch (const import::ImportError&) {
    } catch (const policy::PolicyError&) {
    }
  }
  EXPECT_NE(acct[10].notes.at(0).find("no target"), std::string::npos);  // a counter only counts
  EXPECT_NE(acct[7].notes.at(0).find("implied"), std::string::npos);
  EXPECT_EQ(acct[8].filters.size(), 2u) << json(acct[8].filters).dump();  // two elements (v4 and v6 filters named alike)
}

// ---- Interfaces by name and transport matches at FORWARD ----

// A callout driver answering one verdict, as the transport-match callout does on a packet that
// matches (PERMIT) or not (CONTINUE).
struct FixedCallout : CalloutDriver {
  explicit FixedCallout(CalloutVerdict v) : verdict(v) {}
  void classify(const CalloutClassifyIn&, CalloutClassifyOut& out) override { out.verdict = verdict; }
  CalloutVerdict verdict;
};

// Docker's layout: FORWARD -o IF to DOCKER, whose published port is `! -i IF -o IF -p tcp --dport 80`.
TEST(ImportChains, DockerForwardInterfacesAndPortsBecomeTheTransportMatchCallout) {
  // (docker0 need not exist where lfp import runs: the filters name it, lfpd resolves the name.)
  const std::string ifname = "docker0";
  const uint32_t index = 5;
  const auto r = import::import_iptables("*filter\n:FORWARD DROP [0:0]\n:DOCKER - [0:0]\n"
                                         "-A FORWARD -s 198.51.100.0/24 -j DROP\n"
                                         "-A FORWARD -o " + ifname + " -j DOCKER\n"
                                         "-A FORWARD -i " + ifname + " ! -o " + ifname + " -j ACCEPT\n"
                                         "-A DOCKER -d 172.17.0.2/32 ! -i " + ifname + " -o " + ifname + " -p tcp -m tcp --dport 80 -j ACCEPT\n"
                                         "COMMIT\n");
  EXPECT_TRUE(r.unmapped.empty()) << r.unmapped.at(0).reason;
  const json& pol = r.policy;
  const std::string callout = "4c460000-0000-4000-8000-00000000010b";
  ASSERT_EQ(pol.value("callouts", json::array()).size(), 1u) << pol.dump();
  EXPECT_EQ(pol["callouts"][0]["key"], callout);
  EXPECT_EQ(pol["callouts"][0]["layer"], "IPFORWARD_V4");
  json published;
  for (const auto& f : pol["filters"])
    if (f["name"] == "FORWARD line 7") published = f;
  ASSERT_TRUE(published.is_object()) << pol["filters"].dump();
  EXPECT_EQ(published["layer"], "IPFORWARD_V4");
  EXPECT_EQ(published["action"], json({{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}));
  ASSERT_EQ(pol["provider_contexts"].size(), 1u);
  EXPECT_EQ(published["provider_context"], pol["provider_contexts"][0]["key"]);
  EXPECT_EQ(json::parse(pol["provider_contexts"][0]["data"].get<std::string>()),
            json({{"protocols", {{6, 6}}}, {"destination_ports", {{80, 80}}}, {"action", "PERMIT"}}));
  // Its other conditions: the interfaces by name (`! -i`: NOT_EQUAL), the address.
  std::set<std::string> conditions;
  for (const auto& c : published["conditions"]) conditions.insert(c.dump());
  EXPECT_EQ(conditions, (std::set<std::string>{
                            json({{"field", "SOURCE_INTERFACE_INDEX"}, {"match", "NOT_EQUAL"}, {"value", {{"name", ifname}}}}).dump(),
                            json({{"field", "DESTINATION_INTERFACE_INDEX"}, {"match", "EQUAL"}, {"value", {{"name", ifname}}}}).dump(),
                            json({{"field", "IP_DESTINATION_ADDRESS"}, {"match", "EQUAL"}, {"value", "172.17.0.2"}}).dump()}));
  const auto need = std::find_if(r.needs.begin(), r.needs.end(), [](const std::string& n) { return n.find("transport-match") != std::string::npos; });
  ASSERT_NE(need, r.needs.end());
  EXPECT_NE(need->find("lfpd --packet-queue N --callout liblfp_inspect_callouts.so"), std::string::npos) << *need;

  // In the engine, with the callout answering as it would: PERMIT on tcp/80, CONTINUE on any other,
  // where arbitration goes on as if its filter had not matched (here to the chain policy).
  for (const auto verdict : {CalloutVerdict::PERMIT, CalloutVerdict::CONTINUE}) {
    FilterEngine engine;
    engine.set_interfaces({{"lo", 1}, {ifname, index}});  // (what lfpd does where it runs)
    policy::apply_policy(engine, policy::policy_from_json(pol));
    engine.register_callout(*Guid::parse(callout), std::make_shared<FixedCallout>(verdict));
    auto decide = [&](const std::string& src, uint32_t in_if, uint32_t out_if) {
      policy::Request req;
      policy::parse_request(json{{"layer", "IPFORWARD_V4"}, {"values", {{"IP_SOURCE_ADDRESS", src}, {"IP_DESTINATION_ADDRESS", "172.17.0.2"},
                                                                        {"SOURCE_INTERFACE_INDEX", in_if}, {"DESTINATION_INTERFACE_INDEX", out_if}}}},
                            req);
      const auto d = engine.classify(req.layer, req.values);
      return std::pair<bool, std::string>(d.permit, d.filter ? d.filter->display.name : "");
    };
    const uint32_t other = index + 1000;
    const bool tcp80 = verdict == CalloutVerdict::PERMIT;
    EXPECT_EQ(decide("192.0.2.7", other, index), std::pair(tcp80, std::string(tcp80 ? "FORWARD line 7" : "FORWARD policy DROP")));
    EXPECT_EQ(decide("198.51.100.7", other, index), std::pair(false, std::string("FORWARD line 4")));  // the rule before it
    EXPECT_EQ(decide("192.0.2.7", index, index).first, false);      // `! -i`: not from the bridge itself
    EXPECT_EQ(decide("192.0.2.7", other, other).first, false);      // not out by the bridge: the policy
    EXPECT_EQ(decide("192.0.2.7", index, other), std::pair(true, std::string("FORWARD line 6")));
  }
}

TEST(ImportChains, InterfacesThatAreNotHereAreImportedByNameAndWildcardsReported) {
  const auto r = import::import_iptables("*filter\n:FORWARD DROP [0:0]\n:INPUT ACCEPT [0:0]\n"
                                         "-A FORWARD -i lfp-no-such-if0 -j ACCEPT\n"
                                         "-A FORWARD -o eth+ -j ACCEPT\n"
                                         "-A FORWARD -p icmp --icmp-type 8 -j ACCEPT\n"
                                         "COMMIT\n");
  std::map<int, std::string> why;
  for (const auto& u : r.unmapped) why[u.line] = u.reason;
  EXPECT_EQ(why.count(4), 0u) << why[4];  // lfpd resolves the name where it runs
  EXPECT_NE(why[5].find("a wildcard has no LFP form"), std::string::npos) << why[5];
  EXPECT_NE(why[6].find("not a field of IPFORWARD"), std::string::npos) << why[6];  // ICMP types stay reported
  std::set<std::string> forward;
  for (const auto& f : r.policy["filters"])
    if (f["layer"] == "IPFORWARD_V4") forward.insert(f["name"].get<std::string>() + " " + f["conditions"].dump());
  EXPECT_EQ(forward, (std::set<std::string>{
                         R"(FORWARD line 4 [{"field":"SOURCE_INTERFACE_INDEX","match":"EQUAL","value":{"name":"lfp-no-such-if0"}}])",
                         "FORWARD policy DROP []"}));
}

// nftables: iifname / oifname at a forward hook, negated; the same callout for the port.
TEST(ImportChains, NftInterfacesAtForward) {
  const std::string ifname = "lfp-any0";  // (need not exist here)
  const std::string rs = R"({"nftables": [
    {"table": {"family": "ip", "name": "f", "handle": 1}},
    {"chain": {"family": "ip", "table": "f", "name": "fwd", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
    {"rule": {"family": "ip", "table": "f", "chain": "fwd", "handle": 3, "expr": [
      {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": ")" + ifname + R"("}},
      {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": ")" + ifname + R"("}},
      {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}, {"accept": null}]}},
    {"rule": {"family": "ip", "table": "f", "chain": "fwd", "handle": 4, "expr": [
      {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "nope*"}}, {"accept": null}]}}
  ]})";
  const auto r = import::import_nft(rs);
  ASSERT_EQ(r.unmapped.size(), 1u);
  EXPECT_NE(r.unmapped[0].reason.find("wildcard"), std::string::npos) << r.unmapped[0].reason;
  json rule;
  for (const auto& f : r.policy["filters"])
    if (f["layer"] == "IPFORWARD_V4" && f["action"].is_object()) rule = f;
  ASSERT_TRUE(rule.is_object()) << r.policy.dump();
  EXPECT_EQ(json::parse(r.policy["provider_contexts"][0]["data"].get<std::string>()),
            json({{"protocols", {{17, 17}}}, {"destination_ports", {{53, 53}}}, {"action", "PERMIT"}}));
  bool out_by_name = false, not_in_by_name = false;
  for (const auto& c : rule["conditions"]) {
    out_by_name = out_by_name || c == json({{"field", "DESTINATION_INTERFACE_INDEX"}, {"match", "EQUAL"}, {"value", {{"name", ifname}}}});
    not_in_by_name = not_in_by_name || c == json({{"field", "SOURCE_INTERFACE_INDEX"}, {"match", "NOT_EQUAL"}, {"value", {{"name", ifname}}}});
  }
  EXPECT_TRUE(out_by_name && not_in_by_name) << rule.dump();
}

}  // namespace
}  // namespace lfp::test
