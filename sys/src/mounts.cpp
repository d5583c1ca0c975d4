#include "lfp/sys/mounts.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lfp::sys {
namespace {

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
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
    out.push_back(std::move(m));
  }
  return out;
}

std::string cgroup2_mount(const std::string& mountinfo) {
  for (const auto& m : mounts(mountinfo))
    if (m.fstype == "cgroup2" && fs_is(m.target, CGROUP2_SUPER_MAGIC)) return m.target;
  return "";
}

bool on_bpffs(const std::string& path) { return fs_is(path, BPF_FS_MAGIC); }

void ensure_bpffs(const std::string& pin_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(pin_dir);
  const fs::path parent = dir.parent_path();
  std::error_code ec;
  if (!on_bpffs(parent.string())) {
    if (parent != "/sys/fs/bpf")
      throw std::runtime_error("--bpf-pin " + pin_dir + ": " + parent.string() +
                               " is not a bpffs (mount -t bpf bpf " + parent.string() + ", or pin under /sys/fs/bpf)");
    fs::create_directories(parent, ec);
    if (::mount("bpf", parent.c_str(), "bpf", 0, "mode=0700") != 0)
      throw std::runtime_error("no bpffs at /sys/fs/bpf and mounting one failed: " + std::string(std::strerror(errno)));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + pin_dir + ": " + std::strerror(errno));
}

}  // namespace lfp::sys
