// SPDX-License-Identifier: MIT
#include "lfp/sys/netns.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace lfp::sys {

namespace {

std::runtime_error failure(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

ino_t inode_of(const char* path) {
  struct stat st {};
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

// /run/netns as `ip` makes it: a shared mount of its own, so that a namespace bound in it is seen from
// every mount namespace that shares it.
void prepare_netns_dir() {
  if (mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) throw failure(std::string("mkdir ") + kNetnsDir, errno);
  for (bool bound = false;;) {
    if (mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
    if (errno != EINVAL || bound) throw failure(std::string("mount --make-shared ") + kNetnsDir, errno);
    if (mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0)
      throw failure(std::string("mount --bind ") + kNetnsDir, errno);
    bound = true;
  }
}

}  // namespace

NetNamespace::NetNamespace(const std::string& name) : name_(name), path_(std::string(kNetnsDir) + "/" + name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw std::runtime_error("network namespace: '" + name + "' is not a name");
  prepare_netns_dir();
  const int file = ::open(path_.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (file < 0) throw failure("network namespace " + path_, errno);
  ::close(file);
  // A thread of its own unshares (the caller's threads stay where they are) and binds its new namespace.
  int err = 0;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0 || mount("/proc/thread-self/ns/net", path_.c_str(), "none", MS_BIND, nullptr) != 0)
      err = errno;
  }).join();
  if (err == 0 && (inode_ = inode_of(path_.c_str())) == 0) err = errno;
  if (err != 0) {
    remove_netns(path_.c_str());
    throw failure("cannot make network namespace " + name, err);
  }
}

NetNamespace::~NetNamespace() { remove_netns(path_.c_str()); }

NetnsScope::NetnsScope(const NetNamespace& ns) {
  previous_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (previous_ < 0) throw failure("/proc/thread-self/ns/net", errno);
  const int target = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0 || setns(target, CLONE_NEWNET) != 0) {
    const int err = errno;
    if (target >= 0) ::close(target);
    ::close(previous_);
    throw failure("cannot enter network namespace " + ns.name(), err);
  }
  ::close(target);
  if (current_netns() != ns.inode()) {
    setns(previous_, CLONE_NEWNET);
    ::close(previous_);
    throw std::runtime_error("entering network namespace " + ns.name() + " did not take");
  }
}

NetnsScope::~NetnsScope() {
  setns(previous_, CLONE_NEWNET);
  ::close(previous_);
}

int remove_netns(const char* path) noexcept {
  if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) return errno;
  if (unlink(path) != 0 && errno != ENOENT) return errno;
  return 0;
}

ino_t current_netns() { return inode_of("/proc/thread-self/ns/net"); }

std::vector<std::string> stale_netns(const std::string& prefix) {
  std::vector<std::string> stale;
  DIR* dir = opendir(kNetnsDir);
  if (!dir) return stale;
  while (const dirent* e = readdir(dir)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) != 0) continue;
    const long pid = std::strtol(e->d_name + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == getpid() || kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    stale.push_back(std::string(kNetnsDir) + "/" + e->d_name);
  }
  closedir(dir);
  return stale;
}

}  // namespace lfp::sys
