// SPDX-License-Identifier: MIT
#include "classify_cmd.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "lfp/policy/policy.hpp"

namespace lfp::cli {

using nlohmann::json;

namespace {

struct ClassifyArgs {
  std::string policy_path, layer_name, requests_path;
  std::vector<std::string> sets;
  bool explain = false, use_daemon = false;
};

int classify_requests(const FilterEngine& engine, const std::string& path, bool explain) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::string line;
  int lineno = 0, rc = kOk;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json out;
    try {
      json j = json::parse(line);
      policy::Request req;
      policy::parse_request(j, req);
      out = policy::result_to_json(engine, engine.classify(req.layer, req.values, explain));
      if (j.is_object() && j.contains("expect")) {
        bool ok = j["expect"] == out["action"];
        out["expect_ok"] = ok;
        if (!ok && rc == kOk) rc = kExpectFailed;
      }
    } catch (const json::exception& e) {
      out = {{"error", std::string("invalid JSON: ") + e.what()}};
      rc = kBadInput;
    } catch (const policy::PolicyError& e) {
      out = {{"error", e.what()}};
      rc = kBadInput;
    }
    out["line"] = lineno;
    std::cout << out.dump() << '\n';
  }
  return rc;
}

// lfp classify --policy FILE: one request of --set values, or a file of them.
int classify_offline(const ClassifyArgs& a, bool as_json) {
  if (a.policy_path.empty()) {
    std::cerr << "lfp classify: give --policy FILE, or --daemon to ask lfpd\n";
    return kUsage;
  }
  FilterEngine engine;
  load_policy(engine, a.policy_path);
  if (!a.requests_path.empty()) return classify_requests(engine, a.requests_path, a.explain);
  if (a.layer_name.empty()) {
    std::cerr << "lfp classify: give --layer LAYER with --set FIELD=VALUE..., or --requests FILE\n";
    return kUsage;
  }
  policy::Request req;
  auto layer = layer_from_string(a.layer_name);
  if (!layer) {
    std::cerr << "lfp classify: unknown layer '" << a.layer_name << "' (see `lfp layers`)\n";
    return kUsage;
  }
  req.layer = *layer;
  for (const auto& s : a.sets) {
    auto eqpos = s.find('=');
    if (eqpos == std::string::npos) {
      std::cerr << "lfp classify: --set takes FIELD=VALUE, got '" << s << "'\n";
      return kUsage;
    }
    auto field = field_from_string(s.substr(0, eqpos));
    if (!field) {
      std::cerr << "lfp classify: unknown field '" << s.substr(0, eqpos) << "' (see `lfp layers`)\n";
      return kUsage;
    }
    req.set_text(*field, s.substr(eqpos + 1));
  }
  auto result = engine.classify(req.layer, req.values, a.explain);
  if (as_json) std::cout << policy::result_to_json(engine, result).dump(2) << '\n';
  else std::cout << policy::result_to_text(engine, result) << '\n';
  return kOk;
}

// A field name -> value object from --set FIELD=VALUE pairs, as JSON strings (the daemon types them).
json values_from_sets(const std::vector<std::string>& sets) {
  json v = json::object();
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--set takes FIELD=VALUE, got '" + s + "'");
    v[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return v;
}

// lfp classify --daemon: lfpd decides.
int classify_in_daemon(client::Client& c, const ClassifyArgs& a, bool as_json) {
  if (a.layer_name.empty()) {
    std::cerr << "lfp classify --daemon: give --layer LAYER with --set FIELD=VALUE...\n";
    return kUsage;
  }
  json r = c.call("classify", {{"layer", a.layer_name}, {"text_values", values_from_sets(a.sets)}, {"explain", a.explain}});
  if (as_json) {
    std::cout << r.dump(2) << '\n';
    return kOk;
  }
  std::cout << r.value("action", "?");
  if (r.value("hard", false)) std::cout << " (hard)";
  if (r.value("veto", false)) std::cout << " (veto)";
  if (r["filter"].is_object())
    std::cout << " by filter " << r["filter"].value("id", 0) << " \"" << r["filter"].value("name", "") << "\" "
              << r["filter"].value("key", "");
  else
    std::cout << " (no filter matched)";
  std::cout << '\n';
  if (r.contains("explain")) std::cout << r["explain"].dump(2) << '\n';
  return kOk;
}

void add_classify(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<ClassifyArgs>();
  auto* cmd = app.add_subcommand("classify", "Decide one request (or a file of them) against a policy or lfpd");
  auto* pol_opt = cmd->add_option("--policy", a->policy_path, "Policy file (JSON)")->check(CLI::ExistingFile);
  auto* dae_opt = cmd->add_flag("--daemon", a->use_daemon, "Ask the running lfpd instead of a policy file");
  pol_opt->excludes(dae_opt);
  auto* layer_opt = cmd->add_option("--layer", a->layer_name, "Layer, e.g. ALE_AUTH_CONNECT_V4");
  auto* set_opt = cmd->add_option("--set", a->sets, "FIELD=VALUE, repeatable");
  auto* req_opt = cmd->add_option("--requests", a->requests_path, "JSONL file: one request per line")
                      ->check(CLI::ExistingFile);
  cmd->add_flag("--explain", a->explain, "List every sublayer's evaluation");
  cmd->add_flag("--json", g.as_json, "JSON output");
  req_opt->excludes(layer_opt)->excludes(set_opt)->excludes(dae_opt);
  verbs[cmd] = [&g, cmd, a] {
    if (!a->use_daemon) return classify_offline(*a, g.as_json);
    client::Client c(g.socket, session_options(g, *cmd));
    return classify_in_daemon(c, *a, g.as_json);
  };
}

void add_validate(CLI::App& app, Globals& g, Verbs& verbs) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("validate", "Check a policy file (parse and apply to an empty engine)");
  cmd->add_option("policy", *path, "Policy file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--json", g.as_json, "JSON output");
  verbs[cmd] = [&g, path] {
    FilterEngine engine;
    load_policy(engine, *path);
    if (g.as_json) std::cout << json{{"valid", true}, {"filters", engine.filter_count()}}.dump() << '\n';
    else std::cout << *path << ": valid, " << engine.filter_count() << " filters\n";
    return kOk;
  };
}

json layers_json() {
  json arr = json::array();
  for (const auto& l : all_layers()) {
    json fields = json::array();
    for (auto f : l.fields)
      fields.push_back({{"field", field_name(f)}, {"type", to_string(field_type(f, l.family))},
                        {"linux_only", field_is_linux_only(f)}});
    arr.push_back({{"layer", l.name}, {"id", static_cast<int>(l.id)}, {"fields", fields}});
  }
  return arr;
}

std::string layers_markdown() {
  std::ostringstream o;
  o << "<!-- Generated by `lfp layers --markdown`; tests/cli_test checks it is current. -->\n"
    << "# Layers and fields\n\n"
    << "Every layer LFP offers, with the fields a filter may test there and each field's data type\n"
    << "(addresses are `UINT32` at `_V4` layers and `BYTE_ARRAY16_TYPE` at `_V6` layers, as in WFP).\n"
    << "Fields marked *Linux* are LFP's own (no WFP equivalent). The run-time layer id is the number\n"
    << "after the name.\n\n";
  for (const auto& l : all_layers()) {
    o << "## " << l.name << " (" << static_cast<int>(l.id) << ")\n\n| field | type |\n|---|---|\n";
    for (auto f : l.fields)
      o << "| `" << field_name(f) << "` | " << to_string(field_type(f, l.family))
        << (field_is_linux_only(f) ? " (*Linux*)" : "") << " |\n";
    o << '\n';
  }
  return o.str();
}

void add_layers(CLI::App& app, Globals& g, Verbs& verbs) {
  auto markdown = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("layers", "List the layers and the fields available at each");
  cmd->add_flag("--json", g.as_json, "JSON output");
  cmd->add_flag("--markdown", *markdown, "Markdown (docs/layers.md)");
  verbs[cmd] = [&g, markdown] {
    if (*markdown) std::cout << layers_markdown();
    else if (g.as_json) std::cout << layers_json().dump(2) << '\n';
    else
      for (const auto& l : all_layers()) {
        std::cout << l.name << ':';
        for (auto f : l.fields) std::cout << ' ' << field_name(f);
        std::cout << '\n';
      }
    return kOk;
  };
}

}  // namespace

void add_classify_verbs(CLI::App& app, Globals& g, Verbs& verbs) {
  add_classify(app, g, verbs);
  add_validate(app, g, verbs);
  add_layers(app, g, verbs);
}

}  // namespace lfp::cli
