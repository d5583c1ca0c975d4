// SPDX-License-Identifier: MIT
// The built-in transport-match callout (callouts/builtin/transport_match.hpp, keys ...010b and
// ...010c of liblfp_inspect_callouts.so, at IPFORWARD_V4 / _V6): its configuration, the protocol and
// ports it reads from a packet (v4 and v6 with extension headers; a later fragment has no ports),
// port ranges, and the plugin itself, dlopened: the configured action on a match, CONTINUE otherwise.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "builtin_plugin.hpp"
#include "lfp/callout/plugin.hpp"
#include "transport_match.hpp"

namespace lfp::test {
namespace {

using inspect::TransportMatchConfig;
using Buf = std::vector<uint8_t>;

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;

// An IPv4 packet from 192.0.2.7 to 172.17.0.2 with a transport header of 8 bytes (ports first).
Buf ip4(uint8_t proto, uint16_t sport, uint16_t dport, uint16_t frag_offset = 0) {
  Buf p = {0x45, 0, 0, 28, 0, 0, static_cast<uint8_t>(frag_offset >> 8), static_cast<uint8_t>(frag_offset), 64, proto, 0, 0,
           192,  0, 2, 7,  172, 17, 0, 2,
           static_cast<uint8_t>(sport >> 8), static_cast<uint8_t>(sport), static_cast<uint8_t>(dport >> 8), static_cast<uint8_t>(dport),
           0, 0, 0, 0};
  return p;
}

// An IPv6 packet, with a hop-by-hop header first if asked, or a fragment header at `fragment_offset`.
Buf ip6(uint8_t proto, uint16_t sport, uint16_t dport, bool hop_by_hop = false, int fragment_offset = -1) {
  Buf p(40, 0);
  p[0] = 0x60;
  p[7] = 64;
  p[8] = 0x20, p[9] = 0x01, p[10] = 0x0d, p[11] = 0xb8, p[23] = 7;
  p[39] = 2;
  uint8_t* next = &p[6];
  if (hop_by_hop) {
    *next = 0;
    p.insert(p.end(), {0, 0, 1, 4, 0, 0, 0, 0});
    next = &p[p.size() - 8];
  }
  if (fragment_offset >= 0) {
    *next = 44;
    p.insert(p.end(), {0, 0, static_cast<uint8_t>(fragment_offset >> 5), static_cast<uint8_t>(fragment_offset << 3 | 1), 0, 0, 0, 1});
    next = &p[p.size() - 8];
  }
  *next = proto;
  p.insert(p.end(), {static_cast<uint8_t>(sport >> 8), static_cast<uint8_t>(sport), static_cast<uint8_t>(dport >> 8),
                     static_cast<uint8_t>(dport), 0, 0, 0, 0});
  return p;
}

TransportMatchConfig config(const std::string& json) {
  std::string error;
  const auto c = inspect::parse_transport_match_config(json, &error);
  EXPECT_TRUE(c) << json << ": " << error;
  return c.value_or(TransportMatchConfig{});
}

TEST(TransportMatchCallout, Configuration) {
  const auto c = config(R"({"protocols": [[6, 6]], "destination_ports": [[80, 80], [8000, 8080]], "action": "PERMIT"})");
  EXPECT_TRUE(c.permit);
  ASSERT_TRUE(c.protocols && c.destination_ports);
  EXPECT_FALSE(c.source_ports);
  EXPECT_EQ(c.destination_ports->size(), 2u);
  EXPECT_FALSE(config(R"({"action": "BLOCK"})").permit);
  for (const char* bad : {"", "[]", R"({"protocols": [[6, 6]]})", R"({"action": "ALLOW"})",
                          R"({"action": "PERMIT", "protocols": [[6, 256]]})", R"({"action": "PERMIT", "source_ports": [[90, 80]]})",
                          R"({"action": "PERMIT", "destination_ports": [80]})", R"({"action": "PERMIT", "ports": [[1, 2]]})",
                          R"({"action": "PERMIT", "destination_ports": [[-1, 2]]})"}) {
    std::string error;
    EXPECT_FALSE(inspect::parse_transport_match_config(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(TransportMatchCallout, ProtocolAndPortRanges) {
  const auto web = config(R"({"protocols": [[6, 6]], "destination_ports": [[80, 80], [8000, 8080]], "action": "PERMIT"})");
  EXPECT_TRUE(inspect::transport_matches(web, ip4(kTcp, 40000, 80)));
  EXPECT_TRUE(inspect::transport_matches(web, ip4(kTcp, 40000, 8000)));
  EXPECT_TRUE(inspect::transport_matches(web, ip4(kTcp, 40000, 8080)));
  EXPECT_FALSE(inspect::transport_matches(web, ip4(kTcp, 40000, 81)));
  EXPECT_FALSE(inspect::transport_matches(web, ip4(kTcp, 40000, 8081)));
  EXPECT_FALSE(inspect::transport_matches(web, ip4(kUdp, 40000, 80)));
  const auto from_high = config(R"({"source_ports": [[1024, 65535]], "destination_ports": [[53, 53]], "action": "BLOCK"})");
  EXPECT_TRUE(inspect::transport_matches(from_high, ip4(kUdp, 40000, 53)));
  EXPECT_TRUE(inspect::transport_matches(from_high, ip4(kTcp, 1024, 53)));
  EXPECT_FALSE(inspect::transport_matches(from_high, ip4(kUdp, 1023, 53)));
  EXPECT_FALSE(inspect::transport_matches(from_high, ip4(kIcmp, 40000, 53)));  // ICMP has no ports
  const auto not_tcp = config(R"({"protocols": [[0, 5], [7, 255]], "action": "BLOCK"})");
  EXPECT_TRUE(inspect::transport_matches(not_tcp, ip4(kUdp, 1, 2)));
  EXPECT_TRUE(inspect::transport_matches(not_tcp, ip4(kIcmp, 1, 2)));
  EXPECT_FALSE(inspect::transport_matches(not_tcp, ip4(kTcp, 1, 2)));
  EXPECT_FALSE(inspect::transport_matches(web, Buf{0x45, 0, 0}));  // cut short: not IP
}

TEST(TransportMatchCallout, V6ExtensionHeadersAndFragments) {
  const auto web = config(R"({"protocols": [[6, 6]], "destination_ports": [[80, 80]], "action": "PERMIT"})");
  EXPECT_TRUE(inspect::transport_matches(web, ip6(kTcp, 40000, 80)));
  EXPECT_TRUE(inspect::transport_matches(web, ip6(kTcp, 40000, 80, true)));
  EXPECT_TRUE(inspect::transport_matches(web, ip6(kTcp, 40000, 80, true, 0)));  // the first fragment
  EXPECT_FALSE(inspect::transport_matches(web, ip6(kTcp, 40000, 81, true)));
  EXPECT_FALSE(inspect::transport_matches(web, ip6(kTcp, 40000, 80, false, 185)));  // a later one: no ports
  EXPECT_FALSE(inspect::transport_matches(web, ip4(kTcp, 40000, 80, 0x0010)));      // v4, likewise
  // The protocol alone is in every fragment, as iptables' -p sees it.
  const auto tcp = config(R"({"protocols": [[6, 6]], "action": "BLOCK"})");
  EXPECT_TRUE(inspect::transport_matches(tcp, ip6(kTcp, 0, 0, false, 185)));
  EXPECT_TRUE(inspect::transport_matches(tcp, ip4(kTcp, 0, 0, 0x0010)));
  const auto h = inspect::transport_header(ip6(kUdp, 5, 6, true));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->family, 6);
  EXPECT_EQ(h->protocol, kUdp);
  EXPECT_EQ(h->offset, 48u);
  EXPECT_EQ(inspect::ports_of(ip6(kUdp, 5, 6, true), *h), (std::pair<uint16_t, uint16_t>(5, 6)));
}

TEST(TransportMatchCallout, ThePluginAnswersTheActionOrContinue) {
  const BuiltinPlugin plugin;
  const lfp_callout2* v4c = plugin.callout("4c460000-0000-4000-8000-00000000010b");
  const lfp_callout2* v6c = plugin.callout("4c460000-0000-4000-8000-00000000010c");
  ASSERT_TRUE(v4c && v6c) << plugin.error();
  EXPECT_STREQ(v4c->layer, "IPFORWARD_V4");
  EXPECT_STREQ(v6c->layer, "IPFORWARD_V6");
  auto classify = [](const lfp_callout2* c, const std::string& config, const Buf& packet) {
    return BuiltinPlugin::classify(c, config, packet, LFP_CALLOUT_PERMIT);  // (the callout must say CONTINUE itself)
  };
  const std::string permit80 = R"({"protocols": [[6, 6]], "destination_ports": [[80, 80]], "action": "PERMIT"})";
  const std::string block53 = R"({"protocols": [[17, 17]], "destination_ports": [[53, 53]], "action": "BLOCK"})";
  EXPECT_EQ(classify(v4c, permit80, ip4(kTcp, 40000, 80)), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v4c, permit80, ip4(kTcp, 40000, 81)), LFP_CALLOUT_CONTINUE);
  EXPECT_EQ(classify(v4c, permit80, ip4(kUdp, 40000, 80)), LFP_CALLOUT_CONTINUE);
  EXPECT_EQ(classify(v6c, permit80, ip6(kTcp, 40000, 80, true)), LFP_CALLOUT_PERMIT);
  EXPECT_EQ(classify(v6c, permit80, ip6(kTcp, 40000, 80, false, 185)), LFP_CALLOUT_CONTINUE);
  EXPECT_EQ(classify(v4c, block53, ip4(kUdp, 40000, 53)), LFP_CALLOUT_BLOCK);
  EXPECT_EQ(classify(v4c, block53, ip4(kTcp, 40000, 53)), LFP_CALLOUT_CONTINUE);
  // A configuration that does not parse fails closed, on every packet.
  EXPECT_EQ(classify(v4c, R"({"protocols": [[6, 6]]})", ip4(kTcp, 40000, 81)), LFP_CALLOUT_BLOCK);
  EXPECT_EQ(classify(v4c, "", ip4(kTcp, 40000, 80)), LFP_CALLOUT_BLOCK);
}

}  // namespace
}  // namespace lfp::test
