// SPDX-License-Identifier: MIT
// Policy files: JSON <-> providers, sublayers, callouts, provider contexts and filters.
#include <map>
#include <set>
#include <unordered_map>

#include "internal.hpp"

namespace lfp::policy {

using detail::at;
using detail::fail;
using detail::Members;
using detail::quote;
using nlohmann::json;

namespace detail {

namespace {

constexpr uint32_t kFilterFlags = PERSISTENT | BOOTTIME | HAS_PROVIDER_CONTEXT | CLEAR_ACTION_RIGHT |
                                  PERMIT_IF_CALLOUT_UNREGISTERED | DISABLED | INDEXED;

json key_json(const Guid& g) { return g.is_nil() ? json(nullptr) : json(g.str()); }

LayerId required_layer(const Members& m, std::string_view what) {
  const JsonValue* l = m.get("layer");
  if (!l) fail(m.path("layer"), "required member missing (" + std::string(what) + ", e.g. ALE_AUTH_CONNECT_V4)");
  if (l->is_string())
    if (auto layer = layer_from_string(l->str())) return *layer;  // without building the path
  return layer_from_json(*l, m.path("layer"));
}

// Output-only members (assigned by the engine): checked for form, otherwise ignored on input.
void ignore_runtime(const Members& m, std::string_view name) {
  uint64_t u;
  if (const JsonValue* v = m.get(name); v && !v->get_uint(u)) uint_from_json(*v, m.path(name), UINT64_MAX, name);
}

Weight weight_from_json(const Members& m) {
  const JsonValue* w = m.get("weight");
  if (!w) return Weight::empty();
  uint64_t u;
  if (w->get_uint(u)) return u <= WEIGHT_RANGE_MAX ? Weight::range_index(static_cast<uint8_t>(u)) : Weight::explicit_weight(u);
  if (w->is_object() && w->size() == 1 && w->members_begin()->key == "explicit" &&
      w->members_begin()->value.get_uint(u))
    return Weight::explicit_weight(u);  // the common forms, without building the path
  const std::string path = m.path("weight");
  if (w->is_number() || w->is_string()) {
    uint64_t v = uint_from_json(*w, path, UINT64_MAX, "a weight");
    return v <= WEIGHT_RANGE_MAX ? Weight::range_index(static_cast<uint8_t>(v)) : Weight::explicit_weight(v);
  }
  if (!w->is_object())
    fail(path, "expected a weight: 0..15 (a range index), a larger integer (explicit), {\"range\": N} or "
               "{\"explicit\": N}; got " + kind_of(*w));
  Members wm(*w, path, "a weight ({\"range\": 0..15} or {\"explicit\": N})", {"range", "explicit"});
  const JsonValue* r = wm.get("range");
  const JsonValue* e = wm.get("explicit");
  if ((r != nullptr) == (e != nullptr)) fail(path, "a weight object takes exactly one of \"range\" and \"explicit\"");
  if (e) return Weight::explicit_weight(uint_from_json(*e, wm.path("explicit"), UINT64_MAX, "an explicit weight"));
  uint64_t v = uint_from_json(*r, wm.path("range"), UINT64_MAX, "a weight range index");
  if (v > WEIGHT_RANGE_MAX)
    fail(wm.path("range"), "INVALID_WEIGHT: weight range index " + std::to_string(v) + " is above 15");
  return Weight::range_index(static_cast<uint8_t>(v));
}

json weight_to_json(const Weight& w) {
  switch (w.kind) {
    case Weight::Kind::EMPTY: return nullptr;
    case Weight::Kind::RANGE_INDEX: return w.value <= WEIGHT_RANGE_MAX ? json(w.value) : json{{"range", w.value}};
    case Weight::Kind::EXPLICIT: return w.value > WEIGHT_RANGE_MAX ? json(w.value) : json{{"explicit", w.value}};
  }
  return nullptr;
}

Action action_from_json(const Members& m) {
  const JsonValue* a = m.get("action");
  if (!a) fail(m.path("action"), "required member missing (\"BLOCK\", \"PERMIT\" or {\"type\": ..., \"callout\": ...})");
  Action act;
  if (a->is_string()) {
    const std::string_view s = a->str();
    auto t = action_type_from_string(s);
    if (t && !is_callout(*t)) {  // the common case, without building the path
      act.type = *t;
      return act;
    }
    const std::string path = m.path("action");
    if (!t) fail(path, "INVALID_ACTION_TYPE: unknown action " + quote(s) + " (BLOCK, PERMIT, CALLOUT_TERMINATING, "
                       "CALLOUT_INSPECTION, CALLOUT_UNKNOWN)");
    if (is_callout(*t)) fail(path, "a callout action needs its callout: {\"type\": " + quote(s) + ", \"callout\": \"<guid>\"}");
    act.type = *t;
    return act;
  }
  const std::string path = m.path("action");
  Members am(*a, path, "an action", {"type", "callout", "filter_type"});
  const JsonValue* t = am.get("type");
  if (!t) fail(am.path("type"), "required member missing (BLOCK, PERMIT, CALLOUT_TERMINATING, CALLOUT_INSPECTION, CALLOUT_UNKNOWN)");
  if (!t->is_string()) fail(am.path("type"), "expected an action type name, got " + kind_of(*t));
  const std::string_view s = t->str();
  auto type = action_type_from_string(s);
  if (!type) fail(am.path("type"), "INVALID_ACTION_TYPE: unknown action type " + quote(s) + " (BLOCK, PERMIT, "
                                   "CALLOUT_TERMINATING, CALLOUT_INSPECTION, CALLOUT_UNKNOWN)");
  act.type = *type;
  if (is_callout(act.type)) {
    act.callout_key = *get_guid(am, "callout", true);
    if (am.get("filter_type")) fail(am.path("filter_type"), "only BLOCK and PERMIT actions take a filter_type");
  } else {
    if (am.get("callout")) fail(am.path("callout"), "only callout actions (CALLOUT_*) name a callout");
    act.filter_type = get_guid(am, "filter_type");
  }
  return act;
}

json action_to_json(const Action& a) {
  json j{{"type", std::string(to_string(a.type))}};
  if (is_callout(a.type)) j["callout"] = a.callout_key.str();
  else if (a.filter_type) j["filter_type"] = a.filter_type->str();
  return j;
}

Condition condition_from_json(const JsonValue& j, const Path& path, const LayerInfo& layer) {
  Members m(j, path, "a condition", {"field", "match", "value"});
  const JsonValue* fj = m.get("field");
  if (!fj) fail(m.path("field"), "required member missing (a field name such as IP_REMOTE_PORT)");
  if (!fj->is_string()) fail(m.path("field"), "expected a field name, got " + kind_of(*fj));
  const std::string_view fname = fj->str();
  auto field = field_from_string(fname);
  if (!field) fail(m.path("field"), "CONDITION_NOT_FOUND: unknown field " + quote(fname) + " (see `lfp layers`)");
  if (!layer_has_field(layer, *field))
    fail(m.path("field"), "CONDITION_NOT_FOUND: field " + std::string(fname) + " is not available at layer " +
                              std::string(layer.name) + " (see `lfp layers`)");
  Condition c;
  c.field = *field;
  if (const JsonValue* mj = m.get("match")) {
    if (!mj->is_string()) fail(m.path("match"), "expected a match type name, got " + kind_of(*mj));
    const std::string_view ms = mj->str();
    auto mt = match_type_from_string(ms);
    if (!mt) fail(m.path("match"), "unknown match type " + quote(ms) + " (EQUAL, NOT_EQUAL, GREATER, LESS, "
                                   "GREATER_OR_EQUAL, LESS_OR_EQUAL, RANGE, FLAGS_ALL_SET, FLAGS_ANY_SET, "
                                   "FLAGS_NONE_SET, EQUAL_CASE_INSENSITIVE, PREFIX, NOT_PREFIX)");
    c.match = *mt;
  }
  if (!m.present("value")) fail(m.path("value"), "required member missing (null for an EMPTY value)");
  c.value = condition_value_from_json(c.field, layer.family, *j.find("value"), m.path("value"));
  if (c.match == MatchType::RANGE && c.value.type != DataType::RANGE_TYPE)
    fail(m.path("value"), "match type RANGE takes a range: {\"low\": ..., \"high\": ...}");
  try {
    validate_condition(c, layer);
  } catch (const Error& e) {
    const char* member = e.code() == ErrorCode::CONDITION_NOT_FOUND   ? "field"
                         : e.code() == ErrorCode::MATCH_TYPE_MISMATCH ? "match"
                                                                      : "value";
    fail(m.path(member), e.what());
  }
  return c;
}

json condition_to_json(const Condition& c) {
  return json{{"field", std::string(field_name(c.field))},
              {"match", std::string(to_string(c.match))},
              {"value", condition_value_to_json(c.field, c.value)}};
}

void put_common(json& j, const Guid& key, const DisplayData& d, uint32_t flags) {
  j["key"] = key_json(key);
  j["name"] = text_to_json(d.name);
  if (!d.description.empty()) j["description"] = text_to_json(d.description);
  if (flags) j["flags"] = flags_to_json(flags);
}

void put_provider(json& j, const std::optional<Guid>& p) {
  if (p) j["provider"] = p->str();
}

// The members every object kind has: key, name, description, flags.
template <class T>
void get_common(Members& m, T& o, uint32_t allowed_flags, const char* what) {
  o.key = get_guid(m, "key").value_or(Guid{});
  o.display.name = get_string(m, "name", true);
  o.display.description = get_string(m, "description");
  o.flags = get_flags(m, allowed_flags, what);
}

}  // namespace

Provider provider_from_json(const JsonValue& j, const Path& path) {
  Members m(j, path, "a provider", {"key", "name", "description", "flags", "service_name", "data"});
  Provider p;
  get_common(m, p, PERSISTENT, "a provider");
  p.service_name = get_string(m, "service_name");
  p.data = get_bytes(m, "data");
  return p;
}

Sublayer sublayer_from_json(const JsonValue& j, const Path& path) {
  Members m(j, path, "a sublayer", {"key", "name", "description", "flags", "provider", "weight", "data"});
  Sublayer s;
  get_common(m, s, PERSISTENT, "a sublayer");
  s.provider = get_guid(m, "provider");
  if (const JsonValue* w = m.get("weight"))
    s.weight = static_cast<uint16_t>(uint_from_json(*w, m.path("weight"), UINT16_MAX, "a sublayer weight"));
  s.data = get_bytes(m, "data");
  return s;
}

Callout callout_from_json(const JsonValue& j, const Path& path) {
  Members m(j, path, "a callout",
            {"key", "name", "description", "flags", "provider", "layer", "data", "callout_id"});
  Callout c;
  get_common(m, c, PERSISTENT | USES_PROVIDER_CONTEXT, "a callout");
  c.provider = get_guid(m, "provider");
  c.applicable_layer = required_layer(m, "the callout's applicable layer");
  c.data = get_bytes(m, "data");
  ignore_runtime(m, "callout_id");
  return c;
}

ProviderContext provider_context_from_json(const JsonValue& j, const Path& path) {
  Members m(j, path, "a provider context", {"key", "name", "description", "flags", "provider", "data", "id"});
  ProviderContext c;
  get_common(m, c, PERSISTENT, "a provider context");
  c.provider = get_guid(m, "provider");
  c.data = get_bytes(m, "data");
  ignore_runtime(m, "id");
  return c;
}

Filter filter_from_json(const JsonValue& j, const Path& path) {
  Members m(j, path, "a filter",
            {"key", "name", "description", "provider", "provider_data", "layer", "sublayer", "weight", "conditions",
             "action", "flags", "provider_context", "raw_context", "id", "effective_weight"});
  Filter f;
  f.key = get_guid(m, "key").value_or(Guid{});
  f.display.name = get_string(m, "name", true);
  f.display.description = get_string(m, "description");
  f.provider = get_guid(m, "provider");
  f.provider_data = get_bytes(m, "provider_data");
  f.layer = required_layer(m, "a layer name");
  f.sublayer = get_guid(m, "sublayer");
  f.weight = weight_from_json(m);
  f.flags = get_flags(m, kFilterFlags, "a filter");
  f.action = action_from_json(m);
  if (const JsonValue* cj = m.get("conditions")) {
    const detail::Path cpath = m.path("conditions");
    if (!cj->is_array()) fail(cpath, "expected an array of conditions, got " + kind_of(*cj));
    const LayerInfo& layer = layer_info(f.layer);
    f.conditions.reserve(cj->size());
    for (size_t i = 0; i < cj->size(); ++i) f.conditions.push_back(condition_from_json((*cj)[i], at(cpath, i), layer));
  }
  f.provider_context = get_guid(m, "provider_context");
  if (const JsonValue* r = m.get("raw_context")) f.raw_context = uint_from_json(*r, m.path("raw_context"), UINT64_MAX, "raw_context");
  ignore_runtime(m, "id");
  ignore_runtime(m, "effective_weight");

  // The engine's per-filter rules that need no other object, reported where they apply.
  if ((f.flags & PERSISTENT) && (f.flags & BOOTTIME))
    fail(m.path("flags"), "INVALID_FLAGS: a filter cannot be both PERSISTENT and BOOTTIME");
  if ((f.flags & HAS_PROVIDER_CONTEXT) && !f.provider_context)
    fail(m.path("provider_context"), "PROVIDER_CONTEXT_NOT_FOUND: flag HAS_PROVIDER_CONTEXT needs a provider_context");
  if (!(f.flags & HAS_PROVIDER_CONTEXT) && f.provider_context)
    fail(m.path("provider_context"), "INVALID_PARAMETER: a provider_context needs the flag HAS_PROVIDER_CONTEXT");
  if ((f.flags & PERMIT_IF_CALLOUT_UNREGISTERED) &&
      (!is_callout(f.action.type) || f.action.type == ActionType::CALLOUT_INSPECTION))
    fail(m.path("flags"), "INVALID_FLAGS: PERMIT_IF_CALLOUT_UNREGISTERED needs a CALLOUT_TERMINATING or "
                          "CALLOUT_UNKNOWN action");
  return f;
}

}  // namespace detail

json to_json(const Provider& p) {
  json j = json::object();
  detail::put_common(j, p.key, p.display, p.flags);
  if (!p.service_name.empty()) j["service_name"] = detail::text_to_json(p.service_name);
  if (!p.data.empty()) j["data"] = detail::bytes_to_json(p.data);
  return j;
}

json to_json(const Sublayer& s) {
  json j = json::object();
  detail::put_common(j, s.key, s.display, s.flags);
  detail::put_provider(j, s.provider);
  j["weight"] = s.weight;
  if (!s.data.empty()) j["data"] = detail::bytes_to_json(s.data);
  return j;
}

json to_json(const Callout& c) {
  json j = json::object();
  detail::put_common(j, c.key, c.display, c.flags);
  detail::put_provider(j, c.provider);
  j["layer"] = std::string(layer_info(c.applicable_layer).name);
  if (!c.data.empty()) j["data"] = detail::bytes_to_json(c.data);
  if (c.callout_id) j["callout_id"] = c.callout_id;
  return j;
}

json to_json(const ProviderContext& c) {
  json j = json::object();
  detail::put_common(j, c.key, c.display, c.flags);
  detail::put_provider(j, c.provider);
  if (!c.data.empty()) j["data"] = detail::bytes_to_json(c.data);
  if (c.id) j["id"] = c.id;
  return j;
}

json to_json(const Filter& f) {
  json j = json::object();
  detail::put_common(j, f.key, f.display, f.flags);
  detail::put_provider(j, f.provider);
  if (!f.provider_data.empty()) j["provider_data"] = detail::bytes_to_json(f.provider_data);
  j["layer"] = std::string(layer_info(f.layer).name);
  if (f.sublayer) j["sublayer"] = f.sublayer->str();
  if (f.weight.kind != Weight::Kind::EMPTY) j["weight"] = detail::weight_to_json(f.weight);
  json conds = json::array();
  for (const auto& c : f.conditions) conds.push_back(detail::condition_to_json(c));
  j["conditions"] = std::move(conds);
  j["action"] = detail::action_to_json(f.action);
  if (f.provider_context) j["provider_context"] = f.provider_context->str();
  if (f.raw_context) j["raw_context"] = f.raw_context;
  if (f.id) {
    j["id"] = f.id;
    j["effective_weight"] = f.effective_weight;
  }
  return j;
}

json to_json(const Policy& p) {
  json j = json::object();
  j["version"] = kFormatVersion;
  auto list = [](const auto& v) {
    json a = json::array();
    for (const auto& x : v) a.push_back(to_json(x));
    return a;
  };
  j["providers"] = list(p.providers);
  j["sublayers"] = list(p.sublayers);
  j["callouts"] = list(p.callouts);
  j["provider_contexts"] = list(p.provider_contexts);
  j["filters"] = list(p.filters);
  return j;
}

namespace {

template <class T, class Parse>
void parse_list(const Members& top, std::string_view name, std::vector<T>& out, Parse parse) {
  const JsonValue* a = top.get(name);
  if (!a) return;
  const detail::Path path = top.path(name);
  if (!a->is_array()) fail(path, "expected an array, got " + detail::kind_of(*a));
  std::unordered_map<Guid, size_t> seen;
  out.reserve(out.size() + a->size());
  for (size_t i = 0; i < a->size(); ++i) {
    out.push_back(parse((*a)[i], at(path, i)));
    const Guid& k = out.back().key;
    if (k.is_nil()) continue;
    auto [it, fresh] = seen.emplace(k, i);
    if (!fresh)
      fail(at(at(path, i), "key"), "ALREADY_EXISTS: duplicate key " + k.str() + " (also " + at(path, it->second).str() + ")");
  }
}

// Tracks where the parser is to report a member given twice in one object (nlohmann keeps the
// last silently).
class DuplicateMemberCheck {
 public:
  bool operator()(int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start: {
        std::string token;
        if (!frames_.empty()) token = frames_.back().array ? std::to_string(frames_.back().index++) : frames_.back().key;
        frames_.push_back(Frame{ev == json::parse_event_t::array_start, 0, {}, {}, std::move(token)});
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& f = frames_.back();
          f.key = parsed.get<std::string>();
          if (!f.keys.insert(f.key).second) {
            std::string path;
            for (const auto& fr : frames_)
              if (&fr != &frames_.front()) path = at(path, fr.token);
            fail(at(path, f.key), "duplicate member " + quote(f.key) + " (JSON objects must not repeat a member)");
          }
        }
        break;
      case json::parse_event_t::value:
        if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array;
    size_t index;
    std::string key;
    std::set<std::string> keys;
    std::string token;  // this container's name in its parent
  };
  std::vector<Frame> frames_;
};

}  // namespace

Policy policy_from_json(const json& j) { return policy_from_json(JsonDoc::view(j)->root()); }

Policy policy_from_json(const JsonValue& j) {
  static const std::string root;
  Members top(j, root, "a policy", {"version", "providers", "sublayers", "callouts", "provider_contexts", "filters"});
  if (const JsonValue* v = top.get("version")) {
    if (!v->is_number_integer() || v->integer() != kFormatVersion)
      fail(top.path("version"), "unsupported format version " + (v->is_number() ? v->dump() : detail::kind_of(*v)) +
                                    " (this LFP reads version " + std::to_string(kFormatVersion) + ")");
  }
  Policy p;
  parse_list(top, "providers", p.providers, detail::provider_from_json);
  parse_list(top, "sublayers", p.sublayers, detail::sublayer_from_json);
  parse_list(top, "callouts", p.callouts, detail::callout_from_json);
  parse_list(top, "provider_contexts", p.provider_contexts, detail::provider_context_from_json);
  parse_list(top, "filters", p.filters, detail::filter_from_json);
  return p;
}

Policy object_from_json(std::string_view list, const JsonValue& j, const std::string& path,
                        std::initializer_list<std::string_view> ignore) {
  const JsonValue* obj = &j;
  std::unique_ptr<JsonDoc> trimmed;
  if (ignore.size() && j.is_object()) {
    bool any = false;
    for (auto n : ignore) any = any || j.contains(n);
    if (any) {
      trimmed = JsonDoc::without(j, ignore);
      obj = &trimmed->root();
    }
  }
  Policy p;
  if (list == "providers") p.providers.push_back(detail::provider_from_json(*obj, path));
  else if (list == "sublayers") p.sublayers.push_back(detail::sublayer_from_json(*obj, path));
  else if (list == "callouts") p.callouts.push_back(detail::callout_from_json(*obj, path));
  else if (list == "provider_contexts") p.provider_contexts.push_back(detail::provider_context_from_json(*obj, path));
  else if (list == "filters") p.filters.push_back(detail::filter_from_json(*obj, path));
  else throw std::invalid_argument("object_from_json: unknown list " + std::string(list));
  return p;
}

Policy parse_policy(std::string_view text) {
  json j;
  try {
    // A pointer to the check: nlohmann copies the callback.
    auto check = std::make_shared<DuplicateMemberCheck>();
    j = json::parse(text.begin(), text.end(), [check](int d, json::parse_event_t e, json& p) { return (*check)(d, e, p); });
  } catch (const json::exception& e) {
    std::string msg = e.what();
    if (auto close = msg.find("] "); msg.starts_with("[json.exception.") && close != std::string::npos)
      msg.erase(0, close + 2);
    fail("", "malformed JSON: " + detail::text_to_json(msg).get<std::string>());  // it may quote invalid UTF-8
  }
  try {
    return policy_from_json(j);
  } catch (const json::exception& e) {  // not expected: every access is checked first
    fail("", std::string("invalid policy: ") + e.what());
  }
}

}  // namespace lfp::policy
