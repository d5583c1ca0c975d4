// SPDX-License-Identifier: MIT
#pragma once
// What the benches' command lines share.
#include <sstream>
#include <string>
#include <vector>

namespace lfp::bench {

// "a,b,c" as {"a", "b", "c"} (empty items left out): an option's list of sizes, orders, configurations.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

}  // namespace lfp::bench
