// SPDX-License-Identifier: MIT
// The ALE policy compiled for the kernel must give the engine's answer. The kernel's own evaluator
// (lfp_eval in lfp_classify.bpf.c, run by BPF_PROG_TEST_RUN) is checked against FilterEngine::classify on
// random policies and random values, on every kernel layer.
#include <unistd.h>

#include <map>
#include <random>

#include <gtest/gtest.h>

#include "lfp/datapath/compile.hpp"
#include "classbench_kernel.hpp"
#include "lfp/datapath/kernel.hpp"

namespace lfp::datapath {
namespace {

Condition cond(FieldId f, MatchType m, ConditionValue v) { return Condition{f, m, std::move(v)}; }
ConditionValue u(DataType t, uint64_t x) { return ConditionValue::uint(t, x); }
ConditionValue blob(const std::string& s) { return ConditionValue::plain(OwnedValue{DataType::BYTE_BLOB_TYPE, 0, {}, s}); }

AppKey fake_app(const std::string& path) { return AppKey{7, std::hash<std::string>{}(path) & 0xffff}; }

TEST(DatapathCompile, LayoutFollowsEvaluationOrder) {
  FilterEngine e;
  Filter f;
  f.display.name = "block curl on web ports";
  f.layer = LayerId::ALE_AUTH_CONNECT_V4;
  f.action.type = ActionType::BLOCK;
  f.conditions = {cond(FieldId::IP_REMOTE_PORT, MatchType::EQUAL, u(DataType::UINT16, 80)),
                  cond(FieldId::IP_REMOTE_PORT, MatchType::EQUAL, u(DataType::UINT16, 443)),
                  cond(FieldId::ALE_APP_ID, MatchType::EQUAL, blob("/usr/bin/curl"))};
  const uint64_t block_id = e.add_filter(f);
  Filter p;
  p.display.name = "permit *curl";
  p.layer = LayerId::ALE_AUTH_CONNECT_V4;
  p.action.type = ActionType::PERMIT;
  p.weight = Weight::explicit_weight(1);  // below the block's automatic weight
  p.conditions = {cond(FieldId::ALE_APP_ID, MatchType::PREFIX, blob("curl"))};  // the kernel cannot
  const uint64_t permit_id = e.add_filter(p);

  KernelPolicy k = compile(e, fake_app, 1);
  const lfp_layer_hdr& h = k.bank[LFP_KL_CONNECT_V4].h;
  ASSERT_EQ(h.first, unsigned{LFP_HEADER_ENTRIES});
  ASSERT_EQ(h.count, 4u);  // 3 conditions, then 1
  const lfp_cond* c = &k.bank[h.first].c;
  EXPECT_EQ(c[0].slot, LFP_S_REMOTE_PORT);
  EXPECT_EQ(c[0].flags & LFP_C_GROUP_END, 0);  // 80 OR 443
  EXPECT_TRUE(c[1].flags & LFP_C_GROUP_END);
  EXPECT_TRUE(c[2].flags & LFP_C_RULE_END);
  EXPECT_EQ(c[2].filter_id, block_id);
  EXPECT_EQ(c[2].action, LFP_A_BLOCK);
  EXPECT_EQ(c[2].lo[1], fake_app("/usr/bin/curl").ino);
  // A guard a filter: the block's is its app (the ports are two conditions on one field), the
  // permit has none (a PREFIX is not a range); each names where its filter's conditions begin.
  ASSERT_EQ(h.gcount, 2u);
  const lfp_guard* g = k.bank[h.gfirst / 2].g;
  EXPECT_EQ(g[0].cond, h.first);
  EXPECT_EQ(g[0].slot, LFP_S_APP);
  EXPECT_EQ(g[0].lo, fake_app("/usr/bin/curl").ino);
  EXPECT_EQ(g[0].hi, g[0].lo);
  EXPECT_EQ(g[1].cond, h.first + 3);
  EXPECT_EQ(g[1].slot, LFP_S_NONE);
  EXPECT_EQ(c[3].filter_id, permit_id);
  EXPECT_EQ(c[3].action, LFP_A_USERSPACE);
  EXPECT_EQ(c[3].op, LFP_OP_TRUE);
  EXPECT_FALSE(c[2].flags & LFP_C_NO_DEFER_AFTER);  // the user-space filter follows
  EXPECT_TRUE(c[3].flags & LFP_C_NO_DEFER_AFTER);
  EXPECT_EQ(k.userspace_filters, 1u);
  EXPECT_EQ(k.bank[LFP_KL_RECV_ACCEPT_V4].h.count, 0u);
}

// ---------------------------------------------------------------------------------------------
// Random policies through the real BPF evaluator.

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}
  uint64_t r(uint64_t n) { return rng() % n; }

  // Real files, so the kernel path's stat() gives distinct identities; and one that does not exist.
  const std::vector<std::string> apps = {"/usr/bin/env", "/usr/bin/true", "/usr/bin/false", "/nonexistent/lfp-app"};

  uint64_t v4() { return 0x0a000000u | r(4) << 8 | r(4); }
  Ip6 v6() {
    Ip6 a = *parse_ip6("fd00::");
    a[7] = static_cast<uint8_t>(r(3));
    a[15] = static_cast<uint8_t>(r(4));
    return a;
  }
  uint64_t port() { return r(5) * 100; }
  OwnedValue mac() {
    OwnedValue m{DataType::BYTE_ARRAY6_TYPE};
    m.bytes[0] = 2;
    m.bytes[5] = static_cast<uint8_t>(r(4));
    return m;
  }

  ConditionValue addr(bool six, bool mask) {
    if (six) {
      if (mask) return ConditionValue::v6_prefix_of(v6(), static_cast<unsigned>(r(129)));
      OwnedValue o{DataType::BYTE_ARRAY16_TYPE};
      o.bytes = v6();
      return ConditionValue::plain(o);
    }
    return mask ? ConditionValue::v4_prefix(static_cast<uint32_t>(v4()), static_cast<unsigned>(20 + r(13)))
                : u(DataType::UINT32, v4());
  }

  Condition number(FieldId f, DataType t, uint64_t x, uint64_t y) {
    static const MatchType kinds[] = {MatchType::EQUAL,          MatchType::NOT_EQUAL,    MatchType::GREATER,
                                      MatchType::LESS,           MatchType::GREATER_OR_EQUAL, MatchType::LESS_OR_EQUAL,
                                      MatchType::RANGE,          MatchType::FLAGS_ALL_SET, MatchType::FLAGS_ANY_SET,
                                      MatchType::FLAGS_NONE_SET};
    MatchType m = kinds[r(std::size(kinds))];
    if (m == MatchType::RANGE) return cond(f, m, ConditionValue::range({t, std::min(x, y)}, {t, std::max(x, y)}));
    return cond(f, m, u(t, x));
  }

  Condition condition(LayerId layer) {
    const bool six = layer_info(layer).family == IpFamily::V6;
    for (;;) {
      Condition c;
      switch (r(12)) {
        case 0:
        case 1: {
          FieldId f = r(2) ? FieldId::IP_REMOTE_ADDRESS : FieldId::IP_LOCAL_ADDRESS;
          if (r(4) == 0 && !six) {
            c = number(f, DataType::UINT32, v4(), v4());
          } else if (r(3) == 0) {
            OwnedValue lo{six ? DataType::BYTE_ARRAY16_TYPE : DataType::UINT32}, hi = lo;
            if (six) lo.bytes = v6(), hi.bytes = v6(); else lo.u = v4(), hi.u = v4();
            if (six ? lo.bytes > hi.bytes : lo.u > hi.u) std::swap(lo, hi);
            c = cond(f, MatchType::RANGE, ConditionValue::range(lo, hi));
          } else {
            c = cond(f, r(3) ? MatchType::EQUAL : MatchType::NOT_EQUAL, addr(six, r(2)));
          }
          break;
        }
        case 2: c = number(r(2) ? FieldId::IP_REMOTE_PORT : FieldId::IP_LOCAL_PORT, DataType::UINT16, port(), port()); break;
        case 3: c = number(FieldId::IP_PROTOCOL, DataType::UINT8, r(2) ? 6 : 17, 17); break;
        case 4: c = number(FieldId::FLAGS, DataType::UINT32, 1u << r(6), 0); break;
        case 5: {
          MatchType m = r(6) == 0 ? MatchType::PREFIX : r(3) ? MatchType::EQUAL : MatchType::NOT_EQUAL;
          c = cond(FieldId::ALE_APP_ID, m, blob(m == MatchType::PREFIX ? "true" : apps[r(apps.size())]));
          break;
        }
        case 6: {
          UserSet s;
          if (r(2)) s.uids.push_back(static_cast<uint32_t>(r(3)));
          if (r(2) || s.uids.empty()) s.gids.push_back(static_cast<uint32_t>(100 + r(3)));
          c = cond(FieldId::ALE_USER_ID, r(4) ? MatchType::EQUAL : MatchType::NOT_EQUAL, ConditionValue::user_set(s));
          break;
        }
        case 7: c = number(FieldId::IP_LOCAL_INTERFACE, DataType::UINT64, 1 + r(3), 2); break;
        case 10: {  // the MAC frame layers'
          const FieldId macs[] = {FieldId::MAC_LOCAL_ADDRESS, FieldId::MAC_REMOTE_ADDRESS};
          switch (r(4)) {
            case 0: c = cond(macs[r(2)], r(3) ? MatchType::EQUAL : MatchType::NOT_EQUAL, ConditionValue::plain(mac())); break;
            case 1: c = number(r(2) ? FieldId::ETHER_TYPE : FieldId::VLAN_ID, DataType::UINT16, port(), port()); break;
            case 2: c = number(r(2) ? FieldId::MAC_LOCAL_ADDRESS_TYPE : FieldId::MAC_REMOTE_ADDRESS_TYPE, DataType::UINT8,
                               1 + r(4), 1 + r(4)); break;
            default: c = number(FieldId::INTERFACE, DataType::UINT64, 1 + r(3), 2); break;
          }
          break;
        }
        case 9: {  // the packet layers' own fields
          static const FieldId addrs[] = {FieldId::IP_SOURCE_ADDRESS, FieldId::IP_DESTINATION_ADDRESS,
                                          FieldId::EMBEDDED_REMOTE_ADDRESS};
          static const FieldId u16s[] = {FieldId::ICMP_TYPE, FieldId::ICMP_CODE, FieldId::EMBEDDED_LOCAL_PORT,
                                         FieldId::EMBEDDED_REMOTE_PORT};
          static const FieldId types[] = {FieldId::IP_LOCAL_ADDRESS_TYPE, FieldId::IP_DESTINATION_ADDRESS_TYPE,
                                          FieldId::EMBEDDED_LOCAL_ADDRESS_TYPE};
          static const FieldId ifaces[] = {FieldId::SOURCE_INTERFACE_INDEX, FieldId::DESTINATION_INTERFACE_INDEX,
                                           FieldId::INTERFACE_INDEX, FieldId::IP_ARRIVAL_INTERFACE};
          switch (r(6)) {
            case 0: c = cond(addrs[r(3)], r(3) ? MatchType::EQUAL : MatchType::NOT_EQUAL, addr(six, r(2))); break;
            case 1: c = number(u16s[r(4)], DataType::UINT16, port(), port()); break;
            case 2: c = number(types[r(3)], DataType::UINT8, 1 + r(4), 1 + r(4)); break;
            case 3: {
              const FieldId f = ifaces[r(4)];
              const DataType t = f == FieldId::IP_ARRIVAL_INTERFACE ? DataType::UINT64 : DataType::UINT32;
              c = number(f, t, 1 + r(3), 1 + r(3));
              break;
            }
            case 4: c = number(FieldId::EMBEDDED_PROTOCOL, DataType::UINT8, r(2) ? 6 : 17, 17); break;
            default:
              c = r(2) ? number(FieldId::DIRECTION, DataType::UINT32, r(2), 1)
                       : number(FieldId::IP_FORWARD_INTERFACE, DataType::UINT64, 1 + r(3), 2);
              break;
          }
          break;
        }
        case 8:  // fields no hook supplies: the engine sees them EMPTY
          c = r(2) ? cond(FieldId::IP_LOCAL_ADDRESS_TYPE, MatchType::EQUAL, u(DataType::UINT8, 1))
                   : cond(FieldId::IP_LOCAL_ADDRESS_TYPE, r(2) ? MatchType::EQUAL : MatchType::NOT_EQUAL, ConditionValue{});
          break;
        default: c = cond(FieldId::IP_PROTOCOL, r(2) ? MatchType::EQUAL : MatchType::NOT_EQUAL, ConditionValue{}); break;
      }
      if (layer_has_field(layer_info(layer), c.field)) return c;
    }
  }

  // Values as the hook fills them: each field the kernel supplies at this layer, in its type's range.
  lfp_values values(lfp_kl kl) {
    const LayerInfo& li = layer_info(engine_layer(kl));
    const bool six = li.family == IpFamily::V6;
    lfp_values v{};
    auto put = [&](int slot, uint64_t h, uint64_t l) {
      v.v[slot][0] = h, v.v[slot][1] = l;
      v.present |= 1u << slot;
    };
    for (FieldId f : li.fields) {
      const int s = kernel_slot(kl, f);
      if (s == LFP_S_NONE || (v.present >> s & 1)) continue;  // (a slot two fields share: the first fills it)
      if (r(8) == 0) continue;  // sometimes the hook has no value (an unbound local address, say)
      switch (f) {
        case FieldId::ALE_APP_ID: {
          AppKey a = r(5) == 0 ? AppKey{0, 0} : resolve_app(apps[r(apps.size())]);
          put(s, a.dev, a.ino);
          continue;
        }
        case FieldId::ALE_USER_ID: put(s, 0, 0); continue;
        case FieldId::IP_PROTOCOL:
        case FieldId::EMBEDDED_PROTOCOL: put(s, 0, r(2) ? 6 : 17); continue;
        case FieldId::FLAGS: put(s, 0, r(64)); continue;
        case FieldId::DIRECTION: put(s, 0, r(2)); continue;
        default: break;
      }
      const DataType t = field_type(f, li.family);
      if (t == DataType::BYTE_ARRAY6_TYPE) {
        const OwnedValue m = mac();
        uint64_t x = 0;
        for (int i = 0; i < 6; ++i) x = x << 8 | m.bytes[i];
        put(s, 0, x);
      } else if (t == DataType::BYTE_ARRAY16_TYPE) {
        Ip6 a = v6();
        uint64_t h = 0, l = 0;
        for (int i = 0; i < 8; ++i) h = h << 8 | a[i], l = l << 8 | a[8 + i];
        put(s, h, l);
      } else if (t == DataType::UINT32 && !six && field_name(f).find("ADDRESS") != std::string_view::npos &&
                 field_name(f).find("TYPE") == std::string_view::npos) {
        put(s, 0, v4());
      } else if (t == DataType::UINT16) {
        put(s, 0, port());
      } else if (t == DataType::UINT8) {
        put(s, 0, 1 + r(4));  // the address types
      } else {
        put(s, 0, 1 + r(3));  // interfaces
      }
    }
    v.uid = static_cast<uint32_t>(r(3));
    v.gid = static_cast<uint32_t>(100 + r(3));
    return v;
  }
};

class Continue : public CalloutDriver {
  void classify(const CalloutClassifyIn&, CalloutClassifyOut& out) override { out.verdict = CalloutVerdict::CONTINUE; }
};

// The kernel's verdict and the engine's answer on the same values at layer kl.
struct Answers {
  lfp_verdict kernel;
  ClassifyResult engine;
};
Answers both_answer(KernelPath& k, const FilterEngine& e, const KernelPolicy& pol, lfp_kl kl, const lfp_values& v) {
  Answers a;
  a.kernel = k.evaluate(kl, v);
  Token token;
  FieldValues fv;
  to_field_values(kl, v, pol.apps, token, fv);
  a.engine = e.classify(engine_layer(kl), fv);
  return a;
}

// Random policies of about `per_layer` filters a layer, each checked on random values at every layer.
// Small layers are walked whole; from kIndexMin filters on, a decision visits only the filters its
// values' buckets and the residual list hold (docs/kernel-index.md).
void check_random_policies(KernelPath& k, uint64_t seeds, int per_layer, bool expect_index) {
  size_t checked = 0, blocks = 0, permits = 0, defers = 0, engine_defers = 0, indexed = 0;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    Gen g(seed);
    FilterEngine e;
    std::vector<std::optional<Guid>> subs = {std::nullopt};
    for (int i = 0; i < 3; ++i) {
      Sublayer s;
      s.display.name = "s" + std::to_string(i);
      s.weight = static_cast<uint16_t>(g.r(3) * 0x4000);
      subs.push_back(e.add_sublayer(s));
    }
    std::map<LayerId, std::vector<Guid>> callouts;  // per layer: [0] registered, [1] not
    for (int kl = 0; kl < LFP_KL_COUNT; ++kl) {
      for (int i = 0; i < 2; ++i) {
        Callout c;
        c.display.name = "c";
        c.applicable_layer = engine_layer(static_cast<lfp_kl>(kl));
        callouts[c.applicable_layer].push_back(e.add_callout(c));
      }
      e.register_callout(callouts[engine_layer(static_cast<lfp_kl>(kl))][0], std::make_shared<Continue>());
    }
    const bool with_userspace = seed % 2 == 0;
    for (int i = 0; i < per_layer * LFP_KL_COUNT; ++i) {
      Filter f;
      f.display.name = "random";
      f.layer = engine_layer(static_cast<lfp_kl>(g.r(LFP_KL_COUNT)));
      f.sublayer = subs[g.r(subs.size())];
      f.weight = g.r(2) ? Weight::empty() : Weight::explicit_weight(g.r(4));
      uint64_t a = g.r(10);
      f.action.type = a < 4 ? ActionType::BLOCK : a < 9 ? ActionType::PERMIT : ActionType::CALLOUT_UNKNOWN;
      if (is_callout(f.action.type)) {
        f.action.callout_key = callouts[f.layer][with_userspace ? g.r(2) : 1];
        if (g.r(2)) f.flags |= PERMIT_IF_CALLOUT_UNREGISTERED;
      }
      if (g.r(4) == 0) f.flags |= CLEAR_ACTION_RIGHT;
      for (int n = static_cast<int>(g.r(4)); n > 0; --n) {
        Condition c = g.condition(f.layer);
        if (!with_userspace && c.match == MatchType::PREFIX) continue;
        f.conditions.push_back(c);
      }
      e.add_filter(f);
    }
    const KernelPolicy& pol = k.install(e);
    indexed += pol.filters - pol.residual_filters;
    for (int kl = 0; kl < LFP_KL_COUNT; ++kl) {
      for (int q = 0; q < 150; ++q) {
        const auto [d, want] = both_answer(k, e, pol, static_cast<lfp_kl>(kl), g.values(static_cast<lfp_kl>(kl)));
        if (d.defer) {
          ++defers;
          ASSERT_TRUE(with_userspace) << "seed " << seed << ": deferred with nothing that needs user space";
          continue;
        }
        ++checked;
        const uint64_t want_id = want.filter ? want.filter->id : 0;
        ASSERT_EQ(d.filter_id, want_id) << "seed " << seed << " layer " << layer_info(engine_layer(static_cast<lfp_kl>(kl))).name
                                        << " query " << q;
        ASSERT_EQ(!d.decided || d.permit, want.permit) << "seed " << seed << " query " << q;
        if (want.filter) {
          ASSERT_EQ(bool(d.hard), want.hard) << "seed " << seed << " query " << q;
        }
        (want.permit ? permits : blocks)++;
      }
    }
    engine_defers += pol.userspace_filters;
  }
  // The comparison is only worth something if both answers and deferrals occur often.
  EXPECT_GT(blocks, checked / 10);
  EXPECT_GT(permits, checked / 10);
  EXPECT_GT(defers, 100u);
  EXPECT_GT(engine_defers, 0u);
  if (expect_index) EXPECT_GT(indexed, 0u) << "no filter was indexed: the test would not check the index";
  else EXPECT_EQ(indexed, 0u);
  std::printf("checked %zu (blocks %zu, permits %zu), deferred %zu, indexed filters %zu\n", checked, blocks, permits,
              defers, indexed);
}

TEST(DatapathKernel, EvaluatorGivesTheEnginesAnswerOnRandomPolicies) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  KernelPath k(KernelOptions{});  // loaded, attached nowhere
  check_random_policies(k, 40, 4, false);
}

TEST(DatapathKernel, IndexedEvaluatorGivesTheEnginesAnswerOnRandomPolicies) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  KernelPath k(KernelOptions{});
  check_random_policies(k, 12, 60, true);
}

// Random policies changed a few filters at a time: each change goes into the kernel in place
// (compile.hpp's update(): order keys between neighbours, lists copied with the new filter, dead guards),
// and after each the kernel gives the engine's answer, at layers walked whole and indexed alike.
TEST(DatapathKernel, UpdatesInPlaceGiveTheEnginesAnswer) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  KernelPath k(KernelOptions{});
  size_t in_place = 0, whole = 0, checked = 0, blocks = 0, permits = 0;
  std::map<std::string, size_t> why_whole;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Gen g(seed);
    FilterEngine e;
    std::vector<std::optional<Guid>> subs = {std::nullopt};
    for (int i = 0; i < 2; ++i) {
      Sublayer s;
      s.display.name = "s" + std::to_string(i);
      s.weight = static_cast<uint16_t>(1 + i * 0x4000);
      subs.push_back(e.add_sublayer(s));
    }
    // Filters the kernel decides alone (no callout, user set or app prefix: those are compiled whole).
    auto random_filter = [&](lfp_kl kl) {
      Filter f;
      f.display.name = "random";
      f.layer = engine_layer(kl);
      f.sublayer = subs[g.r(subs.size())];
      f.weight = g.r(2) ? Weight::empty() : Weight::explicit_weight(g.r(6));
      f.action.type = g.r(2) ? ActionType::BLOCK : ActionType::PERMIT;
      if (g.r(4) == 0) f.flags |= CLEAR_ACTION_RIGHT;
      for (int n = static_cast<int>(g.r(4)); n > 0; --n) {
        Condition c = g.condition(f.layer);
        if (c.value.type == DataType::SECURITY_DESCRIPTOR_TYPE || c.match == MatchType::PREFIX) continue;
        f.conditions.push_back(c);
      }
      return f;
    };
    // Layers of every size: the first few get many filters (indexed), the others few (walked).
    std::vector<uint64_t> ids;
    for (int kl = 0; kl < LFP_KL_COUNT; ++kl)
      for (int i = 0, n = kl < 6 ? 80 : 1 + kl % 5; i < n; ++i)
        for (const auto& sub : subs) {  // (each sublayer at each layer, so an added filter finds its own)
          Filter f = random_filter(static_cast<lfp_kl>(kl));
          f.sublayer = sub;
          ids.push_back(e.add_filter(f));
        }
    k.install(e);
    for (int round = 0; round < 12; ++round) {
      FilterChanges ch;
      for (int d = static_cast<int>(g.r(4)); d > 0 && !ids.empty(); --d) {
        const size_t at = g.r(ids.size());
        e.delete_filter_by_id(ids[at]);
        ch.deleted.push_back(ids[at]);
        ids.erase(ids.begin() + static_cast<ptrdiff_t>(at));
      }
      for (int a = 1 + static_cast<int>(g.r(8)); a > 0; --a) {
        const uint64_t id = e.add_filter(random_filter(static_cast<lfp_kl>(g.r(LFP_KL_COUNT))));
        ids.push_back(id);
        ch.added.push_back(id);
      }
      const KernelPolicy& pol = k.install(e, 0, &ch);
      if (k.last_install().in_place) ++in_place;
      else ++whole, ++why_whole[k.last_install().why_whole];
      for (int kl = 0; kl < LFP_KL_COUNT; ++kl)
        for (int q = 0; q < 40; ++q) {
          const auto [d, want] = both_answer(k, e, pol, static_cast<lfp_kl>(kl), g.values(static_cast<lfp_kl>(kl)));
          ASSERT_FALSE(d.defer) << "seed " << seed << " round " << round;
          const uint64_t want_id = want.filter ? want.filter->id : 0;
          ASSERT_EQ(d.filter_id, want_id) << "seed " << seed << " round " << round << " layer "
                                          << layer_info(engine_layer(static_cast<lfp_kl>(kl))).name << " query " << q;
          ASSERT_EQ(!d.decided || d.permit, want.permit) << "seed " << seed << " round " << round;
          if (want.filter) ASSERT_EQ(bool(d.hard), want.hard);
          ++checked;
          (want.permit ? permits : blocks)++;
        }
    }
  }
  for (const auto& [why, n] : why_whole) std::printf("compiled whole %zu times: %s\n", n, why.c_str());
  std::printf("checked %zu (blocks %zu, permits %zu) after %zu updates in place, %zu whole\n", checked, blocks, permits,
              in_place, whole);
  EXPECT_GT(blocks, checked / 10);
  EXPECT_GT(permits, checked / 10);
  EXPECT_GT(in_place, 8 * whole) << "most changes should go in place";
}

// One filter added to, or deleted from, a large policy writes a few bank entries, not the policy.
TEST(DatapathCompile, UpdateWritesAFewEntries) {
  FilterEngine e;
  Filter permit;
  permit.display.name = "default permit";
  permit.layer = LayerId::ALE_AUTH_CONNECT_V4;
  permit.action.type = ActionType::PERMIT;
  permit.weight = Weight::explicit_weight(0);
  e.add_filter(permit);
  auto block = [](uint32_t addr) {
    Filter f;
    f.display.name = "block";
    f.layer = LayerId::ALE_AUTH_CONNECT_V4;
    f.action.type = ActionType::BLOCK;
    f.conditions = {cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, u(DataType::UINT32, addr))};
    return f;
  };
  std::vector<uint64_t> ids;
  for (uint32_t i = 0; i < 20000; ++i) ids.push_back(e.add_filter(block(0x0b000000 + 2 * i)));
  KernelPolicy pol = compile(e, fake_app, 1);
  const size_t size = pol.bank.size();
  FilterChanges add;
  add.added.push_back(e.add_filter(block(0x0c000001)));
  UpdateResult u = update(pol, e, add, fake_app, 2 * size);
  ASSERT_TRUE(u.applied) << u.why_whole;
  // Its condition, its guard, its list's copy, the bucket that points at it and the bucket's fingerprint.
  EXPECT_LE(u.written.size(), 5u);
  EXPECT_EQ(pol.filters, 20002u);
  FilterChanges del;
  del.deleted.push_back(ids[77]);
  e.delete_filter_by_id(ids[77]);
  u = update(pol, e, del, fake_app, 2 * size);
  ASSERT_TRUE(u.applied) << u.why_whole;
  EXPECT_EQ(u.written.size(), 1u);  // its guard's entry
  // What update() cannot do in place it says, and the caller compiles whole.
  FilterChanges other;
  other.other = true;
  u = update(pol, e, other, fake_app, 2 * size);
  EXPECT_FALSE(u.applied);
  EXPECT_NE(u.why_whole.find("other than filters"), std::string::npos) << u.why_whole;
  FilterChanges big;
  big.added.push_back(e.add_filter(block(0x0c000003)));
  u = update(pol, e, big, fake_app, pol.bank.size());  // no room left
  EXPECT_FALSE(u.applied);
}

// A blocklist: one BLOCK a remote address, a permit for everything below them. Each decision visits
// the filters of its own address's bucket, whatever the list's length.
TEST(DatapathKernel, LargeBlocklistIsIndexed) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  KernelPath k(KernelOptions{});  // (the banks grow to the policy: about 2.9 entries a filter)
  FilterEngine e;
  Filter permit;
  permit.display.name = "default permit";
  permit.layer = LayerId::ALE_AUTH_CONNECT_V4;
  permit.action.type = ActionType::PERMIT;
  permit.weight = Weight::explicit_weight(0);
  const uint64_t permit_id = e.add_filter(permit);
  std::vector<uint64_t> ids;
  constexpr uint32_t kN = 100000, kBase = 0x0b000000;
  for (uint32_t i = 0; i < kN; ++i) {
    Filter f;
    f.display.name = "block";
    f.layer = LayerId::ALE_AUTH_CONNECT_V4;
    f.action.type = ActionType::BLOCK;
    f.weight = Weight::explicit_weight(1 + i % 7);
    f.conditions = {cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, u(DataType::UINT32, kBase + 2 * i))};
    ids.push_back(e.add_filter(f));
  }
  const KernelPolicy& pol = k.install(e);
  EXPECT_EQ(pol.filters, kN + 1);
  EXPECT_EQ(pol.residual_filters, 1u);  // the permit: it has no condition
  std::mt19937_64 rng(7);
  for (int q = 0; q < 2000; ++q) {
    const uint32_t i = static_cast<uint32_t>(rng() % kN);
    lfp_values v{};
    v.present = 1u << LFP_S_REMOTE_ADDR;
    v.v[LFP_S_REMOTE_ADDR][1] = kBase + 2 * i + (q & 1);  // odd: between two blocked addresses
    const lfp_verdict d = k.evaluate(LFP_KL_CONNECT_V4, v);
    ASSERT_FALSE(d.defer);
    ASSERT_EQ(d.filter_id, (q & 1) ? permit_id : ids[i]) << "address " << v.v[LFP_S_REMOTE_ADDR][1];
    ASSERT_EQ(bool(d.permit), bool(q & 1));
  }
  // Blocks added in place take new keys (a free bucket and its fingerprint) or join a list (a copy,
  // and the bucket's first element) at once; deleted ones stop at once.
  auto at_address = [](uint32_t a) {
    lfp_values v{};
    v.present = 1u << LFP_S_REMOTE_ADDR;
    v.v[LFP_S_REMOTE_ADDR][1] = a;
    return v;
  };
  FilterChanges ch;
  std::vector<std::pair<uint32_t, uint64_t>> added;  // (address, filter)
  for (uint32_t j = 0; j < 40; ++j) {
    Filter f;
    f.display.name = "added block";
    f.layer = LayerId::ALE_AUTH_CONNECT_V4;
    f.action.type = ActionType::BLOCK;
    f.weight = Weight::explicit_weight(9);  // (before the blocks already there: the head of a list it joins)
    const uint32_t a = j % 2 ? 0x0c000000 + 16 * j : kBase + 2 * j;  // a new key, or one a block has
    f.conditions = {cond(FieldId::IP_REMOTE_ADDRESS, MatchType::EQUAL, u(DataType::UINT32, a))};
    added.emplace_back(a, e.add_filter(f));
    ch.added.push_back(added.back().second);
  }
  for (uint32_t i = 1000; i < 1010; ++i) {
    e.delete_filter_by_id(ids[i]);
    ch.deleted.push_back(ids[i]);
  }
  k.install(e, 0, &ch);
  ASSERT_TRUE(k.last_install().in_place) << k.last_install().why_whole;
  for (const auto& [a, id] : added) {
    const lfp_verdict d = k.evaluate(LFP_KL_CONNECT_V4, at_address(a));
    EXPECT_EQ(d.filter_id, id) << "added block of " << a;
    EXPECT_FALSE(d.permit);
  }
  for (uint32_t i = 1000; i < 1010; ++i) EXPECT_EQ(k.evaluate(LFP_KL_CONNECT_V4, at_address(kBase + 2 * i)).filter_id, permit_id);
  // The cost does not grow with the list: a decision on 100,001 filters within a few times that on one.
  lfp_values v{};
  v.present = 1u << LFP_S_REMOTE_ADDR;
  v.v[LFP_S_REMOTE_ADDR][1] = kBase + 2 * 4242;
  const double big = k.time_evaluate(LFP_KL_CONNECT_V4, v, 20000);
  FilterEngine small;
  small.add_filter(permit);
  k.install(small);
  const double one = k.time_evaluate(LFP_KL_CONNECT_V4, v, 20000);
  std::printf("one decision: %.0f ns with 100,001 filters, %.0f ns with 1\n", big, one);
  EXPECT_LT(big, 5 * one + 500);
}

// A ClassBench firewall set (prefixes on both addresses, port ranges, protocols) at
// INBOUND_TRANSPORT_V4: keys of one and two fields, and the residual list, against the engine on the
// set's own trace.
// A ClassBench set (a third of its rules PERMIT) in the kernel gives the engine's answer on every
// `stride`th header of its trace.
void expect_kernel_gives_engines_answer(const std::string& set, size_t stride, uint32_t min_probes = 1) {
  const std::string dir = std::string(LFP_SOURCE_DIR) + "/../shared/classbench/";
  const auto rules = classbench::read_rules(dir + set + ".rules.xz");  // (a missing file fails the test)
  const auto trace = classbench::read_trace(dir + set + ".trace.xz");
  FilterEngine e;
  auto weight = static_cast<uint32_t>(rules.size());
  for (const auto& r : rules) {
    const uint32_t w = weight--;
    e.add_filter(classbench::to_filter(r, w, w % 3 ? ActionType::BLOCK : ActionType::PERMIT));
  }
  KernelPath k(KernelOptions{});
  const KernelPolicy& pol = k.install(e);
  const lfp_layer_hdr& h = pol.bank[LFP_KL_TRANSPORT_IN_V4].h;
  EXPECT_GE(h.nprobes, min_probes);
  EXPECT_LT(h.nresidual, pol.filters / 4) << "most filters should be indexed";
  bool two_fields = false;
  for (uint32_t i = 0; i < h.nprobes; ++i) two_fields |= pol.bank[LFP_PROBE_ENTRY(LFP_KL_TRANSPORT_IN_V4, i)].p.p[i % LFP_PROBES_PER_ENTRY].slot[1] != LFP_S_NONE;
  size_t matched = 0, checked = 0;
  for (size_t line = 0; line < trace.size(); line += stride) {
    const classbench::Packet& p = trace[line];
    ++checked;
    const auto [d, want] = both_answer(k, e, pol, LFP_KL_TRANSPORT_IN_V4, classbench::kernel_values(p));
    ASSERT_FALSE(d.defer);
    ASSERT_EQ(d.filter_id, want.filter ? want.filter->id : 0) << "trace line " << line + 1;
    matched += want.filter != nullptr;
  }
  EXPECT_GT(matched, checked / 2);
  EXPECT_TRUE(two_fields) << "no key of two fields: the test would not check them";
  EXPECT_GT(pol.widened_filters, 0u) << "no filter under a wider key: the test would not check them";
  std::printf("%s: %zu packets, %zu matched; %zu filters, %u on the residual list, %zu under wider keys, %u probes%s\n",
              set.c_str(), checked, matched, pol.filters, h.nresidual, pol.widened_filters, h.nprobes, two_fields ? " (some of two fields)" : "");
}

TEST(DatapathKernel, ClassBenchPolicyGivesTheEnginesAnswer) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  expect_kernel_gives_engines_answer("fw1_1k", 7);  // (a seventh of the trace: a second or so)
}

// fw1_100k: the second choice of shapes (more than 16 probes: two entries of them, a merge of more
// than 16 lists).
TEST(DatapathKernel, ClassBenchPolicyOfMoreThan16ProbesGivesTheEnginesAnswer) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  expect_kernel_gives_engines_answer("fw1_100k", 401, LFP_PROBES_PER_ENTRY + 1);
}

// fw1_10k: most filters under widened keys, shapes traded for those of the filters left over.
TEST(DatapathKernel, LargerClassBenchPolicyGivesTheEnginesAnswer) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  expect_kernel_gives_engines_answer("fw1_10k", 61);
}

// A policy larger than a bank may be (lfpd --kernel-entries) is refused, and the kernel keeps the one it had.
TEST(DatapathKernel, PolicyOverTheBankIsRefusedAndTheOldOneStays) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  KernelOptions o;
  o.bank_entries = 1024;
  KernelPath k(o);
  FilterEngine e;
  auto block_port = [&](uint16_t port) {
    Filter f;
    f.display.name = "block";
    f.layer = LayerId::ALE_AUTH_CONNECT_V4;
    f.action.type = ActionType::BLOCK;
    f.conditions = {cond(FieldId::IP_REMOTE_PORT, MatchType::EQUAL, u(DataType::UINT16, port))};
    return e.add_filter(f);
  };
  const uint64_t first = block_port(1);
  k.install(e);
  for (uint16_t p = 2; p < 2000; ++p) block_port(p);
  try {
    k.install(e);
    FAIL() << "a policy of 1999 filters fit a bank of 1024 entries";
  } catch (const std::length_error& err) {
    EXPECT_NE(std::string(err.what()).find("--kernel-entries"), std::string::npos) << err.what();
  }
  lfp_values v{};
  v.present = 1u << LFP_S_REMOTE_PORT;
  v.v[LFP_S_REMOTE_PORT][1] = 1;
  EXPECT_EQ(k.evaluate(LFP_KL_CONNECT_V4, v).filter_id, first);
  v.v[LFP_S_REMOTE_PORT][1] = 2;  // not in the policy the kernel kept
  EXPECT_FALSE(k.evaluate(LFP_KL_CONNECT_V4, v).decided);
  EXPECT_EQ(k.installed().filters, 1u);
  EXPECT_LE(k.bank_bytes(), 2 * 1024 * sizeof(lfp_entry));
}

// The index on a firewall rule set whose prefixes have every length (ClassBench fw1_10k): keys widened
// to byte-aligned prefixes let 15 shapes hold nearly every filter, so a packet visits tens of filters,
// not the hundreds a residual list of the odd lengths would cost (341 before the widening).
TEST(DatapathCompile, ClassBenchFirewallIsIndexedNotWalked) {
  const std::string dir = std::string(LFP_SOURCE_DIR) + "/../shared/classbench/";
  const auto rules = classbench::read_rules(dir + "fw1_10k.rules.xz");
  const auto trace = classbench::read_trace(dir + "fw1_10k.trace.xz");
  FilterEngine e;
  auto weight = static_cast<uint32_t>(rules.size());
  for (const auto& r : rules) e.add_filter(classbench::to_filter(r, weight--));
  const KernelPolicy pol = compile(e, [](const std::string&) { return AppKey{}; }, 1);
  const lfp_layer_hdr& h = pol.bank[LFP_KL_TRANSPORT_IN_V4].h;
  size_t visited = 0;
  for (const classbench::Packet& p : trace) {
    const lfp_values v = classbench::kernel_values(p);
    visited += index_candidates(pol, LFP_KL_TRANSPORT_IN_V4, v);
  }
  const double mean = static_cast<double>(visited) / static_cast<double>(trace.size());
  std::printf("%zu filters: %u on the residual list, %zu under wider keys; a packet visits %.1f on average\n",
              pol.filters, h.nresidual, pol.widened_filters, mean);
  EXPECT_LT(h.nresidual, 100u);
  EXPECT_GT(pol.widened_filters, 1000u);
  EXPECT_LT(mean, 100.0);
}

}  // namespace
}  // namespace lfp::datapath

