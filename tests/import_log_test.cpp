// SPDX-License-Identifier: MIT
// LOG rules imported as LFP net events: iptables' `-j LOG --log-prefix` and nftables' `log prefix` (on
// its own, or before a verdict) become filters of the built-in log callout (CALLOUT_INSPECTION) at the
// rule's place in the flattened order, with its conditions and its rate as the provider context. The
// engine runs the imported policy with a recording driver at the log callout's keys: a packet reaches
// a log filter exactly when the original's chain walk reaches the LOG rule.
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lfp/engine/callout.hpp"
#include "lfp/engine/engine.hpp"
#include "lfp/import/iptables.hpp"
#include "lfp/import/nft.hpp"
#include "lfp/policy/policy.hpp"
#include "log.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

// Records the log filters a classify reaches (their provider contexts' prefixes) and continues.
struct RecordingLog : CalloutDriver {
  const FilterEngine* engine = nullptr;
  std::vector<std::string> prefixes;
  void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) override {
    const ProviderContext* pc = in.filter.provider_context ? engine->provider_context(*in.filter.provider_context) : nullptr;
    prefixes.push_back(pc ? json::parse(pc->data).value("prefix", "?") : "(no context)");
    out.verdict = CalloutVerdict::CONTINUE;
  }
};

class Imported {
 public:
  explicit Imported(const json& policy) : log_(std::make_shared<RecordingLog>()) {
    log_->engine = &engine_;
    for (const char* key : {inspect::kLogCalloutInboundV4, inspect::kLogCalloutInboundV6, inspect::kLogCalloutOutboundV4,
                            inspect::kLogCalloutOutboundV6, inspect::kLogCalloutForwardV4, inspect::kLogCalloutForwardV6})
      engine_.register_callout(*Guid::parse(key), log_);
    policy::apply_policy(engine_, policy::policy_from_json(policy));
  }
  // The log prefixes an incoming packet reaches at INBOUND_TRANSPORT_V4, in order.
  std::vector<std::string> logs(const std::string& remote, int proto, int local_port) {
    const json values = {{"IP_PROTOCOL", proto}, {"IP_REMOTE_ADDRESS", remote}, {"IP_LOCAL_ADDRESS", "10.1.2.1"},
                         {"IP_REMOTE_PORT", 40000}, {"IP_LOCAL_PORT", local_port}};
    policy::Request req;
    policy::parse_request(json{{"layer", "INBOUND_TRANSPORT_V4"}, {"values", values}}, req);
    log_->prefixes.clear();
    const auto r = engine_.classify(req.layer, req.values);
    EXPECT_TRUE(r.permit) << "the transport layer passes every packet on to the ALE layers (the ALE layers decide)";
    return log_->prefixes;
  }

 private:
  FilterEngine engine_;
  std::shared_ptr<RecordingLog> log_;
};

const json* filter_named(const json& pol, const std::string& name) {
  for (const auto& f : pol["filters"])
    if (f["name"] == name) return &f;
  return nullptr;
}

std::string context_data(const json& pol, const json& filter) {
  for (const auto& c : pol["provider_contexts"])
    if (c["key"] == filter["provider_context"]) return c["data"];
  return "";
}

using Logs = std::vector<std::string>;

TEST(ImportLog, IptablesLogIsALogFilterAtItsPlace) {
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/tests/data/import/host-firewall.rules");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (auto [from, to] : {std::pair<std::string, std::string>{"@A@", "10.1.2.1"}, {"@NET@", "10.1.2.0/24"}})
    for (size_t p; (p = text.find(from)) != std::string::npos;) text.replace(p, from.size(), to);
  // Line 18: -A INPUT -m limit --limit 5/min -j LOG --log-prefix "dropped: " (after every ACCEPT of INPUT).
  const auto r = import::import_iptables(text);
  const json* log = filter_named(r.policy, "INPUT line 18 log");
  ASSERT_TRUE(log) << r.policy["filters"].dump();
  EXPECT_EQ((*log)["layer"], "INBOUND_TRANSPORT_V4");
  EXPECT_EQ((*log)["action"], json({{"type", "CALLOUT_INSPECTION"}, {"callout", inspect::kLogCalloutInboundV4}}));
  EXPECT_EQ(json::parse(context_data(r.policy, *log)),
            json({{"prefix", "dropped: "}, {"first_packets", true}, {"limit", {{"rate", 5}, {"per", "minute"}, {"burst", 5}}}}));
  std::string err;
  EXPECT_TRUE(inspect::parse_log_config(context_data(r.policy, *log), &err)) << err;  // the callout takes it
  // The coverage says so; the rule is not among what was left out.
  const auto acct = std::find_if(r.coverage.begin(), r.coverage.end(), [](const auto& c) { return c.line == 18; });
  ASSERT_NE(acct, r.coverage.end());
  // (and the ICMP walk's, among its filters at the same layer, after line 11's accept of every ICMP request)
  EXPECT_EQ(acct->filters, (std::vector<std::string>{"INPUT line 18 log", "INPUT line 18 icmp log"}));
  ASSERT_FALSE(acct->notes.empty());
  EXPECT_EQ(acct->notes[0].rfind("imported as net events (filter \"INPUT line 18 log\")", 0), 0u) << acct->notes[0];
  EXPECT_TRUE(std::none_of(r.unmapped.begin(), r.unmapped.end(), [](const auto& u) { return u.line == 18; }));
  EXPECT_TRUE(std::any_of(r.needs.begin(), r.needs.end(), [](const std::string& n) { return n.find("log callout") != std::string::npos; }));

  Imported lfp(r.policy);
  const Logs dropped = {"dropped: "}, none;
  EXPECT_EQ(lfp.logs("198.51.100.7", 6, 5555), dropped);  // no ACCEPT matches: the LOG sees it
  EXPECT_EQ(lfp.logs("198.51.100.7", 17, 1234), dropped);
  EXPECT_EQ(lfp.logs("10.1.2.5", 6, 22), none);            // line 12 accepts it first
  EXPECT_EQ(lfp.logs("198.51.100.7", 6, 22), dropped);     // (not from the admin LAN)
  EXPECT_EQ(lfp.logs("10.1.2.1", 6, 443), none);           // the jump to WEB drops it first
  EXPECT_EQ(lfp.logs("198.51.100.7", 6, 8050), none);      // line 14
  EXPECT_EQ(lfp.logs("198.51.100.7", 17, 53), none);       // line 15
  EXPECT_EQ(lfp.logs("203.0.113.15", 6, 9000), none);      // line 16's range
  EXPECT_EQ(lfp.logs("203.0.113.21", 6, 9000), dropped);
  EXPECT_EQ(lfp.logs("198.51.100.7", 6, 23), none);        // line 17 rejects it first
  EXPECT_EQ(lfp.logs("198.51.100.7", 1, 0), none);         // ICMP: line 11 accepts every ICMP packet
}

TEST(ImportLog, NftLogAloneAndBeforeAVerdict) {
  const auto r = import::import_nft(R"({"nftables": [
    {"table": {"family": "ip", "name": "f", "handle": 1}},
    {"chain": {"family": "ip", "table": "f", "name": "input", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
    {"rule": {"family": "ip", "table": "f", "chain": "input", "handle": 3, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}},
    {"rule": {"family": "ip", "table": "f", "chain": "input", "handle": 4, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "192.0.2.0", "len": 24}}}},
      {"log": {"prefix": "bad: "}}, {"drop": null}]}},
    {"rule": {"family": "ip", "table": "f", "chain": "input", "handle": 5, "expr": [
      {"limit": {"rate": 3, "per": "minute"}}, {"counter": {"packets": 0, "bytes": 0}}, {"log": {"prefix": "rest: ", "level": "warn"}}]}},
    {"rule": {"family": "ip", "table": "f", "chain": "input", "handle": 6, "expr": [
      {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}, {"accept": null}]}}]})",
                                    {.source = "logs.json"});
  // Item 3: the log before the drop; item 4: a log with a rate. (Items count from 0.)
  const json* bad = filter_named(r.policy, "ip f input item 3 log");
  const json* rest = filter_named(r.policy, "ip f input item 4 log");
  ASSERT_TRUE(bad && rest) << r.policy["filters"].dump();
  EXPECT_EQ(json::parse(context_data(r.policy, *bad)), json({{"prefix", "bad: "}, {"first_packets", true}}));
  EXPECT_EQ(json::parse(context_data(r.policy, *rest)),
            json({{"prefix", "rest: "}, {"level", "warn"}, {"first_packets", true}, {"limit", {{"rate", 3}, {"per", "minute"}, {"burst", 5}}}}));
  EXPECT_TRUE(filter_named(r.policy, "ip f input item 3"));  // the drop is a filter too

  Imported lfp(r.policy);
  EXPECT_EQ(lfp.logs("192.0.2.9", 6, 80), Logs({"bad: "}));      // logged, then dropped: the later log never sees it
  EXPECT_EQ(lfp.logs("198.51.100.7", 6, 80), Logs({"rest: "}));
  EXPECT_EQ(lfp.logs("198.51.100.7", 17, 53), Logs({"rest: "}));  // the log is before the accept of item 5
  EXPECT_EQ(lfp.logs("192.0.2.9", 6, 22), Logs());                // accepted first
  EXPECT_EQ(lfp.logs("198.51.100.7", 6, 22), Logs());
}

TEST(ImportLog, WhatALogCannotBe) {
  const auto r = import::import_iptables(R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m hashlimit --hashlimit-above 5/sec --hashlimit-name x -j LOG --log-prefix "over: "
-A INPUT -m limit --limit 5/sec -j LOG --log-prefix "fine: " --log-level 4 --log-tcp-options
-A FORWARD -p tcp --dport 80 -j LOG --log-prefix "fwd: "
-A FORWARD -j LOG --log-prefix "fwd all: "
COMMIT
)");
  std::map<int, std::string> why;
  for (const auto& u : r.unmapped) why[u.line] += u.reason;
  EXPECT_NE(why[5].find("the LOG is not imported: a log over a rate"), std::string::npos) << why[5];
  EXPECT_FALSE(why.count(6)) << why[6];
  const json* fine = filter_named(r.policy, "INPUT line 6 log");
  ASSERT_TRUE(fine);
  EXPECT_EQ(json::parse(context_data(r.policy, *fine)).value("level", ""), "4");
  // FORWARD: at IPFORWARD, among its filters; a protocol and port there are no fields of IPFORWARD.
  EXPECT_NE(why[7].find("the LOG is not imported at IPFORWARD_V4: its protocol and ports"), std::string::npos) << why[7];
  const json* fwd = filter_named(r.policy, "FORWARD line 8 log");
  ASSERT_TRUE(fwd);
  EXPECT_EQ((*fwd)["layer"], "IPFORWARD_V4");
  EXPECT_EQ((*fwd)["action"]["callout"], inspect::kLogCalloutForwardV4);
  EXPECT_EQ(json::parse(context_data(r.policy, *fwd)), json({{"prefix", "fwd all: "}}));  // (every packet: IPFORWARD's walk)
  EXPECT_GT((*fwd)["weight"]["explicit"].get<uint64_t>(), filter_named(r.policy, "FORWARD policy DROP")->at("weight")["explicit"].get<uint64_t>());
}

}  // namespace
}  // namespace lfp::test
