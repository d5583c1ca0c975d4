// SPDX-License-Identifier: MIT
#pragma once
// The filter engine: owns the objects and classifies requests with WFP's filter arbitration.
// Pure: no I/O, no kernel, no sockets. Not thread-safe; lfpd serializes access.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "lfp/engine/callout.hpp"
#include "lfp/engine/objects.hpp"

namespace lfp {

class LayerIndex;  // per-layer compiled classifier (engine/src/layer_index.hpp)

// What one filter did during a classification (explain mode).
struct FilterStep {
  const Filter* filter = nullptr;
  std::string outcome;  // "PERMIT", "BLOCK", "CONTINUE", "callout not registered: BLOCK", ...
};

// One sublayer's evaluation (explain mode). Sublayers with no matching filter are listed too.
struct SublayerTrace {
  const Sublayer* sublayer = nullptr;
  std::vector<FilterStep> steps;     // matching filters evaluated, in weight order
  std::optional<bool> permit;        // the sublayer's result, if a filter returned PERMIT or BLOCK
  bool hard = false;
  std::string effect;  // "no match", "no decision", "decides", "overrides a soft ...", "ignored: ...", "veto"
};

struct ClassifyResult {
  bool permit = true;    // no matching filter: permit
  bool hard = false;     // the action-write right was cleared
  bool veto = false;     // a callout BLOCK overrode a hard PERMIT
  bool callout_called = false;  // a registered callout was asked (else the answer depends on the values alone)
  const Filter* filter = nullptr;        // the filter that decided (null: no filter matched)
  const Sublayer* sublayer = nullptr;    // its sublayer
  const Filter* vetoed_filter = nullptr; // the hard permit that was vetoed
  std::vector<SublayerTrace> trace;      // explain mode only
};

// Enumeration template (FWPM_FILTER_ENUM_TEMPLATE0, in part): unset members match everything.
struct FilterTemplate {
  std::optional<LayerId> layer;
  std::optional<Guid> provider;
  std::optional<Guid> sublayer;
  std::optional<ActionType> action;
  uint32_t flags_all_set = 0;
  bool include_disabled = true;
};

// What a write transaction changed, for an enforcer that applies it in place rather than anew
// (the kernel's incremental update, docs/kernel-index.md): filters by run-time id, in the order
// they were added and deleted. `other`: something else changed too (a provider, sublayer, callout
// or context, a callout driver): the enforcer must take the whole policy.
struct FilterChanges {
  std::vector<uint64_t> added, deleted;
  bool other = false;
};
// Past this many changes a transaction is enforced whole (a bulk load): applying it in place would
// cost more than compiling it.
constexpr size_t kInPlaceChangesMax = 4096;

class FilterEngine {
 public:
  FilterEngine();
  ~FilterEngine();
  FilterEngine(const FilterEngine&) = delete;
  FilterEngine& operator=(const FilterEngine&) = delete;

  // --- Objects. A nil key is generated. Throw lfp::Error on bad input; change nothing then.
  Guid add_provider(Provider p);
  Guid add_sublayer(Sublayer s);
  Guid add_callout(Callout c);
  Guid add_provider_context(ProviderContext c);
  // Returns the run-time filter id: a fresh one, or f.id when it is set and free (used to restore a
  // deleted filter exactly, e.g. when a transaction is aborted).
  uint64_t add_filter(Filter f);

  void delete_provider(const Guid& key);
  void delete_sublayer(const Guid& key);
  void delete_callout(const Guid& key);
  void delete_provider_context(const Guid& key);
  void delete_filter(const Guid& key);
  void delete_filter_by_id(uint64_t id);

  const Provider* provider(const Guid& key) const;
  const Sublayer* sublayer(const Guid& key) const;
  const Callout* callout(const Guid& key) const;
  const ProviderContext* provider_context(const Guid& key) const;
  const Filter* filter(const Guid& key) const;
  const Filter* filter_by_id(uint64_t id) const;
  // Fetches ahead what adding a filter of this key reads first (its slot in the map by key, a cache
  // miss in a large engine): a bulk load calls it a few filters ahead of their adds.
  void prefetch_filter(const Guid& key) const { filters_by_key_.prefetch(key); }

  std::vector<const Provider*> providers() const;
  std::vector<const Sublayer*> sublayers() const;  // highest weight first
  std::vector<const Callout*> callouts() const;
  std::vector<const ProviderContext*> provider_contexts() const;
  // Matching filters, by layer, then evaluation order (sublayer weight, filter weight, id).
  std::vector<const Filter*> filters(const FilterTemplate& t = {}) const;
  size_t filter_count() const { return filters_by_key_.size(); }

  // --- Callout drivers (the run-time side of a callout, FwpsCalloutRegister). May be registered
  // before or after the callout object is added.
  void register_callout(const Guid& key, std::shared_ptr<CalloutDriver> driver);
  void unregister_callout(const Guid& key);
  bool callout_registered(const Guid& key) const { return drivers_.count(key) != 0; }
  // The data path's call when a flow with a context ends (the callout may be gone: then nothing).
  void flow_delete(const Guid& callout_key, uint64_t flow_handle, uint64_t context) const {
    if (auto d = drivers_.find(callout_key); d != drivers_.end()) d->second->flow_delete(flow_handle, context);
  }

  // --- Classification at one layer, under WFP arbitration.
  // `meta` (may be null) goes to every callout asked.
  ClassifyResult classify(LayerId layer, const FieldValues& values, bool explain = false,
                          ClassifyMeta* meta = nullptr) const;
  // The same arbitration fed by a linear scan of every filter instead of the compiled classifier:
  // the reference the compiled path is tested against.
  ClassifyResult classify_linear(LayerId layer, const FieldValues& values, bool explain = false,
                                 ClassifyMeta* meta = nullptr) const;

  // Bytes held by the compiled classifiers (all layers).
  size_t classifier_memory_bytes() const;

  // --- Interfaces by name. A condition that names an interface (ConditionValue::interface_name)
  // holds the index this table gives the name (kNoInterface when none); filters take it as they are
  // added and again on each change. The host side feeds it (lfpd: its network namespace's links),
  // so that the classifier and the kernel compile see indexes alone. Returns the ids of the filters
  // whose resolved indexes changed: what an enforcer must take again.
  using InterfaceTable = std::map<std::string, uint32_t, std::less<>>;  // name -> ifindex
  std::vector<uint64_t> set_interfaces(InterfaceTable table);
  const InterfaceTable& interfaces() const { return interfaces_; }

 private:
  struct FilterRecord;
  struct LayerState;
  template <class NextMatch>
  ClassifyResult arbitrate(LayerId layer, const FieldValues& values, bool explain, ClassifyMeta* meta,
                           NextMatch&& next) const;
  void check_provider(const std::optional<Guid>& p) const;
  bool is_persistent_ref(uint32_t flags) const;
  void check_lifetime(uint32_t flags, const std::optional<Guid>& provider, std::string_view what) const;
  void notify(const Filter& f, CalloutDriver::NotifyType t) const;
  // Each interface name in `f`'s conditions to its index in interfaces_; true if one changed.
  bool resolve_interfaces(Filter& f) const;

  std::unordered_map<Guid, Provider> providers_;
  std::unordered_map<Guid, Sublayer> sublayers_;
  std::unordered_map<Guid, Callout> callouts_;
  std::unordered_map<Guid, ProviderContext> contexts_;
  // (Open addressing: a million filters are a million inserts and lookups, one cache miss each
  // where a node map takes two or three; the records stay put behind their pointers.)
  absl::flat_hash_map<Guid, std::unique_ptr<FilterRecord>> filters_by_key_;
  // Filters by run-time id, in pages of consecutive ids found by their number: ids are handed out
  // in increasing order, so an add writes next to the previous one where a hash map by id took a
  // cache miss, and the page map stays small enough to stay in cache. A page goes with its last filter.
  struct IdPage;
  absl::flat_hash_map<uint64_t, std::unique_ptr<IdPage>> id_pages_;
  FilterRecord* record_by_id(uint64_t id) const;
  void index_id(FilterRecord* r);
  void unindex_id(uint64_t id);
  std::unordered_map<Guid, std::shared_ptr<CalloutDriver>> drivers_;
  InterfaceTable interfaces_;
  std::vector<FilterRecord*> named_interface_filters_;  // the filters whose conditions name an interface
  std::vector<std::unique_ptr<LayerState>> layers_;
  uint64_t next_filter_id_ = 1;
  uint32_t next_callout_id_ = 1;
  uint64_t next_context_id_ = 1;
};

}  // namespace lfp
