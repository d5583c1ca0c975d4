// SPDX-License-Identifier: MIT
#pragma once
// The Server's own records (sessions, queued requests, write transactions): shared by server.cpp
// (the loop and transactions) and ops_core.cpp (lfpd's own ops), nothing else.
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "lfp/protocol/wire.hpp"
#include "server.hpp"

namespace lfp::daemon {

// A request as queued: being read (a large frame, on the reader's worker) until process() takes it;
// then its members as JSON, except "policy" and "object", which the write operations read straight
// from the parsed frame (and whose text the store keeps).
struct Server::Request {
  RequestReader::Pending pending;
  nlohmann::json req;
  std::shared_ptr<policy::JsonDoc> doc;
  mutable std::optional<policy::Policy> policy;  // op "apply": its policy, read by the reader
  std::exception_ptr policy_error;
  const policy::JsonValue* member(std::string_view name) const { return doc->root().find(name); }
  // The request read (waiting for the worker if it is not yet); false: not a request, and why.
  bool take(std::string& error) {
    if (doc) return true;
    ReadRequest& r = pending.get();
    req = std::move(r.req);
    error = std::move(r.error);
    if (!error.empty()) return false;
    doc = std::move(r.doc);
    policy = std::move(r.policy);
    policy_error = r.policy_error;
    return true;
  }
};

struct Server::Session {
  uint64_t id = 0;
  int fd = -1;
  ucred cred{};
  Role role = Role::NONE;
  Guid key;
  std::string name;
  bool hello = false;
  bool dynamic = false;
  uint32_t txn_wait_ms = 0;
  std::optional<Guid> provider;
  wire::FrameReader reader;
  std::string out;
  size_t out_off = 0;
  std::deque<Request> queue;                      // requests in arrival order
  std::optional<Clock::time_point> deadline;      // the head request waits for the lock until then
  enum class Txn { NONE, READ, WRITE } txn = Txn::NONE;
  Clock::time_point txn_since{}, last_request{};
  Clock::time_point last_read{};   // the last bytes from the client
  Clock::time_point frame_since{}; // the first byte of a request not yet whole (epoch: none)
  std::string txn_ended;  // why lfpd ended this session's transaction (told at its next request)
  bool subscribed = false;
  std::set<ObjKind> sub_kinds;
  bool closing = false;
};

// One change of a write transaction, in order: what undoes it, and what commit persists and announces.
struct Server::Undo {
  bool added;        // true: undo deletes the object; false: undo restores `object`
  ObjKind kind;
  Guid key;
  // The change notification's object (with "owner") if someone listened when the change was made,
  // else null. Commit announces the non-null ones.
  nlohmann::json body;
  Owner owner;
  std::string_view text;  // a persistent added object's request text (in the transaction's texts), if any
  // A deleted object as the engine held it, run-time ids included, to be restored exactly (behind a
  // pointer: a transaction of a million adds keeps a million of these records).
  using Deleted = std::variant<Provider, Sublayer, Callout, ProviderContext, Filter>;
  std::unique_ptr<Deleted> object;
  // An added object as it was added, so that a commit of a million adds need not look each one up:
  bool persistent = false;  // PERSISTENT or BOOTTIME
  LayerId layer{};          // a filter's layer
};

struct Server::WriteTxn {
  uint64_t session;
  bool explicit_txn;
  std::vector<Undo> undo;                              // one entry per change, in order
  std::deque<std::string> texts;  // the request texts of the persistent objects added, for the store
};

}  // namespace lfp::daemon
