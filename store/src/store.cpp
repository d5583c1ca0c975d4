// SPDX-License-Identifier: MIT
#include "lfp/store/store.hpp"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <numeric>
#include <tuple>

#include "lfp/store/files.hpp"
#include "lfp/sys/sqlite.hpp"

namespace lfp::store {

namespace {
// An SQLite error, naming the database file it came from.
std::string db_error(sqlite3* db, const std::string& what) {
  const char* file = sqlite3_db_filename(db, "main");
  return std::string(file && *file ? file : "policy store") + ": " + what + ": " + sqlite3_errmsg(db);
}

[[noreturn]] void fail(sqlite3* db, const std::string& what) { throw StoreError(db_error(db, "sqlite " + what)); }

struct Stmt : sys::Statement {
  Stmt(sqlite3* db, std::string_view sql) : sys::Statement(db, sql, fail) {}
};
}  // namespace

Store::Store(const std::string& dir) {
  ensure_private_dir(dir, 0700);
  path_ = dir + "/policy.db";
  check_own_database(path_);
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("cannot open " + path_ + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec(("PRAGMA wal_autocheckpoint=" + std::to_string(kAutoCheckpointPages)).c_str());
  exec("CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL)");
  exec("INSERT OR IGNORE INTO meta VALUES('schema', '1')");
  exec("CREATE TABLE IF NOT EXISTS objects(kind INTEGER NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,"
       " owner_uid INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(kind, key))");
  Stmt s(db_, "SELECT COALESCE(MAX(seq), 0) FROM objects");
  if (s.step()) next_seq_ = s.integer(0);
  // The thread takes no signals: the process's handling (lfpd's signalfd) stays as it is.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  thread_ = std::thread([this] { checkpointer(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close(db_);
}

void Store::checkpointer() {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return;  // then SQLite's own checkpoints (past kAutoCheckpointPages) are all there is
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);  // opens the WAL on this connection
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return due_ || stop_; });
    if (stop_) break;
    due_ = false;
    l.unlock();
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);  // best effort
    l.lock();
  }
  l.unlock();
  sqlite3_close(db);
}

void Store::checkpoint() {
  int log = 0, done = 0;
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done) != SQLITE_OK)
    throw StoreError(db_error(db_, "sqlite checkpoint"));
}

void Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw StoreError(path_ + ": sqlite: " + msg + " (" + sql + ")");
  }
}

std::vector<Record> Store::load() const {
  Stmt s(db_, "SELECT kind, key, owner_uid, body FROM objects ORDER BY kind, seq");
  std::vector<Record> out;
  while (s.step()) {
    Record r;
    r.kind = static_cast<Kind>(s.integer(0));
    r.key = s.text(1);
    r.owner_uid = static_cast<uint32_t>(s.integer(2));
    r.body = s.text(3);
    out.push_back(std::move(r));
  }
  return out;
}

void Store::commit(const std::vector<Record>& upserts, const std::vector<std::pair<Kind, std::string>>& deletes) {
  if (upserts.empty() && deletes.empty()) return;
  exec("BEGIN IMMEDIATE");
  try {
    Stmt del(db_, "DELETE FROM objects WHERE kind = ?1 AND key = ?2");
    for (const auto& [kind, key] : deletes) {
      del.bind(1, static_cast<int64_t>(kind));
      del.bind(2, key);
      del.run();
    }
    Stmt up(db_,
            "INSERT INTO objects(kind, key, seq, owner_uid, body) VALUES(?1, ?2, ?5, ?3, ?4)"
            " ON CONFLICT(kind, key) DO UPDATE SET owner_uid = excluded.owner_uid, body = excluded.body");
    // In key order, which dirties fewer index pages than the order given; seq keeps that order.
    std::vector<size_t> order(upserts.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(upserts[a].kind, upserts[a].key) < std::tie(upserts[b].kind, upserts[b].key);
    });
    for (size_t i : order) {
      const Record& r = upserts[i];
      up.bind(1, static_cast<int64_t>(r.kind));
      up.bind(2, r.key);
      up.bind(3, static_cast<int64_t>(r.owner_uid));
      up.bind(4, r.body);
      up.bind(5, next_seq_ + 1 + static_cast<int64_t>(i));
      up.run();
    }
    exec("COMMIT");
    next_seq_ += static_cast<int64_t>(upserts.size());
    {
      std::lock_guard<std::mutex> l(mu_);
      due_ = true;
    }
    cv_.notify_one();
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace lfp::store
