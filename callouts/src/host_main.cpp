// lfp-callout-host PLUGIN.so: runs one callout plugin for lfpd, in a process of its own. fd 3 is the
// socketpair to lfpd: the registration goes first, then one JSON line per request and per answer.
// If the plugin crashes or hangs, only this process goes (lfpd kills it on a timeout).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/callout/plugin.hpp"

using nlohmann::json;

namespace {

bool write_line(int fd, const std::string& s) {
  std::string line = s + "\n";
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int fd = 3;
  if (argc != 2) {
    std::fprintf(stderr, "usage: lfp-callout-host PLUGIN.so (run by lfpd --callout)\n");
    return 1;
  }
  void* h = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  auto* entry = h ? reinterpret_cast<const lfp_callout_plugin* (*)()>(::dlsym(h, "lfp_callout_plugin_v1")) : nullptr;
  const lfp_callout_plugin* p = entry ? entry() : nullptr;
  if (!p || p->api_version != LFP_CALLOUT_API_VERSION) {
    const std::string why = !h ? std::string(::dlerror()) : !p ? "no lfp_callout_plugin_v1" : "API version mismatch";
    write_line(fd, json{{"error", why}}.dump());
    return 2;
  }
  json reg = {{"plugin", p->name ? p->name : argv[1]}, {"callouts", json::array()}};
  for (size_t i = 0; i < p->ncallouts; ++i) reg["callouts"].push_back({{"key", p->callouts[i].key}, {"layer", p->callouts[i].layer}});
  if (!write_line(fd, reg.dump())) return 3;

  std::string buf;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) return 0;  // lfpd went away
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const json req = json::parse(buf.substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (!req.is_object()) continue;
      const std::string key = req.value("callout", "");
      const lfp_callout* c = nullptr;
      for (size_t i = 0; i < p->ncallouts; ++i)
        if (key == p->callouts[i].key) c = &p->callouts[i];
      json out = {{"id", req.value("id", 0)}};
      const std::string op = req.value("op", "classify");
      if (!c) {
        out["error"] = "no such callout";
      } else if (op == "classify") {
        // The strings live until the call returns.
        std::vector<std::pair<std::string, std::string>> kv;
        const json given = req.value("fields", json::object());  // (items() of a temporary would dangle)
        for (const auto& [k, v] : given.items())
          if (v.is_string()) kv.emplace_back(k, v.get<std::string>());
        std::vector<lfp_callout_field> fields;
        for (const auto& [k, v] : kv) fields.push_back({k.c_str(), v.c_str()});
        const std::string layer = req.value("layer", ""), filter = req.value("filter_key", ""),
                          ctx = req.value("provider_context", ""), path = req.value("process_path", "");
        lfp_callout_classify_in in{layer.c_str(), fields.data(), fields.size(), filter.c_str(), ctx.c_str(),
                                   req.value("flow", uint64_t{0}), req.value("pid", 0u), path.c_str(), nullptr, 0,
                                   req.value("action_write", 1)};
        lfp_callout_classify_out res{LFP_CALLOUT_CONTINUE, 0};
        c->classify(&in, &res);
        out["action"] = res.action == LFP_CALLOUT_PERMIT ? "PERMIT" : res.action == LFP_CALLOUT_BLOCK ? "BLOCK" : "CONTINUE";
        out["clear_action_write"] = res.clear_action_write != 0;
      } else if (op == "notify") {
        out["ok"] = !c->notify || c->notify(req.value("type", 0), req.value("filter_key", "").c_str()) == 0;
      } else if (op == "flow_delete") {
        if (c->flow_delete) c->flow_delete(req.value("flow", uint64_t{0}));
        out["ok"] = true;
      }
      if (!write_line(fd, out.dump())) return 3;
    }
  }
}
