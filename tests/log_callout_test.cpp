// SPDX-License-Identifier: MIT
// The built-in log callout (callouts/builtin/log.hpp, keys ...010d to ...0112 of
// liblfp_inspect_callouts.so), an imported LOG rule: its configuration, which packets it logs (a TCP
// connection's first only, where the rule saw only those), its rate (events over it counted, not
// written, and the count on the next event), then the plugin itself, dlopened, on real packet bytes:
// CONTINUE always, with the prefix as the log text.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "builtin_plugin.hpp"
#include "lfp/callout/plugin.hpp"
#include "log.hpp"

namespace lfp::test {
namespace {

using inspect::LogConfig;
using inspect::PacketLog;
using Buf = std::vector<uint8_t>;

constexpr uint8_t kTcp = 6, kUdp = 17, kSyn = 0x02, kAck = 0x10;

// An IPv4 packet from 192.0.2.LAST to 10.0.0.1 with a TCP header (flags as given) or a UDP one.
Buf ip4(uint8_t last, uint8_t proto, uint8_t flags = 0) {
  Buf p(20 + 20, 0);
  p[0] = 0x45;
  p[3] = static_cast<uint8_t>(p.size());
  p[8] = 64;
  p[9] = proto;
  p[12] = 192, p[13] = 0, p[14] = 2, p[15] = last;
  p[16] = 10, p[19] = 1;
  p[20] = 0x30, p[21] = 0x39;  // source port 12345
  p[22] = 0, p[23] = 80;
  if (proto == kTcp) p[20 + 13] = flags;
  return p;
}

LogConfig config(const std::string& json) {
  std::string error;
  const auto c = inspect::parse_log_config(json, &error);
  EXPECT_TRUE(c) << json << ": " << error;
  return c.value_or(LogConfig{});
}

std::string refused(const std::string& json) {
  std::string error;
  EXPECT_FALSE(inspect::parse_log_config(json, &error)) << json;
  return error;
}

TEST(LogCallout, Configuration) {
  const LogConfig c = config(R"({"prefix": "[UFW BLOCK] ", "level": "4", "first_packets": true,
                                 "limit": {"rate": 3, "per": "minute", "burst": 10}})");
  EXPECT_EQ(c.prefix, "[UFW BLOCK] ");
  EXPECT_EQ(c.level, "4");
  EXPECT_TRUE(c.first_packets);
  ASSERT_TRUE(c.limit && c.limit->rate);
  EXPECT_EQ(c.limit->rate->packets, 3u);
  EXPECT_EQ(c.limit->rate->per_seconds, 60u);
  EXPECT_EQ(c.limit->rate->burst, 10u);
  const LogConfig none = config("");  // no configuration: every packet, no prefix
  EXPECT_EQ(none.prefix, "");
  EXPECT_FALSE(none.limit);
  EXPECT_EQ(refused("[1]"), "not a JSON object");
  EXPECT_EQ(refused(R"({"prefix": 1})"), "\"prefix\" is not a string");
  EXPECT_EQ(refused(R"({"first_packets": "yes"})"), "\"first_packets\" is not true or false");
  EXPECT_EQ(refused(R"({"limit": {"seconds": 30, "hitcount": 2}})"), "\"limit\" is not a packet rate (rate and per are required)");
  EXPECT_EQ(refused(R"({"limit": {"rate": 3}})"), "\"limit\" is not a packet rate (\"per\" is missing)");
  EXPECT_EQ(refused(R"({"limit": {"rate": 3, "per": "minute", "blocks": "under"}})"),
            "\"limit\": a log writes within its rate (no \"blocks\")");
  EXPECT_EQ(refused(R"({"prefixes": "x"})"), "unknown member \"prefixes\" (known: prefix, level, first_packets, limit)");
}

TEST(LogCallout, FirstPacketsOnlyLogsATcpConnectionsSyn) {
  PacketLog log;
  const LogConfig first = config(R"({"first_packets": true})"), every = config("{}");
  EXPECT_TRUE(log.log("f", first, ip4(7, kTcp, kSyn), 0).write);
  EXPECT_FALSE(log.log("f", first, ip4(7, kTcp, kSyn | kAck), 0).write);  // a reply
  EXPECT_FALSE(log.log("f", first, ip4(7, kTcp, kAck), 0).write);         // within a connection
  EXPECT_TRUE(log.log("f", first, ip4(7, kUdp), 0).write);                // (a datagram: conntrack's to know)
  EXPECT_TRUE(log.log("f", every, ip4(7, kTcp, kAck), 0).write);          // IPFORWARD's walk sees every packet
  EXPECT_FALSE(log.log("f", every, Buf{1, 2, 3}, 0).write);               // not IP
}

TEST(LogCallout, ARateLimitsTheEventsAndCountsThoseLeftOut) {
  PacketLog log;
  // ufw's 3/min, burst 10: ten events at once, then one every 20 s.
  const LogConfig c = config(R"({"prefix": "[UFW BLOCK] ", "limit": {"rate": 3, "per": "minute", "burst": 10}})");
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(log.log("f1", c, ip4(7, kUdp), 1000).write) << i;
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(log.log("f1", c, ip4(7, kUdp), 1000 + i).write) << i;
  EXPECT_TRUE(log.log("f2", c, ip4(7, kUdp), 1000).write);  // another filter: a bucket of its own
  const PacketLog::Entry next = log.log("f1", c, ip4(8, kUdp), 21'000);  // one token back after 20 s
  EXPECT_TRUE(next.write);
  EXPECT_EQ(next.suppressed, 4u);  // the events over the rate since the last one written
  EXPECT_FALSE(log.log("f1", c, ip4(8, kUdp), 21'001).write);
  const PacketLog::Entry later = log.log("f1", c, ip4(8, kUdp), 41'001);
  EXPECT_TRUE(later.write);
  EXPECT_EQ(later.suppressed, 1u);
}

TEST(LogCallout, ThePluginContinuesAndAsksForAnEvent) {
  const BuiltinPlugin plugin;
  for (const auto& [key, layer] : std::vector<std::pair<const char*, const char*>>{
           {inspect::kLogCalloutInboundV4, "INBOUND_TRANSPORT_V4"}, {inspect::kLogCalloutInboundV6, "INBOUND_TRANSPORT_V6"},
           {inspect::kLogCalloutOutboundV4, "OUTBOUND_TRANSPORT_V4"}, {inspect::kLogCalloutOutboundV6, "OUTBOUND_TRANSPORT_V6"},
           {inspect::kLogCalloutForwardV4, "IPFORWARD_V4"}, {inspect::kLogCalloutForwardV6, "IPFORWARD_V6"}}) {
    const lfp_callout2* c = plugin.callout(key);
    ASSERT_TRUE(c) << key << ": " << plugin.error();
    EXPECT_STREQ(c->layer, layer);
  }
  const lfp_callout2* c = plugin.callout(inspect::kLogCalloutInboundV4);
  auto classify = [&](const std::string& config, const Buf& packet, const char* filter) {
    lfp_callout_classify_in2 in{};
    in.v1 = {c->layer, nullptr, 0, filter, config.c_str(), 0, 0, "", packet.data(), packet.size(), 1};
    lfp_callout_classify_out2 out{};
    out.v1.action = LFP_CALLOUT_BLOCK;  // (so that the callout is seen to set its own)
    c->classify(&in, &out);
    EXPECT_EQ(out.v1.action, LFP_CALLOUT_CONTINUE);
    return std::pair<std::string, uint64_t>(out.log_text ? out.log_text : "(none)", out.log_suppressed);
  };
  const std::string config = R"({"prefix": "[UFW BLOCK] ", "first_packets": true, "limit": {"rate": 1, "per": "hour", "burst": 2}})";
  using Logged = std::pair<std::string, uint64_t>;
  EXPECT_EQ(classify(config, ip4(7, kTcp, kSyn), "log-test-1"), Logged("[UFW BLOCK] ", 0));
  EXPECT_EQ(classify(config, ip4(7, kTcp, kAck), "log-test-1"), Logged("(none)", 0));  // not a connection's first
  EXPECT_EQ(classify(config, ip4(7, kUdp), "log-test-1"), Logged("[UFW BLOCK] ", 0));
  EXPECT_EQ(classify(config, ip4(7, kUdp), "log-test-1"), Logged("(none)", 0));  // over the rate
  EXPECT_EQ(classify(config, ip4(7, kUdp), "log-test-2"), Logged("[UFW BLOCK] ", 0));  // another filter's bucket
  // A configuration that does not parse logs nothing and still decides nothing.
  EXPECT_EQ(classify(R"({"prefix": 7})", ip4(7, kTcp, kSyn), "log-test-3"), Logged("(none)", 0));
}

}  // namespace
}  // namespace lfp::test
