// SPDX-License-Identifier: MIT
// The built-in rate-limit callout (callouts/builtin/ratelimit.hpp, keys ...0109 and ...010a of
// liblfp_inspect_callouts.so): its configuration, which packets it counts, xt_recent's window and
// hit count as ufw uses them (--set, then --update), the source mask, v4 and v6 kept apart, the cap
// on sources; packet rates as token buckets (xt_limit, xt_hashlimit's keys and expiry, nft's limit);
// then the plugin itself, dlopened, on real packet bytes.
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
           {R"({"hitcount": 6, "secs": 30})",
            "unknown member \"secs\" (known: seconds, hitcount, prefix, rate, per, burst, blocks, key, source_prefix, "
            "destination_prefix, expire, name, max_sources)"},
           // A packet rate.
           {R"({"rate": 5})", "\"per\" is missing"},
           {R"({"per": "second"})", "\"rate\" is missing"},
           {R"({"rate": 0, "per": "second"})", "\"rate\" is not a number of packets from 1 to 1000000000"},
           {R"({"rate": 5, "per": "week"})", "\"per\" is not second, minute, hour or day"},
           {R"({"rate": 5, "per": "second", "burst": 0})", "\"burst\" is not a number of packets from 1 to 1000000"},
           {R"({"rate": 5, "per": "second", "blocks": "both"})", "\"blocks\" is not over, under or none"},
           {R"({"rate": 5, "per": "second", "key": ["srcip"]})",
            "\"key\" is not a list of source, destination, source_port, destination_port"},
           {R"({"rate": 5, "per": "second", "source_prefix": 200})", "\"source_prefix\" is not a prefix length (0 to 128)"},
           {R"({"rate": 5, "per": "second", "expire": -1})", "\"expire\" is not a number of milliseconds (0 to a year)"},
           {R"({"rate": 5, "per": "second", "hitcount": 6})",
            "a rate (rate, per, burst, ...) and a hit count (seconds, hitcount, prefix) are two kinds of limit: give one"}}) {
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

// A packet rate, as xt_limit, xt_hashlimit and nft's limit count it: a bucket of `burst` packets, full
// at first, refilled at the rate; a packet that finds a token takes it, one that finds none is over.
TEST(RateLimitCallout, APacketRateIsATokenBucket) {
  const RateLimitConfig c = config(R"({"rate": 2, "per": "second", "burst": 3, "name": "bucket"})");
  ASSERT_TRUE(c.rate);
  EXPECT_EQ(c.rate->packets, 2u);
  EXPECT_EQ(c.rate->per_seconds, 1u);
  EXPECT_EQ(c.rate->burst, 3u);
  EXPECT_EQ(c.rate->blocks, RateLimitConfig::Rate::Blocks::OVER);
  RateLimiter rl;
  const auto a = v4(192, 0, 2, 7), b = v4(192, 0, 2, 8);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(rl.over_rate(c, a, 0)) << i;  // the burst
  EXPECT_TRUE(rl.over_rate(c, a, 0));
  EXPECT_TRUE(rl.over_rate(c, b, 0));    // no key: one bucket for every source
  EXPECT_TRUE(rl.over_rate(c, a, 499));  // a token every 500 ms
  EXPECT_FALSE(rl.over_rate(c, a, 500));
  EXPECT_TRUE(rl.over_rate(c, a, 500));
  EXPECT_FALSE(rl.over_rate(c, a, 10'000));  // refilled, but to the burst only
  EXPECT_FALSE(rl.over_rate(c, a, 10'000));
  EXPECT_FALSE(rl.over_rate(c, a, 10'000));
  EXPECT_TRUE(rl.over_rate(c, a, 10'000));
  // A packet over the rate takes nothing: the next token still comes 500 ms after the last.
  EXPECT_TRUE(rl.over_rate(c, a, 10'400));
  EXPECT_FALSE(rl.over_rate(c, a, 10'500));
  // Per minute: 3/min is a token every 20 s (ufw's logging rules: --limit 3/min --limit-burst 10).
  const RateLimitConfig slow = config(R"({"rate": 3, "per": "minute", "burst": 1, "name": "slow"})");
  EXPECT_FALSE(rl.over_rate(slow, a, 0));
  EXPECT_TRUE(rl.over_rate(slow, a, 19'999));
  EXPECT_FALSE(rl.over_rate(slow, a, 20'000));
  // A burst at the largest rate and unit does not overflow.
  const RateLimitConfig huge = config(R"({"rate": 1, "per": "day", "burst": 1000000, "name": "huge"})");
  EXPECT_FALSE(rl.over_rate(huge, a, 0));
  EXPECT_FALSE(rl.over_rate(huge, a, int64_t{1} << 40));
}

// xt_hashlimit: a bucket per key (its --hashlimit-mode, the masks), keys unseen for `expire` starting
// again full; `blocks` says which side of the rate the callout blocks (the rule's target and whether
// it matches over the rate, --hashlimit-above and nft's `limit rate over`, or within it).
TEST(RateLimitCallout, HashlimitKeysExpiryAndWhichSideBlocks) {
  RateLimiter rl;
  const RateLimitConfig per_source = config(
      R"({"rate": 1, "per": "second", "burst": 1, "key": ["source"], "source_prefix": 24, "expire": 3000, "name": "h"})");
  auto conn = [](uint8_t last, uint16_t dport) {
    NewConnection n = v4(192, 0, 2, last);
    n.destination = {10, 0, 0, 1};
    n.destination_port = dport;
    return n;
  };
  EXPECT_FALSE(rl.over_rate(per_source, conn(7, 22), 0));
  EXPECT_TRUE(rl.over_rate(per_source, conn(8, 22), 0));  // the same /24
  NewConnection other = conn(7, 22);
  other.source[2] = 3;
  EXPECT_FALSE(rl.over_rate(per_source, other, 0));  // another /24
  const RateLimitConfig per_port = config(R"({"rate": 1, "per": "second", "burst": 1, "key": ["destination_port"], "name": "p"})");
  EXPECT_FALSE(rl.over_rate(per_port, conn(7, 22), 0));
  EXPECT_FALSE(rl.over_rate(per_port, conn(7, 80), 0));
  EXPECT_TRUE(rl.over_rate(per_port, conn(9, 80), 0));
  // Expiry: at a token an hour the bucket is empty at 2 s, but a key unseen for more than 3 s starts full.
  const RateLimitConfig slow = config(R"({"rate": 1, "per": "hour", "burst": 1, "key": ["source"], "expire": 3000, "name": "e"})");
  EXPECT_FALSE(rl.over_rate(slow, conn(7, 22), 0));
  EXPECT_TRUE(rl.over_rate(slow, conn(7, 22), 2000));
  EXPECT_TRUE(rl.over_rate(slow, conn(7, 22), 5000));  // seen at 2 s: 3 s since, not more
  EXPECT_FALSE(rl.over_rate(slow, conn(7, 22), 8001));

  // blocks(): only a SYN is counted; "over" blocks what is over the rate, "under" what is within it.
  const RateLimitConfig over = config(R"({"rate": 1, "per": "minute", "burst": 2, "name": "over"})");
  const RateLimitConfig under = config(R"({"rate": 1, "per": "minute", "burst": 2, "blocks": "under", "name": "under"})");
  const Buf syn = ip4({192, 0, 2, 7}, 6, kSyn), ack = ip4({192, 0, 2, 7}, 6, kAck);
  RateLimiter b;
  EXPECT_FALSE(b.blocks(over, syn, 0));
  EXPECT_FALSE(b.blocks(over, ack, 0));  // not counted
  EXPECT_FALSE(b.blocks(over, syn, 0));
  EXPECT_TRUE(b.blocks(over, syn, 0));
  EXPECT_FALSE(b.blocks(over, ack, 0));
  EXPECT_TRUE(b.blocks(under, syn, 0));
  EXPECT_TRUE(b.blocks(under, syn, 0));
  EXPECT_FALSE(b.blocks(under, syn, 0));
  // "none" only counts, in the bucket of its table: an ACCEPT's packets the later rules let in too.
  const RateLimitConfig counted = config(R"({"rate": 1, "per": "minute", "burst": 1, "blocks": "none", "name": "shared"})");
  const RateLimitConfig shared = config(R"({"rate": 1, "per": "minute", "burst": 1, "name": "shared"})");
  EXPECT_FALSE(b.blocks(counted, syn, 0));
  EXPECT_FALSE(b.blocks(counted, syn, 0));
  EXPECT_TRUE(b.blocks(shared, syn, 0));  // the token went to the counted one
  // Connections per source through blocks() too.
  const RateLimitConfig recent = config(R"({"seconds": 30, "hitcount": 2, "name": "recent"})");
  EXPECT_FALSE(b.blocks(recent, syn, 0));
  EXPECT_FALSE(b.blocks(recent, ack, 0));
  EXPECT_TRUE(b.blocks(recent, syn, 1));
}

// The plugin: the callout at INBOUND_TRANSPORT_V4 and _V6 on packet bytes, as lfpd's packet queue
// gives them.
TEST(RateLimitCallout, ThePluginOnPackets) {
  const BuiltinPlugin plugin;
  const lfp_callout2* v4c = plugin.callout(inspect::kRateLimitCalloutV4);
  const lfp_callout2* v6c = plugin.callout(inspect::kRateLimitCalloutV6);
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
  // A packet rate.
  const std::string rate = R"({"rate": 1, "per": "minute", "burst": 1, "name": "plugin-test-rate"})";
  EXPECT_EQ(classify(v4c, rate, syn), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v4c, rate, syn), LFP_CALLOUT_BLOCK);
  EXPECT_EQ(classify(v4c, rate, ack), LFP_CALLOUT_PERMIT);
  // A configuration that does not parse fails closed, on every packet.
  EXPECT_EQ(classify(v4c, R"({"seconds": 30})", ack), LFP_CALLOUT_BLOCK);
  EXPECT_EQ(classify(v4c, "", syn), LFP_CALLOUT_BLOCK);
}

}  // namespace
}  // namespace lfp::test
