// SPDX-License-Identifier: MIT
// Object model rules, weight assignment, and the compiled classifier against the linear reference
// on random policies.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "lfp/engine/error.hpp"
#include "test_support.hpp"

namespace lfp {
namespace {

using namespace lfp::test;
constexpr LayerId L = LayerId::ALE_AUTH_CONNECT_V4;

template <class F>
ErrorCode error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error thrown";
  return ErrorCode::NOT_FOUND;
}

TEST(Weights, EffectiveWeight) {
  std::vector<Condition> none;
  std::vector<Condition> port = {eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, 22)};
  std::vector<Condition> port_net = {v4net(FieldId::IP_REMOTE_ADDRESS, "10.0.0.0", 8),
                                     eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, 22)};
  std::vector<Condition> host_port = {v4net(FieldId::IP_REMOTE_ADDRESS, "10.0.0.1", 32),
                                      eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, 22)};
  auto w = [](const std::vector<Condition>& c) { return effective_weight(Weight::empty(), c, IpFamily::V4); };
  EXPECT_EQ(w(none), 0u);
  EXPECT_LT(w(none), w(port));
  EXPECT_LT(w(port), w(port_net));
  EXPECT_LT(w(port_net), w(host_port));
  EXPECT_LE(w(host_port), AUTO_WEIGHT_MAX);
  // Range index: the top four bits, automatic below.
  EXPECT_EQ(effective_weight(Weight::range_index(7), port, IpFamily::V4), (7ull << 60) | w(port));
  EXPECT_GT(effective_weight(Weight::range_index(1), none, IpFamily::V4), w(host_port));
  EXPECT_EQ(effective_weight(Weight::range_index(15), host_port, IpFamily::V4) >> 60, 15u);
  EXPECT_EQ(effective_weight(Weight::explicit_weight(12345), host_port, IpFamily::V4), 12345u);
  EXPECT_EQ(error_of([&] { effective_weight(Weight::range_index(16), none, IpFamily::V4); }),
            ErrorCode::INVALID_WEIGHT);
  // A wide port range is less specific than one port.
  std::vector<Condition> range = {port_range(FieldId::IP_REMOTE_PORT, 1000, 2000)};
  EXPECT_LT(w(range), w(port));
}

TEST(Weights, AutomaticWeightOrdersMoreSpecificFirst) {
  FilterEngine e;
  e.add_filter(filter("any", L, ActionType::PERMIT));
  auto specific = e.add_filter(
      filter("telnet to net", L, ActionType::BLOCK,
             {v4net(FieldId::IP_REMOTE_ADDRESS, "10.0.0.0", 8), eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, 23)}));
  FieldValues v;
  v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(*parse_ip4("10.1.2.3")));
  v.set(FieldId::IP_REMOTE_PORT, Value::uint16(23));
  auto r = e.classify(L, v);
  EXPECT_FALSE(r.permit);
  EXPECT_EQ(r.filter->id, specific);
  EXPECT_EQ(e.filter_by_id(specific)->effective_weight,
            effective_weight(Weight::empty(), e.filter_by_id(specific)->conditions, IpFamily::V4));
}

TEST(Objects, Errors) {
  FilterEngine e;
  Guid nowhere = Guid::generate();
  EXPECT_EQ(error_of([&] { e.add_filter(filter("", L, ActionType::BLOCK)); }), ErrorCode::NULL_DISPLAY_NAME);
  Filter f = filter("f", L, ActionType::BLOCK);
  f.sublayer = nowhere;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::SUBLAYER_NOT_FOUND);
  f = filter("f", L, ActionType::BLOCK);
  f.provider = nowhere;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::PROVIDER_NOT_FOUND);
  f = filter("f", L, ActionType::CALLOUT_TERMINATING);
  f.action.callout_key = nowhere;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::CALLOUT_NOT_FOUND);
  f = filter("f", L, ActionType::BLOCK);
  f.flags = PERSISTENT | BOOTTIME;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::INVALID_FLAGS);
  f.flags = PERMIT_IF_CALLOUT_UNREGISTERED;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::INVALID_FLAGS);
  f.flags = USES_PROVIDER_CONTEXT;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::INVALID_FLAGS);
  f = filter("f", L, ActionType::BLOCK, {eq(FieldId::VLAN_ID, DataType::UINT16, 1)});
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::CONDITION_NOT_FOUND);
  EXPECT_EQ(e.filter_count(), 0u);

  // Callout at another layer.
  Callout c;
  c.display.name = "c";
  c.applicable_layer = LayerId::STREAM_V4;
  Guid ck = e.add_callout(c);
  f = filter("f", L, ActionType::CALLOUT_TERMINATING);
  f.action.callout_key = ck;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::INCOMPATIBLE_LAYER);

  // Lifetimes: persistent objects reference persistent ones only.
  Provider p;
  p.display.name = "p";
  Guid pk = e.add_provider(p);
  Sublayer s = sublayer("s", 5);
  s.provider = pk;
  s.flags = PERSISTENT;
  EXPECT_EQ(error_of([&] { e.add_sublayer(s); }), ErrorCode::LIFETIME_MISMATCH);
  s.flags = 0;
  Guid sk = e.add_sublayer(s);
  f = filter("f", L, ActionType::BLOCK);
  f.sublayer = sk;
  f.flags = PERSISTENT;
  EXPECT_EQ(error_of([&] { e.add_filter(f); }), ErrorCode::LIFETIME_MISMATCH);

  // In use, built-in, duplicate keys, not found.
  f.flags = 0;
  f.provider = pk;
  uint64_t id = e.add_filter(f);
  EXPECT_EQ(error_of([&] { e.delete_sublayer(sk); }), ErrorCode::IN_USE);
  EXPECT_EQ(error_of([&] { e.delete_provider(pk); }), ErrorCode::IN_USE);
  EXPECT_EQ(error_of([&] { e.delete_sublayer(builtin::SUBLAYER_UNIVERSAL); }), ErrorCode::BUILTIN_OBJECT);
  Filter dup = f;
  dup.key = e.filter_by_id(id)->key;
  EXPECT_EQ(error_of([&] { e.add_filter(dup); }), ErrorCode::ALREADY_EXISTS);
  EXPECT_EQ(error_of([&] { e.delete_filter(nowhere); }), ErrorCode::FILTER_NOT_FOUND);
  e.delete_filter_by_id(id);
  EXPECT_EQ(error_of([&] { e.delete_filter_by_id(id); }), ErrorCode::FILTER_NOT_FOUND);
  e.delete_sublayer(sk);
  e.delete_provider(pk);
  EXPECT_EQ(e.providers().size(), 0u);
}

TEST(Objects, EnumerationTemplates) {
  FilterEngine e;
  Guid sk = e.add_sublayer(sublayer("s", 7));
  e.add_filter(filter("a", L, ActionType::BLOCK));
  Filter b = filter("b", LayerId::ALE_AUTH_RECV_ACCEPT_V4, ActionType::PERMIT);
  b.sublayer = sk;
  e.add_filter(b);
  Filter c = filter("c", L, ActionType::PERMIT);
  c.flags = DISABLED;
  e.add_filter(c);
  EXPECT_EQ(e.filters().size(), 3u);
  EXPECT_EQ(e.filters({.layer = L}).size(), 2u);
  EXPECT_EQ(e.filters({.sublayer = sk}).size(), 1u);
  EXPECT_EQ(e.filters({.action = ActionType::PERMIT}).size(), 2u);
  EXPECT_EQ(e.filters({.flags_all_set = DISABLED}).size(), 1u);
  EXPECT_EQ(e.filters({.include_disabled = false}).size(), 2u);
  EXPECT_EQ(e.sublayers().front()->key, builtin::SUBLAYER_UNIVERSAL);  // weight 0x8000 is the highest here
}

// ---------------------------------------------------------------------------------------------
// Random policies: the compiled classifier must give the linear reference's answer, always.

struct RandomPolicy {
  std::mt19937_64 rng;
  explicit RandomPolicy(uint64_t seed) : rng(seed) {}
  uint64_t r(uint64_t n) { return rng() % n; }

  // Small value spaces so that filters overlap and requests hit them.
  uint32_t addr() { return 0x0a000000u | static_cast<uint32_t>(r(4) << 8 | r(4)); }
  Ip6 addr6() {
    Ip6 a = *parse_ip6("2001:db8::");
    a[7] = static_cast<uint8_t>(r(3));
    a[15] = static_cast<uint8_t>(r(4));
    return a;
  }
  uint16_t port() { return static_cast<uint16_t>(r(6) * 100); }

  Condition address_condition(FieldId f, IpFamily fam) {
    if (fam == IpFamily::V6) {
      switch (r(4)) {
        case 0: return cond(f, MatchType::EQUAL, ConditionValue::v6_prefix_of(addr6(), static_cast<unsigned>(r(129))));
        case 1: {
          OwnedValue o{DataType::BYTE_ARRAY16_TYPE};
          o.bytes = addr6();
          return cond(f, r(2) ? MatchType::EQUAL : MatchType::NOT_EQUAL, ConditionValue::plain(o));
        }
        default: {
          OwnedValue lo{DataType::BYTE_ARRAY16_TYPE}, hi{DataType::BYTE_ARRAY16_TYPE};
          lo.bytes = addr6();
          hi.bytes = addr6();
          if (std::memcmp(lo.bytes.data(), hi.bytes.data(), 16) > 0) std::swap(lo, hi);
          return cond(f, MatchType::RANGE, ConditionValue::range(lo, hi));
        }
      }
    }
    switch (r(4)) {
      case 0: return cond(f, MatchType::EQUAL, ConditionValue::v4_prefix(addr(), static_cast<unsigned>(20 + r(13))));
      case 1: return eq(f, DataType::UINT32, addr());
      case 2: return cond(f, MatchType::NOT_EQUAL, ConditionValue::uint(DataType::UINT32, addr()));
      default: {
        uint32_t a = addr(), b = addr();
        if (a > b) std::swap(a, b);
        return cond(f, MatchType::RANGE, ConditionValue::range({DataType::UINT32, a}, {DataType::UINT32, b}));
      }
    }
  }
  Condition port_condition(FieldId f) {
    static const MatchType kinds[] = {MatchType::EQUAL,         MatchType::RANGE,         MatchType::GREATER,
                                      MatchType::LESS,          MatchType::GREATER_OR_EQUAL, MatchType::LESS_OR_EQUAL,
                                      MatchType::NOT_EQUAL,     MatchType::FLAGS_ANY_SET};
    MatchType m = kinds[r(std::size(kinds))];
    if (m == MatchType::RANGE) {
      uint16_t a = port(), b = port();
      if (a > b) std::swap(a, b);
      return port_range(f, a, b);
    }
    return cond(f, m, ConditionValue::uint(DataType::UINT16, m == MatchType::FLAGS_ANY_SET ? 4 : port()));
  }

  Filter make_filter(LayerId layer, const std::vector<Guid>& subs, const std::vector<Guid>& callouts) {
    const IpFamily fam = layer_info(layer).family;
    Filter f;
    f.display.name = "random";
    f.layer = layer;
    f.sublayer = subs[r(subs.size())];
    switch (r(3)) {
      case 0: f.weight = Weight::empty(); break;
      case 1: f.weight = Weight::range_index(static_cast<uint8_t>(r(3))); break;
      default: f.weight = Weight::explicit_weight(r(5)); break;  // many ties
    }
    uint64_t a = r(10);
    f.action.type = a < 3 ? ActionType::BLOCK : a < 8 ? ActionType::PERMIT : ActionType::CALLOUT_UNKNOWN;
    if (is_callout(f.action.type)) {
      f.action.callout_key = callouts[r(callouts.size())];
      if (r(2)) f.flags |= PERMIT_IF_CALLOUT_UNREGISTERED;
    }
    if (r(4) == 0) f.flags |= CLEAR_ACTION_RIGHT;
    const int n = 1 + static_cast<int>(r(3));
    for (int i = 0; i < n; ++i) {
      switch (r(6)) {
        case 0: f.conditions.push_back(address_condition(FieldId::IP_REMOTE_ADDRESS, fam)); break;
        case 1: f.conditions.push_back(address_condition(FieldId::IP_LOCAL_ADDRESS, fam)); break;
        case 2: f.conditions.push_back(port_condition(FieldId::IP_REMOTE_PORT)); break;
        case 3: f.conditions.push_back(port_condition(FieldId::IP_LOCAL_PORT)); break;
        case 4: f.conditions.push_back(eq(FieldId::IP_PROTOCOL, DataType::UINT8, r(2) ? 6 : 17)); break;
        default:
          f.conditions.push_back(cond(FieldId::ALE_USER_ID, MatchType::EQUAL,
                                      ConditionValue::user_set({{static_cast<uint32_t>(r(3))}, {}})));
      }
    }
    return f;
  }

  void fill_values(FieldValues& v, IpFamily fam, Token& token) {
    if (fam == IpFamily::V6) {
      v.set(FieldId::IP_REMOTE_ADDRESS, Value::ip6(addr6()));
      v.set(FieldId::IP_LOCAL_ADDRESS, Value::ip6(addr6()));
    } else {
      v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(addr()));
      v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(addr()));
    }
    v.set(FieldId::IP_REMOTE_PORT, Value::uint16(port()));
    v.set(FieldId::IP_LOCAL_PORT, Value::uint16(port()));
    v.set(FieldId::IP_PROTOCOL, Value::uint8(r(2) ? 6 : 17));
    token.uid = static_cast<uint32_t>(r(3));
    v.set(FieldId::ALE_USER_ID, Value::user(token));
  }
};

// A deterministic callout: its verdict depends on the request's remote port and the filter id.
class HashCallout : public CalloutDriver {
 public:
  void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) override {
    uint64_t h = in.values.get(FieldId::IP_REMOTE_PORT).u * 31 + in.filter.id;
    static const CalloutVerdict v[] = {CalloutVerdict::PERMIT, CalloutVerdict::BLOCK, CalloutVerdict::CONTINUE};
    out.verdict = v[h % 3];
    out.clear_action_write = (h / 3) % 4 == 0;
  }
};

void differential(LayerId layer, uint64_t seed) {
  RandomPolicy g(seed);
  FilterEngine e;
  std::vector<Guid> subs = {builtin::SUBLAYER_UNIVERSAL};
  for (int i = 0; i < 4; ++i) subs.push_back(e.add_sublayer(sublayer("s" + std::to_string(i), static_cast<uint16_t>(g.r(3) * 1000))));
  std::vector<Guid> callouts;
  for (int i = 0; i < 3; ++i) {
    Callout c;
    c.display.name = "c";
    c.applicable_layer = layer;
    callouts.push_back(e.add_callout(c));
  }
  e.register_callout(callouts[0], std::make_shared<HashCallout>());
  e.register_callout(callouts[1], std::make_shared<HashCallout>());  // callouts[2] stays unregistered

  std::vector<uint64_t> ids;
  int checked = 0, blocked = 0, vetoed = 0;
  for (int round = 0; round < 30; ++round) {
    for (int i = 0; i < 8; ++i) ids.push_back(e.add_filter(g.make_filter(layer, subs, callouts)));
    for (int i = 0; i < 5 && !ids.empty(); ++i) {
      size_t k = g.r(ids.size());
      e.delete_filter_by_id(ids[k]);
      ids.erase(ids.begin() + static_cast<long>(k));
    }
    for (int q = 0; q < 60; ++q) {
      FieldValues v;
      Token t;
      g.fill_values(v, layer_info(layer).family, t);
      auto a = e.classify(layer, v);
      auto b = e.classify_linear(layer, v);
      ASSERT_EQ(a.permit, b.permit) << "seed " << seed << " round " << round;
      ASSERT_EQ(a.filter, b.filter) << "seed " << seed << " round " << round;
      ASSERT_EQ(a.hard, b.hard);
      ASSERT_EQ(a.veto, b.veto);
      ASSERT_EQ(a.vetoed_filter, b.vetoed_filter);
      ++checked;
      blocked += !a.permit;
      vetoed += a.veto;
    }
  }
  // The policies must exercise both outcomes, or this test proves little.
  EXPECT_GT(blocked, checked / 10);
  EXPECT_LT(blocked, checked - checked / 10);
  EXPECT_GT(vetoed, 0);
}

TEST(CompiledClassifier, MatchesLinearReferenceV4) {
  for (uint64_t seed = 1; seed <= 6; ++seed) differential(LayerId::ALE_AUTH_CONNECT_V4, seed);
}
TEST(CompiledClassifier, MatchesLinearReferenceV6) {
  for (uint64_t seed = 11; seed <= 14; ++seed) differential(LayerId::ALE_AUTH_CONNECT_V6, seed);
}

TEST(CompiledClassifier, MacLayer) {
  FilterEngine e;
  OwnedValue mac{DataType::BYTE_ARRAY6_TYPE};
  auto m = *parse_mac("02:00:00:00:00:09");
  std::copy(m.begin(), m.end(), mac.bytes.begin());
  auto id = e.add_filter(filter("block mac", LayerId::INBOUND_MAC_FRAME_ETHERNET, ActionType::BLOCK,
                                {cond(FieldId::MAC_REMOTE_ADDRESS, MatchType::EQUAL, ConditionValue::plain(mac)),
                                 eq(FieldId::VLAN_ID, DataType::UINT16, 10)}));
  FieldValues v;
  v.set(FieldId::MAC_REMOTE_ADDRESS, Value::mac(m));
  v.set(FieldId::MAC_LOCAL_ADDRESS, Value::mac(*parse_mac("02:00:00:00:00:01")));
  v.set(FieldId::ETHER_TYPE, Value::uint16(0x0800));
  v.set(FieldId::VLAN_ID, Value::uint16(10));
  EXPECT_EQ(e.classify(LayerId::INBOUND_MAC_FRAME_ETHERNET, v).filter->id, id);
  v.set(FieldId::VLAN_ID, Value::uint16(11));
  EXPECT_TRUE(e.classify(LayerId::INBOUND_MAC_FRAME_ETHERNET, v).permit);
}

TEST(CompiledClassifier, RelabelKeepsOrder) {
  // Inserting again and again between the same two neighbours exhausts the label gap and forces
  // a relabel; the order must survive it.
  FilterEngine e;
  e.add_filter(filter("top", L, ActionType::PERMIT, {}, Weight::explicit_weight(1000)));
  e.add_filter(filter("bottom", L, ActionType::PERMIT, {}, Weight::explicit_weight(0)));
  uint64_t last = 0;
  for (uint64_t w = 1; w < 200; ++w)
    last = e.add_filter(filter("block " + std::to_string(w), L, ActionType::BLOCK,
                               {eq(FieldId::IP_REMOTE_PORT, DataType::UINT16, static_cast<uint16_t>(w))},
                               Weight::explicit_weight(999)));
  FieldValues v;
  v.set(FieldId::IP_REMOTE_ADDRESS, Value::uint32(1));
  v.set(FieldId::IP_LOCAL_ADDRESS, Value::uint32(2));
  v.set(FieldId::IP_LOCAL_PORT, Value::uint16(3));
  v.set(FieldId::IP_PROTOCOL, Value::uint8(6));
  v.set(FieldId::IP_REMOTE_PORT, Value::uint16(199));
  EXPECT_EQ(e.classify(L, v).filter->display.name, "top");
  e.delete_filter(e.filters({.layer = L}).front()->key);
  EXPECT_EQ(e.classify(L, v).filter->id, last);
  v.set(FieldId::IP_REMOTE_PORT, Value::uint16(500));
  EXPECT_EQ(e.classify(L, v).filter->display.name, "bottom");
}

TEST(CompiledClassifier, MissingKeyFieldFallsBackToScan) {
  FilterEngine e;
  auto id = e.add_filter(filter("proto", L, ActionType::BLOCK, {eq(FieldId::IP_PROTOCOL, DataType::UINT8, 17)}));
  FieldValues v;  // only the protocol is known
  v.set(FieldId::IP_PROTOCOL, Value::uint8(17));
  EXPECT_EQ(e.classify(L, v).filter->id, id);
}

}  // namespace
}  // namespace lfp
