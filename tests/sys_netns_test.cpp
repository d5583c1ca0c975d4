// SPDX-License-Identifier: MIT
// lfp::sys::NetNamespace and NetnsScope (sys/include/lfp/sys/netns.hpp): made fresh, entered for a
// scope, and removed on destruction even when the scope throws. Live: it makes namespaces (root).
#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfp/sys/netns.hpp"
#include "lfp/sys/spawn.hpp"
#include "sandbox.hpp"

namespace {

using lfp::sys::NetNamespace;
using lfp::sys::NetnsScope;

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string test_name(const char* what) { return "lfpt-" + std::to_string(getpid()) + "-netns-" + what; }

TEST(SysNetns, MadeEnteredAndRemoved) {
  LFP_REQUIRE_SANDBOX();
  const ino_t outside = lfp::sys::current_netns();
  std::string path;
  {
    NetNamespace ns(test_name("a"));
    path = ns.path();
    EXPECT_EQ(path, "/run/netns/" + test_name("a"));
    ASSERT_TRUE(exists(path));
    EXPECT_NE(ns.inode(), outside);
    EXPECT_THROW(NetNamespace again(test_name("a")), std::runtime_error);  // the name is taken
    {
      NetnsScope in(ns);
      EXPECT_EQ(lfp::sys::current_netns(), ns.inode());
      EXPECT_NE(if_nametoindex("lo"), 0u);
      EXPECT_EQ(if_nametoindex("veth-a"), 0u);
    }
    EXPECT_EQ(lfp::sys::current_netns(), outside);
    // A program started in it sees only its loopback.
    const auto r = lfp::sys::run({"ip", "-o", "link", "show"}, {.netns = path});
    ASSERT_TRUE(r.ok()) << r.err;
    EXPECT_EQ(r.out.find("1: lo:"), 0u) << r.out;
    EXPECT_EQ(r.out.find("\n2:"), std::string::npos) << r.out;
  }
  EXPECT_FALSE(exists(path));
}

TEST(SysNetns, RemovedWhenTheScopeThrows) {
  LFP_REQUIRE_SANDBOX();
  const ino_t outside = lfp::sys::current_netns();
  std::string path;
  try {
    NetNamespace ns(test_name("b"));
    path = ns.path();
    NetnsScope in(ns);
    throw std::runtime_error("in the scope");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "in the scope");
  }
  EXPECT_FALSE(path.empty());
  EXPECT_FALSE(exists(path));
  EXPECT_EQ(lfp::sys::current_netns(), outside);
}

TEST(SysNetns, BadNamesAreRefused) {
  LFP_REQUIRE_SANDBOX();
  EXPECT_THROW(NetNamespace(""), std::runtime_error);
  EXPECT_THROW(NetNamespace("../etc"), std::runtime_error);
  EXPECT_EQ(lfp::sys::remove_netns("/run/netns/lfpt-never-made"), 0);  // not there: no failure
}

}  // namespace
