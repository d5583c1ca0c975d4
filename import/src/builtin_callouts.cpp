// SPDX-License-Identifier: MIT
#include "lfp/import/builtin_callouts.hpp"

#include <map>
#include <optional>
#include <span>

#include "log.hpp"
#include "ratelimit.hpp"
#include "transport_match.hpp"

namespace lfp::import {

namespace in = lfp::inspect;

struct BuiltinCallouts::State {
  const FilterEngine* engine = nullptr;
  int64_t capture_ms = 0, replay_ms = 0;
  // Two limiters fed the same packets: one on the capture's clock (the verdict), one on the replay's.
  in::RateLimiter on_capture, on_replay;
  std::string decided_by_time;

  // The filter's provider context data, parsed once per distinct text (the plugin's ConfigCache).
  template <class T>
  const T* config(std::map<std::string, std::optional<T>>& cache, const Filter& f,
                  std::optional<T> (*parse)(const std::string&, std::string*)) {
    const ProviderContext* pc = f.provider_context ? engine->provider_context(*f.provider_context) : nullptr;
    const std::string text = pc ? pc->data : "";
    auto it = cache.find(text);
    if (it == cache.end()) {
      std::string error;
      it = cache.emplace(text, parse(text, &error)).first;
    }
    return it->second ? &*it->second : nullptr;
  }
  std::map<std::string, std::optional<in::RateLimitConfig>> limits;
  std::map<std::string, std::optional<in::TransportMatchConfig>> matches;
};

namespace {

std::span<const uint8_t> data_of(const CalloutClassifyIn& i) {
  return i.meta && i.meta->data ? std::span<const uint8_t>(i.meta->data, i.meta->data_len) : std::span<const uint8_t>{};
}

void block(CalloutClassifyOut& out) {
  out.verdict = CalloutVerdict::BLOCK;
  out.clear_action_write = true;  // a hard BLOCK, as the plugin's
}

class RateLimitDriver : public CalloutDriver {
 public:
  explicit RateLimitDriver(std::shared_ptr<BuiltinCallouts::State> s) : s_(std::move(s)) {}
  void classify(const CalloutClassifyIn& i, CalloutClassifyOut& out) override {
    const in::RateLimitConfig* c = s_->config(s_->limits, i.filter, in::parse_rate_limit_config);
    if (!c) return block(out);  // fails closed, as the plugin does
    out.verdict = CalloutVerdict::PERMIT;
    const bool blocks = s_->on_capture.blocks(*c, data_of(i), s_->capture_ms);
    if (blocks != s_->on_replay.blocks(*c, data_of(i), s_->replay_ms)) s_->decided_by_time = i.filter.display.name;
    if (blocks) block(out);
  }

 private:
  std::shared_ptr<BuiltinCallouts::State> s_;
};

class TransportMatchDriver : public CalloutDriver {
 public:
  explicit TransportMatchDriver(std::shared_ptr<BuiltinCallouts::State> s) : s_(std::move(s)) {}
  void classify(const CalloutClassifyIn& i, CalloutClassifyOut& out) override {
    const in::TransportMatchConfig* c = s_->config(s_->matches, i.filter, in::parse_transport_match_config);
    if (!c) return block(out);
    out.verdict = CalloutVerdict::CONTINUE;  // not matched: as if the filter had not matched
    if (!in::transport_matches(*c, data_of(i))) return;
    if (c->permit) out.verdict = CalloutVerdict::PERMIT;
    else block(out);
  }

 private:
  std::shared_ptr<BuiltinCallouts::State> s_;
};

// The log callout decides nothing: CONTINUE, as the plugin's (its events are lfpd's business).
class LogDriver : public CalloutDriver {
 public:
  void classify(const CalloutClassifyIn&, CalloutClassifyOut& out) override { out.verdict = CalloutVerdict::CONTINUE; }
};

}  // namespace

BuiltinCallouts::BuiltinCallouts(FilterEngine& engine) : state_(std::make_shared<State>()) {
  state_->engine = &engine;
  for (const char* key : {in::kRateLimitCalloutV4, in::kRateLimitCalloutV6})
    engine.register_callout(*Guid::parse(key), std::make_shared<RateLimitDriver>(state_));
  for (const char* key : {in::kTransportMatchCalloutV4, in::kTransportMatchCalloutV6})
    engine.register_callout(*Guid::parse(key), std::make_shared<TransportMatchDriver>(state_));
  for (const char* key : {in::kLogCalloutInboundV4, in::kLogCalloutInboundV6, in::kLogCalloutOutboundV4, in::kLogCalloutOutboundV6,
                          in::kLogCalloutForwardV4, in::kLogCalloutForwardV6})
    engine.register_callout(*Guid::parse(key), std::make_shared<LogDriver>());
}

void BuiltinCallouts::set_clocks(int64_t capture_ms, int64_t replay_ms) {
  state_->capture_ms = capture_ms;
  state_->replay_ms = replay_ms;
  state_->decided_by_time.clear();
}

const std::string& BuiltinCallouts::decided_by_time() const { return state_->decided_by_time; }

}  // namespace lfp::import
