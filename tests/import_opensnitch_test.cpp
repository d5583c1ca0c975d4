// SPDX-License-Identifier: MIT
// lfp import opensnitch: the mapping, the report of what cannot be expressed, file- and line-numbered
// errors, and the proof that the imported policy decides as OpenSnitch: thousands of random
// connections decided by a reference evaluator written from opensnitchd's rule semantics
// (daemon/rule/loader.go FindFirstMatch, operator.go) and by the engine on the imported policy.
#include <arpa/inet.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "lfp/engine/engine.hpp"
#include "lfp/import/opensnitch.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
using import::FileImportError;
using import::ImportError;
using import::RuleFile;

const std::string kDir = std::string(LFP_SOURCE_DIR) + "/tests/data/import/opensnitch";

std::vector<RuleFile> fixture() { return import::read_opensnitch_rules(kDir); }

std::vector<const json*> filters_named(const json& pol, const std::string& name) {
  std::vector<const json*> out;
  for (const auto& f : pol["filters"])
    if (f["name"] == name) out.push_back(&f);
  return out;
}

std::map<std::string, std::string> reasons(const import::ImportResult& r) {
  std::map<std::string, std::string> m;  // file name (without the directory) -> reason
  for (const auto& u : r.unmapped) m[u.text.substr(u.text.rfind('/') + 1)] += u.reason;
  return m;
}

TEST(ImportOpenSnitch, MapsRulesToAleConnectFilters) {
  const auto files = fixture();
  ASSERT_EQ(files.size(), 17u);
  EXPECT_TRUE(std::is_sorted(files.begin(), files.end(), [](const RuleFile& a, const RuleFile& b) { return a.name < b.name; }));
  const auto r = import::import_opensnitch(files, {.default_action = "allow"});
  EXPECT_EQ(r.rules, 17u);
  // The localhost regexp is two literals, one per family.
  auto lo = filters_named(r.policy, "000-allow-localhost");
  ASSERT_EQ(lo.size(), 2u);
  EXPECT_EQ((*lo[0])["layer"], "ALE_AUTH_CONNECT_V4");
  EXPECT_EQ((*lo[0])["conditions"], json::parse(R"([{"field":"IP_REMOTE_ADDRESS","match":"EQUAL","value":"127.0.0.1"}])"));
  EXPECT_EQ((*lo[1])["conditions"][0]["value"], "::1");
  // A list is AND'ed: the path alternatives, the ports and the uids; paths ignore case as in OpenSnitch.
  auto sys = filters_named(r.policy, "000-allow-system-cmds");
  ASSERT_EQ(sys.size(), 2u);
  EXPECT_EQ((*sys[0])["conditions"].size(), 6u);
  EXPECT_EQ((*sys[0])["conditions"][0]["match"], "EQUAL_CASE_INSENSITIVE");
  EXPECT_EQ((*sys[0])["conditions"][4], json::parse(R"({"field":"ALE_USER_ID","match":"EQUAL","value":{"uids":[0]}})"));
  // protocol "udp6" is UDP over IPv6 only; "tcp" TCP over IPv4 only.
  auto udp6 = filters_named(r.policy, "002-deny-udp6");
  ASSERT_EQ(udp6.size(), 1u);
  EXPECT_EQ((*udp6[0])["layer"], "ALE_AUTH_CONNECT_V6");
  EXPECT_EQ((*udp6[0])["action"], "BLOCK");
  auto ff = filters_named(r.policy, "allow-always-list-usr-lib-firefox-firefox-443");
  ASSERT_EQ(ff.size(), 1u);
  EXPECT_EQ((*ff[0])["layer"], "ALE_AUTH_CONNECT_V4");
  // sensitive: true keeps the exact path; a range is a RANGE.
  EXPECT_EQ((*filters_named(r.policy, "allow-always-simple-usr-bin-ssh")[0])["conditions"][0]["match"], "EQUAL");
  EXPECT_EQ((*filters_named(r.policy, "allow-always-list-user-id-1000-ports-8000-8099")[0])["conditions"][1],
            json::parse(R"({"field":"IP_REMOTE_PORT","match":"RANGE","value":{"low":8000,"high":8099}})"));
  // Weights: deny/reject/priority rules above every plain allow, in name order; the default last.
  auto w = [&](const std::string& n) { return (*filters_named(r.policy, n)[0])["weight"]["explicit"].get<uint64_t>(); };
  EXPECT_GT(w("000-allow-localhost"), w("000-allow-system-cmds"));
  EXPECT_GT(w("000-allow-system-cmds"), w("001-deny-admin-lan-ssh"));
  EXPECT_GT(w("reject-always-simple-user-id-65534"), w("allow-always-simple-usr-bin-curl"));
  EXPECT_GT(w("deny-always-simple-usr-bin-telnet"), w("allow-always-simple-usr-bin-curl"));
  EXPECT_EQ(w("OpenSnitch default action allow"), 0u);
  FilterEngine e;
  EXPECT_NO_THROW(policy::apply_policy(e, policy::policy_from_json(r.policy)));
}

TEST(ImportOpenSnitch, ReportsEveryRuleItCannotExpressWithItsFile) {
  const auto r = import::import_opensnitch(fixture());
  auto why = reasons(r);
  EXPECT_NE(why["deny-always-simple-www-google-analytics-l-google-com.json"].find("host name"), std::string::npos);
  EXPECT_NE(why["deny-always-regexp-tmp-executables.json"].find("not a literal"), std::string::npos);
  EXPECT_NE(why["allow-30m-simple-usr-bin-wget.json"].find("duration 30m"), std::string::npos);
  EXPECT_NE(why["allow-always-simple-python3-sync-py.json"].find("command line"), std::string::npos);
  EXPECT_NE(why["deny-always-simple-usr-bin-nc.json"].find("disabled"), std::string::npos);
  EXPECT_NE(why["deny-always-lists-domains-ads.json"].find("lists"), std::string::npos);
  // Caveats: imported, and said so.
  EXPECT_EQ(why["allow-always-simple-usr-bin-curl.json"].rfind("rule 'allow-always-simple-usr-bin-curl': imported;", 0), 0u);
  // Nothing dropped silently: every enabled rule is a filter or reported as not imported.
  std::set<std::string> names;
  for (const auto& f : r.policy["filters"]) names.insert(f["name"]);
  for (const auto& f : fixture()) {
    const std::string base = f.name.substr(f.name.rfind('/') + 1), name = base.substr(0, base.size() - 5);
    const bool reported = why.count(base) && why[base].find("imported;") == std::string::npos;
    EXPECT_NE(names.count(name) > 0, reported) << base;
  }
  // Values OpenSnitch would never match are reported as such, and what cannot combine.
  const auto odd = import::import_opensnitch({
      {"a.json", R"({"name":"a","enabled":true,"action":"deny","duration":"always","operator":{"type":"simple","operand":"dest.ip","data":"2001:db8:0::1"}})"},
      {"b.json", R"({"name":"b","enabled":true,"action":"deny","duration":"always","operator":{"type":"simple","operand":"dest.port","data":"053"}})"},
      {"c.json", R"({"name":"c","enabled":true,"action":"deny","duration":"always","operator":{"type":"list","operand":"list","list":[
          {"type":"simple","operand":"dest.ip","data":"192.0.2.1"},{"type":"network","operand":"dest.network","data":"192.0.2.0/24"}]}})"},
      {"d.json", R"({"name":"d","enabled":true,"action":"deny","duration":"always","operator":{"type":"list","operand":"list","list":[
          {"type":"simple","operand":"dest.ip","data":"192.0.2.1"},{"type":"simple","operand":"protocol","data":"tcp6"}]}})"},
      {"e.json", R"({"name":"a","enabled":true,"action":"allow","duration":"always","operator":{"type":"simple","operand":"true","data":""}})"},
      {"f.json", R"({"name":"f","enabled":true,"action":"deny","duration":"once","operator":{"type":"simple","operand":"true","data":""}})"},
  });
  why = reasons(odd);
  EXPECT_NE(why["a.json"].find("replaced by e.json"), std::string::npos);
  EXPECT_NE(why["b.json"].find("never matches"), std::string::npos);
  EXPECT_NE(why["c.json"].find("two tests of IP_REMOTE_ADDRESS"), std::string::npos);
  EXPECT_NE(why["d.json"].find("both IPv4 and IPv6"), std::string::npos);
  EXPECT_NE(why["f.json"].find("once"), std::string::npos);
  ASSERT_EQ(odd.policy["filters"].size(), 2u);  // e.json's allow-all, at both layers
  EXPECT_EQ(odd.policy["filters"][0]["conditions"], json::array());
  // The non-canonical dest.ip check applies ignoring case only when the rule does.
  const auto dip = import::import_opensnitch({{"g.json", R"({"name":"g","enabled":true,"action":"deny","duration":"always",
      "operator":{"type":"simple","operand":"dest.ip","data":"2001:DB8::1","sensitive":false}})"}});
  EXPECT_EQ(dip.policy["filters"].size(), 1u);
}

TEST(ImportOpenSnitch, MalformedInputGetsAFileAndLineNumberedError) {
  const std::pair<std::string, int> cases[] = {
      {"{\n\"name\": \"x\",\n\"enabled\": tru }\n}", 3},
      {"[]", 1},
      {"{\"name\": \"x\"}", 1},                               // no operator
      {"{\"name\": 7, \"operator\": {}}", 1},                  // a name of the wrong type
      {"{\"name\": \"x\", \"enabled\": true, \"action\": \"deny\", \"operator\": {\"type\": \"list\", \"list\": [3]}}", 1},
      {"\n\n{\"name\": \"x\", \"operator\": {}}}", 3},         // trailing garbage
      {"", 1},
  };
  for (const auto& [text, line] : cases) {
    try {
      import::import_opensnitch({{"r.json", text}});
      ADD_FAILURE() << "accepted: " << text;
    } catch (const FileImportError& e) {
      EXPECT_EQ(e.line(), line) << e.what();
      EXPECT_EQ(e.file(), "r.json");
    }
  }
  EXPECT_THROW(import::read_opensnitch_rules(kDir + "/none.json"), FileImportError);
  // Random damage to real files: an error or a policy the policy reader takes, never a crash.
  const auto files = fixture();
  std::mt19937 rng(5);
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {
    RuleFile f = files[rng() % files.size()];
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) f.text[rng() % f.text.size()] = "\"{}[],:0a^$|\\ -/"[rng() % 16];
    try {
      const auto r = import::import_opensnitch({f});
      FilterEngine e;
      policy::apply_policy(e, policy::policy_from_json(r.policy));
    } catch (const ImportError&) {
      ++errors;
    } catch (const policy::PolicyError& e) {
      ADD_FAILURE() << "the imported policy is refused: " << e.what() << "\n" << f.text;
    }
  }
  EXPECT_GT(errors, 100);
}

// ---- The reference: OpenSnitch's semantics, from daemon/rule/operator.go and loader.go. ----

struct Conn {
  std::string path, command, host, ip, proto;  // proto as opensnitchd names it: "tcp", "udp6", ...
  int family = 4;
  uint32_t uid = 0;
  uint16_t port = 0;
};

bool equal_fold(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(c));
  return s;
}

bool in_cidr(const std::string& ip, const std::string& cidr) {
  const auto slash = cidr.find('/');
  const std::string net = cidr.substr(0, slash);
  const int bits = std::stoi(cidr.substr(slash + 1));
  unsigned char a[16], b[16];
  const int af = net.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(af, ip.c_str(), a) != 1 || inet_pton(af, net.c_str(), b) != 1) return false;  // other family
  for (int i = 0; i < bits; ++i)
    if (((a[i / 8] >> (7 - i % 8)) & 1) != ((b[i / 8] >> (7 - i % 8)) & 1)) return false;
  return true;
}

// Stands in for the domain lists a lists.domains rule reads from its directory.
const std::set<std::string> kAdDomains = {"ads.example.net"};

bool op_match(const json& op, const Conn& c) {
  const std::string type = op.value("type", ""), operand = op.value("operand", ""), data = op.value("data", "");
  const bool sensitive = op.value("sensitive", false);
  if (type == "list") {
    bool all = true;  // listMatch: AND of the members (none: true)
    if (op.contains("list") && op["list"].is_array())
      for (const auto& m : op["list"]) all = all && op_match(m, c);
    return all;
  }
  if (operand == "true") return true;
  std::string v;
  if (operand == "process.path") v = c.path;
  else if (operand == "process.command") v = c.command;
  else if (operand == "dest.host") v = c.host;
  else if (operand == "dest.ip") v = c.ip;
  else if (operand == "dest.port") v = std::to_string(c.port);
  else if (operand == "user.id") v = std::to_string(c.uid);
  else if (operand == "protocol") v = c.proto;
  else if (operand == "dest.network") return type == "network" && in_cidr(c.ip, data);
  else if (operand == "lists.domains") return kAdDomains.count(c.host) > 0;
  else return false;
  if (type == "simple") return sensitive ? v == data : equal_fold(v, data);
  if (type == "regexp") return std::regex_search(sensitive ? v : lower(v), std::regex(sensitive ? data : lower(data)));
  if (type == "range") {
    const auto dash = data.find('-');
    const uint64_t x = std::stoull(v), lo = std::stoull(data.substr(0, dash)), hi = std::stoull(data.substr(dash + 1));
    return x >= lo && x <= hi;
  }
  return false;
}

// FindFirstMatch: enabled rules by name; the first matching deny/reject/priority rule wins, else the
// last matching allow; none: the default action. Returns the decision and the deciding rule's name.
std::pair<bool, std::string> opensnitch_decides(const std::map<std::string, json>& rules, const Conn& c, bool default_allow) {
  const json* match = nullptr;
  for (const auto& [name, r] : rules) {
    if (!r.value("enabled", false) || !op_match(r["operator"], c)) continue;
    match = &r;
    if (r["action"] != "allow" || r.value("precedence", false)) break;
  }
  if (!match) return {default_allow, ""};
  return {(*match)["action"] == "allow", (*match)["name"]};
}

TEST(ImportOpenSnitch, DecidesAsOpenSnitchOnRandomConnections) {
  const auto files = fixture();
  for (const bool default_allow : {true, false}) {
    const auto r = import::import_opensnitch(files, {.default_action = default_allow ? "allow" : "deny"});
    FilterEngine engine;
    policy::apply_policy(engine, policy::policy_from_json(r.policy));
    std::map<std::string, json> all, mapped;  // by rule name; `mapped`: the rules the import kept
    std::set<std::string> kept;
    for (const auto& f : r.policy["filters"]) kept.insert(f["name"]);
    for (const auto& f : files) {
      json j = json::parse(f.text);
      all[j["name"]] = j;
      if (kept.count(j["name"])) mapped[j["name"]] = j;
    }
    const std::vector<std::string> paths = {"/usr/bin/curl", "/usr/bin/CURL", "/usr/bin/telnet", "/usr/lib/firefox/firefox",
                                            "/usr/sbin/ntpd", "/lib/systemd/systemd-timesyncd", "/usr/bin/ssh", "/usr/bin/SSH",
                                            "/tmp/x", "/dev/shm/.y", "/usr/bin/wget", "/usr/bin/python3", "/usr/bin/nc", "/opt/app/bin/app"};
    const std::vector<uint32_t> uids = {0, 115, 1000, 1001, 65534};
    const std::vector<std::string> v4 = {"127.0.0.1", "10.66.3.4", "10.66.0.1", "10.67.0.1", "192.0.2.10", "198.51.100.7"};
    const std::vector<std::string> v6 = {"::1", "2001:db8::53", "2001:db8::54", "fe80::1"};
    const std::vector<uint16_t> ports = {22, 53, 123, 443, 80, 8000, 8050, 8099, 8100};
    const std::vector<std::string> hosts = {"", "", "", "www-google-analytics.l.google.com", "ads.example.net", "example.org"};
    std::mt19937 rng(default_allow ? 11 : 12);
    int differences = 0, explained = 0;
    std::map<std::string, int> by_rule;  // differences by the (unmapped) rule that decided them
    for (int i = 0; i < 4000; ++i) {
      Conn c;
      c.path = paths[rng() % paths.size()];
      c.command = c.path == "/usr/bin/python3" && rng() % 2 ? "/usr/bin/python3 /opt/sync/sync.py" : c.path;
      c.uid = uids[rng() % uids.size()];
      c.family = rng() % 3 ? 4 : 6;
      c.ip = c.family == 4 ? v4[rng() % v4.size()] : v6[rng() % v6.size()];
      c.port = rng() % 5 ? ports[rng() % ports.size()] : static_cast<uint16_t>(1 + rng() % 65535);
      const bool tcp = rng() % 3;
      c.proto = std::string(tcp ? "tcp" : "udp") + (c.family == 6 ? "6" : "");
      c.host = hosts[rng() % hosts.size()];
      const auto [want, rule] = opensnitch_decides(all, c, default_allow);
      const auto [want_mapped, rule_mapped] = opensnitch_decides(mapped, c, default_allow);
      json values = {{"IP_PROTOCOL", tcp ? "TCP" : "UDP"}, {"IP_REMOTE_ADDRESS", c.ip}, {"IP_REMOTE_PORT", c.port},
                     {"IP_LOCAL_ADDRESS", c.family == 4 ? "192.0.2.1" : "2001:db8::1"}, {"IP_LOCAL_PORT", 40000},
                     {"ALE_APP_ID", c.path}, {"ALE_USER_ID", "uid=" + std::to_string(c.uid) + ",gids=" + std::to_string(c.uid)}};
      policy::Request req;
      policy::parse_request(json{{"layer", c.family == 4 ? "ALE_AUTH_CONNECT_V4" : "ALE_AUTH_CONNECT_V6"}, {"values", values}}, req);
      const bool lfp = engine.classify(req.layer, req.values).permit;
      const std::string what = c.path + " uid " + std::to_string(c.uid) + " -> " + c.proto + " " + c.ip + ":" + std::to_string(c.port) + " host '" + c.host + "'";
      // What the import kept decides exactly as OpenSnitch does with those rules.
      EXPECT_EQ(lfp, want_mapped) << what << ": OpenSnitch's rule '" << rule_mapped << "'";
      if (lfp != want) {
        ++differences;
        // Explained only by a rule the import reported: it decided this connection in OpenSnitch.
        const bool reported = !kept.count(rule);
        explained += reported;
        ++by_rule[rule];
        EXPECT_TRUE(reported) << what << ": decided by '" << rule << "', which was imported";
      }
    }
    std::string summary;
    for (const auto& [rule, n] : by_rule) summary += " " + rule + ": " + std::to_string(n) + ";";
    EXPECT_EQ(differences, explained);
    EXPECT_GT(differences, 0);  // the fixture's unmapped rules do decide some connections
    RecordProperty(default_allow ? "differences_default_allow" : "differences_default_deny", differences);
    std::cout << "default " << (default_allow ? "allow" : "deny") << ": 4000 connections, " << differences
              << " differences, all decided by rules reported as not expressible:" << summary << '\n';
  }
}

TEST(ImportOpenSnitch, NameOrderAndPriorityAsOpenSnitch) {
  // loader.go: "001-deny" after "000-allow" still denies (a plain allow does not stop the search);
  // a priority allow before the deny wins.
  auto rule = [](const std::string& name, const std::string& action, bool prio) {
    return RuleFile{name + ".json", json{{"name", name}, {"enabled", true}, {"precedence", prio}, {"action", action}, {"duration", "always"},
                                         {"operator", {{"type", "simple"}, {"operand", "process.path"}, {"data", "/usr/bin/chrome"}}}}.dump()};
  };
  auto decide = [](const std::vector<RuleFile>& files) {
    const auto r = import::import_opensnitch(files);
    FilterEngine e;
    policy::apply_policy(e, policy::policy_from_json(r.policy));
    policy::Request req;
    policy::parse_request(json{{"layer", "ALE_AUTH_CONNECT_V4"}, {"values", {{"ALE_APP_ID", "/usr/bin/chrome"}}}}, req);
    return e.classify(req.layer, req.values).permit;
  };
  EXPECT_FALSE(decide({rule("000-allow-chrome", "allow", false), rule("001-deny-chrome", "deny", false)}));
  EXPECT_TRUE(decide({rule("000-allow-chrome", "allow", true), rule("001-deny-chrome", "deny", false)}));
  EXPECT_FALSE(decide({rule("001-allow-chrome", "allow", true), rule("000-deny-chrome", "reject", false)}));
  // The order is the rule's name, not the file's.
  auto renamed = rule("000-allow-chrome", "allow", true);
  renamed.name = "zzz.json";
  EXPECT_TRUE(decide({rule("001-deny-chrome", "deny", false), renamed}));
}

}  // namespace
}  // namespace lfp::test
