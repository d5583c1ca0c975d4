// SPDX-License-Identifier: MIT
#pragma once
// lfp add, delete, apply and export: lfpd's policy changed one object or one file at a time, and
// written back as a policy file (docs/cli.md).
#include "verbs.hpp"

namespace lfp::cli {

void add_change_verbs(CLI::App& app, Globals& g, Verbs& verbs);

}  // namespace lfp::cli
