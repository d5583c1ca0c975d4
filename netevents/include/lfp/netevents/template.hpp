// SPDX-License-Identifier: MIT
#pragma once
// An enumeration template (FWPM_NET_EVENT_ENUM_TEMPLATE): a time window and conditions on the
// event's header, with the engine's field and match type names. As in a filter, conditions on one
// field are OR'ed and conditions on different fields AND'ed. A condition on a value the event does
// not have (say, a port of an ICMP event) is false, whatever its match type.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/netevents/event.hpp"

namespace lfp::netevents {

enum class TemplateField : uint8_t {
  IP_PROTOCOL,
  IP_LOCAL_ADDRESS,
  IP_REMOTE_ADDRESS,
  IP_LOCAL_PORT,
  IP_REMOTE_PORT,
  ALE_APP_ID,
  ALE_USER_ID,
  NET_EVENT_TYPE,
  // LFP's additions: what decided (WFP's event carries the filter id and layer id).
  FILTER_KEY,
  PROVIDER_KEY,
  LAYER_KEY,
};

struct TemplateCondition {
  TemplateField field;
  bool negate = false;        // NOT_EQUAL
  int64_t lo = 0, hi = 0;     // numbers, inclusive
  AddrRange addr{};           // addresses, inclusive
  std::string text;           // app path, keys, layer
  std::string file;           // ALE_APP_ID EQUAL: the path's "DEV:INO" when it exists here (matches too)
  bool prefix = false;        // ALE_APP_ID PREFIX: WFP's misnomer, the value ENDS with the text
};

struct Template {
  int64_t since = std::numeric_limits<int64_t>::min();  // UTC ns, inclusive
  int64_t until = std::numeric_limits<int64_t>::max();
  std::vector<TemplateCondition> conditions;  // sorted by field
  // Beside the conditions (and with them): only events of this user (lfpd's readers see their own).
  std::optional<int64_t> only_uid;
};

// {"since": TIME, "until": TIME, "conditions": [{"field", "match", "value"}]}; every member optional.
// Throws EventError naming the member.
Template parse_template(const nlohmann::json& j);
bool matches(const Template& t, const Record& r);
std::string_view to_string(TemplateField f);

}  // namespace lfp::netevents
