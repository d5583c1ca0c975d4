#pragma once
// The host's own mounts, read from /proc/self/mountinfo: where cgroup v2 and bpffs are, whatever the
// layout (systemd's unified /sys/fs/cgroup, the hybrid /sys/fs/cgroup/unified, or a nested mount).
#include <string>
#include <vector>

namespace lfp::sys {

struct Mount {
  std::string target;  // the mount point, octal escapes (\040) decoded
  std::string fstype;
  std::string source;
};

// The mounts `mountinfo` lists, in its order. Throws std::runtime_error when it cannot be read.
std::vector<Mount> mounts(const std::string& mountinfo = "/proc/self/mountinfo");

// The cgroup v2 hierarchy's mount point that this process can reach (statfs says cgroup2 there: a
// mount hidden under a later one is skipped); "" when there is none.
std::string cgroup2_mount(const std::string& mountinfo = "/proc/self/mountinfo");

// True when `path` is on a bpffs.
bool on_bpffs(const std::string& path);

// Makes `pin_dir` a directory on a bpffs. When its parent is /sys/fs/bpf and no bpffs is mounted
// there, mounts one (as bpftool and systemd do); any other place must already be on a bpffs. Throws
// std::runtime_error with a one-line reason.
void ensure_bpffs(const std::string& pin_dir);

}  // namespace lfp::sys
