// SPDX-License-Identifier: MIT
// lfp: the command line. Offline verbs work on a policy file; daemon verbs come with lfpd. main only
// builds the app from each verb group and runs the verb given (its errors worded here, once).
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "change_cmd.hpp"
#include "classify_cmd.hpp"
#include "import_cmd.hpp"
#include "lfp/policy/policy.hpp"
#include "netevents_cmd.hpp"
#include "prompt_cmd.hpp"
#include "replay_cmd.hpp"
#include "show_cmd.hpp"
#include "verbs.hpp"

namespace {

using namespace lfp;
using nlohmann::json;

std::string default_socket() {
  const char* env = std::getenv("LFP_SOCKET");
  return env && *env ? env : client::kDefaultSocket;
}

// Runs the verb: its exit code, or the one its error calls for (docs/cli.md).
int run(const std::function<int()>& verb, bool as_json) {
  try {
    return verb();
  } catch (const client::ClientError& e) {
    if (as_json) std::cout << json{{"error", e.code()}, {"message", e.message()}}.dump() << '\n';
    else std::cerr << "lfp: " << e.what() << '\n';
    return e.code() == "NOT_RUNNING" ? cli::kNotRunning : cli::kDaemon;
  } catch (const policy::PolicyError& e) {
    if (as_json) std::cout << json{{"error", e.what()}, {"path", e.path()}, {"reason", e.reason()}}.dump() << '\n';
    else std::cerr << "lfp: " << e.what() << '\n';
    return cli::kBadInput;
  } catch (const std::invalid_argument& e) {
    std::cerr << "lfp: " << e.what() << '\n';
    return cli::kUsage;
  } catch (const std::exception& e) {
    if (as_json) std::cout << json{{"error", e.what()}}.dump() << '\n';
    else std::cerr << "lfp: " << e.what() << '\n';
    return cli::kBadInput;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lfp - the Linux Filtering Platform command line"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lfp 0.1.0");
  cli::Globals g{.socket = default_socket()};
  app.add_option("--socket", g.socket, "lfpd's socket (also $LFP_SOCKET)")->capture_default_str();
  app.add_flag("--json", g.as_json, "JSON output");
  app.add_option("--timeout", g.timeout_s, "Seconds to wait for lfpd to connect or answer, each time (0: no limit)")
      ->check(CLI::Range(0.0, 86400.0))->capture_default_str();
  // (In this order in lfp --help.)
  cli::Verbs verbs;
  cli::add_classify_verbs(app, g, verbs);  // classify, validate, layers
  cli::add_show_verb(app, g, verbs);
  cli::add_prompt_verb(app, g, verbs);
  cli::add_status_verb(app, g, verbs);
  cli::add_change_verbs(app, g, verbs);  // add, delete, apply, export
  cli::add_monitor_verb(app, g, verbs);
  cli::add_import_verb(app, g, verbs);
  cli::add_netevents_verbs(app, g, verbs);  // set options, capture, diagnose
  cli::add_replay_verb(app, g, verbs);
  CLI11_PARSE(app, argc, argv);
  return run(verbs.at(app.get_subcommands().front()), g.as_json);
}
