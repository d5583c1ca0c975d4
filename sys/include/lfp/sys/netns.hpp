// SPDX-License-Identifier: MIT
#pragma once
// Network namespaces made for a while (the tests' sandboxes, lfp import --verify): bound at
// /run/netns/NAME as `ip netns add` binds them, so that `ip -n NAME` and other programs find them, and
// removed by their owner's destructor whatever happens in between.
//
//   lfp::sys::NetNamespace ns("lfpv-123-0-h");
//   { lfp::sys::NetnsScope in(ns); socket(...); }  // this thread in ns for the scope
#include <sys/types.h>

#include <string>
#include <vector>

namespace lfp::sys {

inline constexpr const char* kNetnsDir = "/run/netns";

class NetNamespace {
 public:
  // A fresh namespace bound at /run/netns/NAME (made a shared mount of its own first, as `ip` makes it,
  // so that it is seen from other mount namespaces). Throws std::runtime_error with a one-line reason
  // (not root, NAME taken).
  explicit NetNamespace(const std::string& name);
  ~NetNamespace();  // remove_netns(path()); a process still in it keeps it, unnamed
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }  // /run/netns/NAME: SpawnOptions::netns
  ino_t inode() const { return inode_; }            // tells it from every other namespace

 private:
  std::string name_, path_;
  ino_t inode_ = 0;  // (no fd is kept open: removed, it is gone once nothing runs in it)
};

// This thread in `ns` for the scope, then back in the namespace it was in. Throws std::runtime_error
// when setns fails or does not take.
class NetnsScope {
 public:
  explicit NetnsScope(const NetNamespace& ns);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  int previous_ = -1;
};

// What `ip netns del` does: detaches the bind mount at `path` and removes the file. Returns 0, or the
// errno of the step that failed ("not there" is no failure). Async-signal-safe: owners call it from
// their signal handlers too.
int remove_netns(const char* path) noexcept;

// The namespace this thread is in (its inode), 0 when it cannot be told.
ino_t current_netns();

// /run/netns/PREFIX<pid>-... of processes that no longer run (killed by SIGKILL before they could
// remove theirs): their paths, for the caller to empty and remove.
std::vector<std::string> stale_netns(const std::string& prefix);

}  // namespace lfp::sys
