// SPDX-License-Identifier: MIT
// lfp::sys: the host's mounts from /proc/self/mountinfo. Sample tables of each layout, written to a temp
// dir, then this host's own table, and bpffs pin directories in a sandbox's private bpffs.
#include "lfp/sys/mounts.hpp"

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "sandbox.hpp"

namespace lfp::sys {
namespace {

namespace fs = std::filesystem;

// A mountinfo file with these lines, in a temp dir removed when the test ends.
class SysMounts : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string table(const std::string& lines) {
    if (dir_.empty()) {
      std::string tmpl = fs::temp_directory_path() / "lfp-mounts-XXXXXX";
      if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
      dir_ = tmpl;
    }
    const std::string path = dir_ + "/mountinfo-" + std::to_string(files_++);
    std::ofstream(path) << lines;
    return path;
  }

 private:
  std::string dir_;
  int files_ = 0;
};

// The head of a host's table: what comes before its cgroup mounts.
constexpr const char* kRoot =
    "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "23 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n";

// This development machine's layout (no systemd): cgroup v1 hierarchies on a tmpfs, cgroup2 beside them.
constexpr const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// Debian 12 under systemd: cgroup2 alone at /sys/fs/cgroup, bpffs at /sys/fs/bpf.
constexpr const char* kUnified =
    "26 23 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    "28 23 0:25 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:6 - bpf bpf rw,mode=700\n";

TEST_F(SysMounts, HybridLayout) {
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) + kHybrid)), "/sys/fs/cgroup/unified");
}

TEST_F(SysMounts, UnifiedLayoutAndItsBpffs) {
  const std::string path = table(std::string(kRoot) + kUnified);
  EXPECT_EQ(cgroup2_mount(path), "/sys/fs/cgroup");
  const auto all = mounts(path);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].target, "/sys/fs/bpf");
  EXPECT_EQ(all[3].fstype, "bpf");  // read past the optional field (shared:6) and the separator
  EXPECT_EQ(all[3].source, "bpf");
  EXPECT_EQ(all[0].source, "/dev/vda1");
}

TEST_F(SysMounts, EscapedPathsAreDecoded) {
  const std::string path = table(std::string(kRoot) +
                                 "50 22 0:40 / /mnt/my\\040cgroups\\011v2\\134x rw - cgroup2 none\\040here rw\n"
                                 "51 22 0:41 / /mnt/odd\\04x rw - tmpfs tmpfs rw\n");
  EXPECT_EQ(cgroup2_mount(path), "/mnt/my cgroups\tv2\\x");
  const auto all = mounts(path);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].source, "none here");
  EXPECT_EQ(all[3].target, "/mnt/odd\\04x");  // not an escape: kept as written
}

TEST_F(SysMounts, AMountOverTheHybridLayoutHidesItsCgroup2) {
  // The stock-layout test on this machine: cgroup2 mounted on /sys/fs/cgroup, over the tmpfs.
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) + kHybrid +
                                "60 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 none rw\n")),
            "/sys/fs/cgroup");
  // A tmpfs over /sys/fs/cgroup: no cgroup2 left to reach.
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) + kHybrid + "61 31 0:50 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")),
            "");
  // The same point mounted again, by another file system.
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) + kHybrid +
                                "62 41 0:51 / /sys/fs/cgroup/unified rw - tmpfs tmpfs rw\n")),
            "");
  // A later mount beside it, or below it, hides nothing.
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) + kHybrid +
                                "63 31 0:52 / /sys/fs/cgroup/unified2 rw - tmpfs tmpfs rw\n"
                                "64 41 0:53 / /sys/fs/cgroup/unified/sub rw - tmpfs tmpfs rw\n")),
            "/sys/fs/cgroup/unified");
  // The first of two reachable ones.
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) + kHybrid + "65 22 0:38 / /mnt/cg rw - cgroup2 none rw\n")),
            "/sys/fs/cgroup/unified");
}

TEST_F(SysMounts, NoCgroup2AndNoTable) {
  EXPECT_EQ(cgroup2_mount(table(std::string(kRoot) +
                                "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                                "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
                                "a line that is not a mount\n")),
            "");
  try {
    mounts("/nonexistent/mountinfo");
    FAIL() << "no error for a missing table";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read /nonexistent/mountinfo: No such file or directory");
  }
}

// This host's own table, in whichever layout it runs (scripts/test.sh runs this suite in both).
TEST_F(SysMounts, ThisHostsCgroup2) {
  const std::string cgroup2 = cgroup2_mount();
  ASSERT_FALSE(cgroup2.empty()) << "no cgroup2 mount in /proc/self/mountinfo";
  struct statfs st {};
  ASSERT_EQ(statfs(cgroup2.c_str(), &st), 0) << cgroup2;
  EXPECT_EQ(static_cast<long>(st.f_type), static_cast<long>(CGROUP2_SUPER_MAGIC)) << cgroup2;
  // This process's own cgroup ("0::/PATH") is a directory under it.
  const std::string own = lfp::test::read_text("/proc/self/cgroup");
  const auto at = own.find("0::");
  ASSERT_NE(at, std::string::npos) << own;
  const std::string path = own.substr(at + 3, own.find('\n', at) - at - 3);
  EXPECT_TRUE(fs::is_directory(cgroup2 + path)) << cgroup2 + path;
}

TEST_F(SysMounts, PinDirectoriesOnABpffs) {
  LFP_REQUIRE_SANDBOX();
  lfp::test::Sandbox sb;
  const std::string bpffs = sb.mount_bpffs();
  EXPECT_FALSE(on_bpffs(sb.tmpdir()));
  EXPECT_TRUE(on_bpffs(bpffs));
  ensure_bpffs(bpffs);  // the mount point itself
  ensure_bpffs(bpffs + "/lfp/");
  EXPECT_TRUE(fs::is_directory(bpffs + "/lfp"));
  ensure_bpffs(bpffs + "/lfp");  // again: nothing to do
  try {
    ensure_bpffs(sb.tmpdir() + "/plain");
    FAIL() << "no error for a pin directory off any bpffs";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "--bpf-pin " + sb.tmpdir() + "/plain: " + sb.tmpdir() +
                                         " is not a bpffs (mount -t bpf bpf " + sb.tmpdir() + ", or pin under /sys/fs/bpf)");
  }
  EXPECT_FALSE(fs::exists(sb.tmpdir() + "/plain"));
}

}  // namespace
}  // namespace lfp::sys
