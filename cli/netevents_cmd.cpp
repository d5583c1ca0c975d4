// SPDX-License-Identifier: MIT
#include "netevents_cmd.hpp"

#include <pwd.h>

#include <pcap/pcap.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <tuple>
#include <vector>

#include "lfp/diagnostics/diagnose.hpp"
#include "lfp/diagnostics/helper.hpp"
#include "lfp/netevents/event.hpp"

namespace lfp::cli {

using nlohmann::json;
namespace ne = lfp::netevents;

namespace {

// "now", an ISO 8601 time, or a duration ago: 90s, 10m, 2h, 1d.
std::string parse_when(const std::string& text, const char* option) {
  if (text == "now") return ne::format_time(ne::now_ns());
  if (ne::parse_time(text)) return text;
  if (text.size() >= 2) {
    const char unit = text.back();
    const std::string num = text.substr(0, text.size() - 1);
    const int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
    if (scale && std::all_of(num.begin(), num.end(), ::isdigit) && num.size() < 9)
      return ne::format_time(ne::now_ns() - std::stoll(num) * scale * 1'000'000'000);
  }
  throw std::invalid_argument(std::string(option) + ": '" + text +
                              "' is not a time (now, 2026-11-23T10:00:00Z, or a duration ago: 90s, 10m, 2h, 1d)");
}

uint32_t parse_user(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit) && text.size() < 11) {
    const uint64_t v = std::stoull(text);
    if (v <= UINT32_MAX) return static_cast<uint32_t>(v);
  }
  if (const passwd* p = getpwnam(text.c_str())) return p->pw_uid;
  throw std::invalid_argument("--user: '" + text + "' is neither a uid nor a user name");
}

// An executable as the kernel names it: the resolved path when it exists here.
std::string app_path(const std::string& text) {
  std::error_code ec;
  auto p = std::filesystem::canonical(text, ec);
  return ec ? text : p.string();
}

json cond(const char* field, json value, const char* match = "EQUAL") {
  return {{"field", field}, {"match", match}, {"value", std::move(value)}};
}

json protocol_value(const std::string& p) {
  if (!p.empty() && std::all_of(p.begin(), p.end(), ::isdigit) && p.size() < 4) return std::stoi(p);
  return p;
}

void endpoint_conditions(json& conds, const std::string& text, const char* addr_field, const char* port_field,
                         const char* option) {
  if (text.empty()) return;
  diagnostics::Endpoint e;
  try {
    e = diagnostics::parse_endpoint(text, option);
  } catch (const ne::EventError& err) {
    throw std::invalid_argument(std::string("--") + option + ": " + err.what());
  }
  if (!e.address.empty()) conds.push_back(cond(addr_field, e.address));
  if (e.port >= 0) conds.push_back(cond(port_field, e.port));
}

std::string endpoint(const json& e, const char* addr, const char* port) {
  if (!e.contains(addr)) return "*";
  std::string a = e[addr].get<std::string>();
  if (a.find(':') != std::string::npos) a = "[" + a + "]";
  return e.contains(port) ? a + ":" + e[port].dump() : a;
}

std::string protocol_name(const json& e) {
  if (!e.contains("ip_protocol")) return "-";
  const int p = e["ip_protocol"].get<int>();
  return p == 6 ? "tcp" : p == 17 ? "udp" : p == 1 ? "icmp" : p == 58 ? "icmpv6" : std::to_string(p);
}

void print_event(const json& e) {
  std::cout << e.value("time", "") << "  " << e.value("type", "") << "  " << e.value("layer", "-") << "  "
            << protocol_name(e) << "  " << endpoint(e, "local_address", "local_port") << " -> "
            << endpoint(e, "remote_address", "remote_port");
  if (e.contains("app_id")) std::cout << "  app " << e["app_id"].get<std::string>();
  if (e.contains("uid")) std::cout << "  uid " << e["uid"];
  if (e.contains("filter_key"))
    std::cout << "  filter \"" << e.value("filter_name", "") << "\" " << e["filter_key"].get<std::string>();
  if (e.contains("provider")) std::cout << "  provider " << e["provider"].get<std::string>();
  if (e.value("hard", false)) std::cout << "  hard";
  if (e.value("veto", false)) std::cout << "  veto";
  if (e.contains("reason")) std::cout << "  (" << e["reason"].get<std::string>() << ")";
  if (e.contains("log_prefix")) std::cout << "  log " << e["log_prefix"].dump();  // (quoted: ufw's end in a space)
  if (e.value("log_suppressed", 0) > 0) std::cout << " (" << e["log_suppressed"] << " before it over the rate, not written)";
  std::cout << '\n';
}

void print_coverage(const json& c) {
  std::cout << "complete since " << c.value("complete_since", "?");
  if (c.contains("now")) std::cout << " (now " << c["now"].get<std::string>() << ")";
  std::cout << '\n';
  for (const auto& g : c.value("gaps", json::array()))
    std::cout << "  gap " << g.value("from", "") << " .. " << (g["until"].is_null() ? "now" : g["until"].get<std::string>())
              << "  " << g.value("reason", "") << (g.value("lost", 0) ? ", " + g["lost"].dump() + " lost" : "") << '\n';
}

}  // namespace

void add_event_filter_options(CLI::App* cmd, EventFilterArgs& a, bool with_window) {
  if (with_window) {
    cmd->add_option("--since", a.since, "From this time: ISO 8601, now, or ago: 90s, 10m, 2h, 1d");
    cmd->add_option("--until", a.until, "Up to this time (same forms)");
  }
  cmd->add_option("--app", a.app, "Only events of this executable (path)");
  cmd->add_option("--remote", a.remote, "Only events with this remote ADDR[:PORT] ([V6]:PORT; ADDR may be ADDR/PREFIX)");
  cmd->add_option("--local", a.local, "Only events with this local ADDR[:PORT]");
  cmd->add_option("--provider", a.provider, "Only events caused by this provider's filters (GUID)");
  cmd->add_option("--filter", a.filter, "Only events caused by this filter (GUID)");
  cmd->add_option("--layer", a.layer, "Only events at this layer");
  cmd->add_option("--protocol", a.protocol, "Only events of this IP protocol (tcp, udp, icmp, or a number)");
  cmd->add_option("--user", a.user, "Only events of this user (name or uid)");
  cmd->add_option("--type", a.types, "Only these event types (CLASSIFY_DROP, CLASSIFY_ALLOW, ...; repeatable)");
}

json event_template(const EventFilterArgs& a) {
  json t = json::object();
  if (!a.since.empty()) t["since"] = parse_when(a.since, "--since");
  if (!a.until.empty()) t["until"] = parse_when(a.until, "--until");
  json conds = json::array();
  if (!a.app.empty()) conds.push_back(cond("ALE_APP_ID", app_path(a.app)));
  // An address with a prefix is a match on the prefix; with a port, on both.
  endpoint_conditions(conds, a.remote, "IP_REMOTE_ADDRESS", "IP_REMOTE_PORT", "remote");
  endpoint_conditions(conds, a.local, "IP_LOCAL_ADDRESS", "IP_LOCAL_PORT", "local");
  if (!a.provider.empty()) conds.push_back(cond("PROVIDER_KEY", a.provider));
  if (!a.filter.empty()) conds.push_back(cond("FILTER_KEY", a.filter));
  if (!a.layer.empty()) conds.push_back(cond("LAYER_KEY", a.layer));
  if (!a.protocol.empty()) conds.push_back(cond("IP_PROTOCOL", protocol_value(a.protocol)));
  if (!a.user.empty()) conds.push_back(cond("ALE_USER_ID", parse_user(a.user)));
  for (const auto& ty : a.types) conds.push_back(cond("NET_EVENT_TYPE", ty));
  t["conditions"] = conds;
  return t;
}

int show_netevents(client::Client& c, const EventFilterArgs& a, size_t offset, size_t limit, bool newest, bool as_json) {
  const json tmpl = event_template(a);
  const auto l = c.list("netevents_enum", "events", {{"template", tmpl}, {"order", newest ? "newest" : "oldest"}},
                        offset, limit);
  if (as_json) {
    std::cout << json{{"events", l.items}, {"total", l.total}}.dump(2) << '\n';
    return 0;
  }
  for (const auto& e : l.items) print_event(e);
  std::cerr << l.items.size() << " of " << l.total << " matching events"
            << (offset ? " (from offset " + std::to_string(offset) + ")" : "") << "\n";
  return 0;
}

int show_coverage(client::Client& c, bool as_json) {
  json r = c.call("netevents_coverage");
  if (as_json) std::cout << r.dump(2) << '\n';
  else {
    std::cout << r.value("path", "") << ": " << r.value("events", 0) << " events (keeps "
              << r["retention"].value("max_events", 0) << ", at most " << r["retention"].value("max_age_s", 0) << " s old)\n";
    print_coverage(r);
  }
  return 0;
}

int show_options(client::Client& c, bool as_json) {
  json r = c.call("netevents_settings");
  if (as_json) std::cout << r.dump(2) << '\n';
  else std::cout << "netevents " << (r.value("collect", false) ? "on" : "off") << "  keywords " << r["keywords"].dump() << '\n';
  return 0;
}

int monitor_netevents(client::Client& c, const EventFilterArgs& a, bool as_json, volatile std::sig_atomic_t& stop) {
  c.call("netevents_subscribe", {{"template", event_template(a)}});
  while (!stop) {
    auto e = c.next_event(500);
    if (!e || (*e)["event"] != "netevent") continue;
    if (as_json) std::cout << (*e)["netevent"].dump() << std::endl;
    else {
      print_event((*e)["netevent"]);
      std::cout.flush();
    }
  }
  return 0;
}

namespace {

struct SetOptionsArgs {
  std::string netevents, allows;  // on | off (empty: unchanged)
  std::vector<std::string> keywords;
  bool keywords_given = false;
};

struct CaptureArgs {
  std::string action, file;
};

struct DiagnoseArgs {
  std::string time = "now", provider, protocol, local, remote, user, app, helpers_dir;
  double window_s = 60;
  int repair = 0;
  bool no_foreign = false;
};

CLI::App* add_set_command(CLI::App& app, SetOptionsArgs& a) {
  auto* set = app.add_subcommand("set", "Change lfpd's options (like netsh wfp set options)");
  auto* opts = set->add_subcommand("options", "Net event collection: --netevents on|off, --allows on|off, --keywords");
  opts->add_option("--netevents", a.netevents, "Collect net events")->check(CLI::IsMember({"on", "off"}));
  opts->add_option("--allows", a.allows, "Collect allows too (the CLASSIFY_ALLOW keyword)")->check(CLI::IsMember({"on", "off"}));
  opts->add_option("--keywords", a.keywords, "The keywords, replacing the current ones (INBOUND_MCAST, ..., or none)")
      ->each([&a](const std::string&) { a.keywords_given = true; });
  set->require_subcommand(1);
  return set;
}

int run_set(client::Client& c, const SetOptionsArgs& a, bool as_json) {
  json cur = c.call("netevents_settings");
  json s = json::object();
  if (!a.netevents.empty()) s["collect"] = a.netevents == "on";
  std::vector<std::string> kw = cur.value("keywords", std::vector<std::string>());
  if (a.keywords_given) {
    kw.clear();
    for (const auto& k : a.keywords)
      if (k != "none") kw.push_back(k);
  }
  if (!a.allows.empty()) {
    std::erase(kw, "CLASSIFY_ALLOW");
    if (a.allows == "on") kw.push_back("CLASSIFY_ALLOW");
  }
  s["keywords"] = kw;
  json r = c.call("netevents_settings", {{"settings", s}});
  if (as_json) std::cout << r.dump() << '\n';
  else std::cout << "netevents " << (r.value("collect", false) ? "on" : "off") << "  keywords " << r["keywords"].dump() << '\n';
  return 0;
}


// Turns the packet layers' keeping of dropped packets on or off; false when this lfpd has none.
bool packet_layers_capture(client::Client& c, bool on) {
  try {
    c.call("capture_packets", {{"on", on}});
    return true;
  } catch (const client::ClientError& e) {
    if (std::string(e.what()).find("unknown op") != std::string::npos) return false;  // no packet layers
    throw;
  }
}

// The dropped packets lfpd kept since the capture started, as pcap files beside the bundle: one for
// the frames (Ethernet) and one for the IP packets (raw IP), since a pcap file has one link type.
json dropped_packets(client::Client& c, const std::string& bundle, bool kept) {
  if (!kept)
    return {{"files", json::array()}, {"note", "this lfpd runs no packet layers (lfpd --packet-layers): the ALE layers "
                                               "decide on sockets, before there is a packet to keep"}};
  const json r = c.call("capture_packets", {{"on", false}});
  json files = json::array();
  for (const auto& [link, dlt, suffix] : {std::tuple{"ETHERNET", DLT_EN10MB, ".frames.pcap"}, std::tuple{"RAW", DLT_RAW, ".ip.pcap"}}) {
    std::vector<const json*> mine;
    for (const auto& p : r["packets"])
      if (p["link"] == link) mine.push_back(&p);
    if (mine.empty()) continue;
    const std::string path = bundle + suffix;
    pcap_t* dead = pcap_open_dead(dlt, 256);  // lfpd keeps a dropped packet's first 256 bytes
    pcap_dumper_t* out = dead ? pcap_dump_open(dead, path.c_str()) : nullptr;
    if (!out) {
      if (dead) pcap_close(dead);
      throw std::runtime_error(path + ": cannot write");
    }
    for (const json* p : mine) {
      const std::string hex = (*p)["data"];
      std::vector<u_char> bytes;
      for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<u_char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      const int64_t ns = ne::parse_time((*p)["time"].get<std::string>()).value_or(0);
      pcap_pkthdr h{};
      h.ts.tv_sec = ns / 1000000000;
      h.ts.tv_usec = ns % 1000000000 / 1000;
      h.caplen = static_cast<bpf_u_int32>(bytes.size());
      h.len = (*p)["len"].get<bpf_u_int32>();
      pcap_dump(reinterpret_cast<u_char*>(out), &h, bytes.data());
    }
    pcap_dump_close(out);
    pcap_close(dead);
    files.push_back({{"file", path}, {"link", link}, {"packets", mine.size()}});
  }
  return {{"files", files}, {"packets", r["packets"].size()}, {"kept_at_most", r["kept_at_most"]}};
}

CLI::App* add_capture_command(CLI::App& app, CaptureArgs& a) {
  auto* cap = app.add_subcommand("capture", "Capture a diagnostic bundle (like netsh wfp capture): start FILE, then stop FILE");
  cap->add_option("action", a.action, "start | stop")->required()->check(CLI::IsMember({"start", "stop"}));
  cap->add_option("file", a.file, "The bundle (JSON): state, filters, net events and coverage")->required();
  return cap;
}

int run_capture(client::Client& c, const CaptureArgs& a, bool as_json) {
  if (a.action == "start") {
    c.call("ping");  // lfpd must be there to capture anything
    json marker = {{"lfp_capture", 1}, {"started", ne::format_time(ne::now_ns())}, {"complete", false}};
    // With the packet layers, lfpd keeps what they drop until the capture stops.
    marker["packets_kept"] = packet_layers_capture(c, true);
    std::ofstream f(a.file);
    f << marker.dump(2) << '\n';
    if (!f) throw std::runtime_error(a.file + ": cannot write");
    if (as_json) std::cout << marker.dump() << '\n';
    else std::cout << "capturing since " << marker["started"].get<std::string>() << "; `lfp capture stop " << a.file << "` ends it\n";
    return 0;
  }
  std::ifstream in(a.file);
  json marker = json::parse(in, nullptr, false);
  if (marker.is_discarded() || !marker.is_object() || !marker.contains("started") || marker.value("complete", true))
    throw std::runtime_error(a.file + ": not a capture started with `lfp capture start " + a.file + "`");
  json bundle = marker;
  bundle["stopped"] = ne::format_time(ne::now_ns());
  c.begin(true);
  bundle["state"] = c.call("state", {{"objects", false}});  // (the objects by pages: any number fits)
  for (const char* kind : {"provider", "sublayer", "callout", "provider_context"})
    bundle["state"][std::string(kind) + "s"] = c.enumerate(kind);
  bundle["filters"] = c.enumerate("filter");
  c.commit();
  bundle["options"] = c.call("netevents_settings");
  bundle["coverage"] = c.call("netevents_coverage");
  const json tmpl = {{"since", marker["started"]}, {"until", bundle["stopped"]}};
  bundle["netevents"] = c.list("netevents_enum", "events", {{"template", tmpl}}).items;
  bundle["packets"] = dropped_packets(c, a.file, marker.value("packets_kept", false));
  bundle["complete"] = true;
  const std::string tmp = a.file + ".tmp";
  {
    std::ofstream f(tmp);
    f << bundle.dump(2) << '\n';
    if (!f) throw std::runtime_error(tmp + ": cannot write");
  }
  std::filesystem::rename(tmp, a.file);
  if (as_json) std::cout << json{{"file", a.file}, {"netevents", bundle["netevents"].size()}}.dump() << '\n';
  else std::cout << "wrote " << a.file << ": " << bundle["netevents"].size() << " net events, " << bundle["filters"].size()
                 << " filters, " << bundle["packets"].value("packets", 0) << " dropped packets\n";
  return 0;
}

CLI::App* add_diagnose_command(CLI::App& app, DiagnoseArgs& a) {
  auto* d = app.add_subcommand("diagnose", "Why can't this app reach that host? (WFP's Filtering Platform helper class)");
  d->add_option("--time", a.time, "When it failed: ISO 8601, now, or ago: 90s, 10m, 2h")->capture_default_str();
  d->add_option("--window", a.window_s, "Seconds around --time to search")->check(CLI::Range(0.0, 31622400.0))->capture_default_str();
  d->add_option("--provider", a.provider, "Only this provider's filters (GUID)");
  d->add_option("--protocol", a.protocol, "tcp, udp, icmp, or a number");
  d->add_option("--local", a.local, "Local ADDR[:PORT] ([V6]:PORT)");
  d->add_option("--remote", a.remote, "Remote ADDR[:PORT] ([V6]:PORT)");
  d->add_option("--user", a.user, "User (name or uid)");
  d->add_option("--app", a.app, "Executable path");
  d->add_option("--repair", a.repair, "Apply repair N of a confirmed diagnosis (needs the rights it needs)")->check(CLI::Range(1, 100));
  d->add_option("--helpers-dir", a.helpers_dir, "Provider helper registry (default $LFP_HELPERS_DIR or /etc/lfp/helpers.d)");
  d->add_flag("--no-foreign", a.no_foreign, "Do not look for causes outside LFP");
  return d;
}

int run_diagnose(client::Client& c, const DiagnoseArgs& a, bool as_json) {
  json h = {{"time", a.time == "now" ? std::string("now") : parse_when(a.time, "--time")}, {"window_s", a.window_s}};
  if (!a.provider.empty()) h["provider"] = a.provider;
  if (!a.protocol.empty()) h["protocol"] = protocol_value(a.protocol);
  if (!a.local.empty()) h["local"] = a.local;
  if (!a.remote.empty()) h["remote"] = a.remote;
  if (!a.user.empty()) h["user"] = parse_user(a.user);
  if (!a.app.empty()) h["app"] = app_path(a.app);
  json d = c.call("diagnose", {{"hypothesis", h}, {"foreign", !a.no_foreign}});
  const std::string verdict = d.value("verdict", "");

  // WFPClients: the blamed provider's own helper gets the same attributes.
  if (verdict == "confirmed" && d.contains("provider") && d["provider"].contains("key")) {
    std::string dir = a.helpers_dir;
    if (dir.empty()) {
      const char* env = std::getenv("LFP_HELPERS_DIR");
      dir = env && *env ? env : diagnostics::kDefaultHelpersDir;
    }
    json attrs = d["hypothesis"];
    attrs["provider"] = d["provider"]["key"];
    attrs["filter"] = d.contains("filter") ? d["filter"].value("key", "") : "";
    attrs["event"] = d["event"];
    d["helper"] = diagnostics::hand_off(dir, *Guid::parse(d["provider"]["key"].get<std::string>()), attrs);
  }

  if (a.repair) {
    if (verdict != "confirmed") throw std::invalid_argument("--repair: there is nothing to repair (the diagnosis is " + verdict + ")");
    const json& repairs = d["repairs"];
    if (a.repair > static_cast<int>(repairs.size()))
      throw std::invalid_argument("--repair " + std::to_string(a.repair) + ": the diagnosis offers " +
                                  std::to_string(repairs.size()) + " repairs");
    const json& rep = repairs[a.repair - 1];
    bool in_txn = false;
    try {
      for (const json& r : rep["requests"]) {
        json args = r;
        const std::string op = args["op"].get<std::string>();
        args.erase("op");
        c.call(op, args);
        in_txn = op == "txn_begin" ? true : op == "txn_commit" ? false : in_txn;
      }
    } catch (...) {
      if (in_txn) c.abort();
      throw;
    }
    d["repaired"] = rep;
  }

  if (as_json) {
    std::cout << d.dump(2) << '\n';
  } else {
    std::cout << verdict << ": ";
    if (verdict == "confirmed") {
      std::cout << d.value("cause", "") << '\n';
      if (d.contains("event")) {
        std::cout << "  event: ";
        print_event(d["event"]);
      }
      const json inv = d.value("involved", json::object());
      if (inv.value("veto", false)) std::cout << "  a veto was involved\n";
      if (inv.value("other_provider", false)) std::cout << "  another provider's filter also decides this traffic:\n";
      for (const auto& o : inv.value("other_filters", json::array()))
        std::cout << "    " << o.value("outcome", "") << " by \"" << o.value("name", "") << "\" " << o.value("filter", "")
                  << (o["provider"].is_null() ? std::string() : " of provider " + o["provider"].get<std::string>()) << '\n';
      if (inv.contains("blocked_now"))
        std::cout << "  with the policy as it is now, this traffic is " << (inv["blocked_now"].get<bool>() ? "still blocked" : "permitted") << '\n';
      if (d.contains("helper")) {
        const json& hp = d["helper"];
        std::cout << "  provider's helper: " << hp.value("status", "");
        if (hp.contains("root_cause")) std::cout << ": " << hp["root_cause"].get<std::string>();
        if (hp.contains("detail")) std::cout << " (" << hp["detail"].get<std::string>() << ")";
        std::cout << '\n';
        for (const auto& r : hp.value("repairs", json::array())) std::cout << "    helper repair: " << (r.is_string() ? r.get<std::string>() : r.dump()) << '\n';
      }
      for (const auto& r : d.value("repairs", json::array()))
        std::cout << "  repair " << r["n"] << ": " << r.value("description", "") << '\n';
      if (d.contains("repaired")) std::cout << "applied repair " << d["repaired"]["n"] << '\n';
      else if (!d.value("repairs", json::array()).empty()) std::cout << "  (lfp diagnose ... --repair N applies one)\n";
    } else {
      std::cout << d.value("reason", "") << '\n';
      for (const auto& f : d.value("foreign", json::array()))
        std::cout << "  outside LFP (" << f.value("certainty", "") << "): " << f.value("where", "") << ": "
                  << f.value("description", "") << '\n';
    }
  }
  return verdict == "confirmed" ? kConfirmed : verdict == "healthy" ? 0 : kIndeterminate;
}

}  // namespace

void add_netevents_verbs(CLI::App& app, Globals& g, Verbs& verbs) {
  auto set_args = std::make_shared<SetOptionsArgs>();
  auto* set = add_set_command(app, *set_args);
  set->get_subcommand("options")->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, set, [&g, set_args](client::Client& c) {
    return run_set(c, *set_args, g.as_json);
  });
  auto capture_args = std::make_shared<CaptureArgs>();
  auto* capture = add_capture_command(app, *capture_args);
  capture->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, capture, [&g, capture_args](client::Client& c) {
    return run_capture(c, *capture_args, g.as_json);
  });
  auto diagnose_args = std::make_shared<DiagnoseArgs>();
  auto* diagnose = add_diagnose_command(app, *diagnose_args);
  diagnose->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, diagnose, [&g, diagnose_args](client::Client& c) {
    return run_diagnose(c, *diagnose_args, g.as_json);
  });
}

}  // namespace lfp::cli
