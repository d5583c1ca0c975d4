// SPDX-License-Identifier: MIT
#pragma once
// The persistent half of the policy: objects with the PERSISTENT flag (and BOOTTIME filters), kept
// as JSON rows in SQLite (WAL mode, synchronous FULL). A commit is one SQLite transaction, so a crash
// at any point leaves either the old or the new policy, never a mix.
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

struct sqlite3;

namespace lfp::store {

// Load order: an object is loaded after everything it may reference.
enum class Kind : int { PROVIDER = 0, SUBLAYER = 1, CALLOUT = 2, PROVIDER_CONTEXT = 3, FILTER = 4 };

struct Record {
  Kind kind;
  std::string key;   // GUID text
  uint32_t owner_uid = 0;
  std::string body;  // the object as policy JSON
};

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  // Opens (creating if needed) DIR/policy.db. Throws StoreError.
  explicit Store(const std::string& dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Every stored object, by kind (providers first) then in the order they were stored.
  std::vector<Record> load() const;
  // Writes upserts and deletes atomically, durable when it returns (WAL, synchronous FULL). Throws
  // StoreError (and then nothing was written).
  void commit(const std::vector<Record>& upserts, const std::vector<std::pair<Kind, std::string>>& deletes);
  // Copying committed pages from the WAL into the database file (a checkpoint) makes nothing more or
  // less durable: after each commit a thread of the store does it on its own connection (a passive
  // checkpoint, which never blocks a commit). SQLite runs one inside a commit only once the WAL
  // holds kAutoCheckpointPages pages. checkpoint() does one now, on the caller's thread.
  void checkpoint();
  static constexpr int kAutoCheckpointPages = 16384;  // 64 MiB of 4 KiB pages
  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql);
  void checkpointer();  // the checkpoint thread
  sqlite3* db_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool due_ = false, stop_ = false;
  std::string path_;
  int64_t next_seq_ = 0;  // load order: the highest seq written so far
};

}  // namespace lfp::store
