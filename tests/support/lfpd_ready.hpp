// SPDX-License-Identifier: MIT
#pragma once
// Waiting for a freshly started lfpd: shared by the tests' Daemon and the benches that start their own.
#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "lfp/client/client.hpp"

namespace lfp::test {

// Returns once lfpd (`pid`) serves `socket` (a session opens). Throws, with `log()` appended, when it
// exits first (then pid becomes -1) or `seconds` pass: loading the BPF programs takes seconds on a
// busy machine.
template <class Log>
void wait_until_serving(const std::string& socket, pid_t& pid, double seconds, Log log) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    try {
      client::Client probe(socket);
      return;
    } catch (const client::ClientError&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      throw std::runtime_error("lfpd exited at start" + log());
    }
  }
  throw std::runtime_error("lfpd did not start within " + std::to_string(static_cast<int>(seconds)) + " s" + log());
}

}  // namespace lfp::test
