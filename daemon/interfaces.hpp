#pragma once
// lfpd's network namespace's interfaces by name, kept current for the engine's interface table
// (FilterEngine::set_interfaces): an rtnetlink socket that hears of links added, removed and renamed
// (RTM_NEWLINK, RTM_DELLINK), polled in lfpd's loop.
#include <memory>

#include "lfp/engine/engine.hpp"

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

  // Readable when a link changed: then call read().
  int fd() const;
  // Drains what woke the socket and reads the table afresh (a notification lost to a full socket
  // buffer loses nothing: every read is whole).
  FilterEngine::InterfaceTable read();

 private:
  mnl_socket* nl_ = nullptr;
};

}  // namespace lfp::daemon
