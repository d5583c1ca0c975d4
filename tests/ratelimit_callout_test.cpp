// The built-in rate-limit callout (callouts/builtin/ratelimit.hpp, keys ...0109 and ...010a of
// liblfp_inspect_callouts.so): its configuration, which packets it counts, xt_recent's window and
// hit count as ufw uses them (--set, then --update), the source mask, v4 and v6 kept apart, the cap
// on sources; then the plugin itself, dlopened, on real packet bytes.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "builtin_plugin.hpp"
#include "lfp/callout/plugin.hpp"
#include "ratelimit.hpp"

namespace lfp::test {
namespace {

using inspect::NewConnection;
using inspect::RateLimitConfig;
using inspect::RateLimiter;
using Buf = std::vector<uint8_t>;

constexpr uint8_t kSyn = 0x02, kAck = 0x10;

// An IPv4 packet with a TCP header (flags as given), or a UDP one.
Buf ip4(const std::array<uint8_t, 4>& src, uint8_t proto, uint8_t flags, uint16_t frag_offset = 0) {
  Buf p(20 + 20, 0);
  p[0] = 0x45;
  p[3] = static_cast<uint8_t>(p.size());
  p[6] = static_cast<uint8_t>(frag_offset >> 8);
  p[7] = static_cast<uint8_t>(frag_offset);
  p[8] = 64;
  p[9] = proto;
  std::copy(src.begin(), src.end(), p.begin() + 12);
  p[16] = 10, p[19] = 1;
  p[20 + 13] = flags;
  return p;
}

// An IPv6 packet from 2001:db8::LAST, with a hop-by-hop header first if asked, or a fragment header.
Buf ip6(uint8_t last, uint8_t flags, bool hop_by_hop = false, int fragment_offset = -1) {
  Buf p(40, 0);
  p[0] = 0x60;
  p[7] = 64;
  p[8] = 0x20, p[9] = 0x01, p[10] = 0x0d, p[11] = 0xb8, p[23] = last;
  p[39] = 1;
  uint8_t* next = &p[6];
  if (hop_by_hop) {
    *next = 0;
    p.insert(p.end(), {0, 0, 1, 4, 0, 0, 0, 0});  // next header, length 0 (8 bytes), PadN
    next = &p[p.size() - 8];
  }
  if (fragment_offset >= 0) {
    *next = 44;
    p.insert(p.end(), {0, 0, static_cast<uint8_t>(fragment_offset >> 5), static_cast<uint8_t>(fragment_offset << 3 | 1), 0, 0, 0, 1});
    next = &p[p.size() - 8];
  }
  *next = 6;
  Buf tcp(20, 0);
  tcp[13] = flags;
  p.insert(p.end(), tcp.begin(), tcp.end());
  return p;
}

NewConnection v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  NewConnection n;
  n.family = 4;
  n.source[0] = a, n.source[1] = b, n.source[2] = c, n.source[3] = d;
  return n;
}

RateLimitConfig config(const std::string& json) {
  std::string error;
  const auto c = inspect::parse_rate_limit_config(json, &error);
  EXPECT_TRUE(c) << json << ": " << error;
  return c.value_or(RateLimitConfig{});
}

TEST(RateLimitCallout, Configuration) {
  const RateLimitConfig c = config(R"({"seconds": 30, "hitcount": 6, "prefix": 24, "name": "ssh", "max_sources": 100})");
  EXPECT_EQ(c.seconds, 30u);
  EXPECT_EQ(c.hitcount, 6u);
  EXPECT_EQ(c.prefix, 24);
  EXPECT_EQ(c.name, "ssh");
  EXPECT_EQ(c.max_sources, 100u);
  EXPECT_EQ(config(R"({"hitcount": 3})").name, "DEFAULT");
  for (const auto& [bad, why] : std::vector<std::pair<std::string, std::string>>{
           {"", "not a JSON object"},
           {"[]", "not a JSON object"},
           {R"({"seconds": 30})", "\"hitcount\" is missing"},
           {R"({"hitcount": 0})", "\"hitcount\" is not a number from 1 to 255"},
           {R"({"hitcount": 256})", "\"hitcount\" is not a number from 1 to 255"},
           {R"({"hitcount": 6, "seconds": -1})", "\"seconds\" is not a number of seconds (0 to a year)"},
           {R"({"hitcount": 6, "seconds": "30"})", "\"seconds\" is not a number of seconds (0 to a year)"},
           {R"({"hitcount": 6, "prefix": 129})", "\"prefix\" is not a prefix length (0 to 128)"},
           {R"({"hitcount": 6, "name": ""})", "\"name\" is not a table name"},
           {R"({"hitcount": 6, "max_sources": 0})", "\"max_sources\" is not a number from 1 to 16777216"},
           {R"({"hitcount": 6, "secs": 30})", "unknown member \"secs\" (known: seconds, hitcount, prefix, name, max_sources)"}}) {
    std::string error;
    EXPECT_FALSE(inspect::parse_rate_limit_config(bad, &error)) << bad;
    EXPECT_EQ(error, why) << bad;
  }
}

TEST(RateLimitCallout, CountsOnlyASynWithoutAck) {
  const auto syn = inspect::new_tcp_connection(ip4({192, 0, 2, 7}, 6, kSyn));
  ASSERT_TRUE(syn);
  EXPECT_EQ(syn->family, 4);
  EXPECT_EQ(syn->source[0], 192);
  EXPECT_EQ(syn->source[3], 7);
  EXPECT_FALSE(inspect::new_tcp_connection(ip4({192, 0, 2, 7}, 6, kSyn | kAck)));
  EXPECT_FALSE(inspect::new_tcp_connection(ip4({192, 0, 2, 7}, 6, kAck)));
  EXPECT_FALSE(inspect::new_tcp_connection(ip4({192, 0, 2, 7}, 17, kSyn)));  // UDP: not counted
  EXPECT_FALSE(inspect::new_tcp_connection(ip4({192, 0, 2, 7}, 6, kSyn, 100)));  // a later fragment
  const auto syn6 = inspect::new_tcp_connection(ip6(9, kSyn));
  ASSERT_TRUE(syn6);
  EXPECT_EQ(syn6->family, 6);
  EXPECT_EQ(syn6->source[0], 0x20);
  EXPECT_EQ(syn6->source[15], 9);
  EXPECT_TRUE(inspect::new_tcp_connection(ip6(9, kSyn, true)));        // behind a hop-by-hop header
  EXPECT_TRUE(inspect::new_tcp_connection(ip6(9, kSyn, false, 0)));    // the first fragment
  EXPECT_FALSE(inspect::new_tcp_connection(ip6(9, kSyn, false, 100))); // a later one
  EXPECT_FALSE(inspect::new_tcp_connection(ip6(9, kSyn | kAck)));
  Buf cut = ip4({192, 0, 2, 7}, 6, kSyn);
  for (size_t n = 0; n < 20 + 14; ++n)  // cut before the TCP flags: never read past the end
    EXPECT_FALSE(inspect::new_tcp_connection({cut.data(), n})) << n;
}

// ufw's `limit`: the 6th new connection within 30 s is over it (xt_recent counts the one --set just
// recorded), and so is every one after it while 6 stay within the window.
TEST(RateLimitCallout, HitcountWithinTheWindow) {
  RateLimiter rl;
  const RateLimitConfig c = config(R"({"seconds": 30, "hitcount": 6})");
  const auto src = v4(192, 0, 2, 7);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(rl.over_limit(c, src, i * 1000)) << i;
  EXPECT_TRUE(rl.over_limit(c, src, 5000));
  EXPECT_TRUE(rl.over_limit(c, src, 6000));
  // Another source is counted on its own.
  EXPECT_FALSE(rl.over_limit(c, v4(192, 0, 2, 8), 6000));
  // A recording exactly `seconds` old still counts (xt_recent drops only older ones), one older not.
  RateLimiter edge;
  const RateLimitConfig two = config(R"({"seconds": 10, "hitcount": 2})");
  EXPECT_FALSE(edge.over_limit(two, src, 0));
  EXPECT_TRUE(edge.over_limit(two, src, 10'000));
  RateLimiter late;
  EXPECT_FALSE(late.over_limit(two, src, 0));
  EXPECT_FALSE(late.over_limit(two, src, 10'001));
  // seconds 0: no window, every recording counts.
  RateLimiter forever;
  const RateLimitConfig ever = config(R"({"seconds": 0, "hitcount": 2})");
  EXPECT_FALSE(forever.over_limit(ever, src, 0));
  EXPECT_TRUE(forever.over_limit(ever, src, 1'000'000'000));
}

// A connection over the limit is recorded twice (--set, then --update, which records when it
// matches), as ufw's pair does in the kernel: the window stays full longer.
TEST(RateLimitCallout, OverTheLimitRecordsTwice) {
  RateLimiter rl;
  const RateLimitConfig c = config(R"({"seconds": 10, "hitcount": 3})");
  const auto src = v4(192, 0, 2, 7);
  EXPECT_FALSE(rl.over_limit(c, src, 0));
  EXPECT_FALSE(rl.over_limit(c, src, 1000));
  EXPECT_TRUE(rl.over_limit(c, src, 2000));  // recorded at 2 s twice
  // At 11.5 s the 3 newest are 2, 2 and 11.5 s: within 10 s. (Recorded once, they would be 1, 2 and 11.5.)
  EXPECT_TRUE(rl.over_limit(c, src, 11'500));
}

TEST(RateLimitCallout, PrefixMasksTheSource) {
  RateLimiter rl;
  const RateLimitConfig c24 = config(R"({"seconds": 30, "hitcount": 2, "prefix": 24})");
  EXPECT_FALSE(rl.over_limit(c24, v4(192, 0, 2, 7), 0));
  EXPECT_TRUE(rl.over_limit(c24, v4(192, 0, 2, 200), 1));  // the same /24
  EXPECT_FALSE(rl.over_limit(c24, v4(192, 0, 3, 7), 2));
  RateLimiter whole;
  const RateLimitConfig c = config(R"({"seconds": 30, "hitcount": 2, "name": "whole"})");
  EXPECT_FALSE(whole.over_limit(c, v4(192, 0, 2, 7), 0));
  EXPECT_FALSE(whole.over_limit(c, v4(192, 0, 2, 200), 1));
  // A prefix that is not a whole number of bytes: /23 holds 192.0.2.x and 192.0.3.x.
  RateLimiter odd;
  const RateLimitConfig c23 = config(R"({"seconds": 30, "hitcount": 2, "prefix": 23})");
  EXPECT_FALSE(odd.over_limit(c23, v4(192, 0, 2, 7), 0));
  EXPECT_TRUE(odd.over_limit(c23, v4(192, 0, 3, 9), 1));
}

TEST(RateLimitCallout, V4AndV6AreApart) {
  RateLimiter rl;
  const RateLimitConfig c = config(R"({"seconds": 30, "hitcount": 2})");
  NewConnection a = v4(32, 1, 13, 184);  // the first bytes of 2001:db8::
  NewConnection b;
  b.family = 6;
  b.source = {0x20, 0x01, 0x0d, 0xb8};
  EXPECT_FALSE(rl.over_limit(c, a, 0));
  EXPECT_FALSE(rl.over_limit(c, b, 1));
  EXPECT_TRUE(rl.over_limit(c, b, 2));
  // A v6 /64: the interface identifier is masked away.
  const RateLimitConfig c64 = config(R"({"seconds": 30, "hitcount": 2, "prefix": 64, "name": "v6"})");
  NewConnection d = b;
  d.source[15] = 1;
  EXPECT_FALSE(rl.over_limit(c64, b, 0));
  EXPECT_TRUE(rl.over_limit(c64, d, 1));
}

TEST(RateLimitCallout, TablesByNameAndTheCapOnSources) {
  RateLimiter rl;
  const RateLimitConfig a = config(R"({"seconds": 30, "hitcount": 2, "max_sources": 3})");
  const RateLimitConfig other = config(R"({"seconds": 30, "hitcount": 2, "name": "other"})");
  const RateLimitConfig same = config(R"({"seconds": 60, "hitcount": 2, "max_sources": 3})");  // DEFAULT too
  EXPECT_FALSE(rl.over_limit(a, v4(10, 0, 0, 1), 0));
  EXPECT_FALSE(rl.over_limit(other, v4(10, 0, 0, 1), 1));  // a table of its own
  EXPECT_TRUE(rl.over_limit(same, v4(10, 0, 0, 1), 2));    // the same table: counted together
  EXPECT_FALSE(rl.over_limit(a, v4(10, 0, 0, 2), 3));
  EXPECT_FALSE(rl.over_limit(a, v4(10, 0, 0, 3), 4));
  EXPECT_EQ(rl.stats("DEFAULT").sources, 3u);
  EXPECT_EQ(rl.stats("DEFAULT").dropped, 0u);
  // A fourth source: the least recently seen (10.0.0.1 was seen at 2, .2 at 3) is dropped.
  EXPECT_FALSE(rl.over_limit(a, v4(10, 0, 0, 4), 5));
  EXPECT_EQ(rl.stats("DEFAULT").sources, 3u);
  EXPECT_EQ(rl.stats("DEFAULT").dropped, 1u);
  EXPECT_FALSE(rl.over_limit(a, v4(10, 0, 0, 1), 6));  // forgotten: starts again
  EXPECT_EQ(rl.stats("DEFAULT").dropped, 2u);          // (10.0.0.2 went for it)
  EXPECT_TRUE(rl.over_limit(a, v4(10, 0, 0, 3), 7));   // kept: .3 and .4 were seen later than .2
  EXPECT_EQ(rl.stats("other").sources, 1u);
  for (int i = 0; i < 1000; ++i) rl.over_limit(a, v4(10, 1, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)), 8);
  EXPECT_EQ(rl.stats("DEFAULT").sources, 3u);
  EXPECT_EQ(rl.stats("DEFAULT").dropped, 1002u);
}

// The plugin: the callout at INBOUND_TRANSPORT_V4 and _V6 on packet bytes, as lfpd's packet queue
// gives them.
TEST(RateLimitCallout, ThePluginOnPackets) {
  const BuiltinPlugin plugin;
  const lfp_callout2* v4c = plugin.callout("4c460000-0000-4000-8000-000000000109");
  const lfp_callout2* v6c = plugin.callout("4c460000-0000-4000-8000-00000000010a");
  ASSERT_TRUE(v4c && v6c) << plugin.error();
  EXPECT_STREQ(v4c->layer, "INBOUND_TRANSPORT_V4");
  EXPECT_STREQ(v6c->layer, "INBOUND_TRANSPORT_V6");
  auto classify = [](const lfp_callout2* c, const std::string& config, const Buf& packet) {
    return BuiltinPlugin::classify(c, config, packet);
  };
  // A table of this test's own (the plugin's state lives as long as the process).
  const std::string config = R"({"seconds": 30, "hitcount": 3, "name": "plugin-test"})";
  const Buf syn = ip4({192, 0, 2, 7}, 6, kSyn), ack = ip4({192, 0, 2, 7}, 6, kAck);
  EXPECT_EQ(classify(v4c, config, syn), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v4c, config, ack), LFP_CALLOUT_PERMIT);  // not counted
  EXPECT_EQ(classify(v4c, config, ack), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v4c, config, syn), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v4c, config, syn), LFP_CALLOUT_BLOCK);   // the third SYN within 30 s
  EXPECT_EQ(classify(v4c, config, ack), LFP_CALLOUT_PERMIT);  // a flow already let in goes on
  EXPECT_EQ(classify(v4c, config, ip4({192, 0, 2, 8}, 6, kSyn)), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v6c, config, ip6(7, kSyn)), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v6c, config, ip6(7, kSyn, true)), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v6c, config, ip6(7, kSyn)), LFP_CALLOUT_BLOCK);
  // A configuration that does not parse fails closed, on every packet.
  EXPECT_EQ(classify(v4c, R"({"seconds": 30})", ack), LFP_CALLOUT_BLOCK);
  EXPECT_EQ(classify(v4c, "", syn), LFP_CALLOUT_BLOCK);
}

}  // namespace
}  // namespace lfp::test
