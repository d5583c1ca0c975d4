// SPDX-License-Identifier: MIT
// lfpd's own ops (docs/protocol.md): the session (hello, ping), transactions, objects (add, delete,
// apply, get, enum), state, classify and change notifications, each registered in the Server's one
// op table with its access rule, as the services beside the engine register theirs.
#include <algorithm>
#include <type_traits>
#include <variant>

#include <spdlog/spdlog.h>

#include "lfp/engine/error.hpp"
#include "lfp/policy/policy.hpp"
#include "lfp/protocol/json_text.hpp"
#include "lfp/protocol/log_limit.hpp"
#include "lfp/protocol/request.hpp"
#include "server_parts.hpp"

namespace lfp::daemon {

using nlohmann::json;

namespace {

constexpr uint64_t kMaxTxnWaitMs = 3'600'000;  // an hour: a wait longer than that is a mistake
constexpr uint64_t kMaxFirst = UINT32_MAX;      // apply's "first" indexes: more objects than a policy has

[[noreturn]] void invalid(const std::string& message) { throw Error(ErrorCode::INVALID_PARAMETER, message); }


// A member holding a GUID, nullopt when absent (`at`: the path of the object holding it, as for
// protocol::string_member); guid_arg: one that is required.
std::optional<Guid> guid_member(const json& req, std::string_view name, std::string_view at = {}) {
  const auto text = protocol::string_member(req, name, at);
  if (!text) return std::nullopt;
  const auto g = Guid::parse(*text);
  if (!g) invalid(std::string(at) + "/" + std::string(name) + ": not a GUID: \"" + protocol::log_safe(*text, 64) + "\"");
  return g;
}

Guid guid_arg(const json& req, std::string_view name) {
  const auto g = guid_member(req, name);
  if (!g) protocol::missing_member(name, "a GUID");
  return *g;
}

ObjKind kind_arg(const json& req) {
  const auto text = protocol::string_member(req, "kind");
  if (!text) protocol::missing_member("kind", "provider, sublayer, callout, provider_context or filter");
  const auto k = kind_from_string(*text);
  if (!k)
    invalid("/kind: unknown kind \"" + protocol::log_safe(*text, 64) +
                                  "\" (provider, sublayer, callout, provider_context or filter)");
  return *k;
}


}  // namespace

void Server::add_core_ops() {
  const OpRule session_op{Role::NONE, OpLock::NONE, false, true};
  const OpRule txn_op{Role::READER, OpLock::NONE, false, true};
  const OpRule write_op{Role::WRITER, OpLock::WRITE};
  const OpRule read_op{};
  auto done = [](Session&, const Request&) -> std::optional<OpResult> { return OpResult{json::object()}; };
  register_op("hello", {Role::NONE, OpLock::NONE, true, true},
              [this](Session& s, const Request& r) -> std::optional<OpResult> { return OpResult{op_hello(s, r.req)}; });
  register_op("ping", session_op, done);
  register_op("txn_begin", txn_op, [this](Session& s, const Request& r) { return op_txn_begin(s, r.req); });
  register_op("txn_commit", txn_op, [this](Session& s, const Request&) -> std::optional<OpResult> { return op_txn_end(s, true); });
  register_op("txn_abort", txn_op, [this](Session& s, const Request&) -> std::optional<OpResult> { return op_txn_end(s, false); });
  register_op("add", write_op, [this](Session& s, const Request& r) -> std::optional<OpResult> {
    return OpResult{op_add(s, kind_arg(r.req), r)};
  });
  register_op("delete", write_op, [this](Session& s, const Request& r) -> std::optional<OpResult> {
    const ObjKind kind = kind_arg(r.req);
    const Guid key = object_key(kind, r.req);
    op_delete(s, kind, key, protocol::bool_member(r.req, "force", false));
    return OpResult{json{{"key", key.str()}}};
  });
  register_op("apply", write_op,
              [this](Session& s, const Request& r) -> std::optional<OpResult> { return OpResult{JsonText{op_apply(s, r)}}; });
  register_op("get", read_op, [this](Session&, const Request& r) -> std::optional<OpResult> {
    const ObjKind kind = kind_arg(r.req);
    const Guid key = object_key(kind, r.req);
    json obj = object_json(kind, key);
    if (obj.is_null()) throw Error(ErrorCode::NOT_FOUND, std::string(kind_name(kind)) + " " + key.str() + " not found");
    return OpResult{std::move(obj)};
  });
  register_op("enum", read_op,
              [this](Session&, const Request& r) -> std::optional<OpResult> { return OpResult{JsonText{op_enum(r.req)}}; });
  register_op("state", read_op, [this](Session&, const Request& r) -> std::optional<OpResult> {
    return OpResult{op_state(protocol::bool_member(r.req, "objects", true))};
  });
  register_op("classify", read_op,
              [this](Session&, const Request& r) -> std::optional<OpResult> { return OpResult{op_classify(r.req)}; });
  register_op("subscribe", read_op,
              [this](Session& s, const Request& r) -> std::optional<OpResult> { return OpResult{op_subscribe(s, r.req)}; });
  register_op("unsubscribe", read_op, [](Session& s, const Request&) -> std::optional<OpResult> {
    s.subscribed = false;
    return OpResult{json::object()};
  });
}

// ---------------------------------------------------------------------------------------------
// The session and its transactions.

json Server::op_hello(Session& s, const json& req) {
  if (s.hello) invalid("the session is already open");
  if (protocol::uint_member(req, "version", wire::kVersion, UINT32_MAX) != wire::kVersion)
    invalid("/version: protocol version " + req["version"].dump() + " is not supported (this lfpd speaks 1)");
  s.name = protocol::name_member(req, "name");  // (bounded, no control characters: it is logged and listed)
  s.dynamic = protocol::bool_member(req, "dynamic", false);
  s.txn_wait_ms = static_cast<uint32_t>(protocol::uint_member(req, "txn_wait_timeout_ms", 0, kMaxTxnWaitMs));
  if (s.txn_wait_ms == 0) s.txn_wait_ms = cfg_.default_txn_wait_ms;
  s.provider = guid_member(req, "provider");
  s.key = Guid::generate();
  s.hello = true;
  // (Any user may open sessions by the thousand: their lines are rate-limited, docs/security.md.)
  static protocol::LineLimit session_lines(50);
  uint64_t suppressed;
  const bool admitted = session_lines.admit(suppressed);
  if (suppressed) spdlog::info("sessions: {} 'opened' lines suppressed (at most {} a second)", suppressed, session_lines.per_second());
  if (admitted)
    spdlog::info("session {} '{}': opened by uid {} pid {} ({}{})", s.id, s.name, s.cred.uid, s.cred.pid,
                 role_name(s.role), s.dynamic ? ", dynamic" : "");
  return {{"version", wire::kVersion},
          {"session", {{"key", s.key.str()}, {"uid", s.cred.uid}, {"role", role_name(s.role)}, {"dynamic", s.dynamic}}}};
}

std::optional<Server::OpResult> Server::op_txn_begin(Session& s, const json& req) {
  s.txn_ended.clear();  // (a transaction lfpd ended is left behind)
  if (s.txn != Session::Txn::NONE) throw Error(ErrorCode::TXN_IN_PROGRESS, "the session already has a transaction");
  if (protocol::bool_member(req, "read_only", false)) {
    if (!can_read(s)) return std::nullopt;
    readers_.insert(s.id);
    s.txn = Session::Txn::READ;
    s.txn_since = Clock::now();
  } else {
    need_role(s, Role::WRITER, "a read/write transaction");
    if (!can_write(s)) return std::nullopt;
    begin_write(s, true);
  }
  return OpResult{json::object()};
}

Server::OpResult Server::op_txn_end(Session& s, bool commit) {
  if (!s.txn_ended.empty()) {  // lfpd ended it: an abort is done, a commit is told why
    const std::string why = std::exchange(s.txn_ended, {});
    if (commit) throw Error(ErrorCode::TXN_ABORTED, why);
    return OpResult{json::object()};
  }
  if (s.txn == Session::Txn::NONE) throw Error(ErrorCode::NO_TXN_IN_PROGRESS, "the session has no transaction");
  json result = json::object();
  if (s.txn == Session::Txn::READ) {
    readers_.erase(s.id);
    s.txn = Session::Txn::NONE;
  } else if (commit) {
    // The transaction's filters at layers nothing enforces here, counted once for all of it (a
    // policy applied in pieces gets one warning a layer, not one a piece).
    std::vector<std::string> warnings = layer_warnings(unenforced_adds(0));
    commit_write(s);
    if (!warnings.empty()) result["warnings"] = std::move(warnings);
  } else {
    abort_write(s);
  }
  return OpResult{std::move(result)};
}

Guid Server::object_key(ObjKind kind, const json& req) const {
  const auto filter_id = kind == ObjKind::FILTER ? protocol::maybe_uint_member(req, "filter_id", UINT64_MAX) : std::nullopt;
  if (!filter_id) return guid_arg(req, "key");
  const Filter* f = engine_.filter_by_id(*filter_id);
  if (!f) throw Error(ErrorCode::FILTER_NOT_FOUND, "filter id " + std::to_string(*filter_id) + " not found");
  return f->key;
}

json Server::op_classify(const json& req) const {
  policy::Request r;
  policy::parse_request(json{{"layer", req.value("layer", json())}, {"values", req.value("values", json::object())}}, r);
  // Values as typed on a command line ("IP_PROTOCOL": "TCP"), typed by the field at the layer.
  if (const json* text_values = protocol::object_member(req, "text_values"))
    for (const auto& [name, text] : text_values->items()) {
      auto f = field_from_string(name);
      if (!f) invalid("/text_values/" + name + ": unknown field");
      const auto value = protocol::string_member(*text_values, name, "/text_values");
      if (!value) protocol::missing_member(name, "the value as text", "/text_values");
      r.set_text(*f, *value);
    }
  return policy::result_to_json(engine_, engine_.classify(r.layer, r.values, protocol::bool_member(req, "explain", false)));
}

json Server::op_subscribe(Session& s, const json& req) {
  s.sub_kinds.clear();
  static const json all_kinds = {"provider", "sublayer", "callout", "provider_context", "filter"};
  const json* kinds = protocol::array_member(req, "kinds");
  if (!kinds) kinds = &all_kinds;
  for (size_t i = 0; i < kinds->size(); ++i) {
    const json& k = kinds->at(i);
    const auto kind = k.is_string() ? kind_from_string(k.get_ref<const std::string&>()) : std::nullopt;
    if (!kind) invalid("/kinds/" + std::to_string(i) + ": unknown kind " + protocol::log_safe(k.dump(), 64));
    s.sub_kinds.insert(*kind);
  }
  s.subscribed = true;
  return json::object();
}

// ---------------------------------------------------------------------------------------------
// Objects.

namespace {
// The keys an object references, with their kinds (for lifetime checks).
std::vector<std::pair<ObjKind, Guid>> references(const policy::Policy& p) {
  std::vector<std::pair<ObjKind, Guid>> out;
  auto prov = [&](const std::optional<Guid>& g) { if (g) out.emplace_back(ObjKind::PROVIDER, *g); };
  for (auto& x : p.sublayers) prov(x.provider);
  for (auto& x : p.callouts) prov(x.provider);
  for (auto& x : p.provider_contexts) prov(x.provider);
  for (auto& f : p.filters) {
    prov(f.provider);
    if (f.sublayer) out.emplace_back(ObjKind::SUBLAYER, *f.sublayer);
    if (is_callout(f.action.type)) out.emplace_back(ObjKind::CALLOUT, f.action.callout_key);
    if (f.provider_context) out.emplace_back(ObjKind::PROVIDER_CONTEXT, *f.provider_context);
  }
  return out;
}
uint32_t flags_of(const policy::Policy& p) {
  if (!p.providers.empty()) return p.providers[0].flags;
  if (!p.sublayers.empty()) return p.sublayers[0].flags;
  if (!p.callouts.empty()) return p.callouts[0].flags;
  if (!p.provider_contexts.empty()) return p.provider_contexts[0].flags;
  return p.filters.empty() ? 0 : p.filters[0].flags;
}
}  // namespace

json Server::op_add(Session& s, ObjKind kind, const Request& r) {
  const policy::JsonValue* obj = r.member("object");
  if (!obj || obj->is_null()) protocol::missing_member("object", "the object to add, as in a policy file");
  if (!obj->is_object()) invalid("/object: must be an object, not " + protocol::log_safe(obj->text(), 64));
  policy::Policy p;
  try {
    // Output-only members are ignored ("owner" too: what `get` returns can be added back).
    p = policy::object_from_json(kind_plural(kind), *obj, "/object", {"id", "effective_weight", "owner"});
  } catch (const policy::PolicyError& e) {
    invalid(e.what());
  }
  uint64_t id = 0;
  const Guid key = add_parsed(s, kind, p, obj->text(), &id);
  json result = {{"key", key.str()}};
  if (kind == ObjKind::FILTER) result["id"] = id;
  return result;
}

// Adds the one object `p` holds (of `kind`) inside the current write transaction.
Guid Server::add_parsed(Session& s, ObjKind kind, policy::Policy& p, std::string_view text, uint64_t* filter_id) {
  const uint32_t flags = flags_of(p);
  if (s.dynamic && (flags & (PERSISTENT | BOOTTIME)))
    throw Error(ErrorCode::DYNAMIC_SESSION_IN_PROGRESS, "a dynamic session cannot add persistent or boot-time objects");
  // WFP's lifetimes: a dynamic object may be referenced only by its own session's objects.
  for (const auto& [rk, rkey] : references(p)) {
    auto& owners = owners_[rk];
    auto it = owners.find(rkey);
    if (it != owners.end() && it->second.dynamic && !(s.dynamic && it->second.session == s.id))
      throw Error(ErrorCode::LIFETIME_MISMATCH, std::string(kind_name(rk)) + " " + rkey.str() +
                                                    " is dynamic in another session; only that session may reference it");
  }
  // Give the object its key now (nil means "generate"), so the daemon knows what was added.
  Guid key;
  auto take = [&](Guid& k) {
    if (k.is_nil()) k = Guid::generate();
    key = k;
  };
  switch (kind) {
    case ObjKind::PROVIDER: take(p.providers.at(0).key); break;
    case ObjKind::SUBLAYER: take(p.sublayers.at(0).key); break;
    case ObjKind::CALLOUT: take(p.callouts.at(0).key); break;
    case ObjKind::PROVIDER_CONTEXT: take(p.provider_contexts.at(0).key); break;
    case ObjKind::FILTER: take(p.filters.at(0).key); break;
  }
  auto& undo = txn_->undo;
  if (undo.size() == undo.capacity()) undo.reserve(std::max<size_t>(64, 2 * undo.capacity()));  // recording the add cannot fail once the engine has it
  // The store keeps a persistent object as the request gave it: its text, kept until the commit.
  if (!(flags & (PERSISTENT | BOOTTIME))) text = {};
  else if (!text.empty()) text = txn_->texts.emplace_back(text);
  const LayerId layer = kind == ObjKind::FILTER ? p.filters.at(0).layer : LayerId{};
  // Straight into the engine: its errors keep WFP's codes (SUBLAYER_NOT_FOUND, ...).
  const uint64_t id = engine_add(kind, p);  // (a filter's id)
  if (filter_id) *filter_id = id;
  Owner owner{s.cred.uid, s.id, s.dynamic};
  owners_[kind][key] = owner;
  // The notification's object only when someone listens (building it costs more than the add).
  undo.push_back(Undo{true, kind, key, has_subscribers(kind) ? object_json(kind, key) : json(), owner, text, {},
                      (flags & (PERSISTENT | BOOTTIME)) != 0, layer});
  return key;
}

void Server::check_may_delete(const Session& s, ObjKind kind, const Guid& key, bool force) const {
  json obj = object_json(kind, key);
  if (obj.is_null()) return;  // the engine reports NOT_FOUND
  if (s.role != Role::ADMIN) {
    auto ok = owners_.find(kind);
    bool own = ok != owners_.end() && ok->second.count(key) && ok->second.at(key).uid == s.cred.uid;
    if (s.role != Role::WRITER || !own)
      throw Error(ErrorCode::ACCESS_DENIED, "only its owner or an admin may delete " + std::string(kind_name(kind)) + " " + key.str());
  }
  if (obj.contains("provider") && obj["provider"].is_string() && s.provider) {
    auto p = Guid::parse(obj["provider"].get<std::string>());
    if (p && *p != *s.provider && !(s.role == Role::ADMIN && force))
      throw Error(ErrorCode::ACCESS_DENIED, std::string(kind_name(kind)) + " " + key.str() + " belongs to provider " +
                                                p->str() + ", not to this session's provider (an admin may pass force)");
  }
}

void Server::op_delete(Session& s, ObjKind kind, const Guid& key, bool force) {
  check_may_delete(s, kind, key, force);
  Undo u{false, kind, key, has_subscribers(kind) ? object_json(kind, key) : json(), Owner{}, {}, {}};
  if (auto it = owners_[kind].find(key); it != owners_[kind].end()) u.owner = it->second;
  switch (kind) {
    case ObjKind::PROVIDER: if (auto* o = engine_.provider(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
    case ObjKind::SUBLAYER: if (auto* o = engine_.sublayer(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
    case ObjKind::CALLOUT: if (auto* o = engine_.callout(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
    case ObjKind::PROVIDER_CONTEXT:
      if (auto* o = engine_.provider_context(key)) u.object = std::make_unique<Undo::Deleted>(*o);
      break;
    case ObjKind::FILTER: if (auto* o = engine_.filter(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
  }
  auto& undo = txn_->undo;
  if (undo.size() == undo.capacity()) undo.reserve(std::max<size_t>(64, 2 * undo.capacity()));
  engine_delete(kind, key);  // NOT_FOUND, IN_USE, ... before anything changed
  owners_[kind].erase(key);
  undo.push_back(std::move(u));
}

std::string Server::op_apply(Session& s, const Request& r) {
  const policy::JsonValue* policy_json = r.member("policy");
  if (!policy_json || policy_json->is_null()) protocol::missing_member("policy", "the policy to apply");
  // (Errors inside it name their path in the policy, as in its file: "/filters/3/weight: ...".)
  if (!policy_json->is_object()) invalid("/policy: must be an object, not " + protocol::log_safe(policy_json->text(), 64));
  // "first": {"filters": N, ...}: this request is a piece of a larger policy whose objects of a kind
  // start at N, so that errors name their place in the whole (lfp sends a large policy in pieces).
  const policy::JsonValue* first_index = r.member("first");
  if (first_index && first_index->is_null()) first_index = nullptr;
  if (first_index && !first_index->is_object())
    invalid("/first: must be an object, not " + protocol::log_safe(first_index->text(), 64));
  auto base_of = [&](std::string_view list) {
    uint64_t base = 0;
    const policy::JsonValue* b = first_index ? first_index->find(list) : nullptr;
    if (b && !b->is_null() && (!b->get_uint(base) || base > kMaxFirst))
      invalid("/first/" + std::string(list) + ": must be an integer 0.." + std::to_string(kMaxFirst) +
                                    ", not " + protocol::log_safe(b->text(), 64));
    return base;
  };
  policy::Policy p;
  try {
    // (Read with the request, on the reader's worker for a large one.) It checks the whole policy
    // first, and names the path.
    if (r.policy_error) std::rethrow_exception(r.policy_error);
    p = r.policy ? std::move(*std::exchange(r.policy, std::nullopt)) : policy::policy_from_json(*policy_json);
  } catch (const policy::PolicyError& e) {
    // "/filters/3/..." of the piece is "/filters/(first + 3)/..." of the policy.
    const std::string& path = e.path();
    const size_t list_end = path.find('/', 1), index_end = path.find('/', list_end + 1);
    if (!first_index || list_end == std::string::npos) throw;
    const std::string list = path.substr(1, list_end - 1), index = path.substr(list_end + 1, index_end - list_end - 1);
    if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) throw;
    throw policy::PolicyError("/" + list + "/" + std::to_string(base_of(list) + std::stoull(index)) +
                                  (index_end == std::string::npos ? "" : path.substr(index_end)),
                              e.reason());
  }
  // Then each object through add_parsed, so ownership, lifetimes and notifications are those of add.
  // The result, {"added": [{"key", "id"?}...]}, is written as text (it can hold many thousands).
  std::string out = "{\"added\":[";
  out.reserve(out.size() + 64 * (p.providers.size() + p.sublayers.size() + p.callouts.size() +
                                 p.provider_contexts.size() + p.filters.size()));
  bool first = true;
  auto add_all = [&](ObjKind kind, auto& objects, auto member) {
    const policy::JsonValue* list = policy_json->find(kind_plural(kind));
    const uint64_t base = base_of(kind_plural(kind));
    // A bulk load grows the map once, and a policy sent in pieces doubles it, not once a piece (a
    // reserve to the exact size would rehash every owner at every piece).
    auto& owners = owners_[kind];
    if (const size_t need = owners.size() + objects.size(); need > owners.bucket_count() * owners.max_load_factor())
      owners.reserve(std::max(need, 2 * owners.size()));
    // A filter's slots in the maps by key (the engine's and the owners') are cache misses in a large
    // policy: fetched a few filters ahead (the reader gave keyless filters their keys).
    constexpr size_t kAhead = 8;
    constexpr bool filters = std::is_same_v<std::decay_t<decltype(objects)>, std::vector<Filter>>;
    policy::Policy one;  // (one object at a time; its list's buffer serves them all)
    for (size_t j = 0; j < objects.size(); ++j) {
      if (filters && j + kAhead < objects.size()) {
        engine_.prefetch_filter(objects[j + kAhead].key);
        owners.prefetch(objects[j + kAhead].key);
      }
      (one.*member).clear();
      (one.*member).push_back(std::move(objects[j]));
      uint64_t id = 0;
      Guid key;
      try {
        key = add_parsed(s, kind, one, (*list)[j].text(), &id);
      } catch (const Error& e) {
        throw Error(e.code(), "/" + std::string(kind_plural(kind)) + "/" + std::to_string(base + j) + ": " + e.detail());
      }
      out += first ? "{\"key\":\"" : ",{\"key\":\"";
      first = false;
      key.append_str(out);
      out += '"';
      if (kind == ObjKind::FILTER) {
        out += ",\"id\":";
        out += std::to_string(id);
      }
      out += '}';
    }
  };
  add_all(ObjKind::PROVIDER, p.providers, &policy::Policy::providers);
  add_all(ObjKind::SUBLAYER, p.sublayers, &policy::Policy::sublayers);
  add_all(ObjKind::CALLOUT, p.callouts, &policy::Policy::callouts);
  add_all(ObjKind::PROVIDER_CONTEXT, p.provider_contexts, &policy::Policy::provider_contexts);
  add_all(ObjKind::FILTER, p.filters, &policy::Policy::filters);
  out += "]}";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reads.

std::string Server::op_enum(const json& req) const {
  const ObjKind kind = kind_arg(req);
  static const json no_template = json::object();
  const json* given_tmpl = protocol::object_member(req, "template");
  const json& tmpl = given_tmpl ? *given_tmpl : no_template;
  size_t offset = protocol::uint_member(req, "offset", 0, SIZE_MAX >> 1);
  size_t limit = protocol::uint_member(req, "limit", protocol::kDefaultPage, protocol::kMaxPage);
  const auto layer_name = protocol::string_member(tmpl, "layer", "/template");
  std::vector<Guid> keys;
  if (kind == ObjKind::FILTER) {
    FilterTemplate t;
    std::optional<LayerId> layer;
    if (layer_name) {
      layer = layer_from_string(*layer_name);
      if (!layer) invalid("/template/layer: unknown layer \"" + protocol::log_safe(*layer_name, 64) + "\"");
      t.layer = layer;
    }
    t.provider = guid_member(tmpl, "provider", "/template");
    t.sublayer = guid_member(tmpl, "sublayer", "/template");
    if (const auto action = protocol::string_member(tmpl, "action", "/template")) {
      t.action = action_type_from_string(*action);
      if (!t.action) invalid("/template/action: unknown action type \"" + protocol::log_safe(*action, 64) + "\"");
    }
    if (const json* flags = protocol::array_member(tmpl, "flags", "/template"))
      for (size_t i = 0; i < flags->size(); ++i) {
        const auto flag = flags->at(i).is_string() ? flag_from_string(flags->at(i).get_ref<const std::string&>()) : std::nullopt;
        if (!flag)
          invalid("/template/flags/" + std::to_string(i) + ": must be a flag's name, not " +
                                        protocol::log_safe(flags->at(i).dump(), 64));
        t.flags_all_set |= *flag;
      }
    // "Filters that would match these values" (FWPM_FILTER_ENUM_TEMPLATE0's conditions).
    std::unique_ptr<policy::Request> values;
    if (const json* given_values = protocol::object_member(tmpl, "values", "/template")) {
      if (!layer) invalid("/template/values needs /template/layer");
      values = std::make_unique<policy::Request>();
      try {
        policy::parse_request(json{{"layer", *layer_name}, {"values", *given_values}}, *values);
      } catch (const policy::PolicyError& e) {  // (its paths are the template's)
        invalid("/template" + e.path() + ": " + e.reason());
      }
    }
    for (const Filter* f : engine_.filters(t))
      if (!values || conditions_match(f->conditions, values->values)) keys.push_back(f->key);
  } else {
    const std::optional<Guid> provider = guid_member(tmpl, "provider", "/template");
    auto want = [&](const std::optional<Guid>& p) { return !provider || p == provider; };
    switch (kind) {
      case ObjKind::PROVIDER:
        for (auto* o : engine_.providers()) if (!provider || o->key == *provider) keys.push_back(o->key);
        break;
      case ObjKind::SUBLAYER: for (auto* o : engine_.sublayers()) if (want(o->provider)) keys.push_back(o->key); break;
      case ObjKind::CALLOUT:
        for (auto* o : engine_.callouts()) {
          if (!want(o->provider)) continue;
          if (layer_name && layer_info(o->applicable_layer).name != *layer_name) continue;
          keys.push_back(o->key);
        }
        break;
      case ObjKind::PROVIDER_CONTEXT:
        for (auto* o : engine_.provider_contexts()) if (want(o->provider)) keys.push_back(o->key);
        break;
      default: break;
    }
  }
  // A page ends early at wire::kPageBytes (10000 filters of many conditions could be too large for a frame).
  std::string out = "{\"objects\":[";
  size_t i = offset;
  for (; i < keys.size() && i < offset + limit && (i == offset || out.size() < wire::kPageBytes); ++i) {
    if (i > offset) out += ',';
    wire::append_json(out, object_json(kind, keys[i]), true);
  }
  out += "],\"total\":" + std::to_string(keys.size()) + ",\"next_offset\":" + (i < keys.size() ? std::to_string(i) : "null") + "}";
  return out;
}

json Server::op_state(bool with_objects) const {
  json j;
  for (ObjKind k : {ObjKind::PROVIDER, ObjKind::SUBLAYER, ObjKind::CALLOUT, ObjKind::PROVIDER_CONTEXT}) {
    std::vector<Guid> keys;
    switch (k) {
      case ObjKind::PROVIDER: for (auto* o : engine_.providers()) keys.push_back(o->key); break;
      case ObjKind::SUBLAYER: for (auto* o : engine_.sublayers()) keys.push_back(o->key); break;
      case ObjKind::CALLOUT: for (auto* o : engine_.callouts()) keys.push_back(o->key); break;
      default: for (auto* o : engine_.provider_contexts()) keys.push_back(o->key); break;
    }
    j[std::string(kind_name(k)) + "_count"] = keys.size();
    if (!with_objects) continue;  // (the client pages them with enum)
    json arr = json::array();
    for (const Guid& key : keys) arr.push_back(object_json(k, key));
    j[std::string(kind_plural(k))] = std::move(arr);
  }
  j["filter_count"] = engine_.filter_count();
  // The first kMaxPage sessions (a reply of more could be too large for a frame), and how many there are.
  json sessions = json::array();
  size_t session_count = 0;
  for (auto& [id, s] : sessions_)
    if (s->hello && session_count++ < protocol::kMaxPage)
      sessions.push_back({{"key", s->key.str()}, {"name", s->name}, {"uid", s->cred.uid}, {"pid", s->cred.pid},
                          {"dynamic", s->dynamic}, {"role", role_name(s->role)}});
  j["sessions"] = std::move(sessions);
  j["session_count"] = session_count;
  j["enforcement"] = {{"degraded", degraded_}, {"unenforced_layers", unenforced_layers()}};
  return j;
}


}  // namespace lfp::daemon
