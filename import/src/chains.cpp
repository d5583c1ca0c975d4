// SPDX-License-Identifier: MIT
#include "chains.hpp"

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/guid.hpp"
#include "log.hpp"              // (callouts/builtin: the callouts' keys)
#include "ratelimit.hpp"
#include "transport_match.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <optional>
#include <set>
#include <span>

namespace lfp::import::detail {

namespace {

// A set of values of one field: sorted, disjoint, non-adjacent closed intervals. Addresses (v6 too),
// ports, protocols and the small enumerations below all fit in 128 bits.
using U = unsigned __int128;
struct Interval {
  U low, high;
  friend bool operator==(const Interval&, const Interval&) = default;
};
using Set = std::vector<Interval>;

Set normalized(Set s) {
  std::sort(s.begin(), s.end(), [](const Interval& a, const Interval& b) { return a.low < b.low; });
  Set out;
  for (const Interval& i : s) {
    if (!out.empty() && (i.low <= out.back().high || i.low - 1 == out.back().high)) out.back().high = std::max(out.back().high, i.high);
    else out.push_back(i);
  }
  return out;
}

Set intersect(const Set& a, const Set& b) {
  Set out;
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    const U lo = std::max(a[i].low, b[j].low), hi = std::min(a[i].high, b[j].high);
    if (lo <= hi) out.push_back({lo, hi});
    (a[i].high < b[j].high ? i : j)++;
  }
  return out;
}

// `within` without `s`.
Set subtract(const Set& within, const Set& s) {
  Set complement;
  U next = 0;
  bool open = true;  // values from `next` up are not in s
  for (const Interval& i : s) {
    if (i.low > next) complement.push_back({next, i.low - 1});
    if (i.high == ~U(0)) {
      open = false;
      break;
    }
    next = i.high + 1;
  }
  if (open) complement.push_back({next, ~U(0)});
  return intersect(within, complement);
}

// The small enumerations, by index.
constexpr std::array<const char*, 5> kCtStates = {"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"};
constexpr std::array<const char*, 12> kAddrTypes = {"UNSPEC",    "UNICAST",   "LOCAL",       "BROADCAST",
                                                    "ANYCAST",   "MULTICAST", "BLACKHOLE",   "UNREACHABLE",
                                                    "PROHIBIT",  "THROW",     "NAT",         "XRESOLVE"};
constexpr U kNew = 0, kUnicast = 1, kLocal = 2, kBroadcast = 3, kMulticast = 5;

// ICMP types by nftables' names (iptables-save writes numbers).
constexpr std::pair<const char*, int> kIcmpTypes[] = {
    {"echo-reply", 0},  {"destination-unreachable", 3}, {"source-quench", 4}, {"redirect", 5}, {"echo-request", 8},
    {"router-advertisement", 9}, {"router-solicitation", 10}, {"time-exceeded", 11}, {"parameter-problem", 12},
    {"timestamp-request", 13}, {"timestamp-reply", 14}, {"info-request", 15}, {"info-reply", 16},
    {"address-mask-request", 17}, {"address-mask-reply", 18}};
constexpr std::pair<const char*, int> kIcmp6Types[] = {
    {"destination-unreachable", 1}, {"packet-too-big", 2}, {"time-exceeded", 3}, {"parameter-problem", 4},
    {"echo-request", 128}, {"echo-reply", 129}, {"mld-listener-query", 130}, {"mld-listener-report", 131},
    {"mld-listener-done", 132}, {"mld-listener-reduction", 132}, {"nd-router-solicit", 133}, {"nd-router-advert", 134},
    {"nd-neighbor-solicit", 135}, {"nd-neighbor-advert", 136}, {"nd-redirect", 137}, {"router-renumbering", 138},
    {"ind-neighbor-solicit", 141}, {"ind-neighbor-advert", 142}, {"mld2-listener-report", 143}};

// The ICMP messages that start a flow in conntrack (NEW): echo, timestamp, information and address
// mask requests; ICMPv6 echo and node information queries. Replies and errors belong to a flow.
Set icmp_requests(int family) {
  return family == 4 ? Set{{8, 8}, {13, 13}, {15, 15}, {17, 17}} : Set{{128, 128}, {139, 139}};
}

template <size_t N>
int index_of(const std::array<const char*, N>& names, std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::toupper);
  for (size_t i = 0; i < N; ++i)
    if (s == names[i]) return static_cast<int>(i);
  return -1;
}

bool is_address(const std::string& role) { return role == "src_addr" || role == "dst_addr"; }
bool is_opaque(const std::string& role) { return role == "ALE_USER_ID"; }
bool is_interface(const std::string& role) { return role == "in_interface" || role == "out_interface"; }
// What IPFORWARD has no field for: the transport-match callout matches it (Walker::take_transport).
bool is_transport(const std::string& role) { return role == "IP_PROTOCOL" || role == "src_port" || role == "dst_port"; }

// One term of a conjunction: a field's set of values, or an opaque field's OR'ed values.
struct Term {
  std::string role;
  Set set;
  std::vector<json> values;  // opaque roles only
};
using Conj = std::vector<Term>;  // in the order the rules name the roles; a role absent allows any value

Term* term(Conj& c, const std::string& role) {
  for (Term& t : c)
    if (t.role == role) return &t;
  return nullptr;
}

// A flattened rule of a base chain: what it matches (with the path that leads to it) and its action.
struct Flat {
  const Rule* rule;
  std::vector<int> via;  // the lines of the jumps that lead to it
  Conj conj;
  std::string action;  // PERMIT or BLOCK; CALLOUT_TERMINATING: a rate limit; LOG: a log
  std::vector<std::string> problems;
  size_t after = 0;  // a rate limit or a log: the flattened rules before it
  json limit;        // a rate limit or a log: the callout's configuration
};

// Rules a chain may expand to through its jumps (a chain jumped to from many places is flattened
// once per place, and a conditional RETURN splits the rules after it: a crafted rule set could
// expand exponentially), and the cases the RETURNs passed on one path may split into.
constexpr size_t kMaxExpanded = 20000;
constexpr size_t kMaxCases = 256;

// conj_of's answer for a rule whose protocol only the other walk (ALE or ICMP) sees.
const std::string kOtherWalk = "(the other walk's)";

// What lfpd needs for the rate-limit callout's filters (the parity test starts lfpd from it).
constexpr const char* kRateLimitNeeds =
    "the packet layers' user-space path and the built-in callouts (lfpd --packet-queue N --callout liblfp_inspect_callouts.so): "
    "rate limits (-m recent, -m limit, -m hashlimit, nft's limit) are decided on each new TCP connection at INBOUND_TRANSPORT "
    "by the rate-limit callout";

// What lfpd needs for the log callout's filters.
constexpr const char* kLogNeeds =
    "the packet layers' user-space path and the built-in callouts (lfpd --packet-queue N --callout liblfp_inspect_callouts.so): "
    "LOG rules become LFP net events (CLASSIFY_LOG, with the rule's prefix) written by the log callout at INBOUND_TRANSPORT, "
    "OUTBOUND_TRANSPORT or IPFORWARD";

// What lfpd needs for the transport-match callout's filters.
constexpr const char* kTransportMatchNeeds =
    "the packet layers' user-space path and the built-in callouts (lfpd --packet-queue N --callout liblfp_inspect_callouts.so): "
    "FORWARD rules' protocols and ports are matched at IPFORWARD by the transport-match callout";

// What lfpd needs for the policy, each once.
void add_need(ImportResult& res, const std::string& need) {
  if (std::find(res.needs.begin(), res.needs.end(), need) == res.needs.end()) res.needs.push_back(need);
}

// The policy's callout `key` at `layer`, added once.
void add_callout(json& pol, const std::string& key, const std::string& name, const std::string& layer) {
  for (const char* array : {"callouts", "provider_contexts"})
    if (!pol.contains(array)) pol[array] = json::array();
  for (const json& c : pol["callouts"])
    if (c["key"] == key) return;
  pol["callouts"].push_back({{"key", key}, {"name", name}, {"layer", layer}, {"flags", json::array({"USES_PROVIDER_CONTEXT"})}});
}

// The key of the policy's provider context with `data`, added (named `name`) if there is none yet.
std::string context_key(json& pol, const json& data, const std::string& name) {
  const std::string text = json_text(data);
  for (const json& c : pol["provider_contexts"])
    if (c["data"] == text) return c["key"];
  const std::string key = Guid::generate().str();
  pol["provider_contexts"].push_back({{"key", key}, {"name", name}, {"data", text}});
  return key;
}

// The problems of a rule, each once (`-i eth0 -o eth0` has one).
std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    if (std::find(v.begin(), v.begin() + static_cast<long>(i), v[i]) == v.begin() + static_cast<long>(i)) s += (s.empty() ? "" : "; ") + v[i];
  return s;
}

RuleReport& account(Ledger& ledger, const Rule& r) {
  RuleReport& rep = ledger[r.line];
  rep.line = r.line;
  rep.text = r.text;
  return rep;
}

void note(Ledger& ledger, const Rule& r, const std::string& what) {
  RuleReport& rep = account(ledger, r);
  if (std::find(rep.notes.begin(), rep.notes.end(), what) == rep.notes.end()) rep.notes.push_back(what);
}

class Walker {
 public:
  // `icmp`: the walk for ICMP requests at the transport layers; otherwise the ALE layers' walk (for
  // every other protocol: the kernel answers ICMP itself, so no ALE layer sees it).
  Walker(const std::map<std::string, Chain>& chains, Hook hook, int family, bool icmp, Ledger& ledger, std::vector<Unmapped>& unmapped)
      : chains_(chains), hook_(hook), family_(family), icmp_(icmp), ledger_(ledger), unmapped_(unmapped) {
    std::set<std::string> names;
    for (const auto& [name, chain] : chains)
      for (const Rule& r : chain.rules)
        for (const Cond& c : r.conds)
          if (is_interface(c.role) && c.value.is_string()) names.insert(c.value.get<std::string>());
    interface_names_.assign(names.begin(), names.end());
  }

  std::vector<Flat> flats;
  // The callouts' filters that are not flats, in walk order: rate limits (ufw's xt_recent pair, packet
  // rates), the rate-limit callout's at INBOUND_TRANSPORT; logs (LOG), the log callout's, among the
  // flats where the walk's layer is a packet layer (the ICMP walk's, IPFORWARD), at the transport
  // layer before the ALE layers otherwise.
  std::vector<Flat> callouts;

  bool logs_in_place() const { return icmp_ || hook_ == Hook::FORWARD; }
  bool inbound() const { return hook_ == Hook::INPUT; }
  // The protocols this walk decides (the ALE walk: all but ICMP), as a conjunction.
  Conj walked_protocols() const { return {{"IP_PROTOCOL", full("IP_PROTOCOL"), {}}}; }

  void walk(const std::string& name, const std::vector<Conj>& entry, const std::vector<int>& via) {
    std::vector<Conj> ctx = entry;  // what reaches the next rule of this chain, as cases
    for (const Rule& r : chains_.at(name).rules) {
      if (budget_ == 0) return leave_out(r, "the jumps expand to more than " + std::to_string(kMaxExpanded) + " rules; the rest is not imported");
      if (ctx.empty()) {
        note(ledger_, r, "never reached: the rules before it decide or return every packet that gets here");
        continue;
      }
      std::vector<std::string> problems = r.problems;
      Conj own;
      if (const std::string never = conj_of(r, own, problems); never == kOtherWalk) {
        continue;  // its protocol is the other walk's
      } else if (!never.empty()) {
        if (r.target == "LOG" || r.target.empty() || r.target == "RETURN" || chains_.count(r.target)) note(ledger_, r, never);
        else leave_out(r, never);
        continue;
      }
      std::vector<Conj> here;  // what this rule matches, with the path that leads to it
      for (const Conj& c : ctx)
        if (auto both = conjoin(c, own, problems)) here.push_back(std::move(*both));
      if (here.empty()) {
        if (icmp_ && term(own, "icmp_type"))
          note(ledger_, r, "ICMP replies and errors belong to a flow (ESTABLISHED, RELATED) and pass: only requests are filtered");
        else
          note(ledger_, r, "never matches here: the conditions that lead to it exclude it");
        continue;
      }
      if (r.recent) {
        limit(name, r, here, via, problems);
        continue;
      }
      if (r.log) log(r, here, via, problems);  // (before its verdict, if it has one, as nftables logs)
      if (r.rate && !(r.target == "LOG" || r.target.empty())) {  // (a LOG's rate is its log's)
        rate_limit(r, here, via, problems);
        continue;
      }
      const bool user_chain = chains_.count(r.target) && chains_.at(r.target).policy == "-";
      if (r.target == "ACCEPT" || r.target == "DROP" || r.target == "REJECT") {
        for (Conj& c : here) {
          if (budget_ == 0) break;
          --budget_;
          flats.push_back({&r, via, std::move(c), r.target == "ACCEPT" ? "PERMIT" : "BLOCK", problems});
        }
      } else if (user_chain || r.target == "RETURN") {
        if (user_chain) {
          const std::string jump = std::string(r.go ? "goto " : "jump to ") + r.target;
          if (!problems.empty()) {
            leave_out(r, jump + " is not imported (" + joined(problems) + "); nor are the rules it leads to on this path");
            continue;
          }
          if (via.size() >= 32) return leave_out(r, "jumps nest too deep (a loop?)");
          std::vector<int> deeper = via;
          deeper.push_back(r.line);
          walk(r.target, here, deeper);
          note(ledger_, r, jump + ": its rules' filters carry this rule's conditions");
          if (!r.go) continue;
        }
        // RETURN, or a goto's return: the rest of this chain sees only what this rule does not match.
        const std::string what = r.go ? "the goto" : "the RETURN";
        if (!problems.empty()) {
          leave_out(r, what + " is not imported (" + joined(problems) + "): the later rules of " + name + " may decide what it returned");
          continue;
        }
        if (std::any_of(own.begin(), own.end(), [](const Term& t) { return is_opaque(t.role); })) {
          leave_out(r, what + " on a user or group has no negation in LFP: the later rules of " + name + " may decide what it returned");
          continue;
        }
        std::vector<Conj> rest = without(ctx, own);
        if (rest.size() > kMaxCases) {
          leave_out(r, "the negation of " + what + " splits into more than " + std::to_string(kMaxCases) +
                           " cases; the rest of " + name + " is not imported on this path");
          return;
        }
        ctx = std::move(rest);
        if (!r.go) note(ledger_, r, own.empty() ? "RETURN: the rest of " + name + " is not reached"
                                                : "RETURN: the later rules of " + name + " carry its negation");
      } else if (r.target == "LOG") {
        // (log() took it: it decides nothing)
      } else if (r.target.empty()) {
        std::string why = "no target: the rule only counts";
        if (!problems.empty()) why += "; " + joined(problems);
        leave_out(r, why);
      } else {
        leave_out(r, "target " + r.target + " has no LFP form");
      }
    }
  }

  // What the rules after `limit` (an ACCEPT with a rate) and the chain's policy do with what it
  // matches, as cases: the flattened rules are walked in order from the limit, each taking what it
  // matches of the rest. Nothing when that cannot be told (too many cases, or a user or group the
  // sets cannot subtract).
  struct After {
    std::vector<Conj> blocked, permitted;
  };
  std::optional<After> after_limit(const Flat& limit, bool policy_blocks) const {
    std::vector<Conj> rest = {limit.conj};
    After a;
    for (size_t i = limit.after; i < flats.size() && !rest.empty(); ++i) {
      const Flat& f = flats[i];
      if (f.rule == limit.rule) continue;  // its own ACCEPT's cases
      if (std::any_of(f.conj.begin(), f.conj.end(), [](const Term& t) { return is_opaque(t.role); })) return std::nullopt;
      for (const Conj& c : rest)
        if (auto both = conjoin_with(c, f.conj)) (f.action == "BLOCK" ? a.blocked : a.permitted).push_back(std::move(*both));
      rest = without(rest, f.conj);
      if (rest.size() + a.blocked.size() + a.permitted.size() > kMaxCases) return std::nullopt;
    }
    (policy_blocks ? a.blocked : a.permitted).insert((policy_blocks ? a.blocked : a.permitted).end(), rest.begin(), rest.end());
    return a;
  }

  // a AND b, or nothing when no packet matches both.
  std::optional<Conj> conjoin_with(const Conj& a, const Conj& b) const {
    std::vector<std::string> ignored;
    return conjoin(a, b, ignored);
  }

  // At IPFORWARD, which has no protocol or port fields: the conjunction's protocol and ports, taken
  // out of it, as the transport-match callout's configuration (null when it has none; elsewhere null).
  json take_transport(Conj& c) const {
    if (hook_ != Hook::FORWARD) return nullptr;
    json match = nullptr;
    for (const Term& t : c)
      if (is_transport(t.role)) {
        json& ranges = match[t.role == "IP_PROTOCOL" ? "protocols" : t.role == "src_port" ? "source_ports" : "destination_ports"];
        ranges = json::array();
        for (const Interval& i : t.set) ranges.push_back({static_cast<uint64_t>(i.low), static_cast<uint64_t>(i.high)});
      }
    std::erase_if(c, [](const Term& t) { return is_transport(t.role); });
    return match;
  }

  // The policy conditions of one conjunction (its problems appended to `problems`); nothing when no
  // packet at this layer matches them.
  std::optional<json> conditions(Conj c, std::vector<std::string>& problems) const {
    // The address type: only multicast or not is an address range at the ALE layers.
    if (const Term* t = term(c, "dst_type")) {
      const Set types = t->set;
      std::erase_if(c, [](const Term& x) { return x.role == "dst_type"; });
      const Set multicast = family_ == 4 ? Set{{U(0xE0000000u), U(0xEFFFFFFFu)}} : Set{{U(0xFF) << 120, ~U(0)}};
      Set addrs = full("dst_addr");
      if (types == Set{{kMulticast, kMulticast}}) addrs = multicast;
      else if (types == subtract(full("dst_type"), {{kMulticast, kMulticast}})) addrs = subtract(addrs, multicast);
      else problems.push_back("addrtype " + type_names(types) + ": the ALE layers do not see address types " +
                              "(IP_DESTINATION_ADDRESS_TYPE is a packet-layer field); only multicast or not is an address range");
      if (Term* d = term(c, "dst_addr")) d->set = intersect(d->set, addrs);
      else if (addrs != full("dst_addr")) c.push_back({"dst_addr", addrs, {}});
      if (const Term* d = term(c, "dst_addr"); d && d->set.empty()) return std::nullopt;
    }
    const bool in = hook_ == Hook::INPUT, out = hook_ == Hook::OUTPUT;
    json conds = json::array();
    for (const Term& t : c) {
      std::string field = t.role;
      if (t.role == "src_addr") field = in ? "IP_REMOTE_ADDRESS" : out ? "IP_LOCAL_ADDRESS" : "IP_SOURCE_ADDRESS";
      else if (t.role == "dst_addr") field = in ? "IP_LOCAL_ADDRESS" : out ? "IP_REMOTE_ADDRESS" : "IP_DESTINATION_ADDRESS";
      else if (t.role == "src_port") field = in ? "IP_REMOTE_PORT" : "IP_LOCAL_PORT";
      else if (t.role == "dst_port") field = in ? "IP_LOCAL_PORT" : "IP_REMOTE_PORT";
      else if (t.role == "icmp_type") field = "IP_LOCAL_PORT";  // WFP's convention at the transport layers
      else if (t.role == "icmp_code") field = "IP_REMOTE_PORT";
      if (t.role == "ct_state" && hook_ == Hook::FORWARD) {
        problems.push_back("the connection state is not a field of IPFORWARD, which decides every packet");
        continue;
      }
      if (t.role == "ct_state") continue;  // NEW: the only state the walk sees
      if (icmp_ && is_opaque(t.role)) {
        problems.push_back(t.role + " is not a field of the transport layers, where ICMP is decided");
        continue;
      }
      if (hook_ == Hook::FORWARD && (t.role.starts_with("icmp") || is_opaque(t.role))) {  // (ports: take_transport's)
        problems.push_back(t.role + " is not a field of IPFORWARD");
        continue;
      }
      if (t.role.starts_with("icmp") && !icmp_) {
        problems.push_back("ICMP types are not fields of the ALE layers");
        continue;
      }
      if (is_opaque(t.role)) {
        if (in) problems.push_back("-m owner applies to locally generated traffic only");
        else
          for (const json& v : t.values) conds.push_back({{"field", field}, {"match", "EQUAL"}, {"value", v}});
        continue;
      }
      if (is_interface(t.role)) {
        if (hook_ != Hook::FORWARD) {
          problems.push_back("an interface by name is matched at IPFORWARD only (the ALE layers here have no field for it)");
          continue;
        }
        interface_conditions(t.role == "in_interface" ? "SOURCE_INTERFACE_INDEX" : "DESTINATION_INTERFACE_INDEX", t.set,
                             conds, problems);
        continue;
      }
      if (t.role == "loopback") {
        conds.push_back({{"field", "FLAGS"}, {"match", t.set[0].low ? "FLAGS_ALL_SET" : "FLAGS_NONE_SET"}, {"value", "IS_LOOPBACK"}});
        continue;
      }
      for (const Interval& i : t.set) {
        if (is_address(t.role)) {
          const int len = prefix_len(i);
          if (i.low == i.high) conds.push_back({{"field", field}, {"match", "EQUAL"}, {"value", address(i.low)}});
          else if (len >= 0) conds.push_back({{"field", field}, {"match", "EQUAL"}, {"value", address(i.low) + "/" + std::to_string(len)}});
          else conds.push_back({{"field", field}, {"match", "RANGE"}, {"value", {{"low", address(i.low)}, {"high", address(i.high)}}}});
        } else if (i.low == i.high) {
          conds.push_back({{"field", field}, {"match", "EQUAL"}, {"value", number(t.role, i.low)}});
        } else {
          conds.push_back({{"field", field}, {"match", "RANGE"}, {"value", {{"low", number(t.role, i.low)}, {"high", number(t.role, i.high)}}}});
        }
      }
    }
    return conds;
  }

 private:
  const std::map<std::string, Chain>& chains_;
  Hook hook_;
  int family_;
  bool icmp_;
  Ledger& ledger_;
  std::vector<Unmapped>& unmapped_;
  // Interfaces by name, as numbers for the set arithmetic: the names the rules use are 1..N (in
  // order), and 0 and N+1.. stand for every other interface (a set holds all of those or none).
  std::vector<std::string> interface_names_;

  // An interface set as conditions, by name (lfpd resolves names where it runs): the names it holds
  // (EQUAL), or, when it holds every other interface, the one it leaves out (NOT_EQUAL).
  void interface_conditions(const std::string& field, const Set& set, json& conds, std::vector<std::string>& problems) const {
    const auto holds = [&](U x) { return std::any_of(set.begin(), set.end(), [&](const Interval& i) { return i.low <= x && x <= i.high; }); };
    std::vector<std::string> held, left_out;
    for (size_t i = 0; i < interface_names_.size(); ++i) (holds(i + 1) ? held : left_out).push_back(interface_names_[i]);
    if (!holds(0)) {
      for (const auto& name : held) conds.push_back({{"field", field}, {"match", "EQUAL"}, {"value", {{"name", name}}}});
    } else if (left_out.size() == 1) {
      conds.push_back({{"field", field}, {"match", "NOT_EQUAL"}, {"value", {{"name", left_out[0]}}}});
    } else if (left_out.size() > 1) {
      std::string names;
      for (const auto& name : left_out) names += (names.empty() ? "" : ", ") + name;
      problems.push_back("every interface but " + names + ": a filter's conditions on one field are OR'ed, so LFP has " +
                         "no one-filter form for none of several interfaces");
    }
  }
  size_t budget_ = kMaxExpanded;

  void leave_out(const Rule& r, const std::string& why) {
    note(ledger_, r, why);
    unmapped_.push_back({r.line, r.text, why});
  }

  // An xt_recent rule. ufw's `limit` is a pair, `-m recent --set` and then, with the same matches,
  // `-m recent --update --seconds S --hitcount N -j CHAIN` where CHAIN rejects: a new connection
  // over N in S seconds from one source is rejected, the others go on. The pair becomes a filter of
  // the rate-limit callout at INBOUND_TRANSPORT (which sees the connection's SYN before the ALE
  // layers do), and for the walk the --update rule matches nothing: what it rejects never gets here.
  void limit(const std::string& chain, const Rule& r, std::vector<Conj>& here, const std::vector<int>& via,
             const std::vector<std::string>& problems) {
    const auto& rules = chains_.at(chain).rules;
    const size_t k = static_cast<size_t>(&r - rules.data());
    const bool set = r.recent->mode == "set";
    const Rule* set_rule = set ? &r : k > 0 ? &rules[k - 1] : nullptr;
    const Rule* update_rule = set ? (k + 1 < rules.size() ? &rules[k + 1] : nullptr) : &r;
    std::string why = !problems.empty() ? joined(problems) : pair_problem(set_rule, update_rule);
    if (!why.empty()) {
      if (set) why = "-m recent --set records connections for a later -m recent rule, and its pair has no LFP form: " + why;
      return leave_out(r, why);
    }
    const std::string callout = "the rate-limit callout (lfp_inspect_callouts) at INBOUND_TRANSPORT";
    if (set) return note(ledger_, r, "recorded by " + callout + ", with line " + std::to_string(update_rule->line) + " (--set, then --update)");
    json config = {{"seconds", r.recent->seconds}, {"hitcount", std::max(1u, r.recent->hitcount)}, {"name", r.recent->name}};
    if (r.recent->prefix >= 0) config["prefix"] = r.recent->prefix;
    for (Conj& c : here) callouts.push_back({&r, via, std::move(c), "CALLOUT_TERMINATING", {}, flats.size(), config});
    note(ledger_, r, "rate limit: a new TCP connection (a SYN) over " + std::to_string(std::max(1u, r.recent->hitcount)) + " in " +
                         std::to_string(r.recent->seconds) + " s from one source is blocked by " + callout +
                         "; the others go on to the next rules (lfp import --verify runs the callout too, on the capture's clock)");
    if (const auto c = chains_.find(r.target); c != chains_.end())
      for (const Rule& x : c->second.rules)
        note(ledger_, x, x.target == "LOG" ? "LOG decides nothing: the rate-limit filter's drops are LFP's net events"
                                           : "the rate-limit filter of line " + std::to_string(r.line) + " blocks in its place");
  }

  // Why a --set rule and the --update rule after it are not ufw's pair, "" if they are.
  std::string pair_problem(const Rule* set, const Rule* update) const {
    if (!set || !update || !set->recent || !update->recent || set->recent->mode != "set" || update->recent->mode != "update")
      return "only the pair -m recent --set, then -m recent --update with the same matches (ufw's limit), has one";
    for (const Rule* x : {set, update}) {
      if (!x->recent->problems.empty()) return joined(x->recent->problems);
      if (!x->problems.empty()) return joined(x->problems);
    }
    if (!set->target.empty()) return "the --set rule has a target (-j " + set->target + ")";
    if (set->conds != update->conds || set->recent->name != update->recent->name || set->recent->prefix != update->recent->prefix)
      return "the --set and --update rules differ in their matches, --name or --mask";
    if (const std::string why = counted_problem(*update); !why.empty()) return why;
    if (!rejects(update->target)) return "its target (" + update->target + ") does not reject or drop what is over the limit";
    return "";
  }

  // Why the rate-limit callout cannot count the packets that reach rule `r` ("" if it can): it counts
  // new TCP connections (a SYN without ACK) at INBOUND_TRANSPORT, so the rule must match those alone.
  std::string counted_problem(const Rule& r) const {
    if (hook_ != Hook::INPUT) return "the rate-limit callout counts incoming connections (INPUT) only";
    const auto tcp = std::find_if(r.conds.begin(), r.conds.end(), [](const Cond& c) { return c.role == "IP_PROTOCOL"; });
    if (tcp == r.conds.end() || tcp->negated || !(tcp->value == "tcp" || tcp->value == 6) ||
        std::count_if(r.conds.begin(), r.conds.end(), [](const Cond& c) { return c.role == "IP_PROTOCOL"; }) != 1)
      return "the rate-limit callout counts TCP connections (their SYN) only: a UDP flow's first datagram, or ICMP's, is "
             "conntrack's to know";
    bool is_new = r.syn;
    for (const Cond& c : r.conds)
      if (c.role == "ct_state") {
        if (c.negated || !(c.value == "NEW" || c.value == "new"))  // (iptables' and nftables' spelling)
          return "the rule counts packets other than a connection's first (--ctstate other than NEW)";
        is_new = true;
      }
    if (!is_new)
      return "the rule counts every packet that reaches it, not a connection's first (no --ctstate NEW or --syn): the "
             "rate-limit callout counts SYNs";
    return "";
  }

  // A packet rate (-m limit, -m hashlimit, nft's limit) on a rule that decides: a filter of the
  // rate-limit callout at INBOUND_TRANSPORT, counting the new TCP connections that reach the rule.
  // With a target that blocks, the callout blocks the side of the rate that matches and the walk goes
  // on without the rule (what it blocks never gets past INBOUND_TRANSPORT). With ACCEPT, the walk
  // takes the rule as an ACCEPT and the callout blocks, of the other side, what the later rules would
  // (emit_limits: Walker::after_limit).
  void rate_limit(const Rule& r, std::vector<Conj>& here, const std::vector<int>& via, std::vector<std::string> problems) {
    const RateMatch& rm = *r.rate;
    problems.insert(problems.end(), rm.problems.begin(), rm.problems.end());
    const bool accept = r.target == "ACCEPT";
    if (problems.empty() && !accept && !rejects(r.target))
      problems.push_back("a rate on -j " + r.target + " has no LFP form (the rate-limit callout blocks or lets through; it does "
                         "not jump or return)");
    if (problems.empty()) {
      if (const std::string why = counted_problem(r); !why.empty()) problems.push_back(why);
    }
    if (!problems.empty()) return leave_out(r, joined(problems));
    json config = rm.config;
    config["blocks"] = rm.over != accept ? "over" : "under";
    const size_t at = flats.size();
    if (accept)
      for (const Conj& c : here) {
        if (budget_ == 0) break;
        --budget_;
        flats.push_back({&r, via, c, "PERMIT", {}});
      }
    for (Conj& c : here) callouts.push_back({&r, via, std::move(c), "CALLOUT_TERMINATING", {}, at, config});
    const std::string rate = json_text(config["rate"]) + "/" + config.value("per", "") + " (burst " + json_text(config["burst"]) +
                             (config.contains("key") ? ", per " + json_text(config["key"]) : std::string()) + ")";
    const std::string callout = "the rate-limit callout (lfp_inspect_callouts) at INBOUND_TRANSPORT";
    note(ledger_, r, accept ? "rate limit: new TCP connections (their SYN) " + std::string(rm.over ? "over " : "within ") + rate +
                                  " are accepted by this rule's filters; the others are blocked by " + callout +
                                  " where the later rules block them"
                            : "rate limit: new TCP connections (their SYN) " + std::string(rm.over ? "over " : "within ") + rate +
                                  " are blocked by " + callout + "; the others go on to the next rules");
  }

  // A LOG: a filter of the log callout at this place in the walk, with the conditions that lead here
  // (emit_walk or emit_transport place it); its rate (`-m limit`) limits the events, not the packets.
  void log(const Rule& r, const std::vector<Conj>& here, const std::vector<int>& via, std::vector<std::string> problems) {
    json config = {{"prefix", r.log->prefix}};
    if (!r.log->level.empty()) config["level"] = r.log->level;
    if (hook_ != Hook::FORWARD) config["first_packets"] = true;  // the walk's packets are a connection's first (NEW)
    if (r.rate) {
      if (!(r.target == "LOG" || r.target.empty()))
        problems.push_back("a rate on a rule that logs and decides has no LFP form (one callout limits, another logs)");
      problems.insert(problems.end(), r.rate->problems.begin(), r.rate->problems.end());
      if (r.rate->over) problems.push_back("a log over a rate (--hashlimit-above, limit rate over): the log callout logs within it");
      config["limit"] = r.rate->config;
    }
    if (!problems.empty()) return leave_out(r, "the LOG is not imported: " + joined(problems));
    for (const Conj& c : here) callouts.push_back({&r, via, c, "LOG", {}, flats.size(), config});
  }

  // A target that drops or rejects: DROP, REJECT, or a user chain of LOG rules then an unconditional DROP or REJECT.
  bool rejects(const std::string& target) const {
    if (target == "DROP" || target == "REJECT") return true;
    const auto c = chains_.find(target);
    if (c == chains_.end() || c->second.policy != "-") return false;
    for (const Rule& x : c->second.rules) {
      if (x.recent) return false;
      if (x.target == "LOG") continue;
      return (x.target == "DROP" || x.target == "REJECT") && x.conds.empty() && x.problems.empty();
    }
    return false;
  }

  // Every value a role can take where the filters are: the ALE layers (and the ICMP walk) decide a
  // flow's first packet (conntrack's NEW), and see the destination address types a packet at this
  // hook can have.
  Set full(const std::string& role) const {
    if (role == "IP_PROTOCOL" && hook_ != Hook::FORWARD) {
      const Set icmp = {{U(family_ == 4 ? 1 : 58), U(family_ == 4 ? 1 : 58)}};
      return icmp_ ? icmp : subtract(bounds(role), icmp);
    }
    if ((role == "src_port" || role == "dst_port") && icmp_) return {};  // ICMP has none
    if (role == "ct_state") return hook_ == Hook::FORWARD ? Set{{0, kCtStates.size() - 1}} : Set{{kNew, kNew}};  // IPFORWARD sees every packet
    if (role == "dst_type") {
      if (hook_ == Hook::INPUT) return {{kLocal, kBroadcast}, {kMulticast, kMulticast}};
      if (hook_ == Hook::OUTPUT) return {{kUnicast, kBroadcast}, {kMulticast, kMulticast}};
      return {{kUnicast, kUnicast}, {kMulticast, kMulticast}};
    }
    return bounds(role);
  }

  // The values a role has at all.
  Set bounds(const std::string& role) const {
    if (is_address(role)) return {{0, family_ == 4 ? U(0xFFFFFFFFu) : ~U(0)}};
    if (role == "src_port" || role == "dst_port") return {{0, 65535}};
    if (role == "IP_PROTOCOL" || role == "icmp_type" || role == "icmp_code") return {{0, 255}};
    if (role == "loopback") return {{0, 1}};
    if (is_interface(role)) return {{0, 0xFFFFFFFFu}};
    return {};
  }

  // One value as a set; empty (with a problem) when it has no form.
  Set value_set(const std::string& role, const json& v, std::vector<std::string>& problems) const {
    if (v.is_object() && v.contains("low") && v.contains("high")) {
      const Set lo = value_set(role, v["low"], problems), hi = value_set(role, v["high"], problems);
      if (lo.empty() || hi.empty()) return {};
      if (lo[0].low > hi[0].high) return problems.push_back("range " + json_text(v) + " is empty"), Set{};
      return {{lo[0].low, hi[0].high}};
    }
    if (is_address(role) && v.is_string()) {
      std::string a = v.get<std::string>();
      int len = family_ == 4 ? 32 : 128;
      if (const size_t slash = a.find('/'); slash != std::string::npos) {
        const std::string l = a.substr(slash + 1);
        len = l.empty() || l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos ? -1 : std::stoi(l);
        a = a.substr(0, slash);
      }
      unsigned char bytes[16];
      if (len < 0 || len > (family_ == 4 ? 32 : 128) || inet_pton(family_ == 4 ? AF_INET : AF_INET6, a.c_str(), bytes) != 1)
        return problems.push_back("'" + v.get<std::string>() + "' is not an IPv" + std::to_string(family_) + " address or prefix"), Set{};
      U x = 0;
      for (int i = 0; i < (family_ == 4 ? 4 : 16); ++i) x = x << 8 | bytes[i];
      const int bits = family_ == 4 ? 32 : 128;
      const U host = len == 0 ? (bits == 128 ? ~U(0) : U(0xFFFFFFFFu)) : (U(1) << (bits - len)) - 1;
      return {{x & ~host, x | host}};
    }
    if (role == "ct_state" || role == "dst_type") {
      const int i = v.is_string() ? role == "ct_state" ? index_of(kCtStates, v.get<std::string>()) : index_of(kAddrTypes, v.get<std::string>()) : -1;
      if (i < 0) return problems.push_back((role == "ct_state" ? "connection state " : "address type ") + json_text(v) + " is not known"), Set{};
      return {{U(i), U(i)}};
    }
    if (is_interface(role) && v.is_string()) {
      const auto it = std::lower_bound(interface_names_.begin(), interface_names_.end(), v.get<std::string>());
      if (it != interface_names_.end() && *it == v.get<std::string>()) {
        const U id = static_cast<U>(it - interface_names_.begin()) + 1;
        return {{id, id}};
      }
    }
    if (v.is_number_integer() && v.get<int64_t>() >= 0 && !bounds(role).empty() && U(v.get<uint64_t>()) <= bounds(role).back().high)
      return {{v.get<uint64_t>(), v.get<uint64_t>()}};
    if (role == "icmp_type" && v.is_string()) {
      for (auto [name, type] : family_ == 4 ? std::span<const std::pair<const char*, int>>(kIcmpTypes) : std::span<const std::pair<const char*, int>>(kIcmp6Types))
        if (v == name) return {{U(type), U(type)}};
      const std::string t = v.get<std::string>();
      if (!t.empty() && t.size() < 4 && t.find_first_not_of("0123456789") == std::string::npos && std::stoi(t) < 256) return {{U(std::stoi(t)), U(std::stoi(t))}};
    }
    if (role == "IP_PROTOCOL" && v.is_string()) {
      std::string p = v.get<std::string>();
      std::transform(p.begin(), p.end(), p.begin(), ::tolower);
      if (p == "icmpv6" || p == "ipv6-icmp") return {{58, 58}};
      if (const protoent* e = getprotobyname(p.c_str())) return {{U(e->p_proto), U(e->p_proto)}};
    }
    problems.push_back("value " + json_text(v) + " has no LFP form for " + role);
    return {};
  }

  // The rule's own conditions (`out`), or why it never matches here.
  std::string conj_of(const Rule& r, Conj& out, std::vector<std::string>& problems) const {
    for (const Cond& c : r.conds) {
      if (term(out, c.role)) continue;
      if (is_opaque(c.role)) {
        Term t{c.role, {}, {}};
        for (const Cond& x : r.conds)
          if (x.role == c.role) {
            if (x.negated) problems.push_back("a negated " + c.role + " has no LFP form");
            else t.values.push_back(x.value);
          }
        if (!t.values.empty()) out.push_back(std::move(t));
        continue;
      }
      Set any, none;
      bool positive = false, bad = false;
      for (const Cond& x : r.conds)
        if (x.role == c.role) {
          const Set s = value_set(c.role, x.value, problems);
          bad = bad || s.empty();
          (x.negated ? none : any).insert((x.negated ? none : any).end(), s.begin(), s.end());
          positive = positive || !x.negated;
        }
      if (bad) continue;  // the rule has a problem: it is not imported
      const Set all = full(c.role);
      const Set s = subtract(intersect(positive ? normalized(any) : all, all), normalized(none));
      if (s.empty()) {
        if ((c.role == "IP_PROTOCOL" && !intersect(normalized(any), bounds(c.role)).empty()) || all.empty()) return kOtherWalk;
        if (c.role == "ct_state")
          return r.target == "ACCEPT" ? "implied: LFP decides only a flow's first packet, so established and related flows pass"
                                      : "acts on established, related or invalid packets only, which LFP does not see (it decides a flow's first packet)";
        if (c.role == "dst_type") return "matches destination address types no packet has at this hook's ALE layer";
        return "never matches: its conditions on " + c.role + " exclude each other";
      }
      if (s != all) out.push_back({c.role, s, {}});
    }
    return "";
  }

  // a AND b, or nothing when no packet matches both.
  std::optional<Conj> conjoin(const Conj& a, const Conj& b, std::vector<std::string>& problems) const {
    Conj c = a;
    for (const Term& t : b) {
      Term* mine = term(c, t.role);
      if (!mine) {
        c.push_back(t);
      } else if (is_opaque(t.role)) {
        // Opaque values cannot be intersected: the rule may only repeat or narrow the jump's list.
        if (std::all_of(t.values.begin(), t.values.end(), [&](const json& v) { return std::find(mine->values.begin(), mine->values.end(), v) != mine->values.end(); }))
          mine->values = t.values;
        else
          problems.push_back("the jump and the rule both constrain " + t.role + " (LFP cannot intersect its values)");
      } else {
        mine->set = intersect(mine->set, t.set);
        if (mine->set.empty()) return std::nullopt;
      }
    }
    return c;
  }

  // The cases of `ctx` that `r` does not match: NOT(a AND b) = NOT a OR NOT b, one case per negated term.
  std::vector<Conj> without(const std::vector<Conj>& ctx, const Conj& r) const {
    std::vector<Conj> out;
    std::vector<std::string> ignored;
    for (const Conj& c : ctx) {
      if (!conjoin(c, r, ignored)) {  // disjoint: all of it goes on
        out.push_back(c);
        continue;
      }
      for (const Term& t : r) {
        Conj n = c;
        Term* mine = term(n, t.role);
        const Set rest = subtract(mine ? mine->set : full(t.role), t.set);
        if (rest.empty()) continue;
        if (mine) mine->set = rest;
        else n.push_back({t.role, rest, {}});
        out.push_back(std::move(n));
      }
    }
    return out;
  }

  int prefix_len(const Interval& i) const {
    const int bits = family_ == 4 ? 32 : 128;
    for (int len = 0; len <= bits; ++len) {
      const U host = len == 0 ? (bits == 128 ? ~U(0) : U(0xFFFFFFFFu)) : len == bits ? U(0) : (U(1) << (bits - len)) - 1;
      if ((i.low & host) == 0 && i.high == (i.low | host)) return len;
    }
    return -1;
  }

  std::string address(U x) const {
    unsigned char bytes[16];
    const int n = family_ == 4 ? 4 : 16;
    for (int i = n - 1; i >= 0; --i, x >>= 8) bytes[i] = static_cast<unsigned char>(x & 0xFF);
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family_ == 4 ? AF_INET : AF_INET6, bytes, buf, sizeof buf);
    return buf;
  }

  static json number(const std::string& role, U x) {
    if (role == "IP_PROTOCOL")
      for (auto [n, name] : {std::pair{6, "TCP"}, {17, "UDP"}, {1, "ICMP"}, {58, "ICMPV6"}})
        if (x == U(n)) return name;
    return static_cast<uint64_t>(x);
  }

  static std::string type_names(const Set& s) {
    std::string out;
    for (const Interval& i : s)
      for (U t = i.low; t <= i.high; ++t) out += (out.empty() ? "" : ",") + std::string(kAddrTypes[static_cast<size_t>(t)]);
    return out;
  }
};

}  // namespace

namespace {

// The log callout's key at `layer`.
std::string log_callout(const std::string& layer) {
  const bool v6 = layer.ends_with("_V6");
  if (layer.starts_with("INBOUND_TRANSPORT")) return v6 ? inspect::kLogCalloutInboundV6 : inspect::kLogCalloutInboundV4;
  if (layer.starts_with("OUTBOUND_TRANSPORT")) return v6 ? inspect::kLogCalloutOutboundV6 : inspect::kLogCalloutOutboundV4;
  return v6 ? inspect::kLogCalloutForwardV6 : inspect::kLogCalloutForwardV4;
}

// A log filter's members but its name, weight and place: for one case `c` of log `l` at `layer`; nothing
// when the case has no form there (said in the ledger and, if it could have matched, in res.unmapped).
std::optional<json> log_filter(const Walker& w, const Flat& l, Conj c, const std::string& layer, const Output& o, json& pol,
                               ImportResult& res, Ledger& ledger) {
  const Rule& r = *l.rule;
  std::vector<std::string> problems;
  if (!w.take_transport(c).is_null()) problems.push_back("its protocol and ports are not fields of IPFORWARD, and the log callout matches none");
  auto conds = w.conditions(std::move(c), problems);
  if (!conds) {
    note(ledger, r, "never matches here: its address types and addresses exclude each other");
    return std::nullopt;
  }
  if (!problems.empty()) {
    const std::string why = "the LOG is not imported at " + layer + ": " + joined(problems);
    note(ledger, r, why);
    res.unmapped.push_back({r.line, r.text, why});
    return std::nullopt;
  }
  const std::string callout = log_callout(layer);
  add_callout(pol, callout, "log (lfp_inspect_callouts)", layer);
  add_need(res, kLogNeeds);
  const std::string context = context_key(pol, l.limit, "log, line " + std::to_string(r.line) + " of " + o.source);
  return json{{"description", (r.comment.empty() ? "" : r.comment + ": ") + r.text},
              {"layer", layer}, {"provider", o.provider}, {"sublayer", o.sublayer},
              {"conditions", std::move(*conds)}, {"action", {{"type", "CALLOUT_INSPECTION"}, {"callout", callout}}},
              {"flags", json::array({"HAS_PROVIDER_CONTEXT"})}, {"provider_context", context}};
}

// The ledger's account of a log filter made.
void note_log(Ledger& ledger, const Rule& r, const std::string& name) {
  note(ledger, r, "imported as net events (filter \"" + name + "\"): the log callout (lfp_inspect_callouts) writes a CLASSIFY_LOG event, " +
                      "log_prefix " + json_text(r.log->prefix) + ", for each packet that reaches it" +
                      (r.rate ? " within the rule's rate (those over it are counted, not written)" : "") + "; it decides nothing");
  auto& names = account(ledger, r).filters;
  if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
}

// The filters of one walk at `layer`: the flattened rules (and, where the layer is a packet layer, the
// logs among them), then the chain policy for what `scope` (the walk's initial cases) matches.
void emit_walk(Walker& w, const std::vector<Conj>& scope, const std::string& cname, const std::string& layer, const std::string& policy,
               const std::string& suffix, const Output& o, json& pol, ImportResult& res, Ledger& ledger) {
  w.walk(cname, scope, {});
  const std::string policy_action = policy == "ACCEPT" ? "PERMIT" : "BLOCK";
  std::vector<std::optional<json>> conds;
  std::vector<std::vector<std::string>> problems;
  std::vector<json> matches;  // at IPFORWARD: the protocol and ports the transport-match callout checks (null: none)
  for (const Flat& f : w.flats) {
    problems.push_back(f.problems);
    Conj c = f.conj;
    matches.push_back(w.take_transport(c));
    conds.push_back(w.conditions(std::move(c), problems.back()));
  }
  // A rule that decides as every rule after it and the policy need not be a filter: one that cannot
  // be expressed there is left out at no cost (ufw's "skip to policy" rules).
  size_t tail = w.flats.size();
  while (tail > 0 && w.flats[tail - 1].action == policy_action) --tail;

  uint64_t weight = 1'000'000;
  std::map<int, int> made;  // filters made per rule line
  auto filter = [&](const std::string& name, const std::string& description, json conditions, json action, uint64_t w, json extra = json::object()) {
    json f = {{"name", name}, {"description", description}, {"layer", layer}, {"provider", o.provider},
              {"sublayer", o.sublayer}, {"weight", {{"explicit", w}}}, {"conditions", std::move(conditions)}, {"action", std::move(action)}};
    f.update(extra);
    pol["filters"].push_back(std::move(f));
    ++res.filters;
  };
  // The logs before flattened rule `i`, where this layer is theirs (otherwise emit_transport's).
  size_t next_log = 0;
  std::map<int, int> logs_made;  // log filters made per rule line (apart: an nftables rule may log and decide)
  auto logs_before = [&](size_t i) {
    for (; w.logs_in_place() && next_log < w.callouts.size() && w.callouts[next_log].after <= i; ++next_log) {
      const Flat& l = w.callouts[next_log];
      if (l.action != "LOG") continue;
      auto f = log_filter(w, l, l.conj, layer, o, pol, res, ledger);
      if (!f) continue;
      const int nth = ++logs_made[l.rule->line];
      const std::string name = cname + " " + o.place + " " + std::to_string(l.rule->line) + suffix + " log" + (nth > 1 ? " (" + std::to_string(nth) + ")" : "");
      json members = std::move(*f);
      members["name"] = name;
      members["weight"] = {{"explicit", weight--}};
      pol["filters"].push_back(std::move(members));
      ++res.filters;
      note_log(ledger, *l.rule, name);
    }
  };
  for (size_t i = 0; i < w.flats.size(); ++i) {
    logs_before(i);
    const Flat& f = w.flats[i];
    const Rule& r = *f.rule;
    if (!conds[i]) {
      note(ledger, r, "never matches here: its address types and addresses exclude each other");
      continue;
    }
    if (!problems[i].empty()) {
      std::string why = joined(problems[i]);
      if (!f.via.empty()) {
        why += " (reached through line";
        for (int l : f.via) why += " " + std::to_string(l);
        why += ")";
      }
      note(ledger, r, i >= tail ? "not needed (" + why + "): it decides as every later rule and the chain policy" : why);
      if (i < tail) res.unmapped.push_back({r.line, r.text, why});
      continue;
    }
    const int nth = ++made[r.line];
    const std::string name = cname + " " + o.place + " " + std::to_string(r.line) + suffix + (nth > 1 ? " (" + std::to_string(nth) + ")" : "");
    const std::string description = (r.comment.empty() ? "" : r.comment + ": ") + r.text + (r.target == "REJECT" ? " (REJECT: refused, not answered)" : "");
    if (matches[i].is_null()) {
      filter(name, description, std::move(*conds[i]), f.action, weight--);
    } else {
      // The protocol and ports IPFORWARD has no field for: the transport-match callout answers the
      // rule's action when they match, CONTINUE (as if this filter had not matched) when not.
      json data = matches[i];
      data["action"] = f.action;
      const std::string callout = layer.ends_with("_V6") ? inspect::kTransportMatchCalloutV6 : inspect::kTransportMatchCalloutV4;
      add_callout(pol, callout, "transport match (lfp_inspect_callouts)", layer);
      const std::string context = context_key(pol, data, "transport match, line " + std::to_string(r.line) + " of " + o.source);
      filter(name, description, std::move(*conds[i]), {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}, weight--,
             {{"flags", json::array({"HAS_PROVIDER_CONTEXT"})}, {"provider_context", context}});
      note(ledger, r, "its protocol and ports (no fields of IPFORWARD) are matched by the transport-match callout "
                      "(lfp_inspect_callouts) at IPFORWARD (lfp import --verify runs it too)");
      add_need(res, kTransportMatchNeeds);
    }
    auto& names = account(ledger, r).filters;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  logs_before(w.flats.size());
  // The chain's policy: what no rule decided.
  for (const Conj& c : scope) {
    std::vector<std::string> none;
    filter(cname + " policy " + policy + suffix, "the chain policy of " + o.source, *w.conditions(c, none), policy_action, 0);
  }
}

// The ALE walk's callout filters at the transport layer, which sees a connection's packets before the
// ALE layers do (INBOUND_TRANSPORT for INPUT, OUTBOUND_TRANSPORT for OUTPUT), in walk order:
// - the rate-limit callout's: one per case of each --update rule (or packet rate), with its parameters
//   as the provider context (docs/callouts.md, "Rate limit");
// - the log callout's: one per case of each LOG, CALLOUT_INSPECTION, on the walk's protocols (ICMP is
//   the ICMP walk's, which logs among its own filters).
// A packet that a rule before such a filter decides never reaches it, so each such rule that may meet
// its packets becomes a PERMIT filter above it here too: it passes the packet on to the ALE layers,
// which decide it by that rule, uncounted and unlogged.
void emit_transport(Walker& w, const std::string& cname, int family, bool policy_blocks, const Output& o, json& pol,
                    ImportResult& res, Ledger& ledger) {
  if (w.callouts.empty() || w.logs_in_place()) return;  // (the ICMP walk's and IPFORWARD's logs are emit_walk's)
  const std::string layer = std::string(w.inbound() ? "INBOUND_TRANSPORT" : "OUTBOUND_TRANSPORT") + (family == 6 ? "_V6" : "_V4");
  const std::string callout = family == 6 ? inspect::kRateLimitCalloutV6 : inspect::kRateLimitCalloutV4;
  std::map<std::string, int> made;              // filters made per name
  uint64_t weight = 2'000'000;                  // (above the ICMP walk's filters at this layer, which are ICMP's alone)
  auto filter = [&](const Rule& r, const std::string& kind, const std::string& description, json conds, json action, json extra) {
    const std::string base = cname + " " + o.place + " " + std::to_string(r.line) + kind;
    const int nth = ++made[base];
    const std::string name = base + (nth > 1 ? " (" + std::to_string(nth) + ")" : "");
    json f = {{"name", name}, {"description", (r.comment.empty() ? "" : r.comment + ": ") + r.text + description},
              {"layer", layer}, {"provider", o.provider}, {"sublayer", o.sublayer}, {"weight", {{"explicit", weight--}}},
              {"conditions", std::move(conds)}, {"action", std::move(action)}};
    f.update(extra);
    pol["filters"].push_back(std::move(f));
    ++res.filters;
    auto& names = account(ledger, r).filters;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    return name;
  };
  const Conj tcp = {{"IP_PROTOCOL", {{6, 6}}, {}}};  // (what a rate limit counts)
  const auto& callouts = w.callouts;
  auto is_log = [](const Flat& f) { return f.action == "LOG"; };
  bool limited = false;
  for (size_t i = 0, j = 0; j < callouts.size();) {
    if (i < callouts[j].after) {  // a rule before the next callout filter: a PERMIT here where it may meet its packets
      const Flat& f = w.flats[i++];
      const auto later = callouts.begin() + static_cast<long>(j);
      const auto met = std::find_if(later, callouts.end(), [&](const Flat& l) { return l.after >= i && w.conjoin_with(f.conj, l.conj); });
      const bool logs = std::any_of(later, callouts.end(), is_log);
      std::vector<std::string> problems = f.problems;
      const auto both = met != callouts.end() ? w.conjoin_with(f.conj, logs ? w.walked_protocols() : tcp) : std::nullopt;
      auto conds = both ? w.conditions(*both, problems) : std::nullopt;
      if (conds && problems.empty())
        filter(*f.rule, is_log(*met) ? " before the log" : " before the limit",
               " (at " + layer.substr(0, layer.size() - 3) + ": passed on uncounted and unlogged, the ALE layers decide it by this rule)",
               std::move(*conds), "PERMIT", json::object());
      continue;
    }
    const Flat& f = callouts[j++];
    const Rule& r = *f.rule;
    if (is_log(f)) {
      if (const auto both = w.conjoin_with(f.conj, w.walked_protocols()))
        if (auto members = log_filter(w, f, *both, layer, o, pol, res, ledger))
          note_log(ledger, r, filter(r, " log", "", (*members)["conditions"], (*members)["action"], *members));
      continue;
    }
    if (!limited) add_callout(pol, callout, "rate limit (lfp_inspect_callouts)", layer);
    limited = true;
    // A limit's PERMIT ends the transport layer's walk: connections an earlier limit lets by are not
    // counted by this one (nor logged by a later log).
    for (size_t k = 0; k + 1 < j; ++k)
      if (!is_log(callouts[k]) && callouts[k].rule != &r && w.conjoin_with(callouts[k].conj, f.conj)) {
        const std::string why = "imported; the connections the rate limit of line " + std::to_string(callouts[k].rule->line) +
                                " lets through before it are neither counted nor blocked by it";
        note(ledger, r, why);
        res.unmapped.push_back({r.line, r.text, why});
        break;
      }
    json data = f.limit;
    // A packet rate's bucket is the rule's own unless it names a table (a hashlimit's, per family).
    if (r.rate && !data.contains("name")) data["name"] = o.source + " " + o.place + " " + std::to_string(r.line);
    else if (r.rate) data["name"] = data["name"].get<std::string>() + (family == 6 ? " (IPv6)" : " (IPv4)");
    // An ACCEPT with a rate: what the rate does not accept goes on to the later rules, so the callout
    // blocks it where they block it, and only counts it where they let it in (every connection that
    // reaches the rule takes from its bucket).
    std::vector<std::pair<Conj, json>> cases = {{f.conj, data}};
    if (r.rate && r.target == "ACCEPT") {
      const auto after = w.after_limit(f, policy_blocks);
      if (!after) {
        const std::string why = "what the rate does not accept goes on to the later rules, and which of them decides it has no "
                                "bounded form here: the rule is imported as an ACCEPT of every connection";
        note(ledger, r, why);
        res.unmapped.push_back({r.line, r.text, why});
        continue;
      }
      cases.clear();
      for (const Conj& c : after->blocked) cases.push_back({c, data});
      json counted = data;
      counted["blocks"] = "none";
      for (const Conj& c : after->permitted) cases.push_back({c, counted});
    }
    for (const auto& [c, config] : cases) {
      std::vector<std::string> problems = f.problems;
      auto conds = w.conditions(c, problems);
      if (!conds) {
        note(ledger, r, "never matches here: its address types and addresses exclude each other");
        continue;
      }
      if (!problems.empty()) {
        note(ledger, r, joined(problems));
        res.unmapped.push_back({r.line, r.text, joined(problems)});
        continue;
      }
      const std::string key = context_key(pol, config, "rate limit, line " + std::to_string(r.line) + " of " + o.source);
      filter(r, " limit", "", std::move(*conds), {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}},
             {{"flags", json::array({"HAS_PROVIDER_CONTEXT"})}, {"provider_context", key}});
    }
  }
  if (limited) add_need(res, kRateLimitNeeds);
}

}  // namespace

void emit_chain(const std::map<std::string, Chain>& chains, const std::string& cname, Hook hook, int family,
                const Output& o, json& pol, ImportResult& res, Ledger& ledger) {
  const std::string fam = family == 6 ? "_V6" : "_V4";
  const std::string& policy = chains.at(cname).policy;
  Walker ale(chains, hook, family, false, ledger, res.unmapped);
  emit_walk(ale, {Conj{}}, cname, (hook == Hook::INPUT ? "ALE_AUTH_RECV_ACCEPT" : hook == Hook::OUTPUT ? "ALE_AUTH_CONNECT" : "IPFORWARD") + fam,
            policy, "", o, pol, res, ledger);
  emit_transport(ale, cname, family, policy != "ACCEPT", o, pol, res, ledger);
  if (hook == Hook::FORWARD) return;  // (IPFORWARD has no protocol field)
  // ICMP requests at the transport layers, where their type is the local port.
  Walker icmp(chains, hook, family, true, ledger, res.unmapped);
  const U proto = family == 4 ? 1 : 58;
  emit_walk(icmp, {Conj{{"IP_PROTOCOL", {{proto, proto}}, {}}, {"icmp_type", icmp_requests(family), {}}}}, cname,
            (hook == Hook::INPUT ? "INBOUND_TRANSPORT" : "OUTBOUND_TRANSPORT") + fam, policy, " icmp", o, pol, res, ledger);
  add_need(res, "the packet layers (lfpd without --no-packet-layers): ICMP requests are decided at INBOUND_TRANSPORT and OUTBOUND_TRANSPORT");
}

std::string interface_name_problem(const std::string& name) {
  if (name.find_first_of("+*") != std::string::npos)
    return "interface '" + name + "': a wildcard has no LFP form (LFP matches an interface by its name)";
  if (!is_interface_name(name)) return "'" + name + "' is not an interface name";
  return "";
}

void finish_coverage(Ledger& ledger, ImportResult& res) {
  for (auto& [line, rep] : ledger) {
    if (rep.filters.empty() && rep.notes.empty()) rep.notes.push_back("not imported: no imported jump leads to its chain");
    res.coverage.push_back(std::move(rep));
  }
  auto by_line = [](const Unmapped& a, const Unmapped& b) { return a.line != b.line ? a.line < b.line : a.reason < b.reason; };
  std::sort(res.unmapped.begin(), res.unmapped.end(), by_line);
  res.unmapped.erase(std::unique(res.unmapped.begin(), res.unmapped.end(),
                                 [](const Unmapped& a, const Unmapped& b) { return a.line == b.line && a.reason == b.reason; }),
                     res.unmapped.end());
}

}  // namespace lfp::import::detail
