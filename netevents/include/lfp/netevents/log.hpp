// SPDX-License-Identifier: MIT
#pragma once
// The net event log: events in SQLite (WAL) with a bounded count and age, written by a thread of its
// own so that whoever reports an event (the data path's ring, the ingestion API) never waits for the
// disk. It keeps a coverage record: the time from which the log is complete, and every gap in it
// (lfpd not running, collection off, events lost to a full ring or queue) with how many were lost.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/netevents/event.hpp"
#include "lfp/netevents/template.hpp"

struct sqlite3;

namespace lfp::netevents {

struct Retention {
  uint64_t max_events = 1'000'000;
  int64_t max_age_ns = int64_t{7} * 24 * 3600 * 1'000'000'000;
};

// Collection settings (FWPM_ENGINE_COLLECT_NET_EVENTS and FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS).
// Drops are kept while `collect` is on; allows only with the CLASSIFY_ALLOW / CAPABILITY_ALLOW
// keyword.
struct Settings {
  bool collect = true;
  std::vector<std::string> keywords;  // INBOUND_MCAST, INBOUND_BCAST, CAPABILITY_DROP, CAPABILITY_ALLOW,
                                      // CLASSIFY_ALLOW, PORT_SCANNING_DROP
  bool has(std::string_view k) const;
};
nlohmann::json to_json(const Settings& s);
Settings settings_from_json(const nlohmann::json& j);  // throws EventError

inline constexpr int64_t kOpen = std::numeric_limits<int64_t>::max();  // a gap that has not ended
struct Gap {
  int64_t from = 0, until = kOpen;
  uint64_t lost = 0;  // events known to be lost in it (0: unknown or none, e.g. collection off)
  std::string reason;
};
struct Coverage {
  int64_t complete_since = 0;  // the log holds every collected event from then on, except in gaps
  std::vector<Gap> gaps;
};
nlohmann::json to_json(const Coverage& c);
// Why [from, until] is not covered (before complete_since, or meets a gap), or nullopt if it is.
std::optional<std::string> uncovered(const Coverage& c, int64_t from, int64_t until);

// The wall clock a log reads (ns since the epoch): now_ns, or a test's own.
using WallClock = std::function<int64_t()>;

class EventLog {
 public:
  // Opens (creating) the database at `path`. A log that was closed or abandoned earlier gets a gap
  // from its last sign of life until now ("lfpd was not running"). Throws EventError. `clock` says
  // when now is: for coverage, gaps and retention (thread-safe: the writer thread reads it too).
  explicit EventLog(const std::string& path, Retention retention = {}, WallClock clock = now_ns);
  ~EventLog();  // writes what is queued
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Queues an event for the writer: its seq, or nullopt when it is not collected (settings) or the
  // queue is full (then it counts as lost, in a gap). Thread-safe.
  std::optional<uint64_t> add(Record r);
  // Returns once everything queued before the call is on disk.
  void flush();
  // Records a gap (e.g. the data path's ring overflowed: `lost` events between `from` and `until`).
  void add_gap(int64_t from, int64_t until, uint64_t lost, std::string reason);

  Coverage coverage() const;
  Settings settings() const;
  void set_settings(const Settings& s);  // switching collection off opens a gap, on closes it
  Retention retention() const { return retention_; }

  // Reads see everything flushed. Ordered by time (then arrival); newest first if asked.
  std::vector<Record> enumerate(const Template& t, size_t offset, size_t limit, bool newest_first,
                                uint64_t* total = nullptr);
  std::optional<Record> most_recent(const Template& t);
  uint64_t size() const;
  const std::string& path() const { return path_; }
  // Of the events with seqs first..last (add's), how many a failed write lost (of the last
  // kLostRangesKept failed writes), and why the last write failed ("": none has).
  uint64_t lost_between(uint64_t first, uint64_t last) const;
  std::string last_write_error() const;

 private:
  void writer();
  void write_batch(std::vector<Record>& batch);
  void prune(int64_t now);
  void save_meta();  // writer thread: coverage and settings as they are now
  std::vector<Record> query(const Template& t, size_t offset, size_t limit, bool newest_first, uint64_t* total);

  std::string path_;
  Retention retention_;
  WallClock clock_;
  sqlite3* wdb_ = nullptr;  // the writer's connection
  sqlite3* rdb_ = nullptr;  // readers' connection (under read_mu_)
  std::mutex read_mu_;

  mutable std::mutex mu_;  // everything below
  std::condition_variable cv_, flushed_cv_;
  std::deque<Record> queue_;
  uint64_t next_seq_ = 0, written_seq_ = 0;
  uint64_t count_ = 0;  // rows in the table
  Coverage coverage_;
  Settings settings_;
  bool meta_dirty_ = true, stop_ = false;
  uint64_t queue_lost_ = 0;
  int64_t queue_lost_from_ = 0, queue_lost_until_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> lost_seqs_;  // the seqs of failed writes' batches
  std::string last_write_error_;
  std::thread thread_;
  static constexpr size_t kMaxQueue = 1 << 18;
  static constexpr size_t kLostRangesKept = 1024;
};

}  // namespace lfp::netevents
