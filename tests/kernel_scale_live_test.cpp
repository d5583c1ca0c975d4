// SPDX-License-Identifier: MIT
// The kernel path at scale on real connections: a blocklist of 100,000 remote addresses at
// ALE_AUTH_CONNECT_V4 and as many at ALE_AUTH_CONNECT_V6 (the kernel's index, docs/kernel-index.md),
// with B's own addresses allowed and an address B also holds in the list: connects to the listed one
// are refused, to the others they pass. Then one block added and deleted again, each in place.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

class KernelScaleLive : public LiveTest {
 protected:
  void SetUpLive() override {
    // B answers on a second address of each family, which the blocklist names.
    blocked4_ = sb_->ip4(Side::B).substr(0, sb_->ip4(Side::B).rfind('.')) + ".77";
    blocked6_ = sb_->ip6(Side::B).substr(0, sb_->ip6(Side::B).rfind(':')) + ":77";
    for (const std::string& a : {blocked4_ + "/24", blocked6_ + "/64 nodad"})
      ASSERT_EQ(sb_->run("ip addr add " + a + " dev " + sb_->ifname(Side::B), {.side = Side::B}).code, 0) << a;
    sb_->spawn("exec socat TCP6-LISTEN:8090,fork,reuseaddr SYSTEM:'echo hi'", {.side = Side::B});  // (v4 and v6)
    ASSERT_TRUE(sb_->wait_for_port(Side::B, 8090));
    // (pins on the sandbox's own bpffs: the default, /sys/fs/bpf/lfp, is the host's)
    lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", sb_->mount_bpffs()},
                                     sb_->ns_path(Side::A));
  }
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  bool reaches(const std::string& addr, bool six) {
    const std::string target = six ? "TCP6:[" + addr + "]:8090" : "TCP4:" + addr + ":8090";
    return answered(sb_->run("socat -T2 - " + target + ",connect-timeout=2 </dev/null",
                             {.side = Side::A, .in_cgroup = true}));
  }

  std::unique_ptr<Daemon> lfpd_;
  std::string blocked4_, blocked6_;
};

TEST_F(KernelScaleLive, ABlocklistOf100kAddressesRefusesItsOwnAndPassesOthers) {
  constexpr int kN = 100000;
  json filters = json::array();
  auto block = [&](const std::string& layer, const std::string& addr) {
    filters.push_back({{"name", "blocklist"}, {"layer", layer}, {"action", "BLOCK"},
                       {"conditions", {when("IP_REMOTE_ADDRESS", addr)}}});
  };
  for (int i = 0; i < kN - 1; ++i) {  // 100.64.0.0/10, then fd77::/64: neither is the sandbox's
    block("ALE_AUTH_CONNECT_V4", "100." + std::to_string(64 + (i >> 16)) + "." + std::to_string(i >> 8 & 255) + "." +
                                     std::to_string(i & 255));
    block("ALE_AUTH_CONNECT_V6", "fd77::" + std::to_string(i / 10000) + ":" + std::to_string(i % 10000));
  }
  block("ALE_AUTH_CONNECT_V4", blocked4_);
  block("ALE_AUTH_CONNECT_V6", blocked6_);
  for (const char* layer : {"ALE_AUTH_CONNECT_V4", "ALE_AUTH_CONNECT_V6"})  // below the blocks, as hosts have
    filters.push_back({{"name", "default permit"}, {"layer", layer}, {"action", "PERMIT"}, {"weight", 0}});
  auto c = lfpd_->connect();
  ASSERT_TRUE(reaches(blocked4_, false));
  ASSERT_TRUE(reaches(blocked6_, true));
  // One transaction, in pieces (a message holds at most 16 MiB): the kernel takes all or nothing.
  c->begin();
  for (size_t at = 0; at < filters.size(); at += 20000) {
    const json piece(filters.begin() + static_cast<long>(at),
                     filters.begin() + static_cast<long>(std::min(filters.size(), at + 20000)));
    const json applied = c->apply({{"filters", piece}});
    EXPECT_FALSE(applied.contains("warnings")) << applied.dump().substr(0, 500);
  }
  c->commit();

  const json st = c->call("status");
  ASSERT_TRUE(st["kernel"].is_object()) << st.dump().substr(0, 500);
  EXPECT_EQ(st["kernel"]["filters"], 2 * kN + 2);
  EXPECT_FALSE(reaches(blocked4_, false)) << "a listed v4 address";
  EXPECT_FALSE(reaches(blocked6_, true)) << "a listed v6 address";
  EXPECT_TRUE(reaches(sb_->ip4(Side::B), false)) << "B's own v4 address is not listed";
  EXPECT_TRUE(reaches(sb_->ip6(Side::B), true)) << "B's own v6 address is not listed";

  // One more block, and its delete: each goes into the kernel in place (a few entries), not by a
  // compile of the 200,002 others, and is enforced at once.
  const json added = c->add("filter", {{"name", "one more"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                                       {"conditions", {when("IP_REMOTE_ADDRESS", sb_->ip4(Side::B))}}});
  json how = c->call("status")["kernel"]["last_install"];
  EXPECT_EQ(how["in_place"], true) << how.dump();
  EXPECT_LT(how.value("entries_written", 1000), 16) << how.dump();
  EXPECT_FALSE(reaches(sb_->ip4(Side::B), false)) << "the block added in place";
  EXPECT_FALSE(reaches(blocked4_, false)) << "the blocklist stays";
  c->remove("filter", added.at("key").get<std::string>());
  how = c->call("status")["kernel"]["last_install"];
  EXPECT_EQ(how["in_place"], true) << how.dump();
  EXPECT_TRUE(reaches(sb_->ip4(Side::B), false)) << "the block deleted in place";
  EXPECT_FALSE(reaches(blocked4_, false)) << "the blocklist stays";
}

}  // namespace
}  // namespace lfp::test
