// SPDX-License-Identifier: MIT
#include "lfp/import/nft.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "chains.hpp"
#include "lfp/engine/guid.hpp"

namespace lfp::import {

using namespace detail;

namespace {

struct BaseChain {
  std::string family, table, name, hook, policy;
  int prio = 0;
};

std::string key_of(const std::string& family, const std::string& table, const std::string& chain) {
  return family + " " + table + " " + chain;
}

// A right-hand value as the chains take it (see Cond); false when it has no form.
bool value_of(const json& v, bool address, json& out) {
  if (v.is_number_unsigned()) return out = v, true;
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (address || s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return out = s, true;  // a name: a protocol, a state
    return out = json(std::stoul(s)), true;
  }
  if (v.is_object() && v.contains("prefix") && address)
    return out = v["prefix"].value("addr", "") + "/" + std::to_string(v["prefix"].value("len", 0)), true;
  if (v.is_object() && v.contains("range") && v["range"].is_array() && v["range"].size() == 2) {
    json lo, hi;
    if (!value_of(v["range"][0], address, lo) || !value_of(v["range"][1], address, hi)) return false;
    return out = json{{"low", lo}, {"high", hi}}, true;
  }
  if (v.is_object() && v.contains("elem") && v["elem"].is_object() && v["elem"].contains("val"))  // an element with a timeout or comment
    return value_of(v["elem"]["val"], address, out);
  return false;
}

struct Ctx {
  const std::map<std::string, json>* sets;  // "family table name" -> elements (of sets and maps)
  std::string family, table;
};

// The elements `right` stands for: a named set's, an anonymous set's, a list's, or itself.
std::vector<json> elements(json right, const Ctx& cx, std::string& problem) {
  if (right.is_string() && right.get<std::string>().rfind("@", 0) == 0) {
    auto it = cx.sets->find(key_of(cx.family, cx.table, right.get<std::string>().substr(1)));
    if (it == cx.sets->end()) return problem = "set " + right.get<std::string>() + " is not in the ruleset", std::vector<json>{};
    right = it->second;
  }
  if (right.is_object() && right.contains("set")) right = right["set"];
  if (!right.is_array()) return {right};
  return {right.begin(), right.end()};
}

// One "match" expression into conditions on `r` (or a problem).
void add_match(const json& m, const Ctx& cx, Rule& r, int& family_only) {
  const json& left = m.contains("left") ? m["left"] : json();
  const json right = m.contains("right") ? m["right"] : json();
  const std::string op = m.value("op", "==");
  std::string role;
  bool address = false;
  auto problem = [&](const std::string& why) { r.problems.push_back(why); };
  if (left.contains("payload") && left["payload"].is_object()) {
    const std::string proto = left["payload"].value("protocol", ""), field = left["payload"].value("field", "");
    if (proto == "ip" || proto == "ip6") {
      family_only = proto == "ip" ? 4 : 6;
      if (field == "saddr" || field == "daddr") role = field == "saddr" ? "src_addr" : "dst_addr", address = true;
      else if (field == "protocol" || field == "nexthdr") role = "IP_PROTOCOL";
    } else if (proto == "tcp" || proto == "udp" || proto == "th") {
      if (proto != "th" && std::none_of(r.conds.begin(), r.conds.end(), [&](const Cond& c) { return c.role == "IP_PROTOCOL"; }))
        r.conds.push_back({"IP_PROTOCOL", proto, false});
      if (field == "sport" || field == "dport") role = field == "sport" ? "src_port" : "dst_port";
    } else if (proto == "icmp" || proto == "icmpv6") {
      family_only = proto == "icmp" ? 4 : 6;
      if (std::none_of(r.conds.begin(), r.conds.end(), [&](const Cond& c) { return c.role == "IP_PROTOCOL"; }))
        r.conds.push_back({"IP_PROTOCOL", proto, false});
      if (field == "type" || field == "code") role = "icmp_" + field;
    }
    if (role.empty()) return problem("payload " + proto + " " + field + " has no LFP field");
  } else if (left.contains("meta") && left["meta"].is_object()) {
    const std::string key = left["meta"].value("key", "");
    if (key == "l4proto") role = "IP_PROTOCOL";
    else if (key == "nfproto") {
      if (right == "ipv4" || right == "ipv6") family_only = right == "ipv4" ? 4 : 6;
      else problem("meta nfproto " + json_text(right));
      return;
    } else if (key == "iifname" || key == "oifname" || key == "iif" || key == "oif") {
      if (op != "==" && op != "!=") return problem("interface " + json_text(right) + " with '" + op + "'");
      if (right == "lo") r.conds.push_back({"loopback", 1, op == "!="});
      else if (!right.is_string()) problem("interface " + json_text(right) + " is not one name");
      else if (const std::string why = interface_name_problem(right.get<std::string>()); !why.empty()) problem(why);
      else r.conds.push_back({key[0] == 'i' ? "in_interface" : "out_interface", right, op == "!="});
      return;
    } else if (key == "skuid" || key == "skgid") {
      json id;
      if (op != "==" || !value_of(right, false, id) || !id.is_number()) return problem("meta " + key + " " + json_text(right));
      r.conds.push_back({"ALE_USER_ID", json{{key == "skuid" ? "uids" : "gids", {id}}}, false});
      return;
    } else {
      return problem("meta " + key + " has no LFP field");
    }
  } else if (left.contains("ct") && left["ct"].is_object() && left["ct"].value("key", "") == "state") {
    role = "ct_state";
  } else if (left.contains("fib") && left["fib"].is_object() && left["fib"].value("result", "") == "type" &&
             left["fib"].value("flags", json::array()) == json::array({"daddr"})) {
    role = "dst_type";  // fib daddr type: iptables' addrtype --dst-type
  } else {
    return problem("match on " + json_text(left) + " has no LFP field");
  }
  std::string why;
  const std::vector<json> values = elements(right, cx, why);
  if (!why.empty()) return problem(why);
  const bool negated = op == "!=";
  if (op != "==" && op != "in" && !negated) {
    // A comparison on a port: a range.
    json v;
    if (values.size() != 1 || (role != "src_port" && role != "dst_port") || !value_of(values[0], false, v) || !v.is_number())
      return problem("operator " + op + " has no LFP form here");
    const uint64_t n = v.get<uint64_t>();
    json range = op == "<" ? json{{"low", 0}, {"high", n == 0 ? 0 : n - 1}} : op == "<=" ? json{{"low", 0}, {"high", n}}
               : op == ">" ? json{{"low", n + 1}, {"high", 65535}} : op == ">=" ? json{{"low", n}, {"high", 65535}} : json();
    if (range.is_null() || (op == "<" && n == 0)) return problem("operator " + op + " has no LFP form here");
    r.conds.push_back({role, range, false});
    return;
  }
  for (const json& v : values) {
    json out;
    if (!value_of(v, address, out)) return problem("value " + json_text(v) + " has no LFP form");
    r.conds.push_back({role, out, negated});
  }
}

// A `limit` statement ({"rate": 10, "per": "second", "burst": 5, "inv": true}) as the rule's rate:
// one bucket for the rule, as nftables keeps it; a byte rate is the callout's to refuse.
void add_limit(const json& l, Rule& r) {
  if (r.rate) r.problems.push_back("two limit statements in one rule");
  r.rate.emplace();
  RateMatch& rm = *r.rate;
  rm.over = l.value("inv", false);
  const json rate = l.value("rate", json()), per = l.value("per", json()), burst = l.value("burst", json(5));
  if (l.value("rate_unit", "packets") != "packets" || l.value("burst_unit", "packets") != "packets")
    rm.problems.push_back("limit " + json_text(l) + ": a byte rate (the rate-limit callout counts packets)");
  if (!rate.is_number_unsigned() || rate.get<uint64_t>() == 0 || !(per == "second" || per == "minute" || per == "hour" || per == "day"))
    rm.problems.push_back("limit " + json_text(l) + ": not a rate of packets per second, minute, hour or day");
  else rm.config = {{"rate", rate}, {"per", per}, {"burst", burst.is_number_unsigned() && burst.get<uint64_t>() > 0 ? burst : json(5)}};
}

// A verdict statement as a rule's target; false when it is not one.
bool verdict(const std::string& kind, const json& v, const std::string& fam, const std::string& table, Rule& r) {
  if (kind == "accept" || kind == "drop" || kind == "reject" || kind == "return") {
    r.target = kind == "accept" ? "ACCEPT" : kind == "drop" ? "DROP" : kind == "reject" ? "REJECT" : "RETURN";
    return true;
  }
  if (kind == "jump" || kind == "goto") {
    r.target = key_of(fam, table, v.is_object() ? v.value("target", "") : "");
    r.go = kind == "goto";
    return true;
  }
  return kind == "continue";
}

}  // namespace

namespace {
ImportResult import_doc(const json& doc, const ImportOptions& opts);  // (below)
}  // namespace

ImportResult import_nft(const std::string& text, const ImportOptions& opts) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    const size_t upto = std::min(e.byte, text.size());
    throw ImportError(1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(upto), '\n')),
                      std::string("not JSON: ") + e.what());
  } catch (const json::exception& e) {  // a number too large, ...
    throw ImportError(1, std::string("not JSON this reader takes: ") + e.what());
  }
  try {
    return import_doc(doc, opts);
  } catch (const json::exception& e) {  // a member of the wrong type somewhere
    throw ImportError(0, std::string("not a ruleset as `nft -j list ruleset` writes it: ") + e.what());
  }
}

namespace {
ImportResult import_doc(const json& doc, const ImportOptions& opts) {
  if (!doc.is_object() || !doc.contains("nftables") || !doc["nftables"].is_array())
    throw ImportError(1, "expected {\"nftables\": [...]} as `nft -j list ruleset` writes it");
  const json& items = doc["nftables"];

  std::map<std::string, json> sets;
  std::vector<BaseChain> bases;
  std::map<std::string, Chain> chains;  // by "family table name"
  std::map<std::string, std::vector<int>> families;  // chain key -> each rule's family (0: both)
  size_t nrules = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const json& it = items[i];
    if (!it.is_object() || it.empty()) throw ImportError(0, "item " + std::to_string(i) + ": not an object");
    const std::string kind = it.begin().key();
    const json& o = it.begin().value();
    if (!o.is_object()) continue;
    if (kind == "set" || kind == "map") {
      sets[key_of(o.value("family", ""), o.value("table", ""), o.value("name", ""))] = o.value("elem", json::array());
    } else if (kind == "chain") {
      const std::string k = key_of(o.value("family", ""), o.value("table", ""), o.value("name", ""));
      chains[k].policy = o.contains("hook") ? o.value("policy", std::string("accept")) == "drop" ? "DROP" : "ACCEPT" : "-";
      if (o.contains("hook") && o.value("type", "filter") == "filter")
        bases.push_back({o.value("family", ""), o.value("table", ""), o.value("name", ""), o.value("hook", ""),
                         chains[k].policy, o.value("prio", 0)});
    } else if (kind == "rule") {
      ++nrules;
      const std::string fam = o.value("family", ""), table = o.value("table", "");
      const std::string k = key_of(fam, table, o.value("chain", ""));
      if (!chains.count(k)) throw ImportError(0, "item " + std::to_string(i) + ": rule of an undeclared chain " + k);
      Rule r;
      r.line = static_cast<int>(i);
      r.text = "table " + fam + " " + table + " chain " + o.value("chain", "") + " handle " + json_text(o.value("handle", json()));
      if (o.contains("comment") && o["comment"].is_string()) r.comment = o["comment"];
      int family_only = fam == "ip" ? 4 : fam == "ip6" ? 6 : 0;
      const Ctx cx{&sets, fam, table};
      std::vector<Rule> split;  // a verdict map: one rule per element (its keys are distinct)
      for (const json& e : o.value("expr", json::array())) {
        if (!e.is_object() || e.empty()) continue;
        const std::string ek = e.begin().key();
        const json& ev = e.begin().value();
        if (ek == "match") add_match(ev, cx, r, family_only);
        else if (verdict(ek, ev, fam, table, r)) continue;
        else if (ek == "counter" || ek == "comment") continue;
        else if (ek == "log") {
          r.target = r.target.empty() ? "LOG" : r.target;  // (a verdict after it is the rule's target)
          r.log.emplace();
          if (ev.is_object()) {
            if (ev.contains("prefix") && ev["prefix"].is_string()) r.log->prefix = ev["prefix"];
            if (ev.contains("level") && ev["level"].is_string()) r.log->level = ev["level"];
          }
        }
        else if (ek == "limit") add_limit(ev, r);
        else if (ek == "vmap" && ev.is_object()) {
          std::string why;
          for (const json& el : elements(ev.value("data", json()), cx, why)) {
            Rule one = r;
            if (!el.is_array() || el.size() != 2 || !el[1].is_object() || el[1].empty() ||
                !verdict(el[1].begin().key(), el[1].begin().value(), fam, table, one)) {
              r.problems.push_back("verdict map element " + json_text(el) + " has no LFP form");
              break;
            }
            add_match(json{{"op", "=="}, {"left", ev.value("key", json())}, {"right", el[0]}}, cx, one, family_only);
            split.push_back(std::move(one));
          }
          if (!why.empty()) r.problems.push_back(why);
        } else r.problems.push_back("statement '" + ek + "' has no LFP form");
      }
      if (split.empty() || !r.problems.empty()) split = {std::move(r)};
      for (Rule& one : split) {
        chains[k].rules.push_back(std::move(one));
        families[k].push_back(family_only);
      }
    }
  }

  ImportResult res;
  res.rules = nrules;
  Ledger ledger;  // every rule has an account, even one no chain reaches
  for (const auto& [k, c] : chains)
    for (const Rule& r : c.rules) ledger[r.line] = {r.line, r.text, {}, {}};
  const std::string provider = opts.provider.empty() ? Guid::generate().str() : opts.provider;
  json pol = {{"version", 1}, {"providers", json::array()}, {"sublayers", json::array()}, {"filters", json::array()}};
  if (opts.provider.empty()) pol["providers"].push_back({{"key", provider}, {"name", "imported from " + opts.source}});
  // nftables runs base chains at one hook by priority (lower first); their sublayers weigh more.
  std::sort(bases.begin(), bases.end(), [](const BaseChain& a, const BaseChain& b) { return a.prio < b.prio; });
  uint32_t sub_weight = 0xC000;
  for (const BaseChain& b : bases) {
    const Hook hook = b.hook == "input" ? Hook::INPUT : b.hook == "output" ? Hook::OUTPUT : Hook::FORWARD;
    if (b.hook != "input" && b.hook != "output" && b.hook != "forward") {
      for (const Rule& r : chains[key_of(b.family, b.table, b.name)].rules) {
        const std::string why = "hook " + b.hook + ": the packet layers are not imported yet";
        res.unmapped.push_back({r.line, r.text, why});
        ledger[r.line].notes.push_back(why);
      }
      continue;
    }
    const std::string sublayer = opts.sublayer.empty() ? Guid::generate().str() : opts.sublayer;
    if (opts.sublayer.empty())
      pol["sublayers"].push_back({{"key", sublayer}, {"name", "nftables " + b.family + " " + b.table + " " + b.name},
                                  {"provider", provider}, {"weight", sub_weight > 0 ? sub_weight-- : 0}});
    for (int family : {4, 6}) {
      if ((b.family == "ip" && family == 6) || (b.family == "ip6" && family == 4)) continue;
      // The chains as this family sees them: rules limited to the other family left out.
      std::map<std::string, Chain> view = chains;
      for (auto& [k, c] : view) {
        std::vector<Rule> keep;
        for (size_t i = 0; i < c.rules.size(); ++i)
          if (families[k][i] == 0 || families[k][i] == family) keep.push_back(c.rules[i]);
        c.rules = std::move(keep);
      }
      emit_chain(view, key_of(b.family, b.table, b.name), hook, family, {provider, sublayer, opts.source, "item"}, pol, res, ledger);
    }
  }
  finish_coverage(ledger, res);  // (an inet rule reported for both families is reported once)
  res.policy = std::move(pol);
  return res;
}
}  // namespace

}  // namespace lfp::import
