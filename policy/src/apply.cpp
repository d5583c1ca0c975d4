// SPDX-License-Identifier: MIT
// Adding a policy to an engine (all or nothing) and exporting an engine's objects as a policy.
#include "internal.hpp"

namespace lfp::policy {

using detail::at;

namespace {

bool is_builtin_sublayer(const Guid& k) { return k == builtin::SUBLAYER_UNIVERSAL || k == builtin::SUBLAYER_INSPECTION; }

// The member of an object that an engine error is about, where the code tells.
std::string member_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::PROVIDER_NOT_FOUND: return "provider";
    case ErrorCode::SUBLAYER_NOT_FOUND: return "sublayer";
    case ErrorCode::CALLOUT_NOT_FOUND:
    case ErrorCode::INCOMPATIBLE_LAYER: return "action/callout";
    case ErrorCode::PROVIDER_CONTEXT_NOT_FOUND: return "provider_context";
    case ErrorCode::ALREADY_EXISTS: return "key";
    case ErrorCode::NULL_DISPLAY_NAME: return "name";
    case ErrorCode::INVALID_FLAGS:
    case ErrorCode::LIFETIME_MISMATCH: return "flags";
    case ErrorCode::INVALID_WEIGHT: return "weight";
    case ErrorCode::LAYER_NOT_FOUND: return "layer";
    case ErrorCode::INVALID_ACTION_TYPE: return "action";
    default: return "";
  }
}

// The path of a filter's member an engine error is about.
std::string filter_member_path(const Filter& f, const std::string& path, const Error& e) {
  switch (e.code()) {
    case ErrorCode::CONDITION_NOT_FOUND:
    case ErrorCode::TYPE_MISMATCH:
    case ErrorCode::MATCH_TYPE_MISMATCH:
    case ErrorCode::INVALID_NET_MASK:
    case ErrorCode::INVALID_RANGE:
      // Find the condition (a policy built in code may hold one the parser never saw).
      if (static_cast<size_t>(f.layer) < kLayerCount) {
        for (size_t i = 0; i < f.conditions.size(); ++i) {
          try {
            validate_condition(f.conditions[i], layer_info(f.layer));
          } catch (const Error& c) {
            const char* m = c.code() == ErrorCode::CONDITION_NOT_FOUND   ? "field"
                            : c.code() == ErrorCode::MATCH_TYPE_MISMATCH ? "match"
                                                                         : "value";
            return at(at(at(path, "conditions"), i), m);
          }
        }
      }
      return at(path, "conditions");
    case ErrorCode::INVALID_PARAMETER:
      if (f.provider_context && !(f.flags & HAS_PROVIDER_CONTEXT)) return at(path, "provider_context");
      return path;
    case ErrorCode::LIFETIME_MISMATCH: {
      // The persistent filter references a non-persistent object: name the reference.
      const std::string& d = e.detail();
      if (d.find("sublayer") != std::string::npos) return at(path, "sublayer");
      if (d.find("callout") != std::string::npos) return at(path, "action") + "/callout";
      if (d.find("provider") != std::string::npos) return at(path, "provider");
      return at(path, "flags");
    }
    default: {
      std::string m = member_for(e.code());
      return m.empty() ? path : path + "/" + m;
    }
  }
}

std::string object_member_path(const std::string& path, const Error& e) {
  if (e.code() == ErrorCode::LIFETIME_MISMATCH) return at(path, "provider");
  std::string m = member_for(e.code());
  if (e.code() == ErrorCode::INCOMPATIBLE_LAYER || e.code() == ErrorCode::CALLOUT_NOT_FOUND) m.clear();
  return m.empty() ? path : path + "/" + m;
}

}  // namespace

std::vector<uint64_t> apply_policy(FilterEngine& engine, const Policy& p) {
  std::vector<Guid> providers, sublayers, callouts, contexts, filters;
  std::vector<uint64_t> ids;
  // Reserved up front so that recording an added object cannot fail after the engine took it.
  providers.reserve(p.providers.size());
  sublayers.reserve(p.sublayers.size());
  callouts.reserve(p.callouts.size());
  contexts.reserve(p.provider_contexts.size());
  filters.reserve(p.filters.size());
  ids.reserve(p.filters.size());
  auto rollback = [&] {
    // Reverse order: filters reference everything else. Deleting what we just added cannot fail
    // in a single-threaded engine; any error is ignored so the original one is reported.
    auto undo = [](auto& keys, auto del) {
      for (auto it = keys.rbegin(); it != keys.rend(); ++it) {
        try {
          del(*it);
        } catch (const Error&) {
        }
      }
    };
    undo(filters, [&](const Guid& k) { engine.delete_filter(k); });
    undo(contexts, [&](const Guid& k) { engine.delete_provider_context(k); });
    undo(callouts, [&](const Guid& k) { engine.delete_callout(k); });
    undo(sublayers, [&](const Guid& k) { engine.delete_sublayer(k); });
    undo(providers, [&](const Guid& k) { engine.delete_provider(k); });
  };
  std::string path;
  const Filter* current = nullptr;  // the filter being added, if any
  try {
    for (size_t i = 0; i < p.providers.size(); ++i) {
      path = at("/providers", i);
      providers.push_back(engine.add_provider(p.providers[i]));
    }
    for (size_t i = 0; i < p.sublayers.size(); ++i) {
      path = at("/sublayers", i);
      sublayers.push_back(engine.add_sublayer(p.sublayers[i]));
    }
    for (size_t i = 0; i < p.callouts.size(); ++i) {
      path = at("/callouts", i);
      callouts.push_back(engine.add_callout(p.callouts[i]));
    }
    for (size_t i = 0; i < p.provider_contexts.size(); ++i) {
      path = at("/provider_contexts", i);
      contexts.push_back(engine.add_provider_context(p.provider_contexts[i]));
    }
    for (size_t i = 0; i < p.filters.size(); ++i) {
      path = at("/filters", i);
      current = &p.filters[i];
      uint64_t id = engine.add_filter(p.filters[i]);
      ids.push_back(id);
      filters.push_back(engine.filter_by_id(id)->key);
    }
  } catch (const Error& e) {
    rollback();
    throw PolicyError(current ? filter_member_path(*current, path, e) : object_member_path(path, e), e.what());
  } catch (...) {
    rollback();
    throw;
  }
  return ids;
}

Policy export_policy(const FilterEngine& engine) {
  Policy p;
  for (const Provider* x : engine.providers()) p.providers.push_back(*x);
  for (const Sublayer* x : engine.sublayers())
    if (!is_builtin_sublayer(x->key)) p.sublayers.push_back(*x);
  for (const Callout* x : engine.callouts()) p.callouts.push_back(*x);
  for (const ProviderContext* x : engine.provider_contexts()) p.provider_contexts.push_back(*x);
  for (const Filter* x : engine.filters()) p.filters.push_back(*x);  // by layer, then evaluation order
  return p;
}

}  // namespace lfp::policy
