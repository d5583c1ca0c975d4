// SPDX-License-Identifier: MIT
#include "lfp/import/iptables.hpp"

#include <arpa/inet.h>
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

// A rate as xt_limit and xt_hashlimit write it ("3/min", "5/sec", "10": a second) into the rate-limit
// callout's configuration; false for what it cannot count (a byte rate: "1mb/s").
bool put_rate(const std::string& v, json& config) {
  const size_t slash = v.find('/');
  const std::string n = v.substr(0, slash), unit = slash == std::string::npos ? "sec" : v.substr(slash + 1);
  if (n.empty() || n.size() > 9 || !is_number(n) || std::stoul(n) == 0) return false;
  static const std::pair<const char*, const char*> kUnits[] = {
      {"s", "second"}, {"sec", "second"}, {"second", "second"}, {"m", "minute"}, {"min", "minute"}, {"minute", "minute"},
      {"h", "hour"},   {"hour", "hour"},  {"d", "day"},         {"day", "day"}};
  for (auto [name, per] : kUnits)
    if (unit == name) {
      config["rate"] = std::stoul(n);
      config["per"] = per;
      return true;
    }
  return false;
}

// One option of a -m limit or -m hashlimit match (t[i]; its value consumed), into `rm`.
void rate_option(RateMatch& rm, const std::string& o, bool neg, const std::vector<std::string>& t, size_t& i, int lineno) {
  auto value = [&]() -> const std::string& {
    if (++i >= t.size()) throw ImportError(lineno, "'" + o + "' needs a value");
    return t[i];
  };
  auto number = [&](const std::string& v, unsigned long high) {
    if (!is_number(v) || v.size() > 9 || std::stoul(v) > high) throw ImportError(lineno, o + " takes a number up to " + std::to_string(high) + ", got '" + v + "'");
    return std::stoul(v);
  };
  if (neg) rm.problems.push_back("a negated " + o);
  if (o == "--limit" || o == "--hashlimit-upto" || o == "--hashlimit-above" || o == "--hashlimit") {
    const std::string& v = value();
    if (!put_rate(v, rm.config)) rm.problems.push_back(o + " " + v + ": a rate the rate-limit callout does not count (it counts packets: N/sec, /min, /hour, /day)");
    rm.over = o == "--hashlimit-above";
  } else if (o == "--limit-burst" || o == "--hashlimit-burst") {
    const unsigned long b = number(value(), 1'000'000);
    if (b == 0) rm.problems.push_back(o + " 0");
    else rm.config["burst"] = b;
  } else if (o == "--hashlimit-mode") {
    static const std::pair<const char*, const char*> kModes[] = {
        {"srcip", "source"}, {"dstip", "destination"}, {"srcport", "source_port"}, {"dstport", "destination_port"}};
    std::stringstream ss(value());
    rm.config["key"] = json::array();
    for (std::string m; std::getline(ss, m, ',');) {
      const auto* k = std::find_if(std::begin(kModes), std::end(kModes), [&](const auto& x) { return m == x.first; });
      if (k == std::end(kModes)) rm.problems.push_back("--hashlimit-mode " + m + " is not srcip, dstip, srcport or dstport");
      else rm.config["key"].push_back(k->second);
    }
  } else if (o == "--hashlimit-srcmask" || o == "--hashlimit-dstmask") {
    rm.config[o == "--hashlimit-srcmask" ? "source_prefix" : "destination_prefix"] = number(value(), 128);
  } else if (o == "--hashlimit-name") {
    rm.config["name"] = "hashlimit " + value();
  } else if (o == "--hashlimit-htable-expire") {
    rm.config["expire"] = number(value(), 1'000'000'000);
  } else if (o == "--hashlimit-htable-max") {
    const unsigned long m = number(value(), 1u << 24);
    if (m > 0) rm.config["max_sources"] = m;
  } else if (o == "--hashlimit-htable-size" || o == "--hashlimit-htable-gcinterval") {
    value();  // the hash's buckets and its cleaning: no verdict depends on them (expiry is counted at lookup)
  } else {
    while (i + 1 < t.size() && t[i + 1][0] != '-' && t[i + 1] != "!") ++i;
    rm.problems.push_back(o + " has no form in the rate-limit callout");
  }
}

// The token at i, an option's value (the option is at i - 1).
const std::string& token_value(const std::vector<std::string>& t, size_t i, int lineno) {
  if (i >= t.size()) throw ImportError(lineno, "'" + t[i - 1] + "' needs a value");
  return t[i];
}

// One option of -m recent, into rc (what the rate-limit callout cannot count goes to rc.problems).
void recent_option(Recent& rc, const std::string& o, bool neg, const std::vector<std::string>& t, size_t& i, int lineno,
                   bool& v6_seen, bool& v4_seen) {
  auto need = [&](size_t j) -> const std::string& { return token_value(t, j, lineno); };
  if (neg) rc.problems.push_back("a negated " + o);
  if (o == "--set" || o == "--update" || o == "--rcheck" || o == "--remove") {
    rc.mode = o.substr(2);
  } else if (o == "--seconds" || o == "--hitcount") {
    const std::string v = need(++i);
    if (!is_number(v)) throw ImportError(lineno, o + " takes a number, got '" + v + "'");
    (o == "--seconds" ? rc.seconds : rc.hitcount) = static_cast<uint32_t>(std::stoul(v));
  } else if (o == "--name") {
    rc.name = need(++i);
  } else if (o == "--mask") {
    const std::string m = need(++i);
    unsigned char bytes[16];
    const bool v6 = m.find(':') != std::string::npos;
    (v6 ? v6_seen : v4_seen) = true;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, m.c_str(), bytes) != 1) throw ImportError(lineno, "--mask '" + m + "' is not an address");
    int ones = 0;
    bool contiguous = true;
    for (int b = 0; b < (v6 ? 128 : 32); ++b) {
      const bool one = bytes[b / 8] >> (7 - b % 8) & 1;
      if (one && ones != b) contiguous = false;
      ones += one;
    }
    if (!contiguous) rc.problems.push_back("--mask " + m + " is not a prefix");
    rc.prefix = ones == (v6 ? 128 : 32) ? -1 : ones;
  } else if (o == "--rsource") {
    // the default: the source address is the key
  } else {
    while (i + 1 < t.size() && t[i + 1][0] != '-' && t[i + 1] != "!") ++i;  // (--rttl and --reap take none; --rdest none)
    rc.problems.push_back("recent " + o + " has no form in the rate-limit callout (it keys on the source and counts in a window)");
  }
}

// -j/-g TARGET and the target's options: LOG's prefix and level are kept, the others' skipped.
void target_option(Rule& r, const std::string& o, const std::vector<std::string>& t, size_t& i, int lineno) {
  auto need = [&](size_t j) -> const std::string& { return token_value(t, j, lineno); };
  r.target = need(++i);
  r.go = o == "-g" || o == "--goto";
  if (r.target == "LOG") {
    r.log.emplace();
    for (; i + 1 < t.size() && t[i + 1].rfind("--", 0) == 0; ++i) {  // (--log-tcp-sequence and the like take no value)
      const std::string& option = t[i + 1];
      if (option == "--log-prefix" || option == "--log-level") {
        (option == "--log-prefix" ? r.log->prefix : r.log->level) = need(i + 2);
        ++i;
      }
    }
  }
  while (i + 1 < t.size() && t[i + 1].rfind("--", 0) == 0) i += 2;  // a target's options (REJECT)
}

// Parses the matches and target of one "-A CHAIN ..." line. Fields depend on the built-in chain the
// rule ends up in, so addresses and ports are kept as roles ("src_addr") and named when flattened.
Rule parse_rule(const std::vector<std::string>& t, int lineno, const std::string& text, bool& v6_seen, bool& v4_seen) {
  Rule r;
  r.line = lineno;
  r.text = text;
  auto need = [&](size_t i) -> const std::string& { return token_value(t, i, lineno); };
  std::string match;  // the last -m
  for (size_t i = 2; i < t.size(); ++i) {
    bool neg = false;
    if (t[i] == "!") {
      neg = true;
      ++i;
      if (i >= t.size()) throw ImportError(lineno, "'!' at the end of the rule");
    }
    const std::string& o = t[i];
    auto add = [&](const std::string& role, json v) { r.conds.push_back({role, std::move(v), neg}); };
    auto port_list = [&](const std::string& role, const std::string& list) {
      std::stringstream ss(list);
      for (std::string p; std::getline(ss, p, ',');) {
        std::string problem;
        json v = port_value(p, &problem);
        if (!problem.empty()) r.problems.push_back(problem);
        else add(role, v);
      }
    };
    if (o == "-p" || o == "--protocol") {
      std::string p = need(++i);
      std::transform(p.begin(), p.end(), p.begin(), ::tolower);
      if (p != "all") add("IP_PROTOCOL", is_number(p) ? json(std::stoi(p)) : json(p));
    } else if (o == "-s" || o == "--source" || o == "-d" || o == "--destination") {
      const std::string a = need(++i);
      (a.find(':') != std::string::npos ? v6_seen : v4_seen) = true;
      add(o[1] == 's' || o == "--source" ? "src_addr" : "dst_addr", a);
    } else if (o == "--sport" || o == "--source-port" || o == "--dport" || o == "--destination-port") {
      port_list(o == "--sport" || o == "--source-port" ? "src_port" : "dst_port", need(++i));
    } else if (o == "--sports" || o == "--dports" || o == "--source-ports" || o == "--destination-ports") {
      port_list(o == "--sports" || o == "--source-ports" ? "src_port" : "dst_port", need(++i));  // `!`: none of them
    } else if (o == "--ports") {
      ++i;
      r.problems.push_back("multiport --ports (source or destination) has no LFP form: one field per condition");
    } else if (o == "--src-range" || o == "--dst-range") {
      const std::string v = need(++i);
      const size_t dash = v.find('-');
      if (dash == std::string::npos) throw ImportError(lineno, o + " takes FROM-TO");
      (v.find(':') != std::string::npos ? v6_seen : v4_seen) = true;
      add(o == "--src-range" ? "src_addr" : "dst_addr", json{{"low", v.substr(0, dash)}, {"high", v.substr(dash + 1)}});
    } else if (o == "-i" || o == "--in-interface" || o == "-o" || o == "--out-interface") {
      const std::string ifname = need(++i);
      if (ifname == "lo") add("loopback", 1);
      else if (const std::string problem = interface_name_problem(ifname); !problem.empty()) r.problems.push_back(problem);
      else add(o[1] == 'i' || o == "--in-interface" ? "in_interface" : "out_interface", ifname);
    } else if (o == "--uid-owner" || o == "--gid-owner") {
      const std::string who = need(++i);
      std::optional<uint32_t> id;
      if (is_number(who)) id = static_cast<uint32_t>(std::stoul(who));
      else if (o == "--uid-owner") { if (auto* p = getpwnam(who.c_str())) id = p->pw_uid; }
      else if (auto* g = getgrnam(who.c_str())) id = g->gr_gid;
      if (!id) r.problems.push_back("owner '" + who + "' is not known on this host");
      else add("ALE_USER_ID", json{{o == "--uid-owner" ? "uids" : "gids", {*id}}});
    } else if (o == "--ctstate" || o == "--state") {
      std::stringstream ss(need(++i));
      for (std::string s; std::getline(ss, s, ',');) add("ct_state", s);
    } else if (o == "--syn") {
      if (neg) add("ct_state", "NEW");  // a flow's first TCP packet, the one the ALE layers see, is a SYN
      else r.syn = true;
    } else if ((o == "--dst-type" || o == "--src-type") && match == "addrtype") {
      const std::string types = need(++i);
      if (o == "--src-type") {
        r.problems.push_back("addrtype --src-type " + types + ": the ALE layers do not see address types");
        continue;
      }
      std::stringstream ss(types);
      for (std::string s; std::getline(ss, s, ',');) add("dst_type", s);
    } else if (o == "--comment") {
      r.comment = need(++i);
    } else if (o == "-m" || o == "--match") {
      match = need(++i);
      static const std::set<std::string> known = {"tcp", "udp", "multiport", "iprange", "owner", "conntrack", "state", "comment", "addrtype"};
      if (match == "limit" || match == "hashlimit") {  // its options fill r.rate
        if (r.rate) r.problems.push_back("two rate matches (-m limit, -m hashlimit) in one rule");
        r.rate.emplace();
        // The defaults: xt_limit's 3/hour with a burst of 5; xt_hashlimit's burst of 5 and 10 s expiry.
        r.rate->config = match == "limit" ? json{{"rate", 3}, {"per", "hour"}, {"burst", 5}} : json{{"burst", 5}, {"expire", 10000}};
      } else if (match == "recent") {  // its options fill r.recent
        if (r.recent) r.problems.push_back("two -m recent matches in one rule");
        r.recent.emplace();
      } else if (match != "icmp" && match != "icmp6" && !known.count(match)) {  // (icmp: its --icmp-type is reported)
        r.problems.push_back("match '" + match + "' has no LFP field");
      }
    } else if (o == "-j" || o == "--jump" || o == "-g" || o == "--goto") {
      target_option(r, o, t, i, lineno);
    } else if (o == "--icmp-type" || o == "--icmpv6-type") {
      const std::string v = need(++i);  // TYPE, TYPE/CODE or a name
      const size_t slash = v.find('/');
      if (v == "any") continue;
      if (slash != std::string::npos && neg) {
        r.problems.push_back("a negated ICMP type and code has no LFP form");
        continue;
      }
      add("icmp_type", is_number(v.substr(0, slash)) ? json(std::stoi(v.substr(0, slash))) : json(v.substr(0, slash)));
      if (slash != std::string::npos) add("icmp_code", is_number(v.substr(slash + 1)) ? json(std::stoi(v.substr(slash + 1))) : json(v.substr(slash + 1)));
    } else if (match == "recent" && o.rfind("--", 0) == 0) {
      recent_option(*r.recent, o, neg, t, i, lineno, v6_seen, v4_seen);
    } else if ((match == "limit" || match == "hashlimit") && o.rfind("--", 0) == 0) {
      rate_option(*r.rate, o, neg, t, i, lineno);
    } else if (o.rfind("--", 0) == 0 || o.rfind("-", 0) == 0) {
      // An option of a match we do not map: skip its value(s) until the next option.
      while (i + 1 < t.size() && t[i + 1][0] != '-' && t[i + 1] != "!") ++i;
      r.problems.push_back("option " + o + " has no LFP field");
    } else {
      throw ImportError(lineno, "unexpected '" + o + "'");
    }
  }
  if (r.rate && r.rate->config.contains("expire") && !r.rate->config.contains("rate"))
    r.rate->problems.push_back("-m hashlimit without --hashlimit-upto or --hashlimit-above");
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
  const std::string other_table = "only the filter table is imported (NAT, mangle and raw rules do not filter)";
  for (const auto& [l, text] : other_tables) res.unmapped.push_back({l, text, other_table});

  const std::string provider = opts.provider.empty() ? Guid::generate().str() : opts.provider;
  const std::string sublayer = opts.sublayer.empty() ? Guid::generate().str() : opts.sublayer;
  json pol = {{"version", 1}, {"providers", json::array()}, {"sublayers", json::array()}, {"filters", json::array()}};
  if (opts.provider.empty()) pol["providers"].push_back({{"key", provider}, {"name", "imported from " + opts.source}});
  if (opts.sublayer.empty())
    pol["sublayers"].push_back({{"key", sublayer}, {"name", "imported from " + opts.source}, {"provider", provider}, {"weight", 0x8000}});

  Ledger ledger;  // every rule has an account, even one no chain reaches
  for (const auto& [name, chain] : chains)
    for (const Rule& r : chain.rules) ledger[r.line] = {r.line, r.text, {}, {}};
  for (const auto& [l, text] : other_tables) ledger[l] = {l, text, {}, {other_table}};
  const int family = v6 ? 6 : 4;
  for (const auto& [hook, cname] : {std::pair{Hook::INPUT, "INPUT"}, std::pair{Hook::OUTPUT, "OUTPUT"},
                                    std::pair{Hook::FORWARD, "FORWARD"}})
    if (chains.count(cname)) emit_chain(chains, cname, hook, family, {provider, sublayer, opts.source}, pol, res, ledger);
  finish_coverage(ledger, res);
  res.policy = std::move(pol);
  return res;
}

}  // namespace lfp::import
