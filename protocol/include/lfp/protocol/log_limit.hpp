// SPDX-License-Identifier: MIT
#pragma once
// A rate limit for log lines that clients can cause one each (every blocked connect is a net event
// line): at most `per_second` a second; the rest are counted, and the count is handed back once, when
// the next second's first line comes, for a "N lines suppressed" summary.
#include <chrono>
#include <cstdint>

namespace lfp::protocol {

class LineLimit {
 public:
  explicit LineLimit(uint32_t per_second) : per_second_(per_second) {}
  // Whether a line may be written now. `suppressed` gets how many were held back in the second that
  // just ended (0: none, or it has not ended).
  bool admit(uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    suppressed = 0;
    if (now - window_ >= std::chrono::seconds(1)) {
      suppressed = held_;
      window_ = now;
      lines_ = 0;
      held_ = 0;
    }
    if (lines_ < per_second_) {
      ++lines_;
      return true;
    }
    ++held_;
    return false;
  }
  uint32_t per_second() const { return per_second_; }

 private:
  uint32_t per_second_;
  std::chrono::steady_clock::time_point window_{};
  uint32_t lines_ = 0;
  uint64_t held_ = 0;
};

}  // namespace lfp::protocol
