// SPDX-License-Identifier: MIT
#include "lfp/diagnostics/foreign.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <variant>

namespace lfp::diagnostics {

using nlohmann::json;
using netevents::AddrKey;

namespace {

// One packet of the hypothesis' traffic as a rule would see it; unknown values are empty / -1.
struct Packet {
  bool v6 = false;
  std::optional<AddrKey> saddr, daddr;
  int proto = -1, sport = -1, dport = -1;
};

enum Tri { NO, YES, MAYBE };
Tri tri_not(Tri t) { return t == MAYBE ? MAYBE : t == YES ? NO : YES; }

int proto_number(const std::string& s) {
  static const std::map<std::string, int> names = {{"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"ipv6-icmp", 58},
                                                   {"icmpv6", 58}, {"sctp", 132}, {"udplite", 136}};
  auto it = names.find(s);
  return it == names.end() ? -1 : it->second;
}

using Val = std::variant<int64_t, AddrKey>;

// Does the right-hand side of a match stand for a set holding v?
Tri contains(const json& right, const Val& v) {
  if (right.is_array()) {
    Tri r = NO;
    for (const auto& item : right) {
      Tri t = contains(item, v);
      if (t == YES) return YES;
      if (t == MAYBE) r = MAYBE;
    }
    return r;
  }
  if (right.is_object()) {
    if (right.contains("set")) return contains(right["set"], v);
    if (right.contains("prefix") && std::holds_alternative<AddrKey>(v)) {
      const json& p = right["prefix"];
      auto r = netevents::parse_address_range(p.value("addr", "") + "/" + std::to_string(p.value("len", 0)));
      if (!r) return MAYBE;
      const AddrKey& a = std::get<AddrKey>(v);
      return r->lo <= a && a <= r->hi ? YES : NO;
    }
    if (right.contains("range") && right["range"].is_array() && right["range"].size() == 2) {
      const json& lo = right["range"][0];
      const json& hi = right["range"][1];
      if (auto* n = std::get_if<int64_t>(&v); n && lo.is_number() && hi.is_number())
        return lo.get<int64_t>() <= *n && *n <= hi.get<int64_t>() ? YES : NO;
      if (auto* a = std::get_if<AddrKey>(&v); a && lo.is_string() && hi.is_string()) {
        auto l = netevents::parse_address(lo.get<std::string>()), h = netevents::parse_address(hi.get<std::string>());
        if (l && h) return *l <= *a && *a <= *h ? YES : NO;
      }
    }
    return MAYBE;
  }
  if (auto* n = std::get_if<int64_t>(&v)) {
    if (right.is_number()) return right.get<int64_t>() == *n ? YES : NO;
    if (right.is_string()) {
      const int p = proto_number(right.get<std::string>());
      return p < 0 ? MAYBE : (p == *n ? YES : NO);
    }
    return MAYBE;
  }
  if (right.is_string()) {
    auto a = netevents::parse_address(right.get<std::string>());
    return a ? (*a == std::get<AddrKey>(v) ? YES : NO) : MAYBE;
  }
  return MAYBE;
}

Tri eval_match(const json& m, const Packet& p) {
  const json& left = m.contains("left") ? m["left"] : json();
  const json& right = m.contains("right") ? m["right"] : json();
  const std::string op = m.value("op", "==");
  std::optional<Val> v;
  Tri unknown = MAYBE;
  if (left.contains("payload")) {
    const json& pl = left["payload"];
    const std::string proto = pl.value("protocol", ""), field = pl.value("field", "");
    if (proto == "ip" || proto == "ip6") {
      if ((proto == "ip6") != p.v6) return NO;  // the rule is about the other family
      if (field == "saddr" && p.saddr) v = *p.saddr;
      else if (field == "daddr" && p.daddr) v = *p.daddr;
      else if ((field == "protocol" || field == "nexthdr") && p.proto >= 0) v = int64_t(p.proto);
    } else if (proto == "tcp" || proto == "udp" || proto == "th") {
      if (proto != "th" && p.proto >= 0 && p.proto != proto_number(proto)) return NO;
      if (field == "sport" && p.sport >= 0) v = int64_t(p.sport);
      else if (field == "dport" && p.dport >= 0) v = int64_t(p.dport);
    } else if (proto == "icmp" || proto == "icmpv6") {
      if (p.proto >= 0 && p.proto != proto_number(proto)) return NO;
    }
  } else if (left.contains("meta")) {
    const std::string key = left["meta"].value("key", "");
    if (key == "l4proto" && p.proto >= 0) v = int64_t(p.proto);
    if (key == "nfproto") {
      if (right.is_string()) {
        const bool eq = right == (p.v6 ? "ipv6" : "ipv4");
        return (op == "!=") ? (eq ? NO : YES) : (eq ? YES : NO);
      }
    }
  } else if (left.contains("ct") && left["ct"].value("key", "") == "state") {
    // The first packet of the flow: ct state new.
    Tri t = NO;
    auto has_new = [&](const json& r) {
      if (r == "new") t = YES;
    };
    if (right.is_array()) for (const auto& r : right) has_new(r);
    else has_new(right);
    return op == "!=" ? tri_not(t) : t;
  }
  if (!v) return unknown;
  if (op == "==" || op == "in") return contains(right, *v);
  if (op == "!=") return tri_not(contains(right, *v));
  if (auto* n = std::get_if<int64_t>(&*v); n && right.is_number()) {
    const int64_t r = right.get<int64_t>();
    if (op == "<") return *n < r ? YES : NO;
    if (op == ">") return *n > r ? YES : NO;
    if (op == "<=") return *n <= r ? YES : NO;
    if (op == ">=") return *n >= r ? YES : NO;
  }
  return MAYBE;
}

struct Ruleset {
  std::map<std::string, std::vector<json>> rules;  // "family table chain" -> rules in order
  std::vector<json> base_chains;
};

std::string chain_id(const json& c, const std::string& name) {
  return c.value("family", "") + " " + c.value("table", "") + " " + name;
}

enum class Outcome { NONE, ACCEPT, DROP };

struct Walker {
  const Ruleset& rs;
  const Packet& pkt;
  const std::string& direction;
  json& findings;
  bool uncertain = false;  // a rule before this point might have accepted or dropped already

  void report(const char* certainty, const std::string& where, const json& rule, const std::string& what) {
    findings.push_back({{"kind", "nftables"}, {"certainty", certainty}, {"where", where},
                        {"rule", rule.value("handle", json())}, {"description", what + " (" + direction + ")"}});
  }

  Outcome chain(const std::string& family, const std::string& table, const std::string& name, int depth) {
    const std::string id = family + " " + table + " " + name;
    auto it = rs.rules.find(id);
    if (it == rs.rules.end() || depth > 16) return Outcome::NONE;
    for (const json& rule : it->second) {
      Tri t = YES;
      std::string verdict, target;
      for (const json& e : rule.value("expr", json::array())) {
        if (e.contains("match")) {
          Tri m = eval_match(e["match"], pkt);
          if (m == NO) t = NO;
          else if (m == MAYBE && t == YES) t = MAYBE;
        } else if (e.contains("drop") || e.contains("reject") || e.contains("accept") || e.contains("return")) {
          verdict = e.begin().key();
        } else if (e.contains("jump") || e.contains("goto")) {
          verdict = e.begin().key();
          target = e.begin().value().value("target", "");
        } else if (e.contains("xt") || e.contains("limit") || e.contains("queue")) {
          if (t == YES) t = MAYBE;  // not understood here
          if (e.contains("queue")) verdict = "queue";
        }
        if (t == NO) break;
      }
      if (t == NO || verdict.empty()) continue;
      const std::string where = "table " + family + " " + table + ", chain " + name;
      if (verdict == "drop" || verdict == "reject") {
        const bool sure = t == YES && !uncertain;
        report(sure ? "drops" : "may_drop", where, rule,
               "rule " + rule.value("handle", json()).dump() + " " + verdict + "s it");
        if (t == YES) return Outcome::DROP;
      } else if (verdict == "accept") {
        if (t == YES) return Outcome::ACCEPT;
        uncertain = true;
      } else if (verdict == "return") {
        if (t == YES) return Outcome::NONE;
        uncertain = true;
      } else if (verdict == "jump" || verdict == "goto") {
        Outcome o = chain(family, table, target, depth + 1);
        if (o != Outcome::NONE && t == YES) return o;
        if (verdict == "goto" && t == YES) return Outcome::NONE;
        if (t == MAYBE) uncertain = true;
      } else {
        uncertain = true;
      }
    }
    return Outcome::NONE;
  }
};

std::string read_nft_ruleset() {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) return "";
  nft_ctx_output_set_flags(ctx.get(), NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), "list ruleset") != 0) return "";
  const char* out = nft_ctx_get_output_buffer(ctx.get());
  return out ? out : "";
}

// This host's addresses (the caller's namespace).
std::vector<AddrKey> local_addresses() {
  std::vector<AddrKey> out;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return out;
  for (ifaddrs* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    AddrKey k{};
    if (i->ifa_addr->sa_family == AF_INET) {
      k[10] = k[11] = 0xff;
      std::memcpy(&k[12], &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      std::memcpy(k.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    out.push_back(k);
  }
  freeifaddrs(ifs);
  return out;
}

// Listening TCP ports of this namespace, from /proc/net/tcp{,6} (state 0A).
bool tcp_listener(int port) {
  for (const char* f : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(f);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream ss(line);
      std::string sl, local, remote, state;
      ss >> sl >> local >> remote >> state;
      const size_t colon = local.rfind(':');
      if (state == "0A" && colon != std::string::npos && std::stoi(local.substr(colon + 1), nullptr, 16) == port)
        return true;
    }
  }
  return false;
}

void walk_ruleset(const json& ruleset, const Hypothesis& h, json& findings);

}  // namespace

json nft_causes(const json& ruleset, const Hypothesis& h) {
  json findings = json::array();
  if (!ruleset.contains("nftables") || !ruleset["nftables"].is_array()) return findings;
  try {
    walk_ruleset(ruleset, h, findings);
  } catch (const json::exception& e) {
    findings.push_back({{"kind", "nftables"}, {"certainty", "unknown"},
                        {"description", std::string("the ruleset could not be read: ") + e.what()}});
  }
  return findings;
}

namespace {
void walk_ruleset(const json& ruleset, const Hypothesis& h, json& findings) {
  Ruleset rs;
  for (const json& item : ruleset["nftables"]) {
    if (item.contains("rule")) {
      const json& r = item["rule"];
      rs.rules[chain_id(r, r.value("chain", ""))].push_back(r);
    } else if (item.contains("chain") && item["chain"].contains("hook")) {
      rs.base_chains.push_back(item["chain"]);
    }
  }
  std::optional<AddrKey> local, remote;
  if (!h.local.address.empty()) local = netevents::parse_address(h.local.address);
  if (!h.remote.address.empty()) remote = netevents::parse_address(h.remote.address);
  const AddrKey* any = local ? &*local : remote ? &*remote : nullptr;
  const bool v4mapped = any && (*any)[10] == 0xff && (*any)[11] == 0xff && std::all_of(any->begin(), any->begin() + 10, [](uint8_t b) { return b == 0; });
  // Both directions may start the flow: out (local -> remote) at output, in (remote -> local) at input.
  for (bool v6 : {false, true}) {
    if (any && v6 == v4mapped) continue;
    for (const bool out : {true, false}) {
      Packet p;
      p.v6 = v6;
      p.proto = h.protocol.value_or(-1);
      p.saddr = out ? local : remote;
      p.daddr = out ? remote : local;
      p.sport = out ? h.local.port : h.remote.port;
      p.dport = out ? h.remote.port : h.local.port;
      const std::string direction = out ? "outbound, at hook output" : "inbound, at hook input";
      for (const json& c : rs.base_chains) {
        const std::string family = c.value("family", ""), hook = c.value("hook", "");
        if (hook != (out ? "output" : "input") && hook != (out ? "postrouting" : "prerouting")) continue;
        if (family != "inet" && family != (v6 ? "ip6" : "ip")) continue;
        if (c.value("type", "filter") == "nat") continue;
        Walker w{rs, p, direction, findings};
        Outcome o = w.chain(family, c.value("table", ""), c.value("name", ""), 0);
        if (o == Outcome::NONE && c.value("policy", "accept") == "drop")
          findings.push_back({{"kind", "nftables"},
                              {"certainty", w.uncertain ? "may_drop" : "drops"},
                              {"where", "table " + family + " " + c.value("table", "") + ", chain " + c.value("name", "")},
                              {"rule", "policy"},
                              {"description", "the chain's policy drops what no rule accepted (" + direction + ")"}});
      }
    }
  }
}
}  // namespace

json foreign_causes(const Hypothesis& h) {
  json findings = json::array();
  const std::string text = read_nft_ruleset();
  if (!text.empty()) {
    json rs = json::parse(text, nullptr, false);
    if (!rs.is_discarded()) findings = nft_causes(rs, h);
  }
  // An endpoint of this host with a port, and TCP (or any protocol): is anything listening?
  if (!h.protocol || *h.protocol == 6) {
    const auto mine = local_addresses();
    for (const Endpoint* e : {&h.remote, &h.local}) {
      if (e->address.empty() || e->port <= 0) continue;
      auto a = netevents::parse_address(e->address);
      if (!a || std::find(mine.begin(), mine.end(), *a) == mine.end()) continue;
      if (!tcp_listener(e->port))
        findings.push_back({{"kind", "no_listener"},
                            {"certainty", "refused"},
                            {"where", e->address + ":" + std::to_string(e->port)},
                            {"description", "no TCP socket listens on port " + std::to_string(e->port) +
                                                " of this host: a connection is refused whatever the filters say"}});
    }
  }
  return findings;
}

}  // namespace lfp::diagnostics
