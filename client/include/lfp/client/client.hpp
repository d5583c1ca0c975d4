// SPDX-License-Identifier: MIT
#pragma once
// A session with lfpd over its Unix socket (docs/protocol.md). One object = one session; not
// thread-safe. Errors from the daemon arrive as ClientError with WFP's code names.
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/policy/json_doc.hpp"
#include "lfp/protocol/wire.hpp"

namespace lfp::client {

inline constexpr const char* kDefaultSocket = "/run/lfp/lfpd.sock";

class ClientError : public std::runtime_error {
 public:
  ClientError(std::string code, const std::string& message)
      : std::runtime_error(code + ": " + message), code_(std::move(code)), message_(message) {}
  // WFP's error name (ACCESS_DENIED, FILTER_NOT_FOUND, TIMEOUT...), or NOT_RUNNING / PROTOCOL.
  const std::string& code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  std::string code_, message_;
};

struct SessionOptions {
  std::string name;
  bool dynamic = false;          // objects added in this session go when it ends
  uint32_t txn_wait_ms = 0;      // 0: the daemon's default
  std::optional<std::string> provider;  // the provider this session acts for
  uint32_t reply_timeout_ms = 0;  // connecting and each wait for lfpd (0: no limit): TIMEOUT past it
};

class Client {
 public:
  Client(const std::string& socket_path = kDefaultSocket, const SessionOptions& opts = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request; returns "result" or throws ClientError. Change events arriving meanwhile are kept.
  nlohmann::json call(const std::string& op, nlohmann::json args = nlohmann::json::object());
  // The same with one more argument `name` given by reference (serialized in place, not copied:
  // policies can be large).
  nlohmann::json call(const std::string& op, nlohmann::json args, const std::string& name, const nlohmann::json& value);

  void begin(bool read_only = false) {
    call("txn_begin", {{"read_only", read_only}});
    in_txn_ = true;
  }
  // The result holds "warnings" for the transaction's filters at layers nothing enforces.
  nlohmann::json commit() {
    in_txn_ = false;  // (ended either way: a failed commit aborts)
    return call("txn_commit");
  }
  void abort() {
    in_txn_ = false;
    call("txn_abort");
  }

  nlohmann::json add(const std::string& kind, const nlohmann::json& object) {
    return call("add", {{"kind", kind}}, "object", object);
  }
  void remove(const std::string& kind, const std::string& key, bool force = false) {
    call("delete", {{"kind", kind}, {"key", key}, {"force", force}});
  }
  void remove_filter(uint64_t id) { call("delete", {{"kind", "filter"}, {"filter_id", id}}); }
  nlohmann::json get(const std::string& kind, const std::string& key) { return call("get", {{"kind", kind}, {"key", key}}); }
  // A paged listing (ops enum, netevents_enum, flows, pending_list: {"<member>": [...], "total",
  // "next_offset"}): the items from the `offset`-th on, at most `limit` (0: all), page by page as lfpd
  // serves them (a page is never too large for a frame), and how many there are in all.
  struct Listing {
    std::vector<nlohmann::json> items;
    uint64_t total = 0;
  };
  Listing list(const std::string& op, const std::string& member, nlohmann::json args = nlohmann::json::object(),
               size_t offset = 0, size_t limit = 0);
  // Every object of a kind matching the template.
  std::vector<nlohmann::json> enumerate(const std::string& kind, const nlohmann::json& tmpl = nlohmann::json::object()) {
    return list("enum", "objects", {{"kind", kind}, {"template", tmpl}}).items;
  }
  // A policy's objects, all or none. One larger than a message (a million filters) goes in pieces
  // inside one transaction: this session's own, or one begun and committed here.
  nlohmann::json apply(const nlohmann::json& policy);
  // The same from a parsed policy file: each object goes as the file has it (no copy into
  // nlohmann's objects and back to text: a million filters parse and go several times faster).
  nlohmann::json apply(const policy::JsonValue& policy);
  // The same from a policy file's text, sent as it is parsed (on a thread of its own): lfpd adds the
  // first objects while the last are parsed. Text that is not valid JSON, or repeats a member, throws
  // policy::JsonParseError (after aborting the transaction begun here).
  nlohmann::json apply_text(std::string text);
  nlohmann::json classify(const std::string& layer, const nlohmann::json& values, bool explain = false) {
    return call("classify", {{"layer", layer}, {"values", values}, {"explain", explain}});
  }
  void subscribe(const std::vector<std::string>& kinds = {});
  // The next change event, waiting up to timeout_ms (-1: forever). nullopt on timeout.
  std::optional<nlohmann::json> next_event(int timeout_ms);

  const nlohmann::json& session() const { return session_; }
  int fd() const { return fd_; }

 private:
  struct Piece;
  struct HeldLists;
  class StreamedPieces;
  nlohmann::json apply_held(const HeldLists& policy);
  nlohmann::json apply_pieces(const std::function<bool(Piece&)>& next_piece);
  std::optional<nlohmann::json> buffered_message();
  nlohmann::json read_message();
  void read_some();  // what the socket has (blocking until something) into in_
  std::optional<nlohmann::json> reply_to(uint64_t id, nlohmann::json msg);
  nlohmann::json exchange(uint64_t id, const std::string& request);
  int fd_ = -1;
  wire::FrameReader in_;  // replies and events read, not yet taken
  uint64_t next_id_ = 1;
  bool in_txn_ = false;
  uint32_t reply_timeout_ms_ = 0;
  nlohmann::json session_;
  std::deque<nlohmann::json> events_;
};

}  // namespace lfp::client
