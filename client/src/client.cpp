// SPDX-License-Identifier: MIT
#include "lfp/client/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "lfp/protocol/json_text.hpp"
#include "lfp/protocol/request.hpp"
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
  if (msg.value("ok", false)) {  // (the result moved out, not copied: an apply's piece answers a thousand keys)
    const auto result = msg.find("result");
    return result == msg.end() ? json::object() : std::move(*result);
  }
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

// A piece of an apply: where its lists start in the whole ("filters":N,...) and the policy object's
// members it carries, as text ("filters":[...],...,"version":1).
struct Client::Piece {
  std::string first, members;
};

namespace {

// Each object serialized once, into pieces that fit the socket's buffer: the next piece is all there
// when lfpd is done with one (a piece larger than the buffer arrives in as many round trips as it
// takes to drain, while lfpd waits; a million filters took twice as long in 4 MiB pieces).
constexpr size_t kPieceBytes = 160 << 10;

// Fills pieces with objects, list by list, in the order they come. A piece holds one object at least.
class PieceMaker {
 public:
  // Whether an object of that size starts the next piece: this one is full.
  bool full(size_t object_bytes) const { return objects_ && text_.size() + object_bytes > kPieceBytes; }
  // `list`: a name from kLists (it outlives the maker); `index`: the object's place in the whole list.
  void add(std::string_view list, size_t index, std::string_view object) {
    if (list != open_) {
      close_list();
      text_ += std::string(text_.empty() ? "" : ",") + "\"" + std::string(list) + "\":[";
      first_ += std::string(first_.empty() ? "" : ",") + "\"" + std::string(list) + "\":" + std::to_string(index);
      open_ = list;
    } else {
      text_ += ',';
    }
    text_ += object;
    ++objects_;
  }
  // The piece made, with `others` (the policy's members that are not lists), and a fresh one begun.
  void take(std::string& first, std::string& members, std::string_view others) {
    close_list();
    first = std::move(first_);
    members = std::move(text_);
    if (!others.empty()) members += std::string(members.empty() ? "" : ",") + std::string(others);
    first_.clear();
    text_.clear();
    objects_ = 0;
  }

 private:
  void close_list() {
    if (!open_.empty()) text_ += ']';
    open_ = {};
  }
  std::string first_, text_;
  std::string_view open_;  // the list whose array is open
  size_t objects_ = 0;
};

// A member that is not a list ("version", or a mistake lfpd will name: it goes with every piece).
void add_other(std::string& others, std::string_view key, std::string_view value_text) {
  others += others.empty() ? "" : ",";
  wire::append_json(others, json(std::string(key)));
  others += ':';
  others += value_text;
}

std::string_view list_name(std::string_view k) {
  for (const char* l : kLists)
    if (k == l) return l;
  return {};
}

}  // namespace

// A policy object held whole (as nlohmann::json or a parsed file): its members that are not lists,
// and each list's objects as text (object_text(list, index, out)), made into pieces as they are sent.
struct Client::HeldLists {
  std::string others;
  std::vector<std::pair<std::string_view, size_t>> lists;  // (name, objects)
  std::function<void(size_t list, size_t index, std::string& out)> object_text;
};

json Client::apply_held(const HeldLists& held) {
  size_t list = 0, index = 0;
  bool done = false;
  PieceMaker maker;
  std::string one;
  return apply_pieces([&](Piece& out) {
    if (done) return false;
    for (; list < held.lists.size(); ++list, index = 0)
      for (; index < held.lists[list].second; ++index) {
        one.clear();
        held.object_text(list, index, one);
        if (maker.full(one.size())) return maker.take(out.first, out.members, held.others), true;
        maker.add(held.lists[list].first, index, one);
      }
    maker.take(out.first, out.members, held.others);
    done = true;
    return true;
  });
}

json Client::apply(const json& policy) {
  if (!policy.is_object()) return call("apply", json::object(), "policy", policy);  // (lfpd says what is wrong)
  HeldLists held;
  std::vector<const json*> arrays;
  for (const auto& [k, v] : policy.items())
    if (!is_list(k) || !v.is_array()) add_other(held.others, k, wire::to_json_text(v));
  for (const char* l : kLists)
    if (const auto it = policy.find(l); it != policy.end() && it->is_array())
      held.lists.emplace_back(l, it->size()), arrays.push_back(&*it);
  held.object_text = [&](size_t l, size_t i, std::string& out) { wire::append_json(out, (*arrays[l])[i]); };
  return apply_held(held);
}

json Client::apply(const policy::JsonValue& policy) {
  if (!policy.is_object()) {
    const uint64_t id = next_id_++;
    return exchange(id, "{\"id\":" + std::to_string(id) + ",\"op\":\"apply\",\"policy\":" + std::string(policy.text()) + "}");
  }
  HeldLists held;
  std::vector<const policy::JsonValue*> arrays;
  for (auto m = policy.members_begin(); m != policy.members_end(); ++m)
    if (!is_list(m->key) || !m->value.is_array()) add_other(held.others, m->key, m->value.text());
  for (const char* l : kLists)
    if (const policy::JsonValue* v = policy.find(l); v && v->is_array())
      held.lists.emplace_back(l, v->size()), arrays.push_back(v);
  held.object_text = [&](size_t l, size_t i, std::string& out) { out += (*arrays[l])[i].text(); };
  return apply_held(held);
}

// A policy file's pieces as it is parsed: a thread parses the text (all of it, with the checks lfp's
// own parse makes) and hands over each piece as soon as it is full, so that lfpd adds the first
// objects while the last are parsed. Text that is not valid JSON fails the apply, its transaction
// aborted, with the parser's error (JsonParseError), as a parse before sending would.
class Client::StreamedPieces : public policy::JsonStream {
 public:
  explicit StreamedPieces(std::string text) : parser_([this, t = std::move(text)]() mutable { parse(std::move(t)); }) {}
  ~StreamedPieces() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    parser_.join();
  }

  // The next piece, waiting for the parser; false when there is none. Throws what the parse threw.
  bool next(Piece& out) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty() || finished_; });
    if (ready_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return false;
    }
    out = std::move(ready_.front());
    ready_.pop_front();
    cv_.notify_all();
    return true;
  }

 private:
  static constexpr size_t kAhead = 16;  // pieces parsed ahead of lfpd, at most (2.5 MiB)
  struct Stopped {};                     // the apply ended before the parse

  void element(std::string_view member, size_t index, const policy::JsonValue& e) override {
    const std::string_view list = list_name(member);
    if (list.empty()) return;  // (not a list: the whole member goes with the others)
    if (auto dup = protocol::duplicate_member(e))
      throw policy::JsonParseError("/" + std::string(list) + "/" + std::to_string(index) + *dup, 0);
    if (maker_.full(e.text().size())) hand_over();
    maker_.add(list, index, e.text());
  }
  void member(std::string_view key, const policy::JsonValue& value) override {
    if (!is_list(key) || !value.is_array()) add_other(others_, key, value.text());
  }

  void hand_over() {
    Piece p;
    maker_.take(p.first, p.members, others_);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return ready_.size() < kAhead || stop_; });
    if (stop_) throw Stopped{};
    ready_.push_back(std::move(p));
    cv_.notify_all();
  }

  void parse(std::string text) {
    std::exception_ptr error;
    try {
      auto doc = policy::JsonDoc::parse(std::move(text), *this);
      if (auto dup = protocol::duplicate_member(doc->root())) throw policy::JsonParseError(*dup, 0);
      hand_over();  // the last piece, with the members that are not lists (some may follow the lists)
    } catch (const Stopped&) {
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(mu_);
    error_ = error;
    finished_ = true;
    cv_.notify_all();
  }

  PieceMaker maker_;
  std::string others_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Piece> ready_;
  bool finished_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread parser_;  // (last: it starts once the rest is made)
};

json Client::apply_text(std::string text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos || text[start] != '{') {  // not an object: lfpd says what is wrong
    auto doc = policy::JsonDoc::parse(std::move(text));
    return apply(doc->root());
  }
  StreamedPieces pieces(std::move(text));
  return apply_pieces([&](Piece& out) { return pieces.next(out); });
}

json Client::apply_pieces(const std::function<bool(Piece&)>& next_piece) {
  {
    const int want = 4 << 20;  // (as much as net.core.wmem_max lets it have: room for more pieces)
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  auto request = [&](uint64_t id, const Piece& p, bool in_pieces) {
    std::string r = "{\"id\":" + std::to_string(id) + ",\"op\":\"apply\"";
    if (in_pieces) r += ",\"first\":{" + p.first + "}";
    r += ",\"policy\":{" + p.members + "}}";
    return r;
  };
  std::optional<Piece> made(std::in_place);  // a piece made, not sent yet
  next_piece(*made);                         // (the first: always one, if only an empty policy)
  std::optional<Piece> after(std::in_place);  // the piece after it
  bool more = next_piece(*after);             // pieces wait to be made
  if (!more) {  // one piece: one request, lfpd's own transaction
    const uint64_t id = next_id_++;
    return exchange(id, request(id, *made, false));
  }
  const bool own_txn = !in_txn_;
  if (own_txn) begin();
  json result = {{"added", json::array()}};
  std::string out;  // the frame being written, from out_off
  size_t out_off = 0;
  try {
    // lfpd works on one piece while the next ones wait in the socket (and lfpd's reader thread reads
    // them) and the last reply is read: six pieces in flight. Inside the caller's transaction one at a time, so that a piece that fails
    // leaves it holding exactly the pieces before (as a failed call leaves a transaction unchanged).
    const size_t in_flight = own_txn ? 6 : 1;
    std::deque<uint64_t> waiting;  // sent, not answered yet
    while (made || more || !waiting.empty()) {
      if (made && out_off == out.size() && waiting.size() < in_flight) {
        const uint64_t id = next_id_++;
        const std::string r = request(id, *made, true);
        if (r.size() > wire::kMaxFrame) throw ClientError("PROTOCOL", "an object larger than a message (" + std::to_string(r.size()) + " bytes)");
        out = wire::encode(r);
        out_off = 0;
        waiting.push_back(id);
        made = std::move(after);
        after.reset();
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
        made.emplace();
        more = next_piece(*made);
        if (!more) made.reset();
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

Client::Listing Client::list(const std::string& op, const std::string& member, json args, size_t offset, size_t limit) {
  Listing out;
  for (json next = offset; !next.is_null() && (!limit || out.items.size() < limit);) {
    args["offset"] = next;
    args["limit"] = limit ? std::min(limit - out.items.size(), protocol::kMaxPage) : protocol::kMaxPage;
    json page = call(op, args);
    for (auto& o : page[member]) out.items.push_back(std::move(o));
    out.total = page.value("total", uint64_t{0});
    next = page["next_offset"];
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
