// SPDX-License-Identifier: MIT
#pragma once
// Answering a connection held by a PROMPT_CALLOUT filter, as `lfp prompt` and lfp-web do it.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "lfp/client/client.hpp"

namespace lfp::client {

enum class PromptScope { ONCE, SESSION, FOREVER };

// Answers pending connection `id` with PERMIT or BLOCK. For SESSION and FOREVER, first a filter for
// the same app, remote address, port and protocol, in the prompt filter's sublayer just above it
// (PERSISTENT for FOREVER; added in c's session, so a SESSION answer ends with it), then the
// completion, whose re-classify sees that filter. `by` ends the filter's name ("lfp prompt").
// Returns {id, action, scope[, filter]}; ClientError NOT_FOUND when no such connection waits.
nlohmann::json answer_prompt(Client& c, uint64_t id, bool permit, PromptScope scope, const std::string& by);

}  // namespace lfp::client
