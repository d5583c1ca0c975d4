// SPDX-License-Identifier: MIT
#pragma once
// lfp classify, validate and layers: the engine's decisions and its catalogue, on a policy file
// offline or (classify --daemon) from lfpd (docs/cli.md).
#include "verbs.hpp"

namespace lfp::cli {

void add_classify_verbs(CLI::App& app, Globals& g, Verbs& verbs);

}  // namespace lfp::cli
