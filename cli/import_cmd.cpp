// SPDX-License-Identifier: MIT
#include "import_cmd.hpp"

#include <fstream>
#include <iostream>
#include <memory>

#include "import_verify.hpp"
#include "lfp/import/iptables.hpp"
#include "lfp/import/nft.hpp"
#include "lfp/import/opensnitch.hpp"
#include "lfp/import/wfp.hpp"

namespace lfp::cli {

using nlohmann::json;

namespace {

struct ImportArgs {
  std::string format, file, output, provider, sublayer, default_action = "allow";
  std::vector<std::string> map_app;
  bool apply = false;
  VerifyArgs verify;
};

// The rule set read and imported; `text` gets what was imported when --verify needs it. Throws
// import::ImportError (and FileImportError) naming the place.
import::ImportResult import_rules(const ImportArgs& a, std::string& text) {
  auto read_input = [&] { return a.file == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : read_file(a.file); };
  import::ImportOptions o{a.provider, a.sublayer, a.format + " " + a.file};
  if (a.format == "opensnitch") {
    o.default_action = a.default_action == "none" ? "" : a.default_action;
    return import::import_opensnitch(a.file == "-" ? std::vector<import::RuleFile>{{"-", read_input()}}
                                                   : import::read_opensnitch_rules(a.file), o);
  }
  const std::string input = read_input();
  for (const auto& m : a.map_app) {
    const auto eq = m.find('=');
    if (eq == std::string::npos) throw import::ImportError(0, "--map-app " + m + ": expected WINDOWS_PREFIX=LINUX_PREFIX");
    o.map_app.emplace_back(m.substr(0, eq), m.substr(eq + 1));
  }
  if (!a.verify.pcap.empty()) text = input;
  return a.format == "nft" ? import::import_nft(input, o)
         : a.format == "wfp" ? import::import_wfp(input, o)
                             : import::import_iptables(input, o);
}

json import_report(const import::ImportResult& r) {
  json report = {{"rules", r.rules}, {"filters", r.filters}, {"unmapped", json::array()}};
  for (const auto& u : r.unmapped) report["unmapped"].push_back({{"line", u.line}, {"rule", u.text}, {"reason", u.reason}});
  if (!r.needs.empty()) report["needs"] = r.needs;
  if (!r.coverage.empty()) report["coverage"] = json::array();
  for (const auto& c : r.coverage) report["coverage"].push_back({{"line", c.line}, {"rule", c.text}, {"filters", c.filters}, {"notes", c.notes}});
  return report;
}

// The report as a person reads it, on standard error (the policy may be on standard output).
void print_import_report(const ImportArgs& a, const import::ImportResult& r) {
  std::cerr << "lfp import: " << r.rules << " rules -> " << r.filters << " filters";
  if (!r.coverage.empty()) {  // every rule, with its own line: the filters it became, or why none
    std::cerr << "; " << r.unmapped.size() << " not imported or imported with a caveat; every rule:\n";
    for (const auto& c : r.coverage) {
      std::cerr << "  " << a.file << ":" << c.line << ": ";
      for (size_t i = 0; i < c.filters.size(); ++i) std::cerr << (i ? ", " : "-> ") << '"' << c.filters[i] << '"';
      for (size_t i = 0; i < c.notes.size(); ++i) std::cerr << (i || !c.filters.empty() ? "; " : "") << c.notes[i];
      std::cerr << "\n      " << c.text << '\n';
    }
    for (const auto& n : r.needs) std::cerr << "lfp import: the policy needs " << n << '\n';
    return;
  }
  std::cerr << (r.unmapped.empty() ? "\n" : "; not imported or implied:\n");
  for (const auto& u : r.unmapped) {
    if (a.format == "opensnitch") std::cerr << "  " << u.text << ": " << u.reason << '\n';  // the text is the rule's file
    else std::cerr << "  " << a.file << ":" << u.line << ": " << u.reason << "\n      " << u.text << '\n';
  }
}

int run_import(const ImportArgs& a, const Globals& g, const CLI::App& verb) {
  if (!a.verify.pcap.empty() && !verify_supported(a.format)) {
    std::cerr << "lfp import: --verify runs the original rules in the kernel, and " << a.format
              << " rules cannot be run on Linux (--verify takes iptables and nft)\n";
    return kBadInput;
  }
  import::ImportResult r;
  std::string text;  // what was imported, for --verify
  try {
    r = import_rules(a, text);
  } catch (const import::FileImportError& e) {  // one file of a directory
    std::cerr << "lfp import: " << e.file() << ":" << e.what() << '\n';
    return kBadInput;
  } catch (const import::ImportError& e) {
    std::cerr << "lfp import: " << a.file << ":" << e.what() << '\n';
    return kBadInput;
  }
  if (!a.output.empty()) {
    std::ofstream f(a.output);
    f << r.policy.dump(2) << '\n';
    if (!f) throw std::runtime_error(a.output + ": cannot write");
  } else if (!a.apply && !g.as_json && a.verify.pcap.empty()) {
    std::cout << r.policy.dump(2) << '\n';
  }
  json report = import_report(r);
  int rc = kOk;
  if (!a.verify.pcap.empty()) {  // before --apply: a policy that decides differently is not applied
    try {
      report["verify"] = verify_import(a.format, text, r.policy, a.verify);
    } catch (const VerifyUnavailable& e) {
      std::cerr << "lfp import: " << e.what() << '\n';
      return kBadInput;
    }
    if (report["verify"].value("different", 0) > 0) rc = 1;
    if (!g.as_json) print_verify_report(report["verify"], std::cout);
  }
  if (a.apply && rc != kOk) {
    std::cerr << "lfp import: not applied: the imported policy decides some packets differently\n";
  } else if (a.apply) {
    client::Client c(g.socket, session_options(g, verb));
    report["applied"] = c.apply(r.policy);
    print_warnings(report["applied"]);
  }
  if (g.as_json) {
    if (a.output.empty() && !a.apply) report["policy"] = r.policy;
    std::cout << report.dump(2) << '\n';
  } else {
    print_import_report(a, r);
  }
  return rc;
}

}  // namespace

void add_import_verb(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<ImportArgs>();
  auto* imp = app.add_subcommand("import", "Turn an existing rule set into an LFP policy file (docs/porting.md)");
  imp->add_option("format", a->format,
                  "iptables (iptables-save or ip6tables-save output) | nft (nft -j list ruleset) | "
                  "opensnitch (a rule file or a rules directory) | wfp (netsh wfp show state / show filters XML)")
      ->required()->check(CLI::IsMember({"iptables", "nft", "opensnitch", "wfp"}));
  imp->add_option("file", a->file, "The rule set (- for standard input; opensnitch: a file or a directory of *.json)")->required();
  imp->add_option("--default-action", a->default_action, "opensnitch: the daemon's DefaultAction, a last filter (allow, deny, none)")
      ->check(CLI::IsMember({"allow", "deny", "none"}));
  imp->add_option("--map-app", a->map_app,
                  "wfp: WINDOWS_PREFIX=LINUX_PREFIX rewrites app ids (\\device\\harddiskvolume3\\=/mnt/c/); repeatable");
  imp->add_option("-o,--output", a->output, "Write the policy here (default: standard output)");
  imp->add_option("--provider", a->provider, "Provider GUID for the filters (default: a new provider)");
  imp->add_option("--sublayer", a->sublayer, "Sublayer GUID for the filters (default: a new sublayer)");
  imp->add_flag("--apply", a->apply, "Apply the policy to lfpd in one transaction");
  imp->add_flag("--json", g.as_json, "The report as JSON");
  auto* verify_opt = imp->add_option("--verify", a->verify.pcap,
                  "iptables, nft: replay this capture through the original rules (in throwaway namespaces) and the "
                  "imported policy; report every packet decided differently (exit 1)");
  imp->add_option("--local", a->verify.locals, "--verify: an address of the host (repeatable; default: the first IP packet's source)")
      ->needs(verify_opt);
  verbs[imp] = [&g, imp, a] { return run_import(*a, g, *imp); };
}

}  // namespace lfp::cli
