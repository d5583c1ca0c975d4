// SPDX-License-Identifier: MIT
// Callout plugins (lfpd --callout): the example plugin, run in its own host process, decides through
// the engine (the classify op) and on real connections (the ALE user-space path, lfpd in the
// sandbox's namespace A); a plugin that crashes or hangs costs its own decisions, never lfpd's.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kCallout = "4c460000-0000-4000-8000-0000000000ca";  // the example plugin's

// A policy whose filter hands ALE_AUTH_CONNECT_V4 (port `port`, or all) to the example callout, which
// acts on the provider context's text.
json callout_policy(const std::string& how, int port = 0, bool permit_if_unregistered = false) {
  json f = {{"key", "ca110000-0000-4000-8000-000000000001"}, {"name", "example callout: " + how},
            {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", kCallout}}},
            {"flags", {"HAS_PROVIDER_CONTEXT"}}, {"provider_context", "ca110000-0000-4000-8000-0000000000c1"},
            {"conditions", json::array()}};
  if (permit_if_unregistered) f["flags"].push_back("PERMIT_IF_CALLOUT_UNREGISTERED");
  if (port) f["conditions"].push_back({{"field", "IP_REMOTE_PORT"}, {"value", port}});
  return {{"callouts", {{{"key", kCallout}, {"name", "example"}, {"layer", "ALE_AUTH_CONNECT_V4"}}}},
          {"provider_contexts", {{{"key", "ca110000-0000-4000-8000-0000000000c1"}, {"name", how}, {"data", how}}}},
          {"filters", {f}}};
}

json classify(client::Client& c, int port) {
  return c.call("classify", {{"layer", "ALE_AUTH_CONNECT_V4"},
                             {"text_values", {{"IP_REMOTE_PORT", std::to_string(port)}, {"IP_PROTOCOL", "TCP"}}}});
}

TEST(CalloutPlugin, DecidesThroughTheEngineInItsOwnProcess) {
  Daemon lfpd({"--callout", LFP_EXAMPLE_CALLOUT});
  auto c = lfpd.connect();
  c->apply(callout_policy("block-odd-ports"));
  auto calls = [&] { return c->call("status")["callout_plugins"].at(0)["calls"].get<uint64_t>(); };
  const uint64_t calls_before = calls();  // (the filter's add was notified to it)
  EXPECT_EQ(classify(*c, 8081)["action"], "BLOCK");
  EXPECT_EQ(classify(*c, 8080)["action"], "PERMIT");
  EXPECT_EQ(classify(*c, 8080)["filter"]["name"], "example callout: block-odd-ports");
  // lfp status (and the metrics) count what the plugin was asked.
  EXPECT_EQ(calls() - calls_before, 3u);
  const json plugins = c->call("status")["callout_plugins"];
  ASSERT_EQ(plugins.size(), 1u) << plugins.dump();
  EXPECT_EQ(plugins[0]["up"], true);
  EXPECT_EQ(plugins[0]["crashes"], 0);
  EXPECT_EQ(plugins[0]["timeouts"], 0);
}

TEST(CalloutPlugin, ABadPluginIsRefusedAtStart) {
  EXPECT_THROW(Daemon({"--callout", "/nonexistent/plugin.so"}), std::runtime_error);
}

class CalloutLive : public LiveTest {
 protected:
  void SetUpLive() override {
    pins_ = sb_->mount_bpffs();
    ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080, 8081}));
  }
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  void start(const json& policy) {
    lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", pins_, "--queue", "7347",
                                                              "--callout", LFP_EXAMPLE_CALLOUT, "--callout-timeout-ms", "200"},
                                     sb_->ns_path(Side::A));
    lfpd_->connect()->apply(policy);
  }
  RunResult connect(int port) {
    return sb_->run("socat -T3 - TCP4:" + sb_->ip4(Side::B) + ":" + std::to_string(port) + ",connect-timeout=2 </dev/null",
                    {.side = Side::A, .in_cgroup = true, .timeout = std::chrono::seconds(8)});
  }
  std::unique_ptr<Daemon> lfpd_;
  std::string pins_;
};

TEST_F(CalloutLive, ThePluginDecidesRealConnections) {
  start(callout_policy("block-odd-ports"));
  EXPECT_TRUE(answered(connect(8080)));
  const auto t0 = Clock::now();
  EXPECT_FALSE(connect(8081).ok());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
}

TEST_F(CalloutLive, APluginThatCrashesCostsOnlyItsOwnDecisions) {
  start(callout_policy("crash", 8081, /*permit_if_unregistered=*/true));
  const RunResult r = connect(8081);  // the plugin crashes on this classify: PERMIT_IF_CALLOUT_UNREGISTERED
  EXPECT_TRUE(answered(r)) << r.err;
  auto c = lfpd_->connect();  // lfpd is still there
  EXPECT_NO_THROW(c->call("ping"));
  EXPECT_TRUE(answered(connect(8080)));
  EXPECT_TRUE(answered(connect(8081)));  // unregistered now: the kernel permits it (the flag)
  const json plugin = c->call("status")["callout_plugins"].at(0);
  EXPECT_EQ(plugin["crashes"], 1) << plugin.dump();
  EXPECT_EQ(plugin["up"], false);
}

TEST_F(CalloutLive, APluginThatHangsIsStoppedAtItsTimeout) {
  start(callout_policy("hang", 8081));
  const auto t0 = Clock::now();
  EXPECT_FALSE(connect(8081).ok());  // no answer in 200 ms: as if unregistered, BLOCK
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  EXPECT_NO_THROW(lfpd_->connect()->call("ping"));
  EXPECT_TRUE(answered(connect(8080)));  // decided in the kernel all along
  const auto t1 = Clock::now();
  EXPECT_FALSE(connect(8081).ok());  // unregistered now: the kernel blocks it at once
  EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(500));
  const json plugin = lfpd_->connect()->call("status")["callout_plugins"].at(0);
  EXPECT_EQ(plugin["timeouts"], 1) << plugin.dump();
  EXPECT_EQ(plugin["crashes"], 0) << plugin.dump();
}

// Two providers' sublayers: a hard permit above (CLEAR_ACTION_RIGHT) for both ports, and below it the
// plugin's BLOCK on 8081 only. A filter below cannot override a hard permit, but a callout's block
// vetoes it (WFP): 8081 is refused, 8080 passes, and the net event says veto.
TEST_F(CalloutLive, ACalloutBlockVetoesAHardPermitOfAnotherProvider) {
  json policy = callout_policy("block", 8081);
  policy["providers"] = {{{"key", "ca110000-0000-4000-8000-0000000000d1"}, {"name", "VPN client"}},
                         {{"key", "ca110000-0000-4000-8000-0000000000d2"}, {"name", "inspection tool"}}};
  policy["sublayers"] = {{{"key", "ca110000-0000-4000-8000-0000000000e1"}, {"name", "VPN"}, {"weight", 0xf000},
                          {"provider", "ca110000-0000-4000-8000-0000000000d1"}},
                         {{"key", "ca110000-0000-4000-8000-0000000000e2"}, {"name", "inspection"}, {"weight", 0x1000},
                          {"provider", "ca110000-0000-4000-8000-0000000000d2"}}};
  policy["filters"][0]["sublayer"] = "ca110000-0000-4000-8000-0000000000e2";
  policy["filters"][0]["provider"] = "ca110000-0000-4000-8000-0000000000d2";
  policy["filters"].push_back({{"key", "ca110000-0000-4000-8000-000000000002"}, {"name", "VPN: hard permit to B"},
                               {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "PERMIT"}, {"flags", {"CLEAR_ACTION_RIGHT"}},
                               {"sublayer", "ca110000-0000-4000-8000-0000000000e1"},
                               {"provider", "ca110000-0000-4000-8000-0000000000d1"},
                               {"conditions", {{{"field", "IP_REMOTE_ADDRESS"}, {"value", sb_->ip4(Side::B)}}}}});
  start(policy);
  EXPECT_TRUE(answered(connect(8080)));
  EXPECT_FALSE(connect(8081).ok());
  const json ev = wait_for_events(*lfpd_->connect(), {{{"field", "NET_EVENT_TYPE"}, {"value", "CLASSIFY_DROP"}}});
  ASSERT_EQ(ev.size(), 1u) << ev.dump();
  EXPECT_TRUE(ev[0].value("veto", false)) << ev[0].dump();
  EXPECT_EQ(ev[0]["filter_key"], "ca110000-0000-4000-8000-000000000001");
  EXPECT_EQ(ev[0]["provider"], "ca110000-0000-4000-8000-0000000000d2");
}

}  // namespace
}  // namespace lfp::test
