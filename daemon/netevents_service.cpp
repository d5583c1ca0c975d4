// SPDX-License-Identifier: MIT
#include "netevents_service.hpp"

#include <spdlog/spdlog.h>

#include "lfp/diagnostics/diagnose.hpp"
#include "lfp/diagnostics/foreign.hpp"
#include "lfp/engine/error.hpp"
#include "lfp/protocol/json_text.hpp"
#include "lfp/protocol/request.hpp"
#include "lfp/protocol/wire.hpp"
#include "lfp/store/files.hpp"

namespace lfp::daemon {

using nlohmann::json;
using namespace lfp::netevents;

namespace {
constexpr size_t kMaxIngest = 100000;

// Whether the settings keep an event of r's type (allows only with their keyword).
bool collected(const Settings& s, const Record& r) {
  return s.collect && (r.type != EventType::CLASSIFY_ALLOW || s.has("CLASSIFY_ALLOW")) &&
         (r.type != EventType::CAPABILITY_ALLOW || s.has("CAPABILITY_ALLOW"));
}

// EventError -> INVALID_PARAMETER with the message (it names the member).
template <typename F>
auto checked(F&& f) {
  try {
    return f();
  } catch (const EventError& e) {
    throw Error(ErrorCode::INVALID_PARAMETER, e.what());
  }
}
}  // namespace

NetEventService::NetEventService(Server& server, const std::string& path, Retention retention, bool others_visible)
    : server_(server), others_visible_(others_visible) {
  try {
    store::check_own_database(path);
    log_ = std::make_unique<EventLog>(path, retention);
    const Coverage c = log_->coverage();
    spdlog::info("net event log {}: {} events, complete since {}, {} gaps", path, log_->size(),
                 format_time(c.complete_since), c.gaps.size());
  } catch (const std::exception& e) {
    // The log is optional; enforcement is not: lfpd goes on without it.
    unavailable_ = e.what();
    server.set_degraded("netevents", "the net event log is unavailable, events are not kept: " + unavailable_);
  }

  server.add_op("netevents_enum", Role::READER, [this](const OpContext& ctx, const json& req) { return op_enum(ctx, req); });
  server.add_op("netevents_subscribe", Role::READER, [this](const OpContext& ctx, const json& req) {
    subscribers_[ctx.session] = template_for(ctx, req);
    return json::object();
  });
  server.add_op("netevents_unsubscribe", Role::READER, [this](const OpContext& ctx, const json&) {
    subscribers_.erase(ctx.session);
    return json::object();
  });
  server.add_op("netevents_settings", Role::READER,
                [this](const OpContext& ctx, const json& req) { return op_settings(ctx, req); });
  server.add_op("netevents_coverage", Role::READER, [this](const OpContext&, const json&) { return coverage_json(); });
  server.add_op("netevents_ingest", Role::ADMIN, [this](const OpContext&, const json& req) { return op_ingest(req); });
  server.add_op("diagnose", Role::READER, [this](const OpContext& ctx, const json& req) { return op_diagnose(ctx, req); });
  server.on_session_closed([this](uint64_t id) { subscribers_.erase(id); });
  // A part of enforcement that goes down (or comes back) is a mark in the log's coverage.
  server.on_degraded([this](const std::string& part, const std::optional<std::string>& why) { degraded(part, why); });
}

EventLog& NetEventService::need_log() const {
  if (!log_) throw Error(ErrorCode::NOT_FOUND, "the net event log is unavailable: " + unavailable_);
  return *log_;
}

Template NetEventService::template_for(const OpContext& ctx, const json& req) const {
  Template t = checked([&] { return parse_template(req.value("template", json())); });
  if (!others_visible_ && ctx.role < Role::ADMIN) t.only_uid = ctx.cred.uid;
  return t;
}

void NetEventService::set_settings(const Settings& s) {
  if (log_) log_->set_settings(s);
  else settings_ = s;
  for (const auto& cb : settings_cbs_) cb(s);
}

std::optional<uint64_t> NetEventService::accept(Record r) {
  ++counts_.reported[{std::string(to_string(r.type)), r.layer}];
  const bool kept = collected(settings(), r);
  if (kept)
    for (const auto& [session, t] : subscribers_)
      if (matches(t, r)) server_.send_event(session, {{"event", "netevent"}, {"netevent", r.body}});
  std::optional<json> exported;
  if (kept && !recorded_cbs_.empty()) exported = r.body;
  const EventType type = r.type;
  const auto seq = log_ ? log_->add(std::move(r)) : std::nullopt;
  if (!kept) return seq;
  ++counts_.recorded[std::string(to_string(type))];
  if (!seq) ++counts_.lost;
  if (exported) {
    if (seq) (*exported)["seq"] = *seq;
    for (const auto& cb : recorded_cbs_) cb(*exported);
  }
  return seq;
}

void NetEventService::ingest(const json& event) {
  try {
    accept(parse_event(event, now_ns()));
  } catch (const EventError& e) {
    if (counts_.malformed++ % 1000 == 0) spdlog::warn("net event log: a data path reported a malformed event: {}", e.what());
  }
}

void NetEventService::lost(int64_t from, int64_t until, uint64_t n, const std::string& reason) {
  spdlog::warn("net event log: {} events lost ({})", n, reason);
  counts_.lost += n;
  if (log_) log_->add_gap(from, until, n, reason);
}

json NetEventService::coverage_json() {
  if (!log_) return {{"unavailable", unavailable_}};
  log_->flush();
  json j = to_json(log_->coverage());
  j["now"] = format_time(now_ns());
  j["events"] = log_->size();
  j["retention"] = {{"max_events", log_->retention().max_events},
                    {"max_age_s", log_->retention().max_age_ns / 1'000'000'000}};
  j["path"] = log_->path();
  return j;
}

void NetEventService::degraded(const std::string& part, const std::optional<std::string>& why) {
  // A mark when the part goes down, and the whole span once it is back (gaps are closed intervals).
  if (!log_) return;
  const int64_t now = now_ns();
  if (why) {
    degraded_since_.try_emplace(part, now);
    log_->add_gap(now, now, 0, part + " not enforced: " + *why);
  } else if (auto it = degraded_since_.find(part); it != degraded_since_.end()) {
    log_->add_gap(it->second, now, 0, part + " was not enforced");
    degraded_since_.erase(it);
  }
}

json NetEventService::op_enum(const OpContext& ctx, const json& req) {
  const Template t = template_for(ctx, req);
  const size_t offset = protocol::uint_member(req, "offset", 0, SIZE_MAX >> 1);
  const size_t limit = protocol::uint_member(req, "limit", protocol::kDefaultPage, protocol::kMaxPage);
  const std::string order = protocol::string_member(req, "order").value_or("oldest");
  if (order != "oldest" && order != "newest")
    throw Error(ErrorCode::INVALID_PARAMETER, "/order: must be \"oldest\" or \"newest\", not \"" + protocol::log_safe(order, 64) + "\"");
  EventLog& log = need_log();
  log.flush();
  uint64_t total = 0;
  json events = json::array();
  // A page ends early at wire::kPageBytes (10000 events with long paths could be too large for a frame).
  size_t bytes = 0;
  for (auto& r : log.enumerate(t, offset, limit, order == "newest", &total)) {
    if (!events.empty() && bytes >= wire::kPageBytes) break;
    r.body["seq"] = r.seq;
    bytes += wire::to_json_text(r.body, true).size();
    events.push_back(std::move(r.body));
  }
  const size_t next = offset + events.size();
  json out = json::object();
  out["events"] = std::move(events);
  out["total"] = total;
  out["next_offset"] = next < total ? json(next) : json();
  return out;
}

json NetEventService::op_settings(const OpContext& ctx, const json& req) {
  if (const json* changes = protocol::object_member(req, "settings")) {
    if (ctx.role < Role::ADMIN)
      throw Error(ErrorCode::ACCESS_DENIED, "changing net event collection needs the admin role");
    Settings s = settings();
    const Settings given = checked([&] { return settings_from_json(*changes); });
    if (changes->contains("collect")) s.collect = given.collect;
    if (changes->contains("keywords")) s.keywords = given.keywords;
    set_settings(s);
    spdlog::info("net event collection: {}", to_json(s).dump());
  }
  return to_json(settings());
}

json NetEventService::op_ingest(const json& req) {
  const json* events = protocol::array_member(req, "events");
  if (!events) protocol::missing_member("events", "an array of net events");
  const json& arr = *events;
  if (arr.size() > kMaxIngest)
    throw Error(ErrorCode::INVALID_PARAMETER, "at most " + std::to_string(kMaxIngest) + " events a request");
  // All or nothing: every event is checked before any is logged.
  std::vector<Record> records;
  records.reserve(arr.size());
  const int64_t now = now_ns();
  for (size_t i = 0; i < arr.size(); ++i) {
    try {
      records.push_back(parse_event(arr[i], now));
    } catch (const EventError& e) {
      throw Error(ErrorCode::INVALID_PARAMETER, "/events/" + std::to_string(i) + e.what());
    }
  }
  // Each event is logged, not collected (the settings), or lost: no log, a full queue, or a write
  // that failed (known once flushed). The reply says which, and why the last were lost.
  const Settings settings_now = settings();
  uint64_t not_collected = 0, lost = 0;
  std::optional<uint64_t> first_seq, last_seq;
  json seqs = json::array();
  for (Record& r : records) {
    const bool kept = collected(settings_now, r);
    const auto seq = accept(std::move(r));
    if (!kept) ++not_collected;
    else if (!seq) ++lost;
    if (seq && !first_seq) first_seq = seq;
    if (seq) last_seq = seq;
    seqs.push_back(seq ? json(*seq) : json());
  }
  std::string lost_why;
  if (log_) {
    log_->flush();
    const uint64_t failed = first_seq ? log_->lost_between(*first_seq, *last_seq) : 0;
    if (failed) {
      for (auto& s : seqs)  // (a failed write loses whole batches: these seqs are not in the log)
        if (s.is_number() && log_->lost_between(s.get<uint64_t>(), s.get<uint64_t>())) s = nullptr;
      lost_why = log_->last_write_error();
    } else if (lost) {
      lost_why = "the net event queue was full";
    }
    lost += failed;
  } else if (lost) {
    lost_why = "the net event log is unavailable: " + unavailable_;
  }
  json out = {{"logged", records.size() - not_collected - lost}, {"not_collected", not_collected}, {"lost", lost},
              {"seqs", seqs}};
  if (lost) out["lost_why"] = lost_why;
  return out;
}

json NetEventService::op_diagnose(const OpContext& ctx, const json& req) {
  const int64_t now = now_ns();
  const json* given = protocol::object_member(req, "hypothesis");
  diagnostics::Hypothesis h;
  try {
    h = diagnostics::parse_hypothesis(given ? *given : json(), now);
  } catch (const EventError& e) {  // (its paths are the hypothesis's own: "/time", or "/" for all of it)
    const std::string_view what = e.what();
    throw Error(ErrorCode::INVALID_PARAMETER, "/hypothesis" + std::string(what.substr(what.rfind("/:", 0) == 0 ? 1 : 0)));
  }
  if (!others_visible_ && ctx.role < Role::ADMIN) {  // (its evidence is an event of the log: the reader's own)
    if (h.uid && *h.uid != ctx.cred.uid)
      throw Error(ErrorCode::ACCESS_DENIED, "diagnosing another user's traffic needs the admin role (or lfpd --netevents-access all)");
    h.uid = ctx.cred.uid;
  }
  json d = checked([&] { return diagnostics::diagnose(need_log(), server_.engine(), h, now); });
  // Beyond WFP: when LFP's own log is clean, what else on this host would stop the traffic.
  if (d["verdict"] != "confirmed" && protocol::bool_member(req, "foreign", true)) d["foreign"] = diagnostics::foreign_causes(h);
  return d;
}

}  // namespace lfp::daemon
