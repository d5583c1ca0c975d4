// SPDX-License-Identifier: MIT
// The test sandbox itself: its namespaces and veth pair, its cgroup, running programs as another user,
// and that it leaves nothing behind, whether destroyed, exited from, killed by a signal or by SIGKILL.
#include "sandbox.hpp"

#include "lfp/sys/mounts.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace lfp::test {
namespace {

using namespace std::chrono_literals;

bool exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

// `ip netns list` of this machine (read only).
std::string netns_list() {
  std::string out;
  if (FILE* f = popen("ip netns list 2>&1", "r")) {
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    pclose(f);
  }
  return out;
}

// The interfaces of this machine's own namespace (read only).
std::set<std::string> host_links() {
  std::set<std::string> names;
  for (auto& e : std::filesystem::directory_iterator("/sys/class/net")) names.insert(e.path().filename());
  return names;
}

bool mounted(const std::string& path) {
  for (const auto& m : lfp::sys::mounts())
    if (m.target == path) return true;
  return false;
}

// Running (a zombie waiting for its parent counts as gone).
bool alive(pid_t pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] != 'Z';
}

template <class P>
bool eventually(P pred, std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::string ns_inode(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// What a sandbox was made of, to check afterwards that none of it is left.
struct Made {
  std::string name, ns_a, ns_b, cgroup, tmpdir, bpffs;
  std::vector<pid_t> pids;
};

// Fills a sandbox with one of everything: processes in its cgroup and namespaces (one of them escaping
// its process group with setsid), a bpffs mount and a file.
Made populate(Sandbox& sb) {
  Made m{sb.name(), sb.ns(Side::A), sb.ns(Side::B), sb.cgroup(), sb.tmpdir(), sb.mount_bpffs(), {}};
  m.pids.push_back(sb.spawn("exec sleep 300", {.in_cgroup = true}).pid());
  m.pids.push_back(sb.spawn("exec sleep 300", {.side = Side::B}).pid());
  std::string pidfile = sb.write_file("escaped.pid", "");
  auto r = sb.run("setsid sh -c 'echo $$ > " + pidfile + "; exec sleep 300' >/dev/null 2>&1 < /dev/null &");
  if (!r.ok()) throw std::runtime_error("setsid: " + r.err);
  if (!eventually([&] { return read_text(pidfile).size() > 1; })) throw std::runtime_error("no escaped pid");
  m.pids.push_back(std::stoi(read_text(pidfile)));
  return m;
}

void expect_gone(const Made& m) {
  std::string list = netns_list();
  EXPECT_EQ(list.find(m.name), std::string::npos) << list;
  EXPECT_FALSE(exists("/run/netns/" + m.ns_a));
  EXPECT_FALSE(exists("/run/netns/" + m.ns_b));
  EXPECT_FALSE(exists(m.cgroup));
  EXPECT_FALSE(mounted(m.bpffs));
  EXPECT_FALSE(exists(m.tmpdir));
  for (pid_t p : m.pids) EXPECT_TRUE(eventually([&] { return !alive(p); })) << "pid " << p;
}

// Forks a child that makes and populates a sandbox, reports what it made, then ends the way `end` says
// (and `sig`, if not 0, is sent to it by this process once it has reported). Returns what it made and
// its wait status.
std::pair<Made, int> in_child(const std::function<void(Sandbox*)>& end, int sig = 0) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    try {
      auto* sb = new Sandbox;  // never deleted: only the end it meets may clean it up
      Made m = populate(*sb);
      std::ostringstream os;
      os << m.name << "\n" << m.ns_a << "\n" << m.ns_b << "\n" << m.cgroup << "\n" << m.tmpdir << "\n" << m.bpffs;
      for (pid_t pid : m.pids) os << "\n" << pid;
      os << "\n.\n";
      std::string s = os.str();
      if (write(p[1], s.data(), s.size()) != static_cast<ssize_t>(s.size())) _exit(97);
      end(sb);
    } catch (const std::exception& e) {
      fprintf(stderr, "child: %s\n", e.what());
      _exit(99);
    }
    _exit(98);
  }
  close(p[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<size_t>(n));
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\n.\n") == 0) break;
  }
  if (sig != 0) kill(child, sig);
  close(p[0]);
  int status = 0;
  waitpid(child, &status, 0);
  Made m;
  std::istringstream is(text);
  std::getline(is, m.name);
  std::getline(is, m.ns_a);
  std::getline(is, m.ns_b);
  std::getline(is, m.cgroup);
  std::getline(is, m.tmpdir);
  std::getline(is, m.bpffs);
  for (std::string line; std::getline(is, line) && line != ".";) m.pids.push_back(std::stoi(line));
  return {m, status};
}

void expect_child_cleaned_up_on(int sig, const std::function<void(Sandbox*)>& end, bool parent_sends) {
  auto [m, status] = in_child(end, parent_sends ? sig : 0);
  ASSERT_FALSE(m.name.empty()) << "the child made no sandbox";
  ASSERT_EQ(m.pids.size(), 3u);
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), sig);  // the handler re-raised it
  expect_gone(m);
}

TEST(Sandbox, PingsOverV4AndV6) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  auto r = sb.run("ping -c1 -W1 " + sb.ip4(Side::B));
  EXPECT_TRUE(r.ok()) << r.out << r.err;
  r = sb.run("ping -6 -c1 -W1 " + sb.ip6(Side::B));
  EXPECT_TRUE(r.ok()) << r.out << r.err;
  r = sb.run("ping -c1 -W1 " + sb.ip4(Side::A), {.side = Side::B});
  EXPECT_TRUE(r.ok()) << r.out << r.err;
  r = sb.run("ping -6 -c1 -W1 " + sb.ip6(Side::A), {.side = Side::B});
  EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST(Sandbox, NamespacesHoldOnlyTheirOwnLinksAndAddresses) {
  LFP_REQUIRE_SANDBOX();
  auto before = host_links();
  Sandbox sb;
  EXPECT_EQ(host_links(), before);  // nothing was added to this machine's own stack
  EXPECT_EQ(sb.ns_path(Side::A), "/run/netns/" + sb.ns(Side::A));
  EXPECT_EQ(sb.ns(Side::A), sb.name() + "-a");
  EXPECT_EQ(sb.ns(Side::B), sb.name() + "-b");
  EXPECT_EQ(sb.name().rfind("lfpt-" + std::to_string(getpid()) + "-", 0), 0u);
  for (Side s : {Side::A, Side::B}) {
    auto r = sb.run("ip -o link show | awk '{print $2}' | sed 's/@.*//; s/:$//' | sort | tr '\\n' ' '", {.side = s});
    ASSERT_TRUE(r.ok()) << r.err;
    EXPECT_EQ(r.out, "lo " + sb.ifname(s) + " ");
    r = sb.run("ip -o addr show dev " + sb.ifname(s), {.side = s});
    EXPECT_NE(r.out.find(sb.ip4(s) + "/24"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(sb.ip6(s) + "/64"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("tentative"), std::string::npos) << r.out;
  }
}

TEST(Sandbox, SpawnedProcessJoinsTheCgroupAndNamespace) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  EXPECT_TRUE(std::filesystem::is_directory(sb.cgroup()));
  EXPECT_EQ(sb.cgroup(), lfp::sys::cgroup2_mount() + "/" + sb.name());
  Process p = sb.spawn("exec sleep 30", {.side = Side::B, .in_cgroup = true});
  ASSERT_GT(p.pid(), 0);
  EXPECT_TRUE(p.running());
  std::string procs = read_text(sb.cgroup() + "/cgroup.procs");
  EXPECT_NE(("\n" + procs).find("\n" + std::to_string(p.pid()) + "\n"), std::string::npos) << procs;
  EXPECT_NE(read_text("/proc/" + std::to_string(p.pid()) + "/cgroup").find("0::/" + sb.name() + "\n"),
            std::string::npos);
  EXPECT_EQ(ns_inode("/proc/" + std::to_string(p.pid()) + "/ns/net"), ns_inode(sb.ns_path(Side::B)));
  EXPECT_NE(ns_inode("/proc/self/ns/net"), ns_inode(sb.ns_path(Side::B)));
  // Not asked to: stays in this process's cgroup.
  auto r = sb.run("cat /proc/self/cgroup");
  EXPECT_EQ(r.out.find(sb.name()), std::string::npos) << r.out;
  p.kill();
  EXPECT_EQ(p.wait(5s), 128 + SIGTERM);
  EXPECT_FALSE(p.running());
  EXPECT_TRUE(eventually([&] { return read_text(sb.cgroup() + "/cgroup.procs").empty(); }));
}

TEST(Sandbox, RunsAsAnotherUser) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  auto r = sb.run("id -u; id -g; id -G", {.in_cgroup = true, .uid = 65534});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out, "65534\n65534\n65534\n");
  r = sb.run("id -u; id -g", {.uid = 65534, .gid = 100});
  EXPECT_EQ(r.out, "65534\n100\n");
  EXPECT_EQ(sb.run("id -u").out, "0\n");
}

TEST(Sandbox, RunCapturesStatusOutputAndEnvironment) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  auto r = sb.run("echo \"$FOO\"; echo oops >&2; exit 3", {.env = {"FOO=bar baz"}});
  EXPECT_EQ(r.code, 3);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "bar baz\n");
  EXPECT_EQ(r.err, "oops\n");
  r = sb.run_argv({"printf", "%s|%s", "a b", "c"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out, "a b|c");
  r = sb.run("kill -9 $$");
  EXPECT_EQ(r.code, 128 + SIGKILL);
  r = sb.run("head -c 300000 /dev/zero");  // more than a pipe holds
  EXPECT_EQ(r.out.size(), 300000u);
  EXPECT_THROW(sb.run_argv({"no-such-program-here"}), std::runtime_error);
  Process p = sb.spawn("echo out; echo err >&2");
  EXPECT_EQ(p.wait(), 0);
  EXPECT_EQ(p.out(), "out\n");
  EXPECT_EQ(p.err(), "err\n");
}

TEST(Sandbox, RunTimesOut) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  auto start = std::chrono::steady_clock::now();
  auto r = sb.run("echo started; sleep 30", {.timeout = 300ms});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.code, -1);
  EXPECT_EQ(r.out, "started\n");
}

TEST(Sandbox, WaitsForAListenerAndConnectsAcrossTheVeth) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  const uint16_t port = 18080;
  EXPECT_FALSE(sb.wait_for_port(Side::B, port, 100ms));
  Process srv = sb.spawn_argv(
      {"perl", "-MIO::Socket::INET", "-e",
       "$l = IO::Socket::INET->new(LocalAddr => '" + sb.ip4(Side::B) + ":" + std::to_string(port) +
           "', Listen => 5, ReuseAddr => 1) or die $!; $c = $l->accept; print $c qq(hello\\n); close $c;"},
      {.side = Side::B, .in_cgroup = true, .uid = 65534});
  ASSERT_TRUE(sb.wait_for_port(Side::B, port)) << srv.err();
  EXPECT_FALSE(sb.wait_for_port(Side::A, port, 100ms));  // a listens on nothing
  auto r = sb.run_argv({"perl", "-MIO::Socket::INET", "-e",
                        "$s = IO::Socket::INET->new(PeerAddr => '" + sb.ip4(Side::B) + ":" + std::to_string(port) +
                            "') or die $!; print <$s>;"});
  EXPECT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(srv.wait(5s), 0) << srv.err();
}

TEST(Sandbox, MountsBpffsAndWritesFiles) {
  LFP_REQUIRE_SANDBOX();
  Sandbox sb;
  std::string dir = sb.mount_bpffs();
  EXPECT_EQ(dir.rfind(sb.tmpdir() + "/", 0), 0u);
  struct statfs fsinfo;
  ASSERT_EQ(statfs(dir.c_str(), &fsinfo), 0);
  EXPECT_EQ(static_cast<unsigned long>(fsinfo.f_type), 0xcafe4a11ul);  // BPF_FS_MAGIC
  std::string second = sb.mount_bpffs();
  EXPECT_NE(second, dir);
  std::string f = sb.write_file("conf/policy.json", "{}\n", 0600);
  EXPECT_EQ(f, sb.tmpdir() + "/conf/policy.json");
  EXPECT_EQ(read_text(f), "{}\n");
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // nobody can list the temp dir, but not read a 0600 file in it
  EXPECT_TRUE(sb.run("ls " + sb.tmpdir(), {.uid = 65534}).ok());
  EXPECT_FALSE(sb.run("cat " + f, {.uid = 65534}).ok());
}

TEST(Sandbox, SeveralCoexist) {
  LFP_REQUIRE_SANDBOX();
  Sandbox one, two;
  EXPECT_NE(one.name(), two.name());
  EXPECT_NE(one.cgroup(), two.cgroup());
  EXPECT_NE(one.ip4(Side::A), two.ip4(Side::A));
  EXPECT_NE(one.ip6(Side::B), two.ip6(Side::B));
  EXPECT_TRUE(one.run("ping -c1 -W1 " + one.ip4(Side::B)).ok());
  EXPECT_TRUE(two.run("ping -c1 -W1 " + two.ip4(Side::B)).ok());
  // Each sandbox's peer is only reachable from its own namespace.
  EXPECT_FALSE(one.run("ping -c1 -W1 " + two.ip4(Side::B)).ok());
}

TEST(Sandbox, DestructionRemovesEverything) {
  LFP_REQUIRE_SANDBOX();
  auto before = host_links();
  Made m;
  {
    Sandbox sb;
    m = populate(sb);
    EXPECT_TRUE(exists("/run/netns/" + m.ns_a));
    EXPECT_TRUE(exists(m.cgroup));
    EXPECT_TRUE(mounted(m.bpffs));
    for (pid_t p : m.pids) EXPECT_TRUE(alive(p));
    EXPECT_NE(netns_list().find(m.ns_b), std::string::npos);
  }
  expect_gone(m);
  EXPECT_EQ(host_links(), before);
}

TEST(Sandbox, FailingTestStillCleansUp) {
  LFP_REQUIRE_SANDBOX();
  Made m;
  try {
    Sandbox sb;
    m = populate(sb);
    throw std::runtime_error("the test failed");
  } catch (const std::runtime_error&) {
  }
  expect_gone(m);
}

TEST(Sandbox, SigtermCleansUp) {
  LFP_REQUIRE_SANDBOX();
  expect_child_cleaned_up_on(SIGTERM, [](Sandbox*) { pause(); }, true);
}

TEST(Sandbox, SigintCleansUp) {
  LFP_REQUIRE_SANDBOX();
  expect_child_cleaned_up_on(SIGINT, [](Sandbox*) { pause(); }, true);
}

TEST(Sandbox, SigabrtCleansUp) {
  LFP_REQUIRE_SANDBOX();
  expect_child_cleaned_up_on(SIGABRT, [](Sandbox*) { abort(); }, false);
}

TEST(Sandbox, SigsegvCleansUp) {
  LFP_REQUIRE_SANDBOX();
  expect_child_cleaned_up_on(SIGSEGV, [](Sandbox*) { raise(SIGSEGV); }, false);
}

TEST(Sandbox, ExitWithoutDestructorCleansUp) {
  LFP_REQUIRE_SANDBOX();
  auto [m, status] = in_child([](Sandbox*) { exit(0); });
  ASSERT_FALSE(m.name.empty());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  expect_gone(m);
}

TEST(Sandbox, LeftoversOfAKilledProcessAreSwept) {
  LFP_REQUIRE_SANDBOX();
  auto [m, status] = in_child([](Sandbox*) { pause(); }, SIGKILL);
  ASSERT_FALSE(m.name.empty());
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_TRUE(exists("/run/netns/" + m.ns_a));  // SIGKILL cannot be handled
  EXPECT_TRUE(exists(m.cgroup));
  { Sandbox next; }  // sweeps what dead processes left
  expect_gone(m);
}

}  // namespace
}  // namespace lfp::test
