// SPDX-License-Identifier: MIT
// lfpd's defaults enforce: started with only --state-dir, --socket and the sandbox's child --cgroup,
// in the sandbox's namespace A (its default packet layers link there) and a mount namespace of its
// own (its default pins, /sys/fs/bpf/lfp, get a bpffs that lfpd mounts there and that goes with it),
// it enforces a filter at OUTBOUND_TRANSPORT_V4 and one at ALE_AUTH_CONNECT_V4 on real connections.
// Pins in a directory that is not a bpffs are refused in one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

class LfpdDefaultsLive : public LiveTest {
 protected:
  void SetUpLive() override {
    ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080, 8081, 8082}));
  }
  void TearDown() override {
    lfpd_.reset();  // before the sandbox goes
    sb_.reset();
  }
  // A TCP connection from A to B:port, from a process in the sandbox's cgroup or not: answered?
  bool reaches(int port, bool in_cgroup) {
    return answered(sb_->run("socat -T2 - TCP4:" + sb_->ip4(Side::B) + ":" + std::to_string(port) +
                                 ",connect-timeout=2 </dev/null",
                             {.side = Side::A, .in_cgroup = in_cgroup}));
  }
  static json block_port(const std::string& key, const std::string& layer, int port) {
    return {{"key", key}, {"name", "block " + std::to_string(port)}, {"layer", layer}, {"action", "BLOCK"},
            {"conditions", {when("IP_REMOTE_PORT", port)}}};
  }

  std::unique_ptr<Daemon> lfpd_;
};

TEST_F(LfpdDefaultsLive, OnlyACgroupGivenEnforcesPacketAndAleLayers) {
  lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", sb_->cgroup()}, sb_->ns_path(Side::A),
                                   DaemonOptions{.lfpd_defaults = true, .private_mounts = true, .log_file = true});
  auto c = lfpd_->connect();
  for (int port : {8080, 8081, 8082}) ASSERT_TRUE(reaches(port, true)) << "before any filter, port " << port;

  const json applied = c->apply({{"filters",
                                  {block_port("5d1f0000-0000-4000-8000-000000000001", "OUTBOUND_TRANSPORT_V4", 8081),
                                   block_port("5d1f0000-0000-4000-8000-000000000002", "ALE_AUTH_CONNECT_V4", 8082)}}});
  EXPECT_FALSE(applied.contains("warnings")) << applied.dump();  // every layer is enforced by default

  EXPECT_TRUE(reaches(8080, true));
  EXPECT_FALSE(reaches(8081, true)) << "OUTBOUND_TRANSPORT_V4 (packet layers, on by default)";
  EXPECT_FALSE(reaches(8082, true)) << "ALE_AUTH_CONNECT_V4 (the cgroup's hooks)";
  // The packet layers govern the whole namespace; the ALE layers only the cgroup given.
  EXPECT_FALSE(reaches(8081, false));
  EXPECT_TRUE(reaches(8082, false));

  const json st = c->call("status");
  EXPECT_EQ(st["cgroup"], sb_->cgroup());
  EXPECT_TRUE(st["packet_layers"].get<bool>());
  EXPECT_TRUE(st["degraded"].empty()) << st.dump();
  EXPECT_FALSE(st["layers"]["OUTBOUND_TRANSPORT_V4"].contains("not_enforced")) << st.dump();
  EXPECT_FALSE(st["layers"]["ALE_AUTH_CONNECT_V4"].contains("not_enforced")) << st.dump();
  ASSERT_TRUE(st["kernel"].is_object()) << st.dump();
  EXPECT_EQ(st["kernel"]["bpf_pin"], "/sys/fs/bpf/lfp");
  EXPECT_EQ(st["kernel"]["filters"], 2);
  const std::string hooks = st["kernel"]["hooks"].dump();
  EXPECT_NE(hooks.find("connect4"), std::string::npos) << hooks;  // the cgroup's connect hook
  EXPECT_GE(st["kernel"]["hooks"].size(), 2u) << hooks;         // and a netfilter hook for LOCAL_OUT
  // lfpd's namespace is A's, not this process's.
  const std::string mine = [] {
    struct stat s {};
    ::stat("/proc/self/ns/net", &s);
    return "net:[" + std::to_string(s.st_ino) + "]";
  }();
  EXPECT_NE(st["netns"], mine);
}

TEST_F(LfpdDefaultsLive, PinsOutsideABpffsAreRefusedInOneLine) {
  // /sys/fs/bpf is the one place lfpd mounts a bpffs; under /tmp it says what to do instead.
  const std::string pins = sb_->tmpdir() + "/not-bpffs/lfp";
  std::filesystem::create_directories(pins);
  const RunResult r = sb_->run_argv({lfpd_path(), "--state-dir", sb_->tmpdir() + "/state", "--socket",
                                     sb_->tmpdir() + "/lfpd.sock", "--config", "none", "--cgroup", sb_->cgroup(),
                                     "--bpf-pin", pins},
                                    {.side = Side::A});
  EXPECT_EQ(r.code, 1) << r.err;
  // One line, naming the place and what to do.
  const size_t at = r.err.find(" critical ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
  EXPECT_NE(line.find(pins), std::string::npos) << line;
  EXPECT_NE(line.find("bpffs"), std::string::npos) << line;
  EXPECT_NE(line.find("mount -t bpf bpf " + sb_->tmpdir() + "/not-bpffs"), std::string::npos) << line;
  EXPECT_EQ(r.err.find("pinned maps from another version"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(" critical ", at + 1), std::string::npos) << r.err;
}

// A stored policy the kernel cannot take at start (over --kernel-entries, from the configuration
// file) leaves lfpd serving, degraded: lfp status says why, the net event log's coverage has the
// mark; a commit the kernel takes ends it, and the coverage gets the whole span.
TEST_F(LfpdDefaultsLive, DegradedAtStartIsShownAndRecorded) {
  const std::string conf = sb_->write_file("lfpd.conf", "");
  lfpd_ = std::make_unique<Daemon>(
      std::vector<std::string>{"--config", conf, "--cgroup", sb_->cgroup(), "--bpf-pin", sb_->mount_bpffs()},
      sb_->ns_path(Side::A));
  json filters = json::array();
  for (int i = 0; i < 300; ++i) {
    json f = block_port("", "ALE_AUTH_CONNECT_V4", 10000 + i);
    f.erase("key");
    f["flags"] = {"PERSISTENT"};
    filters.push_back(f);
  }
  lfpd_->connect()->apply({{"filters", filters}});
  sb_->write_file("lfpd.conf", "kernel-entries = 128\n");
  lfpd_->restart();

  auto c = lfpd_->connect();
  json st = c->call("status");
  ASSERT_TRUE(st["degraded"].contains("kernel")) << st.dump();
  EXPECT_NE(st["degraded"]["kernel"].get<std::string>().find("--kernel-entries"), std::string::npos) << st.dump();
  const json gaps = c->call("netevents_coverage")["gaps"];
  EXPECT_NE(gaps.dump().find("kernel not enforced"), std::string::npos) << gaps.dump();

  // Deleting the stored filters (one transaction) gives the kernel a policy it takes.
  c->begin();
  for (const auto& f : c->enumerate("filter")) c->call("delete", {{"kind", "filter"}, {"key", f["key"]}});
  c->commit();
  st = c->call("status");
  EXPECT_TRUE(st["degraded"].empty()) << st.dump();
  EXPECT_NE(c->call("netevents_coverage")["gaps"].dump().find("kernel was not enforced"), std::string::npos);
}

// lfpd restarted on its pins (`systemctl restart lfpd`): the previous daemon's netfilter links still
// hold their hooks until the new daemon's replace them, and two BPF programs may not share a hook's
// priority; the new one must start, and the packet layers must stay enforced, restart after restart.
TEST_F(LfpdDefaultsLive, ARestartOnItsPinsKeepsThePacketLayersEnforced) {
  lfpd_ = std::make_unique<Daemon>(
      std::vector<std::string>{"--cgroup", sb_->cgroup(), "--packet-layers", "--bpf-pin", sb_->mount_bpffs()},
      sb_->ns_path(Side::A), DaemonOptions{.log_file = true});
  json f = block_port("5d1f0000-0000-4000-8000-000000000003", "OUTBOUND_TRANSPORT_V4", 8081);
  f["flags"] = {"PERSISTENT"};
  lfpd_->connect()->apply({{"filters", {f}}});
  ASSERT_FALSE(reaches(8081, false));
  for (int restart = 1; restart <= 3; ++restart) {  // (the hooks' priorities alternate: three starts)
    lfpd_->restart();
    EXPECT_FALSE(reaches(8081, false)) << "after restart " << restart;
    EXPECT_TRUE(reaches(8080, false)) << "after restart " << restart;
    const json st = lfpd_->connect()->call("status");
    EXPECT_TRUE(st["degraded"].empty()) << st.dump();
    EXPECT_NE(st["kernel"]["hooks"].dump().find("lfp_nf_out4"), std::string::npos) << st.dump();
  }
}

}  // namespace
}  // namespace lfp::test
