// SPDX-License-Identifier: MIT
// The ALE layers on real sockets: lfpd attaches its hooks to the sandbox's child cgroup, and real
// programs (socat, a copy of it under another path, a process running as nobody) connect, send,
// bind, listen and accept inside the sandbox's namespaces. Nothing outside the sandbox is touched.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <thread>

#include <bpf/bpf.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "lfp_kernel.h"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

json filter(const std::string& name, const std::string& layer, const std::string& action, json conditions,
            json extra = json::object()) {
  json f = {{"name", name}, {"layer", layer}, {"action", action}, {"conditions", std::move(conditions)}};
  f.update(extra);
  return f;
}

class AleLive : public LiveTest {
 protected:
  void SetUpLive() override {
    pins_ = sb_->mount_bpffs();
    start_daemon();
    // A TCP server on B that answers "hi", v4 and v6; and a UDP sink.
    sb_->spawn("exec socat TCP6-LISTEN:8080,fork,reuseaddr SYSTEM:'echo hi'", {.side = Side::B});
    sb_->spawn("exec socat TCP6-LISTEN:8081,fork,reuseaddr SYSTEM:'echo hi'", {.side = Side::B});
    ASSERT_TRUE(sb_->wait_for_port(Side::B, 8080));
    ASSERT_TRUE(sb_->wait_for_port(Side::B, 8081));
    socat2_ = sb_->tmpdir() + "/socat2";  // the same program under another path
    ASSERT_EQ(std::system(("cp /usr/bin/socat " + socat2_).c_str()), 0);
  }
  void TearDown() override {
    lfpd_.reset();  // before the sandbox goes
    sb_.reset();
  }
  void start_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--cgroup", sb_->cgroup(), "--bpf-pin", pins_};
    args.insert(args.end(), extra.begin(), extra.end());
    lfpd_ = std::make_unique<Daemon>(args);
  }
  void apply(json filters, json extra = json::object()) {
    json p = {{"filters", std::move(filters)}};
    p.update(extra);
    lfpd_->connect()->apply(p);
  }
  // Connects from A (in the cgroup) to B's port; true when the server's answer came back.
  RunResult connect(uint16_t port, bool v6 = false, const std::string& prog = "socat", std::optional<uid_t> uid = {}) {
    const std::string to = v6 ? "TCP6:[" + sb_->ip6(Side::B) + "]" : "TCP4:" + sb_->ip4(Side::B);
    return sb_->run(prog + " -T3 - " + to + ":" + std::to_string(port) + " </dev/null",
                    {.side = Side::A, .in_cgroup = true, .uid = uid, .timeout = std::chrono::seconds(8)});
  }
  static bool refused(const RunResult& r) { return !r.ok() && r.err.find("Operation not permitted") != std::string::npos; }
  // A client on `side` that sends a line every 100 ms to an echo server at `ip`:`port` and prints
  // the echoes (echoes() counts them).
  Process pinging_client(Side side, const std::string& ip, int port) {
    return sb_->spawn("(while :; do echo ping; sleep 0.1; done) | exec socat -T30 - TCP4:" + ip + ":" + std::to_string(port),
                      {.side = side, .in_cgroup = side == Side::A});
  }
  static long echoes(const Process& client) {
    const std::string o = client.out();
    return std::count(o.begin(), o.end(), '\n');
  }

  std::unique_ptr<Daemon> lfpd_;
  std::string pins_, socat2_;
};

TEST_F(AleLive, ConnectBlockedByAppPathV4AndV6) {
  apply({filter("no socat2 v4", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("ALE_APP_ID", socat2_)}),
         filter("no socat2 v6", "ALE_AUTH_CONNECT_V6", "BLOCK", {when("ALE_APP_ID", socat2_)})});
  EXPECT_TRUE(answered(connect(8080)));
  EXPECT_TRUE(refused(connect(8080, false, socat2_)));
  EXPECT_TRUE(answered(connect(8080, true)));
  EXPECT_TRUE(refused(connect(8080, true, socat2_)));
}

TEST_F(AleLive, ConnectBlockedByUserAndRemotePort) {
  apply({filter("nobody not to 8080", "ALE_AUTH_CONNECT_V4", "BLOCK",
                {when("ALE_USER_ID", {{"uids", {65534}}}), when("IP_REMOTE_PORT", 8080)}),
         filter("nobody not to 8080 v6", "ALE_AUTH_CONNECT_V6", "BLOCK",
                {when("ALE_USER_ID", {{"uids", {65534}}}), when("IP_REMOTE_PORT", 8080)})});
  EXPECT_TRUE(answered(connect(8080)));
  EXPECT_TRUE(refused(connect(8080, false, "socat", 65534)));
  EXPECT_TRUE(answered(connect(8081, false, "socat", 65534)));  // another port
  EXPECT_TRUE(refused(connect(8080, true, "socat", 65534)));
  EXPECT_TRUE(answered(connect(8081, true, "socat", 65534)));
}

TEST_F(AleLive, ConnectBlockedByRemoteAddressOutsideTheCgroupUntouched) {
  apply({filter("not B", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("IP_REMOTE_ADDRESS", sb_->ip4(Side::B) + "/32")})});
  EXPECT_TRUE(refused(connect(8080)));
  EXPECT_TRUE(answered(connect(8080, true)));  // the v6 layer has no filter
  // A process outside the cgroup is not governed.
  auto r = sb_->run("socat -T3 - TCP4:" + sb_->ip4(Side::B) + ":8080 </dev/null", {.side = Side::A});
  EXPECT_TRUE(answered(r)) << r.err;
}

TEST_F(AleLive, UdpFirstDatagramToARemote) {
  apply({filter("no udp 5353", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("IP_PROTOCOL", "UDP"), when("IP_REMOTE_PORT", 5353)})});
  auto send = [&](uint16_t port) {
    return sb_->run("echo x | socat -T1 - UDP4-SENDTO:" + sb_->ip4(Side::B) + ":" + std::to_string(port),
                    {.side = Side::A, .in_cgroup = true});
  };
  EXPECT_TRUE(refused(send(5353))) << send(5353).err;
  EXPECT_TRUE(send(5354).ok());
}

TEST_F(AleLive, InboundAcceptAndListenAndBind) {
  // Servers on A, in the cgroup; clients on B.
  apply({filter("no inbound 9090", "ALE_AUTH_RECV_ACCEPT_V4", "BLOCK", {when("IP_LOCAL_PORT", 9090)}),
         filter("no listen 9091", "ALE_AUTH_LISTEN_V4", "BLOCK", {when("IP_LOCAL_PORT", 9091)}),
         filter("no bind 9092", "ALE_RESOURCE_ASSIGNMENT_V4", "BLOCK", {when("IP_LOCAL_PORT", 9092)})});
  for (int port : {9090, 9091, 9093})
    sb_->spawn("exec socat TCP4-LISTEN:" + std::to_string(port) + ",fork,reuseaddr SYSTEM:'echo hi'",
               {.side = Side::A, .in_cgroup = true});
  auto bind = sb_->run("socat -T1 TCP4-LISTEN:9092 - </dev/null", {.side = Side::A, .in_cgroup = true});
  EXPECT_TRUE(refused(bind)) << bind.err;
  for (int port : {9090, 9091, 9093}) ASSERT_TRUE(sb_->wait_for_port(Side::A, static_cast<uint16_t>(port)));
  auto from_b = [&](int port) {
    return sb_->run("socat -T2 - TCP4:" + sb_->ip4(Side::A) + ":" + std::to_string(port) + ",connect-timeout=2 </dev/null",
                    {.side = Side::B});
  };
  EXPECT_FALSE(answered(from_b(9090)));  // SYN dropped at ALE_AUTH_RECV_ACCEPT
  EXPECT_FALSE(answered(from_b(9091)));  // the listener was refused at ALE_AUTH_LISTEN
  EXPECT_TRUE(answered(from_b(9093)));
}

TEST_F(AleLive, HardPermitInAHigherSublayerBeatsABlockBelow) {
  const std::string hi = "1d1b2a67-0c5f-4e42-9a55-0b7f3c2d9a01", lo = "1d1b2a67-0c5f-4e42-9a55-0b7f3c2d9a02";
  const std::string pa = "2d1b2a67-0c5f-4e42-9a55-0b7f3c2d9a01", pb = "2d1b2a67-0c5f-4e42-9a55-0b7f3c2d9a02";
  json extra = {{"providers", {{{"key", pa}, {"name", "vpn"}}, {{"key", pb}, {"name", "parental"}}}},
                {"sublayers", {{{"key", hi}, {"name", "vpn"}, {"provider", pa}, {"weight", 0xc000}},
                               {{"key", lo}, {"name", "parental"}, {"provider", pb}, {"weight", 0x1000}}}}};
  apply({filter("hard permit 8080", "ALE_AUTH_CONNECT_V4", "PERMIT", {when("IP_REMOTE_PORT", 8080)},
                {{"sublayer", hi}, {"provider", pa}, {"flags", {"CLEAR_ACTION_RIGHT"}}}),
         filter("soft permit 8081", "ALE_AUTH_CONNECT_V4", "PERMIT", {when("IP_REMOTE_PORT", 8081)},
                {{"sublayer", hi}, {"provider", pa}}),
         filter("block all", "ALE_AUTH_CONNECT_V4", "BLOCK", json::array(), {{"sublayer", lo}, {"provider", pb}})},
        extra);
  EXPECT_TRUE(answered(connect(8080)));  // hard permit: the lower sublayer's block cannot override
  EXPECT_TRUE(refused(connect(8081)));   // soft permit: overridden
}

TEST_F(AleLive, AnOpenFlowIsCutWhenANewPolicyBlocksIt) {
  sb_->spawn("exec socat TCP4-LISTEN:8082,fork,reuseaddr EXEC:cat", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 8082));
  Process client = pinging_client(Side::A, sb_->ip4(Side::B), 8082);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  ASSERT_GT(echoes(client), 2);
  apply({filter("no 8082", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("IP_REMOTE_PORT", 8082)})});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto after_cut = echoes(client);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(echoes(client), after_cut);  // nothing passes any more
  EXPECT_TRUE(refused(connect(8082)));  // and a new connection is refused
}

// Re-authorization of an inbound flow: the accepted connection inherits its listener's record (and
// the policy generation its SYN was authorized under), so a new ALE_AUTH_RECV_ACCEPT block cuts it.
TEST_F(AleLive, AnAcceptedFlowIsCutWhenANewPolicyBlocksIt) {
  sb_->spawn("exec socat TCP4-LISTEN:9095,fork,reuseaddr EXEC:cat", {.side = Side::A, .in_cgroup = true});
  ASSERT_TRUE(sb_->wait_for_port(Side::A, 9095));
  Process client = pinging_client(Side::B, sb_->ip4(Side::A), 9095);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  ASSERT_GT(echoes(client), 2);
  apply({filter("no inbound 9095", "ALE_AUTH_RECV_ACCEPT_V4", "BLOCK", {when("IP_LOCAL_PORT", 9095)})});
  const json ev = wait_for_events(*lfpd_->connect(), {{{"field", "LAYER_KEY"}, {"value", "ALE_AUTH_RECV_ACCEPT_V4"}}});
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0]["filter_name"], "no inbound 9095");
  EXPECT_EQ(ev[0]["local_port"], 9095);
  const auto after_cut = echoes(client);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(echoes(client), after_cut);  // nothing passes any more
}

// A connect()'s flow takes a slot in lfp_flows (its record for re-authorization) and gives it back at
// close(); a refused connect() keeps none.
TEST_F(AleLive, AnOutboundFlowHoldsItsSlotUntilItIsClosed) {
  auto slots_held = [&] {
    const int fd = bpf_obj_get((pins_ + "/lfp_flows").c_str());
    EXPECT_GE(fd, 0);
    size_t n = 0;
    uint8_t slot[64];
    for (uint32_t i = 0; i < LFP_FLOWS; ++i) {
      uint64_t cookie = 0;
      if (bpf_map_lookup_elem(fd, &i, slot) == 0) std::memcpy(&cookie, slot, sizeof cookie);
      n += cookie != 0;
    }
    ::close(fd);
    return n;
  };
  apply({filter("no 8081", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("IP_REMOTE_PORT", 8081)})});
  sb_->spawn("exec socat TCP4-LISTEN:8083,fork,reuseaddr EXEC:cat", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 8083));
  EXPECT_EQ(slots_held(), 0u);
  Process client = sb_->spawn("(echo ping; sleep 30) | exec socat - TCP4:" + sb_->ip4(Side::B) + ":8083",
                              {.side = Side::A, .in_cgroup = true});
  for (int i = 0; i < 100 && client.out().find("ping") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(client.out().find("ping"), std::string::npos);
  EXPECT_EQ(slots_held(), 1u);  // the open connection
  EXPECT_TRUE(refused(connect(8081)));
  EXPECT_TRUE(answered(connect(8080)));  // opened and closed
  EXPECT_EQ(slots_held(), 1u);
  client.kill(SIGKILL);
  client.wait();
  // (The wait is the shell's: socat, its child in the pipeline, closes its socket when it has exited,
  // a moment later.)
  for (int i = 0; i < 100 && slots_held() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(slots_held(), 0u);
}

// sock_ops runs several times on every TCP connection and cgroup_skb on every packet, so lfpd
// attaches them only while a layer they feed holds a filter: sock_ops for ALE_AUTH_LISTEN,
// ALE_FLOW_ESTABLISHED and ALE_CONNECT_REDIRECT, ingress for ALE_AUTH_RECV_ACCEPT, ALE_AUTH_LISTEN
// and ALE_FLOW_ESTABLISHED, egress for ALE_FLOW_ESTABLISHED. (Re-authorization needs none of them.)
TEST_F(AleLive, PerConnectionHooksAreAttachedOnlyWhileTheirLayersHoldFilters) {
  // How many programs are attached at sock_ops, cgroup_skb ingress and egress.
  auto attached = [&] {
    const int fd = ::open(sb_->cgroup().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    std::array<uint32_t, 3> n{};
    const bpf_attach_type types[] = {BPF_CGROUP_SOCK_OPS, BPF_CGROUP_INET_INGRESS, BPF_CGROUP_INET_EGRESS};
    for (size_t i = 0; i < n.size(); ++i) EXPECT_EQ(bpf_prog_query(fd, types[i], 0, nullptr, nullptr, &n[i]), 0);
    ::close(fd);
    return n;
  };
  using N = std::array<uint32_t, 3>;
  const json connect_only = filter("no 8081", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("IP_REMOTE_PORT", 8081)});
  apply({connect_only});
  EXPECT_EQ(attached(), (N{0, 0, 0}));
  EXPECT_TRUE(refused(connect(8081)));
  EXPECT_TRUE(answered(connect(8080)));
  const std::string listen_key = "3d1b2a67-0c5f-4e42-9a55-0b7f3c2d9a01";
  apply({filter("no listen 9096", "ALE_AUTH_LISTEN_V4", "BLOCK", {when("IP_LOCAL_PORT", 9096)}, {{"key", listen_key}})});
  EXPECT_EQ(attached(), (N{1, 1, 0}));
  sb_->spawn("exec socat TCP4-LISTEN:9096,fork,reuseaddr SYSTEM:'echo hi'", {.side = Side::A, .in_cgroup = true});
  ASSERT_TRUE(sb_->wait_for_port(Side::A, 9096));
  EXPECT_FALSE(answered(sb_->run("socat -T2 - TCP4:" + sb_->ip4(Side::A) + ":9096,connect-timeout=2 </dev/null", {.side = Side::B})));
  lfpd_->connect()->remove("filter", listen_key);
  EXPECT_EQ(attached(), (N{0, 0, 0}));
  EXPECT_TRUE(refused(connect(8081)));
  apply({filter("no inbound 9097", "ALE_AUTH_RECV_ACCEPT_V4", "BLOCK", {when("IP_LOCAL_PORT", 9097)})});
  EXPECT_EQ(attached(), (N{0, 1, 0}));
  apply({filter("no flows to 8081", "ALE_FLOW_ESTABLISHED_V4", "BLOCK", {when("IP_REMOTE_PORT", 8081)})});
  EXPECT_EQ(attached(), (N{1, 1, 1}));
}

TEST_F(AleLive, PersistentFiltersStayEnforcedAfterSigkillAndRestart) {
  apply({filter("no socat2", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("ALE_APP_ID", socat2_)}, {{"flags", {"PERSISTENT"}}})});
  ASSERT_TRUE(refused(connect(8080, false, socat2_)));
  lfpd_->stop(SIGKILL);
  EXPECT_TRUE(refused(connect(8080, false, socat2_)));  // the pinned hooks and maps stay
  EXPECT_TRUE(answered(connect(8080)));
  lfpd_->start();  // takes over the pins; the store restores the filter
  EXPECT_TRUE(refused(connect(8080, false, socat2_)));
  // Deleting it through the restarted daemon lifts the block.
  auto c = lfpd_->connect();
  auto filters = c->enumerate("filter");
  ASSERT_EQ(filters.size(), 1u);
  c->remove("filter", filters[0]["key"].get<std::string>());
  EXPECT_TRUE(answered(connect(8080, false, socat2_)));
}

// ALE_CONNECT_REDIRECT: a connect to B:8080 is sent to a proxy on A's loopback instead; the proxy (a
// real socat, outside the cgroup) asks lfpd where the connection was going and goes there.
TEST_F(AleLive, ConnectRedirectedToAProxyThatRecoversTheOriginalDestination) {
  const std::string lfp = lfp_cli_path();
  const std::string proxy = sb_->write_file("proxy.sh",
      "#!/bin/sh\necho via-proxy\n"
      "orig=$(LFP_SOCKET=" + lfpd_->socket() + " " + lfp + " show redirect --peer \"$SOCAT_PEERADDR:$SOCAT_PEERPORT\") || exit 1\n"
      "echo \"proxy: $SOCAT_PEERADDR:$SOCAT_PEERPORT was going to $orig\" >&2\n"
      "exec socat - \"TCP4:$orig\"\n", 0755);
  Process proxy_proc = sb_->spawn("exec socat TCP4-LISTEN:3128,bind=127.0.0.1,fork,reuseaddr EXEC:" + proxy, {.side = Side::A});
  ASSERT_TRUE(sb_->wait_for_port(Side::A, 3128));
  const std::string pc = "4c460000-0000-4000-8000-0000000000c1", redirect_v4 = "4c460000-0000-4000-8000-000000000004";
  json policy = {{"callouts", {{{"key", redirect_v4}, {"name", "LFP redirect"}, {"layer", "ALE_CONNECT_REDIRECT_V4"}}}},
                 {"provider_contexts", {{{"key", pc}, {"name", "to the proxy"}, {"data", R"({"address": "127.0.0.1", "port": 3128})"}}}},
                 {"filters", {filter("8080 via the proxy", "ALE_CONNECT_REDIRECT_V4", "PERMIT", {when("IP_REMOTE_PORT", 8080)},
                                     {{"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", redirect_v4}}},
                                      {"flags", {"HAS_PROVIDER_CONTEXT"}}, {"provider_context", pc}})}}};
  lfpd_->connect()->apply(policy);
  auto r = connect(8080);
  EXPECT_TRUE(answered(r)) << r.err << proxy_proc.err();      // the original destination answered...
  EXPECT_NE(r.out.find("via-proxy"), std::string::npos) << r.out;  // ...through the proxy
  r = connect(8081);
  EXPECT_TRUE(answered(r));
  EXPECT_EQ(r.out.find("via-proxy"), std::string::npos);  // not redirected
  // A redirect filter without a target is refused when it is added.
  json bad = {{"filters", {filter("nowhere", "ALE_CONNECT_REDIRECT_V4", "PERMIT", json::array(),
                                  {{"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", redirect_v4}}}})}}};
  EXPECT_THROW(lfpd_->connect()->apply(bad), client::ClientError);
}

// ALE_BIND_REDIRECT: socat2's bind() to the wildcard address is sent to a second address of A, which
// B then sees as the peer; the real socat keeps its own. A BLOCK there refuses the bind.
TEST_F(AleLive, BindRedirectedToAnotherLocalAddress) {
  const std::string a = sb_->ip4(Side::A), second = a.substr(0, a.rfind('.')) + ".3";
  ASSERT_TRUE(sb_->run("ip addr add " + second + "/24 dev " + sb_->ifname(Side::A)).ok());
  sb_->spawn("exec socat TCP4-LISTEN:8090,fork,reuseaddr SYSTEM:'echo peer=$SOCAT_PEERADDR'", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 8090));
  const std::string pc = "4c460000-0000-4000-8000-0000000000c2", bind_v4 = "4c460000-0000-4000-8000-000000000014";
  apply({filter("socat2 binds to the second address", "ALE_BIND_REDIRECT_V4", "PERMIT", {when("ALE_APP_ID", socat2_)},
                {{"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", bind_v4}}},
                 {"flags", {"HAS_PROVIDER_CONTEXT"}}, {"provider_context", pc}}),
         filter("no bind to port 7000", "ALE_BIND_REDIRECT_V4", "BLOCK", {when("IP_LOCAL_PORT", 7000)})},
        {{"callouts", {{{"key", bind_v4}, {"name", "LFP bind redirect"}, {"layer", "ALE_BIND_REDIRECT_V4"}}}},
         {"provider_contexts", {{{"key", pc}, {"name", "second address"}, {"data", "{\"address\": \"" + second + "\"}"}}}}});
  auto peer = [&](const std::string& prog, const std::string& bind) {
    return sb_->run(prog + " -T3 - TCP4:" + sb_->ip4(Side::B) + ":8090,bind=" + bind + " </dev/null",
                    {.side = Side::A, .in_cgroup = true});
  };
  auto r = peer(socat2_, "0.0.0.0");
  EXPECT_NE(r.out.find("peer=" + second + "\n"), std::string::npos) << r.out << r.err;
  r = peer("socat", "0.0.0.0");
  EXPECT_NE(r.out.find("peer=" + a + "\n"), std::string::npos) << r.out << r.err;
  r = peer("socat", "0.0.0.0:7000");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r.err;
}

// ALE_FLOW_ESTABLISHED: a BLOCK there lets the connection come up and then cuts it.
TEST_F(AleLive, FlowEstablishedBlockCutsTheFlow) {
  apply({filter("no flows to 8081", "ALE_FLOW_ESTABLISHED_V4", "BLOCK", {when("IP_REMOTE_PORT", 8081), when("DIRECTION", "OUTBOUND")})});
  EXPECT_TRUE(answered(connect(8080)));
  const auto r = connect(8081);
  EXPECT_FALSE(answered(r)) << r.out;
  EXPECT_FALSE(refused(r));  // not at connect(): the flow was up, then cut
  const json ev = wait_for_events(*lfpd_->connect(), {{{"field", "LAYER_KEY"}, {"value", "ALE_FLOW_ESTABLISHED_V4"}}});
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0]["remote_port"], 8081);
  EXPECT_EQ(ev[0]["filter_name"], "no flows to 8081");
}

// BOOTTIME filters (WFP: enforced from boot until the BFE takes over): `lfpd --boot` loads them from
// the store into the kernel with no daemon running; lfpd then takes over atomically.
TEST_F(AleLive, BootTimeFiltersAreEnforcedBeforeLfpdStarts) {
  apply({filter("no socat2 from boot", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("ALE_APP_ID", socat2_)}, {{"flags", {"BOOTTIME"}}}),
         filter("static, not at boot", "ALE_AUTH_CONNECT_V4", "BLOCK", {when("IP_REMOTE_PORT", 8081)})});
  ASSERT_TRUE(refused(connect(8081)));
  lfpd_->stop();
  // A reboot: no hooks, no pins, no daemon.
  const std::string lfpd = lfpd_path();
  const sys::SpawnResult detach = sys::run({lfpd, "--detach", "--bpf-pin", pins_, "--log-level", "warn"});
  ASSERT_TRUE(detach.ok()) << detach.err;
  ASSERT_TRUE(answered(connect(8080, false, socat2_)));
  const sys::SpawnResult boot = sys::run({lfpd, "--boot", "--cgroup", sb_->cgroup(), "--bpf-pin", pins_, "--state-dir",
                                          lfpd_->dir() + "/state", "--socket", lfpd_->dir() + "/boot.sock", "--log-level", "warn"});
  ASSERT_TRUE(boot.ok()) << boot.err;
  EXPECT_TRUE(refused(connect(8080, false, socat2_)));  // enforced with no lfpd running
  EXPECT_TRUE(answered(connect(8080)));
  EXPECT_TRUE(answered(connect(8081)));  // only the BOOTTIME filter is loaded at boot
  lfpd_->start();                        // takes over the pins and installs the stored policy
  EXPECT_TRUE(refused(connect(8080, false, socat2_)));
}

// A decision that needs user space (here: a PREFIX match on the app path (a suffix test), which the kernel cannot
// evaluate) while no user-space path can take it follows --fail: closed blocks the new flow, open
// lets it through. Either way the event says why.
TEST_F(AleLive, FailClosedOrOpenForDecisionsThatNeedUserSpace) {
  const json policy = {{"filters", {filter("no /usr/bin/* to 8081", "ALE_AUTH_CONNECT_V4", "BLOCK",
                                           {when("IP_REMOTE_PORT", 8081), when("ALE_APP_ID", "/usr/bin/", "PREFIX")})}}};
  for (const std::string mode : {"closed", "open"}) {
    lfpd_.reset();
    start_daemon({"--fail", mode});
    lfpd_->connect()->apply(policy);
    EXPECT_TRUE(answered(connect(8080))) << mode;  // decided in the kernel
    const auto r = connect(8081);
    if (mode == "closed") EXPECT_TRUE(refused(r)) << r.err;
    else EXPECT_TRUE(answered(r)) << r.err;
    if (mode == "closed") {
      const json ev = wait_for_events(*lfpd_->connect(), {{{"field", "IP_REMOTE_PORT"}, {"value", 8081}}});
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_NE(ev[0].value("reason", "").find("user space"), std::string::npos) << ev.dump();
    }
    auto c = lfpd_->connect();
    for (const auto& f : c->enumerate("filter")) c->remove("filter", f["key"].get<std::string>());
  }
}

// ALE_ENDPOINT_CLOSURE and ALE_RESOURCE_RELEASE, notification layers fed by cgroup/sock_release: the
// example plugin's callouts there log each socket the cgroup releases, "LAYER LOCAL_PORT REMOTE_PORT".
// A TCP connection is an endpoint closed, a bound UDP socket without a remote a port released. With
// no filter at those layers the kernel reports nothing, not even with --log-allows.
TEST_F(AleLive, ClosedEndpointsAndReleasedPortsReachTheirCallouts) {
  lfpd_.reset();
  start_daemon({"--callout", LFP_EXAMPLE_CALLOUT, "--log-allows"});
  sb_->spawn("exec socat TCP6-LISTEN:8090,fork,reuseaddr SYSTEM:'echo port=$SOCAT_PEERPORT'", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 8090));
  // A TCP connection to B:8090 (returns the client's port, which the server saw) and a UDP socket
  // bound to port 7001 that sends one datagram, both from the cgroup.
  auto tcp = [&](bool v6 = false) -> std::string {
    const std::string to = v6 ? "TCP6:[" + sb_->ip6(Side::B) + "]" : "TCP4:" + sb_->ip4(Side::B);
    const RunResult r = sb_->run("socat -T3 - " + to + ":8090 </dev/null", {.side = Side::A, .in_cgroup = true});
    const size_t at = r.out.find("port=");
    EXPECT_NE(at, std::string::npos) << r.out << r.err;
    return at == std::string::npos ? "" : r.out.substr(at + 5, r.out.find('\n', at) - at - 5);
  };
  auto udp = [&] {
    const RunResult r = sb_->run("echo x | socat -T1 - UDP4-SENDTO:" + sb_->ip4(Side::B) + ":5000,bind=0.0.0.0:7001",
                                 {.side = Side::A, .in_cgroup = true});
    EXPECT_TRUE(r.ok()) << r.err;
  };
  auto events_at = [&](const std::string& layer) {  // (at once: wait_for_events waits for one)
    const json conditions = {{{"field", "LAYER_KEY"}, {"value", layer}}};
    return lfpd_->connect()->call("netevents_enum", {{"template", {{"conditions", conditions}}}})["events"];
  };
  const std::string log = sb_->tmpdir() + "/closed.log";

  // Nothing at these layers: the permits at ALE_AUTH_CONNECT are logged, no release is.
  apply({filter("connects", "ALE_AUTH_CONNECT_V4", "PERMIT", {when("IP_REMOTE_PORT", 8090)})});
  tcp();
  udp();
  ASSERT_FALSE(wait_for_events(*lfpd_->connect(), {{{"field", "LAYER_KEY"}, {"value", "ALE_AUTH_CONNECT_V4"}}}).empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (const char* layer : {"ALE_ENDPOINT_CLOSURE_V4", "ALE_RESOURCE_RELEASE_V4"})
    EXPECT_TRUE(events_at(layer).empty()) << layer;

  // The callouts, and a plain permit at ALE_ENDPOINT_CLOSURE_V6 (decided in the kernel, logged).
  const std::string closure = "4c460000-0000-4000-8000-0000000000ce", release = "4c460000-0000-4000-8000-0000000000cf";
  const std::string pc = "4c460000-0000-4000-8000-0000000000c3";
  auto by = [&](const std::string& callout) {
    return json{{"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}},
                {"flags", {"HAS_PROVIDER_CONTEXT"}}, {"provider_context", pc}};
  };
  apply({filter("closed endpoints", "ALE_ENDPOINT_CLOSURE_V4", "PERMIT", json::array(), by(closure)),
         filter("released ports", "ALE_RESOURCE_RELEASE_V4", "PERMIT", json::array(), by(release)),
         filter("closed v6 endpoints", "ALE_ENDPOINT_CLOSURE_V6", "PERMIT", {when("IP_REMOTE_PORT", 8090)})},
        {{"callouts", {{{"key", closure}, {"name", "log closures"}, {"layer", "ALE_ENDPOINT_CLOSURE_V4"}},
                       {{"key", release}, {"name", "log releases"}, {"layer", "ALE_RESOURCE_RELEASE_V4"}}}},
         {"provider_contexts", {{{"key", pc}, {"name", "log"}, {"data", "log:" + log}}}}});
  const std::string port = tcp();
  udp();
  tcp(true);
  const std::string want = "ALE_ENDPOINT_CLOSURE_V4 " + port + " 8090\nALE_RESOURCE_RELEASE_V4 7001 -\n";
  for (int i = 0; i < 40 && read_text(log).size() < want.size(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // and nothing more comes
  EXPECT_EQ(read_text(log), want);

  // With --log-allows each is a CLASSIFY_ALLOW naming its filter (nothing is dropped there).
  const json closed = events_at("ALE_ENDPOINT_CLOSURE_V4");
  ASSERT_EQ(closed.size(), 1u) << closed.dump();
  EXPECT_EQ(closed[0]["type"], "CLASSIFY_ALLOW");
  EXPECT_EQ(closed[0]["filter_name"], "closed endpoints");
  EXPECT_EQ(std::to_string(closed[0].value("local_port", 0)), port);
  EXPECT_EQ(closed[0]["local_address"], sb_->ip4(Side::A));
  EXPECT_EQ(closed[0]["remote_address"], sb_->ip4(Side::B));
  const json released = events_at("ALE_RESOURCE_RELEASE_V4");
  ASSERT_EQ(released.size(), 1u) << released.dump();
  EXPECT_EQ(released[0]["local_port"], 7001);
  EXPECT_FALSE(released[0].contains("remote_port"));
  const json v6 = wait_for_events(*lfpd_->connect(), {{{"field", "LAYER_KEY"}, {"value", "ALE_ENDPOINT_CLOSURE_V6"}}});
  ASSERT_EQ(v6.size(), 1u) << v6.dump();
  EXPECT_EQ(v6[0]["remote_address"], sb_->ip6(Side::B));
  EXPECT_EQ(v6[0]["remote_port"], 8090);
  EXPECT_EQ(v6[0]["filter_name"], "closed v6 endpoints");
}

}  // namespace
}  // namespace lfp::test
