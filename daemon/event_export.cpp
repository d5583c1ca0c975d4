// SPDX-License-Identifier: MIT
#include "event_export.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "lfp/datapath/events.hpp"
#include "lfp/netevents/event.hpp"
#include "lfp/protocol/log_limit.hpp"
#include "metrics.hpp"

namespace lfp::daemon {

using nlohmann::json;

namespace {
constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

// A member's name as a journal field: upper case, [A-Z0-9_] (journald drops any other field).
std::string field_name(const std::string& key) {
  std::string name = "LFP_";
  for (char c : key) name += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_';
  return name.substr(0, 64);
}

std::string text_of(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, json::error_handler_t::replace);
}
}  // namespace

std::vector<std::string> journal_fields(const json& event) {
  const auto type = netevents::event_type_from_string(event.value("type", ""));
  std::vector<std::string> fields = {"MESSAGE=" + datapath::summary(event),
                                     std::string("PRIORITY=") + (type && netevents::is_drop(*type) ? "5" : "6"),
                                     "SYSLOG_IDENTIFIER=lfpd", "MESSAGE_ID=" + std::string(kNetEventMessageId)};
  for (const auto& [key, value] : event.items()) fields.push_back(field_name(key) + "=" + text_of(value));
  return fields;
}

EventFile::EventFile(std::string path) : path_(std::move(path)) {
  if (!open()) throw std::runtime_error("--events-file " + path_ + ": " + error_);
}

EventFile::~EventFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool EventFile::open() {
  if (fd_ >= 0) ::close(fd_);
  // (0600 under lfpd's umask: events name other users' programs and peers, docs/security.md)
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
    error_ = std::strerror(errno);
    return false;
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return true;
}

bool EventFile::append(std::string_view line) {
  struct stat st {};
  const bool moved = ::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_;
  if ((moved || fd_ < 0) && !open()) return false;
  std::string out(line);
  out += '\n';
  // One write a line: with O_APPEND a reader never sees half of one, nor two interleaved.
  for (size_t off = 0; off < out.size();) {
    const ssize_t n = ::write(fd_, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = n < 0 ? std::strerror(errno) : "nothing written";
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

EventExport::EventExport(const EventExportOptions& o) : journal_(o.journal) {
  if (!o.file.empty()) {
    file_ = std::make_unique<EventFile>(o.file);
    spdlog::info("net events: also to {} (JSON lines)", o.file);
  }
  // Without journald (a container, a host without systemd) lfpd goes on: events are sent once it
  // runs, and lfp_net_event_export_failures_total{sink="journal"} counts those that could not be.
  if (journal_ && !std::filesystem::exists(kJournalSocket))
    spdlog::warn("--events-journal: journald is not running here ({} is missing): net events reach the journal once it "
                 "runs; until then they are counted as failed",
                 kJournalSocket);
  else if (journal_)
    spdlog::info("net events: also to the journal (MESSAGE_ID={})", kNetEventMessageId);
}

void EventExport::failed(Sink& s, std::string_view sink, const std::string& why) {
  static protocol::LineLimit limit(1);
  uint64_t suppressed;
  if (s.failed++ == 0 || limit.admit(suppressed))
    spdlog::warn("net events: could not send one to the {}: {} ({} so far)", sink, why, s.failed);
}

void EventExport::send(const json& event) {
  if (journal_) {
    const std::vector<std::string> fields = journal_fields(event);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields) iov.push_back({const_cast<char*>(f.data()), f.size()});
    if (const int r = sd_journal_sendv(iov.data(), static_cast<int>(iov.size())); r < 0) failed(journal_sink_, "journal", std::strerror(-r));
    else ++journal_sink_.sent;
  }
  if (file_) {
    if (file_->append(event.dump(-1, ' ', false, json::error_handler_t::replace))) ++file_sink_.sent;
    else failed(file_sink_, "file", file_->last_error());
  }
}

void EventExport::metrics(MetricsText& page) const {
  if (!active()) return;
  auto sinks = [&](auto count) {
    if (journal_) page.sample(static_cast<double>(count(journal_sink_)), {{"sink", "journal"}});
    if (file_) page.sample(static_cast<double>(count(file_sink_)), {{"sink", "file"}});
  };
  page.family("lfp_net_events_exported_total", "counter", "Net events sent to journald (--events-journal) or the file (--events-file)");
  sinks([](const Sink& s) { return s.sent; });
  page.family("lfp_net_event_export_failures_total", "counter", "Net events that could not be sent to a sink");
  sinks([](const Sink& s) { return s.failed; });
}

}  // namespace lfp::daemon
