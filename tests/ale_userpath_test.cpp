// SPDX-License-Identifier: MIT
// The ALE layers' user-space path on real sockets: decisions the kernel cannot make go through
// lfpd's NFQUEUE (installed in the sandbox's namespace A, where lfpd runs) to the engine; a refused
// connect fails at once; and while lfpd is down, --fail decides. Nothing outside the sandbox is touched.
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

const std::string kFilter = "5e11f000-0000-4000-8000-000000000001";

class AleUserPath : public LiveTest {
 protected:
  void SetUpLive() override {
    pins_ = sb_->mount_bpffs();
    ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080, 8081}));
    socat2_ = sb_->tmpdir() + "/socat2";
    ASSERT_EQ(std::system(("cp /usr/bin/socat " + socat2_).c_str()), 0);
  }
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  void start(const std::string& fail) {
    lfpd_ = std::make_unique<Daemon>(
        std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", pins_, "--queue", "7346", "--fail", fail},
        sb_->ns_path(Side::A));
    // The kernel cannot evaluate a PREFIX match on the app path (WFP's PREFIX: the path ends with
    // the value): port 8081 needs user space.
    lfpd_->connect()->apply({{"filters", {{{"key", kFilter}, {"name", "no */socat to 8081"},
                                          {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                                          {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 8081}},
                                                          {{"field", "ALE_APP_ID"}, {"match", "PREFIX"}, {"value", "/socat"}}}}}}}});
  }
  RunResult connect(int port, const std::string& prog = "socat") {
    return sb_->run(prog + " -T3 - TCP4:" + sb_->ip4(Side::B) + ":" + std::to_string(port) + ",connect-timeout=2 </dev/null",
                    {.side = Side::A, .in_cgroup = true, .timeout = std::chrono::seconds(8)});
  }

  std::unique_ptr<Daemon> lfpd_;
  std::string pins_, socat2_;
};

TEST_F(AleUserPath, TheEngineDecidesWhatTheKernelCannot) {
  start("closed");
  EXPECT_TRUE(answered(connect(8080)));           // decided in the kernel
  EXPECT_TRUE(answered(connect(8081, socat2_)));  // queued; the engine: socat2 does not end with /socat
  const auto t0 = Clock::now();
  const RunResult r = connect(8081);              // queued; the engine: blocked
  EXPECT_FALSE(r.ok());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500)) << "the refused connect was not aborted at once";
  EXPECT_NE(r.err.find("abort"), std::string::npos) << r.err;
  // The decision is a net event like the kernel's, with the filter and the app.
  const json ev = wait_for_events(*lfpd_->connect(), {{{"field", "NET_EVENT_TYPE"}, {"value", "CLASSIFY_DROP"}}});
  ASSERT_EQ(ev.size(), 1u) << ev.dump();
  EXPECT_EQ(ev[0]["filter_key"], kFilter);
  EXPECT_EQ(ev[0]["app_id"], "/usr/bin/socat");
  EXPECT_EQ(ev[0]["remote_port"], 8081);
  EXPECT_GT(ev[0]["local_port"].get<int>(), 0);  // user space sees the packet: the port is known
}

TEST_F(AleUserPath, WhileLfpdIsDownFailClosedDropsAndFailOpenPasses) {
  for (const std::string mode : {"closed", "open"}) {
    start(mode);
    ASSERT_TRUE(answered(connect(8081, socat2_))) << mode;
    lfpd_->stop(SIGKILL);  // the hooks, the mark and the NFQUEUE rule stay; nobody reads the queue
    EXPECT_TRUE(answered(connect(8080))) << mode;  // the kernel still decides what it can
    const RunResult r = connect(8081, socat2_);
    if (mode == "closed") EXPECT_FALSE(r.ok()) << "fail closed let a new flow through";
    else EXPECT_TRUE(answered(r)) << "fail open blocked a new flow: " << r.err;
    lfpd_.reset();
  }
}

}  // namespace
}  // namespace lfp::test
