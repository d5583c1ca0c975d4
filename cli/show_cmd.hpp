// SPDX-License-Identifier: MIT
#pragma once
// lfp show, status and monitor: what lfpd holds and how it is doing, and its changes as they commit
// (docs/cli.md).
#include "verbs.hpp"

namespace lfp::cli {

void add_show_verb(CLI::App& app, Globals& g, Verbs& verbs);
void add_status_verb(CLI::App& app, Globals& g, Verbs& verbs);
void add_monitor_verb(CLI::App& app, Globals& g, Verbs& verbs);

}  // namespace lfp::cli
