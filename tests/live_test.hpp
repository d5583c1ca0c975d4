// SPDX-License-Identifier: MIT
#pragma once
// The base fixture of the live tests (their suites are labelled `live` in tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <memory>

#include "live_support.hpp"
#include "sandbox.hpp"

namespace lfp::test {

// The base of the live fixtures: each test gets a fresh Sandbox (sb_), or is skipped with the reason
// when none can be made here (failed instead under LFP_REQUIRE_LIVE=1). A fixture's own set-up goes in
// SetUpLive, which runs once the sandbox is there.
class LiveTest : public ::testing::Test {
 protected:
  void SetUp() final {
    LFP_REQUIRE_SANDBOX();
    sb_ = std::make_unique<Sandbox>();
    SetUpLive();
  }
  virtual void SetUpLive() {}

  std::unique_ptr<Sandbox> sb_;
};

}  // namespace lfp::test
