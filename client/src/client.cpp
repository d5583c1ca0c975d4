#include "lfp/client/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
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
  reply_timeout_ms_ = opts.reply_timeout_ms;
  if (reply_timeout_ms_) {  // (a blocking connect, read or write gives up after it: EAGAIN)
    const timeval tv{static_cast<time_t>(reply_timeout_ms_ / 1000), static_cast<suseconds_t>(reply_timeout_ms_ % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    if (e == EAGAIN)
      throw ClientError("TIMEOUT", "lfpd at " + path + " did not take the connection within " +
                                       std::to_string(opts.reply_timeout_ms) + " ms");
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

// A message read already, if a whole one is.
std::optional<json> Client::buffered_message() {
  const auto frame = in_.next();
  if (!frame) {
    if (!in_.error().empty()) throw ClientError("PROTOCOL", "lfpd: " + in_.error());
    return std::nullopt;
  }
  try {
    return json::parse(*frame);
  } catch (const json::exception& e) {
    throw ClientError("PROTOCOL", std::string("lfpd sent malformed JSON: ") + e.what());
  }
}

// The next message: one read already, else from the socket (blocking).
json Client::read_message() {
  for (;;) {
    if (auto msg = buffered_message()) return std::move(*msg);
    read_some();
  }
}

void Client::read_some() {
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd_, buf, sizeof buf);
    if (r > 0) return in_.feed(buf, static_cast<size_t>(r));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      throw ClientError("TIMEOUT", "lfpd did not answer within " + std::to_string(reply_timeout_ms_) + " ms");
    throw ClientError("PROTOCOL", std::string("lfpd: ") + (r == 0 ? "connection closed" : std::strerror(errno)));
  }
}

// `msg`'s result if it answers request `id`; nullopt for an event (kept) or a reply to an earlier,
// abandoned request; throws ClientError for a failure.
std::optional<json> Client::reply_to(uint64_t id, json msg) {
  if (msg.contains("event")) {
    events_.push_back(std::move(msg));
    return std::nullopt;
  }
  if (msg.value("id", json()) != json(id)) {
    if (msg.value("ok", true) == false && msg.value("id", json()).is_null())
      throw ClientError(msg["error"].value("code", "PROTOCOL"), msg["error"].value("message", ""));
    return std::nullopt;
  }
  if (msg.value("ok", false)) return msg.value("result", json::object());
  const json& e = msg.value("error", json::object());
  throw ClientError(e.value("code", "PROTOCOL"), e.value("message", "request failed"));
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

namespace {
constexpr const char* kLists[] = {"providers", "sublayers", "callouts", "provider_contexts", "filters"};
bool is_list(std::string_view k) {
  return std::any_of(std::begin(kLists), std::end(kLists), [&](const char* l) { return k == l; });
}
}  // namespace

// What the pieces of an apply take from a policy object, whatever holds it: the members that are not
// lists ("version", or a mistake lfpd will name: they go with every piece), and each list's objects
// as text.
struct Client::PolicyLists {
  std::string others;                  // "name":value,...
  size_t sizes[std::size(kLists)] = {};  // objects in each list (0: none, or not an array)
  std::function<void(size_t list, size_t index, std::string& out)> append;  // an object's text
};

json Client::apply(const json& policy) {
  if (!policy.is_object()) return call("apply", json::object(), "policy", policy);  // (lfpd says what is wrong)
  PolicyLists lists;
  std::vector<const json*> arrays(std::size(kLists), nullptr);
  for (const auto& [k, v] : policy.items()) {
    if (is_list(k) && v.is_array()) continue;
    lists.others += lists.others.empty() ? "" : ",";
    wire::append_json(lists.others, json(k));
    lists.others += ':';
    wire::append_json(lists.others, v);
  }
  for (size_t l = 0; l < std::size(kLists); ++l)
    if (const auto it = policy.find(kLists[l]); it != policy.end() && it->is_array()) arrays[l] = &*it, lists.sizes[l] = it->size();
  lists.append = [&](size_t l, size_t i, std::string& out) { wire::append_json(out, (*arrays[l])[i]); };
  return apply_lists(lists);
}

json Client::apply(const policy::JsonValue& policy) {
  if (!policy.is_object()) {
    const uint64_t id = next_id_++;
    return exchange(id, "{\"id\":" + std::to_string(id) + ",\"op\":\"apply\",\"policy\":" + std::string(policy.text()) + "}");
  }
  PolicyLists lists;
  std::vector<const policy::JsonValue*> arrays(std::size(kLists), nullptr);
  for (auto m = policy.members_begin(); m != policy.members_end(); ++m) {
    if (is_list(m->key) && m->value.is_array()) {
      for (size_t l = 0; l < std::size(kLists); ++l)
        if (m->key == kLists[l]) arrays[l] = &m->value, lists.sizes[l] = m->value.size();
      continue;
    }
    lists.others += lists.others.empty() ? "" : ",";
    wire::append_json(lists.others, json(std::string(m->key)));
    lists.others += ':';
    lists.others += m->value.text();
  }
  lists.append = [&](size_t l, size_t i, std::string& out) { out += (*arrays[l])[i].text(); };
  return apply_lists(lists);
}

json Client::apply_lists(const PolicyLists& policy) {
  // Each object serialized once, into pieces that fit the socket's buffer: the next piece is all there
  // when lfpd is done with one (a piece larger than the buffer arrives in as many round trips as it
  // takes to drain, while lfpd waits; a million filters took twice as long in 4 MiB pieces).
  constexpr size_t kPieceBytes = 160 << 10;
  {
    const int want = 4 << 20;  // (as much as net.core.wmem_max lets it have: room for more pieces)
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  const std::string& others = policy.others;
  // The pieces are made one at a time, as they are sent: the lists' members from where the last
  // piece stopped. A piece holds one object at least.
  size_t list = 0, index = 0;
  auto next_list = [&] {
    for (; list < std::size(kLists); ++list, index = 0)
      if (index < policy.sizes[list]) return true;
    return false;
  };
  std::string first;  // "first":{"filters":N,...}: where this piece's lists start in the whole
  std::string text;   // "filters":[...],...
  std::string one;     // an object's text
  auto make_piece = [&] {
    first.clear();
    text.clear();
    bool has_object = false;
    while (next_list()) {
      bool opened = false;  // this list's array
      for (; index < policy.sizes[list]; ++index) {
        one.clear();
        policy.append(list, index, one);
        if (has_object && text.size() + one.size() > kPieceBytes) break;  // (it starts the next piece)
        if (!opened) {
          text += std::string(text.empty() ? "" : ",") + "\"" + kLists[list] + "\":[";
          first += std::string(first.empty() ? "" : ",") + "\"" + kLists[list] + "\":" + std::to_string(index);
          opened = true;
        } else {
          text += ',';
        }
        text += one;
        has_object = true;
      }
      if (opened) text += ']';
      if (index < policy.sizes[list]) break;  // the piece is full
    }
  };
  auto request = [&](uint64_t id, bool in_pieces) {
    std::string r = "{\"id\":" + std::to_string(id) + ",\"op\":\"apply\"";
    if (in_pieces) r += ",\"first\":{" + first + "}";
    r += ",\"policy\":{" + text + (text.empty() || others.empty() ? "" : ",") + others + "}}";
    return r;
  };
  make_piece();
  if (!next_list()) {  // one piece: one request, lfpd's own transaction
    const uint64_t id = next_id_++;
    return exchange(id, request(id, false));
  }
  const bool own_txn = !in_txn_;
  if (own_txn) begin();
  json result = {{"added", json::array()}};
  std::string out;  // the frame being written, from out_off
  size_t out_off = 0;
  try {
    // lfpd works on one piece while the next ones wait in the socket and the last reply is read:
    // three pieces in flight. Inside the caller's transaction one at a time, so that a piece that fails
    // leaves it holding exactly the pieces before (as a failed call leaves a transaction unchanged).
    const size_t in_flight = own_txn ? 3 : 1;
    std::deque<uint64_t> waiting;  // sent, not answered yet
    bool made = true;              // `first` and `text` hold a piece not sent yet
    bool more = true;              // objects wait for a piece (make_piece)
    while (made || more || !waiting.empty()) {
      if (made && out_off == out.size() && waiting.size() < in_flight) {
        const uint64_t id = next_id_++;
        const std::string r = request(id, true);
        if (r.size() > wire::kMaxFrame) throw ClientError("PROTOCOL", "an object larger than a message (" + std::to_string(r.size()) + " bytes)");
        out = wire::encode(r);
        out_off = 0;
        waiting.push_back(id);
        made = false;
        more = next_list();
      }
      if (out_off < out.size()) {  // as much as lfpd takes now
        const ssize_t w = ::send(fd_, out.data() + out_off, out.size() - out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) out_off += static_cast<size_t>(w);
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
          throw ClientError("PROTOCOL", std::string("lfpd: write: ") + std::strerror(errno));
      }
      if (auto msg = buffered_message()) {
        if (auto r = reply_to(waiting.empty() ? 0 : waiting.front(), std::move(*msg))) {  // (ids start at 1)
          waiting.pop_front();
          for (auto& a : (*r)["added"]) result["added"].push_back(std::move(a));
          if (!own_txn && r->contains("warnings"))
            for (auto& w : (*r)["warnings"]) result["warnings"].push_back(std::move(w));
        }
        continue;
      }
      if (!made && more) {  // the next piece, while lfpd works
        make_piece();
        made = true;
        continue;
      }
      pollfd p{fd_, static_cast<short>(POLLIN | (out_off < out.size() ? POLLOUT : 0)), 0};
      const int ready = ::poll(&p, 1, reply_timeout_ms_ ? static_cast<int>(reply_timeout_ms_) : -1);
      if (ready < 0 && errno != EINTR) throw ClientError("PROTOCOL", std::string("poll: ") + std::strerror(errno));
      if (ready == 0) throw ClientError("TIMEOUT", "lfpd did not answer within " + std::to_string(reply_timeout_ms_) + " ms");
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_some();
    }
    if (own_txn) {
      json c = commit();
      if (c.contains("warnings")) result["warnings"] = std::move(c["warnings"]);
    }
  } catch (...) {
    if (own_txn && in_txn_) {
      try {
        std::string err;
        if (out_off < out.size() && !wire::write_all(fd_, std::string_view(out).substr(out_off), err))  // (a frame half sent first)
          throw ClientError("PROTOCOL", err);
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
  if (!wire::write_frame(fd_, request, err)) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      throw ClientError("TIMEOUT", "lfpd took no request for " + std::to_string(reply_timeout_ms_) + " ms");
    // lfpd closed the session: what it said last (a refused session's reason) is the error.
    try {
      pollfd p{fd_, POLLIN, 0};
      while (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        read_some();
        while (auto msg = buffered_message()) reply_to(id, std::move(*msg));  // (throws lfpd's error)
      }
    } catch (const ClientError& e) {
      if (e.code() != "PROTOCOL") throw;
    }
    throw ClientError("PROTOCOL", "lfpd: " + err);
  }
  for (;;)
    if (auto result = reply_to(id, read_message())) return std::move(*result);
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
    if (!in_.ready()) {
      pollfd p{fd_, POLLIN, 0};
      int n = ::poll(&p, 1, timeout_ms);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
    }
    json msg = read_message();
    if (msg.contains("event")) events_.push_back(std::move(msg));
  }
  json e = std::move(events_.front());
  events_.pop_front();
  return e;
}

}  // namespace lfp::client
