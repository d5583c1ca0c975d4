// SPDX-License-Identifier: MIT
#include "change_cmd.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include "lfp/policy/json_doc.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::cli {

using nlohmann::json;

namespace {

const std::vector<std::string> kKinds = {"filter", "provider", "sublayer", "callout", "provider_context"};

struct AddArgs {
  std::string kind, object;
};

void add_add(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<AddArgs>();
  auto* add = app.add_subcommand("add", "Add one object (JSON in the policy format) to lfpd");
  add->add_option("kind", a->kind, "filter | provider | sublayer | callout | provider_context")
      ->required()->check(CLI::IsMember(kKinds));
  add->add_option("object", a->object, "The object as JSON, or @FILE")->required();
  add->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, add, [&g, a](client::Client& c) {
    std::string text = a->object.rfind('@', 0) == 0 ? read_file(a->object.substr(1)) : a->object;
    json obj;
    try {
      obj = request_json(text);
    } catch (const std::exception& e) {
      std::cerr << "lfp add: the object is not valid JSON: " << e.what() << '\n';
      return kBadInput;
    }
    json r = c.add(a->kind, obj);
    print_warnings(r);
    if (g.as_json) std::cout << r.dump() << '\n';
    else std::cout << "added " << a->kind << ' ' << r.value("key", "") << (r.contains("id") ? " id " + r["id"].dump() : "") << '\n';
    return kOk;
  });
}

struct DeleteArgs {
  std::string kind, key;
  uint64_t id = 0;
  bool force = false;
};

void add_delete(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<DeleteArgs>();
  auto* del = app.add_subcommand("delete", "Delete one object from lfpd");
  del->add_option("kind", a->kind, "filter | provider | sublayer | callout | provider_context")
      ->required()->check(CLI::IsMember(kKinds));
  auto* key_opt = del->add_option("key", a->key, "The object's key (GUID)");
  auto* id_opt = del->add_option("--id", a->id, "A filter's run-time id");
  key_opt->excludes(id_opt);
  del->add_flag("--force", a->force, "Admin: delete another provider's object");
  del->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, del, [&g, id_opt, a](client::Client& c) {
    if (a->key.empty() && *id_opt) c.remove_filter(a->id);
    else if (!a->key.empty()) c.remove(a->kind, a->key, a->force);
    else {
      std::cerr << "lfp delete: give the object's KEY (or --id for a filter)\n";
      return kUsage;
    }
    if (g.as_json) std::cout << json{{"deleted", true}}.dump() << '\n';
    else std::cout << "deleted\n";
    return kOk;
  });
}

struct ApplyArgs {
  std::string path;
  bool dynamic = false;
};

int run_apply(client::Client& c, const ApplyArgs& a, bool as_json) {
  // The file's objects go to lfpd as the file has them (no nlohmann copy: a million filters),
  // each piece as soon as it is parsed.
  std::string text = read_file(a.path);
  json r;
  try {
    r = c.apply_text(std::move(text));
  } catch (const policy::JsonParseError& e) {
    std::cerr << "lfp apply: " << a.path << ": not valid JSON: " << e.what() << '\n';
    return kBadInput;
  }
  print_warnings(r);
  if (as_json) std::cout << r.dump() << '\n';
  else std::cout << "applied " << a.path << ": " << r["added"].size() << " objects" << '\n';
  std::cout.flush();
  // Done: freeing a million objects one by one would take seconds the exit does at once.
  if (!a.dynamic) std::_Exit(kOk);
  // Hold the dynamic session: the policy lives until this command is interrupted.
  volatile std::sig_atomic_t& stop = stop_on_signal();
  if (!as_json) std::cerr << "holding the dynamic policy; interrupt (Ctrl-C) to remove it\n";
  while (!stop) ::pause();
  return kOk;
}

void add_apply(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<ApplyArgs>();
  auto* apply = app.add_subcommand("apply", "Add a policy file's objects to lfpd in one transaction");
  apply->add_option("policy", a->path, "Policy file (JSON)")->required()->check(CLI::ExistingFile);
  apply->add_flag("--dynamic", a->dynamic, "Dynamic session: hold the policy until interrupted, then it is removed");
  apply->add_flag("--json", g.as_json, "JSON output");
  verbs[apply] = [&g, apply, a] {
    client::Client c(g.socket, session_options(g, *apply, a->dynamic));
    return run_apply(c, *a, g.as_json);
  };
}

// The whole policy a daemon holds, as a policy file (round-trips with `lfp apply`).
json export_from(client::Client& c, bool include_builtin) {
  c.begin(true);  // one consistent read
  json state = json::object();
  for (const char* kind : {"provider", "sublayer", "callout", "provider_context"})
    state[std::string(kind) + "s"] = list_objects(c, kind).items;
  const std::vector<json> filters = list_objects(c, "filter").items;
  c.commit();
  json out = {{"version", policy::kFormatVersion}};
  auto strip = [](json o) {
    o.erase("owner");
    return o;
  };
  for (const char* kind : {"providers", "sublayers", "callouts", "provider_contexts"}) {
    json arr = json::array();
    for (auto& o : state[kind]) {
      if (!include_builtin && std::string(kind) == "sublayers" &&
          (o["key"] == builtin::SUBLAYER_UNIVERSAL.str() || o["key"] == builtin::SUBLAYER_INSPECTION.str()))
        continue;
      arr.push_back(strip(o));
    }
    out[kind] = arr;
  }
  json farr = json::array();
  for (auto& f : filters) farr.push_back(strip(f));
  out["filters"] = farr;
  return out;
}

void add_export(CLI::App& app, Globals& g, Verbs& verbs) {
  auto path = std::make_shared<std::string>();
  auto* exp = app.add_subcommand("export", "Write lfpd's policy as a policy file (round-trips with apply)");
  exp->add_option("-o,--output", *path, "File to write (default: standard output)");
  add_daemon_verb(verbs, g, exp, [&g, path](client::Client& c) {
    json out = export_from(c, false);
    if (path->empty()) {
      std::cout << out.dump(2) << '\n';
      return kOk;
    }
    std::ofstream f(*path);
    f << out.dump(2) << '\n';
    if (!f) throw std::runtime_error(*path + ": cannot write");
    return kOk;
  });
}

}  // namespace

void add_change_verbs(CLI::App& app, Globals& g, Verbs& verbs) {
  add_add(app, g, verbs);
  add_delete(app, g, verbs);
  add_apply(app, g, verbs);
  add_export(app, g, verbs);
}

}  // namespace lfp::cli
