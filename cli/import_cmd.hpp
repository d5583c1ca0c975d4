// SPDX-License-Identifier: MIT
#pragma once
// lfp import: an existing rule set (iptables, nft, OpenSnitch, WFP) turned into an LFP policy file,
// checked against a capture (--verify) and applied (--apply) (docs/porting.md).
#include "verbs.hpp"

namespace lfp::cli {

void add_import_verb(CLI::App& app, Globals& g, Verbs& verbs);

}  // namespace lfp::cli
