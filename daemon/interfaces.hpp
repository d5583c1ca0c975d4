// SPDX-License-Identifier: MIT
#pragma once
// lfpd's one rtnetlink watcher: it hears of links added, removed and renamed and of addresses
// coming and going in lfpd's network namespace, polled in lfpd's loop. It keeps the engine's
// interface table current (FilterEngine::set_interfaces) and tells those that asked (the packet
// layers' address table and MAC hooks).
#include <functional>
#include <memory>
#include <vector>

#include "lfp/engine/engine.hpp"
#include "server.hpp"

struct mnl_socket;

namespace lfp::daemon {

// This network namespace's interfaces now, name -> index. Throws std::runtime_error.
FilterEngine::InterfaceTable interface_table();

class InterfaceWatch {
 public:
  InterfaceWatch();  // throws std::runtime_error
  ~InterfaceWatch();
  InterfaceWatch(const InterfaceWatch&) = delete;
  InterfaceWatch& operator=(const InterfaceWatch&) = delete;

  // Readable when a link or an address changed: then call read().
  int fd() const;
  // Drains what woke the socket, tells each listener, and reads the table afresh (a notification
  // lost to a full socket buffer loses nothing: every read, theirs and this, is whole).
  FilterEngine::InterfaceTable read();
  // Called on every change, before the table is read.
  void on_change(std::function<void()> listener) { listeners_.push_back(std::move(listener)); }

 private:
  mnl_socket* nl_ = nullptr;
  std::vector<std::function<void()>> listeners_;
};

// Interfaces named in filters resolve in this network namespace: before the store loads (its filters
// take their indexes as they are added), and again whenever a link comes, goes or is renamed, when
// the kernel takes the whole policy again (link changes are rare).
void keep_interfaces_current(Server& server, InterfaceWatch& watch);

}  // namespace lfp::daemon
