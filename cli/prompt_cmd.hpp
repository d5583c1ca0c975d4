// SPDX-License-Identifier: MIT
#pragma once
// lfp prompt: the connections a prompt callout (or a plugin) holds pending, and their answers: allow or
// deny, once, for lfpd's run (a filter that goes when lfpd stops) or forever (a persistent filter).
// lfp show flows: the flows the data layers inspect (docs/callouts.md).
#include <CLI/CLI.hpp>

#include <csignal>
#include <string>

#include "lfp/client/client.hpp"
#include "verbs.hpp"

namespace lfp::cli {

// lfp prompt: list, answer, or (no verb) print each new pending connection and read answers ("ID
// allow|deny [once|session|forever]") from standard input until it ends or lfp is interrupted.
void add_prompt_verb(CLI::App& app, Globals& g, Verbs& verbs);
// lfp show flows: the flows the data layers inspect, and their counters.
int show_flows(client::Client& c, size_t offset, size_t limit, bool as_json);
// lfp show packet-queue: what lfpd's packet queue (--packet-queue) decides, and its counters.
int show_packet_queue(client::Client& c, bool as_json);

}  // namespace lfp::cli
