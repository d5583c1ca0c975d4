// SPDX-License-Identifier: MIT
#include "lfp/netevents/log.hpp"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <variant>

#include "lfp/sys/sqlite.hpp"

namespace lfp::netevents {

using nlohmann::json;

namespace {

constexpr std::string_view kKeywords[] = {"INBOUND_MCAST",    "INBOUND_BCAST",  "CAPABILITY_DROP",
                                          "CAPABILITY_ALLOW", "CLASSIFY_ALLOW", "PORT_SCANNING_DROP"};

// The database file an error came from.
std::string file_of(sqlite3* db) {
  const char* file = db ? sqlite3_db_filename(db, "main") : nullptr;
  return file && *file ? file : "the net event log";
}

[[noreturn]] void db_fail(sqlite3* db, const std::string& what) {
  throw EventError(file_of(db) + ": " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw EventError(file_of(db) + ": " + sql + ": " + msg);
  }
}

using Bind = std::variant<int64_t, std::string, AddrKey>;

// A statement of the log's: its errors are EventErrors; a Bind is bound as what it holds.
class Stmt : public sys::Statement {
 public:
  Stmt(sqlite3* db, const std::string& sql) : sys::Statement(db, sql, db_fail) {}
  void bind(int i, const Bind& b) {
    std::visit([&](const auto& v) { sys::Statement::bind(i, to_bindable(v)); }, b);
  }

 private:
  static int64_t to_bindable(int64_t v) { return v; }
  static std::string_view to_bindable(const std::string& v) { return v; }
  static std::span<const uint8_t> to_bindable(const AddrKey& v) { return v; }
};

sqlite3* open_db(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw EventError("cannot open the net event log " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

const char* column_of(TemplateField f) {
  switch (f) {
    case TemplateField::IP_PROTOCOL: return "protocol";
    case TemplateField::IP_LOCAL_ADDRESS: return "local_addr";
    case TemplateField::IP_REMOTE_ADDRESS: return "remote_addr";
    case TemplateField::IP_LOCAL_PORT: return "local_port";
    case TemplateField::IP_REMOTE_PORT: return "remote_port";
    case TemplateField::ALE_APP_ID: return "app";
    case TemplateField::ALE_USER_ID: return "uid";
    case TemplateField::NET_EVENT_TYPE: return "type";
    case TemplateField::FILTER_KEY: return "filter_key";
    case TemplateField::PROVIDER_KEY: return "provider";
    case TemplateField::LAYER_KEY: return "layer";
  }
  return "type";
}

// The template as a WHERE clause (the same semantics as matches(): a NULL column fails every
// comparison, as an absent value fails every condition).
std::string where_clause(const Template& t, std::vector<Bind>& binds) {
  std::string w = "time_ns BETWEEN ? AND ?";
  binds.push_back(t.since);
  binds.push_back(t.until);
  if (t.only_uid) {
    w += " AND uid = ?";
    binds.push_back(*t.only_uid);
  }
  for (size_t i = 0; i < t.conditions.size();) {
    w += " AND (";
    size_t j = i;
    for (; j < t.conditions.size() && t.conditions[j].field == t.conditions[i].field; ++j) {
      const TemplateCondition& c = t.conditions[j];
      const std::string col = column_of(c.field);
      if (j > i) w += " OR ";
      switch (c.field) {
        case TemplateField::IP_LOCAL_ADDRESS:
        case TemplateField::IP_REMOTE_ADDRESS:
          if (c.addr.lo == c.addr.hi) {
            w += col + (c.negate ? " != ?" : " = ?");
            binds.push_back(c.addr.lo);
          } else {
            w += col + (c.negate ? " NOT BETWEEN ? AND ?" : " BETWEEN ? AND ?");
            binds.push_back(c.addr.lo);
            binds.push_back(c.addr.hi);
          }
          break;
        case TemplateField::ALE_APP_ID:
        case TemplateField::FILTER_KEY:
        case TemplateField::PROVIDER_KEY:
        case TemplateField::LAYER_KEY:
          if (c.prefix) {
            // WFP's PREFIX is a suffix test: the value ends with the condition.
            w += "substr(" + col + ", -?) = ?";
            binds.push_back(int64_t(c.text.size()));
          } else if (!c.file.empty()) {
            w += "(" + col + " = ? OR app_file = ?)";  // the path, or the same executable file
            binds.push_back(c.text);
            binds.push_back(c.file);
            break;
          } else {
            w += col + (c.negate ? " != ?" : " = ?");
          }
          binds.push_back(c.text);
          break;
        default:
          if (c.lo == c.hi) {
            w += col + (c.negate ? " != ?" : " = ?");
            binds.push_back(c.lo);
          } else {
            w += col + (c.negate ? " NOT BETWEEN ? AND ?" : " BETWEEN ? AND ?");
            binds.push_back(c.lo);
            binds.push_back(c.hi);
          }
      }
    }
    w += ")";
    i = j;
  }
  return w;
}

}  // namespace

bool Settings::has(std::string_view k) const { return std::find(keywords.begin(), keywords.end(), k) != keywords.end(); }

json to_json(const Settings& s) { return {{"collect", s.collect}, {"keywords", s.keywords}}; }

Settings settings_from_json(const json& j) {
  Settings s;
  if (!j.is_object()) throw EventError("/settings: must be an object");
  for (const auto& [k, v] : j.items()) {
    if (k == "collect") {
      if (!v.is_boolean()) throw EventError("/settings/collect: must be true or false");
      s.collect = v.get<bool>();
    } else if (k == "keywords") {
      if (!v.is_array()) throw EventError("/settings/keywords: must be an array");
      for (const auto& w : v) {
        if (!w.is_string() || std::find(std::begin(kKeywords), std::end(kKeywords), w.get<std::string>()) == std::end(kKeywords))
          throw EventError("/settings/keywords: " + w.dump() +
                           " is not a keyword (INBOUND_MCAST, INBOUND_BCAST, CAPABILITY_DROP, CAPABILITY_ALLOW, "
                           "CLASSIFY_ALLOW, PORT_SCANNING_DROP)");
        if (!s.has(w.get<std::string>())) s.keywords.push_back(w.get<std::string>());
      }
    } else {
      throw EventError("/settings/" + k + ": unknown member (collect, keywords)");
    }
  }
  return s;
}

json to_json(const Coverage& c) {
  json gaps = json::array();
  for (const Gap& g : c.gaps)
    gaps.push_back({{"from", format_time(g.from)},
                    {"until", g.until == kOpen ? json() : json(format_time(g.until))},
                    {"lost", g.lost},
                    {"reason", g.reason}});
  return {{"complete_since", format_time(c.complete_since)}, {"gaps", gaps}};
}

std::optional<std::string> uncovered(const Coverage& c, int64_t from, int64_t until) {
  if (from < c.complete_since)
    return "the log is complete only from " + format_time(c.complete_since) + ", after " + format_time(from);
  for (const Gap& g : c.gaps)
    if (g.from <= until && from <= g.until)
      return "the log has a gap from " + format_time(g.from) + " to " +
             (g.until == kOpen ? std::string("now") : format_time(g.until)) + " (" + g.reason +
             (g.lost ? ", " + std::to_string(g.lost) + " events lost" : std::string()) + ")";
  return std::nullopt;
}

EventLog::EventLog(const std::string& path, Retention retention, WallClock clock)
    : path_(path), retention_(retention), clock_(std::move(clock)) {
  wdb_ = open_db(path);
  try {
    exec(wdb_, "PRAGMA journal_mode=WAL");
    // Events are not policy: a power cut may lose the last second of them, never the database.
    exec(wdb_, "PRAGMA synchronous=NORMAL");
    exec(wdb_,
         "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, type INTEGER NOT NULL,"
         " protocol INTEGER, local_addr BLOB, local_port INTEGER, remote_addr BLOB, remote_port INTEGER, app TEXT,"
         " uid INTEGER, layer TEXT, filter_key TEXT, provider TEXT, body TEXT NOT NULL, app_file TEXT)");
    // (A log created before app_file existed gets the column.)
    if (sqlite3_exec(wdb_, "SELECT app_file FROM events LIMIT 0", nullptr, nullptr, nullptr) != SQLITE_OK)
      exec(wdb_, "ALTER TABLE events ADD COLUMN app_file TEXT");
    // The indexes a diagnosis narrows by: time, and (remote address | app | provider | user |
    // protocol) then time.
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_time ON events(time_ns)");
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_remote ON events(remote_addr, time_ns)");
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_app ON events(app, time_ns)");
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_app_file ON events(app_file, time_ns)");
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_provider ON events(provider, time_ns)");
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_uid ON events(uid, time_ns)");
    exec(wdb_, "CREATE INDEX IF NOT EXISTS events_protocol ON events(protocol, time_ns)");
    exec(wdb_, "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL)");
    exec(wdb_, "CREATE TABLE IF NOT EXISTS gaps(from_ns INTEGER NOT NULL, until_ns INTEGER NOT NULL,"
               " lost INTEGER NOT NULL, reason TEXT NOT NULL)");
    rdb_ = open_db(path);

    const int64_t now = clock_();
    std::optional<int64_t> last_alive;
    bool fresh = true;
    {
      Stmt s(wdb_, "SELECT k, v FROM meta");
      while (s.step()) {
        const std::string k = s.text(0), v = s.text(1);
        if (k == "complete_since") coverage_.complete_since = std::stoll(v), fresh = false;
        if (k == "last_alive") last_alive = std::stoll(v);
        if (k == "settings") settings_ = settings_from_json(json::parse(v));
      }
    }
    {
      Stmt s(wdb_, "SELECT from_ns, until_ns, lost, reason FROM gaps ORDER BY from_ns");
      while (s.step()) coverage_.gaps.push_back({s.integer(0), s.integer(1), uint64_t(s.integer(2)), s.text(3)});
    }
    {
      Stmt s(wdb_, "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events");
      s.step();
      count_ = uint64_t(s.integer(0));
      next_seq_ = written_seq_ = uint64_t(s.integer(1));
    }
    if (fresh) coverage_.complete_since = now;
    const bool off_gap_open = !coverage_.gaps.empty() && coverage_.gaps.back().until == kOpen;
    if (last_alive && !off_gap_open && *last_alive < now)
      coverage_.gaps.push_back({*last_alive, now, 0, "lfpd was not running"});
    if (!settings_.collect && !off_gap_open) coverage_.gaps.push_back({now, kOpen, 0, "collection off"});
    prune(now);
    save_meta();
  } catch (...) {
    sqlite3_close(rdb_);
    sqlite3_close(wdb_);
    throw;
  }
  // The thread takes no signals: the process's handling (lfpd's signalfd) stays as it is.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  thread_ = std::thread([this] { writer(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

EventLog::~EventLog() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  sqlite3_close(rdb_);
  sqlite3_close(wdb_);
}

std::optional<uint64_t> EventLog::add(Record r) {
  std::lock_guard lk(mu_);
  if (!settings_.collect) return std::nullopt;
  if (r.type == EventType::CLASSIFY_ALLOW && !settings_.has("CLASSIFY_ALLOW")) return std::nullopt;
  if (r.type == EventType::CAPABILITY_ALLOW && !settings_.has("CAPABILITY_ALLOW")) return std::nullopt;
  if (queue_.size() >= kMaxQueue) {
    if (queue_lost_++ == 0) queue_lost_from_ = r.time_ns;
    queue_lost_until_ = std::max(queue_lost_until_, r.time_ns);
    return std::nullopt;
  }
  const uint64_t seq = r.seq = ++next_seq_;
  queue_.push_back(std::move(r));
  if (queue_.size() == 1) cv_.notify_one();
  return seq;
}

void EventLog::flush() {
  std::unique_lock lk(mu_);
  const uint64_t target = next_seq_;
  meta_dirty_ = true;
  cv_.notify_one();
  flushed_cv_.wait(lk, [&] { return written_seq_ >= target && !meta_dirty_; });
}

void EventLog::add_gap(int64_t from, int64_t until, uint64_t lost, std::string reason) {
  std::lock_guard lk(mu_);
  coverage_.gaps.push_back({from, until, lost, std::move(reason)});
  std::sort(coverage_.gaps.begin(), coverage_.gaps.end(), [](const Gap& a, const Gap& b) { return a.from < b.from; });
  meta_dirty_ = true;
  cv_.notify_one();
}

Coverage EventLog::coverage() const {
  std::lock_guard lk(mu_);
  return coverage_;
}

Settings EventLog::settings() const {
  std::lock_guard lk(mu_);
  return settings_;
}

void EventLog::set_settings(const Settings& s) {
  std::lock_guard lk(mu_);
  const int64_t now = clock_();
  if (settings_.collect && !s.collect) coverage_.gaps.push_back({now, kOpen, 0, "collection off"});
  if (!settings_.collect && s.collect)
    for (Gap& g : coverage_.gaps)
      if (g.until == kOpen) g.until = now;
  settings_ = s;
  meta_dirty_ = true;
  cv_.notify_one();
}

uint64_t EventLog::lost_between(uint64_t first, uint64_t last) const {
  std::lock_guard lk(mu_);
  uint64_t n = 0;
  for (const auto& [from, until] : lost_seqs_)
    if (from <= last && first <= until) n += std::min(until, last) - std::max(from, first) + 1;
  return n;
}

std::string EventLog::last_write_error() const {
  std::lock_guard lk(mu_);
  return last_write_error_;
}

uint64_t EventLog::size() const {
  std::lock_guard lk(mu_);
  return count_;
}

void EventLog::writer() {
  std::vector<Record> batch;
  auto last_beat = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_ || !queue_.empty() || meta_dirty_; });
    const auto now_steady = std::chrono::steady_clock::now();
    const bool beat = now_steady - last_beat >= std::chrono::seconds(1);
    if (queue_lost_) {
      coverage_.gaps.push_back({queue_lost_from_, queue_lost_until_, queue_lost_, "net event queue full"});
      queue_lost_ = 0;
      queue_lost_until_ = 0;
      meta_dirty_ = true;
    }
    const size_t n = std::min<size_t>(queue_.size(), 8192);
    batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
    queue_.erase(queue_.begin(), queue_.begin() + n);
    const bool meta = meta_dirty_ || beat || stop_;
    meta_dirty_ = false;
    const uint64_t last = batch.empty() ? written_seq_ : batch.back().seq;
    lk.unlock();
    bool round_failed = false;
    try {
      exec(wdb_, "BEGIN");
      if (!batch.empty()) write_batch(batch);
      if (meta || count_ > retention_.max_events) prune(clock_());
      if (meta) save_meta();
      exec(wdb_, "COMMIT");
    } catch (const std::exception& e) {
      // The disk refused (full?): the batch is lost, and the log says so.
      sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
      lk.lock();
      if (!batch.empty()) {
        coverage_.gaps.push_back({batch.front().time_ns, batch.back().time_ns, batch.size(), "net event log write failed"});
        if (lost_seqs_.size() == kLostRangesKept) lost_seqs_.pop_front();
        lost_seqs_.push_back({batch.front().seq, batch.back().seq});
      }
      last_write_error_ = e.what();
      meta_dirty_ = true;
      round_failed = true;
      lk.unlock();
    }
    if (meta) last_beat = now_steady;
    batch.clear();
    lk.lock();
    written_seq_ = last;
    flushed_cv_.notify_all();
    // What changed while this round wrote is written by the next (a gap added during the last save is
    // not lost at shutdown), unless this round could not write: then stopping loses only what it said.
    if (stop_ && queue_.empty() && (round_failed || (!meta_dirty_ && !queue_lost_))) break;
  }
}

void EventLog::write_batch(std::vector<Record>& batch) {
  Stmt ins(wdb_,
           "INSERT INTO events(seq, time_ns, type, protocol, local_addr, local_port, remote_addr, remote_port, app,"
           " uid, layer, filter_key, provider, body, app_file) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  auto num_or_null = [&](int i, int64_t v) { v < 0 ? ins.bind_null(i) : ins.bind(i, v); };
  auto text_or_null = [&](int i, const std::string& v) { v.empty() ? ins.bind_null(i) : ins.bind(i, v); };
  for (const Record& r : batch) {
    ins.bind(1, int64_t(r.seq));
    ins.bind(2, r.time_ns);
    ins.bind(3, int64_t(r.type));
    num_or_null(4, r.ip_protocol);
    r.local_addr ? ins.bind(5, *r.local_addr) : ins.bind_null(5);
    num_or_null(6, r.local_port);
    r.remote_addr ? ins.bind(7, *r.remote_addr) : ins.bind_null(7);
    num_or_null(8, r.remote_port);
    text_or_null(9, r.app_id);
    num_or_null(10, r.uid);
    text_or_null(11, r.layer);
    text_or_null(12, r.filter_key);
    text_or_null(13, r.provider);
    ins.bind(14, r.body.dump());
    text_or_null(15, r.app_file);
    ins.step();
    ins.reset();
  }
  std::lock_guard lk(mu_);
  count_ += batch.size();
}

// Drops events beyond the retention (the oldest first); the log is then complete only from the
// newest dropped one on. Writer thread (or the constructor, before it starts).
void EventLog::prune(int64_t now) {
  int64_t cutoff = now - retention_.max_age_ns;  // events before it go
  uint64_t count;
  {
    std::lock_guard lk(mu_);
    count = count_;
  }
  if (count > retention_.max_events) {
    Stmt s(wdb_, "SELECT time_ns FROM events ORDER BY time_ns DESC LIMIT 1 OFFSET ?");
    s.bind(1, int64_t(retention_.max_events));
    if (s.step()) cutoff = std::max(cutoff, s.integer(0) + 1);
  }
  Stmt del(wdb_, "DELETE FROM events WHERE time_ns < ?");
  del.bind(1, cutoff);
  del.step();
  const uint64_t removed = uint64_t(sqlite3_changes(wdb_));
  std::lock_guard lk(mu_);
  count_ -= std::min(count_, removed);
  if (cutoff > coverage_.complete_since) {
    coverage_.complete_since = cutoff;
    std::erase_if(coverage_.gaps, [&](const Gap& g) { return g.until < cutoff; });
    meta_dirty_ = true;
  }
}

void EventLog::save_meta() {
  Coverage c;
  Settings s;
  {
    std::lock_guard lk(mu_);
    c = coverage_;
    s = settings_;
  }
  Stmt put(wdb_, "INSERT INTO meta(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v");
  const std::pair<const char*, std::string> rows[] = {{"complete_since", std::to_string(c.complete_since)},
                                                      {"last_alive", std::to_string(clock_())},
                                                      {"settings", to_json(s).dump()}};
  for (const auto& [k, v] : rows) {
    put.bind(1, std::string(k));
    put.bind(2, v);
    put.step();
    put.reset();
  }
  exec(wdb_, "DELETE FROM gaps");
  Stmt ins(wdb_, "INSERT INTO gaps VALUES(?, ?, ?, ?)");
  for (const Gap& g : c.gaps) {
    ins.bind(1, g.from);
    ins.bind(2, g.until);
    ins.bind(3, int64_t(g.lost));
    ins.bind(4, g.reason);
    ins.step();
    ins.reset();
  }
}

std::vector<Record> EventLog::query(const Template& t, size_t offset, size_t limit, bool newest_first,
                                    uint64_t* total) {
  std::vector<Bind> binds;
  const std::string where = where_clause(t, binds);
  std::lock_guard lk(read_mu_);
  if (total) {
    Stmt c(rdb_, "SELECT COUNT(*) FROM events WHERE " + where);
    for (size_t i = 0; i < binds.size(); ++i) c.bind(int(i + 1), binds[i]);
    c.step();
    *total = uint64_t(c.integer(0));
  }
  const char* dir = newest_first ? " DESC" : "";
  Stmt s(rdb_, "SELECT seq, time_ns, body FROM events WHERE " + where + " ORDER BY time_ns" + dir + ", seq" + dir +
                   " LIMIT ? OFFSET ?");
  size_t i = 0;
  for (; i < binds.size(); ++i) s.bind(int(i + 1), binds[i]);
  s.bind(int(i + 1), int64_t(std::min<size_t>(limit, INT64_MAX)));
  s.bind(int(i + 2), int64_t(offset));
  std::vector<Record> out;
  while (s.step()) {
    Record r = parse_event(json::parse(s.text(2)), 0);
    r.seq = uint64_t(s.integer(0));
    r.time_ns = s.integer(1);  // (the body's time is to the microsecond)
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Record> EventLog::enumerate(const Template& t, size_t offset, size_t limit, bool newest_first,
                                        uint64_t* total) {
  return query(t, offset, limit, newest_first, total);
}

std::optional<Record> EventLog::most_recent(const Template& t) {
  auto v = query(t, 0, 1, true, nullptr);
  if (v.empty()) return std::nullopt;
  return std::move(v.front());
}

}  // namespace lfp::netevents
