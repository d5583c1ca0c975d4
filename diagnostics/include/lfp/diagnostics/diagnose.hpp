// SPDX-License-Identifier: MIT
#pragma once
// The Filtering Platform helper class (WFP's FPHC): given a hypothesis (time, and optionally
// provider, protocol, local and remote address, user, app), the most recent matching drop in the
// net event log is the cause: `confirmed`, with the filter, its provider and repairs. No match and a
// log that covers the time: `healthy`. No match and a log that does not: `indeterminate`.
// Also names causes outside LFP (foreign.hpp) and hands the case to the provider's helper (helper.hpp).
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lfp/engine/engine.hpp"
#include "lfp/netevents/log.hpp"

namespace lfp::diagnostics {

struct Endpoint {
  std::string address;  // empty: any
  int port = -1;        // -1: any
};

struct Hypothesis {
  int64_t time_ns = 0;
  int64_t window_ns = int64_t{60} * 1'000'000'000;  // events within time ± window (up to now)
  std::optional<Guid> provider;
  std::optional<int> protocol;
  Endpoint local, remote;
  std::optional<uint32_t> uid;
  std::optional<std::string> app;
};

// {"time": ISO 8601 | "now", "window_s": N, "provider": GUID, "protocol": 6 | "tcp",
//  "local": "ADDR[:PORT]" ("[V6]:PORT"), "remote": ..., "user": UID, "app": PATH}; time is required.
// Throws netevents::EventError naming the member.
Hypothesis parse_hypothesis(const nlohmann::json& j, int64_t now_ns);
nlohmann::json to_json(const Hypothesis& h);  // the attributes as a helper receives them
Endpoint parse_endpoint(const std::string& text, const std::string& member);

enum class Verdict { CONFIRMED, HEALTHY, INDETERMINATE };
std::string_view to_string(Verdict v);

// The diagnosis as a document (docs/diagnose.md): "verdict", "hypothesis", "window", and for
// confirmed "event", "filter", "provider", "involved", "repairs"; for the others "reason" and
// "coverage". `now_ns` bounds the window (the log cannot cover the future).
nlohmann::json diagnose(netevents::EventLog& log, const FilterEngine& engine, const Hypothesis& h, int64_t now_ns);

}  // namespace lfp::diagnostics
