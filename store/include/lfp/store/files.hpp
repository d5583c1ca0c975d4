// SPDX-License-Identifier: MIT
#pragma once
// The directories and files lfpd keeps (the state dir, its databases, the socket's directory) must
// be its own: another user who could write or replace them could read the event log, plant a policy
// or swap a path for a symlink (docs/security.md). These check that, or throw StoreError in one line.
#include <string>
#include <sys/types.h>

namespace lfp::store {

// Creates `dir` (and missing parents) with `mode` exactly, or checks the one there: a directory (not
// a symlink), owned by lfpd's user or root, writable by no one else.
void ensure_private_dir(const std::string& dir, mode_t mode);
// A file lfpd keeps in such a directory, if it exists: a regular file (not a symlink) owned by lfpd's
// user; read or write permission for others (an older lfpd made its files 0644) is taken away.
void check_own_file(const std::string& path);
// check_own_file for an SQLite database and its -wal and -shm files.
void check_own_database(const std::string& path);

}  // namespace lfp::store
