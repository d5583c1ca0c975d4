// SPDX-License-Identifier: MIT
#pragma once
// A layer's compiled classifier: turns filters into per-dimension intervals for the layer's key
// shape (catalogue.hpp) and requests into keys. Conditions the shape cannot express make the rule
// "residual": the engine then checks the filter's conditions itself on a candidate.
#include <array>
#include <memory>

#include "lfp/engine/objects.hpp"

namespace lfp {

using KeyBuf = std::array<uint64_t, 8>;
using ResidualFn = bool (*)(const void* ctx, uint32_t slot);

class LayerIndex {
 public:
  virtual ~LayerIndex() = default;
  virtual void insert(uint32_t slot, uint32_t priority, const Filter& f) = 0;
  virtual void erase(uint32_t slot) = 0;
  // A present rule's new priority, of the same rank among the index's rules (the engine's
  // relabelling); the rule keeps its place in the index.
  virtual void set_priority(uint32_t slot, uint32_t priority) = 0;
  // False when a key field's value is missing or of another type: the caller falls back to a scan.
  virtual bool make_key(const FieldValues& values, KeyBuf& key) const = 0;
  // Highest-priority slot below bound matching key (kNoRule if none).
  virtual uint32_t match(const KeyBuf& key, uint32_t bound, ResidualFn fn, const void* ctx) const = 0;
  virtual size_t memory_bytes() const = 0;
};

std::unique_ptr<LayerIndex> make_layer_index(const LayerInfo& layer);

}  // namespace lfp
