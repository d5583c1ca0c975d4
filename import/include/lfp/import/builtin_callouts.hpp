// SPDX-License-Identifier: MIT
#pragma once
// The built-in callouts an import's filters name (the rate limit, the transport match, the log), as callout
// drivers of an engine: the code of liblfp_inspect_callouts.so (callouts/builtin's library), on the
// filters' provider contexts, but on a clock the caller sets instead of the wall clock. `lfp import
// --verify` registers them in the engine it replays a capture through and sets the clock to each
// packet's capture time, so that its verdicts are those lfpd would have given on that traffic.
#include <cstdint>
#include <memory>
#include <string>

#include "lfp/engine/engine.hpp"

namespace lfp::import {

class BuiltinCallouts {
 public:
  // Registers the drivers in `engine`, which must outlive this object's use (the drivers read its
  // provider contexts).
  explicit BuiltinCallouts(FilterEngine& engine);

  // The clocks (milliseconds) for the packets classified next: the rate limits decide on `capture_ms`,
  // the time the capture gives the packet; `replay_ms` is the time the packet is replayed at, the one
  // a kernel's own rate limit sees when the packet is replayed into it.
  void set_clocks(int64_t capture_ms, int64_t replay_ms);
  // Since set_clocks: the name of a rate-limit filter whose callout decided a packet otherwise than it
  // would have at replay time ("" if none did). A kernel that replays the capture decides such a
  // packet on a clock of its own, not as the original did when the capture was taken.
  const std::string& decided_by_time() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace lfp::import
