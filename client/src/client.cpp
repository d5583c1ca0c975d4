#include "lfp/client/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "lfp/protocol/json_text.hpp"
#include "lfp/protocol/wire.hpp"

namespace lfp::client {

using nlohmann::json;

Client::Client(const std::string& path, const SessionOptions& opts) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw ClientError("INVALID_PARAMETER", "socket path too long: " + path);
  std::strcpy(addr.sun_path, path.c_str());
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw ClientError("PROTOCOL", std::string("socket: ") + std::strerror(errno));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw ClientError("NOT_RUNNING", "lfpd is not running at " + path + " (" + std::strerror(e) +
                                         "); start it with `lfpd --socket " + path +
                                         "` or `systemctl start lfpd`");
  }
  json hello = {{"version", wire::kVersion}, {"name", opts.name}, {"dynamic", opts.dynamic}};
  if (opts.txn_wait_ms) hello["txn_wait_timeout_ms"] = opts.txn_wait_ms;
  if (opts.provider) hello["provider"] = *opts.provider;
  session_ = call("hello", hello)["session"];
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

json Client::read_message() {
  std::string payload, err;
  if (!wire::read_frame(fd_, payload, err)) throw ClientError("PROTOCOL", "lfpd: " + err);
  try {
    return json::parse(payload);
  } catch (const json::exception& e) {
    throw ClientError("PROTOCOL", std::string("lfpd sent malformed JSON: ") + e.what());
  }
}

json Client::call(const std::string& op, json args) {
  const uint64_t id = next_id_++;
  args["id"] = id;
  args["op"] = op;
  return exchange(id, wire::to_json_text(args));
}

json Client::call(const std::string& op, json args, const std::string& name, const json& value) {
  const uint64_t id = next_id_++;
  args["id"] = id;
  args["op"] = op;
  args.erase(name);
  // {...args, "name": value}: the value serialized where it stands.
  std::string text = wire::to_json_text(args);
  text.pop_back();  // '}'
  if (text.size() > 1) text += ',';
  wire::append_json(text, json(name));
  text += ':';
  wire::append_json(text, value);
  text += '}';
  return exchange(id, text);
}

json Client::apply(const json& policy) {
  constexpr const char* kLists[] = {"providers", "sublayers", "callouts", "provider_contexts", "filters"};
  auto is_list = [&](const std::string& k) {
    return std::any_of(std::begin(kLists), std::end(kLists), [&](const char* l) { return k == l; });
  };
  if (!policy.is_object()) return call("apply", json::object(), "policy", policy);  // (lfpd says what is wrong)
  // Each object serialized once, into pieces well under a message's limit; the other members
  // ("version", or a mistake lfpd will name) go with every piece.
  constexpr size_t kPieceBytes = wire::kMaxFrame / 4;
  std::string others;
  for (const auto& [k, v] : policy.items()) {
    if (is_list(k) && v.is_array()) continue;
    others += others.empty() ? "" : ",";
    wire::append_json(others, json(k));
    others += ':';
    wire::append_json(others, v);
  }
  struct Piece {
    std::string text;  // the lists' members: "filters":[...],...
    json first = json::object();
  };
  std::vector<Piece> pieces(1);
  for (const char* list : kLists) {
    const auto it = policy.find(list);
    if (it == policy.end() || !it->is_array()) continue;
    bool open = false;  // this list's array is open in the last piece
    for (size_t i = 0; i < it->size(); ++i) {
      std::string one;
      wire::append_json(one, (*it)[i]);
      if (!pieces.back().text.empty() && pieces.back().text.size() + one.size() > kPieceBytes) {
        if (open) pieces.back().text += ']';
        pieces.emplace_back();
        open = false;
      }
      Piece& p = pieces.back();
      p.text += open ? "," : p.text.empty() ? "" : ",";
      if (!open) {
        p.text += std::string("\"") + list + "\":[";
        p.first[list] = i;
        open = true;
      }
      p.text += one;
    }
    if (open) pieces.back().text += ']';
  }
  auto send = [&](const Piece& p) {
    const uint64_t id = next_id_++;
    std::string text = "{\"id\":" + std::to_string(id) + ",\"op\":\"apply\"";
    if (pieces.size() > 1) text += ",\"first\":" + wire::to_json_text(p.first);
    text += ",\"policy\":{" + p.text + (p.text.empty() || others.empty() ? "" : ",") + others + "}}";
    return exchange(id, text);
  };
  if (pieces.size() == 1) return send(pieces[0]);
  const bool own_txn = !in_txn_;
  if (own_txn) begin();
  json result = {{"added", json::array()}};
  try {
    for (const Piece& p : pieces) {
      json r = send(p);
      for (auto& a : r["added"]) result["added"].push_back(std::move(a));
      if (!own_txn && r.contains("warnings"))
        for (auto& w : r["warnings"]) result["warnings"].push_back(std::move(w));
    }
    if (own_txn) {
      json c = commit();
      if (c.contains("warnings")) result["warnings"] = std::move(c["warnings"]);
    }
  } catch (...) {
    if (own_txn && in_txn_) {
      try {
        abort();
      } catch (...) {  // (the connection may be gone: lfpd aborts a closed session's transaction)
      }
    }
    throw;
  }
  return result;
}

json Client::exchange(uint64_t id, const std::string& request) {
  std::string err;
  if (!wire::write_frame(fd_, request, err)) throw ClientError("PROTOCOL", "lfpd: " + err);
  for (;;) {
    json msg = read_message();
    if (msg.contains("event")) {
      events_.push_back(std::move(msg));
      continue;
    }
    if (msg.value("id", json()) != json(id)) {
      if (msg.value("ok", true) == false && msg.value("id", json()).is_null())
        throw ClientError(msg["error"].value("code", "PROTOCOL"), msg["error"].value("message", ""));
      continue;  // a reply to an earlier, abandoned request
    }
    if (msg.value("ok", false)) return msg.value("result", json::object());
    const json& e = msg.value("error", json::object());
    throw ClientError(e.value("code", "PROTOCOL"), e.value("message", "request failed"));
  }
}

std::vector<json> Client::enumerate(const std::string& kind, const json& tmpl) {
  std::vector<json> out;
  json offset = 0;
  while (!offset.is_null()) {
    json page = call("enum", {{"kind", kind}, {"template", tmpl}, {"offset", offset}, {"limit", 10000}});
    for (auto& o : page["objects"]) out.push_back(std::move(o));
    offset = page["next_offset"];
  }
  return out;
}

void Client::subscribe(const std::vector<std::string>& kinds) {
  json args = json::object();
  if (!kinds.empty()) args["kinds"] = kinds;
  call("subscribe", args);
}

std::optional<json> Client::next_event(int timeout_ms) {
  while (events_.empty()) {
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    json msg = read_message();
    if (msg.contains("event")) events_.push_back(std::move(msg));
  }
  json e = std::move(events_.front());
  events_.pop_front();
  return e;
}

}  // namespace lfp::client
