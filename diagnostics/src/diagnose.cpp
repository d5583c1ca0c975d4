// SPDX-License-Identifier: MIT
#include "lfp/diagnostics/diagnose.hpp"

#include <algorithm>

#include "lfp/policy/policy.hpp"

namespace lfp::diagnostics {

using nlohmann::json;
using netevents::EventError;
using netevents::format_time;

namespace {

[[noreturn]] void bad(const std::string& member, const std::string& why) { throw EventError("/" + member + ": " + why); }

json condition(std::string_view field, json value, std::string_view match = "EQUAL") {
  return {{"field", field}, {"match", match}, {"value", std::move(value)}};
}

// The event's traffic as a classify request at its layer (what the policy says about it now).
bool request_for(const json& ev, policy::Request& req) {
  auto layer = layer_from_string(ev.value("layer", ""));
  if (!layer) return false;
  req.layer = *layer;
  auto set = [&](FieldId f, const std::string& text) {
    if (!layer_has_field(layer_info(*layer), f)) return;
    try {
      req.set_text(f, text);
    } catch (const policy::PolicyError&) {
    }
  };
  if (ev.contains("ip_protocol")) set(FieldId::IP_PROTOCOL, std::to_string(ev["ip_protocol"].get<int>()));
  if (ev.contains("local_address")) set(FieldId::IP_LOCAL_ADDRESS, ev["local_address"].get<std::string>());
  if (ev.contains("remote_address")) set(FieldId::IP_REMOTE_ADDRESS, ev["remote_address"].get<std::string>());
  if (ev.contains("local_port")) set(FieldId::IP_LOCAL_PORT, std::to_string(ev["local_port"].get<int>()));
  if (ev.contains("remote_port")) set(FieldId::IP_REMOTE_PORT, std::to_string(ev["remote_port"].get<int>()));
  if (ev.contains("app_id") && !ev["app_id"].get<std::string>().empty()) set(FieldId::ALE_APP_ID, ev["app_id"]);
  if (ev.contains("uid"))
    set(FieldId::ALE_USER_ID, "uid=" + std::to_string(ev["uid"].get<uint32_t>()) +
                                  (ev.contains("gid") ? ",gids=" + std::to_string(ev["gid"].get<uint32_t>()) : ""));
  return true;
}

std::string provider_name(const FilterEngine& engine, const std::optional<Guid>& key) {
  if (!key) return "";
  const Provider* p = engine.provider(*key);
  return p ? p->display.name : "";
}

// Repairs for a blocking filter, each as the lfpd requests that apply it (run by the caller, with
// the caller's rights): disable it, delete it, or add a narrow exception above it.
json repairs_for(const Filter& f, const json& ev) {
  json out = json::array();
  auto add = [&](std::string description, json requests) {
    out.push_back({{"n", out.size() + 1}, {"description", std::move(description)}, {"requests", std::move(requests)}});
  };
  const std::string name = "\"" + f.display.name + "\" (" + f.key.str() + ")";
  if (!(f.flags & DISABLED)) {
    json disabled = policy::to_json(f);
    disabled.erase("id");
    disabled.erase("effective_weight");
    json flags = disabled.value("flags", json::array());
    flags.push_back("DISABLED");
    disabled["flags"] = flags;
    add("Disable filter " + name + " (it stays, but is not enforced)",
        json::array({{{"op", "txn_begin"}},
                     {{"op", "delete"}, {"kind", "filter"}, {"key", f.key.str()}},
                     {{"op", "add"}, {"kind", "filter"}, {"object", disabled}},
                     {{"op", "txn_commit"}}}));
  }
  add("Delete filter " + name, json::array({{{"op", "delete"}, {"kind", "filter"}, {"key", f.key.str()}}}));
  // The exception: this app (if known) to this remote, in the same sublayer, just above the filter.
  json conds = json::array();
  const LayerId layer = f.layer;
  auto cond_if = [&](FieldId field, const char* member) {
    if (ev.contains(member) && layer_has_field(layer_info(layer), field)) conds.push_back(condition(field_name(field), ev[member]));
  };
  cond_if(FieldId::ALE_APP_ID, "app_id");
  cond_if(FieldId::IP_REMOTE_ADDRESS, "remote_address");
  cond_if(FieldId::IP_REMOTE_PORT, "remote_port");
  cond_if(FieldId::IP_PROTOCOL, "ip_protocol");
  if (!conds.empty() && f.effective_weight < UINT64_MAX) {
    json exc = {{"name", "exception to " + f.display.name},
                {"description", "added by lfp diagnose --repair for the event of " + ev.value("time", std::string())},
                {"layer", layer_info(layer).name},
                {"weight", {{"explicit", f.effective_weight + 1}}},
                {"conditions", conds},
                {"action", "PERMIT"}};
    if (f.sublayer) exc["sublayer"] = f.sublayer->str();
    if (f.provider) exc["provider"] = f.provider->str();
    add("Permit this traffic only: a PERMIT filter just above " + name + " in its sublayer",
        json::array({{{"op", "add"}, {"kind", "filter"}, {"object", exc}}}));
  }
  return out;
}

}  // namespace

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::CONFIRMED: return "confirmed";
    case Verdict::HEALTHY: return "healthy";
    default: return "indeterminate";
  }
}

Endpoint parse_endpoint(const std::string& text, const std::string& member) {
  Endpoint e;
  std::string addr = text, port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) bad(member, "'" + text + "': an unclosed [");
    addr = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') bad(member, "'" + text + "': expected [V6ADDR]:PORT");
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    addr = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  if (!addr.empty() && !netevents::parse_address_range(addr)) bad(member, "'" + addr + "' is not an IPv4 or IPv6 address (or ADDR/PREFIX)");
  e.address = addr;
  if (!text.empty() && text[0] != '[' && std::count(text.begin(), text.end(), ':') == 1 && port.empty())
    bad(member, "'" + text + "': a port is missing after ':'");
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) || std::stoi(port) > 65535)
      bad(member, "'" + port + "' is not a port (0..65535)");
    e.port = std::stoi(port);
  }
  return e;
}

Hypothesis parse_hypothesis(const json& j, int64_t now) {
  if (!j.is_object()) throw EventError("/: a hypothesis is a JSON object");
  Hypothesis h;
  if (!j.contains("time")) bad("time", "is required (ISO 8601, or \"now\")");
  for (const auto& [k, v] : j.items()) {
    if (k == "time") {
      if (v == "now") {
        h.time_ns = now;
      } else {
        auto t = v.is_string() ? netevents::parse_time(v.get<std::string>()) : std::nullopt;
        if (!t) bad(k, "must be an ISO 8601 time with a zone, or \"now\"");
        h.time_ns = *t;
      }
    } else if (k == "window_s") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 366 * 86400.0)
        bad(k, "must be a number of seconds (0..31622400)");
      h.window_ns = static_cast<int64_t>(v.get<double>() * 1e9);
    } else if (k == "provider") {
      auto g = v.is_string() ? Guid::parse(v.get<std::string>()) : std::nullopt;
      if (!g) bad(k, "must be a GUID");
      h.provider = g;
    } else if (k == "protocol") {
      try {
        h.protocol = netevents::parse_event(json{{"type", "CLASSIFY_DROP"}, {"ip_protocol", v}}, 0).ip_protocol;
      } catch (const EventError&) {
        bad(k, "must be a protocol number (0..255) or tcp, udp, icmp, icmpv6");
      }
    } else if (k == "local" || k == "remote") {
      if (!v.is_string()) bad(k, "must be \"ADDR[:PORT]\"");
      (k == "local" ? h.local : h.remote) = parse_endpoint(v.get<std::string>(), k);
    } else if (k == "user") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > UINT32_MAX) bad(k, "must be a uid");
      h.uid = v.get<uint32_t>();
    } else if (k == "app") {
      if (!v.is_string() || v.get<std::string>().empty()) bad(k, "must be an executable path");
      h.app = v.get<std::string>();
    } else {
      bad(k, "unknown attribute (time, window_s, provider, protocol, local, remote, user, app)");
    }
  }
  return h;
}

json to_json(const Hypothesis& h) {
  json j = {{"time", format_time(h.time_ns)}, {"window_s", double(h.window_ns) / 1e9}};
  if (h.provider) j["provider"] = h.provider->str();
  if (h.protocol) j["protocol"] = *h.protocol;
  auto ep = [](const Endpoint& e) {
    std::string s = e.address.find(':') != std::string::npos && e.port >= 0 ? "[" + e.address + "]" : e.address;
    return e.port >= 0 ? s + ":" + std::to_string(e.port) : s;
  };
  if (!h.local.address.empty() || h.local.port >= 0) j["local"] = ep(h.local);
  if (!h.remote.address.empty() || h.remote.port >= 0) j["remote"] = ep(h.remote);
  if (h.uid) j["user"] = *h.uid;
  if (h.app) j["app"] = *h.app;
  return j;
}

json diagnose(netevents::EventLog& log, const FilterEngine& engine, const Hypothesis& h, int64_t now) {
  const int64_t from = h.time_ns - h.window_ns;
  const int64_t until = std::min(h.time_ns + h.window_ns, now);

  // The hypothesis as an enumeration template over drops.
  json conds = json::array();
  for (const char* t : {"CLASSIFY_DROP", "CLASSIFY_DROP_MAC", "CAPABILITY_DROP", "IPSEC_KERNEL_DROP", "IPSEC_DOSP_DROP"})
    conds.push_back(condition("NET_EVENT_TYPE", t));
  if (h.provider) conds.push_back(condition("PROVIDER_KEY", h.provider->str()));
  if (h.protocol) conds.push_back(condition("IP_PROTOCOL", *h.protocol));
  if (!h.local.address.empty()) conds.push_back(condition("IP_LOCAL_ADDRESS", h.local.address));
  if (h.local.port >= 0) conds.push_back(condition("IP_LOCAL_PORT", h.local.port));
  if (!h.remote.address.empty()) conds.push_back(condition("IP_REMOTE_ADDRESS", h.remote.address));
  if (h.remote.port >= 0) conds.push_back(condition("IP_REMOTE_PORT", h.remote.port));
  if (h.uid) conds.push_back(condition("ALE_USER_ID", *h.uid));
  if (h.app) conds.push_back(condition("ALE_APP_ID", *h.app));
  netevents::Template t = netevents::parse_template({{"conditions", conds}});
  t.since = from;
  t.until = until;

  json out = {{"hypothesis", to_json(h)}, {"window", {{"from", format_time(from)}, {"until", format_time(until)}}}};
  log.flush();  // everything reported so far counts
  auto ev = log.most_recent(t);
  if (!ev) {
    auto why = netevents::uncovered(log.coverage(), from, until);
    out["verdict"] = to_string(why ? Verdict::INDETERMINATE : Verdict::HEALTHY);
    out["reason"] = why ? *why : "no matching drop in the net event log, which covers the whole window";
    out["coverage"] = netevents::to_json(log.coverage());
    return out;
  }

  out["verdict"] = to_string(Verdict::CONFIRMED);
  const json& e = ev->body;
  out["event"] = e;
  json involved = {{"hard", e.value("hard", false)}, {"veto", e.value("veto", false)}};
  const Filter* f = nullptr;
  if (auto key = Guid::parse(e.value("filter_key", "")); key) f = engine.filter(*key);
  if (!f && e.contains("filter_id")) f = engine.filter_by_id(e["filter_id"].get<uint64_t>());
  std::string cause;
  if (f) {
    json fj = policy::to_json(*f);
    out["filter"] = {{"key", f->key.str()},
                     {"id", f->id},
                     {"name", f->display.name},
                     {"layer", layer_info(f->layer).name},
                     {"sublayer", (f->sublayer ? *f->sublayer : builtin::SUBLAYER_UNIVERSAL).str()},
                     {"action", fj.value("action", json())},
                     {"effective_weight", f->effective_weight},
                     {"still_present", true}};
    if (f->provider)
      out["provider"] = {{"key", f->provider->str()}, {"name", provider_name(engine, f->provider)}};
    out["repairs"] = repairs_for(*f, e);
    cause = "filter \"" + f->display.name + "\" (" + f->key.str() + ")" +
            (f->provider ? " of provider \"" + provider_name(engine, f->provider) + "\"" : std::string()) +
            " blocked it at " + e.value("layer", "?") + " on " + e.value("time", "?");
  } else {
    if (e.contains("filter_key")) out["filter"] = {{"key", e["filter_key"]}, {"name", e.value("filter_name", "")}, {"still_present", false}};
    if (e.contains("provider")) out["provider"] = {{"key", e["provider"]}, {"name", provider_name(engine, Guid::parse(e["provider"].get<std::string>()))}};
    out["repairs"] = json::array();
    cause = e.contains("filter_key") ? "filter " + e["filter_key"].get<std::string>() + " blocked it at " +
                                           e.value("layer", "?") + " on " + e.value("time", "?") +
                                           "; that filter is no longer in the policy"
                                     : "it was dropped at " + e.value("layer", "?") + " on " + e.value("time", "?") +
                                           (e.contains("reason") ? ": " + e["reason"].get<std::string>() : "");
  }
  // Who else has a say in this traffic now: the layer's decision re-run with explain.
  policy::Request req;
  if (request_for(e, req)) {
    ClassifyResult now_r = engine.classify(req.layer, req.values, true);
    json others = json::array();
    for (const SublayerTrace& st : now_r.trace)
      for (const FilterStep& step : st.steps) {
        if (f && step.filter == f) continue;
        const bool other_provider = step.filter->provider != (f ? f->provider : std::optional<Guid>());
        others.push_back({{"filter", step.filter->key.str()},
                          {"name", step.filter->display.name},
                          {"provider", step.filter->provider ? json(step.filter->provider->str()) : json()},
                          {"provider_name", provider_name(engine, step.filter->provider)},
                          {"sublayer", st.sublayer ? st.sublayer->key.str() : ""},
                          {"outcome", step.outcome},
                          {"other_provider", other_provider}});
      }
    involved["other_filters"] = others;
    involved["other_provider"] = std::any_of(others.begin(), others.end(), [](const json& o) {
      return o["other_provider"].get<bool>() && (o["outcome"] == "BLOCK" || o["outcome"] == "PERMIT");
    });
    involved["blocked_now"] = !now_r.permit;
    if (now_r.veto) involved["veto"] = true;
  }
  out["involved"] = involved;
  out["cause"] = cause;
  return out;
}

}  // namespace lfp::diagnostics
