// SPDX-License-Identifier: MIT
#pragma once
// The page's files (web/static/), embedded by web/embed.cmake at build time.
#include <string_view>
#include <vector>

namespace lfp::web {

struct StaticFile {
  std::string_view path;  // "/index.html"
  std::string_view body;
};

extern const std::vector<StaticFile> kStaticFiles;

}  // namespace lfp::web
