// SPDX-License-Identifier: MIT
// The packet layers on real traffic (docs/packet-layers.md): lfpd runs in the sandbox's namespace B
// with --packet-layers, so its BPF programs sit at B's netfilter hooks only; A sends and receives
// real packets over the veth pair. Nothing outside the sandbox is touched.
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

json filter(const std::string& key, const std::string& name, const std::string& layer, const std::string& action,
            json conditions) {
  return {{"key", key}, {"name", name}, {"layer", layer}, {"action", action}, {"conditions", std::move(conditions)}};
}

class PacketLive : public LiveTest {
 protected:
  void SetUpLive() override {
    std::vector<std::string> args = {"--cgroup", "none", "--packet-layers", "--bpf-pin", sb_->mount_bpffs()};
    for (auto& a : more_args()) args.push_back(a);
    lfpd_ = std::make_unique<Daemon>(args, sb_->ns_path(Side::B));
  }
  virtual std::vector<std::string> more_args() const { return {}; }
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  void apply(json filters) { lfpd_->connect()->apply({{"filters", std::move(filters)}}); }

  std::string addr(Side s, bool v6) const { return v6 ? "[" + sb_->ip6(s) + "]" : sb_->ip4(s); }
  // UDP "hi" servers on B.
  void serve_udp(std::initializer_list<int> ports) {
    for (int p : ports) {
      for (int six : {0, 1}) {  // one at a time: the port is listened on once per family
        sb_->spawn("exec socat UDP" + std::string(six ? "6" : "4") + "-RECVFROM:" + std::to_string(p) +
                       (six ? ",fork,shut-null,ipv6only=1" : ",fork,shut-null") + " SYSTEM:'echo hi'",
                   {.side = Side::B});
        bool up = false;
        for (int i = 0; i < 250 && !up; ++i)
          up = !sb_->run("ss -Hlun" + std::string(six ? "6" : "4") + " sport = :" + std::to_string(p), {.side = Side::B})
                    .out.empty();
        ASSERT_TRUE(up) << "no UDP server on " << p;
      }
    }
  }
  // A datagram of `size` bytes from `from` to the other side's port; the answer it got. After its stdin
  // ends socat waits up to 3 s for the answer (-t), and the empty datagram the server sends after it
  // (shut-null) ends that wait at once (null-eof).
  RunResult udp(Side from, int port, bool v6 = false, int size = 1) {
    const Side to = from == Side::A ? Side::B : Side::A;
    return sb_->run("head -c " + std::to_string(size) + " /dev/zero | socat -t 3 -T 3 - UDP" + (v6 ? "6:" : "4:") + addr(to, v6) +
                        ":" + std::to_string(port) + ",null-eof",
                    {.side = from, .timeout = std::chrono::seconds(6)});
  }
  // Answered, trying up to three times: a "hi" server forks a shell per datagram, which a loaded
  // machine can make late. (A blocked datagram stays blocked: checks that expect no answer try once.)
  bool udp_answered(Side from, int port, bool v6 = false, int size = 1) {
    for (int i = 0; i < 3; ++i)
      if (answered(udp(from, port, v6, size))) return true;
    return false;
  }
  RunResult ping(Side from, bool v6, int size = 56) {
    const Side to = from == Side::A ? Side::B : Side::A;
    return sb_->run(std::string("ping -c 1 -W 2 -s ") + std::to_string(size) + (v6 ? " -6 " : " -4 ") +
                        (v6 ? sb_->ip6(to) : sb_->ip4(to)),
                    {.side = from});
  }
  // The first drop event the filter made (waiting for lfpd to drain the kernel's ring).
  json drop_by(const std::string& key) {
    for (int i = 0; i < 40; ++i) {
      const json ev = wait_for_events(*lfpd_->connect(), {{{"field", "NET_EVENT_TYPE"}, {"value", "CLASSIFY_DROP"}},
                                                          {{"field", "NET_EVENT_TYPE"}, {"value", "CLASSIFY_DROP_MAC"}}});
      for (const auto& e : ev)
        if (e.value("filter_key", "") == key) return e;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return json();
  }

  // The lfp command line, talking to this test's lfpd.
  std::string lfp() const {
    return lfp_cli_path() + " --socket " + lfpd_->socket();
  }
  // `lfp replay` of a capture taken in B through the policy: how many packets each filter blocked, by
  // "LAYER FILTER_KEY", and how many nothing blocked ("permitted").
  std::map<std::string, int> replay_blocks(const json& policy, const std::string& pcap) {
    std::map<std::string, int> blocked;
    const RunResult r = sb_->run(lfp() + " replay --policy " + sb_->write_file("policy.json", policy.dump()) + " --pcap " +
                                     pcap + " --local " + sb_->ip4(Side::B) + " --local " + sb_->ip6(Side::B) + " --json",
                                 {.side = Side::B});
    EXPECT_TRUE(r.ok()) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const json packet = json::parse(line);
      const json& last = packet["layers"].back();  // (a BLOCK ends the walk)
      blocked[last["action"] == "BLOCK" ? last["layer"].get<std::string>() + " " + last["filter"].get<std::string>()
                                        : "permitted"]++;
    }
    return blocked;
  }

  std::unique_ptr<Daemon> lfpd_;
};

const std::string kF1 = "5e11f000-0000-4000-8000-0000000000a1", kF2 = "5e11f000-0000-4000-8000-0000000000a2";

// The tests below run twice: once in the kernel, once through the user-space path (lfpd
// --packet-queue --packet-userspace: every packet layer that holds a filter is decided by the engine
// in lfpd, and the kernel's programs step aside). Both must decide alike; the second must really
// have decided in user space (its queue's counters say so).
class PacketPaths : public PacketLive, public ::testing::WithParamInterface<bool> {
 protected:
  std::vector<std::string> more_args() const override {
    if (!GetParam()) return {};
    return {"--packet-queue", "7400", "--packet-queues", "2", "--packet-userspace"};
  }
  void TearDown() override {
    if (GetParam() && lfpd_) {
      const json q = lfpd_->connect()->call("packet_queue");
      EXPECT_GT(q["packets"].get<uint64_t>(), 0u) << q.dump();
      EXPECT_GT(q["dropped"].get<uint64_t>(), 0u) << q.dump();
      EXPECT_NE(q["queued_hooks"], 0) << q.dump();
    }
    PacketLive::TearDown();
  }
};
INSTANTIATE_TEST_SUITE_P(KernelAndUserSpace, PacketPaths, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "UserSpace" : "Kernel"; });

TEST_P(PacketPaths, InboundTransportBlocksAUdpPortV4AndV6AndTheDropIsAnEvent) {
  serve_udp({9998, 9999});
  ASSERT_TRUE(udp_answered(Side::A, 9999));  // before any filter
  ASSERT_TRUE(udp_answered(Side::A, 9999, true));
  apply({filter(kF1, "no udp 9999 v4", "INBOUND_TRANSPORT_V4", "BLOCK", {when("IP_PROTOCOL", "UDP"), when("IP_LOCAL_PORT", 9999)}),
         filter(kF2, "no udp 9999 v6", "INBOUND_TRANSPORT_V6", "BLOCK", {when("IP_PROTOCOL", "UDP"), when("IP_LOCAL_PORT", 9999)})});
  // The flow answered a moment ago: its next datagram meets the new policy (the decision cache is per generation).
  EXPECT_FALSE(answered(udp(Side::A, 9999)));
  EXPECT_TRUE(udp_answered(Side::A, 9998));
  EXPECT_FALSE(answered(udp(Side::A, 9999, true)));
  EXPECT_TRUE(udp_answered(Side::A, 9998, true));
  const json ev = drop_by(kF1);
  ASSERT_FALSE(ev.is_null());
  EXPECT_EQ(ev["layer"], "INBOUND_TRANSPORT_V4");
  EXPECT_EQ(ev["local_port"], 9999);
  EXPECT_EQ(ev["remote_address"], sb_->ip4(Side::A));
  EXPECT_EQ(ev["direction"], "INBOUND");
  EXPECT_FALSE(ev.contains("pid"));  // a packet names no process
  EXPECT_EQ(drop_by(kF2)["layer"], "INBOUND_TRANSPORT_V6");
  // Taking the filter away lets the flow through again.
  lfpd_->connect()->remove("filter", kF1);
  EXPECT_TRUE(udp_answered(Side::A, 9999));
}

TEST_P(PacketPaths, OutboundTransportAndIpPacketBlockWhatTheHostSends) {
  ASSERT_TRUE(serve_hi(*sb_, Side::A, {8080, 8081}));
  apply({filter(kF1, "B may not reach 8081", "OUTBOUND_TRANSPORT_V4", "BLOCK", {when("IP_REMOTE_PORT", 8081)}),
         filter(kF2, "B sends nothing to A over v6", "OUTBOUND_IPPACKET_V6", "BLOCK", {when("IP_REMOTE_ADDRESS", sb_->ip6(Side::A))})});
  auto tcp = [&](int port, bool v6) {
    return sb_->run("socat -T2 - TCP" + std::string(v6 ? "6:" : "4:") + addr(Side::A, v6) + ":" + std::to_string(port) +
                        ",connect-timeout=2 </dev/null",
                    {.side = Side::B, .timeout = std::chrono::seconds(6)});
  };
  EXPECT_TRUE(answered(tcp(8080, false)));
  EXPECT_FALSE(answered(tcp(8081, false)));  // (TCP retries a SYN dropped at LOCAL_OUT: connect() times out)
  EXPECT_FALSE(ping(Side::B, true).ok());
  EXPECT_TRUE(ping(Side::B, false).ok());
  const json ev = drop_by(kF1);
  EXPECT_EQ(ev["layer"], "OUTBOUND_TRANSPORT_V4");
  EXPECT_EQ(ev["direction"], "OUTBOUND");
  EXPECT_EQ(ev["remote_port"], 8081);
  EXPECT_EQ(drop_by(kF2)["layer"], "OUTBOUND_IPPACKET_V6");
}

TEST_F(PacketLive, FragmentsAreSeenAtIpPacketAndReassembledAbove) {
  serve_udp({9000});
  // Above INBOUND_IPPACKET the datagram is whole: a transport filter on IS_FRAGMENT never matches.
  apply({filter(kF1, "no fragments at transport", "INBOUND_TRANSPORT_V4", "BLOCK",
                {when("FLAGS", "IS_FRAGMENT", "FLAGS_ALL_SET")})});
  EXPECT_TRUE(udp_answered(Side::A, 9000, false, 4000));
  apply({filter(kF2, "no fragments", "INBOUND_IPPACKET_V4", "BLOCK", {when("FLAGS", "IS_FRAGMENT", "FLAGS_ALL_SET")}),
         filter("5e11f000-0000-4000-8000-0000000000a3", "no v6 fragments", "INBOUND_IPPACKET_V6", "BLOCK",
                {when("FLAGS", "IS_FRAGMENT", "FLAGS_ALL_SET")})});
  EXPECT_FALSE(answered(udp(Side::A, 9000, false, 4000)));  // 3 fragments over a 1500-byte MTU
  EXPECT_TRUE(udp_answered(Side::A, 9000, false, 1000));   // one packet
  EXPECT_FALSE(ping(Side::A, true, 3000).ok());
  EXPECT_TRUE(ping(Side::A, true).ok());
  EXPECT_EQ(drop_by(kF2)["layer"], "INBOUND_IPPACKET_V4");
  EXPECT_TRUE(drop_by(kF1).is_null());
}

// A UDP datagram to a closed port draws an ICMP port-unreachable error; filters at the ICMP error
// layers stop it on its way out of B, or on its way into B (by the port of the packet it quotes).
TEST_P(PacketPaths, IcmpErrorsForAFlowAreStoppedByTheQuotedPacket) {
  auto refused = [](const RunResult& r) { return r.err.find("refused") != std::string::npos; };
  ASSERT_TRUE(refused(udp(Side::A, 7777)));  // B answers with an ICMP error: "Connection refused"
  ASSERT_TRUE(refused(udp(Side::B, 7777)));  // and so does A
  apply({filter(kF1, "B sends no port unreachable", "OUTBOUND_ICMP_ERROR_V4", "BLOCK",
                {when("ICMP_TYPE", 3), when("ICMP_CODE", 3)}),
         filter(kF2, "B hears no errors about port 7777", "INBOUND_ICMP_ERROR_V4", "BLOCK",
                {when("EMBEDDED_REMOTE_PORT", 7777), when("EMBEDDED_PROTOCOL", "UDP")})});
  EXPECT_FALSE(refused(udp(Side::A, 7777)));
  EXPECT_FALSE(refused(udp(Side::B, 7777)));
  EXPECT_TRUE(refused(udp(Side::B, 7778)));  // another port's error still arrives
  EXPECT_EQ(drop_by(kF1)["layer"], "OUTBOUND_ICMP_ERROR_V4");
  EXPECT_EQ(drop_by(kF2)["layer"], "INBOUND_ICMP_ERROR_V4");
  // ICMP errors pass the ICMP error layers instead of the transport layers: blocking all ICMP at
  // INBOUND_TRANSPORT stops an echo request, not an error.
  apply({filter("5e11f000-0000-4000-8000-0000000000a3", "no ICMP at transport", "INBOUND_TRANSPORT_V4", "BLOCK",
                {when("IP_PROTOCOL", "ICMP")})});
  EXPECT_FALSE(ping(Side::A, false).ok());
  EXPECT_TRUE(refused(udp(Side::B, 7778)));
}

// The MAC frame layers, on every interface of B's (tcx): by the peer's MAC and EtherType, inbound and
// outbound, on real traffic; by VLAN on tagged frames A writes to the wire itself (this kernel has no
// 802.1Q devices), seen in the drop events.
TEST_F(PacketLive, MacFramesByMacEtherTypeAndVlan) {
  auto mac_of = [&](Side s) {
    const std::string link = sb_->run("ip -o link show " + sb_->ifname(s), {.side = s}).out;
    const size_t at = link.find("link/ether ");
    return at == std::string::npos ? std::string() : link.substr(at + 11, 17);
  };
  const std::string mac_a = mac_of(Side::A), mac_b = mac_of(Side::B);
  ASSERT_EQ(mac_a.size(), 17u);
  apply({filter(kF1, "no VLAN 100", "INBOUND_MAC_FRAME_ETHERNET", "BLOCK", {when("VLAN_ID", 100)}),
         filter(kF2, "no IPv6 from A", "INBOUND_MAC_FRAME_ETHERNET", "BLOCK",
                {when("MAC_REMOTE_ADDRESS", mac_a), when("ETHER_TYPE", 0x86DD)})});
  EXPECT_FALSE(ping(Side::A, true).ok());
  EXPECT_TRUE(ping(Side::A, false).ok());
  const json ev = drop_by(kF2);
  EXPECT_EQ(ev["type"], "CLASSIFY_DROP_MAC");
  EXPECT_EQ(ev["layer"], "INBOUND_MAC_FRAME_ETHERNET");
  EXPECT_EQ(ev["remote_mac"], mac_a);
  const std::string local_mac = ev.value("local_mac", "");
  EXPECT_TRUE(local_mac == mac_b || local_mac.rfind("33:33:", 0) == 0) << local_mac;  // B's, or a v6 multicast MAC
  EXPECT_EQ(ev["ether_type"], 0x86DD);
  EXPECT_EQ(ev["vlan_id"], 0);

  // Frames tagged 100 and 200 (802.1Q), written to A's end of the veth.
  auto frame = [&](int vlan) {
    std::string f;
    for (const std::string& m : {mac_b, mac_a})
      for (size_t i = 0; i < 17; i += 3) f += static_cast<char>(std::stoi(m.substr(i, 2), nullptr, 16));
    f += std::string("\x81\x00", 2) + static_cast<char>(vlan >> 8) + static_cast<char>(vlan & 0xff) + std::string("\x08\x00", 2);
    f += std::string(46, '\0');
    return sb_->write_file("frame" + std::to_string(vlan), f);
  };
  for (int vlan : {200, 100})
    ASSERT_TRUE(sb_->run("socat -u OPEN:" + frame(vlan) + " INTERFACE:" + sb_->ifname(Side::A), {.side = Side::A}).ok());
  const json tagged = drop_by(kF1);
  EXPECT_EQ(tagged["vlan_id"], 100) << tagged.dump();
  EXPECT_EQ(tagged["ether_type"], 0x0800);
  const json all = wait_for_events(*lfpd_->connect(), {{{"field", "NET_EVENT_TYPE"}, {"value", "CLASSIFY_DROP_MAC"}}});
  for (const auto& e : all) EXPECT_NE(e.value("vlan_id", 0), 200) << "the frame tagged 200 was dropped: " << e.dump();

  // Outbound: B sends no IPv4 frame to A, so A's pings get no answer.
  lfpd_->connect()->remove("filter", kF2);
  bool v6_back = false;  // (A's neighbour entry for B failed while the solicitations were dropped: it retries)
  for (int i = 0; i < 5 && !(v6_back = ping(Side::A, true).ok()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(v6_back);
  apply({filter("5e11f000-0000-4000-8000-0000000000a3", "no IPv4 to A", "OUTBOUND_MAC_FRAME_ETHERNET", "BLOCK",
                {when("MAC_REMOTE_ADDRESS", mac_a), when("ETHER_TYPE", 0x0800)})});
  EXPECT_FALSE(ping(Side::A, false).ok());
  EXPECT_TRUE(ping(Side::A, true).ok());
  EXPECT_EQ(drop_by("5e11f000-0000-4000-8000-0000000000a3")["direction"], "OUTBOUND");
}

// INTERFACE_TYPE at the IP layers (loopback against the veth), and at the MAC layers the interface's
// own MAC (INTERFACE_MAC_ADDRESS) and L2_FLAGS: B drops the IPv4 fragments that reach its veth.
TEST_P(PacketPaths, InterfaceTypeInterfaceMacAndL2Flags) {
  const std::string link = sb_->run("ip -o link show " + sb_->ifname(Side::B), {.side = Side::B}).out;
  const size_t at = link.find("link/ether ");
  ASSERT_NE(at, std::string::npos) << link;
  const std::string mac_b = link.substr(at + 11, 17);
  const std::string mac_a = [&] {
    const std::string l = sb_->run("ip -o link show " + sb_->ifname(Side::A), {.side = Side::A}).out;
    return l.substr(l.find("link/ether ") + 11, 17);
  }();
  apply({filter(kF1, "no ICMP over loopback", "INBOUND_TRANSPORT_V4", "BLOCK",
                {when("INTERFACE_TYPE", "SOFTWARE_LOOPBACK"), when("IP_PROTOCOL", "ICMP")}),
         filter(kF2, "no ICMPv6 over Ethernet", "INBOUND_TRANSPORT_V6", "BLOCK",
                {when("INTERFACE_TYPE", "ETHERNET_CSMACD"), when("IP_PROTOCOL", "ICMPV6"), when("IP_LOCAL_PORT", 128)}),
         filter("5e11f000-0000-4000-8000-0000000000a3", "no fragments into B's veth", "INBOUND_MAC_FRAME_ETHERNET", "BLOCK",
                {when("INTERFACE_MAC_ADDRESS", mac_b), when("L2_FLAGS", "IS_NATIVE_ETHERNET|IS_IP_FRAGMENT_GROUP", "FLAGS_ALL_SET")}),
         filter("5e11f000-0000-4000-8000-0000000000a4", "another interface's MAC: never", "INBOUND_MAC_FRAME_ETHERNET",
                "BLOCK", {when("INTERFACE_MAC_ADDRESS", mac_a)})});
  EXPECT_FALSE(sb_->run("ping -c 1 -W 2 127.0.0.1", {.side = Side::B}).ok());
  EXPECT_TRUE(sb_->run("ping -c 1 -W 2 ::1", {.side = Side::B}).ok());
  EXPECT_TRUE(ping(Side::A, false).ok());
  EXPECT_FALSE(ping(Side::A, true).ok());
  EXPECT_FALSE(ping(Side::A, false, 3000).ok());  // fragments over the 1500-byte MTU
  EXPECT_EQ(drop_by(kF1)["interface_index"], 1);
  EXPECT_EQ(drop_by(kF2)["layer"], "INBOUND_TRANSPORT_V6");
  EXPECT_EQ(drop_by("5e11f000-0000-4000-8000-0000000000a3")["layer"], "INBOUND_MAC_FRAME_ETHERNET");
  EXPECT_TRUE(drop_by("5e11f000-0000-4000-8000-0000000000a4").is_null());
}

// lfp replay decides as the kernel did: traffic into B is captured (tcpdump, before B's hooks) while
// the kernel enforces a policy at several layers; replaying the capture through the same policy
// blocks the same packets at the same layers by the same filters, counted per filter.
TEST_F(PacketLive, ReplayOfACaptureDecidesAsTheKernelDid) {
  serve_udp({9000, 9001, 9002});
  const json policy = {{"filters",
                        {filter(kF1, "no 9001", "INBOUND_TRANSPORT_V4", "BLOCK", {when("IP_LOCAL_PORT", 9001)}),
                         filter(kF2, "no fragments", "INBOUND_IPPACKET_V4", "BLOCK", {when("FLAGS", "IS_FRAGMENT", "FLAGS_ALL_SET")}),
                         filter("5e11f000-0000-4000-8000-0000000000a3", "no datagrams to 9002", "DATAGRAM_DATA_V4", "BLOCK",
                                {when("IP_LOCAL_PORT", 9002), when("DIRECTION", 1)}),
                         filter("5e11f000-0000-4000-8000-0000000000a4", "no echo from A", "INBOUND_TRANSPORT_V4", "BLOCK",
                                {when("IP_PROTOCOL", "ICMP"), when("IP_LOCAL_PORT", 8) /* echo request */})}}};
  lfpd_->connect()->apply(policy);
  const std::string pcap = sb_->tmpdir() + "/in.pcap";
  Process dump = sb_->spawn("exec tcpdump -n -U -Q in -i " + sb_->ifname(Side::B) + " -w " + pcap, {.side = Side::B});
  for (int i = 0; i < 250 && dump.err().find("listening") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(dump.err().find("listening"), std::string::npos) << "tcpdump did not start: " << dump.err();
  std::map<int, bool> live;
  for (int round = 0; round < 2; ++round)
    for (int port : {9000, 9001, 9002})  // (a retry adds as many packets to both sides)
      live[port] = port == 9000 ? udp_answered(Side::A, port) : answered(udp(Side::A, port));
  EXPECT_FALSE(answered(udp(Side::A, 9000, false, 3000)));  // fragmented
  EXPECT_FALSE(ping(Side::A, false).ok());
  EXPECT_EQ(live, (std::map<int, bool>{{9000, true}, {9001, false}, {9002, false}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  dump.kill(SIGINT);
  dump.wait();

  // What the kernel dropped, by filter.
  std::map<std::string, int> kernel;
  json events;
  for (int i = 0; i < 40; ++i) {  // until lfpd has drained every drop (the count stops growing)
    const json now = wait_for_events(*lfpd_->connect(), {{{"field", "NET_EVENT_TYPE"}, {"value", "CLASSIFY_DROP"}}});
    if (now.size() == events.size() && i > 4) break;
    events = now;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& e : events) kernel[e["layer"].get<std::string>() + " " + e.value("filter_key", "")]++;
  // What the replay blocks, by filter.
  std::map<std::string, int> replay = replay_blocks(policy, pcap);
  replay.erase("permitted");
  EXPECT_EQ(replay, kernel);
  EXPECT_EQ(kernel.size(), 4u);  // every filter blocked something
}

// lfp capture: while it runs, lfpd keeps what the packet layers drop, and `capture stop` writes it as
// pcap files beside the bundle (IP packets and frames apart: a pcap has one link type). Replayed
// through the same policy, every kept packet is blocked by the filter that dropped it.
TEST_F(PacketLive, CaptureKeepsTheDroppedPacketsAsPcap) {
  serve_udp({9000, 9001});
  const json policy = {{"filters",
                        {filter(kF1, "no 9001", "INBOUND_TRANSPORT_V4", "BLOCK", {when("IP_LOCAL_PORT", 9001)}),
                         filter(kF2, "no IPv6 frames", "INBOUND_MAC_FRAME_ETHERNET", "BLOCK", {when("ETHER_TYPE", 0x86DD)})}}};
  lfpd_->connect()->apply(policy);
  EXPECT_FALSE(answered(udp(Side::A, 9001)));  // before the capture: not kept
  const std::string bundle = sb_->tmpdir() + "/capture.json";
  ASSERT_TRUE(sb_->run(lfp() + " capture start " + bundle, {.side = Side::B}).ok());
  EXPECT_FALSE(answered(udp(Side::A, 9001, false, 100)));
  EXPECT_FALSE(answered(udp(Side::A, 9001, false, 100)));
  EXPECT_TRUE(udp_answered(Side::A, 9000));
  EXPECT_FALSE(ping(Side::A, true).ok());
  const RunResult stop = sb_->run(lfp() + " capture stop " + bundle + " --json", {.side = Side::B});
  ASSERT_TRUE(stop.ok()) << stop.err;
  std::ifstream in(bundle);
  const json b = json::parse(in);
  std::map<std::string, std::string> files;
  for (const auto& f : b["packets"]["files"]) files[f["link"]] = f["file"];
  ASSERT_TRUE(files.count("RAW") && files.count("ETHERNET")) << b["packets"].dump();
  // The two datagrams to 9001 during the capture (not the one before it), each dropped by kF1; and the
  // IPv6 frames, each by kF2.
  EXPECT_EQ(replay_blocks(policy, files["RAW"]), (std::map<std::string, int>{{"INBOUND_TRANSPORT_V4 " + kF1, 2}}));
  const auto frames = replay_blocks(policy, files["ETHERNET"]);
  EXPECT_EQ(frames.size(), 1u);
  EXPECT_GT(frames.count("INBOUND_MAC_FRAME_ETHERNET " + kF2) ? frames.at("INBOUND_MAC_FRAME_ETHERNET " + kF2) : 0, 0);
}

// A third namespace, C, behind B: B routes between A and C (a /25 of the sandbox's /24 and a /64 of
// its own), so that traffic from A to C crosses B's FORWARD hook. Removed with the test (and, should
// the test be killed, by the next sandbox's sweep: the name carries the sandbox's).
class Routed {
 public:
  explicit Routed(Sandbox& sb) : sb_(sb), name_(sb.name() + "-c") {
    const std::string a4 = sb.ip4(Side::A), net = a4.substr(0, a4.rfind('.') + 1), a6 = sb.ip6(Side::A);
    const std::string net6 = a6.substr(0, a6.rfind("::")) + ":1::";
    ip4_ = net + "130";
    ip6_ = net6 + "2";
    run_host("ip netns add " + name_);
    created_ = true;
    auto check = [&](const RunResult& r, const char* what) {
      if (!r.ok()) throw std::runtime_error(std::string(what) + ": " + r.err);
    };
    check(sb.run("set -e; ip link add veth-c type veth peer name veth-r netns " + name_ +
                     "; ip link set veth-c up; ip addr add " + net + "129/25 dev veth-c; ip addr add " + net6 +
                     "1/64 dev veth-c nodad; sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
                 {.side = Side::B}),
          "B's side");
    check(in_c("set -e; ip link set lo up; ip link set veth-r up; ip addr add " + ip4_ + "/25 dev veth-r; ip addr add " +
               ip6_ + "/64 dev veth-r nodad; ip route add default via " + net + "129; ip -6 route add default via " +
               net6 + "1"),
          "C");
    check(sb.run("set -e; ip route add " + net + "128/25 via " + sb.ip4(Side::B) + "; ip -6 route add " + net6 +
                     "/64 via " + sb.ip6(Side::B),
                 {.side = Side::A}),
          "A's routes");
    for (int i = 0; i < 20 && !(ping(ip4_) && ping(ip6_)); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ~Routed() {
    if (created_) run_host("ip netns pids " + name_ + " | xargs -r kill -9; ip netns del " + name_);
  }
  RunResult in_c(const std::string& cmd) { return sb_.run("ip netns exec " + name_ + " sh -c '" + cmd + "'", {.side = Side::A}); }
  bool ping(const std::string& to, int size = 56) {
    return sb_.run("ping -c 1 -W 2 -s " + std::to_string(size) + " " + to, {.side = Side::A}).ok();
  }
  const std::string& ip4() const { return ip4_; }
  const std::string& ip6() const { return ip6_; }

 private:
  void run_host(const std::string& cmd) {
    if (std::system(cmd.c_str()) != 0 && !created_) throw std::runtime_error("cannot run: " + cmd);
  }
  Sandbox& sb_;
  std::string name_, ip4_, ip6_;
  bool created_ = false;
};

TEST_P(PacketPaths, IpForwardDecidesWhatTheRouterForwardsAndOnlyThat) {
  Routed c(*sb_);
  ASSERT_TRUE(c.ping(c.ip4()) && c.ping(c.ip6())) << "A does not reach C through B";
  // Forwarded packets are not the host's: INBOUND_IPPACKET at B does not see A's packets to C.
  apply({filter(kF1, "nothing from A for B itself", "INBOUND_IPPACKET_V4", "BLOCK",
                {when("IP_REMOTE_ADDRESS", sb_->ip4(Side::A))})});
  EXPECT_FALSE(ping(Side::A, false).ok());
  EXPECT_TRUE(c.ping(c.ip4()));
  // IPFORWARD: by source and destination (v4), by the outgoing interface (v6).
  const std::string out_if = sb_->run("ip -o link show veth-c | cut -d: -f1", {.side = Side::B}).out;
  apply({filter(kF2, "A may not reach C", "IPFORWARD_V4", "BLOCK",
                {when("IP_SOURCE_ADDRESS", sb_->ip4(Side::A)), when("IP_DESTINATION_ADDRESS", c.ip4())}),
         filter("5e11f000-0000-4000-8000-0000000000a3", "nothing out of veth-c", "IPFORWARD_V6", "BLOCK",
                {when("DESTINATION_INTERFACE_INDEX", std::stoi(out_if))})});
  EXPECT_FALSE(c.ping(c.ip4()));
  EXPECT_FALSE(c.ping(c.ip6()));
  const json ev = drop_by(kF2);
  EXPECT_EQ(ev["layer"], "IPFORWARD_V4");
  EXPECT_EQ(ev["local_address"], sb_->ip4(Side::A));  // the source
  EXPECT_EQ(ev["remote_address"], c.ip4());
  EXPECT_FALSE(ev.contains("direction"));
  // B reassembles what it forwards: IPFORWARD sees a fragmented datagram whole.
  lfpd_->connect()->remove("filter", kF2);
  apply({filter("5e11f000-0000-4000-8000-0000000000a4", "no forwarded fragments", "IPFORWARD_V4", "BLOCK",
                {when("FLAGS", "IS_FRAGMENT", "FLAGS_ALL_SET")})});
  EXPECT_TRUE(c.ping(c.ip4(), 3000));
}

// A callout at a packet layer (the example plugin's, at INBOUND_TRANSPORT_V4) with lfpd
// --packet-queue: only the hook whose layer needs user space is queued (LOCAL_IN, v4), and the callout
// decides each packet there; the other hooks stay in the kernel.
class PacketCallout : public PacketLive {
 protected:
  std::vector<std::string> more_args() const override {
    return {"--packet-queue", "7410", "--callout", LFP_EXAMPLE_CALLOUT};
  }
};

TEST_F(PacketCallout, ACalloutAtInboundTransportDecidesEachPacketInLfpd) {
  serve_udp({9000, 9001});
  const std::string callout = "4c460000-0000-4000-8000-0000000000cd";
  json policy = callout_policy("INBOUND_TRANSPORT_V4", callout, "block-odd:IP_LOCAL_PORT block:SECRET",
                               {when("IP_PROTOCOL", "UDP")});
  policy["filters"].push_back(filter(kF1, "B sends nothing to A over v6", "OUTBOUND_IPPACKET_V6", "BLOCK",
                                     {when("IP_REMOTE_ADDRESS", sb_->ip6(Side::A))}));
  lfpd_->connect()->apply(policy);
  const json q = lfpd_->connect()->call("packet_queue");
  EXPECT_EQ(q["queued_hooks"], 1 << (1 * 2));  // LOCAL_IN v4 only (LFP_QUEUED_HOOK)
  const RunResult shown = sb_->run(lfp() + " show packet-queue", {.side = Side::B});
  EXPECT_NE(shown.out.find("hooks decided in lfpd: LOCAL_IN/v4\n"), std::string::npos) << shown.out << shown.err;
  EXPECT_TRUE(udp_answered(Side::A, 9000));
  EXPECT_FALSE(answered(udp(Side::A, 9001)));  // odd: the callout blocks it
  // By the packet's bytes: a datagram that holds SECRET to the even port.
  EXPECT_FALSE(answered(sb_->run("printf SECRET | socat -t 3 -T 3 - UDP4:" + sb_->ip4(Side::B) + ":9000,null-eof",
                                 {.side = Side::A, .timeout = std::chrono::seconds(6)})));
  EXPECT_FALSE(ping(Side::B, true).ok());  // decided in the kernel, as before
  const json ev = drop_by("ca110000-0000-4000-8000-000000000017");
  ASSERT_FALSE(ev.is_null());
  EXPECT_EQ(ev["layer"], "INBOUND_TRANSPORT_V4");
  EXPECT_EQ(ev["direction"], "INBOUND");
  EXPECT_EQ(drop_by(kF1)["layer"], "OUTBOUND_IPPACKET_V6");
  const json after = lfpd_->connect()->call("packet_queue");
  EXPECT_GE(after["dropped"].get<uint64_t>(), 2u) << after.dump();
  // The filter gone, nothing is queued any more and the odd port answers.
  lfpd_->connect()->remove("filter", "ca110000-0000-4000-8000-000000000017");
  EXPECT_EQ(lfpd_->connect()->call("packet_queue")["queued_hooks"], 0);
  EXPECT_TRUE(udp_answered(Side::A, 9001));
}

}  // namespace
}  // namespace lfp::test
