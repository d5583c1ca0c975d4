// SPDX-License-Identifier: MIT
// The engine's decision on a flow the kernel queued (userpath.hpp). Kept apart from userpath.cpp,
// whose netlink headers define macros named like the engine's fields (IP_PROTOCOL).
#include <unistd.h>

#include <stdexcept>

#include "lfp/datapath/userpath.hpp"
#include "lfp/packet/parse.hpp"
#include "lfp/sys/proc.hpp"

namespace lfp::datapath {

using nlohmann::json;

namespace {

// The creator's primary and supplementary groups (what ALE_USER_ID's token holds in user space).
Token user_token(uint32_t uid, uint32_t gid, uint32_t pid) {
  Token t{uid, {gid}};
  try {
    for (uint64_t g : sys::ProcStatus(static_cast<pid_t>(pid)).numbers("Groups"))
      if (g != gid) t.gids.push_back(static_cast<uint32_t>(g));
  } catch (const std::runtime_error&) {  // (gone already: its primary group is all that is known)
  }
  return t;
}

}  // namespace

json decide(const FilterEngine& engine, const KernelPolicy& policy, const QueuedFlow& f, bool* permit, ClassifyMeta* meta,
            bool reauthorize) {
  const LayerId layer_id = engine_layer(f.kl);
  const LayerInfo& layer = layer_info(layer_id);
  const bool v6 = f.family == 6;
  FieldValues values;
  auto set = [&](FieldId field, Value v) {
    if (layer_has_field(layer, field)) values.set(field, v);
  };
  auto num = [&](FieldId field, uint64_t x) { set(field, Value{field_type(field, layer.family), x}); };
  auto addr = [&](FieldId field, const Ip6& a) { set(field, packet::value_of(packet::IpAddr{v6, a})); };
  num(FieldId::IP_PROTOCOL, f.protocol);
  addr(FieldId::IP_LOCAL_ADDRESS, f.local_addr);
  addr(FieldId::IP_REMOTE_ADDRESS, f.remote_addr);
  num(FieldId::IP_LOCAL_PORT, f.local_port);
  num(FieldId::IP_REMOTE_PORT, f.remote_port);
  auto app = policy.apps.find(AppKey{f.app_dev, f.app_ino});
  std::string app_path = app != policy.apps.end() ? app->second : std::string();
  if (app_path.empty()) {
    char buf[4096];
    const ssize_t n = ::readlink(("/proc/" + std::to_string(f.pid) + "/exe").c_str(), buf, sizeof buf - 1);
    if (n > 0) app_path.assign(buf, static_cast<size_t>(n));
  }
  if (!app_path.empty()) {
    Value v{field_type(FieldId::ALE_APP_ID, layer.family)};
    v.str = app_path;
    set(FieldId::ALE_APP_ID, v);
  }
  const Token user = user_token(f.uid, f.gid, f.pid);
  set(FieldId::ALE_USER_ID, Value::user(user));
  const packet::IpAddr remote{v6, f.remote_addr};
  const bool loopback = packet::is_loopback(remote) || f.remote_addr == f.local_addr;
  num(FieldId::FLAGS, (loopback ? condition_flag::IS_LOOPBACK : 0) | (reauthorize ? condition_flag::IS_REAUTHORIZE : 0));
  if (meta && !app_path.empty()) meta->process_path = app_path;
  const ClassifyResult r = engine.classify(layer_id, values, false, meta);
  *permit = r.permit;
  json e = {{"type", r.permit ? "CLASSIFY_ALLOW" : "CLASSIFY_DROP"},
            {"layer", layer.name},
            {"ip_version", v6 ? "V6" : "V4"},
            {"ip_protocol", f.protocol},
            {"local_address", packet::to_string(packet::IpAddr{v6, f.local_addr})},
            {"local_port", f.local_port},
            {"remote_address", packet::to_string(remote)},
            {"remote_port", f.remote_port},
            {"direction", "OUTBOUND"},
            {"loopback", loopback},
            {"pid", f.pid},
            {"uid", f.uid},
            {"gid", f.gid},
            {"hard", r.hard},
            {"veto", r.veto}};
  if (!app_path.empty()) e["app_id"] = app_path;
  if (f.app_dev || f.app_ino) e["app_file"] = std::to_string(f.app_dev) + ":" + std::to_string(f.app_ino);
  add_filter_members(e, r);
  return e;
}

void add_filter_members(json& e, const ClassifyResult& r) {
  if (!r.filter) return;
  e["filter_id"] = r.filter->id;
  e["filter_key"] = r.filter->key.str();
  e["filter_name"] = r.filter->display.name;
  e["sublayer"] = (r.filter->sublayer ? *r.filter->sublayer : builtin::SUBLAYER_UNIVERSAL).str();
  if (r.filter->provider) e["provider"] = r.filter->provider->str();
}

}  // namespace lfp::datapath
