// SPDX-License-Identifier: MIT
#include "lfp/import/opensnitch.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "lfp/engine/guid.hpp"

namespace lfp::import {

using nlohmann::json;

namespace {

// One operand test of a rule: its alternatives are OR'ed (a regexp "^(53|80)$" is two).
struct Alt {
  int family = 0;  // 0: both, 4 or 6: only there (addresses, "tcp" vs "tcp6")
  json value;
};
struct Term {
  std::string field, match = "EQUAL";
  std::vector<Alt> alts;
};
struct Translation {
  std::vector<Term> terms;
  std::vector<std::string> problems;  // not expressible: the rule is reported, not imported
  std::vector<std::string> caveats;   // imported, with a note in the report
};

bool is_canonical_uint(const std::string& s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }) || (s.size() > 1 && s[0] == '0')) return false;
  out = std::stoull(s);
  return out <= max;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool has_non_ascii(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x80; });
}

// The literals a Go regexp matches when it is one: "^lit$", "^(a|b|c)$" or "^(?:a|b)$". OpenSnitch's
// regexps are unanchored (MatchString), so only anchored ones mean equality.
bool regexp_literals(const std::string& re, std::vector<std::string>& out) {
  if (re.size() < 2 || re.front() != '^' || re.back() != '$' || (re.size() >= 3 && re[re.size() - 2] == '\\')) return false;
  std::string body = re.substr(1, re.size() - 2);
  bool grouped = false;
  if (body.rfind("(?:", 0) == 0 && body.size() > 3 && body.back() == ')') body = body.substr(3, body.size() - 4), grouped = true;
  else if (body.rfind("(", 0) == 0 && body.size() > 1 && body.back() == ')' && body.rfind("(?", 0) != 0) body = body.substr(1, body.size() - 2), grouped = true;
  std::string cur;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\\') {
      if (i + 1 >= body.size() || std::isalnum(static_cast<unsigned char>(body[i + 1]))) return false;  // \d, \w, \b ...
      cur += body[++i];
    } else if (c == '|') {
      if (!grouped) return false;  // "^a|b$" is (^a)|(b$)
      out.push_back(cur);
      cur.clear();
    } else if (std::string_view(".+*?()[]{}^$").find(c) != std::string_view::npos) {
      return false;
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return true;
}

// An address as Go's net.IP.String() writes it, or "" when `s` is no address: OpenSnitch compares
// dest.ip as that text, so a literal written otherwise ("2001:DB8:0::1") never matches.
std::string canonical_ip(const std::string& s, int& family) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    family = 4;
    return inet_ntop(AF_INET, buf, out, sizeof out) ? out : "";
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    family = 6;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(buf, buf + 12, mapped)) return "";  // Go prints an IPv4-mapped address as IPv4
    return inet_ntop(AF_INET6, buf, out, sizeof out) ? out : "";
  }
  return "";
}

// "192.168.0.0/16" as Go's net.ParseCIDR takes it, masked to its network.
bool parse_cidr(const std::string& s, int& family, std::string& out) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos) return false;
  const std::string addr = s.substr(0, slash), len = s.substr(slash + 1);
  unsigned char buf[16];
  uint64_t bits;
  family = inet_pton(AF_INET, addr.c_str(), buf) == 1 ? 4 : inet_pton(AF_INET6, addr.c_str(), buf) == 1 ? 6 : 0;
  if (!family || !is_canonical_uint(len, family == 4 ? 32 : 128, bits)) return false;
  const size_t n = family == 4 ? 4 : 16;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
    buf[i] &= static_cast<unsigned char>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, buf, text, sizeof text)) return false;
  out = std::string(text) + "/" + len;
  return true;
}

const std::map<std::string, std::string>& unsupported_operands() {
  static const std::map<std::string, std::string> m = {
      {"dest.host", "a host name: LFP decides on addresses (the name behind an address is not known at connect)"},
      {"process.command", "a command line: LFP matches the executable (ALE_APP_ID), not its arguments"},
      {"process.id", "a process id: it changes with every run"},
      {"process.parent.path", "a parent process: LFP matches the connecting executable only"},
      {"process.hash.md5", "an executable's checksum: LFP matches the executable by path (device and inode)"},
      {"process.hash.sha1", "an executable's checksum: LFP matches the executable by path (device and inode)"},
      {"iface.in", "an interface name: LFP names interfaces by index, which only the host knows"},
      {"iface.out", "an interface name: LFP names interfaces by index, which only the host knows"},
      {"lists.domains", "a domain list read at run time"},
      {"lists.domains_regexp", "a domain list read at run time"},
      {"lists.ips", "an address list read from a directory at run time"},
      {"lists.nets", "a network list read from a directory at run time"},
      {"lists.hash.md5", "a checksum list read at run time"},
  };
  return m;
}

struct Ctx {
  Translation& t;
  int depth = 0;
};

void translate(const json& op, Ctx& cx);

// The values of one operator (its type: simple, regexp, range, network) as literal alternatives.
void translate_one(const json& op, Ctx& cx) {
  Translation& t = cx.t;
  const std::string type = op.value("type", ""), operand = op.value("operand", ""), data = op.value("data", "");
  const bool sensitive = op.value("sensitive", false);
  if (operand == "true") return;  // matches every connection
  if (auto it = unsupported_operands().find(operand); it != unsupported_operands().end())
    return t.problems.push_back(operand + " is " + it->second);
  if (operand.rfind("process.env.", 0) == 0) return t.problems.push_back(operand + ": LFP does not see a process's environment");
  if (operand == "user.name") {
    // opensnitchd turns the name into its uid when it loads the rule (user.Lookup): that host's users.
    return t.problems.push_back("user.name '" + data + "': a user name is resolved on the host the rule runs on; write user.id");
  }
  if (type == "lists") return t.problems.push_back("operator type lists: " + operand + " is read from files at run time");

  std::vector<std::string> lits;
  bool is_range = false;
  uint64_t lo = 0, hi = 0;
  if (type == "simple") {
    lits.push_back(data);
  } else if (type == "regexp") {
    const std::string re = sensitive ? data : lower(data);  // as opensnitchd compiles it
    if (!regexp_literals(re, lits)) return t.problems.push_back("regexp '" + data + "' is not a literal (only ^literal$ and ^(a|b|...)$ have an LFP form)");
  } else if (type == "range") {
    std::string d = data;
    std::erase(d, ' ');
    const size_t dash = d.find('-');
    if (dash == std::string::npos || !is_canonical_uint(d.substr(0, dash), UINT32_MAX, lo) ||
        !is_canonical_uint(d.substr(dash + 1), UINT32_MAX, hi) || lo > hi)
      return t.problems.push_back("range '" + data + "' is not min-max (opensnitchd refuses to load it)");
    is_range = true;
  } else if (type == "network") {
    if (operand != "dest.network" && operand != "source.network")
      return t.problems.push_back("type network with operand " + operand + " (opensnitchd refuses to load it)");
    if (operand == "source.network")
      return t.problems.push_back("type network applies to dest.network only (opensnitchd refuses to load it)");
    int fam;
    std::string net;
    if (!parse_cidr(data, fam, net))
      return t.problems.push_back("network '" + data + "' is not a CIDR (a network alias from network_aliases.json has no LFP form)");
    t.terms.push_back({"IP_REMOTE_ADDRESS", "EQUAL", {{fam, net}}});
    return;
  } else {
    return t.problems.push_back("operator type '" + type + "' (opensnitchd refuses to load it)");
  }

  Term term;
  auto never = [&](const std::string& why) { t.problems.push_back("never matches: " + why); };
  if (operand == "process.path") {
    if (is_range) return t.problems.push_back("a range of paths has no meaning");
    term.field = "ALE_APP_ID";
    // opensnitchd compares paths ignoring case unless "sensitive" (strings.EqualFold).
    const bool fold = !sensitive && std::any_of(lits.begin(), lits.end(), [](const std::string& s) {
      return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isalpha(c); });
    });
    term.match = fold ? "EQUAL_CASE_INSENSITIVE" : "EQUAL";
    for (const auto& l : lits) {
      if (fold && has_non_ascii(l))
        t.caveats.push_back("'" + l + "': OpenSnitch folds Unicode case, LFP ASCII case only");
      term.alts.push_back({0, l});
    }
    if (fold) t.caveats.push_back("matched ignoring case as OpenSnitch does (sensitive: false): decided in user space, not by inode in the kernel");
  } else if (operand == "user.id") {
    if (is_range) return t.problems.push_back("a range of user ids has no LFP form (ALE_USER_ID lists users)");
    term.field = "ALE_USER_ID";
    for (const auto& l : lits) {
      uint64_t uid;
      if (!is_canonical_uint(l, UINT32_MAX, uid)) return never("user.id '" + l + "' is not a uid as opensnitchd writes it");
      term.alts.push_back({0, json{{"uids", {uid}}}});
    }
  } else if (operand == "dest.port" || operand == "source.port") {
    term.field = operand == "dest.port" ? "IP_REMOTE_PORT" : "IP_LOCAL_PORT";
    if (is_range) {
      if (lo > 65535) return never("range '" + data + "' holds no port");
      term.match = "RANGE";
      term.alts.push_back({0, json{{"low", lo}, {"high", std::min<uint64_t>(hi, 65535)}}});
    }
    for (const auto& l : lits) {
      uint64_t port;
      if (!is_canonical_uint(l, 65535, port)) return never(operand + " '" + l + "' is not a port as opensnitchd writes it");
      term.alts.push_back({0, port});
    }
  } else if (operand == "dest.ip" || operand == "source.ip") {
    if (is_range) return t.problems.push_back("a range of addresses (type range) has no OpenSnitch meaning");
    term.field = operand == "dest.ip" ? "IP_REMOTE_ADDRESS" : "IP_LOCAL_ADDRESS";
    for (const auto& l : lits) {
      int fam = 0;
      const std::string c = canonical_ip(l, fam);
      if (c.empty() || (sensitive ? c != l : lower(c) != lower(l)))
        return never(operand + " '" + l + "' is not an address as opensnitchd writes it (" + (c.empty() ? "not an address" : c) + ")");
      term.alts.push_back({fam, c});
    }
  } else if (operand == "protocol") {
    if (is_range) return t.problems.push_back("a range of protocols has no OpenSnitch meaning");
    term.field = "IP_PROTOCOL";
    // opensnitchd names the protocol with the family: "tcp" is TCP over IPv4, "tcp6" over IPv6.
    static const std::map<std::string, std::pair<int, const char*>> protos = {
        {"tcp", {4, "TCP"}},   {"udp", {4, "UDP"}},   {"udplite", {4, "UDPLITE"}},   {"sctp", {4, "SCTP"}},   {"icmp", {4, "ICMP"}},
        {"tcp6", {6, "TCP"}}, {"udp6", {6, "UDP"}}, {"udplite6", {6, "UDPLITE"}}, {"sctp6", {6, "SCTP"}}, {"icmp6", {6, "ICMPV6"}}};
    for (const auto& l : lits) {
      auto it = protos.find(sensitive ? l : lower(l));
      if (it == protos.end()) return never("protocol '" + l + "' is none opensnitchd reports (tcp, udp, udplite, sctp, icmp, with 6 for IPv6)");
      term.alts.push_back({it->second.first, it->second.second});
    }
  } else if (operand == "dest.network" || operand == "source.network") {
    return t.problems.push_back(operand + " with type " + type + " (opensnitchd compares networks with type network only)");
  } else {
    return t.problems.push_back("operand '" + operand + "' is unknown");
  }
  t.terms.push_back(std::move(term));
}

void translate(const json& op, Ctx& cx) {
  if (!op.is_object()) throw std::invalid_argument("an operator is not an object");
  if (op.value("type", "") != "list") return translate_one(op, cx);
  if (++cx.depth > 8) throw std::invalid_argument("operator lists nest too deep");
  // opensnitchd matches the members of "list" (AND). It reads the copy in "data" only for disabled
  // rules (loader.go), so an enabled rule whose "list" is empty matches every connection.
  const json list = op.contains("list") && op["list"].is_array() ? op["list"] : json::array();
  if (list.empty())
    cx.t.caveats.push_back(op.value("data", "").empty() ? "an empty operator list matches every connection"
                                                        : "its operators are only in \"data\", which opensnitchd ignores for an enabled rule: it matches every connection");
  for (const json& m : list) translate(m, cx);
  --cx.depth;
}

struct Parsed {
  std::string file, name, description, action, duration;
  bool enabled = false, precedence = false;
  json op;
};

Parsed parse_rule_file(const RuleFile& f) {
  json doc;
  try {
    doc = json::parse(f.text);
  } catch (const json::parse_error& e) {
    const size_t upto = std::min(e.byte, f.text.size());
    throw FileImportError(f.name, 1 + static_cast<int>(std::count(f.text.begin(), f.text.begin() + static_cast<long>(upto), '\n')),
                          std::string("not JSON: ") + e.what());
  } catch (const json::exception& e) {
    throw FileImportError(f.name, 1, std::string("not JSON this reader takes: ") + e.what());
  }
  try {
    if (!doc.is_object()) throw std::invalid_argument("not a rule object");
    Parsed p;
    p.file = f.name;
    p.name = doc.at("name").get<std::string>();
    if (p.name.empty()) throw std::invalid_argument("the rule has no name");
    p.description = doc.value("description", "");
    p.enabled = doc.value("enabled", false);
    p.precedence = doc.value("precedence", false);
    p.action = doc.value("action", "");
    p.duration = doc.value("duration", "");
    p.op = doc.at("operator");
    if (!p.op.is_object()) throw std::invalid_argument("\"operator\" is not an object");
    return p;
  } catch (const json::exception& e) {
    throw FileImportError(f.name, 1, std::string("not an OpenSnitch rule: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw FileImportError(f.name, 1, std::string("not an OpenSnitch rule: ") + e.what());
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
  return s;
}

}  // namespace

std::vector<RuleFile> read_opensnitch_rules(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::string> paths;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.path().extension() == ".json" && e.is_regular_file(ec)) paths.push_back(e.path().string());
    if (ec) throw FileImportError(path, 0, "cannot list: " + ec.message());
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(path);
  }
  std::vector<RuleFile> out;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw FileImportError(p, 0, "cannot read");
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back({p, ss.str()});
  }
  return out;
}

ImportResult import_opensnitch(const std::vector<RuleFile>& files, const ImportOptions& opts) {
  ImportResult res;
  // opensnitchd keys rules by name: a later file (glob order) replaces an earlier one of that name.
  std::map<std::string, Parsed> by_name;  // iterated in name order: Go's sort.Strings, bytewise
  for (const RuleFile& f : files) {
    Parsed p = parse_rule_file(f);
    ++res.rules;
    if (auto it = by_name.find(p.name); it != by_name.end())
      res.unmapped.push_back({0, it->second.file, "rule '" + p.name + "' is replaced by " + f.name + ", which has the same name (opensnitchd keeps the last)"});
    by_name[p.name] = std::move(p);
  }
  if (!opts.default_action.empty() && opts.default_action != "allow" && opts.default_action != "deny")
    throw ImportError(0, "default action '" + opts.default_action + "': expected allow or deny");

  const std::string provider = opts.provider.empty() ? Guid::generate().str() : opts.provider;
  const std::string sublayer = opts.sublayer.empty() ? Guid::generate().str() : opts.sublayer;
  json pol = {{"version", 1}, {"providers", json::array()}, {"sublayers", json::array()}, {"filters", json::array()}};
  if (opts.provider.empty()) pol["providers"].push_back({{"key", provider}, {"name", "imported from " + opts.source}});
  if (opts.sublayer.empty())
    pol["sublayers"].push_back({{"key", sublayer}, {"name", "OpenSnitch rules"}, {"provider", provider}, {"weight", 0xC000}});

  // Weights: the deny, reject and priority rules first, in name order (the first that matches
  // decides); then the plain allow rules (any that matches allows, when no such rule matched).
  uint64_t terminal_weight = 3'000'000, allow_weight = 1'000'000;
  for (auto& entry : by_name) {
    const std::string& name = entry.first;  // (not a structured binding: clang 14 cannot capture those)
    Parsed& p = entry.second;
    auto report = [&](const std::string& why) { res.unmapped.push_back({0, p.file, "rule '" + name + "': " + why}); };
    if (!p.enabled) {
      report("disabled: opensnitchd does not evaluate it");
      continue;
    }
    if (p.duration == "once") {
      report("duration once: it decided one connection and is never kept");
      continue;
    }
    if (!p.duration.empty() && p.duration != "always" && p.duration != "until restart") {
      report("duration " + p.duration + ": opensnitchd deletes it after that time");
      continue;
    }
    if (p.action != "allow" && p.action != "deny" && p.action != "reject") {
      report("action '" + p.action + "' is none of allow, deny, reject");
      continue;
    }
    Translation t;
    Ctx cx{t};
    try {
      translate(p.op, cx);
    } catch (const std::invalid_argument& e) {
      throw FileImportError(p.file, 1, std::string("not an OpenSnitch rule: ") + e.what());
    } catch (const json::exception& e) {
      throw FileImportError(p.file, 1, std::string("not an OpenSnitch rule: ") + e.what());
    }
    // LFP ORs the conditions on one field: two tests of one field (AND) cannot be combined.
    std::map<std::string, int> per_field;
    for (const Term& term : t.terms)
      if (++per_field[term.field] == 2)
        t.problems.push_back("two tests of " + term.field + " in one rule (LFP ORs conditions on one field)");
    if (!t.problems.empty()) {
      report(join(t.problems));
      continue;
    }
    const bool terminal = p.action != "allow" || p.precedence;
    const uint64_t weight = terminal ? terminal_weight-- : allow_weight--;
    int emitted = 0;
    for (int fam : {4, 6}) {
      json conds = json::array();
      bool possible = true;
      for (const Term& term : t.terms) {
        size_t n = 0;
        for (const Alt& a : term.alts)
          if (a.family == 0 || a.family == fam) conds.push_back({{"field", term.field}, {"match", term.match}, {"value", a.value}}), ++n;
        possible = possible && n > 0;
      }
      if (!possible) continue;
      std::string desc = p.file + ": " + p.action + (p.precedence ? " (priority)" : "") + (p.action == "reject" ? " (reject: refused, not answered)" : "");
      if (!p.description.empty()) desc = p.description + " — " + desc;
      pol["filters"].push_back({{"name", name},
                                {"description", desc},
                                {"layer", fam == 4 ? "ALE_AUTH_CONNECT_V4" : "ALE_AUTH_CONNECT_V6"},
                                {"provider", provider},
                                {"sublayer", sublayer},
                                {"weight", {{"explicit", weight}}},
                                {"conditions", conds},
                                {"action", p.action == "allow" ? "PERMIT" : "BLOCK"}});
      ++res.filters;
      ++emitted;
    }
    if (!emitted) {
      report("never matches: its tests want both IPv4 and IPv6");
      continue;
    }
    std::sort(t.caveats.begin(), t.caveats.end());
    t.caveats.erase(std::unique(t.caveats.begin(), t.caveats.end()), t.caveats.end());
    if (!t.caveats.empty()) report("imported; " + join(t.caveats));
  }
  if (!opts.default_action.empty()) {
    for (const char* layer : {"ALE_AUTH_CONNECT_V4", "ALE_AUTH_CONNECT_V6"}) {
      pol["filters"].push_back({{"name", "OpenSnitch default action " + opts.default_action},
                                {"description", "connections no rule matched (the daemon's DefaultAction)"},
                                {"layer", layer},
                                {"provider", provider},
                                {"sublayer", sublayer},
                                {"weight", {{"explicit", 0}}},
                                {"conditions", json::array()},
                                {"action", opts.default_action == "allow" ? "PERMIT" : "BLOCK"}});
      ++res.filters;
    }
  }
  res.policy = std::move(pol);
  return res;
}

}  // namespace lfp::import
