// SPDX-License-Identifier: MIT
// lfp import --verify, end to end: a capture written here (allowed and blocked packets, both
// directions, an established flow, a fragmented datagram, a forwarded packet, IPv6) replayed through
// the original host firewall (tests/data/import), which the kernel runs in lfp's throwaway
// namespaces, and through the imported policy. The shipped rules must decide alike; a rule the
// import cannot express must show up as the differences it makes; a packet a rule on an interface
// decides (Docker's docker0) must be counted as not compared, never agree by accident. lfp itself
// runs in a sandbox namespace; no namespace of lfp's may be left behind.
#include <dirent.h>
#include <sys/wait.h>

#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lfp/packet/build.hpp"
#include "daemon_support.hpp"
#include "pcap_support.hpp"
#include "sandbox.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
namespace b = packet::build;
using b::Bytes;
using packet::IpAddr;

// The host under test, a peer on its admin LAN (@A@, @NET@ in the fixtures), and others.
const IpAddr kHost = *packet::parse_ip("10.77.0.1"), kLan = *packet::parse_ip("10.77.0.2"),
             kFar = *packet::parse_ip("198.51.100.7"), kRange = *packet::parse_ip("203.0.113.15"),
             kWeb = *packet::parse_ip("203.0.113.50"), kBlocked = *packet::parse_ip("192.0.2.5"),
             kElsewhere = *packet::parse_ip("192.0.2.99"), kHost6 = *packet::parse_ip("2001:db8::1"),
             kFar6 = *packet::parse_ip("2001:db8:99::7");
const Mac kHostMac = {0x02, 0, 0, 0, 0, 0x01}, kGatewayMac = {0x02, 0, 0, 0, 0, 0xfe};

std::string fixture(const std::string& file) {
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/tests/data/import/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  for (auto [from, to] : {std::pair<std::string, std::string>{"@A@", "10.77.0.2"}, {"@NET@", "10.77.0.0/24"}})
    for (size_t p; (p = s.find(from)) != std::string::npos;) s.replace(p, from.size(), to);
  return s;
}

// The transport checksum (TCP at 16, UDP at 6, ICMPv6 at 2) over the pseudo header; ICMP's over itself.
Bytes checksummed(const IpAddr& src, const IpAddr& dst, uint8_t proto, Bytes seg) {
  const size_t at = proto == 6 ? 16 : proto == 17 ? 6 : 2;
  uint32_t sum = 0;
  auto add = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | (i + 1 < n ? p[i + 1] : 0));
  };
  if (proto != 1) {
    add(src.b.data(), src.v6 ? 16 : 4);
    add(dst.b.data(), dst.v6 ? 16 : 4);
    sum += proto + static_cast<uint32_t>(seg.size());
  }
  add(seg.data(), seg.size());
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  seg[at] = static_cast<uint8_t>(~sum >> 8);
  seg[at + 1] = static_cast<uint8_t>(~sum);
  return seg;
}

Bytes ip(const IpAddr& src, const IpAddr& dst, uint8_t proto, const Bytes& seg, b::V4 o = {}) {
  const Bytes s = checksummed(src, dst, proto, seg);
  return src.v6 ? b::ipv6(src, dst, proto, s) : b::ipv4(src, dst, proto, s, o);
}
Bytes tcp(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport, uint8_t flags, uint32_t seq = 1000,
          uint32_t ack = 0, const Bytes& data = {}) {
  return ip(src, dst, 6, b::tcp(sport, dport, flags, seq, ack, data));
}
Bytes udp(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport) {
  return ip(src, dst, 17, b::udp(sport, dport, {'q', 'u', 'e', 'r', 'y'}));
}
// A UDP datagram (8 + 16 bytes) in two fragments.
std::pair<Bytes, Bytes> udp_fragments(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport, uint16_t id) {
  const Bytes whole = checksummed(src, dst, 17, b::udp(sport, dport, Bytes(16, 'x')));
  return {b::ipv4(src, dst, 17, Bytes(whole.begin(), whole.begin() + 16), {.id = id, .mf = true}),
          b::ipv4(src, dst, 17, Bytes(whole.begin() + 16, whole.end()), {.id = id, .frag_offset = 16})};
}

struct Probe {
  Bytes ip;
  bool outbound = false;
};

// The capture, in order. expected_drops: the indexes the host firewall drops (iptables and nft alike).
std::vector<Probe> capture(bool v6) {
  using namespace packet::tcp_flag;
  std::vector<Probe> c;
  auto in = [&](Bytes p) { c.push_back({std::move(p), false}); };
  auto out = [&](Bytes p) { c.push_back({std::move(p), true}); };
  // 0-4: ssh from the admin LAN, an established flow (its later packets pass as ESTABLISHED).
  in(tcp(kLan, 40001, kHost, 22, SYN, 1000));
  out(tcp(kHost, 22, kLan, 40001, SYN | ACK, 5000, 1001));
  in(tcp(kLan, 40001, kHost, 22, ACK, 1001, 5001));
  in(tcp(kLan, 40001, kHost, 22, PSH | ACK, 1001, 5001, {'l', 's', '\n'}));
  out(tcp(kHost, 22, kLan, 40001, PSH | ACK, 5001, 1004, {'o', 'k', '\n'}));
  in(tcp(kFar, 40002, kHost, 22, SYN));           // 5: ssh from outside: DROP
  in(tcp(kLan, 40003, kHost, 443, SYN));          // 6: WEB drops @A@: DROP
  in(tcp(kFar, 40004, kHost, 443, SYN));          // 7: WEB: ACCEPT
  in(tcp(kFar, 40005, kHost, 23, SYN));           // 8: REJECT: DROP
  in(tcp(kFar, 40006, kHost, 8000, SYN));         // 9: 8000:8099: ACCEPT
  in(tcp(kFar, 40007, kHost, 8100, SYN));         // 10: policy: DROP
  in(udp(kFar, 5000, kHost, 53));                 // 11: ACCEPT
  out(udp(kHost, 53, kFar, 5000));                // 12: ACCEPT
  in(udp(kFar, 5001, kHost, 5353));               // 13: DROP
  in(tcp(kRange, 40008, kHost, 9000, SYN));       // 14: iprange (iptables) ACCEPT; nft: table ip other drops 9000
  in(tcp(kFar, 40009, kHost, 9000, SYN));         // 15: DROP
  out(tcp(kHost, 50000, kBlocked, 80, SYN));      // 16: OUTPUT -d 192.0.2.0/24: DROP
  out(tcp(kHost, 50001, kWeb, 443, SYN, 7000));   // 17: ACCEPT
  in(tcp(kWeb, 443, kHost, 50001, SYN | ACK, 9000, 7001));  // 18: its answer, ESTABLISHED: ACCEPT
  in(ip(kFar, kHost, 1, b::icmp(8, 0, {'p', 'i', 'n', 'g'}, 0x00010001)));  // 19: -p icmp: ACCEPT
  in(tcp(kFar, 40010, kElsewhere, 80, SYN));      // 20: forwarded, FORWARD policy: DROP
  auto [f1, f2] = udp_fragments(kFar, 5002, kHost, 53, 0x4242);
  in(f1);                                         // 21: held for reassembly: not compared
  in(f2);                                         // 22: completes a datagram to 53: ACCEPT
  in(tcp(kFar, 40011, kHost, 5555, SYN));         // 23: DROP
  if (v6) {
    in(tcp(kFar6, 40012, kHost6, 8000, SYN));     // 24: ACCEPT
    in(tcp(kFar6, 40013, kHost6, 5555, SYN));     // 25: DROP (nft's inet table; ip6 has no iptables rules)
    out(tcp(kHost6, 50002, kFar6, 443, SYN));     // 26: ACCEPT
  }
  return c;
}

// A classic pcap file: LINKTYPE_RAW (101) or Ethernet (1, frames to and from the host's MAC).
std::string probes_pcap(const std::vector<Probe>& c, bool ethernet) {
  std::vector<Bytes> records;
  for (const auto& p : c) {
    const uint16_t type = (p.ip[0] >> 4) == 6 ? packet::ethertype::IPV6 : packet::ethertype::IPV4;
    records.push_back(!ethernet ? p.ip
                      : p.outbound ? b::ethernet(kGatewayMac, kHostMac, type, p.ip)
                                   : b::ethernet(kHostMac, kGatewayMac, type, p.ip));
  }
  return pcap_file(ethernet ? 1 : 101, records);
}

// lfp's namespaces are lfpv-<pid>-...: none of a process that is gone may be left.
std::vector<std::string> leftover_namespaces() {
  std::vector<std::string> left;
  if (DIR* d = opendir("/run/netns")) {
    while (dirent* e = readdir(d)) {
      if (strncmp(e->d_name, "lfpv-", 5) != 0) continue;
      const long pid = strtol(e->d_name + 5, nullptr, 10);
      if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) left.push_back(e->d_name);
    }
    closedir(d);
  }
  return left;
}

struct Verified {
  RunResult run;
  json report;  // the whole --json report (its "verify" member is the comparison)
};

Verified verify(Sandbox& sb, const std::string& format, const std::string& rules, const std::string& pcap,
                const std::string& extra = "") {
  Verified v;
  v.run = sb.run(lfp_cli_path() + " import " + format + " " + rules + " --verify " + pcap +
                     " --local 10.77.0.1 --local 2001:db8::1 --json " + extra,
                 {.side = Side::A, .timeout = std::chrono::seconds(60)});
  v.report = json::parse(v.run.out, nullptr, false);
  EXPECT_TRUE(leftover_namespaces().empty());
  return v;
}

std::string differences_text(const json& verify) {
  std::string s;
  for (const auto& d : verify.value("differences", json::array())) s += "\n  " + d.dump();
  return s;
}

TEST(ImportVerify, TheHostFirewallDecidesAlikeInTheKernelAndInLfp) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  const auto pkts = capture(true);
  const std::string rules = sb.write_file("host-firewall.rules", fixture("host-firewall.rules"));
  const std::string pcap = sb.write_file("capture.pcap", probes_pcap(pkts, false));
  const Verified v = verify(sb, "iptables", rules, pcap);
  ASSERT_EQ(v.run.code, 0) << v.run.err << v.run.out;
  ASSERT_TRUE(v.report.is_object()) << v.run.out;
  const json& r = v.report["verify"];
  EXPECT_EQ(r["packets"], pkts.size());
  EXPECT_EQ(r["different"], 0) << differences_text(r);
  EXPECT_EQ(r["compared"], pkts.size() - 1) << r["skipped"].dump();  // the held fragment
  ASSERT_EQ(r["skipped"].size(), 1u);
  EXPECT_EQ(r["skipped"][0]["index"], 21);
  EXPECT_EQ(r["alike"], r["compared"]);
  EXPECT_DOUBLE_EQ(r["compared_fraction"].get<double>(), (pkts.size() - 1.0) / pkts.size());
  EXPECT_EQ(r["needs_interface"], json::object());  // -i lo only: no packet is injected on lo
  // The kernel did decide: 5, 6, 8, 10, 13, 15, 16, 20, 23 dropped (the IPv6 ones pass: no ip6tables rules).
  EXPECT_EQ(r["original_dropped"], 9);
  EXPECT_EQ(r["original_accepted"], pkts.size() - 1 - 9);
  EXPECT_TRUE(v.report.contains("unmapped"));  // the import's own report is still there
}

TEST(ImportVerify, TheNftHostFirewallDecidesAlikePingTooOnAnEthernetCapture) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  // What the importer reads is what `nft -j list ruleset` prints for the loaded rules (in the sandbox).
  const std::string nft = sb.write_file("host-firewall.nft", fixture("host-firewall.nft"));
  const RunResult listed = sb.run("nft -f " + nft + " && nft -j list ruleset", {.side = Side::B});
  ASSERT_TRUE(listed.ok()) << listed.err;
  const std::string rules = sb.write_file("ruleset.json", listed.out);
  const auto pkts = capture(true);
  const std::string pcap = sb.write_file("capture.pcap", probes_pcap(pkts, true));
  const Verified v = verify(sb, "nft", rules, pcap);
  ASSERT_EQ(v.run.code, 0) << v.run.err << v.run.out;
  const json& r = v.report["verify"];
  EXPECT_EQ(r["compared"], pkts.size() - 1) << r["skipped"].dump();
  // As iptables, but 20 (no forward chain: forwarded) and with 14 (no iprange rule; table ip other drops
  // 9000 too), 19 (no rule accepts ICMP here) and 25 (IPv6 to 5555): 11 dropped.
  EXPECT_EQ(r["original_dropped"], 11);
  // The ping (19) too: the chain's policy drops it, and so does the import's policy filter for ICMP
  // requests at INBOUND_TRANSPORT (the ALE layers never see it: the kernel answers ping itself).
  EXPECT_EQ(r["different"], 0) << differences_text(r);
  EXPECT_NE(v.report.value("needs", json::array()).dump().find("packet layers"), std::string::npos) << v.report.dump();
}

TEST(ImportVerify, ARuleTheImportCannotExpressShowsUpAsTheDifferencesItMakes) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  // -m limit has no LFP form: the import leaves the rule out (and says so), so LFP drops what the
  // kernel lets through (5 a second, a burst of 5: every probe here).
  std::string text = fixture("host-firewall.rules");
  const std::string log = "-A INPUT -m limit";
  text.insert(text.find(log), "-A INPUT -p tcp -m tcp --dport 5555 -m limit --limit 5/sec -j ACCEPT\n");
  const std::string rules = sb.write_file("limited.rules", text);
  const std::string pcap = sb.write_file("capture.pcap", probes_pcap(capture(false), false));
  const Verified v = verify(sb, "iptables", rules, pcap);
  ASSERT_EQ(v.run.code, 1) << v.run.err << v.run.out;
  const json& r = v.report["verify"];
  ASSERT_EQ(r["different"], 1) << differences_text(r);
  const json& d = r["differences"][0];
  EXPECT_EQ(d["index"], 23);
  EXPECT_EQ(d["original"], "ACCEPT");
  EXPECT_EQ(d["lfp"], "BLOCK");
  EXPECT_EQ(d["direction"], "INBOUND");
  EXPECT_EQ(d["protocol"], "TCP");
  EXPECT_EQ(d["source"], "198.51.100.7");
  EXPECT_EQ(d["source_port"], 40011);
  EXPECT_EQ(d["destination"], "10.77.0.1");
  EXPECT_EQ(d["destination_port"], 5555);
  EXPECT_EQ(d["layer"], "ALE_AUTH_RECV_ACCEPT_V4");
  EXPECT_EQ(d["filter"]["name"], "INPUT policy DROP");
  EXPECT_EQ(r["alike"], r["compared"].get<int>() - 1);
  bool reported = false;  // and the import's report names the rule
  for (const auto& u : v.report["unmapped"]) reported = reported || u["rule"].get<std::string>().find("5555") != std::string::npos;
  EXPECT_TRUE(reported) << v.report["unmapped"].dump();

  // The same in text: the difference on standard output, exit code 1.
  const RunResult t = sb.run(lfp_cli_path() + " import iptables " + rules + " --verify " + pcap + " --local 10.77.0.1",
                             {.side = Side::A, .timeout = std::chrono::seconds(60)});
  EXPECT_EQ(t.code, 1) << t.err;
  EXPECT_NE(t.out.find("1 differently"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("packet 23 IPv4 TCP 198.51.100.7:40011 > 10.77.0.1:5555 SYN INBOUND: original ACCEPT, LFP BLOCK"),
            std::string::npos)
      << t.out;
  EXPECT_TRUE(leftover_namespaces().empty());
}

// ufw's `limit 2222/tcp` (tests/data/import/ufw.rules: -m recent --set, then --update --seconds 30
// --hitcount 6 -j ufw-user-limit, which rejects): new connections from one source, `apart` seconds
// from each other in the capture.
std::string limit_pcap(int connections, uint32_t apart) {
  using namespace packet::tcp_flag;
  std::vector<Probe> c;
  for (int i = 0; i < connections; ++i) c.push_back({tcp(kFar, static_cast<uint16_t>(41000 + i), kHost, 2222, SYN)});
  std::string pcap = probes_pcap(c, false);
  // pcap_file writes a record a second; move them `apart` seconds (the records' ts_sec, after the header).
  size_t at = 24;
  for (int i = 0; i < connections; ++i) {
    const uint32_t t = 1'700'000'000u + static_cast<uint32_t>(i) * apart;
    for (int k = 0; k < 4; ++k) pcap[at + k] = static_cast<char>(t >> (8 * k));
    at += 16 + c[i].ip.size();
  }
  return pcap;
}

// --verify runs the rate-limit callout the import's filter names, as lfpd does, on the capture's clock:
// the 6th connection within 30 s and those after it are rejected by the kernel and blocked by LFP.
TEST(ImportVerify, UfwLimitDecidesAsTheKernelWithTheRateLimitCalloutRun) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  const std::string rules = sb.write_file("ufw.rules", fixture("ufw.rules"));
  const std::string pcap = sb.write_file("limit.pcap", limit_pcap(8, 1));
  const Verified v = verify(sb, "iptables", rules, pcap);
  ASSERT_EQ(v.run.code, 0) << v.run.err << v.run.out;
  const json& r = v.report["verify"];
  EXPECT_EQ(r["compared"], 8) << r["skipped"].dump();
  EXPECT_EQ(r["original_dropped"], 3);  // the 6th, 7th and 8th
  EXPECT_EQ(r["different"], 0) << differences_text(r);  // (without the callout: 5, blocked by its filter)
}

// The same connections 10 s apart: on the host never 6 in 30 s, so the original let each in, and so
// does LFP on the capture's clock. Replayed into the kernel they come within a millisecond, and its
// xt_recent rejects the 6th and 7th: those two are not compared, each with why.
TEST(ImportVerify, ARateLimitVerdictOfTheReplaysClockIsNotCompared) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  const std::string rules = sb.write_file("ufw.rules", fixture("ufw.rules"));
  const std::string pcap = sb.write_file("limit.pcap", limit_pcap(7, 10));
  const Verified v = verify(sb, "iptables", rules, pcap);
  ASSERT_EQ(v.run.code, 0) << v.run.err << v.run.out;
  const json& r = v.report["verify"];
  EXPECT_EQ(r["compared"], 5) << r["skipped"].dump();
  EXPECT_EQ(r["original_dropped"], 0);
  EXPECT_EQ(r["different"], 0) << differences_text(r);
  ASSERT_EQ(r["skipped"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r["skipped"][i]["index"], i + 5);
    EXPECT_NE(r["skipped"][i]["reason"].get<std::string>().find("decided by a rate limit on the capture's clock (\"INPUT line 106 limit\")"),
              std::string::npos)
        << r["skipped"][i];
  }
}

// A Docker host (tests/data/import/docker.rules, docker.nft): its FORWARD rules are decided by docker0,
// which the capture does not show and verify's namespace does not route through. Such packets are
// not compared (once they agreed by accident: the original dropped them too, having no docker0),
// and the summary says how much was.
std::vector<Probe> docker_capture() {
  using namespace packet::tcp_flag;
  const IpAddr container = *packet::parse_ip("172.17.0.2");
  return {{tcp(kFar, 40001, kHost, 22, SYN)},          // 0: INPUT: ACCEPT
          {tcp(kFar, 40002, kHost, 80, SYN)},          // 1: INPUT policy: DROP
          {tcp(kRange, 40003, container, 80, SYN)},    // 2: forwarded, the published port: needs docker0
          {tcp(kRange, 40004, container, 81, SYN)},    // 3: forwarded: needs docker0 (FORWARD policy DROP past it)
          {tcp(kFar, 40005, container, 80, SYN)}};     // 4: forwarded, DOCKER-USER drops 198.51.100.0/24 first: DROP
}

void expect_docker_coverage(const Verified& v, size_t packets) {
  ASSERT_EQ(v.run.code, 0) << v.run.err << v.run.out;
  const json& r = v.report["verify"];
  EXPECT_EQ(r["packets"], packets);
  EXPECT_EQ(r["compared"], 3) << r["skipped"].dump();
  EXPECT_EQ(r["different"], 0) << differences_text(r);
  EXPECT_EQ(r["original_dropped"], 2);  // 1 and 4
  EXPECT_EQ(r["not_compared"], 2);
  EXPECT_DOUBLE_EQ(r["compared_fraction"].get<double>(), 3.0 / 5.0);
  EXPECT_EQ(r["needs_interface"], json({{"docker0", 2}}));
  ASSERT_EQ(r["skipped"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r["skipped"][i]["index"], i + 2);
    EXPECT_NE(r["skipped"][i]["reason"].get<std::string>().find("needs interface docker0, which the capture does not show"),
              std::string::npos)
        << r["skipped"][i];
  }
}

TEST(ImportVerify, ForwardedPacketsAnInterfaceDecidesAreCountedNotComparedByAccident) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  const auto pkts = docker_capture();
  const std::string rules = sb.write_file("docker.rules", fixture("docker.rules"));
  const std::string pcap = sb.write_file("capture.pcap", probes_pcap(pkts, false));
  expect_docker_coverage(verify(sb, "iptables", rules, pcap), pkts.size());

  // The text summary gives the fraction compared and what the rest needs.
  const RunResult t = sb.run(lfp_cli_path() + " import iptables " + rules + " --verify " + pcap + " --local 10.77.0.1",
                             {.side = Side::A, .timeout = std::chrono::seconds(60)});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("compared 3 of 5 packets (60.0%): 3 decided alike, 0 differently; 2 not compared "
                       "(2 need interface docker0, which the capture does not show)"),
            std::string::npos)
      << t.out;
  EXPECT_TRUE(leftover_namespaces().empty());
}

TEST(ImportVerify, NftRulesOnAnInterfaceLoadAndAreCountedNotCompared) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  // `oif "docker0"` is an index: nft lists it only where docker0 exists (B, here), and verify loads it
  // only because it makes docker0 in its namespace.
  const std::string nft = sb.write_file("docker.nft", fixture("docker.nft"));
  const RunResult listed = sb.run("ip link add docker0 type veth peer name docker0p && nft -f " + nft + " && nft -j list ruleset",
                                  {.side = Side::B});
  ASSERT_TRUE(listed.ok()) << listed.err;
  const std::string rules = sb.write_file("ruleset.json", listed.out);
  const auto pkts = docker_capture();
  const std::string pcap = sb.write_file("capture.pcap", probes_pcap(pkts, true));
  expect_docker_coverage(verify(sb, "nft", rules, pcap), pkts.size());
}

TEST(ImportVerify, RulesTheKernelRefusesAreAnErrorAndLeaveNothing) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  // The importer reads a match it does not know as not expressible; the kernel has no such match.
  const std::string rules = sb.write_file("bad.rules", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m nosuchmatch -j DROP\nCOMMIT\n");
  const std::string pcap = sb.write_file("capture.pcap", probes_pcap(capture(false), false));
  const RunResult r = sb.run(lfp_cli_path() + " import iptables " + rules + " --verify " + pcap + " --local 10.77.0.1",
                             {.side = Side::A, .timeout = std::chrono::seconds(60)});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("the kernel refused the original rules"), std::string::npos) << r.err;
  EXPECT_TRUE(leftover_namespaces().empty());
  // A capture that cannot be read: exit 2 too.
  const RunResult m = sb.run(lfp_cli_path() + " import iptables " + rules + " --verify " + sb.tmpdir() + "/none.pcap",
                             {.side = Side::A, .timeout = std::chrono::seconds(60)});
  EXPECT_EQ(m.code, 2) << m.err;
  EXPECT_TRUE(leftover_namespaces().empty());
}

// Not live: refused before anything is made.
TEST(ImportVerify, FormatsWhoseSemanticsLinuxCannotRunAreRefused) {
  for (const std::string& args : {std::string("wfp ") + LFP_SOURCE_DIR + "/tests/data/import/wfp-filters.xml",
                                  std::string("opensnitch ") + LFP_SOURCE_DIR + "/tests/data/import/opensnitch"}) {
    const std::string cmd = lfp_cli_path() + " import " + args + " --verify /nonexistent.pcap 2>&1 >/dev/null";
    FILE* f = popen(cmd.c_str(), "r");
    ASSERT_TRUE(f);
    std::string err;
    char buf[512];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) err.append(buf, n);
    const int st = pclose(f);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << args << ": " << err;
    EXPECT_NE(err.find("cannot be run on Linux"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace lfp::test
