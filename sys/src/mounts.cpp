// SPDX-License-Identifier: MIT
#include "lfp/sys/mounts.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lfp::sys {
namespace {

bool is_octal(char c) { return c >= '0' && c <= '7'; }

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && is_octal(s[i + 1]) && is_octal(s[i + 2]) && is_octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool fs_is(const std::string& path, long magic) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == magic;
}

// True when a mount at `later` hides what was mounted at `earlier`: the same point, or one above it.
bool hides(const std::string& later, const std::string& earlier) {
  return later == earlier || later == "/" || earlier.rfind(later + "/", 0) == 0;
}

}  // namespace

std::vector<Mount> mounts(const std::string& mountinfo) {
  std::ifstream in(mountinfo);
  if (!in) throw std::runtime_error("cannot read " + mountinfo + ": " + std::strerror(errno));
  std::vector<Mount> out;
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    std::istringstream f(line);
    std::string id, parent, dev, root, target, word;
    if (!(f >> id >> parent >> dev >> root >> target)) continue;
    while (f >> word && word != "-") {}
    Mount m;
    m.target = unescape(target);
    if (!(f >> m.fstype)) continue;
    f >> m.source;
    m.source = unescape(m.source);
    out.push_back(std::move(m));
  }
  return out;
}

std::string cgroup2_mount(const std::string& mountinfo) {
  const auto all = mounts(mountinfo);
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].fstype != "cgroup2") continue;
    bool hidden = false;
    for (size_t j = i + 1; j < all.size() && !hidden; ++j) hidden = hides(all[j].target, all[i].target);
    if (!hidden) return all[i].target;
  }
  return "";
}

bool on_bpffs(const std::string& path) { return fs_is(path, BPF_FS_MAGIC); }

void ensure_bpffs(const std::string& pin_dir) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(pin_dir).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "a/b/" -> "a/b"
  std::error_code ec;
  if (fs::is_directory(dir, ec) && on_bpffs(dir)) return;
  const fs::path parent = dir.parent_path();
  if (!on_bpffs(parent)) {
    if (parent != "/sys/fs/bpf")
      throw std::runtime_error("--bpf-pin " + pin_dir + ": " + parent.string() + " is not a bpffs (mount -t bpf bpf " +
                               parent.string() + ", or pin under /sys/fs/bpf)");
    fs::create_directories(parent, ec);
    if (::mount("bpf", parent.c_str(), "bpf", 0, "mode=0700") != 0)
      throw std::runtime_error("no bpffs at /sys/fs/bpf, and mounting one failed: " + std::string(std::strerror(errno)));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir.string() + ": " + std::strerror(errno));
}

}  // namespace lfp::sys
