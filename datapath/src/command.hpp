#pragma once
// Runs a program (no shell, its output to /dev/null) and returns its exit code, -1 if it could not
// run: the data path's iptables calls.
#include <string>
#include <vector>

namespace lfp::datapath {
int run_command(const std::vector<std::string>& argv);
}
