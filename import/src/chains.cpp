#include "chains.hpp"

#include <algorithm>

namespace lfp::import::detail {

namespace {

// Field names for a chain: which of -s/-d and --sport/--dport is local or remote.
struct Fields {
  const char *src_addr, *dst_addr, *src_port, *dst_port;
};
Fields fields_for(Hook h) {
  switch (h) {
    case Hook::INPUT: return {"IP_REMOTE_ADDRESS", "IP_LOCAL_ADDRESS", "IP_REMOTE_PORT", "IP_LOCAL_PORT"};
    case Hook::OUTPUT: return {"IP_LOCAL_ADDRESS", "IP_REMOTE_ADDRESS", "IP_LOCAL_PORT", "IP_REMOTE_PORT"};
    default: return {"IP_SOURCE_ADDRESS", "IP_DESTINATION_ADDRESS", nullptr, nullptr};
  }
}

// A flattened rule of a built-in chain.
struct Flat {
  std::vector<const Rule*> path;  // the jump rules that lead here, then the rule
  std::vector<Cond> conds;
  std::string action;             // PERMIT or BLOCK
  std::vector<std::string> problems;
};

// Rules a chain may expand to through its jumps (a chain jumped to from many places is flattened
// once per place: a crafted rule set could expand exponentially).
constexpr size_t kMaxExpanded = 20000;

void flatten(const std::map<std::string, Chain>& chains, const std::string& name, std::vector<const Rule*> path,
             std::vector<Cond> conds, std::vector<std::string> problems, std::vector<Flat>& out,
             std::vector<Unmapped>& unmapped, int depth, size_t& budget) {
  if (depth > 32) {
    unmapped.push_back({path.back()->line, path.back()->text, "jumps nest too deep (a loop?)"});
    return;
  }
  for (const Rule& r : chains.at(name).rules) {
    if (budget == 0) return;
    if (--budget == 0) {
      unmapped.push_back({r.line, r.text, "the jumps expand to more than " + std::to_string(kMaxExpanded) +
                                              " rules; the rest of this chain is not imported"});
      return;
    }
    std::vector<const Rule*> p = path;
    p.push_back(&r);
    std::vector<Cond> c = conds;
    std::vector<std::string> pr = problems;
    pr.insert(pr.end(), r.problems.begin(), r.problems.end());
    // AND the rule's conditions with the jumps' that lead here. LFP ORs conditions on one field, so
    // a field both constrain works only when the rule narrows the jumps' list (a multiport list
    // and one of its ports): then the rule's conditions stand for the field.
    std::vector<std::string> fields;  // in the rule's order
    for (const Cond& x : r.conds)
      if (std::find(fields.begin(), fields.end(), x.field) == fields.end()) fields.push_back(x.field);
    for (const std::string& field : fields) {
      std::vector<Cond> mine, theirs;
      for (const Cond& x : r.conds)
        if (x.field == field) mine.push_back(x);
      for (const Cond& y : c)
        if (y.field == field) theirs.push_back(y);
      const bool narrows = std::all_of(mine.begin(), mine.end(), [&](const Cond& x) {
        return std::any_of(theirs.begin(), theirs.end(), [&](const Cond& y) { return y.match == x.match && y.value == x.value; });
      });
      if (!theirs.empty() && !narrows) {
        pr.push_back("the jump and the rule both constrain " + field + " (LFP ORs conditions on one field)");
        continue;
      }
      std::erase_if(c, [&](const Cond& y) { return y.field == field; });
      c.insert(c.end(), mine.begin(), mine.end());
    }
    if (r.established_only) {
      unmapped.push_back({r.line, r.text, r.target == "ACCEPT"
                                               ? "implied: the ALE layers decide only a flow's first packet, so established and related flows pass"
                                               : "acts on established flows only, which the ALE layers do not see again"});
      continue;
    }
    if (r.target == "ACCEPT" || r.target == "DROP" || r.target == "REJECT") {
      out.push_back({p, c, r.target == "ACCEPT" ? "PERMIT" : "BLOCK", pr});
    } else if (r.target == "RETURN") {
      if (!r.conds.empty() || !r.problems.empty()) {
        unmapped.push_back({r.line, r.text, "a conditional RETURN has no LFP form; the chain's later rules may decide what it returned"});
        continue;
      }
      return;  // the rest of this chain is never reached
    } else if (r.target == "LOG" || r.target.empty()) {
      std::string why = r.target == "LOG" ? "LOG decides nothing (net events log what LFP decides)"
                        : r.problems.empty() ? "no target: the rule only counts" : "";
      for (const auto& p : r.problems) why += (why.empty() ? "" : "; ") + p;
      unmapped.push_back({r.line, r.text, why});
    } else if (chains.count(r.target) && chains.at(r.target).policy == "-") {
      flatten(chains, r.target, p, c, pr, out, unmapped, depth + 1, budget);
    } else {
      unmapped.push_back({r.line, r.text, "target " + r.target + " has no LFP form"});
    }
  }
}

}  // namespace

void emit_chain(const std::map<std::string, Chain>& chains, const std::string& cname, Hook hook, int family,
                const std::string& provider, const std::string& sublayer, const std::string& source, json& pol,
                ImportResult& res) {
  const char* layer = hook == Hook::INPUT ? "ALE_AUTH_RECV_ACCEPT" : hook == Hook::OUTPUT ? "ALE_AUTH_CONNECT" : "IPFORWARD";
  const char* fam = family == 6 ? "_V6" : "_V4";
    std::vector<Flat> flat;
    size_t budget = kMaxExpanded;
    flatten(chains, cname, {}, {}, {}, flat, res.unmapped, 0, budget);
    const Fields fl = fields_for(hook);
    uint64_t weight = 1'000'000;
    for (const Flat& f : flat) {
      const Rule& r = *f.path.back();
      std::vector<std::string> problems = f.problems;
      json conds = json::array();
      for (const Cond& c : f.conds) {
        std::string field = c.field;
        if (field == "src_addr") field = fl.src_addr;
        else if (field == "dst_addr") field = fl.dst_addr;
        else if (field == "src_port" || field == "dst_port") {
          const char* n = field == "src_port" ? fl.src_port : fl.dst_port;
          if (!n) {
            problems.push_back("ports are not fields of IPFORWARD");
            continue;
          }
          field = n;
        }
        if (hook == Hook::FORWARD && (field == "IP_PROTOCOL" || field == "ALE_USER_ID")) {
          problems.push_back(field + " is not a field of IPFORWARD");
          continue;
        }
        if (field == "ALE_USER_ID" && hook == Hook::INPUT) {
          problems.push_back("-m owner applies to locally generated traffic only");
          continue;
        }
        conds.push_back({{"field", field}, {"match", c.match}, {"value", c.value}});
      }
      if (!problems.empty()) {
        std::string why;
        for (const auto& p : problems) why += (why.empty() ? "" : "; ") + p;
        res.unmapped.push_back({r.line, r.text, why});
        continue;
      }
      std::string name = std::string(cname) + " line " + std::to_string(r.line);
      json filter = {{"name", name},
                     {"description", (r.comment.empty() ? "" : r.comment + ": ") + r.text + (r.target == "REJECT" ? " (REJECT: refused, not answered)" : "")},
                     {"layer", std::string(layer) + fam},
                     {"provider", provider},
                     {"sublayer", sublayer},
                     {"weight", {{"explicit", weight--}}},
                     {"conditions", conds},
                     {"action", f.action}};
      pol["filters"].push_back(filter);
      ++res.filters;
    }
    // The chain's policy: what no rule decided.
    const std::string& policy = chains.at(cname).policy;
    pol["filters"].push_back({{"name", std::string(cname) + " policy " + policy},
                              {"description", "the chain policy of " + source},
                              {"layer", std::string(layer) + fam},
                              {"provider", provider},
                              {"sublayer", sublayer},
                              {"weight", {{"explicit", 0}}},
                              {"conditions", json::array()},
                              {"action", policy == "ACCEPT" ? "PERMIT" : "BLOCK"}});
    ++res.filters;
}

}  // namespace lfp::import::detail
