// SPDX-License-Identifier: MIT
#pragma once
// lfpd --events-journal and --events-file (docs/metrics.md): every net event lfpd records also goes to
// journald, with structured fields, and to a file as JSON lines, for the log pipelines a host already
// runs (Vector, Fluent Bit, Promtail). An event is the JSON `lfp show netevents --json` lists: the
// same stable keys, with the log's "seq".
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lfp::daemon {

class MetricsText;

struct EventExportOptions {
  bool journal = false;  // --events-journal
  std::string file;      // --events-file ("": none)
};

// journald's fields for one event: MESSAGE (its one-line summary), PRIORITY (5 for a drop, else 6),
// SYSLOG_IDENTIFIER, MESSAGE_ID, and each member as LFP_<KEY> (upper-cased; strings as they are, other
// values as JSON): LFP_FILTER_KEY=..., LFP_LAYER=..., LFP_TYPE=...
std::vector<std::string> journal_fields(const nlohmann::json& event);
// The MESSAGE_ID of every net event (journalctl MESSAGE_ID=...).
inline constexpr std::string_view kNetEventMessageId = "7d1f5a0c3b8e4e6a9c2f4b1d8e0a6c35";

// A JSON lines file that survives rotation: before each write it checks that its path still names the
// file it has open, and reopens (creating) it when the file was moved or removed (logrotate's
// `create`); it writes with O_APPEND, so a file truncated in place (`copytruncate`) is written at its
// new end.
class EventFile {
 public:
  explicit EventFile(std::string path);  // opens it; throws std::runtime_error naming the path and why
  ~EventFile();
  EventFile(const EventFile&) = delete;
  EventFile& operator=(const EventFile&) = delete;
  // Appends `line` and a newline. False when it could not (why: last_error()).
  bool append(std::string_view line);
  const std::string& last_error() const { return error_; }

 private:
  bool open();
  std::string path_, error_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// The sinks --events-journal and --events-file name; lfpd's loop calls send() with each event recorded.
class EventExport {
 public:
  explicit EventExport(const EventExportOptions& o);  // throws std::runtime_error (the file cannot be opened)
  bool active() const { return journal_ || file_; }
  void send(const nlohmann::json& event);
  // lfp_net_events_exported_total and lfp_net_event_export_failures_total, by sink.
  void metrics(MetricsText& page) const;

 private:
  struct Sink {
    uint64_t sent = 0, failed = 0;
  };
  void failed(Sink& s, std::string_view sink, const std::string& why);

  bool journal_ = false;
  std::unique_ptr<EventFile> file_;
  Sink journal_sink_, file_sink_;
};

}  // namespace lfp::daemon
