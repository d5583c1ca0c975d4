#pragma once
// What the importers share: a rule set as chains of rules (conditions by role, a target), and the
// step that turns one base chain into filters of one sublayer: jumps flattened in order, first match
// as weight, the chain policy as a last filter, and everything that cannot be expressed reported.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/import/iptables.hpp"

namespace lfp::import::detail {

using nlohmann::json;

// Conditions use engine field names, except addresses and ports, which keep their role ("src_addr",
// "dst_addr", "src_port", "dst_port") until the chain they end up in says local or remote.
struct Cond {
  std::string field, match = "EQUAL";
  json value;
};

struct Rule {
  int line = 0;
  std::string text, comment;
  std::vector<Cond> conds;
  std::string target;                 // ACCEPT, DROP, REJECT, RETURN, LOG, a chain name, or "" (no target)
  std::vector<std::string> problems;  // why it cannot be expressed
  bool established_only = false;      // --ctstate ESTABLISHED,RELATED (and no NEW)
};

struct Chain {
  std::string policy;  // "-" for a user chain
  std::vector<Rule> rules;
};

enum class Hook { INPUT, OUTPUT, FORWARD };

// The filters of base chain `name` at `hook` for one family (4 or 6), in sublayer `sublayer` of
// `provider`, appended to pol["filters"]; what cannot be expressed goes to res.unmapped.
void emit_chain(const std::map<std::string, Chain>& chains, const std::string& name, Hook hook, int family,
                const std::string& provider, const std::string& sublayer, const std::string& source, json& pol,
                ImportResult& res);

}  // namespace lfp::import::detail
