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

// A right-hand value as the policy format writes it; false when it has no form.
bool value_of(const json& v, bool address, json& out) {
  if (v.is_number_unsigned()) return out = v, true;
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (address || s.find_first_not_of("0123456789") == std::string::npos) return out = address ? json(s) : json(std::stoul(s)), true;
    std::string u = s;
    std::transform(u.begin(), u.end(), u.begin(), ::toupper);
    if (u == "TCP" || u == "UDP" || u == "ICMP" || u == "ICMPV6" || u == "IPV6-ICMP" || u == "SCTP")
      return out = json(u == "IPV6-ICMP" ? "ICMPV6" : u), true;
    return false;
  }
  if (v.is_object() && v.contains("prefix") && address)
    return out = v["prefix"].value("addr", "") + "/" + std::to_string(v["prefix"].value("len", 0)), true;
  if (v.is_object() && v.contains("range") && v["range"].is_array() && v["range"].size() == 2) {
    json lo, hi;
    if (!value_of(v["range"][0], address, lo) || !value_of(v["range"][1], address, hi)) return false;
    return out = json{{"low", lo}, {"high", hi}}, true;
  }
  return false;
}

struct Ctx {
  const std::map<std::string, json>* sets;  // "family table name" -> elements
  std::string family, table;
};

// One "match" expression into conditions on `r` (or a problem).
void add_match(const json& m, const Ctx& cx, Rule& r, int& family_only) {
  const json& left = m.contains("left") ? m["left"] : json();
  json right = m.contains("right") ? m["right"] : json();
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
      if (proto != "th") {
        std::string up = proto;
        std::transform(up.begin(), up.end(), up.begin(), ::toupper);
        if (std::none_of(r.conds.begin(), r.conds.end(), [&](const Cond& c) { return c.field == "IP_PROTOCOL"; }))
          r.conds.push_back({"IP_PROTOCOL", "EQUAL", up});
      }
      if (field == "sport" || field == "dport") role = field == "sport" ? "src_port" : "dst_port";
    }
    if (role.empty()) return problem("payload " + proto + " " + field + " has no LFP field");
  } else if (left.contains("meta") && left["meta"].is_object()) {
    const std::string key = left["meta"].value("key", "");
    if (key == "l4proto") role = "IP_PROTOCOL";
    else if (key == "nfproto") {
      if (right == "ipv4" || right == "ipv6") family_only = right == "ipv4" ? 4 : 6;
      else problem("meta nfproto " + right.dump());
      return;
    } else if (key == "iifname" || key == "oifname") {
      if (right == "lo" && op == "==") r.conds.push_back({"FLAGS", "FLAGS_ALL_SET", "IS_LOOPBACK"});
      else problem("interface " + right.dump() + ": LFP names interfaces by index, which only the host knows");
      return;
    } else if (key == "skuid" || key == "skgid") {
      json id;
      if (op != "==" || !value_of(right, false, id) || !id.is_number()) return problem("meta " + key + " " + right.dump());
      r.conds.push_back({"ALE_USER_ID", "EQUAL", json{{key == "skuid" ? "uids" : "gids", {id}}}});
      return;
    } else {
      return problem("meta " + key + " has no LFP field");
    }
  } else if (left.contains("ct") && left["ct"].is_object() && left["ct"].value("key", "") == "state") {
    std::set<std::string> states;
    for (const json& s : right.is_array() ? right : json::array({right}))
      if (s.is_string()) states.insert(s.get<std::string>());
    if (op == "!=") return problem("a negated ct state has no LFP form");
    if (states.count("new")) return;  // the ALE layers see exactly the new flows
    if (!states.empty() && std::all_of(states.begin(), states.end(), [](const std::string& s) { return s == "established" || s == "related"; })) {
      r.established_only = true;
      return;
    }
    return problem("ct state " + right.dump() + " has no LFP form");
  } else {
    return problem("match on " + left.dump() + " has no LFP field");
  }
  // Named sets are expanded; anonymous sets are OR'ed conditions.
  if (right.is_string() && right.get<std::string>().rfind("@", 0) == 0) {
    auto it = cx.sets->find(key_of(cx.family, cx.table, right.get<std::string>().substr(1)));
    if (it == cx.sets->end()) return problem("set " + right.get<std::string>() + " is not in the ruleset");
    right = json{{"set", it->second}};
  }
  std::vector<json> values;
  if (right.is_object() && right.contains("set") && right["set"].is_array()) values.assign(right["set"].begin(), right["set"].end());
  else values.push_back(right);
  if (op != "==" && op != "in" && !(op == "!=" && values.size() == 1)) return problem("operator " + op + " has no LFP form here");
  for (const json& v : values) {
    json out;
    if (!value_of(v, address, out)) return problem("value " + v.dump() + " has no LFP form");
    const bool range = out.is_object();
    if (op == "!=" && (range || (out.is_string() && out.get<std::string>().find('/') != std::string::npos)))
      return problem("a negated range or prefix has no LFP form");
    r.conds.push_back({role, op == "!=" ? "NOT_EQUAL" : range ? "RANGE" : "EQUAL", out});
  }
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
  for (size_t i = 0; i < items.size(); ++i) {
    const json& it = items[i];
    if (!it.is_object() || it.empty()) throw ImportError(0, "item " + std::to_string(i) + ": not an object");
    const std::string kind = it.begin().key();
    const json& o = it.begin().value();
    if (!o.is_object()) continue;
    if (kind == "set") {
      sets[key_of(o.value("family", ""), o.value("table", ""), o.value("name", ""))] = o.value("elem", json::array());
    } else if (kind == "chain") {
      const std::string k = key_of(o.value("family", ""), o.value("table", ""), o.value("name", ""));
      chains[k].policy = o.contains("hook") ? o.value("policy", std::string("accept")) == "drop" ? "DROP" : "ACCEPT" : "-";
      if (o.contains("hook") && o.value("type", "filter") == "filter")
        bases.push_back({o.value("family", ""), o.value("table", ""), o.value("name", ""), o.value("hook", ""),
                         chains[k].policy, o.value("prio", 0)});
    } else if (kind == "rule") {
      const std::string fam = o.value("family", ""), table = o.value("table", "");
      const std::string k = key_of(fam, table, o.value("chain", ""));
      if (!chains.count(k)) throw ImportError(0, "item " + std::to_string(i) + ": rule of an undeclared chain " + k);
      Rule r;
      r.line = static_cast<int>(i);
      r.text = "table " + fam + " " + table + " chain " + o.value("chain", "") + " handle " + o.value("handle", json()).dump();
      int family_only = fam == "ip" ? 4 : fam == "ip6" ? 6 : 0;
      const Ctx cx{&sets, fam, table};
      for (const json& e : o.value("expr", json::array())) {
        if (!e.is_object() || e.empty()) continue;
        const std::string ek = e.begin().key();
        const json& ev = e.begin().value();
        if (ek == "match") add_match(ev, cx, r, family_only);
        else if (ek == "accept" || ek == "drop" || ek == "reject" || ek == "return")
          r.target = ek == "accept" ? "ACCEPT" : ek == "drop" ? "DROP" : ek == "reject" ? "REJECT" : "RETURN";
        else if (ek == "jump") r.target = key_of(fam, table, ev.is_object() ? ev.value("target", "") : "");
        else if (ek == "goto") r.problems.push_back("goto has no LFP form (a filter cannot end its caller's chain)");
        else if (ek == "counter" || ek == "comment") continue;
        else if (ek == "log") r.target = r.target.empty() ? "LOG" : r.target;
        else r.problems.push_back("statement '" + ek + "' has no LFP form");
      }
      if (o.contains("comment") && o["comment"].is_string()) r.comment = o["comment"];
      chains[k].rules.push_back(std::move(r));
      families[k].push_back(family_only);
    }
  }

  ImportResult res;
  for (const auto& [k, c] : chains) res.rules += c.rules.size();
  const std::string provider = opts.provider.empty() ? Guid::generate().str() : opts.provider;
  json pol = {{"version", 1}, {"providers", json::array()}, {"sublayers", json::array()}, {"filters", json::array()}};
  if (opts.provider.empty()) pol["providers"].push_back({{"key", provider}, {"name", "imported from " + opts.source}});
  // nftables runs base chains at one hook by priority (lower first); their sublayers weigh more.
  std::sort(bases.begin(), bases.end(), [](const BaseChain& a, const BaseChain& b) { return a.prio < b.prio; });
  uint32_t sub_weight = 0xC000;
  for (const BaseChain& b : bases) {
    const Hook hook = b.hook == "input" ? Hook::INPUT : b.hook == "output" ? Hook::OUTPUT : Hook::FORWARD;
    if (b.hook != "input" && b.hook != "output" && b.hook != "forward") {
      for (const Rule& r : chains[key_of(b.family, b.table, b.name)].rules)
        res.unmapped.push_back({r.line, r.text, "hook " + b.hook + ": the packet layers are not imported yet"});
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
      ImportResult part;
      emit_chain(view, key_of(b.family, b.table, b.name), hook, family, provider, sublayer, opts.source, pol, part);
      res.filters += part.filters;
      res.unmapped.insert(res.unmapped.end(), part.unmapped.begin(), part.unmapped.end());
    }
  }
  // An inet rule reported for both families is reported once.
  std::sort(res.unmapped.begin(), res.unmapped.end(), [](const Unmapped& a, const Unmapped& b) { return a.line < b.line; });
  res.unmapped.erase(std::unique(res.unmapped.begin(), res.unmapped.end(),
                                 [](const Unmapped& a, const Unmapped& b) { return a.line == b.line && a.reason == b.reason; }),
                     res.unmapped.end());
  // Filter names say "line": for nftables they are items of the array.
  for (auto& f : pol["filters"]) {
    std::string n = f["name"];
    if (auto p = n.find(" line "); p != std::string::npos) f["name"] = n.replace(p, 6, " item ");
  }
  res.policy = std::move(pol);
  return res;
}
}  // namespace

}  // namespace lfp::import
