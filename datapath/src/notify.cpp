// SPDX-License-Identifier: MIT
#include "lfp/datapath/notify.hpp"

#include "lfp/datapath/events.hpp"
#include "lfp/datapath/userpath.hpp"

namespace lfp::datapath {

bool notification_layer(unsigned kl) { return kl >= LFP_KL_RELEASE_V4 && kl <= LFP_KL_CLOSURE_V6; }

namespace {

// The values the hook classified with (lfp_sock_release), rebuilt from its event.
lfp_values hook_values(const lfp_event& ev) {
  lfp_values v{};
  auto put = [&](int slot, uint64_t h, uint64_t l) {
    v.v[slot][0] = h, v.v[slot][1] = l;
    v.present |= 1u << slot;
  };
  auto addr = [&](int slot, const uint8_t* a) {
    uint64_t h = 0, l = 0;
    if (ev.family == 6) {
      for (int i = 0; i < 8; ++i) h = h << 8 | a[i], l = l << 8 | a[8 + i];
    } else {
      for (int i = 0; i < 4; ++i) l = l << 8 | a[i];
    }
    put(slot, h, l);
  };
  put(LFP_S_PROTOCOL, 0, ev.protocol);
  put(LFP_S_FLAGS, 0, ev.flags);
  put(LFP_S_APP, ev.app_dev, ev.app_ino);
  put(LFP_S_USER, 0, 0);
  v.uid = ev.uid, v.gid = ev.gid;
  addr(LFP_S_LOCAL_ADDR, ev.local_addr);
  if (ev.local_port) put(LFP_S_LOCAL_PORT, 0, ev.local_port);
  if (ev.kl == LFP_KL_CLOSURE_V4 || ev.kl == LFP_KL_CLOSURE_V6) {
    addr(LFP_S_REMOTE_ADDR, ev.remote_addr);
    put(LFP_S_REMOTE_PORT, 0, ev.remote_port);
  }
  return v;
}

}  // namespace

std::optional<nlohmann::json> notify_release(const lfp_event& ev, const FilterEngine& engine, const KernelPolicy& policy,
                                             bool log_allows) {
  nlohmann::json j = describe(ev, engine, policy);  // (CLASSIFY_ALLOW: the hook sets permit)
  if (!ev.defer) return j;                           // decided in the kernel, reported because permits are logged
  const auto kl = static_cast<lfp_kl>(ev.kl);
  Token token;
  FieldValues fv;
  to_field_values(kl, hook_values(ev), policy.apps, token, fv);
  // The path, when the policy does not name the executable but /proc still does (describe read it).
  const std::string app = j.value("app_id", "");
  if (!app.empty()) fv.set(FieldId::ALE_APP_ID, Value::blob(app));
  ClassifyMeta meta;
  meta.flow_handle = ev.cookie;
  meta.pid = ev.pid;
  meta.process_path = app;
  const ClassifyResult r = engine.classify(engine_layer(kl), fv, false, &meta);
  if (!log_allows || !r.filter) return std::nullopt;
  j["hard"] = r.hard;
  add_filter_members(j, r);
  return j;
}

}  // namespace lfp::datapath
