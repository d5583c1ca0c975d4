// SPDX-License-Identifier: MIT
// lfp-callout-host PLUGIN.so: runs one callout plugin for lfpd, in a process of its own. fd 3 is the
// socketpair to lfpd: the registration goes first, then one JSON line per request and per answer.
// A request with "data_len": N is followed by N bytes of layer data (stream bytes, a payload).
// Unasked, the host writes {"complete": HANDLE, "action": ...} when the plugin completes a pended
// decision. If the plugin crashes or hangs, only this process goes (lfpd kills it on a timeout).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/callout/plugin.hpp"

using nlohmann::json;

namespace {

constexpr int kFd = 3;
std::mutex write_mu;  // answers (main thread) and completions (any plugin thread) share the socket

bool write_line(const std::string& s, bool newline = true) {
  std::lock_guard lock(write_mu);
  std::string line = newline ? s + "\n" : s;
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(kFd, line.data() + off, line.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

const char* action_name(int a) { return a == LFP_CALLOUT_PERMIT ? "PERMIT" : a == LFP_CALLOUT_BLOCK ? "BLOCK" : "CONTINUE"; }

// One callout of either version.
struct Callout {
  const char* key;
  const char* layer;
  const lfp_callout* v1;
  const lfp_callout2* v2;
};

}  // namespace

// The host's side of pending (plugin.hpp): exported to plugins (the host links with -rdynamic).
extern "C" void lfp_callout_complete(uint64_t pend_handle, int action) {
  write_line(json{{"complete", pend_handle}, {"action", action_name(action)}}.dump());
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: lfp-callout-host PLUGIN.so (run by lfpd --callout)\n");
    return 1;
  }
  void* h = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  std::string why = h ? "" : ::dlerror();
  const char* name = argv[1];
  std::vector<Callout> callouts;
  bool ok = false;
  if (h) {
    if (auto* e2 = reinterpret_cast<const lfp_callout_plugin2* (*)()>(::dlsym(h, "lfp_callout_plugin_v2"))) {
      const lfp_callout_plugin2* p = e2();
      if ((ok = p && p->api_version == 2)) {
        name = p->name ? p->name : name;
        for (size_t i = 0; i < p->ncallouts; ++i) callouts.push_back({p->callouts[i].key, p->callouts[i].layer, nullptr, &p->callouts[i]});
      } else {
        why = "lfp_callout_plugin_v2 gives no plugin of API version 2";
      }
    } else if (auto* e1 = reinterpret_cast<const lfp_callout_plugin* (*)()>(::dlsym(h, "lfp_callout_plugin_v1"))) {
      const lfp_callout_plugin* p = e1();
      if ((ok = p && p->api_version == 1)) {
        name = p->name ? p->name : name;
        for (size_t i = 0; i < p->ncallouts; ++i) callouts.push_back({p->callouts[i].key, p->callouts[i].layer, &p->callouts[i], nullptr});
      } else {
        why = "lfp_callout_plugin_v1 gives no plugin of API version 1";
      }
    } else {
      why = "no lfp_callout_plugin_v2 or lfp_callout_plugin_v1";
    }
  }
  if (!ok) {
    write_line(json{{"error", why}}.dump());
    return 2;
  }
  json reg = {{"plugin", name}, {"callouts", json::array()}};
  for (const auto& c : callouts) reg["callouts"].push_back({{"key", c.key}, {"layer", c.layer}});
  if (!write_line(reg.dump())) return 3;

  std::string buf;
  char chunk[65536];
  for (;;) {
    // One request: a line, then its data.
    size_t nl;
    json req;
    std::string data;
    while ((nl = buf.find('\n')) == std::string::npos || (req = json::parse(buf.substr(0, nl), nullptr, false),
                                                          buf.size() < nl + 1 + (req.is_object() ? req.value("data_len", size_t{0}) : 0))) {
      const ssize_t n = ::read(kFd, chunk, sizeof chunk);
      if (n <= 0) return 0;  // lfpd went away
      buf.append(chunk, static_cast<size_t>(n));
    }
    const size_t data_len = req.is_object() ? req.value("data_len", size_t{0}) : 0;
    data.assign(buf, nl + 1, data_len);
    buf.erase(0, nl + 1 + data_len);
    if (!req.is_object()) continue;
    const std::string key = req.value("callout", "");
    const Callout* c = nullptr;
    for (const auto& x : callouts)
      if (key == x.key) c = &x;
    const std::string op = req.value("op", "classify");
    if (op == "flow_delete") {  // no answer
      const uint64_t flow = req.value("flow", uint64_t{0});
      if (c && c->v2 && c->v2->flow_delete) c->v2->flow_delete(flow, req.value("context", uint64_t{0}));
      if (c && c->v1 && c->v1->flow_delete) c->v1->flow_delete(flow);
      continue;
    }
    json out = {{"id", req.value("id", 0)}};
    std::string trailer;
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
      lfp_callout_classify_in2 in{};
      in.v1 = {layer.c_str(), fields.data(), fields.size(), filter.c_str(), ctx.c_str(), req.value("flow", uint64_t{0}),
               req.value("pid", 0u), path.c_str(), data_len ? reinterpret_cast<const uint8_t*>(data.data()) : nullptr,
               data_len, req.value("action_write", 1)};
      in.stream_flags = req.value("stream_flags", 0u);
      in.stream_offset = req.value("stream_offset", uint64_t{0});
      in.flow_context = req.value("flow_context", uint64_t{0});
      in.pend_handle = req.value("pend_handle", uint64_t{0});
      lfp_callout_classify_out2 res{};
      res.v1.action = LFP_CALLOUT_CONTINUE;
      if (c->v2) c->v2->classify(&in, &res);
      else c->v1->classify(&in.v1, &res.v1);
      out["action"] = action_name(res.v1.action);
      out["clear_action_write"] = res.v1.clear_action_write != 0;
      if (res.stream_action) out["stream_action"] = res.stream_action;
      if (res.stream_action == LFP_STREAM_ACTION_NEED_MORE_DATA) out["count_bytes_required"] = res.count_bytes_required;
      if (res.set_flow_context) out["flow_context"] = res.flow_context;
      if (res.pend && in.pend_handle) out["pend"] = true;
      if (res.log_text) out["log"] = res.log_text, out["log_suppressed"] = res.log_suppressed;
      // Bytes after the line: the new payload, then the packet to inject.
      if (res.new_data) trailer.append(reinterpret_cast<const char*>(res.new_data), res.new_data_len), out["new_data_len"] = res.new_data_len;
      if (res.inject && res.inject_len) trailer.append(reinterpret_cast<const char*>(res.inject), res.inject_len), out["inject_len"] = res.inject_len;
    } else if (op == "notify") {
      auto notify = c->v2 ? c->v2->notify : c->v1->notify;
      out["ok"] = !notify || notify(req.value("type", 0), req.value("filter_key", "").c_str()) == 0;
    }
    if (!trailer.empty()) out["bytes"] = trailer.size();
    if (!write_line(out.dump() + "\n" + trailer, false)) return 3;
  }
}
