// SPDX-License-Identifier: MIT
#include "lfp/store/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "lfp/store/store.hpp"

namespace lfp::store {

namespace {

std::string octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// Holds an fd for the checks and the fchmod (never a path: it could be swapped between the two).
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void ensure_private_dir(const std::string& dir, mode_t mode) {
  const std::filesystem::path p(dir);
  bool made = false;
  if (::mkdir(dir.c_str(), mode) == 0) {
    made = true;
  } else if (errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) throw StoreError("cannot create " + p.parent_path().string() + ": " + ec.message());
    made = ::mkdir(dir.c_str(), mode) == 0;
  }
  if (!made && errno != EEXIST) throw StoreError("cannot create directory " + dir + ": " + std::strerror(errno));
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (d.fd < 0)
    throw StoreError(dir + ": " + (errno == ELOOP || errno == ENOTDIR ? std::string("not a directory (a symlink?)")
                                                                      : std::string(std::strerror(errno))));
  if (made && ::fchmod(d.fd, mode) != 0)  // (mkdir's mode went through the umask)
    throw StoreError("cannot set the mode of " + dir + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(d.fd, &st) != 0) throw StoreError(dir + ": " + std::strerror(errno));
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    throw StoreError(dir + " belongs to uid " + std::to_string(st.st_uid) + ", not lfpd's (uid " +
                     std::to_string(::geteuid()) + ") or root: refusing to use it");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    throw StoreError(dir + " is writable by other users (mode " + octal(st.st_mode) +
                     "): refusing to use it (chmod go-w, or choose another directory)");
}

void check_own_file(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0) {
    if (errno == ENOENT) return;
    throw StoreError(path + ": " + (errno == ELOOP ? std::string("a symlink: refusing to use it") : std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw StoreError(path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw StoreError(path + ": not a regular file");
  if (st.st_uid != ::geteuid())
    throw StoreError(path + " belongs to uid " + std::to_string(st.st_uid) + ", not lfpd's (uid " +
                     std::to_string(::geteuid()) + "): refusing to use it (planted?)");
  if ((st.st_mode & 077) && ::fchmod(f.fd, st.st_mode & 0700) != 0)
    throw StoreError("cannot make " + path + " private: " + std::strerror(errno));
}

void check_own_database(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) check_own_file(path + suffix);
}

}  // namespace lfp::store
