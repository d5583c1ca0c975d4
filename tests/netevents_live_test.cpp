// SPDX-License-Identifier: MIT
// The net event log and lfp diagnose on real traffic: lfpd's ALE hooks on the sandbox's cgroup
// report a real block, which the diagnosis confirms; and causes outside LFP (another nftables
// table, no listener) found in lfpd's own network namespace. Nothing outside the sandbox is touched.
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "lfp/netevents/event.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

const std::string kProv = "5eed0000-0000-4000-8000-000000000001";
const std::string kSub = "5eed0000-0000-4000-8000-0000000000a1";
const std::string kFilt = "5eed0000-0000-4000-8000-0000000000f1";

class NetEventsLive : public LiveTest {
 protected:
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  std::unique_ptr<Daemon> lfpd_;
};

TEST_F(NetEventsLive, ARealBlockIsLoggedAndDiagnosed) {
  const std::string pins = sb_->mount_bpffs();
  lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", pins});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080}));
  const std::string socat2 = sb_->tmpdir() + "/socat2";
  ASSERT_EQ(std::system(("cp /usr/bin/socat " + socat2).c_str()), 0);
  auto c = lfpd_->connect();
  c->apply({{"providers", {{{"key", kProv}, {"name", "Parental control"}}}},
            {"sublayers", {{{"key", kSub}, {"name", "pc"}, {"provider", kProv}}}},
            {"filters", {{{"key", kFilt}, {"name", "no socat2"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                          {"provider", kProv}, {"sublayer", kSub},
                          {"conditions", {{{"field", "ALE_APP_ID"}, {"value", socat2}}}}}}}});
  auto r = sb_->run("socat -T3 - TCP4:" + sb_->ip4(Side::B) + ":8080 </dev/null", {.in_cgroup = true});
  EXPECT_TRUE(r.ok()) << r.err;
  r = sb_->run(socat2 + " -T3 - TCP4:" + sb_->ip4(Side::B) + ":8080 </dev/null", {.in_cgroup = true, .uid = 65534});
  ASSERT_FALSE(r.ok());

  // The event reaches the log (the ring is drained by lfpd's loop).
  const json events = wait_for_events(*c, {{{"field", "ALE_APP_ID"}, {"value", socat2}}});
  ASSERT_EQ(events.size(), 1u) << events.dump(2);
  const json& e = events[0];
  EXPECT_EQ(e["type"], "CLASSIFY_DROP");
  EXPECT_EQ(e["layer"], "ALE_AUTH_CONNECT_V4");
  EXPECT_EQ(e["remote_address"], sb_->ip4(Side::B));
  EXPECT_EQ(e["remote_port"], 8080);
  EXPECT_EQ(e["uid"], 65534);
  EXPECT_EQ(e["filter_key"], kFilt);
  EXPECT_EQ(e["provider"], kProv);
  EXPECT_EQ(e["direction"], "OUTBOUND");
  EXPECT_EQ(e["app_file"], netevents::app_file_of(socat2));  // the executable's identity, as the kernel saw it

  // "Why can't socat2 reach B:8080?"
  json d = c->call("diagnose", {{"hypothesis", {{"time", "now"}, {"remote", sb_->ip4(Side::B) + ":8080"}, {"app", socat2}}}});
  ASSERT_EQ(d["verdict"], "confirmed") << d.dump(2);
  EXPECT_EQ(d["filter"]["key"], kFilt);
  EXPECT_EQ(d["provider"]["name"], "Parental control");
  EXPECT_TRUE(d["involved"]["blocked_now"].get<bool>());
  // The real socat was never blocked: healthy for it (the window starts after lfpd did).
  d = c->call("diagnose", {{"hypothesis", {{"time", "now"}, {"window_s", 0.25}, {"remote", sb_->ip4(Side::B) + ":8080"},
                                           {"app", "/usr/bin/socat"}}}, {"foreign", false}});
  EXPECT_EQ(d["verdict"], "healthy") << d.dump(2);
}

TEST_F(NetEventsLive, ForeignCausesInLfpdsNamespace) {
  lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{}, sb_->ns_path(Side::A));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Another firewall's table in A drops TCP to port 9090.
  auto r = sb_->run("nft -f - <<'EOF'\ntable inet otherfw {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
                    "  tcp dport 9090 counter drop\n }\n}\nEOF",
                    {.side = Side::A});
  ASSERT_TRUE(r.ok()) << r.err;
  sb_->spawn("exec socat TCP-LISTEN:9090,fork,reuseaddr SYSTEM:'echo hi'", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 9090));
  r = sb_->run("socat -T2 - TCP4:" + sb_->ip4(Side::B) + ":9090,connect-timeout=1 </dev/null", {.side = Side::A});
  EXPECT_FALSE(r.ok());  // really dropped

  auto c = lfpd_->connect();
  json d = c->call("diagnose", {{"hypothesis", {{"time", "now"}, {"window_s", 0.25}, {"protocol", "tcp"},
                                                {"remote", sb_->ip4(Side::B) + ":9090"}}}});
  EXPECT_EQ(d["verdict"], "healthy") << d.dump(2);  // LFP dropped nothing
  bool named = false;
  for (const auto& f : d["foreign"])
    named = named || (f["kind"] == "nftables" && f["certainty"] == "drops" &&
                      f["where"].get<std::string>().find("otherfw") != std::string::npos);
  EXPECT_TRUE(named) << d["foreign"].dump(2);

  // A port of this host with no listener.
  d = c->call("diagnose", {{"hypothesis", {{"time", "now"}, {"window_s", 0.25}, {"protocol", "tcp"},
                                           {"local", sb_->ip4(Side::A) + ":7777"}}}});
  bool refused = false;
  for (const auto& f : d["foreign"]) refused = refused || f["kind"] == "no_listener";
  EXPECT_TRUE(refused) << d.dump(2);
}

}  // namespace
}  // namespace lfp::test
