// SPDX-License-Identifier: MIT
#include "show_cmd.hpp"

#include <iostream>
#include <memory>

#include "netevents_cmd.hpp"
#include "prompt_cmd.hpp"

namespace lfp::cli {

using nlohmann::json;

namespace {

struct ShowArgs {
  std::string what, sublayer, redirect_peer;
  EventFilterArgs events;  // (--layer and --provider narrow objects and net events alike)
  size_t offset = 0, limit = 0;
  bool newest = false;
};

void print_objects(const std::string& kind, const std::vector<json>& objs) {
  for (const auto& o : objs) {
    std::cout << kind << ' ' << o.value("key", "") << "  \"" << o.value("name", "") << '"';
    if (o.contains("id")) std::cout << "  id " << o["id"];
    if (o.contains("layer")) std::cout << "  " << o["layer"].get<std::string>();
    if (o.contains("weight") && !o["weight"].is_null()) std::cout << "  weight " << o["weight"].dump();
    if (o.contains("action")) std::cout << "  " << (o["action"].is_object() ? o["action"].value("type", "") : o["action"].dump());
    if (o.contains("flags") && !o["flags"].empty()) std::cout << "  flags " << o["flags"].dump();
    if (o.contains("owner")) std::cout << "  owner uid " << o["owner"].value("uid", 0) << (o["owner"].value("dynamic", false) ? " (dynamic)" : "");
    std::cout << '\n';
    if (kind == "filter")
      for (const auto& c : o.value("conditions", json::array()))
        std::cout << "    " << c.value("field", "") << ' ' << c.value("match", "EQUAL") << ' ' << c["value"].dump() << '\n';
  }
}

// lfp show state: every kind's objects (a page of each) and the sessions, in one read transaction.
int show_state(client::Client& c, const ShowArgs& a, const json& tmpl, bool as_json) {
  // "== filters (12)", or "== filters (10 of 12 from offset 2)" for a part.
  auto heading = [&](std::string_view what, size_t shown, uint64_t total) {
    std::cout << "== " << what << " (" << shown;
    if (shown != total) std::cout << " of " << total << (a.offset ? " from offset " + std::to_string(a.offset) : "");
    std::cout << ")\n";
  };
  c.begin(true);
  json state = c.call("state", {{"objects", false}});  // (the objects by pages: any number fits)
  std::map<std::string, uint64_t> totals;
  for (const char* kind : {"provider", "sublayer", "callout", "provider_context", "filter"}) {
    auto l = list_objects(c, kind, std::string(kind) == "filter" ? tmpl : json::object(), a.offset, a.limit);
    totals[kind] = l.total;
    state[std::string(kind) + "s"] = std::move(l.items);
  }
  c.commit();
  if (as_json) {
    std::cout << state.dump(2) << '\n';
    return kOk;
  }
  for (const char* kind : {"provider", "sublayer", "callout", "provider_context", "filter"}) {
    const json& objects = state[std::string(kind) + "s"];
    heading(std::string(kind) + "s", objects.size(), totals[kind]);
    print_objects(kind, objects.get<std::vector<json>>());
  }
  // (lfpd lists the first 10000 sessions)
  heading("sessions", state["sessions"].size(), state.value("session_count", uint64_t{0}));
  for (auto& s : state["sessions"])
    std::cout << "session " << s.value("key", "") << "  \"" << s.value("name", "") << "\"  uid " << s["uid"]
              << "  pid " << s["pid"] << "  " << s.value("role", "") << (s.value("dynamic", false) ? "  dynamic" : "")
              << '\n';
  return kOk;
}

// lfp show filters | providers | ...: one kind's objects.
int show_objects(client::Client& c, const ShowArgs& a, const json& tmpl, bool as_json) {
  std::string kind = a.what;
  kind.pop_back();  // filters -> filter
  const auto l = list_objects(c, kind, tmpl, a.offset, a.limit);
  if (as_json) std::cout << json(l.items).dump(2) << '\n';
  else print_objects(kind, l.items);
  if (l.items.size() != l.total && !as_json)
    std::cerr << l.items.size() << " of " << l.total << ' ' << a.what << " shown (from offset " << a.offset << ")\n";
  return kOk;
}

int run_show(client::Client& c, const ShowArgs& a, bool as_json) {
  if (a.what == "netevents") return show_netevents(c, a.events, a.offset, a.limit, a.newest, as_json);
  if (a.what == "coverage") return show_coverage(c, as_json);
  if (a.what == "options") return show_options(c, as_json);
  if (a.what == "flows") return show_flows(c, a.offset, a.limit, as_json);
  if (a.what == "packet-queue") return show_packet_queue(c, as_json);
  if (a.what == "redirect") {
    if (a.redirect_peer.empty()) throw std::invalid_argument("show redirect: give --peer ADDR:PORT");
    json r = c.call("redirect_record", {{"peer", a.redirect_peer}});
    if (as_json) std::cout << r.dump() << '\n';
    else std::cout << r.value("original", "") << '\n';  // what a proxy script connects to
    return kOk;
  }
  json tmpl = json::object();
  if (!a.events.layer.empty()) tmpl["layer"] = a.events.layer;
  if (!a.events.provider.empty()) tmpl["provider"] = a.events.provider;
  if (!a.sublayer.empty()) tmpl["sublayer"] = a.sublayer;
  return a.what == "state" ? show_state(c, a, tmpl, as_json) : show_objects(c, a, tmpl, as_json);
}

std::string duration_text(int64_t s) {
  std::string out;
  if (s >= 86400) out += std::to_string(s / 86400) + "d ";
  if (s >= 3600) out += std::to_string(s / 3600 % 24) + "h ";
  if (s >= 60) out += std::to_string(s / 60 % 60) + "m ";
  return out + std::to_string(s % 60) + "s";
}

std::string text_of(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// lfp status's kernel, degraded parts and filters per layer.
void print_enforcement(const json& st) {
  if (const json& k = st["kernel"]; k.is_object()) {
    std::cout << "kernel: " << k["filters"] << " filters installed (" << k["userspace_filters"] << " need user space), "
              << k["entries"] << " entries (at most " << k["entries_max"] << "), " << k["kernel_bytes"]
              << " bytes, " << k["events_lost"] << " events lost; pins " << text_of(k["bpf_pin"]) << '\n';
    std::cout << "hooks attached (" << k["hooks"].size() << "):";
    for (const auto& h : k["hooks"]) std::cout << ' ' << text_of(h);
    std::cout << '\n';
  } else {
    std::cout << "kernel: no data path (--cgroup none --no-packet-layers)\n";
  }
  std::cout << "degraded: " << (st["degraded"].empty() ? "no" : "") << '\n';
  for (const auto& [part, why] : st["degraded"].items()) std::cout << "  " << part << ": " << text_of(why) << '\n';
  std::cout << "filters: " << st["filters"] << '\n';
  for (const auto& [layer, l] : st["layers"].items()) {
    std::cout << "  " << layer << ' ' << l["filters"];
    if (l.contains("not_enforced")) std::cout << "  NOT ENFORCED: " << text_of(l["not_enforced"]);
    std::cout << '\n';
  }
}

// lfp status, as a person reads it (docs/cli.md).
void print_status(const json& st) {
  std::cout << "lfpd " << text_of(st["version"]) << ", pid " << st["pid"] << ", up " << duration_text(st.value("uptime_s", 0))
            << ", configuration " << (st["config"].is_null() ? "none" : text_of(st["config"])) << '\n';
  std::cout << "governs: cgroup " << (st["cgroup"].is_null() ? "none" : text_of(st["cgroup"])) << ", network namespace "
            << text_of(st["netns"]) << " (packet layers " << (st.value("packet_layers", false) ? "on" : "off") << "), fail "
            << text_of(st["fail"]) << '\n';
  print_enforcement(st);
  std::cout << "queues:" << (st["queues"].empty() ? " none" : "") << '\n';
  for (const auto& [name, q] : st["queues"].items()) {
    std::cout << "  " << name << ':';
    for (const auto& [k, v] : q.items()) std::cout << ' ' << k << ' ' << text_of(v);
    std::cout << '\n';
  }
  const json& ne = st["netevents"];
  if (ne.contains("unavailable")) {  // (lfpd enforces without it: the degraded part "netevents")
    std::cout << "net event log: UNAVAILABLE: " << text_of(ne["unavailable"]) << '\n';
    return;
  }
  std::cout << "net event log: " << ne["events"] << " events, complete since " << text_of(ne["complete_since"]) << ", "
            << ne["gaps"].size() << " gaps";
  if (!ne["gaps"].empty()) std::cout << " (the latest: " << text_of(ne["gaps"].back()["reason"]) << ')';
  std::cout << '\n';
}

struct MonitorArgs {
  std::vector<std::string> kinds;
  std::string what = "objects";
  EventFilterArgs events;
};

int run_monitor(client::Client& c, const MonitorArgs& a, bool as_json) {
  volatile std::sig_atomic_t& stop = stop_on_signal();
  if (a.what == "netevents") return monitor_netevents(c, a.events, as_json, stop);
  c.subscribe(a.kinds);
  while (!stop) {
    auto e = c.next_event(500);
    if (!e) continue;
    if (as_json) std::cout << e->dump() << std::endl;
    else
      std::cout << (*e)["change"].get<std::string>() << ' ' << (*e)["kind"].get<std::string>() << ' '
                << (*e)["object"].value("key", "") << " \"" << (*e)["object"].value("name", "") << "\"" << std::endl;
  }
  return kOk;
}

}  // namespace

void add_show_verb(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<ShowArgs>();
  auto* show = app.add_subcommand("show", "Show lfpd's objects, net events, their coverage and options");
  show->add_option("what", a->what,
                   "state | filters | providers | sublayers | callouts | provider_contexts | netevents | coverage | "
                   "options | redirect | flows | packet-queue")
      ->required()
      ->check(CLI::IsMember({"state", "filters", "providers", "sublayers", "callouts", "provider_contexts",
                             "netevents", "coverage", "options", "redirect", "flows", "packet-queue"}));
  show->add_option("--peer", a->redirect_peer, "redirect: the redirected connection's address as the proxy sees it (ADDR:PORT)");
  add_event_filter_options(show, a->events, true);
  show->add_option("--sublayer", a->sublayer, "Only filters in this sublayer");
  show->add_option("--offset", a->offset, "Listings: from the N-th object or event on (0: the first)");
  show->add_option("--limit", a->limit, "Listings: at most this many (state: of each kind; 0: all)");
  show->add_flag("--newest", a->newest, "netevents: newest first");
  show->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, show, [&g, a](client::Client& c) {
    return run_show(c, *a, g.as_json);
  });
}

void add_status_verb(CLI::App& app, Globals& g, Verbs& verbs) {
  auto* status = app.add_subcommand("status", "lfpd's version, uptime, what it governs, hooks, filters per layer, "
                                              "kernel state, queues and net event log coverage");
  status->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, status, [&g](client::Client& c) {
    const json st = c.call("status");
    if (g.as_json) std::cout << st.dump(2) << '\n';
    else print_status(st);
    return kOk;
  });
}

void add_monitor_verb(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<MonitorArgs>();
  auto* monitor = app.add_subcommand("monitor", "Stream lfpd's object changes as they commit, or its net events");
  monitor->add_option("what", a->what, "objects | netevents")->check(CLI::IsMember({"objects", "netevents"}))
      ->capture_default_str();
  monitor->add_option("--kind", a->kinds, "objects: only these kinds (repeatable)");
  add_event_filter_options(monitor, a->events, false);
  monitor->add_flag("--json", g.as_json, "JSON output (one object a line)");
  add_daemon_verb(verbs, g, monitor, [&g, a](client::Client& c) {
    return run_monitor(c, *a, g.as_json);
  });
}

}  // namespace lfp::cli
