// SPDX-License-Identifier: MIT
// Pending decisions on the ALE user-space path (lfpd --queue, datapath/pending.hpp): a PROMPT_CALLOUT
// filter holds real connects from the sandbox's namespace A until `lfp prompt` answers them (once,
// for lfpd's run, forever) or the timeout applies the default; a plugin pends and completes from
// a thread of its own.
#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kPrompt = "4c460000-0000-4000-8000-000000000024";   // PROMPT_CALLOUT_V4
const std::string kExample = "4c460000-0000-4000-8000-0000000000ca";  // the example plugin's connect callout

json callout_filter(const std::string& callout, int port, const std::string& name) {
  return {{"key", "ca110000-0000-4000-8000-0000000001" + std::to_string(port % 100 + 10)},
          {"name", name},
          {"layer", "ALE_AUTH_CONNECT_V4"},
          {"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}},
          {"conditions", {when("IP_REMOTE_PORT", port)}}};
}

// Connects to B:8080 and B:8081 ask a person.
json prompt_policy() {
  return {{"callouts", {{{"key", kPrompt}, {"name", "ask the user"}, {"layer", "ALE_AUTH_CONNECT_V4"}}}},
          {"filters", {callout_filter(kPrompt, 8080, "ask: 8080"), callout_filter(kPrompt, 8081, "ask: 8081")}}};
}

class PromptLive : public LiveTest {
 protected:
  void SetUpLive() override {
    pins_ = sb_->mount_bpffs();
    ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080, 8081}));
  }
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  void start(const json& policy, const std::string& timeout_ms = "20000") {
    lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", pins_, "--queue", "7352",
                                                              "--pend-timeout-ms", timeout_ms, "--callout", LFP_EXAMPLE_CALLOUT},
                                     sb_->ns_path(Side::A));
    lfpd_->connect()->apply(policy);
  }
  std::string connect_cmd(int port) const {
    return "socat -T3 - TCP4:" + sb_->ip4(Side::B) + ":" + std::to_string(port) + ",connect-timeout=10 </dev/null";
  }
  RunResult connect(int port) { return sb_->run(connect_cmd(port), {.side = Side::A, .in_cgroup = true, .timeout = 15s}); }
  // A connect in the background; its output goes to a file.
  std::string connect_later(int port) {
    const std::string out = sb_->tmpdir() + "/client-" + std::to_string(port) + "-" + std::to_string(++clients_);
    sb_->spawn(connect_cmd(port) + " >" + out + " 2>&1", {.side = Side::A, .in_cgroup = true});
    return out;
  }
  // lfp CLI output (JSON).
  json lfp(const std::string& args) {
    const std::string cmd = lfp_cli_path() + " --socket " + lfpd_->socket() + " " + args;
    const RunResult r = sb_->run(cmd, {.side = Side::A});
    EXPECT_TRUE(r.ok()) << cmd << ": " << r.err << r.out;
    return json::parse(r.out, nullptr, false);
  }
  json wait_pending(size_t n) {
    json p;
    for (int i = 0; i < 100; ++i, std::this_thread::sleep_for(50ms)) {
      p = lfpd_->connect()->call("pending_list")["pending"];
      if (p.size() >= n) break;
    }
    return p;
  }
  static std::string slurp(const std::string& path) {
    std::string s;
    for (int i = 0; i < 100; ++i, std::this_thread::sleep_for(50ms)) {
      FILE* f = std::fopen(path.c_str(), "r");
      if (!f) continue;
      char buf[256];
      const size_t n = std::fread(buf, 1, sizeof buf, f);
      std::fclose(f);
      s.assign(buf, n);
      if (!s.empty()) break;
    }
    return s;
  }
  std::unique_ptr<Daemon> lfpd_;
  std::string pins_;
  int clients_ = 0;
};

TEST_F(PromptLive, AConnectWaitsUntilItIsAllowedOnce) {
  start(prompt_policy());
  const std::string out = connect_later(8080);
  const json p = wait_pending(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0]["remote_address"], sb_->ip4(Side::B));
  EXPECT_EQ(p[0]["remote_port"], 8080);
  EXPECT_EQ(p[0]["ip_protocol"], 6);
  EXPECT_EQ(p[0]["uid"], 0);
  EXPECT_NE(p[0].value("app_id", "").find("socat"), std::string::npos) << p[0].dump();
  std::this_thread::sleep_for(300ms);
  {
    FILE* f = std::fopen(out.c_str(), "r");  // the client still waits: no answer yet
    char buf[64] = {};
    if (f) std::fread(buf, 1, sizeof buf - 1, f), std::fclose(f);
    EXPECT_EQ(std::string(buf).find("hi"), std::string::npos);
  }
  const json listed = lfp("prompt list --json");
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  lfp("prompt answer " + std::to_string(p[0]["id"].get<uint64_t>()) + " allow --json");
  EXPECT_NE(slurp(out).find("hi"), std::string::npos);
  // Once: the next connect asks again.
  connect_later(8080);
  EXPECT_EQ(wait_pending(1).size(), 1u);
}

TEST_F(PromptLive, DenyForeverAddsAPersistentFilter) {
  start(prompt_policy());
  const std::string out = connect_later(8081);
  const json p = wait_pending(1);
  ASSERT_EQ(p.size(), 1u);
  const json r = lfp("prompt answer " + std::to_string(p[0]["id"].get<uint64_t>()) + " deny --scope forever --json");
  ASSERT_TRUE(r.contains("filter")) << r.dump();
  const json f = lfpd_->connect()->get("filter", r["filter"]["key"].get<std::string>());
  EXPECT_EQ(f["action"]["type"], "BLOCK");
  EXPECT_NE(f["flags"].dump().find("PERSISTENT"), std::string::npos) << f.dump();
  const auto t0 = Clock::now();
  EXPECT_FALSE(connect(8081).ok());  // decided by the new filter, without asking
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_TRUE(lfpd_->connect()->call("pending_list")["pending"].empty());
}

TEST_F(PromptLive, SeveralWaitAtOnceAndEachGetsItsAnswer) {
  start(prompt_policy());
  const std::string a = connect_later(8080), b = connect_later(8081);
  const json p = wait_pending(2);
  ASSERT_EQ(p.size(), 2u);
  // Answered through the watching prompt, from its standard input.
  std::string answers;
  for (const auto& x : p)
    answers += std::to_string(x["id"].get<uint64_t>()) + (x["remote_port"] == 8080 ? " allow" : " deny") + "\\n";
  const RunResult r = sb_->run("printf '" + answers + "' | " + lfp_cli_path() + " --socket " + lfpd_->socket() + " prompt",
                               {.side = Side::A, .timeout = 10s});
  EXPECT_TRUE(r.ok()) << r.err;
  EXPECT_NE(slurp(a).find("hi"), std::string::npos);
  const std::string denied = slurp(b);  // (waits for the client's refusal, the marker that b was decided)
  EXPECT_FALSE(denied.empty());
  EXPECT_EQ(denied.find("hi"), std::string::npos) << denied;
}

TEST_F(PromptLive, AnUnansweredConnectGetsTheDefaultAtTheTimeout) {
  start(prompt_policy(), "800");
  const auto t0 = Clock::now();
  EXPECT_FALSE(connect(8080).ok());
  EXPECT_GT(Clock::now() - t0, 700ms);
  EXPECT_LT(Clock::now() - t0, 4s);
  const json ev = wait_for_events(*lfpd_->connect(), json::array({when("NET_EVENT_TYPE", "CLASSIFY_DROP")}));
  ASSERT_GE(ev.size(), 1u) << lfpd_->connect()->call("netevents_enum", {{"template", json::object()}}).dump();
  EXPECT_EQ(ev[0]["filter_name"], "ask: 8080") << ev[0].dump();
  EXPECT_EQ(ev[0]["completed_by"], "timeout") << ev[0].dump();
}

// The example plugin pends ("pend:MS:ACTION") and completes from a thread (lfp_callout_complete).
TEST_F(PromptLive, APluginPendsAndCompletesLater) {
  json policy = {{"callouts", {{{"key", kExample}, {"name", "example"}, {"layer", "ALE_AUTH_CONNECT_V4"}}}},
                 {"provider_contexts",
                  {{{"key", "ca110000-0000-4000-8000-0000000001c1"}, {"name", "permit"}, {"data", "pend:300:permit"}},
                   {{"key", "ca110000-0000-4000-8000-0000000001c2"}, {"name", "block"}, {"data", "pend:300:block"}}}},
                 {"filters", {callout_filter(kExample, 8080, "pend then permit"), callout_filter(kExample, 8081, "pend then block")}}};
  for (int i = 0; i < 2; ++i) {
    policy["filters"][i]["flags"] = {"HAS_PROVIDER_CONTEXT"};
    policy["filters"][i]["provider_context"] = i == 0 ? "ca110000-0000-4000-8000-0000000001c1" : "ca110000-0000-4000-8000-0000000001c2";
  }
  start(policy);
  const auto t0 = Clock::now();
  EXPECT_TRUE(answered(connect(8080)));
  EXPECT_GT(Clock::now() - t0, 280ms);
  EXPECT_FALSE(connect(8081).ok());
}

}  // namespace
}  // namespace lfp::test
