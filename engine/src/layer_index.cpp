// SPDX-License-Identifier: MIT
#include "layer_index.hpp"

#include <cstring>

#include "lfp/engine/tuple_classifier.hpp"

namespace lfp {
namespace {

// A field's conditions as one 128-bit interval (hi:lo halves), if they are expressible as one.
struct Interval128 {
  uint64_t lo_hi, lo_lo, hi_hi, hi_lo;  // low end (high half, low half), high end (high half, low half)
};

uint64_t be64(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

// Width of a key field's value in bits (128 for v6 addresses, 48 for MACs).
unsigned key_width(DataType t) {
  switch (t) {
    case DataType::BYTE_ARRAY16_TYPE: return 128;
    case DataType::BYTE_ARRAY6_TYPE: return 48;
    default: return uint_width(t);
  }
}

// Value of an owned plain value as a 128-bit (hi, lo) pair.
std::pair<uint64_t, uint64_t> as128(const OwnedValue& v) {
  switch (v.type) {
    case DataType::BYTE_ARRAY16_TYPE: return {be64(v.bytes.data(), 8), be64(v.bytes.data() + 8, 8)};
    case DataType::BYTE_ARRAY6_TYPE: return {0, be64(v.bytes.data(), 6)};
    default: return {0, v.u};
  }
}

// One condition as an interval, or nullopt.
std::optional<Interval128> interval_of(const Condition& c, unsigned width) {
  const ConditionValue& cv = c.value;
  const uint64_t max = width >= 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  switch (c.match) {
    case MatchType::EQUAL: {
      if (cv.type == DataType::V4_ADDR_MASK)
        return Interval128{0, cv.value.u & cv.v4_mask, 0, (cv.value.u & cv.v4_mask) | (~cv.v4_mask & 0xffffffffu)};
      if (cv.type == DataType::V6_ADDR_MASK) {
        auto [h, l] = as128(cv.value);
        unsigned p = cv.v6_prefix;
        uint64_t mh = p == 0 ? 0 : p >= 64 ? ~uint64_t{0} : ~uint64_t{0} << (64 - p);
        uint64_t ml = p <= 64 ? 0 : p >= 128 ? ~uint64_t{0} : ~uint64_t{0} << (128 - p);
        return Interval128{h & mh, l & ml, h | ~mh, l | ~ml};
      }
      if (cv.type == DataType::EMPTY || key_width(cv.type) == 0) return std::nullopt;
      auto [h, l] = as128(cv.value);
      return Interval128{h, l, h, l};
    }
    case MatchType::RANGE: {
      if (key_width(cv.value.type) == 0) return std::nullopt;
      auto [a, b] = as128(cv.value);
      auto [x, y] = as128(cv.high);
      return Interval128{a, b, x, y};
    }
    case MatchType::GREATER:
    case MatchType::GREATER_OR_EQUAL:
    case MatchType::LESS:
    case MatchType::LESS_OR_EQUAL: {
      if (width > 64 || uint_width(cv.type) == 0) return std::nullopt;
      uint64_t v = cv.value.u;
      if (c.match == MatchType::GREATER) { if (v >= max) return std::nullopt; return Interval128{0, v + 1, 0, max}; }
      if (c.match == MatchType::GREATER_OR_EQUAL) return Interval128{0, v, 0, max};
      if (c.match == MatchType::LESS) { if (v == 0) return std::nullopt; return Interval128{0, 0, 0, v - 1}; }
      return Interval128{0, 0, 0, v};
    }
    default: return std::nullopt;
  }
}

// A 128-bit interval as a product of two 64-bit intervals, when that is exact.
bool split128(const Interval128& iv, std::array<uint64_t, 2>& lo, std::array<uint64_t, 2>& hi) {
  lo = {iv.lo_hi, iv.lo_lo};
  hi = {iv.hi_hi, iv.hi_lo};
  if (iv.lo_hi == iv.hi_hi) return true;                    // same high half: the low half is the interval
  return iv.lo_lo == 0 && iv.hi_lo == ~uint64_t{0};         // a prefix of the high half
}

template <KeyShape S>
struct ShapeTraits;
template <>
struct ShapeTraits<KeyShape::V4> {
  using Cls = cls::TupleClassifier<32, 32, 16, 16, 8>;
  static constexpr std::array<int, kMaxKeyFields> first_dim = {0, 1, 2, 3, 4};
  static constexpr std::array<bool, kMaxKeyFields> split = {};
};
template <>
struct ShapeTraits<KeyShape::V6> {
  using Cls = cls::TupleClassifier<64, 64, 64, 64, 16, 16, 8>;
  static constexpr std::array<int, kMaxKeyFields> first_dim = {0, 2, 4, 5, 6};
  static constexpr std::array<bool, kMaxKeyFields> split = {true, true, false, false, false};
};
template <>
struct ShapeTraits<KeyShape::MAC> {
  using Cls = cls::TupleClassifier<48, 48, 16, 16>;
  static constexpr std::array<int, kMaxKeyFields> first_dim = {0, 1, 2, 3, -1};
  static constexpr std::array<bool, kMaxKeyFields> split = {};
};

template <KeyShape S>
class LayerIndexImpl final : public LayerIndex {
  using T = ShapeTraits<S>;
  using Cls = typename T::Cls;
  static constexpr int D = Cls::D;
  static constexpr std::array<unsigned, D> kWidths = [] {
    std::array<unsigned, D> w{};
    if constexpr (S == KeyShape::V4) w = {32, 32, 16, 16, 8};
    else if constexpr (S == KeyShape::V6) w = {64, 64, 64, 64, 16, 16, 8};
    else w = {48, 48, 16, 16};
    return w;
  }();

 public:
  explicit LayerIndexImpl(const LayerInfo& l) : layer_(l) {
    for (size_t pos = 0; pos < kMaxKeyFields; ++pos)
      if (l.key_fields[pos] != FieldId::NONE) key_types_[pos] = field_type(l.key_fields[pos], l.family);
  }

  void insert(uint32_t slot, uint32_t priority, const Filter& f) override {
    cls::RuleSpec<D> r;
    for (int d = 0; d < D; ++d) {
      r.lo[d] = 0;
      r.hi[d] = kWidths[d] >= 64 ? ~uint64_t{0} : (uint64_t{1} << kWidths[d]) - 1;
    }
    r.priority = priority;
    r.residual = false;
    // Conditions are grouped by field (one run each).
    for (size_t i = 0; i < f.conditions.size();) {
      const FieldId fid = f.conditions[i].field;
      size_t j = i;
      while (j < f.conditions.size() && f.conditions[j].field == fid) ++j;
      int pos = key_pos(fid);
      std::optional<Interval128> iv;
      if (pos >= 0 && j - i == 1) iv = interval_of(f.conditions[i], key_width(field_type(fid, layer_.family)));
      if (!iv) {
        r.residual = true;
      } else if (T::split[pos]) {
        std::array<uint64_t, 2> lo, hi;
        if (split128(*iv, lo, hi)) {
          r.lo[T::first_dim[pos]] = lo[0];
          r.hi[T::first_dim[pos]] = hi[0];
          r.lo[T::first_dim[pos] + 1] = lo[1];
          r.hi[T::first_dim[pos] + 1] = hi[1];
        } else {
          r.residual = true;
        }
      } else {
        r.lo[T::first_dim[pos]] = iv->lo_lo;
        r.hi[T::first_dim[pos]] = iv->hi_lo;
      }
      i = j;
    }
    cls_.insert(slot, r);
  }

  void erase(uint32_t slot) override { cls_.erase(slot); }
  void set_priority(uint32_t slot, uint32_t priority) override { cls_.set_priority(slot, priority, true); }

  bool make_key(const FieldValues& values, KeyBuf& key) const override {
    for (size_t pos = 0; pos < kMaxKeyFields; ++pos) {
      const int d = T::first_dim[pos];
      if (d < 0) continue;
      const FieldId fid = layer_.key_fields[pos];
      if (fid == FieldId::NONE) {
        key[d] = 0;
        if (T::split[pos]) key[d + 1] = 0;
        continue;
      }
      const Value& v = values.get(fid);
      if (v.type != key_types_[pos]) return false;
      const unsigned w = uint_width(v.type);
      if (w && w < 64 && (v.u >> w) != 0) return false;  // malformed: let the scan decide
      if (T::split[pos]) {
        key[d] = be64(v.bytes.data(), 8);
        key[d + 1] = be64(v.bytes.data() + 8, 8);
      } else if (v.type == DataType::BYTE_ARRAY6_TYPE) {
        key[d] = be64(v.bytes.data(), 6);
      } else {
        key[d] = v.u;
      }
    }
    return true;
  }

  uint32_t match(const KeyBuf& key, uint32_t bound, ResidualFn fn, const void* ctx) const override {
    typename Cls::Key k;
    std::memcpy(k.data(), key.data(), sizeof(uint64_t) * D);
    return cls_.match(k, bound, [&](uint32_t slot) { return fn(ctx, slot); });
  }

  size_t memory_bytes() const override { return cls_.memory_bytes(); }

 private:
  int key_pos(FieldId f) const {
    for (size_t p = 0; p < kMaxKeyFields; ++p)
      if (layer_.key_fields[p] == f && T::first_dim[p] >= 0) return static_cast<int>(p);
    return -1;
  }

  const LayerInfo& layer_;
  std::array<DataType, kMaxKeyFields> key_types_{};  // each key field's type at this layer
  Cls cls_;
};

}  // namespace

std::unique_ptr<LayerIndex> make_layer_index(const LayerInfo& layer) {
  switch (layer.shape) {
    case KeyShape::V4: return std::make_unique<LayerIndexImpl<KeyShape::V4>>(layer);
    case KeyShape::V6: return std::make_unique<LayerIndexImpl<KeyShape::V6>>(layer);
    case KeyShape::MAC: return std::make_unique<LayerIndexImpl<KeyShape::MAC>>(layer);
  }
  return nullptr;
}

}  // namespace lfp
