#include "lfp/import/iptables.hpp"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "chains.hpp"
#include "lfp/engine/guid.hpp"

namespace lfp::import {

using nlohmann::json;

using namespace detail;

namespace {

// Splits a rule line as iptables-save quotes it ("..." with \" and \\ inside).
std::vector<std::string> tokens(const std::string& line, int lineno) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::string t;
    if (line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          t += line[i + 1];
          i += 2;
        } else if (line[i] == '"') {
          ++i;
          closed = true;
          break;
        } else {
          t += line[i++];
        }
      }
      if (!closed) throw ImportError(lineno, "unterminated quote");
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') t += line[i++];
    }
    out.push_back(t);
  }
  return out;
}



bool is_number(const std::string& s) {
  return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

json port_value(const std::string& p, std::string* problem) {
  const size_t colon = p.find(':');
  if (colon == std::string::npos) {
    if (!is_number(p)) *problem = "port '" + p + "' is not a number (service names are not resolved)";
    return is_number(p) ? json(std::stoi(p)) : json();
  }
  const std::string lo = colon == 0 ? "0" : p.substr(0, colon), hi = colon + 1 == p.size() ? "65535" : p.substr(colon + 1);
  if (!is_number(lo) || !is_number(hi)) {
    *problem = "port range '" + p + "' is not numeric";
    return json();
  }
  return json{{"low", std::stoi(lo)}, {"high", std::stoi(hi)}};
}

// Parses the matches and target of one "-A CHAIN ..." line. Fields depend on the built-in chain the
// rule ends up in, so addresses and ports are kept as roles ("src_addr") and named when flattened.
Rule parse_rule(const std::vector<std::string>& t, int lineno, const std::string& text, bool& v6_seen, bool& v4_seen) {
  Rule r;
  r.line = lineno;
  r.text = text;
  auto need = [&](size_t i) -> const std::string& {
    if (i >= t.size()) throw ImportError(lineno, "'" + t[i - 1] + "' needs a value");
    return t[i];
  };
  for (size_t i = 2; i < t.size(); ++i) {
    bool neg = false;
    if (t[i] == "!") {
      neg = true;
      ++i;
      if (i >= t.size()) throw ImportError(lineno, "'!' at the end of the rule");
    }
    const std::string& o = t[i];
    auto add = [&](const std::string& role, json v, const std::string& match = "EQUAL") {
      if (neg) {
        if (match != "EQUAL" || (v.is_string() && v.get<std::string>().find('/') != std::string::npos)) {
          r.problems.push_back("a negated " + o + " on a range or prefix has no LFP form");
          return;
        }
        r.conds.push_back({role, "NOT_EQUAL", v});
      } else {
        r.conds.push_back({role, match, v});
      }
    };
    if (o == "-p" || o == "--protocol") {
      std::string p = need(++i);
      std::transform(p.begin(), p.end(), p.begin(), ::tolower);
      if (p == "all") continue;
      if (p == "ipv6-icmp" || p == "icmpv6") p = "ICMPV6";
      add("IP_PROTOCOL", is_number(p) ? json(std::stoi(p)) : json(p == "ICMPV6" ? p : [&] {
        std::string u = p;
        std::transform(u.begin(), u.end(), u.begin(), ::toupper);
        return u;
      }()));
    } else if (o == "-s" || o == "--source" || o == "-d" || o == "--destination") {
      std::string a = need(++i);
      (a.find(':') != std::string::npos ? v6_seen : v4_seen) = true;
      // iptables-save writes host addresses with /32 (/128): plain addresses in LFP.
      if (a.size() > 3 && (a.ends_with("/32") || a.ends_with("/128"))) a = a.substr(0, a.rfind('/'));
      if (a == "0.0.0.0/0" || a == "::/0") continue;
      add(o[1] == 's' || o == "--source" ? "src_addr" : "dst_addr", a);
    } else if (o == "--sport" || o == "--source-port" || o == "--dport" || o == "--destination-port") {
      std::string problem;
      json v = port_value(need(++i), &problem);
      if (!problem.empty()) r.problems.push_back(problem);
      else add(o == "--sport" || o == "--source-port" ? "src_port" : "dst_port", v, v.is_object() ? "RANGE" : "EQUAL");
    } else if (o == "--sports" || o == "--dports" || o == "--source-ports" || o == "--destination-ports") {
      if (neg) {
        r.problems.push_back("a negated multiport list has no LFP form");
        ++i;
        continue;
      }
      std::stringstream ss(need(++i));
      std::string p;
      while (std::getline(ss, p, ',')) {
        std::string problem;
        json v = port_value(p, &problem);
        if (!problem.empty()) r.problems.push_back(problem);
        else add(o == "--sports" || o == "--source-ports" ? "src_port" : "dst_port", v, v.is_object() ? "RANGE" : "EQUAL");
      }
    } else if (o == "--ports") {
      ++i;
      r.problems.push_back("multiport --ports (source or destination) has no LFP form: one field per condition");
    } else if (o == "--src-range" || o == "--dst-range") {
      const std::string v = need(++i);
      const size_t dash = v.find('-');
      if (dash == std::string::npos) throw ImportError(lineno, o + " takes FROM-TO");
      (v.find(':') != std::string::npos ? v6_seen : v4_seen) = true;
      add(o == "--src-range" ? "src_addr" : "dst_addr", json{{"low", v.substr(0, dash)}, {"high", v.substr(dash + 1)}}, "RANGE");
    } else if (o == "-i" || o == "--in-interface" || o == "-o" || o == "--out-interface") {
      const std::string ifname = need(++i);
      if (ifname == "lo" && !neg) r.conds.push_back({"FLAGS", "FLAGS_ALL_SET", "IS_LOOPBACK"});
      else r.problems.push_back("interface '" + ifname + "': LFP names interfaces by index, which only the host knows");
    } else if (o == "--uid-owner" || o == "--gid-owner") {
      const std::string who = need(++i);
      std::optional<uint32_t> id;
      if (is_number(who)) id = static_cast<uint32_t>(std::stoul(who));
      else if (o == "--uid-owner") { if (auto* p = getpwnam(who.c_str())) id = p->pw_uid; }
      else if (auto* g = getgrnam(who.c_str())) id = g->gr_gid;
      if (!id) r.problems.push_back("owner '" + who + "' is not known on this host");
      else add("ALE_USER_ID", json{{o == "--uid-owner" ? "uids" : "gids", {*id}}});
    } else if (o == "--ctstate" || o == "--state") {
      std::set<std::string> states;
      std::stringstream ss(need(++i));
      for (std::string s; std::getline(ss, s, ',');) states.insert(s);
      if (neg) r.problems.push_back("a negated connection state has no LFP form");
      else if (states.count("NEW")) {
        // The ALE layers see exactly the new flows: no condition needed.
      } else if (std::all_of(states.begin(), states.end(), [](const std::string& s) { return s == "ESTABLISHED" || s == "RELATED"; })) {
        r.established_only = true;
      } else {
        r.problems.push_back("connection state " + need(i) + " has no LFP form");
      }
    } else if (o == "--comment") {
      r.comment = need(++i);
    } else if (o == "-m" || o == "--match") {
      const std::string m = need(++i);
      static const std::set<std::string> known = {"tcp", "udp", "multiport", "iprange", "owner", "conntrack", "state", "comment", "icmp", "icmp6"};
      if (!known.count(m)) r.problems.push_back("match '" + m + "' has no LFP field");
    } else if (o == "-j" || o == "--jump") {
      r.target = need(++i);
      if (r.target == "REJECT" || r.target == "LOG")  // their options follow
        while (i + 1 < t.size() && t[i + 1].rfind("--", 0) == 0) i += 2;
    } else if (o == "-g" || o == "--goto") {
      ++i;
      r.problems.push_back("goto has no LFP form (a filter cannot end its caller's chain)");
    } else if (o == "--icmp-type" || o == "--icmpv6-type") {
      ++i;
      r.problems.push_back("ICMP types are not fields of the ALE layers");
    } else if (o.rfind("--", 0) == 0 || o.rfind("-", 0) == 0) {
      // An option of a match we do not map: skip its value(s) until the next option.
      r.problems.push_back("option " + o + " has no LFP field");
      while (i + 1 < t.size() && t[i + 1][0] != '-' && t[i + 1] != "!") ++i;
    } else {
      throw ImportError(lineno, "unexpected '" + o + "'");
    }
  }
  return r;
}

}  // namespace

ImportResult import_iptables(const std::string& text, const ImportOptions& opts) {
  std::map<std::string, Chain> chains;
  std::vector<std::pair<int, std::string>> other_tables;  // rules of tables other than filter
  std::string table;
  bool v6 = false, v4 = false, committed = true;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  size_t nrules = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      if (!committed) throw ImportError(lineno, "table " + line + " starts before COMMIT of table " + table);
      table = line.substr(1);
      committed = false;
      continue;
    }
    if (line == "COMMIT") {
      if (committed) throw ImportError(lineno, "COMMIT outside a table");
      committed = true;
      continue;
    }
    if (table.empty() || committed) throw ImportError(lineno, "a rule or chain outside a table (*filter ... COMMIT)");
    if (line[0] == ':') {
      const auto t = tokens(line.substr(1), lineno);
      if (t.size() < 2) throw ImportError(lineno, "a chain line is ':NAME POLICY [packets:bytes]'");
      if (table == "filter") chains[t[0]].policy = t[1];
      continue;
    }
    const auto t = tokens(line, lineno);
    if (t.size() < 2 || (t[0] != "-A" && t[0] != "--append")) throw ImportError(lineno, "expected -A CHAIN ..., got '" + line + "'");
    ++nrules;
    if (table != "filter") {
      other_tables.push_back({lineno, line});
      continue;
    }
    if (!chains.count(t[1])) throw ImportError(lineno, "chain " + t[1] + " is not declared");
    chains[t[1]].rules.push_back(parse_rule(t, lineno, line, v6, v4));
  }
  if (!committed) throw ImportError(lineno, "table " + table + " has no COMMIT");
  if (v4 && v6) throw ImportError(lineno, "both IPv4 and IPv6 addresses: give iptables-save and ip6tables-save output separately");

  ImportResult res;
  res.rules = nrules;
  for (const auto& [l, text] : other_tables)
    res.unmapped.push_back({l, text, "only the filter table is imported (NAT, mangle and raw rules do not filter)"});

  const std::string provider = opts.provider.empty() ? Guid::generate().str() : opts.provider;
  const std::string sublayer = opts.sublayer.empty() ? Guid::generate().str() : opts.sublayer;
  json pol = {{"version", 1}, {"providers", json::array()}, {"sublayers", json::array()}, {"filters", json::array()}};
  if (opts.provider.empty()) pol["providers"].push_back({{"key", provider}, {"name", "imported from " + opts.source}});
  if (opts.sublayer.empty())
    pol["sublayers"].push_back({{"key", sublayer}, {"name", "imported from " + opts.source}, {"provider", provider}, {"weight", 0x8000}});

  const int family = v6 ? 6 : 4;
  for (const auto& [hook, cname] : {std::pair{Hook::INPUT, "INPUT"}, std::pair{Hook::OUTPUT, "OUTPUT"},
                                    std::pair{Hook::FORWARD, "FORWARD"}})
    if (chains.count(cname)) emit_chain(chains, cname, hook, family, provider, sublayer, opts.source, pol, res);
  std::sort(res.unmapped.begin(), res.unmapped.end(), [](const Unmapped& a, const Unmapped& b) { return a.line < b.line; });
  res.policy = std::move(pol);
  return res;
}

}  // namespace lfp::import
