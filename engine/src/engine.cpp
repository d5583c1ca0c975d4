// SPDX-License-Identifier: MIT
#include "lfp/engine/engine.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>

#include <absl/container/btree_map.h>

#include "layer_index.hpp"
#include "lfp/engine/error.hpp"
#include "lfp/engine/tuple_classifier.hpp"

namespace lfp {

// A filter as the engine keeps it: the object plus its place in its layer's evaluation order.
struct FilterEngine::FilterRecord {
  Filter filter;
  const Sublayer* sublayer = nullptr;
  bool enforced = false;  // in the classifier (not DISABLED)
  bool names_interface = false;  // in named_interface_filters_
  uint32_t slot = 0;      // its place in the layer: index of its label, rule id in the classifier
};

struct FilterEngine::IdPage {
  static constexpr unsigned kBits = 10;
  std::array<FilterRecord*, size_t{1} << kBits> records{};
  uint32_t used = 0;
};

FilterEngine::FilterRecord* FilterEngine::record_by_id(uint64_t id) const {
  const auto page = id_pages_.find(id >> IdPage::kBits);
  return page == id_pages_.end() ? nullptr : page->second->records[id & ((1u << IdPage::kBits) - 1)];
}

void FilterEngine::index_id(FilterRecord* r) {
  auto& page = id_pages_[r->filter.id >> IdPage::kBits];
  if (!page) page = std::make_unique<IdPage>();
  page->records[r->filter.id & ((1u << IdPage::kBits) - 1)] = r;
  ++page->used;
}

void FilterEngine::unindex_id(uint64_t id) {
  const auto page = id_pages_.find(id >> IdPage::kBits);
  page->second->records[id & ((1u << IdPage::kBits) - 1)] = nullptr;
  if (--page->second->used == 0) id_pages_.erase(page);
}

namespace {

// Evaluation order inside a layer: sublayer weight (high first, ties by key), then filter weight
// (high first), then filter id (older first). The sublayer by address (objects in an
// unordered_map do not move): a small key keeps the order map's nodes small.
struct OrderKey {
  const Sublayer* sublayer;
  uint64_t weight;
  uint64_t id;
};
struct EvaluatedBefore {
  bool operator()(const OrderKey& a, const OrderKey& b) const {
    if (a.sublayer != b.sublayer) {
      if (a.sublayer->weight != b.sublayer->weight) return a.sublayer->weight > b.sublayer->weight;
      return a.sublayer->key < b.sublayer->key;
    }
    if (a.weight != b.weight) return a.weight > b.weight;
    return a.id < b.id;
  }
};

// Labels are 32-bit (the classifier's priorities), in [1, kLabelMax]: 0 and UINT32_MAX stay free
// as "below everything" and "no bound".
constexpr uint32_t kLabelMax = UINT32_MAX - 1;
constexpr uint32_t kLabelStep = 1u << 10;  // the most a run of inserts takes from a gap per filter
constexpr uint64_t kRunShare = 16;          // a run's filter takes 1/kRunShare of the gap (at least 1)
constexpr unsigned kLabelBits = 32;

}  // namespace

struct FilterEngine::LayerState {
  // A B-tree: a search in a million filters (a load in random order) takes a cache miss at each of
  // a few levels, where a red-black tree took one at most of its 20.
  using OrderMap = absl::btree_map<OrderKey, uint32_t, EvaluatedBefore>;  // -> slot
  explicit LayerState(const LayerInfo& l) : info(l), index(make_layer_index(l)) {}
  const LayerInfo& info;
  std::unique_ptr<LayerIndex> index;
  // Every filter of the layer, disabled ones too (they take a label but no classifier rule), in
  // evaluation order: enumeration walks it.
  OrderMap order;
  std::vector<FilterRecord*> slots;  // slot -> filter
  // slot -> order-preserving label, higher first: an enforced filter's priority in the classifier.
  // Kept here, not in the filter's record, so that relabelling reads only the map and this.
  std::vector<uint32_t> labels;
  std::vector<uint32_t> free_slots;
  // Per sublayer with filters here, the lowest label among them (a bound that skips the sublayer),
  // kept current on every change so classification never searches the order map.
  std::vector<std::pair<const Sublayer*, uint32_t>> floors;
  uint32_t min_label = 0;  // lowest label in the layer: a bound at or below it matches nothing
  std::vector<std::pair<uint32_t, uint32_t>> moves;  // relabel_around's (slot, new label), reused
  uint32_t last_added = UINT32_MAX;  // slot of the filter added last (runs of inserts follow it)

  static OrderKey key_of(const FilterRecord& r) {
    return {r.sublayer, r.filter.effective_weight, r.filter.id};
  }
  uint32_t label(OrderMap::const_iterator i) const { return labels[i->second]; }

  // Whether the new filter continues a run of inserts at one place (the usual load: each filter
  // just after the previous one, in front of a default permit or at the end; or just before it).
  enum class Run { NONE, DOWN, UP };  // DOWN: after the filter added last; UP: before it

  void add(FilterRecord* r) {
    if (free_slots.empty()) {
      r->slot = static_cast<uint32_t>(slots.size());
      slots.push_back(r);
      labels.push_back(0);
    } else {
      r->slot = free_slots.back();
      free_slots.pop_back();
      slots[r->slot] = r;
      labels[r->slot] = 0;
    }
    r->enforced = false;
    // Its neighbours, next to it in the B-tree's leaf (iterators last until the next change).
    const auto it = order.emplace(key_of(*r), r->slot).first;
    const auto prev = it == order.begin() ? order.end() : std::prev(it);
    const auto next = std::next(it);
    const Run run = prev != order.end() && prev->second == last_added   ? Run::DOWN
                    : next != order.end() && next->second == last_added ? Run::UP
                                                                        : Run::NONE;
    if (!take_gap(it, prev, next, run)) relabel_around(it, run);
    if (!(r->filter.flags & DISABLED)) {
      index->insert(r->slot, labels[r->slot], r->filter);
      r->enforced = true;
    }
    if (next == order.end() || next->first.sublayer != it->first.sublayer) set_floor(it);
    min_label = label(std::prev(order.end()));
    last_added = r->slot;
  }

  // A label between the new filter's neighbours (higher = earlier), if they leave a gap. In a
  // run, the new filter takes a small share of the gap next to the previous one and leaves the
  // rest to the run; anything else takes the midpoint.
  bool take_gap(OrderMap::iterator it, OrderMap::iterator prev, OrderMap::iterator next, Run run) {
    const uint64_t upper = prev != order.end() ? label(prev) : uint64_t{kLabelMax} + 1;
    const uint64_t lower = next != order.end() ? label(next) : 0;
    const uint64_t gap = upper - lower;
    if (gap < 2) return false;
    const uint64_t step = std::clamp<uint64_t>(gap / kRunShare, 1, kLabelStep);
    const uint64_t l = run == Run::DOWN ? upper - step : run == Run::UP ? lower + step : lower + gap / 2;
    labels[it->second] = static_cast<uint32_t>(l);
    return true;
  }

  // No gap at the new filter: relabel the smallest aligned label block around it whose filters are
  // sparse enough, spreading them evenly (order maintenance, Bender et al. 2002). A block of 2^b
  // labels may hold 2^b / T^b filters, T chosen so that the whole range holds twice the layer: an
  // insert relabels O(log n) filters amortized, whatever the order of inserts. In a run, the
  // block's free labels are not spread but left at the run's side of the new filter, up to half
  // the block (as an adaptive packed-memory array does for a hammered point, Bender and Hu 2006):
  // the run then relabels every few hundred inserts instead of every few.
  void relabel_around(OrderMap::iterator it, Run run) {
    const double t =
        std::clamp(std::pow(double(kLabelMax) / (2.0 * double(order.size())), 1.0 / kLabelBits), 1.1, 1.5);
    const uint64_t anchor = label(it != order.begin() ? std::prev(it) : std::next(it));
    auto first = it, last = it;  // the block's filters, in evaluation order (labels descending)
    uint64_t count = 1, lo = 0, hi = 0;
    double capacity = 1;
    for (unsigned bits = 1; bits <= kLabelBits; ++bits) {
      const uint64_t size = uint64_t{1} << bits;
      lo = std::max<uint64_t>(anchor & ~(size - 1), 1);
      hi = std::min<uint64_t>((anchor & ~(size - 1)) + size - 1, kLabelMax);
      auto inside = [&](OrderMap::iterator i) { return label(i) >= lo && label(i) <= hi; };
      while (first != order.begin() && inside(std::prev(first))) --first, ++count;
      while (std::next(last) != order.end() && inside(std::next(last))) ++last, ++count;
      capacity *= 2 / t;
      if (double(count) <= capacity) break;
    }
    // The last block is the whole range: it always fits (a layer holds far fewer than 2^32 filters).
    // Filters whose label goes up are relabelled first to last, then those going down last to
    // first: so no label ever passes another, and the classifier's rank of each rule holds at
    // every step (set_priority stays O(1)).
    const unsigned __int128 span = hi - lo + 1;
    // `room` empty slices go after (DOWN) or before (UP) the new filter's; slices are at least 1 label.
    const uint64_t free_labels = span > count ? static_cast<uint64_t>(span) - count : 0;
    const uint64_t room = run == Run::NONE ? 0 : std::min(count, free_labels);
    const uint64_t slices = count + room;
    moves.clear();
    uint64_t k = 0;  // slice
    for (auto i = first;; ++i) {
      if (run == Run::UP && i == it) k += room;
      const auto offset = static_cast<uint64_t>((2 * k + 1) * span / (2 * slices));  // the middle of slice k
      moves.emplace_back(i->second, static_cast<uint32_t>(hi - offset));
      k += run == Run::DOWN && i == it ? 1 + room : 1;
      if (i == last) break;
    }
    auto move = [&](const std::pair<uint32_t, uint32_t>& m) {
      labels[m.first] = m.second;
      if (slots[m.first]->enforced) index->set_priority(m.first, m.second);
    };
    for (auto& m : moves)
      if (m.second > labels[m.first] || !slots[m.first]->enforced) move(m);
    for (auto m = moves.rbegin(); m != moves.rend(); ++m)
      if (m->second < labels[m->first]) move(*m);
    for (auto i = first;; ++i) {
      note_floor(i);
      if (i == last) break;
    }
  }

  void remove(FilterRecord* r) {
    auto it = order.find(key_of(*r));
    if (r->enforced) index->erase(r->slot);
    r->enforced = false;
    if (last_of_sublayer(it)) {
      // Its sublayer's floor passes to the filter before it, or the sublayer leaves the layer.
      auto f = std::find_if(floors.begin(), floors.end(), [&](auto& p) { return p.first == it->first.sublayer; });
      if (it != order.begin() && std::prev(it)->first.sublayer == it->first.sublayer)
        f->second = label(std::prev(it));
      else
        floors.erase(f);
    }
    if (last_added == r->slot) last_added = UINT32_MAX;  // (the run goes with it: its slot may be reused)
    order.erase(it);
    min_label = order.empty() ? 0 : label(std::prev(order.end()));
    slots[r->slot] = nullptr;
    free_slots.push_back(r->slot);
  }

  bool last_of_sublayer(OrderMap::iterator i) const {
    auto n = std::next(i);
    return n == order.end() || n->first.sublayer != i->first.sublayer;
  }

  // If i is the last filter of its sublayer, its label is the sublayer's floor.
  void note_floor(OrderMap::iterator i) {
    if (last_of_sublayer(i)) set_floor(i);
  }
  void set_floor(OrderMap::iterator i) {
    const Sublayer* sub = i->first.sublayer;
    auto f = std::find_if(floors.begin(), floors.end(), [&](auto& p) { return p.first == sub; });
    if (f != floors.end()) f->second = label(i);
    else floors.emplace_back(sub, label(i));
  }

  // The lowest label used by a sublayer's filters (a bound that skips the whole sublayer).
  uint32_t sublayer_floor(const Sublayer* s) const {
    for (auto& [sub, floor] : floors)
      if (sub == s) return floor;
    assert(false);
    return 0;
  }
};

FilterEngine::FilterEngine() {
  for (const auto& l : all_layers()) layers_.push_back(std::make_unique<LayerState>(l));
  Sublayer universal{builtin::SUBLAYER_UNIVERSAL, {"Universal", "Filters not assigned to another sublayer"},
                     PERSISTENT, std::nullopt, 0x8000};
  Sublayer inspection{builtin::SUBLAYER_INSPECTION, {"Inspection", "Lowest weight, for inspection"},
                      PERSISTENT, std::nullopt, 0};
  sublayers_.emplace(universal.key, universal);
  sublayers_.emplace(inspection.key, inspection);
}

FilterEngine::~FilterEngine() = default;

namespace {
bool is_builtin_sublayer(const Guid& k) {
  return k == builtin::SUBLAYER_UNIVERSAL || k == builtin::SUBLAYER_INSPECTION;
}
void need_name(const DisplayData& d, std::string_view what) {
  if (d.name.empty()) throw Error(ErrorCode::NULL_DISPLAY_NAME, std::string(what) + " needs a name");
}
void check_flags(uint32_t flags, uint32_t allowed, std::string_view what) {
  if (flags & ~allowed) {
    std::string bad;
    for (auto n : flag_names(flags & ~allowed)) bad += (bad.empty() ? "" : ", ") + std::string(n);
    throw Error(ErrorCode::INVALID_FLAGS, std::string(what) + " does not take flag(s) " + bad);
  }
}
template <class Map>
Guid take_key(Map& m, Guid key, std::string_view what) {
  if (key.is_nil()) key = Guid::generate();
  if (m.count(key)) throw Error(ErrorCode::ALREADY_EXISTS, std::string(what) + " " + key.str() + " already exists");
  return key;
}
}  // namespace

void FilterEngine::check_provider(const std::optional<Guid>& p) const {
  if (p && !providers_.count(*p)) throw Error(ErrorCode::PROVIDER_NOT_FOUND, "provider " + p->str() + " not found");
}

// A persistent object may reference only persistent (or built-in) ones.
void FilterEngine::check_lifetime(uint32_t flags, const std::optional<Guid>& provider, std::string_view what) const {
  if (!(flags & PERSISTENT) || !provider) return;
  if (!(providers_.at(*provider).flags & PERSISTENT))
    throw Error(ErrorCode::LIFETIME_MISMATCH,
                "persistent " + std::string(what) + " references non-persistent provider " + provider->str());
}

Guid FilterEngine::add_provider(Provider p) {
  need_name(p.display, "a provider");
  check_flags(p.flags, PERSISTENT, "a provider");
  p.key = take_key(providers_, p.key, "provider");
  Guid k = p.key;
  providers_.emplace(k, std::move(p));
  return k;
}

Guid FilterEngine::add_sublayer(Sublayer s) {
  need_name(s.display, "a sublayer");
  check_flags(s.flags, PERSISTENT, "a sublayer");
  check_provider(s.provider);
  check_lifetime(s.flags, s.provider, "sublayer");
  s.key = take_key(sublayers_, s.key, "sublayer");
  Guid k = s.key;
  sublayers_.emplace(k, std::move(s));
  return k;
}

Guid FilterEngine::add_callout(Callout c) {
  need_name(c.display, "a callout");
  check_flags(c.flags, PERSISTENT | USES_PROVIDER_CONTEXT, "a callout");
  check_provider(c.provider);
  check_lifetime(c.flags, c.provider, "callout");
  if (static_cast<size_t>(c.applicable_layer) >= kLayerCount)
    throw Error(ErrorCode::LAYER_NOT_FOUND, "unknown applicable layer");
  c.key = take_key(callouts_, c.key, "callout");
  c.callout_id = next_callout_id_++;
  Guid k = c.key;
  callouts_.emplace(k, std::move(c));
  return k;
}

Guid FilterEngine::add_provider_context(ProviderContext c) {
  need_name(c.display, "a provider context");
  check_flags(c.flags, PERSISTENT, "a provider context");
  check_provider(c.provider);
  check_lifetime(c.flags, c.provider, "provider context");
  c.key = take_key(contexts_, c.key, "provider context");
  c.id = next_context_id_++;
  Guid k = c.key;
  contexts_.emplace(k, std::move(c));
  return k;
}

uint64_t FilterEngine::add_filter(Filter f) {
  need_name(f.display, "a filter");
  if (static_cast<size_t>(f.layer) >= kLayerCount) throw Error(ErrorCode::LAYER_NOT_FOUND, "unknown layer");
  const LayerInfo& layer = layer_info(f.layer);
  check_flags(f.flags,
              PERSISTENT | BOOTTIME | HAS_PROVIDER_CONTEXT | CLEAR_ACTION_RIGHT | PERMIT_IF_CALLOUT_UNREGISTERED |
                  DISABLED | INDEXED,
              "a filter");
  if ((f.flags & PERSISTENT) && (f.flags & BOOTTIME))
    throw Error(ErrorCode::INVALID_FLAGS, "a filter cannot be both PERSISTENT and BOOTTIME");
  check_provider(f.provider);
  check_lifetime(f.flags, f.provider, "filter");
  const Guid sub_key = f.sublayer.value_or(builtin::SUBLAYER_UNIVERSAL);
  auto sit = sublayers_.find(sub_key);
  if (sit == sublayers_.end()) throw Error(ErrorCode::SUBLAYER_NOT_FOUND, "sublayer " + sub_key.str() + " not found");
  if ((f.flags & PERSISTENT) && !(sit->second.flags & PERSISTENT))
    throw Error(ErrorCode::LIFETIME_MISMATCH, "persistent filter in non-persistent sublayer " + sub_key.str());
  if (is_callout(f.action.type)) {
    auto cit = callouts_.find(f.action.callout_key);
    if (cit == callouts_.end())
      throw Error(ErrorCode::CALLOUT_NOT_FOUND, "callout " + f.action.callout_key.str() + " not found");
    if (cit->second.applicable_layer != f.layer)
      throw Error(ErrorCode::INCOMPATIBLE_LAYER, "callout " + f.action.callout_key.str() + " applies to layer " +
                                                     std::string(layer_info(cit->second.applicable_layer).name));
    if ((f.flags & PERSISTENT) && !(cit->second.flags & PERSISTENT))
      throw Error(ErrorCode::LIFETIME_MISMATCH, "persistent filter uses non-persistent callout");
    if ((f.flags & PERMIT_IF_CALLOUT_UNREGISTERED) && f.action.type == ActionType::CALLOUT_INSPECTION)
      throw Error(ErrorCode::INVALID_FLAGS,
                  "PERMIT_IF_CALLOUT_UNREGISTERED needs CALLOUT_TERMINATING or CALLOUT_UNKNOWN");
  } else if (f.flags & PERMIT_IF_CALLOUT_UNREGISTERED) {
    throw Error(ErrorCode::INVALID_FLAGS, "PERMIT_IF_CALLOUT_UNREGISTERED applies to callout actions only");
  }
  if (f.flags & HAS_PROVIDER_CONTEXT) {
    if (!f.provider_context || !contexts_.count(*f.provider_context))
      throw Error(ErrorCode::PROVIDER_CONTEXT_NOT_FOUND, "HAS_PROVIDER_CONTEXT needs an existing provider context");
    if ((f.flags & PERSISTENT) && !(contexts_.at(*f.provider_context).flags & PERSISTENT))
      throw Error(ErrorCode::LIFETIME_MISMATCH, "persistent filter uses a non-persistent provider context");
  } else if (f.provider_context) {
    throw Error(ErrorCode::INVALID_PARAMETER, "a provider context needs the HAS_PROVIDER_CONTEXT flag");
  }
  for (const auto& c : f.conditions) validate_condition(c, layer);
  resolve_interfaces(f);
  // Group conditions by field (stable): a field's conditions are OR'ed wherever they stand.
  auto by_field = [](const Condition& a, const Condition& b) { return a.field < b.field; };
  if (!std::is_sorted(f.conditions.begin(), f.conditions.end(), by_field))
    std::stable_sort(f.conditions.begin(), f.conditions.end(), by_field);
  f.effective_weight = effective_weight(f.weight, f.conditions, layer.family);
  f.sublayer = sub_key;
  if (f.id != 0 && record_by_id(f.id))
    throw Error(ErrorCode::ALREADY_EXISTS, "filter id " + std::to_string(f.id) + " is in use");
  if (f.id == 0) f.id = next_filter_id_;
  if (f.key.is_nil()) f.key = Guid::generate();

  auto rec = std::make_unique<FilterRecord>();
  rec->filter = std::move(f);
  rec->sublayer = &sit->second;
  // The key's entry is taken now (one lookup for the check and the insert) and given back if the
  // callout refuses the filter.
  auto [entry, fresh] = filters_by_key_.try_emplace(rec->filter.key);
  if (!fresh) throw Error(ErrorCode::ALREADY_EXISTS, "filter " + rec->filter.key.str() + " already exists");
  if (is_callout(rec->filter.action.type)) {
    auto d = drivers_.find(rec->filter.action.callout_key);
    if (d != drivers_.end() && !d->second->notify(CalloutDriver::NotifyType::ADD_FILTER, rec->filter)) {
      filters_by_key_.erase(entry);
      throw Error(ErrorCode::INVALID_PARAMETER, "the callout refused the filter (CALLOUT_NOTIFICATION_FAILED)");
    }
  }
  next_filter_id_ = std::max(next_filter_id_, rec->filter.id + 1);
  FilterRecord* r = rec.get();
  entry->second = std::move(rec);
  layers_[static_cast<size_t>(r->filter.layer)]->add(r);
  index_id(r);
  r->names_interface = std::any_of(r->filter.conditions.begin(), r->filter.conditions.end(),
                                   [](const Condition& c) { return !c.value.interface_name.empty(); });
  if (r->names_interface) named_interface_filters_.push_back(r);
  return r->filter.id;
}

bool FilterEngine::resolve_interfaces(Filter& f) const {
  bool changed = false;
  for (Condition& c : f.conditions) {
    if (c.value.interface_name.empty()) continue;
    const auto it = interfaces_.find(c.value.interface_name);
    const uint64_t index = it == interfaces_.end() ? ConditionValue::kNoInterface : it->second;
    changed = changed || c.value.value.u != index;
    c.value.value.u = index;
  }
  return changed;
}

std::vector<uint64_t> FilterEngine::set_interfaces(InterfaceTable table) {
  interfaces_ = std::move(table);
  std::vector<uint64_t> changed;
  for (FilterRecord* r : named_interface_filters_) {
    LayerState& ls = *layers_[static_cast<size_t>(r->filter.layer)];
    if (r->enforced) ls.index->erase(r->slot);  // (the index may have taken the old value in)
    if (resolve_interfaces(r->filter)) changed.push_back(r->filter.id);
    if (r->enforced) ls.index->insert(r->slot, ls.labels[r->slot], r->filter);
  }
  return changed;
}

void FilterEngine::notify(const Filter& f, CalloutDriver::NotifyType t) const {
  if (!is_callout(f.action.type)) return;
  auto d = drivers_.find(f.action.callout_key);
  if (d != drivers_.end()) d->second->notify(t, f);
}

void FilterEngine::delete_filter(const Guid& key) {
  auto it = filters_by_key_.find(key);
  if (it == filters_by_key_.end()) throw Error(ErrorCode::FILTER_NOT_FOUND, "filter " + key.str() + " not found");
  FilterRecord* r = it->second.get();
  layers_[static_cast<size_t>(r->filter.layer)]->remove(r);
  notify(r->filter, CalloutDriver::NotifyType::DELETE_FILTER);
  if (r->names_interface) std::erase(named_interface_filters_, r);
  unindex_id(r->filter.id);
  filters_by_key_.erase(it);
}

void FilterEngine::delete_filter_by_id(uint64_t id) {
  const FilterRecord* r = record_by_id(id);
  if (!r) throw Error(ErrorCode::FILTER_NOT_FOUND, "filter id " + std::to_string(id) + " not found");
  delete_filter(r->filter.key);
}

void FilterEngine::delete_provider(const Guid& key) {
  if (!providers_.count(key)) throw Error(ErrorCode::PROVIDER_NOT_FOUND, "provider " + key.str() + " not found");
  auto uses = [&](const std::optional<Guid>& p) { return p && *p == key; };
  bool used = std::any_of(sublayers_.begin(), sublayers_.end(), [&](auto& kv) { return uses(kv.second.provider); }) ||
              std::any_of(callouts_.begin(), callouts_.end(), [&](auto& kv) { return uses(kv.second.provider); }) ||
              std::any_of(contexts_.begin(), contexts_.end(), [&](auto& kv) { return uses(kv.second.provider); }) ||
              std::any_of(filters_by_key_.begin(), filters_by_key_.end(),
                          [&](auto& kv) { return uses(kv.second->filter.provider); });
  if (used) throw Error(ErrorCode::IN_USE, "provider " + key.str() + " is referenced by other objects");
  providers_.erase(key);
}

void FilterEngine::delete_sublayer(const Guid& key) {
  if (is_builtin_sublayer(key)) throw Error(ErrorCode::BUILTIN_OBJECT, "built-in sublayer " + key.str());
  if (!sublayers_.count(key)) throw Error(ErrorCode::SUBLAYER_NOT_FOUND, "sublayer " + key.str() + " not found");
  for (auto& [k, r] : filters_by_key_)
    if (r->sublayer->key == key) throw Error(ErrorCode::IN_USE, "sublayer " + key.str() + " holds filters");
  sublayers_.erase(key);
}

void FilterEngine::delete_callout(const Guid& key) {
  if (!callouts_.count(key)) throw Error(ErrorCode::CALLOUT_NOT_FOUND, "callout " + key.str() + " not found");
  for (auto& [k, r] : filters_by_key_)
    if (is_callout(r->filter.action.type) && r->filter.action.callout_key == key)
      throw Error(ErrorCode::IN_USE, "callout " + key.str() + " is used by filter " + k.str());
  callouts_.erase(key);
}

void FilterEngine::delete_provider_context(const Guid& key) {
  if (!contexts_.count(key))
    throw Error(ErrorCode::PROVIDER_CONTEXT_NOT_FOUND, "provider context " + key.str() + " not found");
  for (auto& [k, r] : filters_by_key_)
    if (r->filter.provider_context && *r->filter.provider_context == key)
      throw Error(ErrorCode::IN_USE, "provider context " + key.str() + " is used by filter " + k.str());
  contexts_.erase(key);
}

namespace {
template <class Map>
auto find_ptr(const Map& m, const Guid& k) -> decltype(&m.begin()->second) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : &it->second;
}
template <class Map, class T = typename Map::mapped_type>
std::vector<const T*> all_of(const Map& m) {
  std::vector<const T*> v;
  for (auto& [k, x] : m) v.push_back(&x);
  std::sort(v.begin(), v.end(), [](const T* a, const T* b) { return a->key < b->key; });
  return v;
}
}  // namespace

const Provider* FilterEngine::provider(const Guid& k) const { return find_ptr(providers_, k); }
const Sublayer* FilterEngine::sublayer(const Guid& k) const { return find_ptr(sublayers_, k); }
const Callout* FilterEngine::callout(const Guid& k) const { return find_ptr(callouts_, k); }
const ProviderContext* FilterEngine::provider_context(const Guid& k) const { return find_ptr(contexts_, k); }
const Filter* FilterEngine::filter(const Guid& k) const {
  auto it = filters_by_key_.find(k);
  return it == filters_by_key_.end() ? nullptr : &it->second->filter;
}
const Filter* FilterEngine::filter_by_id(uint64_t id) const {
  const FilterRecord* r = record_by_id(id);
  return r ? &r->filter : nullptr;
}

std::vector<const Provider*> FilterEngine::providers() const { return all_of(providers_); }
std::vector<const Callout*> FilterEngine::callouts() const { return all_of(callouts_); }
std::vector<const ProviderContext*> FilterEngine::provider_contexts() const { return all_of(contexts_); }
std::vector<const Sublayer*> FilterEngine::sublayers() const {
  auto v = all_of(sublayers_);
  std::stable_sort(v.begin(), v.end(), [](const Sublayer* a, const Sublayer* b) { return a->weight > b->weight; });
  return v;
}

std::vector<const Filter*> FilterEngine::filters(const FilterTemplate& t) const {
  // Each layer's order map holds its filters in evaluation order, and layers_ is in LayerId order.
  std::vector<const Filter*> out;
  for (const auto& ls : layers_) {
    if (t.layer && ls->info.id != *t.layer) continue;
    for (const auto& [k, slot] : ls->order) {
      if (t.sublayer && k.sublayer->key != *t.sublayer) continue;
      const Filter& f = ls->slots[slot]->filter;
      if (t.provider && f.provider != t.provider) continue;
      if (t.action && f.action.type != *t.action) continue;
      if ((f.flags & t.flags_all_set) != t.flags_all_set) continue;
      if (!t.include_disabled && (f.flags & DISABLED)) continue;
      out.push_back(&f);
    }
  }
  return out;
}

void FilterEngine::register_callout(const Guid& key, std::shared_ptr<CalloutDriver> driver) {
  if (!driver) throw Error(ErrorCode::INVALID_PARAMETER, "null callout driver");
  if (drivers_.count(key)) throw Error(ErrorCode::ALREADY_EXISTS, "callout " + key.str() + " is already registered");
  drivers_.emplace(key, std::move(driver));
}

void FilterEngine::unregister_callout(const Guid& key) {
  if (!drivers_.erase(key)) throw Error(ErrorCode::CALLOUT_NOT_FOUND, "callout " + key.str() + " is not registered");
}

size_t FilterEngine::classifier_memory_bytes() const {
  size_t n = 0;
  for (auto& l : layers_) n += l->index->memory_bytes();
  return n;
}

// ---------------------------------------------------------------------------------------------
// Arbitration (WFP "Filter Arbitration"). `next(bound)` yields the highest-priority matching
// filter whose priority is below bound, or null: either the compiled classifier or a linear scan.
template <class NextMatch>
ClassifyResult FilterEngine::arbitrate(LayerId layer, const FieldValues& values, bool explain, ClassifyMeta* meta,
                                       NextMatch&& next) const {
  const LayerState& ls = *layers_[static_cast<size_t>(layer)];
  ClassifyResult res;
  bool decided = false;
  std::vector<SublayerTrace> traces;

  const FilterRecord* r = next(UINT32_MAX);
  while (r) {
    const Sublayer* sub = r->sublayer;
    SublayerTrace st;
    st.sublayer = sub;
    // Within the sublayer: matching filters in weight order until one returns PERMIT or BLOCK.
    std::optional<bool> sub_permit;
    bool sub_hard = false, from_callout = false;
    const FilterRecord* decider = nullptr;
    for (; r && r->sublayer == sub; r = next(ls.labels[r->slot])) {
      const Filter& f = r->filter;
      std::string_view outcome;
      if (!is_callout(f.action.type)) {
        sub_permit = f.action.type == ActionType::PERMIT;
        sub_hard = !*sub_permit || (f.flags & CLEAR_ACTION_RIGHT);  // filter block: hard; permit: soft
        outcome = *sub_permit ? "PERMIT" : "BLOCK";
      } else if (auto d = drivers_.find(f.action.callout_key); d == drivers_.end()) {
        // An unregistered callout acts as a filter BLOCK, or PERMIT with PERMIT_IF_CALLOUT_UNREGISTERED.
        sub_permit = (f.flags & PERMIT_IF_CALLOUT_UNREGISTERED) != 0;
        sub_hard = !*sub_permit || (f.flags & CLEAR_ACTION_RIGHT);
        outcome = *sub_permit ? "callout not registered: PERMIT" : "callout not registered: BLOCK";
      } else {
        CalloutClassifyIn in{layer, values, f, !(decided && res.hard), meta};
        CalloutClassifyOut out;
        d->second->classify(in, out);
        res.callout_called = true;
        const bool terminal = (out.verdict == CalloutVerdict::PERMIT || out.verdict == CalloutVerdict::BLOCK) &&
                              f.action.type != ActionType::CALLOUT_INSPECTION;
        if (terminal) {
          sub_permit = out.verdict == CalloutVerdict::PERMIT;
          sub_hard = out.clear_action_write || (f.flags & CLEAR_ACTION_RIGHT);  // callout decisions: soft
          from_callout = true;
        }
        const bool ignored = !terminal && out.verdict != CalloutVerdict::CONTINUE && out.verdict != CalloutVerdict::NONE;
        outcome = out.verdict == CalloutVerdict::PERMIT ? (ignored ? "callout: PERMIT (ignored: inspection)" : "callout: PERMIT")
                  : out.verdict == CalloutVerdict::BLOCK ? (ignored ? "callout: BLOCK (ignored: inspection)" : "callout: BLOCK")
                  : out.verdict == CalloutVerdict::NONE  ? "callout: NONE"
                                                         : "callout: CONTINUE";
      }
      if (explain) st.steps.push_back({&f, std::string(outcome)});
      if (sub_permit) {
        decider = r;
        break;
      }
    }
    // Combine with the layer's running decision.
    if (sub_permit) {
      st.permit = sub_permit;
      st.hard = sub_hard;
      const char* what = *sub_permit ? "PERMIT" : "BLOCK";
      if (!decided || !res.hard) {
        if (explain)
          st.effect = !decided ? std::string("decides: ") + what
                               : std::string("overrides the soft ") + (res.permit ? "PERMIT" : "BLOCK");
        decided = true;
        res.permit = *sub_permit;
        res.hard = sub_hard;
        res.filter = &decider->filter;
        res.sublayer = sub;
      } else if (res.permit && !*sub_permit && from_callout) {
        // A callout BLOCK against a hard PERMIT: a veto. Traffic is blocked and the veto reported.
        if (explain) st.effect = "veto: a callout BLOCK overrides the hard PERMIT";
        res.veto = true;
        res.vetoed_filter = res.filter;
        res.permit = false;
        res.filter = &decider->filter;
        res.sublayer = sub;
      } else if (explain) {
        st.effect = std::string("ignored: the ") + (res.permit ? "PERMIT" : "BLOCK") + " above is hard";
      }
      r = next(ls.sublayer_floor(sub));  // the rest of this sublayer is skipped
    } else if (explain) {
      st.effect = "no decision";
    }
    if (explain) traces.push_back(std::move(st));
  }

  if (explain) {
    // Every sublayer, highest weight first; those without a matching filter say so.
    for (const Sublayer* s : sublayers()) {
      auto it = std::find_if(traces.begin(), traces.end(), [&](const SublayerTrace& t) { return t.sublayer == s; });
      if (it != traces.end()) {
        res.trace.push_back(std::move(*it));
      } else {
        SublayerTrace t;
        t.sublayer = s;
        t.effect = "no match";
        res.trace.push_back(std::move(t));
      }
    }
  }
  return res;
}

ClassifyResult FilterEngine::classify(LayerId layer, const FieldValues& values, bool explain,
                                      ClassifyMeta* meta) const {
  const LayerState& ls = *layers_[static_cast<size_t>(layer)];
  KeyBuf key;
  if (!ls.index->make_key(values, key)) return classify_linear(layer, values, explain, meta);
  struct Ctx {
    const LayerState& ls;
    const FieldValues& values;
  } ctx{ls, values};
  auto residual = [](const void* c, uint32_t slot) {
    auto* x = static_cast<const Ctx*>(c);
    return conditions_match(x->ls.slots[slot]->filter.conditions, x->values);
  };
  return arbitrate(layer, values, explain, meta, [&](uint32_t bound) -> const FilterRecord* {
    if (bound <= ls.min_label) return nullptr;  // nothing is evaluated after the lowest filter
    uint32_t slot = ls.index->match(key, bound, residual, &ctx);
    return slot == cls::kNoRule ? nullptr : ls.slots[slot];
  });
}

ClassifyResult FilterEngine::classify_linear(LayerId layer, const FieldValues& values, bool explain,
                                             ClassifyMeta* meta) const {
  const LayerState& ls = *layers_[static_cast<size_t>(layer)];
  return arbitrate(layer, values, explain, meta, [&](uint32_t bound) -> const FilterRecord* {
    // Labels decrease along the evaluation order: skip to the first filter below bound.
    for (auto& [k, slot] : ls.order) {
      const FilterRecord* r = ls.slots[slot];
      if (r->enforced && ls.labels[slot] < bound && conditions_match(r->filter.conditions, values)) return r;
    }
    return nullptr;
  });
}

}  // namespace lfp
