// SPDX-License-Identifier: MIT
#pragma once
// A prepared SQLite statement (the policy store and the net event log): prepare, bind, step, read
// columns, finalized in the destructor. Errors go to the owner's error function, which throws its own
// error type ("<file>: <what>: <sqlite's message>").
#include <sqlite3.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lfp::sys {

// Throws; `what` names the step that failed ("prepare", "step").
using SqliteFail = void (*)(sqlite3* db, const std::string& what);

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql, SqliteFail fail);
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters count from 1. Text and blobs are copied.
  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, std::string_view v) { sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void bind(int i, std::span<const uint8_t> v) { sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void bind_null(int i) { sqlite3_bind_null(stmt_, i); }

  bool step();  // true: a row to read; false: done. Anything else goes to the error function.
  void run();   // step() to the end (a statement that returns no rows), then reset()
  void reset();  // ready to run again, its bindings cleared

  // Columns count from 0.
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  SqliteFail fail_;
};

}  // namespace lfp::sys
