// SPDX-License-Identifier: MIT
#pragma once
// What the importers share: a rule set as chains of rules (conditions by role, a target), and the
// step that turns one base chain into filters of one sublayer. The chain walk (jumps, gotos, RETURNs,
// conditional or not) is flattened into a first-match list: each rule's conditions are ANDed with the
// conditions that lead to it, including the negation of every conditional RETURN (or goto) passed on
// the way; rule order becomes weight, the chain policy a last filter. Conditions are sets of values
// per field, so AND is an intersection and NOT a complement, both exact.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/import/iptables.hpp"

namespace lfp::import::detail {

using nlohmann::json;

// A value as JSON text, for messages and provider contexts: bytes that are not UTF-8 (an
// iptables-save file may hold any) are replaced rather than thrown on.
inline std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// One condition of a rule. Conditions on one role are OR'ed (a multiport list, an nft set), the
// negated ones (`!`, `!=`) excluded from that; roles are ANDed. Roles: "src_addr", "dst_addr",
// "src_port", "dst_port" (local or remote once the chain is known), "IP_PROTOCOL" (a number or a
// name), "loopback" (1: the loopback interface), "ct_state" ("NEW", "ESTABLISHED", "RELATED",
// "INVALID", "UNTRACKED"), "dst_type" (an addrtype name: "LOCAL", "BROADCAST", ...), and
// "ALE_USER_ID" (its value as the policy format writes it; it cannot be negated), "in_interface" and
// "out_interface" (an interface name, which interface_name_problem accepts).
// Addresses: "a", "a/len" or {"low", "high"}; ports and protocols: a number or {"low", "high"}.
struct Cond {
  std::string role;
  json value;
  bool negated = false;
  friend bool operator==(const Cond&, const Cond&) = default;
};

// An xt_recent match (`-m recent`): ufw's `limit` is a --set rule, then an --update rule jumping to a
// chain that rejects; the pair becomes a filter of the built-in rate-limit callout.
struct Recent {
  std::string mode;  // set, update, rcheck, remove
  std::string name = "DEFAULT";
  uint32_t seconds = 0, hitcount = 0;
  int prefix = -1;  // --mask as a prefix length; -1: the whole address
  std::vector<std::string> problems;  // its options with no form in the callout (--rdest, --reap, ...)
};

// A packet-rate match (`-m limit`, `-m hashlimit`, nft's `limit`): the rate-limit callout's
// configuration for it ({"rate", "per", "burst"}, a hashlimit's "key", masks, "expire" and table
// "name"), and which side of the rate matches. A rule with one becomes a filter of the callout.
struct RateMatch {
  json config;
  bool over = false;                  // matches over the rate (--hashlimit-above, nft's `limit rate over`), else within it
  std::vector<std::string> problems;  // its options with no form in the callout (a byte rate, ...)
};

// A LOG (`-j LOG --log-prefix P --log-level L`, nftables' `log prefix P level L`): a filter of the log
// callout at the rule's place, whose packets become LFP net events (CLASSIFY_LOG) with the prefix.
struct LogAction {
  std::string prefix, level;  // as the rule has them ("" when it has none)
};

struct Rule {
  int line = 0;
  std::string text, comment;
  std::vector<Cond> conds;
  std::string target;                 // ACCEPT, DROP, REJECT, RETURN, LOG, a chain name, or "" (no target)
  std::optional<LogAction> log;       // with LOG (or, in nftables, before the verdict)
  bool go = false;                    // goto: the chain's RETURN returns from the caller too
  std::vector<std::string> problems;  // why it cannot be expressed
  std::optional<Recent> recent;
  std::optional<RateMatch> rate;
  bool syn = false;  // --syn (tcp flags SYN without ACK, RST, FIN): only a connection's first packet
};

struct Chain {
  std::string policy;  // "-" for a user chain
  std::vector<Rule> rules;
};

// Why `name` cannot be an interface condition (a wildcard, `eth+`, `eth*`, or no interface name), or
// "". (A name no interface has where lfp import runs is fine: lfpd resolves names where it runs.)
std::string interface_name_problem(const std::string& name);

enum class Hook { INPUT, OUTPUT, FORWARD };

// Where the filters go and how they are named.
struct Output {
  std::string provider, sublayer, source;
  std::string place = "line";  // filters are named "CHAIN line N" ("item N" for nftables)
};

// Per rule (by line): the filters it became and what else happened to it.
using Ledger = std::map<int, RuleReport>;

// Appends the filters of base chain `name` at `hook` for one family (4 or 6) to pol["filters"]; what
// cannot be expressed goes to res.unmapped, and every rule reached gets its account in `ledger`.
void emit_chain(const std::map<std::string, Chain>& chains, const std::string& name, Hook hook, int family,
                const Output& out, json& pol, ImportResult& res, Ledger& ledger);

// The ledger's accounts as res.coverage, in line order; a rule no base chain reaches says so.
void finish_coverage(Ledger& ledger, ImportResult& res);

}  // namespace lfp::import::detail
