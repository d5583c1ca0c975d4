// SPDX-License-Identifier: MIT
#include "lfp/callout/host.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "lfp/engine/callout.hpp"
#include "lfp/sys/spawn.hpp"

namespace lfp::callouts {

using nlohmann::json;

namespace {

// A value as text, as the plugin interface gives it (plugin.hpp).
std::string value_text(FieldId f, const Value& v) {
  switch (v.type) {
    case DataType::UINT8:
    case DataType::UINT16:
    case DataType::UINT64: return std::to_string(v.u);
    case DataType::UINT32: {
      const std::string_view n = field_name(f);
      return n.find("ADDRESS") != std::string_view::npos ? format_ip4(static_cast<uint32_t>(v.u)) : std::to_string(v.u);
    }
    case DataType::BYTE_ARRAY16_TYPE: return format_ip6(v.bytes);
    case DataType::BYTE_BLOB_TYPE:
    case DataType::UNICODE_STRING_TYPE: return std::string(v.str);
    case DataType::TOKEN_INFORMATION_TYPE: {
      if (!v.token) return "";
      std::string s = "uid=" + std::to_string(v.token->uid);
      for (size_t i = 0; i < v.token->gids.size(); ++i) s += (i ? "+" : ",gids=") + std::to_string(v.token->gids[i]);
      return s;
    }
    case DataType::BYTE_ARRAY6_TYPE: {
      char b[18];
      std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", v.bytes[0], v.bytes[1], v.bytes[2], v.bytes[3],
                    v.bytes[4], v.bytes[5]);
      return b;
    }
    default: return "";
  }
}

// The engine's side of one plugin callout: each classify is a request to the host.
class HostDriver : public CalloutDriver {
 public:
  HostDriver(CalloutHost& host, Guid key, const FilterEngine& engine) : host_(host), key_(key), engine_(engine) {}
  void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) override {
    if (answer_completion(key_, in.meta, out)) return;
    json req = {{"callout", key_.str()}, {"layer", layer_info(in.layer).name}, {"filter_key", in.filter.key.str()},
                {"action_write", in.action_write ? 1 : 0}};
    json fields = json::object();
    for (FieldId f : layer_info(in.layer).fields) {
      const Value& v = in.values.get(f);
      if (v.type != DataType::EMPTY) fields[std::string(field_name(f))] = value_text(f, v);
    }
    if (fields.contains("ALE_APP_ID")) req["process_path"] = fields["ALE_APP_ID"];
    req["fields"] = std::move(fields);
    const ProviderContext* pc = in.filter.provider_context ? engine_.provider_context(*in.filter.provider_context) : nullptr;
    req["provider_context"] = pc ? pc->data : "";
    ClassifyMeta* m = in.meta;
    std::string_view data;
    if (m) {
      if (m->flow_handle) req["flow"] = m->flow_handle;
      if (m->pid) req["pid"] = m->pid;
      if (!m->process_path.empty()) req["process_path"] = std::string(m->process_path);
      if (m->stream_flags) req["stream_flags"] = m->stream_flags;
      if (m->stream_offset) req["stream_offset"] = m->stream_offset;
      if (m->pend_handle) req["pend_handle"] = m->pend_handle;
      if (m->flow_contexts)
        if (auto c = m->flow_contexts->find(key_); c != m->flow_contexts->end()) req["flow_context"] = c->second;
      data = std::string_view(reinterpret_cast<const char*>(m->data), m->data ? m->data_len : 0);
    }
    std::string reply, why, bytes;
    if (host_.classify(req, data, &reply, &why, &bytes)) {
      const json r = json::parse(reply, nullptr, false);
      const std::string a = r.is_object() ? r.value("action", "") : "";
      if (a == "PERMIT" || a == "BLOCK" || a == "CONTINUE") {
        out.verdict = a == "PERMIT" ? CalloutVerdict::PERMIT : a == "BLOCK" ? CalloutVerdict::BLOCK : CalloutVerdict::CONTINUE;
        out.clear_action_write = r.value("clear_action_write", false);
        if (m) take_meta(r, bytes, in.filter, *m);
        return;
      }
      why = "invalid answer";
    }
    // The plugin could not answer: as if unregistered (WFP's rule for a missing callout).
    out.verdict = (in.filter.flags & PERMIT_IF_CALLOUT_UNREGISTERED) ? CalloutVerdict::PERMIT : CalloutVerdict::BLOCK;
  }
  bool notify(NotifyType type, const Filter& filter) override {
    std::string reply, why;
    const json req = {{"op", "notify"}, {"callout", key_.str()}, {"type", type == NotifyType::ADD_FILTER ? 0 : 1},
                      {"filter_key", filter.key.str()}};
    if (!host_.classify(req, {}, &reply, &why)) return true;  // a failed host refuses nothing (it is unregistered soon)
    const json r = json::parse(reply, nullptr, false);
    return !r.is_object() || r.value("ok", true);
  }
  void flow_delete(uint64_t flow_handle, uint64_t context) override {
    host_.send_only({{"op", "flow_delete"}, {"callout", key_.str()}, {"flow", flow_handle}, {"context", context}});
  }

 private:
  // What a version-2 plugin hands back beyond its action.
  void take_meta(const json& r, const std::string& bytes, const Filter& filter, ClassifyMeta& m) const {
    // The bytes after the answer: a new payload, then a packet to inject.
    const size_t nd = r.value("new_data_len", size_t{0}), ni = r.value("inject_len", size_t{0});
    if (nd + ni == bytes.size()) {
      if (r.contains("new_data_len")) m.new_data = bytes.substr(0, nd);
      if (ni) m.inject.push_back(bytes.substr(nd));
    }
    const int sa = r.value("stream_action", 0);
    if (sa >= 0 && sa <= static_cast<int>(StreamAction::DEFER) && static_cast<StreamAction>(sa) != StreamAction::NONE) {
      m.stream_action = static_cast<StreamAction>(sa);
      m.count_bytes_required = r.value("count_bytes_required", 0u);
    }
    if (r.contains("flow_context") && r["flow_context"].is_number_unsigned() && m.flow_contexts && m.flow_handle)
      (*m.flow_contexts)[key_] = r["flow_context"].get<uint64_t>();
    if (r.contains("log") && r["log"].is_string())
      m.logs.push_back({&filter, r["log"].get<std::string>(), r.value("log_suppressed", uint64_t{0})});
    if (r.value("pend", false) && m.pend_handle && !m.pended) {
      m.pended = true;
      m.pended_by = key_;
      host_.expect_completion(m.pend_handle);
    }
  }
  CalloutHost& host_;
  Guid key_;
  const FilterEngine& engine_;
};

}  // namespace

CalloutHost::CalloutHost(std::string plugin, std::string host_exe, int timeout_ms)
    : plugin_(std::move(plugin)), timeout_ms_(timeout_ms) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair failed");
  // The socket is the host's fd 3. Every signal unblocked: lfpd blocks SIGTERM for its signalfd; the host must not.
  try {
    pid_ = sys::spawn({host_exe, plugin_}, {.pass_fds = {{sv[1], 3}}});
  } catch (...) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw;
  }
  ::close(sv[1]);
  fd_ = sv[0];
  // The registration, within a generous time (the plugin's own initialization runs first).
  std::string line, why;
  const int saved = timeout_ms_;
  timeout_ms_ = std::max(timeout_ms_, 5000);
  const bool ok = classify(json(), {}, &line, &why);
  timeout_ms_ = saved;
  const json reg = ok ? json::parse(line, nullptr, false) : json();
  if (!ok || !reg.is_object() || reg.contains("error") || !reg.contains("callouts")) {
    const std::string detail = !ok ? why : reg.is_object() && reg.contains("error") ? reg["error"].get<std::string>() : line;
    kill_host("no registration");
    ::close(fd_);
    throw std::runtime_error("callout plugin " + plugin_ + ": " + detail);
  }
  name_ = reg.value("plugin", plugin_);
  for (const auto& c : reg["callouts"]) {
    auto key = Guid::parse(c.value("key", ""));
    auto layer = layer_from_string(c.value("layer", ""));
    if (!key || !layer) throw std::runtime_error("callout plugin " + plugin_ + ": bad callout " + c.dump());
    callouts_.push_back({*key, *layer});
  }
}

CalloutHost::~CalloutHost() {
  kill_host("lfpd is stopping");
  if (fd_ >= 0) ::close(fd_);
}

void CalloutHost::kill_host(const char* why) {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    if (registered_) {
      if (std::strcmp(why, "lfpd is stopping") == 0) spdlog::info("callout plugin {}: host stopped ({})", name_, why);
      else spdlog::warn("callout plugin {}: host stopped ({})", name_, why);
    }
    pid_ = -1;
  }
  dead_ = true;
}

void CalloutHost::register_with(FilterEngine& engine) {
  for (const auto& [key, layer] : callouts_) engine.register_callout(key, std::make_shared<HostDriver>(*this, key, engine));
  registered_ = true;
}

bool CalloutHost::reap(FilterEngine& engine) {
  if (!dead_ && read_unasked()) return false;  // completions, or noise; alive
  if (!registered_) return false;
  for (const auto& [key, layer] : callouts_) engine.unregister_callout(key);
  registered_ = false;
  spdlog::warn("callout plugin {}: its callouts are unregistered; their filters act as unregistered", name_);
  return true;
}

bool CalloutHost::send(json req, std::string_view data, std::string* why) {
  if (dead_) {
    *why = "the plugin's host is not running";
    return false;
  }
  req["id"] = next_id_++;
  if (!data.empty()) req["data_len"] = data.size();
  std::string msg = req.dump() + "\n";
  msg.append(data);
  size_t off = 0;
  while (off < msg.size()) {
    const ssize_t n = ::send(fd_, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      ++crashes_;
      kill_host("it stopped reading");
      *why = "the plugin's host is gone";
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void CalloutHost::send_only(const json& req) {
  std::string why;
  send(req, {}, &why);
}

bool CalloutHost::take_line(std::string* line, std::string* bytes) {
  for (size_t nl; (nl = buf_.find('\n')) != std::string::npos;) {
    // An answer with bytes after its line ("bytes": N) is whole only with them.
    const bool has_bytes = std::string_view(buf_).substr(0, nl).find("\"bytes\"") != std::string_view::npos;
    const json j = has_bytes || std::string_view(buf_).substr(0, nl).find("\"complete\"") != std::string_view::npos
                       ? json::parse(buf_.substr(0, nl), nullptr, false)
                       : json();
    const size_t n = j.is_object() && j.contains("bytes") && j["bytes"].is_number_unsigned() ? j["bytes"].get<size_t>() : 0;
    if (buf_.size() < nl + 1 + n) return false;
    std::string l = buf_.substr(0, nl);
    if (bytes) bytes->assign(buf_, nl + 1, n);
    buf_.erase(0, nl + 1 + n);
    // A completion of a pended decision comes unasked: kept for the data path.
    if (j.is_object() && j.contains("complete") && j["complete"].is_number_unsigned()) {
      const uint64_t h = j["complete"].get<uint64_t>();
      if (pending_.erase(h)) completions_.push_back({h, j.value("action", "") == "PERMIT"});
      continue;
    }
    *line = std::move(l);
    return true;
  }
  return false;
}

bool CalloutHost::read_unasked() {
  if (dead_) return false;
  for (;;) {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) {
      ++crashes_;
      kill_host("it exited");
      return false;
    }
    if (n < 0) break;
    buf_.append(chunk, static_cast<size_t>(n));
  }
  std::string line;
  while (take_line(&line, nullptr)) {}  // (an answer nobody waits for: dropped)
  return true;
}

std::vector<std::pair<uint64_t, bool>> CalloutHost::take_completions() { return std::exchange(completions_, {}); }

bool CalloutHost::classify(const json& req, std::string_view data, std::string* reply, std::string* why,
                           std::string* bytes) {
  if (!req.is_null()) {
    ++calls_;
    if (!send(req, data, why)) return false;
  }
  if (dead_) {
    *why = "the plugin's host is not running";
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    if (take_line(reply, bytes)) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      ++timeouts_;
      kill_host("no answer in time");
      *why = "no answer within " + std::to_string(timeout_ms_) + " ms";
      return false;
    }
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      ++crashes_;
      kill_host("it crashed");
      *why = "the plugin's host died";
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace lfp::callouts
