// SPDX-License-Identifier: MIT
#pragma once
// Small builders shared by the engine tests.
#include <functional>
#include <memory>
#include <string>

#include "lfp/engine/engine.hpp"

namespace lfp::test {

inline Condition cond(FieldId f, MatchType m, ConditionValue v) { return Condition{f, m, std::move(v)}; }
inline Condition eq(FieldId f, DataType t, uint64_t u) { return cond(f, MatchType::EQUAL, ConditionValue::uint(t, u)); }
inline Condition v4net(FieldId f, const char* addr, unsigned len) {
  return cond(f, MatchType::EQUAL, ConditionValue::v4_prefix(*parse_ip4(addr), len));
}
inline Condition port_range(FieldId f, uint16_t lo, uint16_t hi) {
  return cond(f, MatchType::RANGE,
              ConditionValue::range(OwnedValue{DataType::UINT16, lo}, OwnedValue{DataType::UINT16, hi}));
}

inline Filter filter(std::string name, LayerId layer, ActionType action, std::vector<Condition> conds = {},
                     Weight w = Weight::empty()) {
  Filter f;
  f.display.name = std::move(name);
  f.layer = layer;
  f.action.type = action;
  f.conditions = std::move(conds);
  f.weight = w;
  return f;
}

inline Sublayer sublayer(std::string name, uint16_t weight) {
  Sublayer s;
  s.display.name = std::move(name);
  s.weight = weight;
  return s;
}

// A callout whose classify is a std::function, so each test says what it returns.
class FnCallout : public CalloutDriver {
 public:
  using Fn = std::function<void(const CalloutClassifyIn&, CalloutClassifyOut&)>;
  explicit FnCallout(Fn fn) : fn_(std::move(fn)) {}
  void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) override {
    ++calls;
    last_action_write = in.action_write;
    fn_(in, out);
  }
  bool notify(NotifyType t, const Filter&) override {
    (t == NotifyType::ADD_FILTER ? adds : deletes)++;
    return !refuse_adds;
  }
  int calls = 0, adds = 0, deletes = 0;
  bool last_action_write = true;
  bool refuse_adds = false;

 private:
  Fn fn_;
};

inline std::shared_ptr<FnCallout> returns(CalloutVerdict v, bool clear_right = false) {
  return std::make_shared<FnCallout>([=](const CalloutClassifyIn&, CalloutClassifyOut& o) {
    o.verdict = v;
    o.clear_action_write = clear_right;
  });
}

}  // namespace lfp::test
