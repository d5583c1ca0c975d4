# SPDX-License-Identifier: MIT
# Sourced by scripts/demo.sh and web/test/run.sh. cgroup2_mount prints the cgroup v2 mount, wherever
# this host has it (/sys/fs/cgroup under systemd, /sys/fs/cgroup/unified in a hybrid layout): the first
# cgroup2 line of mountinfo that no later mount, at its point or above it, hides (as
# lfp::sys::cgroup2_mount does).
cgroup2_mount() {
  awk '
    { target[NR] = $5; split(substr($0, index($0, " - ") + 3), after, " "); fstype[NR] = after[1] }
    END {
      for (i = 1; i <= NR; i++) {
        if (fstype[i] != "cgroup2") continue
        hidden = 0
        for (j = i + 1; j <= NR; j++)
          if (target[j] == target[i] || target[j] == "/" || index(target[i], target[j] "/") == 1) hidden = 1
        if (!hidden) { t = target[i]; gsub(/\\040/, " ", t); gsub(/\\011/, "\t", t); gsub(/\\012/, "\n", t); gsub(/\\134/, "\\", t); print t; exit }
      }
    }' /proc/self/mountinfo
}
