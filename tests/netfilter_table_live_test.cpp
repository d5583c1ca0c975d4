// SPDX-License-Identifier: MIT
// LFP's one netfilter owner (lfp/datapath/netfilter.hpp) against the real kernel, in a sandbox
// namespace: the table appears as `nft -j list ruleset` shows it, a change replaces it whole, a
// refused change changes nothing and says why, a stale table is replaced, and the table goes with
// its owner. The queue rules really queue: with nobody reading, a queued ping is lost unless the
// rule carries bypass. Nothing outside the sandbox is touched.
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lfp/datapath/netfilter.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
namespace nf = lfp::datapath::nf;

constexpr uint8_t kIcmp = 1;

class NetfilterTableLive : public LiveTest {
 protected:

  // Runs `fn` on a thread in namespace A (an owner's netlink socket stays where it was opened).
  void in_namespace_a(const std::function<void()>& fn) {
    std::exception_ptr failure;
    std::thread t([&] {
      try {
        const int fd = ::open(sb_->ns_path(Side::A).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("cannot enter " + sb_->ns_path(Side::A));
        ::close(fd);
        fn();
      } catch (...) {
        failure = std::current_exception();
      }
    });
    t.join();
    if (failure) std::rethrow_exception(failure);
  }
  std::unique_ptr<nf::NetfilterTable> make_owner() {
    std::unique_ptr<nf::NetfilterTable> owner;
    in_namespace_a([&] { owner = std::make_unique<nf::NetfilterTable>(); });
    return owner;
  }

  // Namespace A's ruleset: every table, chain and rule object, as nft lists them.
  std::vector<json> objects(const std::string& kind) {
    const RunResult r = sb_->run("nft -j list ruleset");
    EXPECT_TRUE(r.ok()) << r.err;
    const json ruleset = json::parse(r.out);
    std::vector<json> out;
    for (const json& o : ruleset.at("nftables"))
      if (o.contains(kind)) out.push_back(o[kind]);
    return out;
  }
  bool has_lfp_table() {
    for (const json& t : objects("table"))
      if (t["family"] == "inet" && t["name"] == "lfp") return true;
    return false;
  }
  std::vector<json> chains() {
    std::vector<json> out;
    for (const json& c : objects("chain"))
      if (c["table"] == "lfp") out.push_back(c);
    return out;
  }
  std::vector<json> rules(const std::string& chain) {
    std::vector<json> out;
    for (const json& r : objects("rule"))
      if (r["table"] == "lfp" && r["chain"] == chain) out.push_back(r["expr"]);
    return out;
  }
  bool ping_b() { return sb_->run("ping -c1 -W1 " + sb_->ip4(Side::B)).ok(); }
};

// The ALE user path's rule: that mark, ct state new, to a queue.
nf::Chain ale_chain(uint16_t queue) {
  nf::Rule rule;
  rule.mark = nf::Masked{0x4c460000, 0xffff0000};
  rule.ct_new = true;
  rule.queue = nf::QueueTo{queue, 1, true};
  return {"ale-out", NF_INET_LOCAL_OUT, -150, {rule}};
}

// ICMP leaving namespace A, to queue `first` (nobody reads it).
nf::Chain icmp_chain(uint16_t first, uint16_t count, bool bypass) {
  nf::Rule rule;
  rule.nfproto = NFPROTO_IPV4;
  rule.l4proto = kIcmp;
  rule.queue = nf::QueueTo{first, count, bypass};
  return {"icmp-out", NF_INET_LOCAL_OUT, 0, {rule}};
}

TEST_F(NetfilterTableLive, InstallsChangesAndRemovesTheTable) {
  auto owner = make_owner();
  EXPECT_TRUE(has_lfp_table());
  EXPECT_TRUE(chains().empty());

  owner->set("ale", {ale_chain(7301)});
  ASSERT_EQ(chains().size(), 1u);
  EXPECT_EQ(chains()[0]["name"], "ale-out");
  EXPECT_EQ(chains()[0]["hook"], "output");
  EXPECT_EQ(chains()[0]["prio"], -150);
  const auto ale = rules("ale-out");
  ASSERT_EQ(ale.size(), 1u);
  const std::string text = ale[0].dump();
  EXPECT_NE(text.find(R"("key":"mark")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("key":"state")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"({"xt":{"name":"NFQUEUE","type":"target"}})"), std::string::npos) << text;

  // A second user's chains join the first's; the first's change replaces only its own.
  nf::Rule from_lo, fib_local;
  from_lo.iifname = "lo";
  fib_local.fib_daddr_type = RTN_LOCAL;
  fib_local.queue = nf::QueueTo{7302, 2, false};
  owner->set("data", {nf::Chain{"data-in", NF_INET_LOCAL_IN, 0, {from_lo, fib_local}}});
  EXPECT_EQ(chains().size(), 2u);
  EXPECT_EQ(rules("data-in").size(), 2u);
  EXPECT_EQ(rules("ale-out").size(), 1u);
  nf::Chain two = ale_chain(7303);
  two.rules.push_back(two.rules[0]);
  owner->set("ale", {two});
  EXPECT_EQ(rules("ale-out").size(), 2u);
  EXPECT_EQ(rules("data-in").size(), 2u);

  // A user that goes takes its rules (its chain stays, empty, until the table goes).
  owner->set("ale", {});
  EXPECT_TRUE(rules("ale-out").empty());
  EXPECT_EQ(rules("data-in").size(), 2u);

  owner.reset();
  EXPECT_FALSE(has_lfp_table());
}

TEST_F(NetfilterTableLive, ARefusedChangeChangesNothingAndSaysWhy) {
  auto owner = make_owner();
  owner->set("ale", {ale_chain(7311)});
  // Queues 65535 and 65536: the NFQUEUE target refuses a queue past 65535 (ERANGE). The batch also
  // holds a good chain and the first user's rules, written before the refused rule.
  nf::Chain good = icmp_chain(7312, 1, true);
  good.name = "good";
  try {
    owner->set("bad", {good, icmp_chain(65535, 2, true)});
    FAIL() << "the kernel took a queue past 65535";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rule 1 of chain icmp-out"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ERANGE)), std::string::npos) << what;
  }
  EXPECT_EQ(chains().size(), 1u);  // neither new chain: all or nothing
  EXPECT_EQ(rules("ale-out").size(), 1u);
  // The owner is as it was: the next change loads.
  owner->set("data", {icmp_chain(7313, 1, true)});
  EXPECT_EQ(rules("icmp-out").size(), 1u);
  EXPECT_EQ(rules("ale-out").size(), 1u);
}

TEST_F(NetfilterTableLive, AStaleTableIsReplaced) {
  // What a crashed lfpd could leave: a table inet lfp dropping everything that leaves.
  ASSERT_TRUE(sb_->run("nft add table inet lfp && nft add chain inet lfp stale "
                       "'{ type filter hook output priority 0; }' && nft add rule inet lfp stale drop")
                  .ok());
  ASSERT_FALSE(ping_b());
  auto owner = make_owner();
  EXPECT_TRUE(has_lfp_table());
  EXPECT_TRUE(chains().empty());
  EXPECT_TRUE(ping_b());
}

TEST_F(NetfilterTableLive, QueueRulesQueueAndBypassPassesWithNoReader) {
  std::shared_ptr<nf::NetfilterTable> owner, again;
  in_namespace_a([&] {
    owner = nf::NetfilterTable::shared();
    again = nf::NetfilterTable::shared();
  });
  EXPECT_EQ(owner, again);  // one owner a namespace
  again.reset();
  ASSERT_TRUE(ping_b());
  owner->set("test", {icmp_chain(7321, 1, false)});
  EXPECT_FALSE(ping_b());  // queued, nobody reads: dropped
  owner->set("test", {icmp_chain(7321, 2, true)});
  EXPECT_TRUE(ping_b());  // bypass: passes
  owner->set("test", {icmp_chain(7321, 1, false)});
  EXPECT_FALSE(ping_b());
  owner.reset();  // the last user: the table goes
  EXPECT_FALSE(has_lfp_table());
  EXPECT_TRUE(ping_b());
}

}  // namespace
}  // namespace lfp::test
