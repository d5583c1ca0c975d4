// SPDX-License-Identifier: MIT
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

// The mounts `mountinfo` lists, in its order (the order they were made). Throws std::runtime_error
// when it cannot be read.
std::vector<Mount> mounts(const std::string& mountinfo = "/proc/self/mountinfo");

// The mount point of the first cgroup v2 mount in `mountinfo` that no later mount hides (a later mount
// at the same point or above it, as when cgroup2 is mounted on /sys/fs/cgroup over a hybrid layout);
// "" when there is none. Reads the table only: it does not look at the file system.
std::string cgroup2_mount(const std::string& mountinfo = "/proc/self/mountinfo");

// True when `path` is on a bpffs.
bool on_bpffs(const std::string& path);

// Makes `pin_dir` a directory on a bpffs: nothing to do when it already is one; else it is created in
// its parent, which must be on a bpffs, or be /sys/fs/bpf with nothing mounted there, and then one is
// mounted (as bpftool and systemd do). Throws std::runtime_error with a one-line reason.
void ensure_bpffs(const std::string& pin_dir);

}  // namespace lfp::sys
