#include "netevents_service.hpp"

#include <spdlog/spdlog.h>

#include "lfp/diagnostics/diagnose.hpp"
#include "lfp/diagnostics/foreign.hpp"
#include "lfp/engine/error.hpp"

namespace lfp::daemon {

using nlohmann::json;
using namespace lfp::netevents;

namespace {
constexpr size_t kDefaultPage = 1000, kMaxPage = 10000, kMaxIngest = 100000;

size_t size_arg(const json& req, const char* name, size_t dflt, size_t max) {
  if (!req.contains(name) || req[name].is_null()) return dflt;
  if (!req[name].is_number_unsigned() || req[name].get<uint64_t>() > max)
    throw Error(ErrorCode::INVALID_PARAMETER, std::string("'") + name + "' must be an integer 0.." + std::to_string(max));
  return req[name].get<size_t>();
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

NetEventService::NetEventService(Server& server, const std::string& path, Retention retention) : server_(server) {
  log_ = std::make_unique<EventLog>(path, retention);
  const Coverage c = log_->coverage();
  spdlog::info("net event log {}: {} events, complete since {}, {} gaps", path, log_->size(),
               format_time(c.complete_since), c.gaps.size());

  server.add_op("netevents_enum", Role::READER, [this](const OpContext&, const json& req) { return op_enum(req); });
  server.add_op("netevents_subscribe", Role::READER, [this](const OpContext& ctx, const json& req) {
    subscribers_[ctx.session] = checked([&] { return parse_template(req.value("template", json())); });
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
  server.add_op("diagnose", Role::READER, [this](const OpContext&, const json& req) { return op_diagnose(req); });
  server.on_session_closed([this](uint64_t id) { subscribers_.erase(id); });
}

std::optional<uint64_t> NetEventService::accept(Record r) {
  const Settings s = log_->settings();
  const bool collected = s.collect && (r.type != EventType::CLASSIFY_ALLOW || s.has("CLASSIFY_ALLOW")) &&
                         (r.type != EventType::CAPABILITY_ALLOW || s.has("CAPABILITY_ALLOW"));
  if (collected)
    for (const auto& [session, t] : subscribers_)
      if (matches(t, r)) server_.send_event(session, {{"event", "netevent"}, {"netevent", r.body}});
  return log_->add(std::move(r));
}

void NetEventService::ingest(const json& event) {
  try {
    accept(parse_event(event, now_ns()));
  } catch (const EventError& e) {
    if (malformed_++ % 1000 == 0) spdlog::warn("net event log: a data path reported a malformed event: {}", e.what());
  }
}

void NetEventService::lost(int64_t from, int64_t until, uint64_t n, const std::string& reason) {
  spdlog::warn("net event log: {} events lost ({})", n, reason);
  log_->add_gap(from, until, n, reason);
}

json NetEventService::coverage_json() {
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
  const int64_t now = now_ns();
  if (why) {
    degraded_since_.try_emplace(part, now);
    log_->add_gap(now, now, 0, part + " not enforced: " + *why);
  } else if (auto it = degraded_since_.find(part); it != degraded_since_.end()) {
    log_->add_gap(it->second, now, 0, part + " was not enforced");
    degraded_since_.erase(it);
  }
}

json NetEventService::op_enum(const json& req) {
  const Template t = checked([&] { return parse_template(req.value("template", json())); });
  const size_t offset = size_arg(req, "offset", 0, SIZE_MAX >> 1), limit = size_arg(req, "limit", kDefaultPage, kMaxPage);
  const std::string order = req.value("order", std::string("oldest"));
  if (order != "oldest" && order != "newest") throw Error(ErrorCode::INVALID_PARAMETER, "'order' must be oldest or newest");
  log_->flush();
  uint64_t total = 0;
  json events = json::array();
  for (auto& r : log_->enumerate(t, offset, limit, order == "newest", &total)) {
    r.body["seq"] = r.seq;
    events.push_back(std::move(r.body));
  }
  json out = json::object();
  out["events"] = std::move(events);
  out["total"] = total;
  out["next_offset"] = offset + limit < total ? json(offset + limit) : json();
  return out;
}

json NetEventService::op_settings(const OpContext& ctx, const json& req) {
  if (req.contains("settings")) {
    if (ctx.role < Role::ADMIN)
      throw Error(ErrorCode::ACCESS_DENIED, "changing net event collection needs the admin role");
    Settings s = log_->settings();
    const Settings given = checked([&] { return settings_from_json(req["settings"]); });
    if (req["settings"].contains("collect")) s.collect = given.collect;
    if (req["settings"].contains("keywords")) s.keywords = given.keywords;
    log_->set_settings(s);
    for (const auto& cb : settings_cbs_) cb(s);
    spdlog::info("net event collection: {}", to_json(s).dump());
  }
  return to_json(log_->settings());
}

json NetEventService::op_ingest(const json& req) {
  if (!req.contains("events") || !req["events"].is_array())
    throw Error(ErrorCode::INVALID_PARAMETER, "'events' must be an array of net events");
  const json& arr = req["events"];
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
  uint64_t logged = 0;
  json seqs = json::array();
  for (Record& r : records) {
    const auto seq = accept(std::move(r));
    logged += seq.has_value();
    seqs.push_back(seq ? json(*seq) : json());
  }
  log_->flush();
  return {{"logged", logged}, {"not_collected", records.size() - logged}, {"seqs", seqs}};
}

json NetEventService::op_diagnose(const json& req) {
  const int64_t now = now_ns();
  const auto h = checked([&] { return diagnostics::parse_hypothesis(req.value("hypothesis", json()), now); });
  json d = checked([&] { return diagnostics::diagnose(*log_, server_.engine(), h, now); });
  // Beyond WFP: when LFP's own log is clean, what else on this host would stop the traffic.
  if (d["verdict"] != "confirmed" && req.value("foreign", true)) d["foreign"] = diagnostics::foreign_causes(h);
  return d;
}

}  // namespace lfp::daemon
