// SPDX-License-Identifier: MIT
#pragma once
// What lfp's verbs share (docs/cli.md): the exit codes, lfp's own options, the table of verbs that
// main runs, and the helpers for files and for lfpd. Each verb group (classify_cmd, show_cmd,
// change_cmd, import_cmd, netevents_cmd, prompt_cmd, replay_cmd) adds its subcommands and their runs.
#include <CLI/CLI.hpp>

#include <csignal>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "lfp/client/client.hpp"
#include "lfp/engine/engine.hpp"

namespace lfp::cli {

// Exit codes (docs/cli.md).
inline constexpr int kOk = 0;
inline constexpr int kUsage = 1;         // bad arguments
inline constexpr int kBadInput = 2;      // unreadable or invalid policy / request
inline constexpr int kExpectFailed = 3;  // a request's "expect" was not met
inline constexpr int kDaemon = 4;        // lfpd refused the request (the message names WFP's error code)
inline constexpr int kNotRunning = 5;    // lfpd is not running

// lfp's own options, before the verb.
struct Globals {
  std::string socket;
  bool as_json = false;  // (each verb's --json sets it too)
  double timeout_s = 120;  // (a million-filter apply commits in seconds; a stuck lfpd must not hang lfp)
};

// Each verb's run by its subcommand: the exit code. What it throws, main words (one message, one
// exit code for each kind of error).
using Verbs = std::map<const CLI::App*, std::function<int()>>;

// A session with lfpd for `verb` (a subcommand of lfp's app), named "lfp VERB".
client::SessionOptions session_options(const Globals& g, const CLI::App& verb, bool dynamic = false);
// A verb that talks to lfpd: `run` with a session of its own.
void add_daemon_verb(Verbs& verbs, const Globals& g, const CLI::App* verb, std::function<int(client::Client&)> run);

// A file's bytes (a policy, a rule set). Throws std::runtime_error naming the file.
std::string read_file(const std::string& path);
// JSON that lfp sends lfpd (an object, a policy), by the wire's rule: a repeated member is an error
// naming its path, as lfp validate and lfpd say, never "the last wins". Throws std::invalid_argument.
nlohmann::json request_json(const std::string& text);
// Loads and applies a policy file into a fresh engine; errors name the file and JSON path.
void load_policy(FilterEngine& engine, const std::string& path);

// Objects of a kind matching `tmpl`, from the `offset`-th on, at most `limit` (0: all), and how many
// match in all.
client::Client::Listing list_objects(client::Client& c, const std::string& kind,
                                     const nlohmann::json& tmpl = nlohmann::json::object(), size_t offset = 0,
                                     size_t limit = 0);
// An add or apply lfpd accepted with warnings (filters at layers nothing enforces there): each on
// standard error; the exit code stays 0.
void print_warnings(const nlohmann::json& reply);

// Set once SIGINT or SIGTERM comes, from the first call on (a verb that runs until interrupted).
volatile std::sig_atomic_t& stop_on_signal();

}  // namespace lfp::cli
