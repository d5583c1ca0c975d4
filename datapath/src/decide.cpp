// The engine's decision on a flow the kernel queued (userpath.hpp). Kept apart from userpath.cpp,
// whose netlink headers define macros named like the engine's fields (IP_PROTOCOL).
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "lfp/datapath/userpath.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::datapath {

using nlohmann::json;

namespace {

// The creator's primary and supplementary groups (what ALE_USER_ID's token holds in user space).
std::string user_text(uint32_t uid, uint32_t gid, uint32_t pid) {
  std::string s = "uid=" + std::to_string(uid) + ",gids=" + std::to_string(gid);
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Groups:", 0) == 0) {
      std::istringstream ss(line.substr(7));
      uint32_t g;
      while (ss >> g)
        if (g != gid) s += "+" + std::to_string(g);
    }
  return s;
}

}  // namespace

json decide(const FilterEngine& engine, const KernelPolicy& policy, const QueuedFlow& f, bool* permit, ClassifyMeta* meta,
            bool reauthorize) {
  policy::Request req;
  req.layer = engine_layer(f.kl);
  const LayerInfo& layer = layer_info(req.layer);
  auto set = [&](FieldId field, const std::string& text) {
    if (layer_has_field(layer, field)) req.set_text(field, text);
  };
  set(FieldId::IP_PROTOCOL, std::to_string(f.protocol));
  set(FieldId::IP_LOCAL_ADDRESS, f.local_addr);
  set(FieldId::IP_REMOTE_ADDRESS, f.remote_addr);
  set(FieldId::IP_LOCAL_PORT, std::to_string(f.local_port));
  set(FieldId::IP_REMOTE_PORT, std::to_string(f.remote_port));
  auto app = policy.apps.find(AppKey{f.app_dev, f.app_ino});
  std::string app_path = app != policy.apps.end() ? app->second : std::string();
  if (app_path.empty()) {
    char buf[4096];
    const ssize_t n = ::readlink(("/proc/" + std::to_string(f.pid) + "/exe").c_str(), buf, sizeof buf - 1);
    if (n > 0) app_path.assign(buf, static_cast<size_t>(n));
  }
  if (!app_path.empty()) set(FieldId::ALE_APP_ID, app_path);
  set(FieldId::ALE_USER_ID, user_text(f.uid, f.gid, f.pid));
  const bool loopback = f.remote_addr.rfind("127.", 0) == 0 || f.remote_addr == "::1" || f.remote_addr == f.local_addr;
  const std::string flags = std::string(loopback ? "IS_LOOPBACK" : "") + (loopback && reauthorize ? "|" : "") +
                            (reauthorize ? "IS_REAUTHORIZE" : "");
  set(FieldId::FLAGS, flags.empty() ? "0" : flags);
  if (meta && !app_path.empty()) meta->process_path = app_path;
  const ClassifyResult r = engine.classify(req.layer, req.values, false, meta);
  *permit = r.permit;
  json e = {{"type", r.permit ? "CLASSIFY_ALLOW" : "CLASSIFY_DROP"},
            {"layer", layer.name},
            {"ip_version", f.family == 6 ? "V6" : "V4"},
            {"ip_protocol", f.protocol},
            {"local_address", f.local_addr},
            {"local_port", f.local_port},
            {"remote_address", f.remote_addr},
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
