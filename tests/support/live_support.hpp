// SPDX-License-Identifier: MIT
#pragma once
// What the live data-path tests share: "hi" servers in the sandbox, whether a client got the answer,
// and waiting for lfpd's net events (its loop drains the kernel's ring on its own time).
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "lfp/client/client.hpp"
#include "sandbox.hpp"

namespace lfp::test {

// TCP servers on `side` that answer "hi" on each port; returns once they all listen.
inline bool serve_hi(Sandbox& sb, Side side, std::initializer_list<int> ports) {
  for (int p : ports) sb.spawn("exec socat TCP-LISTEN:" + std::to_string(p) + ",fork,reuseaddr SYSTEM:'echo hi'", {.side = side});
  for (int p : ports)
    if (!sb.wait_for_port(side, static_cast<uint16_t>(p))) return false;
  return true;
}

// A filter condition, as policy files write it.
inline nlohmann::json when(const std::string& field, nlohmann::json value, const std::string& match = "EQUAL") {
  return {{"field", field}, {"match", match}, {"value", std::move(value)}};
}

// The client ran and printed the server's answer.
inline bool answered(const RunResult& r) { return r.ok() && r.out.find("hi") != std::string::npos; }

// The net events matching `conditions` (a template's), waiting up to 2 s for at least one.
inline nlohmann::json wait_for_events(client::Client& c, const nlohmann::json& conditions) {
  nlohmann::json r;
  for (int i = 0; i < 40; ++i) {
    r = c.call("netevents_enum", {{"template", {{"conditions", conditions}}}});
    if (!r["events"].empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return r["events"];
}

// Pins the calling process to one CPU (cpu < 0: leaves it alone); the benchmarks pin their loops.
inline void pin_to(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

// A policy of one filter at `layer` whose callout (the example plugin's, callouts/examples) acts on
// `how`, its provider context.
inline nlohmann::json callout_policy(const std::string& layer, const std::string& callout, const std::string& how,
                                     nlohmann::json conditions) {
  return {{"callouts", {{{"key", callout}, {"name", "example"}, {"layer", layer}}}},
          {"provider_contexts", {{{"key", "ca110000-0000-4000-8000-0000000000c7"}, {"name", how}, {"data", how}}}},
          {"filters",
           {{{"key", "ca110000-0000-4000-8000-000000000017"},
             {"name", "example " + layer + ": " + how},
             {"layer", layer},
             {"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}},
             {"flags", {"HAS_PROVIDER_CONTEXT"}},
             {"provider_context", "ca110000-0000-4000-8000-0000000000c7"},
             {"conditions", std::move(conditions)}}}}};
}

}  // namespace lfp::test
