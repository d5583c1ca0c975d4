// SPDX-License-Identifier: MIT
// Interfaces by name in conditions ({"name": "eth0"}): the policy form and its round trip, the
// engine's interface table (a filter decides by the index its name has now, and changes its decision
// when the table changes), and the importers, which emit names. The live side (lfpd keeping names
// current as links come and go) is interface_names_live_test.cpp.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lfp/engine/engine.hpp"
#include "lfp/import/iptables.hpp"
#include "lfp/import/nft.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

constexpr const char* kBlockIn = "5e11f000-0000-4000-8000-0000000000c1";
constexpr const char* kBlockNotOut = "5e11f000-0000-4000-8000-0000000000c2";

json named(const std::string& field, const std::string& name, const std::string& match = "EQUAL") {
  return {{"field", field}, {"match", match}, {"value", {{"name", name}}}};
}

json one_filter(const std::string& key, const std::string& layer, json conditions) {
  return {{"filters", {{{"key", key}, {"name", key}, {"layer", layer}, {"action", "BLOCK"}, {"conditions", std::move(conditions)}}}}};
}

// The reason a policy is refused ("" when it is not).
std::string refusal(const json& policy) {
  try {
    FilterEngine e;
    policy::apply_policy(e, policy::policy_from_json(policy));
  } catch (const std::exception& err) {
    return err.what();
  }
  return "";
}

TEST(InterfaceNames, PolicyFormRoundTripsAndKeepsTheName) {
  json p = one_filter(kBlockIn, "IPFORWARD_V4", {named("SOURCE_INTERFACE_INDEX", "eth0"),
                                                   named("DESTINATION_INTERFACE_INDEX", "wg0", "NOT_EQUAL")});
  const json once = policy::to_json(policy::policy_from_json(p));
  const json& conds = once["filters"][0]["conditions"];
  ASSERT_EQ(conds.size(), 2u) << once.dump();
  EXPECT_EQ(conds[0]["value"], json({{"name", "eth0"}}));
  EXPECT_EQ(conds[1]["value"], json({{"name", "wg0"}}));
  EXPECT_EQ(conds[1]["match"], "NOT_EQUAL");
  EXPECT_EQ(policy::to_json(policy::policy_from_json(once)), once);
  // What lfpd shows (and stores) is the name, not the index it resolved.
  FilterEngine e;
  e.set_interfaces({{"eth0", 7}, {"wg0", 9}});
  policy::apply_policy(e, policy::policy_from_json(p));
  const json shown = policy::to_json(*e.filter(*Guid::parse(kBlockIn)));
  EXPECT_EQ(shown["conditions"][0]["value"], json({{"name", "eth0"}})) << shown.dump();
  EXPECT_EQ(policy::export_policy(e).filters.at(0).conditions, policy::policy_from_json(p).filters.at(0).conditions);
  // Every interface field takes a name; the packet layers' and the ALE layers' alike.
  EXPECT_EQ(refusal(one_filter(kBlockIn, "INBOUND_IPPACKET_V6", {named("IP_LOCAL_INTERFACE", "eth0"), named("INTERFACE_INDEX", "eth1")})), "");
  EXPECT_EQ(refusal(one_filter(kBlockIn, "ALE_AUTH_RECV_ACCEPT_V4", {named("IP_ARRIVAL_INTERFACE", "eth0")})), "");
}

TEST(InterfaceNames, BadNamesAndMatchesAreRefusedWithTheirReason) {
  auto why = [](json cond) { return refusal(one_filter(kBlockIn, "IPFORWARD_V4", {std::move(cond)})); };
  EXPECT_NE(why({{"field", "IP_SOURCE_ADDRESS"}, {"value", {{"name", "eth0"}}}}).find("takes no interface name"), std::string::npos);
  EXPECT_NE(why(named("SOURCE_INTERFACE_INDEX", "eth0", "GREATER")).find("does not apply to an interface name"), std::string::npos);
  EXPECT_NE(why(named("SOURCE_INTERFACE_INDEX", "")).find("expected an interface name"), std::string::npos);
  EXPECT_NE(why(named("SOURCE_INTERFACE_INDEX", "a-name-too-long-for-linux")).find("is not an interface name"), std::string::npos);
  EXPECT_NE(why(named("SOURCE_INTERFACE_INDEX", "eth0/1")).find("is not an interface name"), std::string::npos);
  EXPECT_NE(why({{"field", "SOURCE_INTERFACE_INDEX"}, {"value", {{"name", "eth0"}, {"index", 3}}}}).find("index"), std::string::npos);
  EXPECT_NE(why({{"field", "SOURCE_INTERFACE_INDEX"}, {"value", {{"name", 3}}}}).find("expected an interface name"), std::string::npos);
}

TEST(InterfaceNames, TheEngineDecidesByTheIndexTheNameHasNow) {
  FilterEngine e;
  policy::apply_policy(e, policy::policy_from_json(one_filter(kBlockIn, "IPFORWARD_V4", {named("SOURCE_INTERFACE_INDEX", "veth9")})));
  const uint64_t id = e.filter(*Guid::parse(kBlockIn))->id;
  auto blocked = [&](uint32_t in_index) {
    FieldValues v;
    v.set(FieldId::SOURCE_INTERFACE_INDEX, Value::uint32(in_index));
    v.set(FieldId::DESTINATION_INTERFACE_INDEX, Value::uint32(2));
    const bool compiled = !e.classify(LayerId::IPFORWARD_V4, v).permit;
    EXPECT_EQ(compiled, !e.classify_linear(LayerId::IPFORWARD_V4, v).permit) << "index " << in_index;
    return compiled;
  };
  // No interface has the name: EQUAL matches nothing (not even 0, what a data path may give for none).
  EXPECT_FALSE(blocked(7));
  EXPECT_FALSE(blocked(0));
  EXPECT_EQ(e.set_interfaces({{"lo", 1}, {"veth9", 7}}), std::vector<uint64_t>{id});
  EXPECT_EQ(e.interfaces().at("veth9"), 7u);
  EXPECT_TRUE(blocked(7));
  EXPECT_FALSE(blocked(8));
  // Deleted and made again: a new index.
  EXPECT_EQ(e.set_interfaces({{"lo", 1}}), std::vector<uint64_t>{id});
  EXPECT_FALSE(blocked(7));
  EXPECT_EQ(e.set_interfaces({{"lo", 1}, {"veth9", 8}}), std::vector<uint64_t>{id});
  EXPECT_FALSE(blocked(7));
  EXPECT_TRUE(blocked(8));
  // A change to other interfaces changes no filter.
  EXPECT_TRUE(e.set_interfaces({{"lo", 1}, {"veth9", 8}, {"eth3", 3}}).empty());
  // A filter added later takes the table as it is.
  policy::apply_policy(e, policy::policy_from_json(one_filter(kBlockNotOut, "IPFORWARD_V4", {named("DESTINATION_INTERFACE_INDEX", "eth3", "NOT_EQUAL")})));
  FieldValues v;
  v.set(FieldId::SOURCE_INTERFACE_INDEX, Value::uint32(5));
  v.set(FieldId::DESTINATION_INTERFACE_INDEX, Value::uint32(3));
  EXPECT_TRUE(e.classify(LayerId::IPFORWARD_V4, v).permit);  // out by eth3: not blocked
  v.set(FieldId::DESTINATION_INTERFACE_INDEX, Value::uint32(4));
  EXPECT_FALSE(e.classify(LayerId::IPFORWARD_V4, v).permit);
  // NOT_EQUAL a name no interface has: every interface.
  e.set_interfaces({{"lo", 1}});
  v.set(FieldId::DESTINATION_INTERFACE_INDEX, Value::uint32(3));
  EXPECT_FALSE(e.classify(LayerId::IPFORWARD_V4, v).permit);
  // A deleted filter is no longer re-resolved (nor touched).
  e.delete_filter(*Guid::parse(kBlockIn));
  EXPECT_EQ(e.set_interfaces({{"lo", 1}, {"veth9", 4}, {"eth3", 3}}), std::vector<uint64_t>{e.filter(*Guid::parse(kBlockNotOut))->id});
}

// The importers write names, whether or not an interface has the name where they run.
TEST(InterfaceNames, ImportersEmitNames) {
  const auto r = import::import_iptables("*filter\n:FORWARD ACCEPT [0:0]\n"
                                         "-A FORWARD -i lfp-absent0 -j DROP\n"
                                         "-A FORWARD ! -o lfp-absent1 -s 192.0.2.0/24 -j DROP\n"
                                         "COMMIT\n");
  EXPECT_TRUE(r.unmapped.empty()) << r.unmapped.at(0).reason;
  std::map<std::string, json> by_name;
  for (const auto& f : r.policy["filters"]) by_name[f["name"].get<std::string>()] = f;
  ASSERT_TRUE(by_name.count("FORWARD line 3")) << r.policy.dump();
  EXPECT_EQ(by_name["FORWARD line 3"]["conditions"], json::array({named("SOURCE_INTERFACE_INDEX", "lfp-absent0")}));
  bool negated = false;
  for (const auto& c : by_name.at("FORWARD line 4")["conditions"])
    negated = negated || c == named("DESTINATION_INTERFACE_INDEX", "lfp-absent1", "NOT_EQUAL");
  EXPECT_TRUE(negated) << by_name["FORWARD line 4"].dump();
  EXPECT_EQ(refusal(r.policy), "");

  const auto n = import::import_nft(R"({"nftables": [
    {"table": {"family": "ip", "name": "f", "handle": 1}},
    {"chain": {"family": "ip", "table": "f", "name": "fwd", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "ip", "table": "f", "chain": "fwd", "handle": 3, "expr": [
      {"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lfp-absent2"}}, {"drop": null}]}}
  ]})");
  EXPECT_TRUE(n.unmapped.empty()) << n.unmapped.at(0).reason;
  bool by_iif = false;
  for (const auto& f : n.policy["filters"])
    by_iif = by_iif || f["conditions"] == json::array({named("SOURCE_INTERFACE_INDEX", "lfp-absent2")});
  EXPECT_TRUE(by_iif) << n.policy.dump();
}

// A set of several interfaces left out (what reaches a rule after two `-i X -j RETURN`) has no form
// in one filter (conditions on one field are OR'ed): it is reported, not imported wrong.
TEST(InterfaceNames, NoneOfSeveralInterfacesIsReported) {
  const auto r = import::import_iptables("*filter\n:FORWARD ACCEPT [0:0]\n:SKIP - [0:0]\n"
                                         "-A FORWARD -j SKIP\n"
                                         "-A SKIP -i a0 -j RETURN\n"
                                         "-A SKIP -i b0 -j RETURN\n"
                                         "-A SKIP -j DROP\n"
                                         "COMMIT\n");
  bool reported = false;
  for (const auto& u : r.unmapped) reported = reported || u.reason.find("every interface but a0, b0") != std::string::npos;
  EXPECT_TRUE(reported) << r.policy.dump();
  for (const auto& f : r.policy["filters"]) EXPECT_NE(f["action"], "BLOCK") << f.dump();
}

}  // namespace
}  // namespace lfp::test
