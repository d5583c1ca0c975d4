// SPDX-License-Identifier: MIT
#include "lfp/datapath/compile.hpp"
#include "lfp/datapath/redirect.hpp"

#include <algorithm>
#include <cstring>
#include <bit>
#include <optional>
#include <set>
#include <span>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <stdexcept>

#include "lfp/engine/condition.hpp"

namespace lfp::datapath {

namespace {

using F = FieldId;

struct U128 {
  uint64_t h = 0, l = 0;
};
constexpr U128 kMax128{~0ull, ~0ull};

U128 of_ip6(const Ip6& a) {
  U128 r;
  for (int i = 0; i < 8; ++i) r.h = r.h << 8 | a[i];
  for (int i = 8; i < 16; ++i) r.l = r.l << 8 | a[i];
  return r;
}
U128 plus1(U128 x) { return x.l == ~0ull ? U128{x.h + 1, 0} : U128{x.h, x.l + 1}; }
U128 minus1(U128 x) { return x.l == 0 ? U128{x.h - 1, ~0ull} : U128{x.h, x.l - 1}; }
bool operator==(U128 a, U128 b) { return a.h == b.h && a.l == b.l; }

bool packet_layer(lfp_kl kl) { return kl >= LFP_KL_FIRST_PACKET; }
bool icmp_error_layer(lfp_kl kl) { return kl >= LFP_KL_ICMP_ERR_IN_V4 && kl <= LFP_KL_ICMP_ERR_OUT_V6; }
bool forward_layer(lfp_kl kl) { return kl == LFP_KL_FORWARD_V4 || kl == LFP_KL_FORWARD_V6; }
bool mac_layer(lfp_kl kl) { return kl == LFP_KL_MAC_IN || kl == LFP_KL_MAC_OUT; }

// The FLAGS and L2_FLAGS bits the hooks set are WFP's, as the engine has them.
static_assert(LFP_FLAG_IS_LOOPBACK == condition_flag::IS_LOOPBACK && LFP_FLAG_IS_REAUTHORIZE == condition_flag::IS_REAUTHORIZE &&
              LFP_FLAG_IS_WILDCARD_BIND == condition_flag::IS_WILDCARD_BIND && LFP_FLAG_IS_FRAGMENT == condition_flag::IS_FRAGMENT &&
              LFP_L2_IS_NATIVE_ETHERNET == l2_flag::IS_NATIVE_ETHERNET &&
              LFP_L2_IS_IP_FRAGMENT_GROUP == l2_flag::IS_IP_FRAGMENT_GROUP);

// Where a hook puts a field's value. The ALE layers have one slot per field; the packet layers have
// no app or user, and reuse those slots for their own fields (lfp_kernel.h).
int slot_of(lfp_kl kl, F f) {
  if (mac_layer(kl)) {
    switch (f) {
      case F::MAC_LOCAL_ADDRESS: return LFP_S_LOCAL_ADDR;
      case F::MAC_REMOTE_ADDRESS: return LFP_S_REMOTE_ADDR;
      case F::ETHER_TYPE: return LFP_S_ETHER_TYPE;
      case F::VLAN_ID: return LFP_S_VLAN_ID;
      case F::MAC_LOCAL_ADDRESS_TYPE: return LFP_S_MAC_LOCAL_TYPE;
      case F::MAC_REMOTE_ADDRESS_TYPE: return LFP_S_MAC_REMOTE_TYPE;
      case F::INTERFACE:
      case F::INTERFACE_INDEX: return LFP_S_IFACE;
      case F::INTERFACE_MAC_ADDRESS: return LFP_S_EXTRA;
      case F::L2_FLAGS: return LFP_S_FLAGS;
      default: return LFP_S_NONE;
    }
  }
  if (forward_layer(kl)) {
    switch (f) {
      case F::IP_SOURCE_ADDRESS: return LFP_S_LOCAL_ADDR;
      case F::IP_DESTINATION_ADDRESS: return LFP_S_REMOTE_ADDR;
      case F::IP_DESTINATION_ADDRESS_TYPE: return LFP_S_DEST_TYPE;
      case F::SOURCE_INTERFACE_INDEX: return LFP_S_IFACE;
      case F::DESTINATION_INTERFACE_INDEX:
      case F::IP_FORWARD_INTERFACE:
      case F::IP_LOCAL_INTERFACE: return LFP_S_OUT_IFACE;
      case F::FLAGS: return LFP_S_FLAGS;
      default: return LFP_S_NONE;
    }
  }
  if (icmp_error_layer(kl)) {
    switch (f) {
      case F::ICMP_TYPE: return LFP_S_ICMP_TYPE;
      case F::ICMP_CODE: return LFP_S_ICMP_CODE;
      case F::EMBEDDED_PROTOCOL: return LFP_S_EMB_PROTO;
      case F::EMBEDDED_LOCAL_ADDRESS_TYPE:
      case F::IP_LOCAL_ADDRESS_TYPE: return LFP_S_ADDR_TYPE;
      case F::EMBEDDED_REMOTE_ADDRESS: return LFP_S_EXTRA;
      case F::EMBEDDED_LOCAL_PORT: return LFP_S_EMB_LPORT;
      case F::EMBEDDED_REMOTE_PORT: return LFP_S_EMB_RPORT;
      case F::IP_ARRIVAL_INTERFACE: return LFP_S_IFACE;
      default: break;  // addresses, FLAGS and interfaces as below
    }
  }
  switch (f) {
    case F::IP_LOCAL_ADDRESS: return LFP_S_LOCAL_ADDR;
    case F::IP_REMOTE_ADDRESS: return LFP_S_REMOTE_ADDR;
    case F::IP_LOCAL_PORT: return icmp_error_layer(kl) ? LFP_S_NONE : LFP_S_LOCAL_PORT;
    case F::IP_REMOTE_PORT: return icmp_error_layer(kl) ? LFP_S_NONE : LFP_S_REMOTE_PORT;
    case F::IP_PROTOCOL: return icmp_error_layer(kl) ? LFP_S_NONE : LFP_S_PROTOCOL;
    case F::ALE_APP_ID: return packet_layer(kl) ? LFP_S_NONE : LFP_S_APP;
    case F::ALE_USER_ID: return packet_layer(kl) ? LFP_S_NONE : LFP_S_USER;
    case F::IP_LOCAL_ADDRESS_TYPE: return packet_layer(kl) ? LFP_S_ADDR_TYPE : LFP_S_NONE;
    case F::IP_DESTINATION_ADDRESS_TYPE: return packet_layer(kl) ? LFP_S_DEST_TYPE : LFP_S_NONE;
    case F::FLAGS: return LFP_S_FLAGS;
    case F::IP_LOCAL_INTERFACE:
    case F::INTERFACE_INDEX: return LFP_S_IFACE;
    case F::DIRECTION: return LFP_S_DIRECTION;
    case F::INTERFACE_TYPE: return packet_layer(kl) ? LFP_S_IFTYPE : LFP_S_NONE;
    default: return LFP_S_NONE;
  }
}

// The slots each kernel layer's hook fills (bit per lfp_slot).
uint32_t supplied_slots(lfp_kl kl) {
  constexpr uint32_t common = 1u << LFP_S_LOCAL_ADDR | 1u << LFP_S_LOCAL_PORT | 1u << LFP_S_APP |
                              1u << LFP_S_FLAGS | 1u << LFP_S_USER;
  constexpr uint32_t ip = 1u << LFP_S_LOCAL_ADDR | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_ADDR_TYPE |
                          1u << LFP_S_FLAGS | 1u << LFP_S_IFACE | 1u << LFP_S_IFTYPE;
  constexpr uint32_t ports = 1u << LFP_S_LOCAL_PORT | 1u << LFP_S_REMOTE_PORT | 1u << LFP_S_PROTOCOL;
  switch (kl) {
    case LFP_KL_CONNECT_V4:
    case LFP_KL_CONNECT_V6:
    case LFP_KL_REDIRECT_V4:
    case LFP_KL_REDIRECT_V6:
      return common | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_REMOTE_PORT | 1u << LFP_S_PROTOCOL;
    case LFP_KL_RECV_ACCEPT_V4:
    case LFP_KL_RECV_ACCEPT_V6:
      return common | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_REMOTE_PORT | 1u << LFP_S_PROTOCOL | 1u << LFP_S_IFACE;
    case LFP_KL_LISTEN_V4:
    case LFP_KL_LISTEN_V6: return common;
    case LFP_KL_RESOURCE_V4:
    case LFP_KL_RESOURCE_V6:
    case LFP_KL_BIND_REDIRECT_V4:
    case LFP_KL_BIND_REDIRECT_V6: return common | 1u << LFP_S_PROTOCOL;
    case LFP_KL_FLOW_V4:
    case LFP_KL_FLOW_V6:
      return common | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_REMOTE_PORT | 1u << LFP_S_PROTOCOL | 1u << LFP_S_DIRECTION;
    case LFP_KL_RELEASE_V4:
    case LFP_KL_RELEASE_V6: return common | 1u << LFP_S_PROTOCOL;
    case LFP_KL_CLOSURE_V4:
    case LFP_KL_CLOSURE_V6: return common | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_REMOTE_PORT | 1u << LFP_S_PROTOCOL;
    case LFP_KL_IPPACKET_IN_V4:
    case LFP_KL_IPPACKET_IN_V6:
    case LFP_KL_IPPACKET_OUT_V4:
    case LFP_KL_IPPACKET_OUT_V6: return ip;
    case LFP_KL_TRANSPORT_IN_V4:
    case LFP_KL_TRANSPORT_IN_V6: return ip | ports;
    case LFP_KL_TRANSPORT_OUT_V4:
    case LFP_KL_TRANSPORT_OUT_V6: return ip | ports | 1u << LFP_S_DEST_TYPE;
    case LFP_KL_DATAGRAM_V4:
    case LFP_KL_DATAGRAM_V6: return ip | ports | 1u << LFP_S_DIRECTION;
    case LFP_KL_FORWARD_V4:
    case LFP_KL_FORWARD_V6:
      return 1u << LFP_S_LOCAL_ADDR | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_DEST_TYPE | 1u << LFP_S_FLAGS |
             1u << LFP_S_IFACE | 1u << LFP_S_OUT_IFACE;
    case LFP_KL_ICMP_ERR_IN_V4:
    case LFP_KL_ICMP_ERR_IN_V6:
      return ip | 1u << LFP_S_ICMP_TYPE | 1u << LFP_S_ICMP_CODE | 1u << LFP_S_EMB_PROTO | 1u << LFP_S_EXTRA |
             1u << LFP_S_EMB_LPORT | 1u << LFP_S_EMB_RPORT;
    case LFP_KL_ICMP_ERR_OUT_V4:
    case LFP_KL_ICMP_ERR_OUT_V6: return ip | 1u << LFP_S_ICMP_TYPE | 1u << LFP_S_ICMP_CODE;
    case LFP_KL_MAC_IN:
    case LFP_KL_MAC_OUT:
      return 1u << LFP_S_LOCAL_ADDR | 1u << LFP_S_REMOTE_ADDR | 1u << LFP_S_ETHER_TYPE | 1u << LFP_S_VLAN_ID |
             1u << LFP_S_MAC_LOCAL_TYPE | 1u << LFP_S_MAC_REMOTE_TYPE | 1u << LFP_S_IFACE | 1u << LFP_S_EXTRA |
             1u << LFP_S_FLAGS;
    default: return 0;
  }
}

uint64_t uint_max(DataType t) {
  unsigned w = uint_width(t);
  return w >= 64 ? ~0ull : (1ull << w) - 1;
}

// What compiling one policy needs to keep at hand.
struct Ctx {
  const AppResolver& resolve;
  KernelPolicy& out;
  uint32_t next_set;
  lfp_kl kl = LFP_KL_CONNECT_V4;  // the layer being compiled
};

// A plain value as the kernel holds it.
U128 kernel_value(const OwnedValue& v, Ctx& cx) {
  switch (v.type) {
    case DataType::BYTE_ARRAY16_TYPE: return of_ip6(v.bytes);
    case DataType::BYTE_ARRAY6_TYPE: {  // a MAC address: 48 bits, as the hooks read it
      uint64_t m = 0;
      for (int i = 0; i < 6; ++i) m = m << 8 | v.bytes[i];
      return {0, m};
    }
    case DataType::BYTE_BLOB_TYPE: {
      const AppKey k = cx.resolve(v.str);
      cx.out.apps.emplace(k, v.str);
      return {k.dev, k.ino};
    }
    default: return {0, v.u};
  }
}

struct Compiled {
  lfp_cond c{};
  bool kernel_can = true;
};

void set_range(lfp_cond& c, lfp_op op, U128 lo, U128 hi) {
  c.op = op;
  c.lo[0] = lo.h, c.lo[1] = lo.l, c.hi[0] = hi.h, c.hi[1] = hi.l;
}

// One condition on a field the hook supplies.
Compiled compile_condition(const Condition& cond, Ctx& cx) {
  Compiled r;
  lfp_cond& c = r.c;
  c.slot = static_cast<uint8_t>(slot_of(cx.kl, cond.field));
  const ConditionValue& cv = cond.value;
  const MatchType m = cond.match;
  const bool eq = m == MatchType::EQUAL, ne = m == MatchType::NOT_EQUAL;
  const lfp_op in = eq ? LFP_OP_IN_RANGE : LFP_OP_NOT_IN_RANGE;
  auto unsupported = [&] {
    c.op = LFP_OP_TRUE;  // the kernel checks a superset; user space decides
    r.kernel_can = false;
  };
  switch (cv.type) {
    case DataType::EMPTY: c.op = eq ? LFP_OP_FALSE : LFP_OP_TRUE; return r;  // a present value is never EMPTY
    case DataType::V4_ADDR_MASK: {
      uint64_t a = cv.value.u & cv.v4_mask, b = a | (~cv.v4_mask & 0xffffffffu);
      set_range(c, in, {0, a}, {0, b});
      return r;
    }
    case DataType::V6_ADDR_MASK: {
      U128 a = of_ip6(cv.value.bytes), mask{};
      unsigned p = cv.v6_prefix;
      mask.h = p == 0 ? 0 : p >= 64 ? ~0ull : ~0ull << (64 - p);
      mask.l = p <= 64 ? 0 : p >= 128 ? ~0ull : ~0ull << (128 - p);
      U128 lo{a.h & mask.h, a.l & mask.l}, hi{lo.h | ~mask.h, lo.l | ~mask.l};
      set_range(c, in, lo, hi);
      return r;
    }
    case DataType::SECURITY_DESCRIPTOR_TYPE:
      c.op = eq ? LFP_OP_USER_IN : LFP_OP_USER_NOT_IN;
      c.lo[1] = cx.next_set;
      for (uint32_t u : cv.users.uids) cx.out.user_sets.push_back({cx.next_set, 0, u});
      for (uint32_t g : cv.users.gids) cx.out.user_sets.push_back({cx.next_set, 1, g});
      ++cx.next_set;
      return r;
    case DataType::RANGE_TYPE:
      if (cv.value.type == DataType::BYTE_BLOB_TYPE) break;
      set_range(c, LFP_OP_IN_RANGE, kernel_value(cv.value, cx), kernel_value(cv.high, cx));
      return r;
    case DataType::BYTE_BLOB_TYPE:
      if (!eq && !ne) break;  // orderings, case-insensitive and suffix matches need the path itself
      set_range(c, in, kernel_value(cv.value, cx), kernel_value(cv.value, cx));
      return r;
    default: {
      if (cv.type == DataType::UNICODE_STRING_TYPE) break;
      const U128 x = kernel_value(cv.value, cx);
      const U128 max = cv.type == DataType::BYTE_ARRAY16_TYPE ? kMax128
                       : cv.type == DataType::BYTE_ARRAY6_TYPE ? U128{0, (1ull << 48) - 1}
                                                               : U128{0, uint_max(cv.type)};
      switch (m) {
        case MatchType::EQUAL:
        case MatchType::NOT_EQUAL: set_range(c, in, x, x); return r;
        case MatchType::GREATER:
          if (x == max) c.op = LFP_OP_FALSE; else set_range(c, LFP_OP_IN_RANGE, plus1(x), max);
          return r;
        case MatchType::LESS:
          if (x == U128{}) c.op = LFP_OP_FALSE; else set_range(c, LFP_OP_IN_RANGE, {}, minus1(x));
          return r;
        case MatchType::GREATER_OR_EQUAL: set_range(c, LFP_OP_IN_RANGE, x, max); return r;
        case MatchType::LESS_OR_EQUAL: set_range(c, LFP_OP_IN_RANGE, {}, x); return r;
        case MatchType::FLAGS_ALL_SET: c.op = LFP_OP_FLAGS_ALL; c.lo[1] = x.l; return r;
        case MatchType::FLAGS_ANY_SET: c.op = LFP_OP_FLAGS_ANY; c.lo[1] = x.l; return r;
        case MatchType::FLAGS_NONE_SET: c.op = LFP_OP_FLAGS_NONE; c.lo[1] = x.l; return r;
        default: break;
      }
    }
  }
  unsupported();
  return r;
}

}  // namespace

LayerId engine_layer(lfp_kl kl) {
  static constexpr LayerId kMap[] = {
      LayerId::ALE_AUTH_CONNECT_V4,     LayerId::ALE_AUTH_CONNECT_V6,      LayerId::ALE_AUTH_RECV_ACCEPT_V4,
      LayerId::ALE_AUTH_RECV_ACCEPT_V6, LayerId::ALE_AUTH_LISTEN_V4,       LayerId::ALE_AUTH_LISTEN_V6,
      LayerId::ALE_RESOURCE_ASSIGNMENT_V4, LayerId::ALE_RESOURCE_ASSIGNMENT_V6, LayerId::ALE_CONNECT_REDIRECT_V4,
      LayerId::ALE_CONNECT_REDIRECT_V6,   LayerId::ALE_FLOW_ESTABLISHED_V4,   LayerId::ALE_FLOW_ESTABLISHED_V6,
      LayerId::ALE_BIND_REDIRECT_V4,      LayerId::ALE_BIND_REDIRECT_V6,      LayerId::ALE_RESOURCE_RELEASE_V4,
      LayerId::ALE_RESOURCE_RELEASE_V6,   LayerId::ALE_ENDPOINT_CLOSURE_V4,   LayerId::ALE_ENDPOINT_CLOSURE_V6,
      LayerId::INBOUND_IPPACKET_V4,       LayerId::INBOUND_IPPACKET_V6,       LayerId::OUTBOUND_IPPACKET_V4,
      LayerId::OUTBOUND_IPPACKET_V6,      LayerId::IPFORWARD_V4,              LayerId::IPFORWARD_V6,
      LayerId::INBOUND_TRANSPORT_V4,      LayerId::INBOUND_TRANSPORT_V6,      LayerId::OUTBOUND_TRANSPORT_V4,
      LayerId::OUTBOUND_TRANSPORT_V6,     LayerId::INBOUND_ICMP_ERROR_V4,     LayerId::INBOUND_ICMP_ERROR_V6,
      LayerId::OUTBOUND_ICMP_ERROR_V4,    LayerId::OUTBOUND_ICMP_ERROR_V6,    LayerId::DATAGRAM_DATA_V4,
      LayerId::DATAGRAM_DATA_V6,          LayerId::INBOUND_MAC_FRAME_ETHERNET, LayerId::OUTBOUND_MAC_FRAME_ETHERNET};
  static_assert(std::size(kMap) == LFP_KL_COUNT, "one engine layer per kernel layer, in lfp_kl's order");
  return kMap[kl];
}

std::optional<lfp_kl> kernel_layer(LayerId layer) {
  for (int k = 0; k < LFP_KL_COUNT; ++k)
    if (engine_layer(static_cast<lfp_kl>(k)) == layer) return static_cast<lfp_kl>(k);
  return std::nullopt;
}

const std::vector<lfp_kl>& hook_layers(int nf_hook) {
  static const std::vector<lfp_kl> kLayers[4] = {
      {LFP_KL_IPPACKET_IN_V4},
      {LFP_KL_TRANSPORT_IN_V4, LFP_KL_ICMP_ERR_IN_V4, LFP_KL_DATAGRAM_V4},
      {LFP_KL_FORWARD_V4},
      {LFP_KL_DATAGRAM_V4, LFP_KL_TRANSPORT_OUT_V4, LFP_KL_ICMP_ERR_OUT_V4, LFP_KL_IPPACKET_OUT_V4}};
  static const std::vector<lfp_kl> none;
  return nf_hook >= 0 && nf_hook < 4 ? kLayers[nf_hook] : none;
}

int kernel_slot(lfp_kl kl, FieldId f) { return kernel_supplies(kl, f) ? slot_of(kl, f) : LFP_S_NONE; }

bool kernel_supplies(lfp_kl kl, FieldId f) {
  const int s = slot_of(kl, f);
  return s != LFP_S_NONE && (supplied_slots(kl) >> s & 1) && layer_has_field(layer_info(engine_layer(kl)), f);
}

namespace {

// The guard of the filter whose conditions are bank[start, end): of its conditions that are alone on
// their field, the range test on a value with one high half that admits the fewest values (a port
// rather than a protocol); none when it has no such condition.
lfp_guard guard_of(const std::vector<lfp_entry>& bank, size_t start, size_t end, uint16_t sublayer) {
  lfp_guard g{};
  g.cond = static_cast<uint32_t>(start);
  g.sublayer = sublayer;
  g.slot = LFP_S_NONE;
  uint64_t width = UINT64_MAX;
  for (size_t i = start; i < end; ++i) {
    const lfp_cond& c = bank[i].c;
    const bool alone = (c.flags & LFP_C_GROUP_END) && (i == start || (bank[i - 1].c.flags & LFP_C_GROUP_END));
    if (!alone || c.op != LFP_OP_IN_RANGE || c.slot >= LFP_NSLOTS || c.lo[0] != c.hi[0]) continue;
    if (g.slot != LFP_S_NONE && c.hi[1] - c.lo[1] >= width) continue;
    width = c.hi[1] - c.lo[1];
    g.slot = c.slot;
    g.lo = c.lo[1];
    g.hi = c.hi[1];
    g.high = c.lo[0];
    g.flags = c.flags & LFP_C_IF_EMPTY;
  }
  return g;
}

// A key the index can hold a filter under: one or two of its conditions, each a block of values (a
// slot's values whose top `plen` bits are the value's). The second is absent (slot LFP_S_NONE) for a
// key of one field.
struct IndexKey {
  lfp_probe shape{};
  uint64_t v[2][2]{};
};
uint32_t shape_id(const lfp_probe& p) { return uint32_t{p.slot[0]} << 24 | p.plen[0] << 16 | p.slot[1] << 8 | p.plen[1]; }
lfp_probe probe_of_shape(uint32_t s) {
  return {{static_cast<uint8_t>(s >> 24), static_cast<uint8_t>(s >> 8)}, {static_cast<uint8_t>(s >> 16), static_cast<uint8_t>(s)}};
}
auto key_tuple(const IndexKey& k) { return std::tie(k.v[0][0], k.v[0][1], k.v[1][0], k.v[1][1]); }
bool operator==(const IndexKey& a, const IndexKey& b) {
  return shape_id(a.shape) == shape_id(b.shape) && key_tuple(a) == key_tuple(b);
}
bool operator<(const IndexKey& a, const IndexKey& b) {
  const uint32_t sa = shape_id(a.shape), sb = shape_id(b.shape);
  return sa != sb ? sa < sb : key_tuple(a) < key_tuple(b);
}
struct IndexKeyHash {
  size_t operator()(const IndexKey& k) const { return lfp_hash(k.v, shape_id(k.shape)); }
};

// The key cut to the shape p, which reads no more bits of each field than k does.
IndexKey widen(IndexKey k, const lfp_probe& p) {
  k.shape = p;
  for (int f = 0; f < 2; ++f) k.v[f][0] &= lfp_mask_high(p.plen[f]), k.v[f][1] &= lfp_mask_low(p.plen[f]);
  return k;
}

// The prefix length of [lo, hi] when it is one aligned block of 2^k values (128 - k), else -1.
int block_plen(U128 lo, U128 hi) {
  const U128 span{hi.h - lo.h - (hi.l < lo.l), hi.l - lo.l};  // hi - lo
  const bool ones = span.h == 0 ? (span.l & (span.l + 1)) == 0 : span.l == ~0ull && (span.h & (span.h + 1)) == 0;
  if (!ones || (lo.h & span.h) || (lo.l & span.l)) return -1;  // not 2^k - 1, or not aligned
  return 128 - std::popcount(span.h) - std::popcount(span.l);
}

// A layer's filters' keys, one run a filter, in evaluation order.
struct LayerKeys {
  std::vector<IndexKey> keys;
  std::vector<uint8_t> wider;    // the key is wider than the filter's conditions
  std::vector<uint32_t> first{0};  // filter i's keys: [first[i], first[i + 1])
  size_t filters() const { return first.size() - 1; }
};

// Adds the keys of the filter bank[start, end): its conditions each alone on its field, one aligned
// block of values, false when the hook has no value (so a decision whose value is outside the block,
// or missing, cannot match the filter and need not visit it); each alone, and each two of them. Each
// prefix key also comes as the byte-aligned prefix it lies in (a /27 as its /24): policies whose
// prefixes have every length then share a few shapes, as TupleMerge's relaxed tuples do.
void add_index_keys(const std::vector<lfp_entry>& bank, size_t start, size_t end, LayerKeys& out) {
  const size_t singles_at = out.keys.size();
  for (size_t i = start; i < end; ++i) {
    const lfp_cond& c = bank[i].c;
    const bool alone = (c.flags & LFP_C_GROUP_END) && (i == start || (bank[i - 1].c.flags & LFP_C_GROUP_END));
    if (!alone || c.op != LFP_OP_IN_RANGE || (c.flags & LFP_C_IF_EMPTY) || c.slot >= LFP_NSLOTS) continue;
    const int plen = block_plen({c.lo[0], c.lo[1]}, {c.hi[0], c.hi[1]});
    if (plen <= 0) continue;
    IndexKey k;
    k.shape = {{c.slot, LFP_S_NONE}, {static_cast<uint8_t>(plen), 0}};
    k.v[0][0] = c.lo[0], k.v[0][1] = c.lo[1];
    out.keys.push_back(k);
  }
  const size_t singles_end = out.keys.size();
  for (size_t a = singles_at; a < singles_end; ++a)
    for (size_t b = a + 1; b < singles_end; ++b) {
      const IndexKey& x = out.keys[a];
      const IndexKey& y = out.keys[b];
      if (x.shape.slot[0] == y.shape.slot[0]) continue;
      IndexKey k = x;
      k.shape.slot[1] = y.shape.slot[0];
      k.shape.plen[1] = y.shape.plen[0];
      k.v[1][0] = y.v[0][0], k.v[1][1] = y.v[0][1];
      out.keys.push_back(k);
    }
  const size_t own_end = out.keys.size();
  out.wider.resize(own_end, 0);
  // (Not to 96 bits, a v4 address's /0, nor to 0: such a key says nothing.)
  const auto says = [](uint8_t plen) { return plen > 0 && plen != 96; };
  for (size_t j = singles_at; j < own_end; ++j) {
    lfp_probe p = out.keys[j].shape;
    bool wider = false;
    for (int f = 0; f < 2; ++f)
      if (p.plen[f] % 8) p.plen[f] &= ~7, wider = true;
    if (wider && says(p.plen[0]) && (p.slot[1] == LFP_S_NONE || says(p.plen[1]))) {
      out.keys.push_back(widen(out.keys[j], p));
      out.wider.push_back(1);
    }
  }
  out.first.push_back(static_cast<uint32_t>(out.keys.size()));
}

// Below this many filters a layer is walked whole: a probe costs about as much as the filters it skips.
constexpr size_t kIndexMin = 16;

// One layer's index: each filter under the key it shares with the fewest others (or on the residual
// list), keys of at most LFP_PROBES shapes, their buckets in an open-addressing table. Lists hold
// filters' positions in the layer; compile makes them guard indices.
struct LayerIndex {
  std::vector<uint32_t> residual;
  std::vector<IndexKey> keys;         // each list's key
  std::vector<uint32_t> list_first;   // list j: members[list_first[j], list_first[j + 1])
  std::vector<uint32_t> members;      // every list, each in evaluation order
  std::vector<uint32_t> shapes;       // the probes' shape_ids, in probe order
  std::vector<uint32_t> table;        // bucket -> list + 1 (0: unused); a power of two
  size_t widened = 0;                 // filters under a key wider than their conditions
  // The probe a key's shape is (its place in `shapes`).
  uint8_t probe_of(const IndexKey& k) const {
    return static_cast<uint8_t>(std::find(shapes.begin(), shapes.end(), shape_id(k.shape)) - shapes.begin());
  }
};

LayerIndex index_with(const LayerKeys& lk, const std::vector<uint32_t>& sharing, const std::vector<uint32_t>& shape,
                      bool sparing, size_t max_probes);
double visit_cost(const LayerIndex& ix, const LayerKeys& lk);
constexpr size_t kPlainProbes = 15;  // the first choice's probes; the second may take LFP_PROBES
constexpr double kProbeCost = 2;     // a probe, in filters visited

LayerIndex build_index(const LayerKeys& lk) {
  LayerIndex ix;
  const size_t n = lk.filters();
  if (n < kIndexMin) {
    for (uint32_t i = 0; i < n; ++i) ix.residual.push_back(i);
    return ix;
  }
  // How many filters share each key: equal keys are neighbours once sorted (a sort, not a hash map
  // of a million nodes).
  std::vector<uint32_t> sharing(lk.keys.size());
  {
    std::vector<uint32_t> order(lk.keys.size());
    for (uint32_t j = 0; j < order.size(); ++j) order[j] = j;
    std::vector<uint64_t> hash(lk.keys.size());  // (sorted by hash first: one compare for nearly every pair)
    for (uint32_t j = 0; j < hash.size(); ++j) hash[j] = IndexKeyHash{}(lk.keys[j]);
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return hash[a] != hash[b] ? hash[a] < hash[b] : lk.keys[a] < lk.keys[b];
    });
    for (size_t r = 0; r < order.size();) {
      size_t e = r + 1;
      while (e < order.size() && lk.keys[order[e]] == lk.keys[order[r]]) ++e;
      for (size_t j = r; j < e; ++j) sharing[order[j]] = static_cast<uint32_t>(e - r);
      r = e;
    }
  }
  std::vector<uint32_t> shape(lk.keys.size());
  for (size_t j = 0; j < shape.size(); ++j) shape[j] = shape_id(lk.keys[j].shape);
  // Two choices of shapes, the cheaper kept (visit_cost): up to 15, and up to LFP_PROBES with room
  // left for the filters with only large keys (`sparing`); not the second when the first's lists are
  // already short (a blocklist: one filter a list).
  LayerIndex plain = index_with(lk, sharing, shape, false, kPlainProbes);
  const double plain_cost = visit_cost(plain, lk);
  if (plain_cost <= 4 + kProbeCost * static_cast<double>(plain.shapes.size())) return plain;
  LayerIndex sparing = index_with(lk, sharing, shape, true, LFP_PROBES);
  return visit_cost(sparing, lk) < plain_cost ? sparing : plain;
}

// What a decision costs, about, in filters visited, if packets come as the filters are: for a sample
// of the filters, a packet at the first value of each of its conditions (fields it does not name match
// no key), the lists its probes find, the residual list, and the probes themselves (each a bucket read,
// out of cache as a visited filter's guard is). A key many filters share, such as the protocol alone,
// is found by most packets: this counts it so, where the lists' sizes alone would not.
double visit_cost(const LayerIndex& ix, const LayerKeys& lk) {
  // The sample's probe keys first, then the sizes of their lists only (a map of every key costs
  // more than the rest of the compile at a million filters).
  const size_t n = lk.filters(), step = std::max<size_t>(1, n / 2000);
  std::vector<IndexKey> probes;
  size_t sampled = 0;
  for (size_t i = 0; i < n; i += step, ++sampled) {
    struct Point { bool set = false; uint64_t v[2]{}; };
    std::array<Point, LFP_NSLOTS> point{};
    for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c) {
      const IndexKey& k = lk.keys[c];
      if (k.shape.slot[1] != LFP_S_NONE || lk.wider[c] || k.shape.slot[0] >= LFP_NSLOTS) continue;
      point[k.shape.slot[0]] = {true, {k.v[0][0], k.v[0][1]}};
    }
    for (uint32_t s : ix.shapes) {
      IndexKey k;
      k.shape = probe_of_shape(s);
      bool found = true;
      for (int f = 0; f < 2 && k.shape.slot[f] != LFP_S_NONE && found; ++f) {
        const Point& p = point[k.shape.slot[f] % LFP_NSLOTS];
        found = p.set;
        k.v[f][0] = p.v[0], k.v[f][1] = p.v[1];
      }
      if (found) probes.push_back(widen(k, k.shape));
    }
  }
  std::unordered_map<IndexKey, uint32_t, IndexKeyHash> list_size;  // probe key -> its list's size
  for (const IndexKey& k : probes) list_size.emplace(k, 0);
  for (size_t j = 0; j < ix.keys.size(); ++j)
    if (auto it = list_size.find(ix.keys[j]); it != list_size.end()) it->second = ix.list_first[j + 1] - ix.list_first[j];
  double visits = 0;
  for (const IndexKey& k : probes) visits += list_size[k];
  return visits / static_cast<double>(std::max<size_t>(1, sampled)) + static_cast<double>(ix.residual.size()) +
         kProbeCost * static_cast<double>(ix.shapes.size());
}

// The key shapes a layer's table holds (shape_ids).
using ShapeSet = std::set<uint32_t>;
constexpr uint32_t kSmallBucket = 64;           // a key at most this many filters share is a small one
constexpr uint32_t kWidenedMax = 4 * kSmallBucket;  // the longest list a filter joins under a wider key

// Whether shape s takes key k as it is or widened (reads no more bits of the same fields).
bool shape_holds(uint32_t s, const IndexKey& k) {
  const lfp_probe p = probe_of_shape(s);
  return p.slot[0] == k.shape.slot[0] && p.slot[1] == k.shape.slot[1] && p.plen[0] <= k.shape.plen[0] &&
         p.plen[1] <= k.shape.plen[1];
}

// The shape with the most filters in `gain` (of equals, the least id).
uint32_t most_gained(const std::unordered_map<uint32_t, size_t>& gain) {
  return std::max_element(gain.begin(), gain.end(), [](const auto& a, const auto& b) {
           return a.second != b.second ? a.second < b.second : a.first > b.first;
         })->first;
}

// The shapes to probe, greedily: each round takes the shape that gives the most filters not yet
// covered a key shared by at most kSmallBucket filters (a key many share, such as a /1 prefix, saves
// a walk little), then, when none does, the shape of most filters' most selective key. `sparing`: a
// shape of small keys must give at least n / 1024 filters one, so that probes are left for the most
// selective keys of filters with only large ones (ClassBench's port-and-protocol rules, which would
// otherwise go under the protocol alone).
ShapeSet choose_shapes(const LayerKeys& lk, const std::vector<uint32_t>& sharing, const std::vector<uint32_t>& shape,
                       bool sparing, size_t max_probes) {
  const size_t n = lk.filters();
  ShapeSet kept;
  std::vector<bool> covered(n);
  for (bool small : {true, false})
    while (kept.size() < max_probes) {
      std::unordered_map<uint32_t, size_t> gain;
      for (uint32_t i = 0; i < n; ++i) {
        if (covered[i] || lk.first[i] == lk.first[i + 1]) continue;
        if (!small) {  // (only for its most selective key: not the protocol alone, which every packet finds)
          uint32_t most = lk.first[i];
          for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c)
            if (sharing[c] < sharing[most]) most = c;
          ++gain[shape[most]];
          continue;
        }
        for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c) {
          if (sharing[c] > kSmallBucket) continue;
          bool seen = false;  // (a filter counts once a shape)
          for (uint32_t d = lk.first[i]; d < c && !seen; ++d) seen = shape[d] == shape[c] && sharing[d] <= kSmallBucket;
          if (!seen) ++gain[shape[c]];
        }
      }
      if (gain.empty()) break;
      const uint32_t best = most_gained(gain);
      // (A small key for a few filters more is not worth a probe while others have only large keys.)
      if (small && sparing && gain[best] < std::max<size_t>(4, n / 1024)) break;
      kept.insert(best);
      for (uint32_t i = 0; i < n; ++i)
        for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c)
          if (shape[c] == best && (!small || sharing[c] <= kSmallBucket)) covered[i] = true;
    }
  return kept;
}

// While it pays, a kept shape that few filters need gives its place to the shape most of the filters
// no kept shape can hold have (a greedy round cannot see that a later shape would take over most of
// an earlier one's filters).
void trade_shapes(const LayerKeys& lk, const std::vector<uint32_t>& shape, size_t max_probes, ShapeSet& kept) {
  const size_t n = lk.filters();
  for (int round = 0; round < 8 && kept.size() == max_probes; ++round) {
    std::unordered_map<uint32_t, size_t> needed_only;  // filters only this kept shape holds
    std::unordered_map<uint32_t, size_t> gain;          // filters no kept shape holds, by a shape of theirs
    size_t unheld = 0;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t holder = UINT32_MAX, holders = 0;
      for (uint32_t s : kept) {
        bool any = false;
        for (uint32_t c = lk.first[i]; c < lk.first[i + 1] && !any; ++c) any = shape_holds(s, lk.keys[c]);
        if (any) holder = s, ++holders;
        if (holders > 1) break;
      }
      if (holders == 1) ++needed_only[holder];
      if (holders > 0) continue;
      ++unheld;
      for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c) {
        bool seen = false;
        for (uint32_t d = lk.first[i]; d < c && !seen; ++d) seen = shape[d] == shape[c];
        if (!seen) ++gain[shape[c]];
      }
    }
    if (unheld < 2 * kIndexMin || gain.empty()) break;  // (a short residual list costs less than the lists would
                                                         // grow; or none of them has a key)
    const uint32_t best = most_gained(gain);
    uint32_t weakest = *kept.begin();
    for (uint32_t s : kept)
      if (needed_only[s] < needed_only[weakest]) weakest = s;
    if (gain[best] <= 2 * needed_only[weakest] + 8) break;  // (a clear gain only: the lists grow too)
    kept.erase(weakest);
    kept.insert(best);
  }
}

// A filter under one of its keys.
struct Placed {
  uint64_t hash;  // (sorted by hash first, so equal keys meet after one compare for most pairs)
  IndexKey key;
  uint32_t filter;
};

// Each filter under its key of a kept shape that the fewest share (of equals, the first: one field
// before two). A filter with no key of a kept shape goes under a kept shape that reads fewer bits of
// the same fields (TupleMerge's relaxed tuples: a /24 under a /20 shape), in the smallest list that
// makes; the list's other filters are tested by their own conditions, so a wider key only costs
// visits. A filter nothing takes, or only a list already long, goes on ix.residual, as does a filter
// without keys (a default permit).
std::vector<Placed> place_filters(const LayerKeys& lk, const std::vector<uint32_t>& sharing,
                                  const std::vector<uint32_t>& shape, const ShapeSet& kept, LayerIndex& ix) {
  const size_t n = lk.filters();
  std::vector<Placed> placed;
  placed.reserve(n);
  std::vector<uint32_t> unplaced;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t best = UINT32_MAX;
    for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c)
      if (kept.count(shape[c]) && (best == UINT32_MAX || sharing[c] < sharing[best])) best = c;
    if (best == UINT32_MAX) {
      if (lk.first[i] == lk.first[i + 1]) ix.residual.push_back(i);
      else unplaced.push_back(i);
      continue;
    }
    placed.push_back({IndexKeyHash{}(lk.keys[best]), lk.keys[best], i});
    ix.widened += lk.wider[best];
  }
  if (!unplaced.empty()) {
    std::unordered_map<IndexKey, uint32_t, IndexKeyHash> list_size;
    for (const Placed& p : placed) ++list_size[p.key];
    for (uint32_t i : unplaced) {
      std::optional<IndexKey> best;
      uint32_t best_size = kWidenedMax;
      for (uint32_t c = lk.first[i]; c < lk.first[i + 1]; ++c)
        for (uint32_t s : kept) {
          if (!shape_holds(s, lk.keys[c])) continue;
          const IndexKey cut = widen(lk.keys[c], probe_of_shape(s));
          const auto it = list_size.find(cut);
          const uint32_t size = it == list_size.end() ? 0 : it->second;
          if (size < best_size) best = cut, best_size = size;
        }
      if (!best) {
        ix.residual.push_back(i);
        continue;
      }
      ++list_size[*best];
      placed.push_back({IndexKeyHash{}(*best), *best, i});
      ++ix.widened;
    }
  }
  std::sort(ix.residual.begin(), ix.residual.end());  // (evaluation order)
  return placed;
}

// The lists (equal keys together, each list in evaluation order) and the table that finds them:
// each key within LFP_MAX_PROBE buckets of its home, the table doubled until they are.
void build_lists_and_table(std::vector<Placed>& placed, LayerIndex& ix) {
  std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return a.key == b.key ? a.filter < b.filter : a.key < b.key;
  });
  for (size_t r = 0; r < placed.size(); ++r) {
    if (r == 0 || placed[r].hash != placed[r - 1].hash || !(placed[r].key == placed[r - 1].key)) {
      ix.keys.push_back(placed[r].key);
      ix.list_first.push_back(static_cast<uint32_t>(r));
    }
    ix.members.push_back(placed[r].filter);
  }
  ix.list_first.push_back(static_cast<uint32_t>(placed.size()));
  std::vector<uint32_t> home(ix.keys.size());
  for (size_t j = 0; j < home.size(); ++j) home[j] = static_cast<uint32_t>(lfp_hash(ix.keys[j].v, ix.probe_of(ix.keys[j])));
  for (size_t size = 2;; size *= 2) {
    if (size < 2 * ix.keys.size()) continue;
    ix.table.assign(size, 0);
    bool fits = true;
    for (uint32_t j = 0; j < ix.keys.size() && fits; ++j) {
      size_t d = 0;
      while (d < LFP_MAX_PROBE && ix.table[(home[j] + d) & (size - 1)]) ++d;
      if (d == LFP_MAX_PROBE) fits = false;
      else ix.table[(home[j] + d) & (size - 1)] = j + 1;
    }
    if (fits) return;
  }
}

// The index with the shapes chosen greedily (choose_shapes, then trade_shapes).
LayerIndex index_with(const LayerKeys& lk, const std::vector<uint32_t>& sharing, const std::vector<uint32_t>& shape,
                      bool sparing, size_t max_probes) {
  LayerIndex ix;
  ShapeSet kept = choose_shapes(lk, sharing, shape, sparing, max_probes);
  trade_shapes(lk, shape, max_probes, kept);
  std::vector<Placed> placed = place_filters(lk, sharing, shape, kept, ix);
  if (placed.empty()) return ix;
  ix.shapes.assign(kept.begin(), kept.end());
  build_lists_and_table(placed, ix);
  return ix;
}

}  // namespace

namespace {

// Filter f's conditions, appended to cx.out.bank with its action (LFP_C_RULE_END on the last); returns
// the action (LFP_A_*).
uint8_t compile_filter(const FilterEngine& engine, const Filter& f, uint16_t sub_ordinal, Ctx& cx) {
  KernelPolicy& out = cx.out;
  const size_t start = out.bank.size();
  bool kernel_can = true;
  for (size_t i = 0; i < f.conditions.size(); ++i) {
    const Condition& cond = f.conditions[i];
    Compiled cc;
    if (kernel_supplies(cx.kl, cond.field)) {
      cc = compile_condition(cond, cx);
    } else {
      cc.c.slot = LFP_S_NONE;  // the engine sees EMPTY: the answer is known now
      cc.c.op = LFP_OP_FALSE;
    }
    if (condition_matches(cond, Value{})) cc.c.flags |= LFP_C_IF_EMPTY;
    kernel_can = kernel_can && cc.kernel_can;
    // Conditions are grouped by field (Filter::normalize): a group ends where the field changes.
    if (i + 1 == f.conditions.size() || f.conditions[i + 1].field != cond.field) cc.c.flags |= LFP_C_GROUP_END;
    lfp_entry e{};
    e.c = cc.c;
    out.bank.push_back(e);
  }
  if (out.bank.size() == start) {  // no conditions: always matches
    lfp_entry e{};
    e.c.slot = LFP_S_NONE;
    e.c.op = LFP_OP_TRUE;
    e.c.flags = LFP_C_IF_EMPTY | LFP_C_GROUP_END;
    out.bank.push_back(e);
  }
  // The action, as FilterEngine::arbitrate takes it.
  uint8_t action;
  const bool clear = f.flags & CLEAR_ACTION_RIGHT;
  if (!is_callout(f.action.type)) {
    action = f.action.type == ActionType::PERMIT ? LFP_A_PERMIT : LFP_A_BLOCK;
  } else if (is_redirect_callout(f.action.callout_key) && engine.callout_registered(f.action.callout_key)) {
    // The built-in redirect callout permits; the hook rewrites the destination (redirect.hpp).
    action = LFP_A_PERMIT;
    if (auto t = redirect_target(engine, f, nullptr)) out.redirects[f.id] = *t;
  } else if (engine.callout_registered(f.action.callout_key)) {
    action = LFP_A_USERSPACE;
  } else {
    action = (f.flags & PERMIT_IF_CALLOUT_UNREGISTERED) ? LFP_A_PERMIT : LFP_A_BLOCK;
  }
  if (!kernel_can) action = LFP_A_USERSPACE;
  const uint8_t hard = action == LFP_A_BLOCK || clear;
  for (size_t i = start; i < out.bank.size(); ++i) {
    lfp_cond& c = out.bank[i].c;
    c.sublayer = sub_ordinal;
    c.filter_id = f.id;
    c.action = action;
    c.hard = hard;
  }
  out.bank.back().c.flags |= LFP_C_RULE_END;
  return action;
}

}  // namespace

// Where each compiled filter is (docs/kernel-index.md, "Incremental updates"): what update() needs to
// put a filter in its place, or take one out, without compiling the others.
struct FilterPlace {
  uint64_t weight = 0;  // the engine's evaluation order: sublayer, weight (high first), id
  uint64_t id = 0;
  uint32_t order = 0;   // its list elements' order key
  uint32_t guard = 0;   // its guard's index in the bank
  uint16_t sublayer = 0;  // ordinal, in evaluation order
};
struct EvaluatedBefore {
  bool operator()(const FilterPlace& a, const FilterPlace& b) const {
    if (a.sublayer != b.sublayer) return a.sublayer < b.sublayer;
    if (a.weight != b.weight) return a.weight > b.weight;
    return a.id < b.id;
  }
};
struct LayerPlaces {
  std::vector<FilterPlace> compiled;  // in evaluation order (deleted ones stay: they bound the order keys)
  std::set<FilterPlace, EvaluatedBefore> added;  // by update()
  std::vector<std::pair<Guid, uint16_t>> sublayers;  // the sublayers with filters here, and their ordinals
  uint32_t residual_limit = 0;  // the residual list's length past which a whole compile is due
};
struct PolicyPlaces {
  std::array<LayerPlaces, LFP_KL_COUNT> layers;
  std::vector<std::pair<uint64_t, uint64_t>> compiled_ids;  // (filter id, layer << 32 | index in compiled), by id
  std::unordered_set<uint64_t> deleted;  // compiled filters update() took out
  std::unordered_map<uint64_t, lfp_kl> added_ids;  // filters update() put in, and their layer
};

namespace {

// Every layer's enforced filters from one enumeration (one pass over the engine, not one a layer),
// each layer's in evaluation order, and how many conditions and filters they have.
struct Enumerated {
  std::map<LayerId, std::vector<const Filter*>> by_layer;
  size_t conditions = 0, filters = 0;
};
Enumerated enumerate(const FilterEngine& engine, uint32_t only_flags) {
  Enumerated e;
  FilterTemplate t;
  t.include_disabled = false;
  t.flags_all_set = only_flags;
  for (const Filter* f : engine.filters(t)) {
    e.by_layer[f->layer].push_back(f);
    e.conditions += std::max<size_t>(f->conditions.size(), 1);
    ++e.filters;
  }
  return e;
}

// Layer cx.kl's filters (in evaluation order) appended to the bank: each filter's conditions, and
// its place, guard and index keys; the layer's header says where its conditions are.
void compile_layer(const FilterEngine& engine, const std::vector<const Filter*>& filters, Ctx& cx, LayerPlaces& lp,
                   std::vector<lfp_guard>& guards, LayerKeys& keys) {
  KernelPolicy& out = cx.out;
  const lfp_kl kl = cx.kl;
  lp.compiled.reserve(filters.size());
  // Order keys (i + 1) << shift: as much room between two filters as the layer's size leaves.
  unsigned shift = 16;
  while (shift > 0 && (uint64_t{filters.size()} + 2) << shift >= LFP_ORDER_END) --shift;
  const uint32_t first = static_cast<uint32_t>(out.bank.size());
  size_t last_userspace = SIZE_MAX;  // index in `ends` of the last filter needing user space
  std::vector<size_t> ends;          // bank index of each filter's last condition
  uint16_t sub_ordinal = 0;
  const Guid* prev_sub = nullptr;
  Guid universal = builtin::SUBLAYER_UNIVERSAL;
  for (const Filter* f : filters) {
    const Guid& sub = f->sublayer ? *f->sublayer : universal;
    if (prev_sub && *prev_sub != sub) ++sub_ordinal;
    if (!prev_sub || *prev_sub != sub) lp.sublayers.emplace_back(sub, sub_ordinal);
    prev_sub = &sub;
    const size_t start = out.bank.size();
    const uint8_t action = compile_filter(engine, *f, sub_ordinal, cx);
    if (action == LFP_A_USERSPACE) {
      last_userspace = ends.size();
      ++out.userspace_filters;
      ++out.layer_userspace[kl];
    }
    lp.compiled.push_back({f->effective_weight, f->id, static_cast<uint32_t>((ends.size() + 1) << shift),
                           static_cast<uint32_t>(guards.size()), sub_ordinal});
    guards.push_back(guard_of(out.bank, start, out.bank.size(), sub_ordinal));
    add_index_keys(out.bank, start, out.bank.size(), keys);
    ends.push_back(out.bank.size() - 1);
    ++out.filters;
    ++out.layer_filters[kl];
  }
  for (size_t i = (last_userspace == SIZE_MAX ? 0 : last_userspace); i < ends.size(); ++i)
    out.bank[ends[i]].c.flags |= LFP_C_NO_DEFER_AFTER;
  out.bank[kl].h.first = first;
  out.bank[kl].h.count = static_cast<uint32_t>(out.bank.size()) - first;
}

// The guards, after all conditions: each layer's from a fresh entry, two an entry.
void append_guards(KernelPolicy& out, const std::vector<std::vector<lfp_guard>>& guards, PolicyPlaces& places) {
  for (int k = 0; k < LFP_KL_COUNT; ++k) {
    out.bank[k].h.gfirst = static_cast<uint32_t>(2 * out.bank.size());
    out.bank[k].h.gcount = static_cast<uint32_t>(guards[k].size());
    for (FilterPlace& fp : places.layers[k].compiled) fp.guard += out.bank[k].h.gfirst;
    for (size_t i = 0; i < guards[k].size(); ++i) {
      if (i % 2 == 0) out.bank.emplace_back();
      out.bank.back().g[i % 2] = guards[k][i];
    }
  }
}

// The lists of the index: list elements (a filter's order key and guard index, in evaluation
// order), placed after everything else once the bank's size is known.
struct Lists {
  std::vector<lfp_list_elem> elems;
  // Appends the list of these filters (positions in the layer) and returns where it starts.
  uint32_t add(std::span<const uint32_t> filters, const LayerPlaces& lp) {
    const auto at = static_cast<uint32_t>(elems.size());
    for (uint32_t i : filters) elems.push_back({lp.compiled[i].order, lp.compiled[i].guard});
    return at;
  }
};

// Bucket b's fingerprint in the layer's table (h); returns its entry.
uint32_t set_fingerprint(std::vector<lfp_entry>& bank, const lfp_layer_hdr& h, uint32_t b, uint64_t hash) {
  const uint32_t entry = h.fpfirst + b / LFP_FP_PER_ENTRY;
  bank[entry].fp[b % LFP_FP_PER_ENTRY] = lfp_fingerprint(hash);
  return entry;
}

// Layer k's index in the bank: its residual list, key shapes and hash table (one bucket an entry),
// the lists' positions still relative to the lists' start (append_lists makes them the bank's).
void append_index(KernelPolicy& out, int k, const LayerIndex& ix, LayerPlaces& lp, Lists& lists) {
  out.widened_filters += ix.widened;
  out.bank[k].h.residual = lists.add(ix.residual, lp);
  out.bank[k].h.nresidual = static_cast<uint32_t>(ix.residual.size());
  lp.residual_limit = static_cast<uint32_t>(std::max<size_t>(2 * ix.residual.size(), 64));
  if (ix.table.empty()) return;
  const auto hfirst = static_cast<uint32_t>(out.bank.size());
  const auto fpfirst = static_cast<uint32_t>(hfirst + ix.table.size());
  // (references into the bank end here)
  out.bank.resize(fpfirst + (ix.table.size() + LFP_FP_PER_ENTRY - 1) / LFP_FP_PER_ENTRY);
  lfp_layer_hdr& h = out.bank[k].h;
  h.nprobes = static_cast<uint32_t>(ix.shapes.size());
  for (size_t i = 0; i < ix.shapes.size(); ++i)
    out.bank[LFP_PROBE_ENTRY(k, i)].p.p[i % LFP_PROBES_PER_ENTRY] = probe_of_shape(ix.shapes[i]);
  h.hfirst = hfirst;
  h.hmask = static_cast<uint32_t>(ix.table.size() - 1);
  h.fpfirst = fpfirst;
  for (size_t b = 0; b < ix.table.size(); ++b) {
    if (!ix.table[b]) continue;
    const uint32_t j = ix.table[b] - 1;
    const std::span<const uint32_t> filters(ix.members.data() + ix.list_first[j], ix.list_first[j + 1] - ix.list_first[j]);
    lfp_bucket& bk = out.bank[hfirst + b].b;
    std::memcpy(bk.v, ix.keys[j].v, sizeof bk.v);
    bk.probe = ix.probe_of(ix.keys[j]);
    bk.used = 1;
    bk.list = lists.add(filters, lp);
    bk.count = static_cast<uint32_t>(filters.size());
    bk.first = lists.elems[bk.list];
    set_fingerprint(out.bank, h, static_cast<uint32_t>(b), lfp_hash(bk.v, bk.probe));
    ++out.index_keys;
  }
}

// The lists at the bank's end, eight elements an entry; list positions become bank-relative.
void append_lists(KernelPolicy& out, const Lists& lists) {
  const auto lists_at = static_cast<uint32_t>(LFP_LIST_PER_ENTRY * out.bank.size());
  for (int k = 0; k < LFP_KL_COUNT; ++k) {
    lfp_layer_hdr& h = out.bank[k].h;
    h.residual += lists_at;
    for (uint32_t b = 0; h.nprobes && b <= h.hmask; ++b) {
      lfp_bucket& bk = out.bank[h.hfirst + b].b;
      if (bk.used) bk.list += lists_at;
    }
    out.residual_filters += h.nresidual;
  }
  const size_t first_list_entry = out.bank.size();
  out.bank.resize(first_list_entry + (lists.elems.size() + LFP_LIST_PER_ENTRY - 1) / LFP_LIST_PER_ENTRY);
  for (size_t i = 0; i < lists.elems.size(); ++i)
    out.bank[first_list_entry + i / LFP_LIST_PER_ENTRY].l[i % LFP_LIST_PER_ENTRY] = lists.elems[i];
}

}  // namespace

KernelPolicy compile(const FilterEngine& engine, const AppResolver& apps, uint32_t user_set_base, uint32_t only_flags) {
  KernelPolicy out;
  out.bank.resize(LFP_HEADER_ENTRIES);  // each layer's header, then its key shapes
  Ctx cx{apps, out, user_set_base};
  auto places = std::make_shared<PolicyPlaces>();
  Enumerated all = enumerate(engine, only_flags);
  // The bank at its likely size, allocated once: conditions, guards, a hash bucket or two and a list
  // element a filter (grown by doubling, a million filters' bank was copied and faulted in twice over).
  out.bank.reserve(LFP_HEADER_ENTRIES + all.conditions + all.filters / 2 + 2 * all.filters + all.filters / 16 +
                   all.filters / LFP_LIST_PER_ENTRY + 64);
  std::vector<std::vector<lfp_guard>> guards(LFP_KL_COUNT);
  std::vector<LayerKeys> keys(LFP_KL_COUNT);
  for (int k = 0; k < LFP_KL_COUNT; ++k) {
    cx.kl = static_cast<lfp_kl>(k);
    compile_layer(engine, all.by_layer[engine_layer(cx.kl)], cx, places->layers[k], guards[k], keys[k]);
  }
  append_guards(out, guards, *places);
  Lists lists;
  lists.elems.reserve(all.filters);  // (each filter is in one list, give or take a widened one)
  for (int k = 0; k < LFP_KL_COUNT; ++k) {
    const LayerIndex ix = build_index(keys[k]);
    keys[k] = {};
    append_index(out, k, ix, places->layers[k], lists);
  }
  append_lists(out, lists);
  // A policy compiled in part (lfpd --boot), or with user sets (whose ids differ between the banks),
  // is only ever compiled whole.
  if (only_flags == 0 && out.user_sets.empty()) {
    for (int k = 0; k < LFP_KL_COUNT; ++k)
      for (uint32_t i = 0; i < places->layers[k].compiled.size(); ++i)
        places->compiled_ids.emplace_back(places->layers[k].compiled[i].id, uint64_t{static_cast<uint32_t>(k)} << 32 | i);
    std::sort(places->compiled_ids.begin(), places->compiled_ids.end());
    out.places = std::move(places);
  }
  return out;
}

namespace {

// Key shape i of layer kl.
lfp_probe probe_at(const std::vector<lfp_entry>& bank, int kl, uint32_t i) {
  return bank.at(LFP_PROBE_ENTRY(kl, i)).p.p[i % LFP_PROBES_PER_ENTRY];
}

// A guard that never holds: a deleted filter's (its value is outside [lo, hi], and when the hook has no
// value, IF_EMPTY is clear).
lfp_guard dead_guard(lfp_guard g) {
  g.slot = LFP_S_PROTOCOL;
  g.lo = 1, g.hi = 0, g.high = 0;
  g.flags = 0;
  return g;
}

// The last condition of the filter whose guard is `guard`.
const lfp_cond& rule_end(const std::vector<lfp_entry>& bank, uint32_t guard) {
  size_t i = bank[guard / 2].g[guard % 2].cond;
  while (!(bank[i].c.flags & LFP_C_RULE_END)) ++i;
  return bank[i].c;
}

// The bucket of key k (probe `probe`) in layer h's table: the one that holds it, else the first free one
// on its probe run (a look-up stops at a free bucket, so taking it keeps every other key's run); none
// when the run is full.
std::optional<uint32_t> bucket_of(const std::vector<lfp_entry>& bank, const lfp_layer_hdr& h, const IndexKey& k,
                                  uint8_t probe) {
  const uint64_t home = lfp_hash(k.v, probe);
  for (uint32_t d = 0; d < LFP_MAX_PROBE; ++d) {
    const uint32_t b = h.hfirst + static_cast<uint32_t>((home + d) & h.hmask);
    const lfp_bucket& bk = bank[b].b;
    if (!bk.used || (bk.probe == probe && std::memcmp(bk.v, k.v, sizeof bk.v) == 0)) return b;
  }
  return std::nullopt;
}

// Why a change cannot go in place (none: it went in, or there was nothing to do).
using Refusal = std::optional<std::string>;

void note_written(std::vector<uint32_t>& written, size_t from, size_t to) {
  for (size_t e = from; e < to; ++e) written.push_back(static_cast<uint32_t>(e));
}

// A deleted filter's guard becomes one that never holds: one entry written.
Refusal delete_in_place(KernelPolicy& pol, uint64_t id, std::vector<uint32_t>& written) {
  PolicyPlaces& pp = *pol.places;
  uint32_t guard;
  lfp_kl kl;
  if (auto a = pp.added_ids.find(id); a != pp.added_ids.end()) {
    kl = a->second;
    auto& added = pp.layers[kl].added;
    const auto it = std::find_if(added.begin(), added.end(), [&](const FilterPlace& p) { return p.id == id; });
    if (it == added.end()) return "lost track of a filter";
    guard = it->guard;
    added.erase(it);
    pp.added_ids.erase(a);
  } else {
    const auto c = std::lower_bound(pp.compiled_ids.begin(), pp.compiled_ids.end(), std::pair<uint64_t, uint64_t>{id, 0});
    if (c == pp.compiled_ids.end() || c->first != id || pp.deleted.count(id)) return {};  // (not compiled: disabled, a layer the kernel has not)
    kl = static_cast<lfp_kl>(c->second >> 32);
    guard = pp.layers[kl].compiled[static_cast<uint32_t>(c->second)].guard;
    pp.deleted.insert(id);
  }
  if (rule_end(pol.bank, guard).action == LFP_A_USERSPACE) {
    --pol.userspace_filters;
    --pol.layer_userspace[kl];
  }
  lfp_guard& g = pol.bank[guard / 2].g[guard % 2];
  g = dead_guard(g);
  written.push_back(guard / 2);
  --pol.filters;
  --pol.layer_filters[kl];
  return {};
}

// An added filter's order key, fp.order: between its neighbours' (compiled and added before), a
// sixteenth of the way (filters added one after another, the usual run, leave room for more).
// `next` becomes the filter evaluated after it (none: it is the layer's last).
Refusal order_between(const LayerPlaces& lp, const PolicyPlaces& pp, FilterPlace& fp, const FilterPlace*& next) {
  const auto ci = std::upper_bound(lp.compiled.begin(), lp.compiled.end(), fp, EvaluatedBefore{});
  if (ci != lp.compiled.begin() && std::prev(ci)->id == fp.id && !pp.deleted.count(fp.id)) return "a filter added twice";
  uint64_t lo = ci == lp.compiled.begin() ? 0 : std::prev(ci)->order;
  uint64_t hi = ci == lp.compiled.end() ? LFP_ORDER_END : ci->order;
  next = ci == lp.compiled.end() ? nullptr : &*ci;
  const auto ai = lp.added.upper_bound(fp);
  if (ai != lp.added.end() && ai->order < hi) hi = ai->order, next = &*ai;
  if (ai != lp.added.begin() && std::prev(ai)->order > lo) lo = std::prev(ai)->order;
  if (hi - lo < 2) return "no room left in the evaluation order there";
  fp.order = static_cast<uint32_t>(lo + std::max<uint64_t>(1, (hi - lo) / 16));
  return {};
}

// The bucket an added filter (its conditions bank[start, end)) joins, as the compiler would choose
// it: of the layer's probe shapes, the bucket of its key as it is or cut to the shape whose list is
// shortest; a new key takes its free bucket. None: no key of a shape the layer probes.
std::optional<uint32_t> bucket_for(KernelPolicy& pol, lfp_kl kl, size_t start, size_t end, std::vector<uint32_t>& written) {
  LayerKeys lk;
  add_index_keys(pol.bank, start, end, lk);
  const lfp_layer_hdr hdr = pol.bank[kl].h;
  const auto size = [&](uint32_t b) { return pol.bank[b].b.used ? pol.bank[b].b.count : 0; };
  std::optional<uint32_t> bucket;
  std::optional<IndexKey> key;
  uint8_t probe = 0;
  for (const IndexKey& k : lk.keys)
    for (uint32_t i = 0; i < hdr.nprobes; ++i) {
      const lfp_probe p = probe_at(pol.bank, kl, i);
      if (!shape_holds(shape_id(p), k)) continue;
      const IndexKey cut = widen(k, p);
      const std::optional<uint32_t> b = bucket_of(pol.bank, hdr, cut, static_cast<uint8_t>(i));
      if (b && (!bucket || size(*b) < size(*bucket))) bucket = b, key = cut, probe = static_cast<uint8_t>(i);
    }
  if (bucket && !pol.bank[*bucket].b.used) {
    lfp_bucket& bk = pol.bank[*bucket].b;
    std::memcpy(bk.v, key->v, sizeof bk.v);
    bk.probe = probe;
    bk.used = 1;
    bk.count = bk.list = 0;
    written.push_back(set_fingerprint(pol.bank, hdr, *bucket - hdr.hfirst, lfp_hash(bk.v, probe)));
    ++pol.index_keys;
  }
  return bucket;
}

// A copy of the list (the bucket's, or else layer kl's residual one) with the filter fp in place,
// past the bank's end; the bucket (or the layer's header) points at it.
void insert_in_list(KernelPolicy& pol, lfp_kl kl, std::optional<uint32_t> bucket, const FilterPlace& fp,
                    std::vector<uint32_t>& written) {
  const uint32_t pointer_entry = bucket ? *bucket : static_cast<uint32_t>(kl);
  uint32_t& list = bucket ? pol.bank[*bucket].b.list : pol.bank[kl].h.residual;
  uint32_t& count = bucket ? pol.bank[*bucket].b.count : pol.bank[kl].h.nresidual;
  std::vector<lfp_list_elem> copy;
  copy.reserve(count + 1);
  for (uint32_t i = 0; i < count; ++i)
    copy.push_back(pol.bank[(list + i) / LFP_LIST_PER_ENTRY].l[(list + i) % LFP_LIST_PER_ENTRY]);
  const lfp_list_elem elem{fp.order, fp.guard};
  copy.insert(std::upper_bound(copy.begin(), copy.end(), elem, [](const auto& a, const auto& b) { return a.order < b.order; }),
              elem);
  list = static_cast<uint32_t>(pol.bank.size() * LFP_LIST_PER_ENTRY);
  count = static_cast<uint32_t>(copy.size());
  if (bucket) pol.bank[*bucket].b.first = copy.front();
  const size_t at = pol.bank.size();
  pol.bank.resize(at + (copy.size() + LFP_LIST_PER_ENTRY - 1) / LFP_LIST_PER_ENTRY);  // (list, count: stale now)
  for (size_t i = 0; i < copy.size(); ++i) pol.bank[at + i / LFP_LIST_PER_ENTRY].l[i % LFP_LIST_PER_ENTRY] = copy[i];
  note_written(written, at, pol.bank.size());
  written.push_back(pointer_entry);
}

// An added filter: its conditions and guard past the bank's end, its order key between its
// neighbours', and a copy of the list it joins with it in place.
Refusal add_in_place(KernelPolicy& pol, const FilterEngine& engine, const AppResolver& apps, uint64_t id,
                     std::vector<uint32_t>& written) {
  PolicyPlaces& pp = *pol.places;
  const Filter* f = engine.filter_by_id(id);
  if (!f || (f->flags & DISABLED)) return {};  // (added and deleted again; disabled filters are not compiled)
  const std::optional<lfp_kl> kl = kernel_layer(f->layer);
  if (!kl) return {};
  if (pp.added_ids.count(id)) return "a filter added twice";
  LayerPlaces& lp = pp.layers[*kl];
  if (pol.layer_filters[*kl] == 0) return "a layer gets its first filters (its hooks are linked)";
  const Guid sub = f->sublayer ? *f->sublayer : builtin::SUBLAYER_UNIVERSAL;
  const auto s = std::find_if(lp.sublayers.begin(), lp.sublayers.end(), [&](const auto& p) { return p.first == sub; });
  if (s == lp.sublayers.end()) return "a sublayer gets its first filter at the layer";
  FilterPlace fp{f->effective_weight, f->id, 0, 0, s->second};
  const FilterPlace* next = nullptr;
  if (Refusal why = order_between(lp, pp, fp, next)) return why;

  Ctx cx{apps, pol, 0};
  cx.kl = *kl;
  const size_t sets = pol.user_sets.size(), redirects = pol.redirects.size();
  const size_t start = pol.bank.size();
  const uint8_t action = compile_filter(engine, *f, fp.sublayer, cx);
  if (pol.user_sets.size() != sets) return "a filter with a user set";
  if (pol.redirects.size() != redirects) return "a redirect filter";
  if (action == LFP_A_USERSPACE) return "a filter user space decides (earlier filters stop no more at a hard decision)";
  // (LFP_C_NO_DEFER_AFTER: set from the next filter on; a deleted callout's leaves the walk going on, which is safe.)
  if (!next || (rule_end(pol.bank, next->guard).flags & LFP_C_NO_DEFER_AFTER &&
                rule_end(pol.bank, next->guard).action != LFP_A_USERSPACE))
    pol.bank.back().c.flags |= LFP_C_NO_DEFER_AFTER;
  const size_t end = pol.bank.size();
  pol.bank.emplace_back();
  pol.bank.back().g[0] = guard_of(pol.bank, start, end, fp.sublayer);
  pol.bank.back().g[1] = dead_guard(pol.bank.back().g[0]);  // (unused)
  fp.guard = static_cast<uint32_t>(2 * (pol.bank.size() - 1));
  note_written(written, start, pol.bank.size());

  const std::optional<uint32_t> bucket = pol.bank[*kl].h.nprobes ? bucket_for(pol, *kl, start, end, written) : std::nullopt;
  if (!bucket) {
    lfp_layer_hdr& h = pol.bank[*kl].h;
    if (h.nresidual + 1 > lp.residual_limit) return "the layer's residual list has grown past twice its length";
    h.listed = !h.nprobes;  // (a layer walked by its guards is walked by its list from now on: all its filters)
    ++pol.residual_filters;
  }
  insert_in_list(pol, *kl, bucket, fp, written);
  lp.added.insert(fp);
  pp.added_ids.emplace(id, *kl);
  ++pol.filters;
  ++pol.layer_filters[*kl];
  return {};
}

}  // namespace

UpdateResult update(KernelPolicy& pol, const FilterEngine& engine, const FilterChanges& changes, const AppResolver& apps,
                    size_t capacity) {
  UpdateResult r;
  auto whole = [&](std::string why) {
    r.applied = false;
    r.why_whole = std::move(why);
    r.written.clear();
    return r;
  };
  if (!pol.places) return whole("the policy in force is compiled whole only (boot-time filters, or user sets)");
  if (changes.other) return whole("objects other than filters changed");
  if (changes.added.size() + changes.deleted.size() > kInPlaceChangesMax)
    return whole("more than " + std::to_string(kInPlaceChangesMax) + " filters changed");
  for (uint64_t id : changes.deleted)
    if (Refusal why = delete_in_place(pol, id, r.written)) return whole(std::move(*why));
  for (uint64_t id : changes.added)
    if (Refusal why = add_in_place(pol, engine, apps, id, r.written)) return whole(std::move(*why));
  if (pol.bank.size() > capacity) return whole("the banks have no room left for what it adds");
  std::sort(r.written.begin(), r.written.end());
  r.written.erase(std::unique(r.written.begin(), r.written.end()), r.written.end());
  r.applied = true;
  return r;
}

size_t index_candidates(const KernelPolicy& policy, lfp_kl kl, const lfp_values& v) {
  const lfp_layer_hdr& h = policy.bank.at(kl).h;
  if (!h.nprobes) return h.listed ? h.nresidual : h.gcount;
  size_t n = h.nresidual;
  for (uint32_t i = 0; i < h.nprobes; ++i) {
    IndexKey k;
    k.shape = probe_at(policy.bank, kl, i);
    bool present = true;
    for (int f = 0; f < 2 && k.shape.slot[f] != LFP_S_NONE; ++f) {
      const uint8_t slot = k.shape.slot[f];
      present = present && slot < LFP_NSLOTS && (v.present & (1u << slot));
      if (present) k.v[f][0] = v.v[slot][0], k.v[f][1] = v.v[slot][1];
    }
    if (!present) continue;
    k = widen(k, k.shape);  // (cut to the shape's lengths)
    const uint64_t home = lfp_hash(k.v, i);
    for (uint32_t d = 0; d < LFP_MAX_PROBE; ++d) {
      const lfp_bucket& b = policy.bank.at(h.hfirst + ((home + d) & h.hmask)).b;
      if (!b.used) break;
      if (b.probe == i && std::memcmp(b.v, k.v, sizeof b.v) == 0) {
        n += b.count;
        break;
      }
    }
  }
  return n;
}

void to_field_values(lfp_kl kl, const lfp_values& v, const std::map<AppKey, std::string>& app_paths, Token& token,
                     FieldValues& out) {
  out.clear();
  const LayerInfo& li = layer_info(engine_layer(kl));
  for (FieldId f : li.fields) {
    const int s = slot_of(kl, f);
    if (!kernel_supplies(kl, f) || !(v.present >> s & 1)) continue;
    const uint64_t h = v.v[s][0], l = v.v[s][1];
    switch (field_type(f, li.family)) {
      case DataType::BYTE_ARRAY16_TYPE: {
        Ip6 a;
        for (int i = 0; i < 8; ++i) a[i] = static_cast<uint8_t>(h >> (56 - 8 * i));
        for (int i = 0; i < 8; ++i) a[8 + i] = static_cast<uint8_t>(l >> (56 - 8 * i));
        out.set(f, Value::ip6(a));
        break;
      }
      case DataType::BYTE_ARRAY6_TYPE: {
        Mac m;
        for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(l >> (40 - 8 * i));
        out.set(f, Value::mac(m));
        break;
      }
      case DataType::UINT8: out.set(f, Value::uint8(static_cast<uint8_t>(l))); break;
      case DataType::UINT16: out.set(f, Value::uint16(static_cast<uint16_t>(l))); break;
      case DataType::UINT32: out.set(f, Value::uint32(static_cast<uint32_t>(l))); break;
      case DataType::UINT64: out.set(f, Value::uint64(l)); break;
      case DataType::BYTE_BLOB_TYPE: {  // ALE_APP_ID
        static const std::string unknown = "(an executable no condition names)";
        auto it = app_paths.find(AppKey{h, l});
        out.set(f, Value::blob(it == app_paths.end() ? unknown : it->second));
        break;
      }
      case DataType::TOKEN_INFORMATION_TYPE:  // ALE_USER_ID
        token.uid = v.uid;
        token.gids = {v.gid};
        out.set(f, Value::user(token));
        break;
      default: break;
    }
  }
}

}  // namespace lfp::datapath
