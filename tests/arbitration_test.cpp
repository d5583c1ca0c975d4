// SPDX-License-Identifier: MIT
// Every row of WFP's filter arbitration (docs/engine.md), through the compiled classifier and the
// linear reference alike.
#include <gtest/gtest.h>

#include "lfp/engine/error.hpp"
#include "test_support.hpp"

namespace lfp {
namespace {

using namespace lfp::test;
constexpr LayerId L = LayerId::INBOUND_TRANSPORT_V4;

class Arbitration : public ::testing::Test {
 protected:
  FieldValues values() const {
    FieldValues v;
    v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(*parse_ip4("192.0.2.7")));
    v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(*parse_ip4("198.51.100.1")));
    v.set(FieldId::IP_REMOTE_PORT, Value::uint16(40000));
    v.set(FieldId::IP_LOCAL_PORT, Value::uint16(22));
    v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
    return v;
  }
  // Classifies with both paths, checks they agree, returns the compiled one.
  ClassifyResult run(bool explain = false) {
    auto v = values();
    ClassifyResult a = e.classify(L, v, explain);
    ClassifyResult b = e.classify_linear(L, v, explain);
    EXPECT_EQ(a.permit, b.permit);
    EXPECT_EQ(a.hard, b.hard);
    EXPECT_EQ(a.veto, b.veto);
    EXPECT_EQ(a.filter, b.filter);
    EXPECT_EQ(a.vetoed_filter, b.vetoed_filter);
    return a;
  }
  uint64_t add(Filter f) { return e.add_filter(std::move(f)); }
  uint64_t add_in(const Guid& sub, Filter f) {
    f.sublayer = sub;
    return e.add_filter(std::move(f));
  }
  Guid callout(const std::string& name) {
    Callout c;
    c.display.name = name;
    c.applicable_layer = L;
    return e.add_callout(c);
  }
  Filter callout_filter(const std::string& name, const Guid& callout, ActionType t = ActionType::CALLOUT_UNKNOWN) {
    Filter f = filter(name, L, t);
    f.action.callout_key = callout;
    return f;
  }
  const Filter* by_id(uint64_t id) { return e.filter_by_id(id); }

  FilterEngine e;
};

TEST_F(Arbitration, NoMatchingFilterPermits) {
  add(filter("other port", L, ActionType::BLOCK, {eq(FieldId::IP_LOCAL_PORT, DataType::UINT16, 23)}));
  auto r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_FALSE(r.hard);
  EXPECT_EQ(r.filter, nullptr);
}

TEST_F(Arbitration, FilterBlockIsHard) {
  auto id = add(filter("block ssh", L, ActionType::BLOCK, {eq(FieldId::IP_LOCAL_PORT, DataType::UINT16, 22)}));
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_TRUE(r.hard);
  EXPECT_EQ(r.filter, by_id(id));
  EXPECT_EQ(r.sublayer->key, builtin::SUBLAYER_UNIVERSAL);
}

TEST_F(Arbitration, FilterPermitIsSoftUnlessClearActionRight) {
  auto id = add(filter("permit", L, ActionType::PERMIT));
  auto r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_FALSE(r.hard);
  EXPECT_EQ(r.filter, by_id(id));
  e.delete_filter_by_id(id);
  Filter f = filter("hard permit", L, ActionType::PERMIT);
  f.flags = CLEAR_ACTION_RIGHT;
  id = add(f);
  r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_TRUE(r.hard);
}

TEST_F(Arbitration, HighestWeightInSublayerDecides) {
  add(filter("block low", L, ActionType::BLOCK, {}, Weight::explicit_weight(10)));
  auto hi = add(filter("permit high", L, ActionType::PERMIT, {}, Weight::explicit_weight(20)));
  auto r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_EQ(r.filter, by_id(hi));
}

TEST_F(Arbitration, EqualWeightsOlderFilterFirst) {
  auto first = add(filter("first", L, ActionType::PERMIT, {}, Weight::explicit_weight(5)));
  add(filter("second", L, ActionType::BLOCK, {}, Weight::explicit_weight(5)));
  EXPECT_EQ(run().filter, by_id(first));
}

TEST_F(Arbitration, LowerSublayerOverridesSoftPermit) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  add_in(high, filter("soft permit", L, ActionType::PERMIT));
  auto blk = add_in(low, filter("block", L, ActionType::BLOCK));
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_EQ(r.filter, by_id(blk));
  EXPECT_EQ(r.sublayer->key, low);
  EXPECT_FALSE(r.veto);
}

TEST_F(Arbitration, HardBlockCannotBeOverridden) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  auto blk = add_in(high, filter("block", L, ActionType::BLOCK));
  Filter p = filter("hard permit", L, ActionType::PERMIT);
  p.flags = CLEAR_ACTION_RIGHT;
  add_in(low, p);
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_EQ(r.filter, by_id(blk));
}

TEST_F(Arbitration, HardPermitIgnoresLowerFilterBlock) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  Filter p = filter("hard permit", L, ActionType::PERMIT);
  p.flags = CLEAR_ACTION_RIGHT;
  auto pid = add_in(high, p);
  add_in(low, filter("block", L, ActionType::BLOCK));
  auto r = run(true);
  EXPECT_TRUE(r.permit);
  EXPECT_TRUE(r.hard);
  EXPECT_FALSE(r.veto);
  EXPECT_EQ(r.filter, by_id(pid));
  // The lower sublayer was still evaluated (every sublayer is), and its block ignored.
  bool saw_ignored = false;
  for (auto& t : r.trace)
    if (t.sublayer->key == low) saw_ignored = t.effect.rfind("ignored", 0) == 0 && t.steps.size() == 1;
  EXPECT_TRUE(saw_ignored);
}

TEST_F(Arbitration, CalloutBlockAgainstHardPermitIsVeto) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  Filter p = filter("hard permit", L, ActionType::PERMIT);
  p.flags = CLEAR_ACTION_RIGHT;
  auto pid = add_in(high, p);
  Guid c = callout("vetoer");
  auto drv = returns(CalloutVerdict::BLOCK);
  e.register_callout(c, drv);
  auto cid = add_in(low, callout_filter("veto", c));
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_TRUE(r.veto);
  EXPECT_EQ(r.filter, by_id(cid));
  EXPECT_EQ(r.vetoed_filter, by_id(pid));
  EXPECT_FALSE(drv->last_action_write);  // the callout saw the right already cleared
}

TEST_F(Arbitration, CalloutBlockIsSoft) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  Guid c = callout("soft blocker");
  e.register_callout(c, returns(CalloutVerdict::BLOCK));
  add_in(high, callout_filter("callout block", c));
  auto pid = add_in(low, filter("permit", L, ActionType::PERMIT));
  auto r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_EQ(r.filter, by_id(pid));
}

TEST_F(Arbitration, CalloutCanClearTheRight) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  Guid c = callout("hard blocker");
  e.register_callout(c, returns(CalloutVerdict::BLOCK, /*clear_right=*/true));
  auto cid = add_in(high, callout_filter("callout hard block", c));
  add_in(low, filter("permit", L, ActionType::PERMIT));
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_TRUE(r.hard);
  EXPECT_EQ(r.filter, by_id(cid));
}

TEST_F(Arbitration, SoftBlockOverriddenByLowerPermit) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  Guid c = callout("soft");
  e.register_callout(c, returns(CalloutVerdict::BLOCK));
  add_in(high, callout_filter("soft block", c));
  Filter p = filter("hard permit", L, ActionType::PERMIT);
  p.flags = CLEAR_ACTION_RIGHT;
  auto pid = add_in(low, p);
  auto r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_TRUE(r.hard);
  EXPECT_EQ(r.filter, by_id(pid));
}

TEST_F(Arbitration, CalloutContinueFallsThroughInSublayer) {
  Guid c = callout("inspector");
  auto drv = returns(CalloutVerdict::CONTINUE);
  e.register_callout(c, drv);
  Filter cf = callout_filter("continue", c);
  cf.weight = Weight::explicit_weight(100);
  add(cf);
  auto blk = add(filter("block", L, ActionType::BLOCK, {}, Weight::explicit_weight(1)));
  auto r = run();
  EXPECT_EQ(drv->calls, 2);  // once per path
  EXPECT_FALSE(r.permit);
  EXPECT_EQ(r.filter, by_id(blk));
}

TEST_F(Arbitration, InspectionCalloutCannotDecide) {
  Guid c = callout("inspection");
  e.register_callout(c, returns(CalloutVerdict::BLOCK));
  Filter cf = callout_filter("inspect", c, ActionType::CALLOUT_INSPECTION);
  cf.weight = Weight::explicit_weight(100);
  add(cf);
  auto pid = add(filter("permit", L, ActionType::PERMIT, {}, Weight::explicit_weight(1)));
  auto r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_EQ(r.filter, by_id(pid));
}

TEST_F(Arbitration, UnregisteredCalloutBlocksUnlessFlagged) {
  Guid c = callout("absent");
  auto id = add(callout_filter("needs callout", c, ActionType::CALLOUT_TERMINATING));
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_EQ(r.filter, by_id(id));
  e.delete_filter_by_id(id);
  Filter f = callout_filter("needs callout, permit if absent", c, ActionType::CALLOUT_TERMINATING);
  f.flags = PERMIT_IF_CALLOUT_UNREGISTERED;
  id = add(f);
  r = run();
  EXPECT_TRUE(r.permit);
  EXPECT_EQ(r.filter, by_id(id));
  // Registered, the callout itself decides.
  e.register_callout(c, returns(CalloutVerdict::BLOCK));
  EXPECT_FALSE(run().permit);
  e.unregister_callout(c);
  EXPECT_TRUE(run().permit);
}

TEST_F(Arbitration, EmptySublayersAreListedInExplain) {
  Guid empty = e.add_sublayer(sublayer("empty", 0xF000));  // above the universal sublayer (0x8000)
  add(filter("permit", L, ActionType::PERMIT));
  auto r = run(true);
  ASSERT_GE(r.trace.size(), 3u);  // empty, universal, inspection
  EXPECT_EQ(r.trace[0].sublayer->key, empty);
  EXPECT_EQ(r.trace[0].effect, "no match");
  EXPECT_TRUE(r.trace[0].steps.empty());
  bool universal_decided = false;
  for (auto& t : r.trace)
    if (t.sublayer->key == builtin::SUBLAYER_UNIVERSAL) universal_decided = t.effect == "decides: PERMIT";
  EXPECT_TRUE(universal_decided);
}

TEST_F(Arbitration, DisabledFilterIsNotEnforced) {
  Filter f = filter("disabled block", L, ActionType::BLOCK);
  f.flags = DISABLED;
  add(f);
  EXPECT_TRUE(run().permit);
}

TEST_F(Arbitration, EverySublayerIsEvaluatedAfterABlock) {
  Guid high = e.add_sublayer(sublayer("high", 100));
  Guid low = e.add_sublayer(sublayer("low", 10));
  add_in(high, filter("block", L, ActionType::BLOCK));
  Guid c = callout("observer");
  auto drv = returns(CalloutVerdict::CONTINUE);
  e.register_callout(c, drv);
  add_in(low, callout_filter("observe", c));
  auto r = run();
  EXPECT_FALSE(r.permit);
  EXPECT_EQ(drv->calls, 2);  // invoked on both paths although a higher sublayer blocked
}

TEST_F(Arbitration, CalloutNotifiedOfItsFilters) {
  Guid c = callout("notified");
  auto drv = returns(CalloutVerdict::CONTINUE);
  e.register_callout(c, drv);
  auto id = add(callout_filter("f", c));
  EXPECT_EQ(drv->adds, 1);
  e.delete_filter_by_id(id);
  EXPECT_EQ(drv->deletes, 1);
  drv->refuse_adds = true;
  EXPECT_THROW(add(callout_filter("refused", c)), Error);
  EXPECT_EQ(e.filter_count(), 0u);
}

}  // namespace
}  // namespace lfp
