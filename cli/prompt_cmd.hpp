#pragma once
// lfp prompt: the connections a prompt callout (or a plugin) holds pending, and their answers: allow or
// deny, once, for lfpd's run (a filter that goes when lfpd stops) or forever (a persistent filter).
// lfp show flows: the flows the data layers inspect (docs/callouts.md).
#include <CLI/CLI.hpp>

#include <csignal>
#include <string>

#include "lfp/client/client.hpp"

namespace lfp::cli {

struct PromptArgs {
  CLI::App* list = nullptr;
  CLI::App* answer = nullptr;
  uint64_t id = 0;
  std::string action, scope = "once";
  size_t offset = 0, limit = 0;  // list: a page (0: all)
};
CLI::App* add_prompt_command(CLI::App& app, PromptArgs& a);
// Without a verb: prints each new pending connection and reads answers ("ID allow|deny [once|session|
// forever]") from standard input until it ends or `stop` is set.
int run_prompt(client::Client& c, const PromptArgs& a, bool as_json, volatile std::sig_atomic_t& stop);
int show_flows(client::Client& c, size_t offset, size_t limit, bool as_json);
// lfp show packet-queue: what lfpd's packet queue (--packet-queue) decides, and its counters.
int show_packet_queue(client::Client& c, bool as_json);

}  // namespace lfp::cli
