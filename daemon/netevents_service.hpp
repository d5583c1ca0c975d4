// SPDX-License-Identifier: MIT
#pragma once
// lfpd's net event log and diagnostics, served beside the engine (docs/netevents.md, docs/diagnose.md):
// ops netevents_enum, netevents_subscribe / netevents_unsubscribe, netevents_settings,
// netevents_coverage, netevents_ingest, and diagnose.
#include <functional>
#include <vector>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "lfp/netevents/log.hpp"
#include "server.hpp"

namespace lfp::daemon {

class NetEventService {
 public:
  // Opens the log and adds its ops to the server. A log that cannot be opened (corrupt, a full disk,
  // a file of another user) does not stop lfpd: the service runs without it, events are streamed to
  // subscribers but not kept, and the server is degraded (part "netevents") saying why.
  // `others_visible`: readers see every user's events (lfpd --netevents-access all); else a reader
  // sees only events of its own uid, and admins all.
  NetEventService(Server& server, const std::string& path, netevents::Retention retention, bool others_visible);

  // An event from a data path (the loop's thread): logged and streamed to subscribers. Malformed
  // events are counted and logged, not thrown.
  void ingest(const nlohmann::json& event);
  // `lost` events a source could not report between `from` and `until` (e.g. its ring was full).
  void lost(int64_t from, int64_t until, uint64_t lost, const std::string& reason);
  // A part of enforcement went down (why) or came back (nullopt): the coverage record gets a mark
  // then, since the log cannot vouch for what that part should have decided (docs/lfpd.md, Status).
  void degraded(const std::string& part, const std::optional<std::string>& why);
  // The coverage record with the log's size and retention (op netevents_coverage, lfp status).
  nlohmann::json coverage_json();
  netevents::Settings settings() const { return log_ ? log_->settings() : settings_; }
  void set_settings(const netevents::Settings& s);  // (the callbacks hear of it)
  // Each event recorded (collected: given to the log), as `lfp show netevents --json` lists it (with
  // "seq" when the log took it): the event export's hook (lfpd --events-journal, --events-file).
  void on_recorded(std::function<void(const nlohmann::json&)> cb) { recorded_cbs_.push_back(std::move(cb)); }
  // What the data paths reported and what the log took, for lfpd's metrics (the loop's thread).
  struct Counts {
    std::map<std::pair<std::string, std::string>, uint64_t> reported;  // (type, layer) -> events, collected or not
    std::map<std::string, uint64_t> recorded;                          // type -> events collected and given to the log
    uint64_t lost = 0;       // collected but not kept (no log, a full queue), and what sources could not report
    uint64_t malformed = 0;  // refused by parse_event
  };
  const Counts& counts() const { return counts_; }
  // The log's size, or nullopt without one.
  std::optional<uint64_t> stored() const { return log_ ? std::optional(log_->size()) : std::nullopt; }
  std::optional<netevents::Coverage> coverage() const { return log_ ? std::optional(log_->coverage()) : std::nullopt; }
  // Each is called with the settings now, and whenever they change (a data path reports allows only when asked).
  void on_settings(std::function<void(const netevents::Settings&)> cb) {
    cb(settings());
    settings_cbs_.push_back(std::move(cb));
  }

 private:
  std::optional<uint64_t> accept(netevents::Record r);  // streams and logs one event: its seq
  netevents::Template template_for(const OpContext& ctx, const nlohmann::json& req) const;  // (own events only?)
  netevents::EventLog& need_log() const;  // the log, or UNAVAILABLE
  nlohmann::json op_enum(const OpContext& ctx, const nlohmann::json& req);
  nlohmann::json op_settings(const OpContext& ctx, const nlohmann::json& req);
  nlohmann::json op_ingest(const nlohmann::json& req);
  nlohmann::json op_diagnose(const OpContext& ctx, const nlohmann::json& req);

  Server& server_;
  std::unique_ptr<netevents::EventLog> log_;  // null: it could not be opened (unavailable_ says why)
  std::string unavailable_;
  netevents::Settings settings_;  // (without a log)
  bool others_visible_;
  std::map<uint64_t, netevents::Template> subscribers_;  // session -> its template
  Counts counts_;
  std::vector<std::function<void(const nlohmann::json&)>> recorded_cbs_;
  std::vector<std::function<void(const netevents::Settings&)>> settings_cbs_;
  std::map<std::string, int64_t> degraded_since_;  // part -> when it went down
};

}  // namespace lfp::daemon
