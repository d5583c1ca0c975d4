// SPDX-License-Identifier: MIT
// Interfaces by name, live: lfpd runs with the packet layers in the sandbox's namespace B, which
// routes between A and two namespaces behind it, C (by B's veth-c) and D (by veth-d). A filter at
// IPFORWARD naming an interface keeps deciding by that name as links are deleted, made again (a new
// index), made for the first time and renamed, with no re-apply: lfpd hears of each link change
// (rtnetlink) and enforces the filter's new index. Nothing outside the sandbox is touched.
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

constexpr const char* kFromC = "5e11f000-0000-4000-8000-0000000000d1";
constexpr const char* kFromX = "5e11f000-0000-4000-8000-0000000000d2";

// A namespace behind B, on a /26 of the sandbox's /24: B's end of the link is `b_if` (.1 of the
// /26), the namespace's `peer_if` (.2), its default route through B. The namespace goes with the
// test (or, should the test be killed, with the next sandbox's sweep: its name carries the sandbox's).
class Behind {
 public:
  Behind(Sandbox& sb, const std::string& suffix, int net_offset, std::string b_if, std::string peer_if)
      : sb_(sb), ns_(sb.name() + "-" + suffix), b_if_(std::move(b_if)), peer_if_(std::move(peer_if)) {
    const std::string a4 = sb.ip4(Side::A), net = a4.substr(0, a4.rfind('.') + 1);
    b_addr_ = net + std::to_string(net_offset + 1);
    addr_ = net + std::to_string(net_offset + 2);
    if (std::system(("ip netns add " + ns_).c_str()) != 0) throw std::runtime_error("ip netns add " + ns_);
    created_ = true;
    in_ns("ip link set lo up");
    link(b_if_);
  }
  ~Behind() {
    if (created_) (void)std::system(("ip netns pids " + ns_ + " | xargs -r kill -9; ip netns del " + ns_).c_str());
  }
  // Makes B's end of the link under `name` (the namespace's end keeps its name), addressed and up.
  void link(const std::string& name) {
    check(sb_.run("set -e; ip link add " + name + " type veth peer name " + peer_if_ + " netns " + ns_ + "; ip link set " +
                      name + " up; ip addr add " + b_addr_ + "/26 dev " + name,
                  {.side = Side::B}),
          "B's end");
    in_ns("set -e; ip link set " + peer_if_ + " up; ip addr add " + addr_ + "/26 dev " + peer_if_ +
          "; ip route add default via " + b_addr_);
    // B reaches it itself (not forwarded, so no filter at IPFORWARD is in the way): the link is up.
    bool up = false;
    for (int i = 0; i < 40 && !up; ++i)
      up = sb_.run("ping -c 1 -W 1 " + addr_, {.side = Side::B}).ok();
    if (!up) throw std::runtime_error("B does not reach " + addr_ + " by " + name);
  }
  void unlink(const std::string& name) { check(sb_.run("ip link del " + name, {.side = Side::B}), "ip link del"); }
  void rename(const std::string& from, const std::string& to) {
    check(sb_.run("set -e; ip link set " + from + " down; ip link set " + from + " name " + to + "; ip link set " + to + " up",
                  {.side = Side::B}),
          "rename");
  }
  const std::string& addr() const { return addr_; }

 private:
  static void check(const RunResult& r, const std::string& what) {
    if (!r.ok()) throw std::runtime_error(what + ": " + r.err);
  }
  void in_ns(const std::string& cmd) {
    check(sb_.run_argv({"ip", "netns", "exec", ns_, "sh", "-c", cmd}, {.side = Side::A}), ns_ + ": " + cmd);
  }
  Sandbox& sb_;
  std::string ns_, b_if_, peer_if_, b_addr_, addr_;
  bool created_ = false;
};

class InterfaceNamesLive : public LiveTest {
 protected:
  void SetUpLive() override {
    ASSERT_TRUE(sb_->run("sysctl -qw net.ipv4.ip_forward=1", {.side = Side::B}).ok());
    c_ = std::make_unique<Behind>(*sb_, "c", 128, "veth-c", "veth-r");
    d_ = std::make_unique<Behind>(*sb_, "d", 192, "veth-d", "veth-s");
    const std::string a4 = sb_->ip4(Side::A);
    ASSERT_TRUE(sb_->run("ip route add " + a4.substr(0, a4.rfind('.') + 1) + "128/25 via " + sb_->ip4(Side::B), {.side = Side::A}).ok());
    lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", "none", "--packet-layers", "--bpf-pin", sb_->mount_bpffs()},
                                     sb_->ns_path(Side::B), DaemonOptions{.log_file = true});
  }
  void TearDown() override {
    lfpd_.reset();
    d_.reset();
    c_.reset();
    sb_.reset();
  }
  bool reaches(const Behind& n) { return sb_->run("ping -c 1 -W 1 " + n.addr(), {.side = Side::A}).ok(); }
  // lfpd takes a link change in its own time: what A reaches is polled, up to 4 s, until it is `want`.
  bool comes_to(const Behind& n, bool want) {
    for (int i = 0; i < 8; ++i) {
      if (reaches(n) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }
  std::string index_of(const std::string& ifname) {
    return sb_->run("ip -o link show " + ifname + " | cut -d: -f1", {.side = Side::B}).out;
  }
  // A PERSISTENT filter at IPFORWARD_V4 blocking what arrives by the interface of that name.
  void block_from(const std::string& key, const std::string& ifname) {
    lfpd_->connect()->apply({{"filters", {{{"key", key}, {"name", "from " + ifname}, {"layer", "IPFORWARD_V4"}, {"action", "BLOCK"},
                                            {"flags", {"PERSISTENT"}},
                                            {"conditions", {when("SOURCE_INTERFACE_INDEX", {{"name", ifname}})}}}}}});
  }

  std::unique_ptr<Behind> c_, d_;
  std::unique_ptr<Daemon> lfpd_;
};

TEST_F(InterfaceNamesLive, AFilterOnANameFollowsTheInterfaceAsItIsMadeAgain) {
  ASSERT_TRUE(reaches(*c_) && reaches(*d_)) << "A does not reach C and D through B";
  block_from(kFromC, "veth-c");
  // What lfpd shows and keeps is the name.
  EXPECT_EQ(lfpd_->connect()->get("filter", kFromC)["conditions"][0]["value"], json({{"name", "veth-c"}}));
  EXPECT_FALSE(reaches(*c_)) << "C's answers arrive by veth-c: blocked";
  EXPECT_TRUE(reaches(*d_)) << "D's arrive by veth-d: not blocked";

  // Deleted and made again under the same name: a new index, still blocked, with no re-apply.
  const std::string before = index_of("veth-c");
  c_->unlink("veth-c");
  c_->link("veth-c");
  ASSERT_NE(index_of("veth-c"), before);
  EXPECT_TRUE(comes_to(*c_, false)) << "veth-c made again is not blocked";
  EXPECT_TRUE(reaches(*d_));

  // Without the filter C is reached again: what blocked it was the filter, not the link.
  lfpd_->connect()->remove("filter", kFromC);
  EXPECT_TRUE(comes_to(*c_, true));
}

TEST_F(InterfaceNamesLive, AFilterOnANameNoInterfaceHasYetBlocksOnceItIsMade) {
  block_from(kFromX, "veth-x");
  EXPECT_TRUE(reaches(*d_)) << "no interface is veth-x: nothing is blocked";
  EXPECT_TRUE(reaches(*c_));
  // D's link made again as veth-x: now blocked.
  d_->unlink("veth-d");
  d_->link("veth-x");
  EXPECT_TRUE(comes_to(*d_, false)) << "veth-x made: not blocked";
  EXPECT_TRUE(reaches(*c_));
  // Renamed back: no interface is veth-x again.
  d_->rename("veth-x", "veth-d");
  EXPECT_TRUE(comes_to(*d_, true)) << "veth-x renamed veth-d: still blocked";
}

// The engine's side in lfpd, through classify (no packet layers, so that lfpd can be started again
// here: the packet layers' links stay pinned in the namespace when it stops): a request decides by the
// index the name has now, and a stored filter takes the index the name has when lfpd loads it.
TEST_F(InterfaceNamesLive, ClassifyInLfpdDecidesByTheIndexTheNameHasNowAndAtLoad) {
  lfpd_.reset();
  lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{}, sb_->ns_path(Side::B));
  block_from(kFromC, "veth-c");
  auto decides = [&](const std::string& in_index) {
    return lfpd_->connect()->classify("IPFORWARD_V4", {{"SOURCE_INTERFACE_INDEX", std::stoul(in_index)},
                                                       {"DESTINATION_INTERFACE_INDEX", 1}})["action"].get<std::string>();
  };
  const std::string c_before = index_of("veth-c"), d = index_of("veth-d");
  EXPECT_EQ(decides(c_before), "BLOCK");
  EXPECT_EQ(decides(d), "PERMIT");
  c_->unlink("veth-c");
  c_->link("veth-c");
  const std::string c_now = index_of("veth-c");
  ASSERT_NE(c_now, c_before);
  bool followed = false;  // (lfpd hears of the link in its own time)
  for (int i = 0; i < 40 && !followed; ++i, std::this_thread::sleep_for(std::chrono::milliseconds(50)))
    followed = decides(c_now) == "BLOCK";
  EXPECT_TRUE(followed);
  EXPECT_EQ(decides(c_before), "PERMIT");
  // Made again while lfpd is down: the stored filter resolves as lfpd loads it.
  lfpd_->stop();
  c_->unlink("veth-c");
  c_->link("veth-c");
  const std::string c_after = index_of("veth-c");
  ASSERT_NE(c_after, c_now);
  lfpd_->start();
  EXPECT_EQ(decides(c_after), "BLOCK");
  EXPECT_EQ(decides(c_now), "PERMIT");
  EXPECT_EQ(decides(d), "PERMIT");
}

}  // namespace
}  // namespace lfp::test
