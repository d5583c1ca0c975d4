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
    std::string reply, why;
    if (host_.classify(req.dump(), &reply, &why)) {
      const json r = json::parse(reply, nullptr, false);
      const std::string a = r.is_object() ? r.value("action", "") : "";
      if (a == "PERMIT" || a == "BLOCK" || a == "CONTINUE") {
        out.verdict = a == "PERMIT" ? CalloutVerdict::PERMIT : a == "BLOCK" ? CalloutVerdict::BLOCK : CalloutVerdict::CONTINUE;
        out.clear_action_write = r.value("clear_action_write", false);
        return;
      }
      why = "invalid answer";
    }
    // The plugin could not answer: as if unregistered (WFP's rule for a missing callout).
    out.verdict = (in.filter.flags & PERMIT_IF_CALLOUT_UNREGISTERED) ? CalloutVerdict::PERMIT : CalloutVerdict::BLOCK;
  }

 private:
  CalloutHost& host_;
  Guid key_;
  const FilterEngine& engine_;
};

}  // namespace

CalloutHost::CalloutHost(std::string plugin, std::string host_exe, int timeout_ms)
    : plugin_(std::move(plugin)), timeout_ms_(timeout_ms) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair failed");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(sv[1], 3);  // (dup2 clears CLOEXEC on the copy)
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // lfpd blocks SIGTERM for its signalfd; the host must not
    ::execl(host_exe.c_str(), host_exe.c_str(), plugin_.c_str(), nullptr);
    _exit(127);
  }
  ::close(sv[1]);
  fd_ = sv[0];
  if (pid_ < 0) throw std::runtime_error("fork failed");
  // The registration, within a generous time (the plugin's own initialization runs first).
  std::string line, why;
  const int saved = timeout_ms_;
  timeout_ms_ = std::max(timeout_ms_, 5000);
  const bool ok = classify("", &line, &why);
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
  if (!dead_) {
    // Readable without being asked: either an EOF (the host died) or noise; check.
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n != 0) return false;
    kill_host("it exited");
  }
  if (!registered_) return false;
  for (const auto& [key, layer] : callouts_) engine.unregister_callout(key);
  registered_ = false;
  spdlog::warn("callout plugin {}: its callouts are unregistered; their filters act as unregistered", name_);
  return true;
}

bool CalloutHost::classify(const std::string& request_json, std::string* reply, std::string* why) {
  if (dead_) {
    *why = "the plugin's host is not running";
    return false;
  }
  if (!request_json.empty()) {
    json req = json::parse(request_json);
    req["id"] = next_id_++;
    const std::string line = req.dump() + "\n";
    if (::send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
      kill_host("it stopped reading");
      *why = "the plugin's host is gone";
      return false;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    const size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      *reply = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return true;
    }
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
      kill_host("it crashed");
      *why = "the plugin's host died";
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace lfp::callouts
