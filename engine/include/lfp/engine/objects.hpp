// SPDX-License-Identifier: MIT
#pragma once
// WFP's object model: providers, sublayers, callouts, provider contexts and filters, keyed by GUID.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/condition.hpp"
#include "lfp/engine/guid.hpp"

namespace lfp {

// Object flags share one bit set; each object kind accepts a subset (FWPM_*_FLAG_*).
enum ObjectFlag : uint32_t {
  PERSISTENT = 1u << 0,
  BOOTTIME = 1u << 1,                        // filters only
  HAS_PROVIDER_CONTEXT = 1u << 2,            // filters only
  CLEAR_ACTION_RIGHT = 1u << 3,              // filters only
  PERMIT_IF_CALLOUT_UNREGISTERED = 1u << 4,  // filters only, callout actions only
  DISABLED = 1u << 5,                        // filters: kept but not enforced
  INDEXED = 1u << 6,                         // filters: accepted, no effect (every filter is indexed)
  USES_PROVIDER_CONTEXT = 1u << 7,           // callouts only
};
std::string_view flag_name(ObjectFlag f);
std::optional<ObjectFlag> flag_from_string(std::string_view s);
std::vector<std::string_view> flag_names(uint32_t flags);

struct DisplayData {
  std::string name;
  std::string description;
};

struct Provider {
  Guid key;
  DisplayData display;
  uint32_t flags = 0;  // PERSISTENT
  std::string service_name;
  std::string data;    // providerData, opaque
};

struct Sublayer {
  Guid key;
  DisplayData display;
  uint32_t flags = 0;  // PERSISTENT
  std::optional<Guid> provider;
  uint16_t weight = 0;  // higher is evaluated first
  std::string data;
};

struct Callout {
  Guid key;
  DisplayData display;
  uint32_t flags = 0;  // PERSISTENT, USES_PROVIDER_CONTEXT
  std::optional<Guid> provider;
  LayerId applicable_layer = LayerId::ALE_AUTH_CONNECT_V4;
  uint32_t callout_id = 0;  // run-time id, assigned by the engine
  std::string data;
};

struct ProviderContext {
  Guid key;
  DisplayData display;
  uint32_t flags = 0;  // PERSISTENT
  std::optional<Guid> provider;
  std::string data;    // configuration handed to callouts
  uint64_t id = 0;     // run-time id, assigned by the engine
};

enum class ActionType : uint8_t {
  BLOCK,
  PERMIT,
  CALLOUT_TERMINATING,  // the callout always returns PERMIT or BLOCK
  CALLOUT_INSPECTION,   // never returns PERMIT or BLOCK
  CALLOUT_UNKNOWN,      // may return either, or CONTINUE
};
std::string_view to_string(ActionType a);
std::optional<ActionType> action_type_from_string(std::string_view s);
inline bool is_callout(ActionType a) { return a >= ActionType::CALLOUT_TERMINATING; }

struct Action {
  ActionType type = ActionType::BLOCK;
  Guid callout_key;                // callout actions
  std::optional<Guid> filter_type;  // non-callout actions: provider-chosen type
};

// FWPM_FILTER0.weight: EMPTY (the engine picks from the conditions), a range index 0..15 (top four
// bits; the engine picks the low 60), or an explicit 64-bit weight. See effective_weight().
struct Weight {
  enum class Kind : uint8_t { EMPTY, RANGE_INDEX, EXPLICIT } kind = Kind::EMPTY;
  uint64_t value = 0;
  static Weight empty() { return {}; }
  static Weight range_index(uint8_t r) { return {Kind::RANGE_INDEX, r}; }
  static Weight explicit_weight(uint64_t w) { return {Kind::EXPLICIT, w}; }
};

inline constexpr unsigned AUTO_WEIGHT_BITS = 60;
inline constexpr uint64_t AUTO_WEIGHT_MAX = ~uint64_t{0} >> 4;
inline constexpr uint64_t WEIGHT_RANGE_MAX = 15;

struct Filter {
  Guid key;
  DisplayData display;
  uint32_t flags = 0;
  std::optional<Guid> provider;
  std::string provider_data;
  LayerId layer = LayerId::ALE_AUTH_CONNECT_V4;
  std::optional<Guid> sublayer;  // absent: SUBLAYER_UNIVERSAL
  Weight weight;
  std::vector<Condition> conditions;
  Action action;
  std::optional<Guid> provider_context;  // with HAS_PROVIDER_CONTEXT
  uint64_t raw_context = 0;

  // Assigned by the engine when the filter is added:
  uint64_t id = 0;                 // run-time filter id
  uint64_t effective_weight = 0;
};

// The automatic weight of a set of conditions, in [0, 2^60): more specific filters weigh more.
// See docs/engine.md "Weights" for the formula.
uint64_t auto_weight(const std::vector<Condition>& conds, IpFamily family);
// FWPM_FILTER0.effectiveWeight. Throws INVALID_WEIGHT for a range index above 15.
uint64_t effective_weight(const Weight& w, const std::vector<Condition>& conds, IpFamily family);

// Built-in sublayers, present in every engine (FWPM_SUBLAYER_*). Their keys are fixed.
namespace builtin {
extern const Guid SUBLAYER_UNIVERSAL;   // weight 0x8000: filters with no sublayer
extern const Guid SUBLAYER_INSPECTION;  // weight 0: lowest
}  // namespace builtin

}  // namespace lfp
