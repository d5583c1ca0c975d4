// SPDX-License-Identifier: MIT
#pragma once
// lfp's net event and diagnosis verbs: show netevents / coverage / options, monitor netevents,
// set options, capture start|stop, diagnose (docs/cli.md, docs/netevents.md, docs/diagnose.md).
#include <CLI/CLI.hpp>

#include <csignal>
#include <string>
#include <vector>

#include "lfp/client/client.hpp"
#include "verbs.hpp"

namespace lfp::cli {

// Exit codes of `lfp diagnose` (besides the common ones): healthy is 0.
inline constexpr int kConfirmed = 10;
inline constexpr int kIndeterminate = 11;

// What narrows net events: shared by show netevents, monitor netevents and diagnose.
struct EventFilterArgs {
  std::string since, until, app, remote, local, provider, protocol, user, filter, layer;
  std::vector<std::string> types;
};
void add_event_filter_options(CLI::App* cmd, EventFilterArgs& a, bool with_window);
// The enumeration template these arguments stand for. Throws std::invalid_argument on bad input.
nlohmann::json event_template(const EventFilterArgs& a);

// The matching events from the `offset`-th on, at most `limit` (0: all), in pages.
int show_netevents(client::Client& c, const EventFilterArgs& a, size_t offset, size_t limit, bool newest, bool as_json);
int show_coverage(client::Client& c, bool as_json);
int show_options(client::Client& c, bool as_json);
int monitor_netevents(client::Client& c, const EventFilterArgs& a, bool as_json, volatile std::sig_atomic_t& stop);

// lfp set options, capture and diagnose.
void add_netevents_verbs(CLI::App& app, Globals& g, Verbs& verbs);

}  // namespace lfp::cli
