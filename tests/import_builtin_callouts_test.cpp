// SPDX-License-Identifier: MIT
// The built-in callouts as lfp import --verify runs them (import/builtin_callouts.hpp): registered in
// an engine that holds an import, fed packet bytes, on a clock the caller sets. ufw's `limit` decides
// as xt_recent does on the capture's clock, and a verdict the replay's clock would give otherwise is
// told apart; Docker's published port is matched by the transport-match callout.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "lfp/engine/engine.hpp"
#include "lfp/import/builtin_callouts.hpp"
#include "lfp/import/iptables.hpp"
#include "lfp/packet/build.hpp"
#include "lfp/packet/parse.hpp"
#include "lfp/packet/walk.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::test {
namespace {

namespace b = packet::build;

std::string read_fixture(const std::string& file) {
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/tests/data/import/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr uint8_t kSyn = 0x02, kAck = 0x10;
const packet::IpAddr kHost = *packet::parse_ip("10.77.0.1");

b::Bytes tcp(const std::string& src, uint16_t sport, const packet::IpAddr& dst, uint16_t dport, uint8_t flags) {
  return b::ipv4(*packet::parse_ip(src), dst, 6, b::tcp(sport, dport, flags, 1000, 0));
}

// An import in an engine with the built-in callouts, each packet walked through the layers as lfp
// replay walks it, the callouts given its bytes.
class Replayed {
 public:
  explicit Replayed(const std::string& rules) : callouts_(engine_) {
    policy::apply_policy(engine_, policy::policy_from_json(import::import_iptables(rules).policy));
    walk_.add_local(kHost);
  }
  // Whether the packet passes every layer; `by`: the filter that blocked it.
  bool permits(const b::Bytes& ip, int64_t capture_ms, int64_t replay_ms, std::string* by = nullptr) {
    callouts_.set_clocks(capture_ms, replay_ms);
    packet::Packet p;
    packet::parse(ip, packet::LinkType::RAW, p);
    walk_.begin(p);
    while (walk_.next()) {
      ClassifyMeta meta;
      meta.data = ip.data();
      meta.data_len = ip.size();
      const auto r = engine_.classify(walk_.layer(), walk_.values(), false, &meta);
      if (!r.permit) {
        if (by) *by = r.filter ? r.filter->display.name : "";
        return false;
      }
    }
    return true;
  }
  const std::string& decided_by_time() const { return callouts_.decided_by_time(); }

 private:
  FilterEngine engine_;
  import::BuiltinCallouts callouts_;
  packet::Walk walk_;
};

// ufw's limit 2222/tcp (6 in 30 s from one source): the 6th SYN within the window and the ones after it
// are blocked by the rate-limit filter, the others go on to ufw-user-limit-accept.
TEST(ImportBuiltinCallouts, UfwLimitOnTheCapturesClock) {
  Replayed lfp(read_fixture("ufw.rules"));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40000 + i, kHost, 2222, kSyn), i * 1000, 0)) << i;
  std::string by;
  EXPECT_FALSE(lfp.permits(tcp("198.51.100.7", 40005, kHost, 2222, kSyn), 5000, 0, &by));
  EXPECT_EQ(by, "INPUT line 106 limit");
  EXPECT_EQ(lfp.decided_by_time(), "");  // (the replay's clock agrees: everything at 0)
  EXPECT_TRUE(lfp.permits(tcp("198.51.100.8", 40000, kHost, 2222, kSyn), 5000, 0));  // another source
  EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40000, kHost, 2222, kAck), 5000, 0));   // not a new connection
  EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40006, kHost, 22, kSyn), 5000, 0));     // allow 22/tcp: no limit
  EXPECT_FALSE(lfp.permits(tcp("192.0.2.5", 40000, kHost, 2222, kSyn), 5000, 0, &by));  // deny from 192.0.2.0/24
  EXPECT_EQ(by, "INPUT line 104");
}

// SYNs 10 s apart: on the capture's clock never 6 in 30 s, so all pass, as they did on the host; on the
// replay's (where they come at once) the 6th is over. That verdict is the clock's, and it is said so.
TEST(ImportBuiltinCallouts, AVerdictTheReplaysClockWouldChangeIsTold) {
  Replayed lfp(read_fixture("ufw.rules"));
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40000 + i, kHost, 2222, kSyn), i * 10'000, 7)) << i;
    EXPECT_EQ(lfp.decided_by_time(), "") << i;
  }
  EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40005, kHost, 2222, kSyn), 50'000, 7));
  EXPECT_EQ(lfp.decided_by_time(), "INPUT line 106 limit");
  EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40006, kHost, 22, kSyn), 60'000, 7));
  EXPECT_EQ(lfp.decided_by_time(), "");  // (cleared by the next packet's clocks)
}

// Packet rates as the chain walk decides them: an ACCEPT within 10/s (burst 20) after a source accepted
// uncounted; a hashlimit per source over 3/min dropped; an ACCEPT within 1/s (burst 5) whose other side
// a later rule still accepts for one network.
TEST(ImportBuiltinCallouts, PacketRatesDecideAsTheChainWalk) {
  Replayed lfp(R"(*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 192.0.2.0/24 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -m limit --limit 10/sec --limit-burst 20 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 --syn -m hashlimit --hashlimit-above 3/min --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name ssh -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -m limit --limit 1/sec -j ACCEPT
-A INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 443 -j ACCEPT
COMMIT
)");
  uint16_t port = 40000;
  auto syn = [&](const char* src, uint16_t dport, int64_t ms) { return lfp.permits(tcp(src, port++, kHost, dport, kSyn), ms, ms); };
  for (int i = 0; i < 30; ++i) EXPECT_TRUE(syn("192.0.2.5", 80, 0)) << i;  // line 5 decides first: not counted
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(syn("203.0.113.5", 80, 0)) << i;  // the burst
  EXPECT_FALSE(syn("203.0.113.5", 80, 0));  // over: on to the policy, DROP
  EXPECT_TRUE(syn("203.0.113.6", 80, 100));  // a token every 100 ms
  EXPECT_FALSE(syn("203.0.113.6", 80, 100));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(syn("203.0.113.5", 22, 0)) << i;
  std::string by;
  EXPECT_FALSE(lfp.permits(tcp("203.0.113.5", port++, kHost, 22, kSyn), 0, 0, &by));  // over 3/min from this source
  EXPECT_EQ(by, "INPUT line 7 limit");
  EXPECT_TRUE(syn("203.0.113.6", 22, 0));  // another source: a bucket of its own
  EXPECT_TRUE(syn("203.0.113.5", 22, 20'000));  // a token every 20 s
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(syn("203.0.113.5", 443, 0)) << i;
  EXPECT_FALSE(syn("203.0.113.5", 443, 0));
  EXPECT_TRUE(syn("198.51.100.7", 443, 0));  // over the rate, but line 10 accepts it
  EXPECT_FALSE(syn("203.0.113.5", 443, 999));
  EXPECT_TRUE(syn("198.51.100.7", 443, 1000));  // within it again: it takes the token ...
  EXPECT_FALSE(syn("203.0.113.5", 443, 1000));  // ... as the kernel's bucket does
}

// Docker's DOCKER chain: `-d 172.17.0.2 ! -i docker0 -o docker0 -p tcp --dport 80 -j ACCEPT` is a filter of
// the transport-match callout at IPFORWARD; with the callout run, its port decides (CONTINUE on others).
TEST(ImportBuiltinCallouts, TheTransportMatchDecidesForwardedPortsWithoutInterfaces) {
  // The rule without its interfaces (which lfpd resolves where it runs): protocol and port only.
  const std::string rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                            "-A FORWARD -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n";
  Replayed lfp(rules);
  const packet::IpAddr container = *packet::parse_ip("172.17.0.2");
  EXPECT_TRUE(lfp.permits(tcp("198.51.100.7", 40000, container, 80, kSyn), 0, 0));
  std::string by;
  EXPECT_FALSE(lfp.permits(tcp("198.51.100.7", 40000, container, 81, kSyn), 0, 0, &by));
  EXPECT_EQ(by, "FORWARD policy DROP");
  EXPECT_FALSE(lfp.permits(b::ipv4(*packet::parse_ip("198.51.100.7"), container, 17, b::udp(5000, 80, {'x'})), 0, 0));
}

}  // namespace
}  // namespace lfp::test
