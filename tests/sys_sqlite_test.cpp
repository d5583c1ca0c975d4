// SPDX-License-Identifier: MIT
// lfp::sys::Statement (sys/include/lfp/sys/sqlite.hpp): binds, steps and columns, and its errors going
// to the owner's error function.
#include <gtest/gtest.h>

#include <stdexcept>

#include "lfp/sys/sqlite.hpp"

namespace {

class OwnError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(sqlite3* db, const std::string& what) { throw OwnError(what + ": " + sqlite3_errmsg(db)); }

class SysSqlite : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK); }
  void TearDown() override { sqlite3_close(db_); }
  sqlite3* db_ = nullptr;
};

TEST_F(SysSqlite, BindStepColumns) {
  lfp::sys::Statement(db_, "CREATE TABLE t(n INTEGER, s TEXT, b BLOB)", fail).run();
  lfp::sys::Statement ins(db_, "INSERT INTO t VALUES(?1, ?2, ?3)", fail);
  const uint8_t blob[3] = {1, 2, 3};
  for (int64_t i = 0; i < 3; ++i) {
    ins.bind(1, i);
    ins.bind(2, std::string("row ") + std::to_string(i));
    ins.bind(3, std::span<const uint8_t>(blob));
    ins.run();  // and reset: ready for the next
  }
  ins.bind(1, int64_t{9});
  ins.bind_null(2);
  ins.run();
  lfp::sys::Statement sel(db_, "SELECT n, s, length(b) FROM t ORDER BY n", fail);
  std::vector<std::string> rows;
  while (sel.step()) rows.push_back(std::to_string(sel.integer(0)) + "|" + (sel.is_null(1) ? "null" : sel.text(1)) + "|" +
                                    std::to_string(sel.integer(2)));
  EXPECT_EQ(rows, (std::vector<std::string>{"0|row 0|3", "1|row 1|3", "2|row 2|3", "9|null|0"}));
}

TEST_F(SysSqlite, ErrorsGoToTheOwnersFunction) {
  try {
    lfp::sys::Statement(db_, "SELEKT 1", fail);
    FAIL() << "expected OwnError";
  } catch (const OwnError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("prepare: ", 0), 0u) << e.what();
  }
  lfp::sys::Statement(db_, "CREATE TABLE u(k INTEGER PRIMARY KEY)", fail).run();
  lfp::sys::Statement ins(db_, "INSERT INTO u VALUES(1)", fail);
  ins.run();
  try {
    ins.run();  // the same key again
    FAIL() << "expected OwnError";
  } catch (const OwnError& e) {
    EXPECT_NE(std::string(e.what()).find("step: UNIQUE constraint failed"), std::string::npos) << e.what();
  }
}

}  // namespace
