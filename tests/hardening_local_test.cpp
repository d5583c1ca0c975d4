// SPDX-License-Identifier: MIT
// lfpd under attack from its own host (issue 30, findings 3, 5, 6, 7 and part of 8): its files are its
// own, the socket is made without a chmod by name, client strings cannot forge log lines or break
// listings, the event log is optional and says what it lost, a policy is all or nothing at start, and
// request members are checked. What a local user could do is done as nobody (uid 65534).
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "lfp/sys/spawn.hpp"
#include "lfp/client/client.hpp"
#include "lfp/netevents/event.hpp"
#include "lfp/protocol/log_limit.hpp"
#include "lfp/protocol/request.hpp"
#include "lfp/protocol/wire.hpp"
#include "server_support.hpp"

// Every chmod by path the test process makes (lfpd's Server runs in it below): the socket must never
// be among them, since chmod follows a symlink swapped in for it.
namespace {
std::mutex g_chmod_mu;
std::vector<std::string> g_chmod_paths;
}  // namespace
extern "C" int chmod(const char* path, mode_t mode) {
  using Fn = int (*)(const char*, mode_t);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "chmod"));
  {
    std::lock_guard l(g_chmod_mu);
    g_chmod_paths.emplace_back(path);
  }
  return real(path, mode);
}

namespace lfp::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
constexpr uid_t kNobody = 65534;

// Runs `fn` in a child process as nobody; its return value is the child's exit code.
template <class F>
int as_nobody(F fn) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 || setresuid(kNobody, kNobody, kNobody) != 0)
      _exit(120);
    int rc = 121;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "as nobody: %s\n", e.what());
    }
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 122;
}

// One raw request on a fresh connection (what a client may send that lfp would not): the reply.
json raw_request(const std::string& socket, const std::string& payload) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect failed");
  std::string err, reply;
  const bool ok = wire::write_frame(fd, payload, err) && wire::read_frame(fd, reply, err);
  ::close(fd);
  if (!ok) throw std::runtime_error("request failed: " + err);
  return json::parse(reply);
}

// A program that ran: its exit code and its output (standard output and error).
struct Finished {
  int code;  // (run_lfpd) -1: still running after `seconds` (it served)
  std::string output;
};

// lfpd with these arguments, to its exit (at most `seconds`; then it is killed).
Finished run_lfpd(std::vector<std::string> args, double seconds = 10) {
  const std::string out_path = fs::temp_directory_path() / ("lfpd-run-" + std::to_string(getpid()) + ".log");
  const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) throw std::runtime_error("cannot open " + out_path);
  args.insert(args.begin(), lfpd_path());
  args.insert(args.end(), {"--cgroup", "none", "--no-packet-layers", "--config", "none"});
  const pid_t pid = sys::spawn(args, {.stdout_fd = out, .stderr_fd = out});
  ::close(out);
  int status = 0, code = -1;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      code = sys::exit_code(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (code == -1) {
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
  }
  std::ifstream in(out_path);
  std::string output((std::istreambuf_iterator<char>(in)), {});
  fs::remove(out_path);
  return {code, output};
}

// The lfp command line against `socket`.
Finished lfp_cli(const std::string& socket, const std::string& args) {
  const std::string cmd = lfp_cli_path() + " --socket " + socket + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, out};
}

// lfpd at --log-level info for `seconds` (a thread waits for it), serving once made; finish() gives
// its whole log once it has stopped.
class LoggedLfpd {
 public:
  LoggedLfpd(const std::string& dir, double seconds) : socket_(dir + "/lfpd.sock") {
    thread_ = std::thread([this, dir, seconds] {
      run_ = run_lfpd({"--state-dir", dir + "/state", "--socket", socket_, "--log-level", "info"}, seconds);
    });
    for (int i = 0; i < 400; ++i) {
      try {
        client::Client probe(socket_);
        return;
      } catch (const client::ClientError&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  ~LoggedLfpd() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& socket() const { return socket_; }
  Finished finish() {
    thread_.join();
    return run_;
  }

 private:
  std::string socket_;
  Finished run_;
  std::thread thread_;
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

json drop_event(uint32_t uid, const std::string& remote) {
  return {{"type", "CLASSIFY_DROP"}, {"time", netevents::format_time(netevents::now_ns())}, {"ip_protocol", 6},
          {"local_address", "10.0.0.1"}, {"local_port", 40000}, {"remote_address", remote}, {"remote_port", 443},
          {"app_id", "/usr/bin/curl"}, {"uid", uid}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"direction", "OUTBOUND"}};
}

const char* kPersistentProvider = R"({"key": "{1b0c7a4e-0000-4000-8000-000000000030}", "name": "p", "flags": ["PERSISTENT"]})";

// ---------------------------------------------------------------------------------------------
// Finding 3: the state dir and the databases are lfpd's alone; foreign ones are refused.

TEST(HardeningFiles, StateDirAndDatabasesArePrivate) {
  LFP_REQUIRE_ROOT("it opens the state as nobody");
  Daemon lfpd({}, {}, {.log_file = true});
  {
    auto c = lfpd.connect();
    c->call("add", {{"kind", "provider"}, {"object", json::parse(kPersistentProvider)}});
    c->call("netevents_ingest", {{"events", json::array({drop_event(1000, "10.0.0.2")})}});
  }
  const std::string state = lfpd.dir() + "/state";
  EXPECT_EQ(mode_of(state) & 07777, 0700u);
  int files = 0;
  for (const auto& e : fs::directory_iterator(state)) {
    ++files;
    EXPECT_EQ(mode_of(e.path()) & 077, 0u) << e.path() << " is readable or writable by others";
  }
  EXPECT_GE(files, 2);  // policy.db, netevents.db (and their -wal, -shm)
  // And nobody cannot read them, even with the directory made reachable.
  ::chmod(state.c_str(), 0755);
  EXPECT_EQ(as_nobody([&] {
              const int fd = ::open((state + "/netevents.db").c_str(), O_RDONLY);
              return fd < 0 && errno == EACCES ? 0 : 1;
            }),
            0);
}

TEST(HardeningFiles, ForeignStateDirSocketDirOrPlantedDatabaseIsRefused) {
  LFP_REQUIRE_ROOT("it chowns the state dir");
  TempDir dir;
  const std::string state = dir.path() + "/state", sock = dir.path() + "/run/lfpd.sock";
  auto lfpd = [&] { return run_lfpd({"--state-dir", state, "--socket", sock}); };

  fs::create_directory(state);
  ASSERT_EQ(::chown(state.c_str(), kNobody, kNobody), 0);
  Finished r = lfpd();
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("belongs to uid 65534"), std::string::npos) << r.output;

  ASSERT_EQ(::chown(state.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(state.c_str(), 0777), 0);
  r = lfpd();
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("writable by other users"), std::string::npos) << r.output;

  // A policy.db planted by another user (in a state dir that was reachable).
  ASSERT_EQ(::chmod(state.c_str(), 0700), 0);
  { std::ofstream(state + "/policy.db").put('\0'); }
  ASSERT_EQ(::chown((state + "/policy.db").c_str(), kNobody, kNobody), 0);
  r = lfpd();
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("policy.db belongs to uid 65534"), std::string::npos) << r.output;
  fs::remove(state + "/policy.db");

  // A socket directory anyone may write (where the socket path could be swapped for a symlink).
  fs::create_directory(dir.path() + "/run");
  ASSERT_EQ(::chmod((dir.path() + "/run").c_str(), 01777), 0);
  r = lfpd();
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("/run is writable by other users"), std::string::npos) << r.output;
}

// The event log's records: a reader sees its own uid's, an admin all (unless --netevents-access all).
TEST(HardeningFiles, ReadersSeeOnlyTheirOwnNetEvents) {
  LFP_REQUIRE_ROOT("it runs clients as other users");
  for (const bool all : {false, true}) {
    Daemon lfpd(all ? std::vector<std::string>{"--netevents-access", "all"} : std::vector<std::string>{});
    lfpd.connect()->call("netevents_ingest",
                         {{"events", json::array({drop_event(0, "10.0.0.1"), drop_event(kNobody, "10.0.0.2")})}});
    EXPECT_EQ(lfpd.connect()->call("netevents_enum", {})["total"], 2);  // root: an admin
    const int seen = as_nobody([&] {
      client::Client c(lfpd.socket());
      const json r = c.call("netevents_enum", {});
      // diagnose quotes an event of the log as its evidence: about root's traffic, only with access to all.
      bool diagnosed_root = true;
      try {
        c.call("diagnose", {{"hypothesis", {{"time", "now"}, {"remote", "10.0.0.1:443"}, {"user", 0}}}});
      } catch (const client::ClientError& e) {
        diagnosed_root = e.code() != "ACCESS_DENIED";
      }
      if (r["total"] == 2) return diagnosed_root ? 2 : 4;
      return r["total"] == 1 && r["events"][0]["uid"] == kNobody && !diagnosed_root ? 1 : 3;
    });
    EXPECT_EQ(seen, all ? 2 : 1) << (all ? "--netevents-access all" : "the default (own)");
  }
}

// ---------------------------------------------------------------------------------------------
// Finding 5: the socket is 0666 without a chmod of its path.

TEST(HardeningSocket, MadeWithoutChmodByName) {
  LFP_REQUIRE_ROOT("it connects as nobody");
  TempDir dir;
  const mode_t umask_before = ::umask(077);  // (as lfpd runs: the mode cannot come from the umask)
  {
    std::lock_guard l(g_chmod_mu);
    g_chmod_paths.clear();
  }
  const auto cfg = server_config(dir.path());
  ::chmod(dir.path().c_str(), 0755);  // (the recorder sees chmod calls)
  {
    std::lock_guard l(g_chmod_mu);
    ASSERT_EQ(g_chmod_paths, std::vector<std::string>{dir.path()});
  }
  {
    InProcessServer server(cfg, [](daemon::Server&) {});
    ::umask(umask_before);
    struct stat st {};
    ASSERT_EQ(::lstat(cfg.socket_path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0666u);
    std::lock_guard l(g_chmod_mu);
    for (const auto& p : g_chmod_paths) EXPECT_NE(p, cfg.socket_path) << "the socket was chmod-ed by its path";
  }
  // And nobody can connect.
  InProcessServer server(cfg, [](daemon::Server&) {});
  EXPECT_EQ(as_nobody([&] {
              client::Client c(cfg.socket_path);
              return c.call("ping").is_object() ? 0 : 1;
            }),
            0);
}

// ---------------------------------------------------------------------------------------------
// Finding 6: client names are bounded and printable.

TEST(HardeningNames, ForgedOrHugeSessionNamesAreRefused) {
  LFP_REQUIRE_ROOT("it connects as nobody");
  TempDir dir;
  LoggedLfpd lfpd(dir.path(), 4);
  const std::string& sock = lfpd.socket();
  const std::string forged = "x\n2026-12-07T17:00:00.000 \x1b[1;41mcritical\x1b[0m policy store wiped";
  const std::string huge(9u << 20, 'n');
  for (const std::string& name : {forged, huge, huge}) {
    const int rc = as_nobody([&] {
      const json r = raw_request(sock, json{{"op", "hello"}, {"id", 1}, {"name", name}}.dump());
      const std::string msg = r["error"].value("message", "");
      return !r["ok"].get<bool>() && r["error"]["code"] == "INVALID_PARAMETER" && msg.rfind("/name: ", 0) == 0 ? 0 : 1;
    });
    EXPECT_EQ(rc, 0);
  }
  // Everyone's listing still works, and no line of lfpd's log was forged.
  {
    client::Client c(sock, client::SessionOptions{.name = "ok"});
    EXPECT_EQ(c.call("state")["sessions"].size(), 1u);
  }
  const Finished run = lfpd.finish();
  EXPECT_EQ(run.code, -1) << run.output;  // (it served until stopped)
  EXPECT_NE(run.output.find("'ok': opened"), std::string::npos) << run.output;  // (the log is there)
  EXPECT_EQ(run.output.find("policy store wiped"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find('\x1b'), std::string::npos);
}

TEST(HardeningNames, LogSafeEscapesAndBounds) {
  EXPECT_EQ(protocol::log_safe("a\nb\x1b[0m\\"), "a\\x0ab\\x1b[0m\\x5c");
  EXPECT_EQ(protocol::log_safe(std::string(300, 'a'), 256), std::string(256, 'a') + "...(+44 bytes)");
}

// ---------------------------------------------------------------------------------------------
// Finding 7: the event log is optional, and says what it lost; the policy is all or nothing.

TEST(HardeningStartup, CorruptOrUnopenableEventLogLeavesLfpdServingDegraded) {
  for (const bool directory : {false, true}) {
    Daemon lfpd({}, {}, {.log_file = true});
    lfpd.stop();
    const std::string db = lfpd.dir() + "/state/netevents.db";
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
    if (directory) {
      fs::create_directory(db);
    } else {
      std::ofstream f(db, std::ios::binary);
      for (int i = 0; i < 4096; ++i) f.put(static_cast<char>(i * 131 + 7));
    }
    lfpd.start();  // (throws if lfpd does not serve)
    auto c = lfpd.connect();
    const json state = c->call("state");
    const std::string why = state["enforcement"]["degraded"].value("netevents", "");
    EXPECT_NE(why.find(db), std::string::npos) << state["enforcement"].dump();
    EXPECT_NE(c->call("status")["netevents"].value("unavailable", "").find(db), std::string::npos);
    const Finished status = lfp_cli(lfpd.socket(), "status");
    EXPECT_EQ(status.code, 0) << status.output;
    EXPECT_NE(status.output.find("net event log: UNAVAILABLE: "), std::string::npos) << status.output;
    // Policy is still served and events are not claimed as logged.
    c->call("add", {{"kind", "provider"}, {"object", json::parse(kPersistentProvider)}});
    const json r = c->call("netevents_ingest", {{"events", json::array({drop_event(0, "10.0.0.1")})}});
    EXPECT_EQ(r["logged"], 0);
    EXPECT_EQ(r["lost"], 1);
    EXPECT_NE(r.value("lost_why", "").find("unavailable"), std::string::npos) << r.dump();
  }
}

TEST(HardeningStartup, IngestOnAFullDiskSaysWhatWasLost) {
  LFP_REQUIRE_ROOT("it mounts a small tmpfs");
  Daemon lfpd({}, {}, {.log_file = true});
  lfpd.stop();
  const std::string state = lfpd.dir() + "/state";
  fs::remove_all(state);
  fs::create_directory(state);
  ASSERT_EQ(::mount("tmpfs", state.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700"), 0) << strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{state};
  lfpd.start();
  {  // Fill the disk.
    std::ofstream filler(state + "/filler", std::ios::binary);
    const std::string block(4096, 'x');
    while (filler.write(block.data(), block.size())) {}
  }
  auto c = lfpd.connect();
  json events = json::array();
  for (int i = 0; i < 500; ++i) events.push_back(drop_event(0, "10.0.0." + std::to_string(i % 250 + 1)));
  const json r = c->call("netevents_ingest", {{"events", events}});
  EXPECT_EQ(r["lost"].get<int>() + r["logged"].get<int>(), 500) << r.dump();
  EXPECT_GT(r["lost"].get<int>(), 0) << r.dump();
  EXPECT_NE(r.value("lost_why", "").find(state + "/netevents.db"), std::string::npos) << r.dump();
  lfpd.stop();
}

TEST(HardeningStartup, AStoredRowThatCannotBeLoadedKeepsLfpdFromStarting) {
  Daemon lfpd;
  lfpd.connect()->call("add", {{"kind", "provider"}, {"object", json::parse(kPersistentProvider)}});
  lfpd.stop();
  const std::string state = lfpd.dir() + "/state", db = state + "/policy.db";
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(h, "UPDATE objects SET body = '{\"name\": 5}'", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(h);
  Finished r = run_lfpd({"--state-dir", state, "--socket", lfpd.dir() + "/other.sock"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("provider 1b0c7a4e-0000-4000-8000-000000000030: /name: expected a string"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("partial policy"), std::string::npos) << r.output;

  // A policy.db that is not a database at all: the error names the file.
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
  { std::ofstream(db, std::ios::binary) << std::string(8192, '\x5a'); }
  r = run_lfpd({"--state-dir", state, "--socket", lfpd.dir() + "/other.sock"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(db + ": "), std::string::npos) << r.output;
}

// ---------------------------------------------------------------------------------------------
// Finding 8 (part): one JSON rule, bounded numbers, and rate-limited per-connection lines.

TEST(HardeningInputs, DuplicateMembersAndBadNumbersAreRefusedWithTheirPath) {
  Daemon lfpd;
  auto error_of = [&](const std::string& payload) {
    const json r = raw_request(lfpd.socket(), payload);
    return r["ok"].get<bool>() ? std::string("ok") : r["error"]["message"].get<std::string>();
  };
  EXPECT_EQ(error_of(R"({"op": "hello", "id": 1, "dynamic": false, "dynamic": true})").rfind("/dynamic: duplicate member", 0), 0u);
  EXPECT_EQ(error_of(R"({"op": "hello", "id": 1, "txn_wait_timeout_ms": -5})").rfind("/txn_wait_timeout_ms: must be an integer", 0), 0u);
  EXPECT_EQ(error_of(R"({"op": "hello", "id": 1, "txn_wait_timeout_ms": 99999999999})").rfind("/txn_wait_timeout_ms: ", 0), 0u);
  EXPECT_EQ(error_of(R"({"op": "hello", "id": 1, "dynamic": "yes"})"), "/dynamic: must be true or false, not \"yes\"");
  EXPECT_EQ(error_of(R"({"op": "hello", "id": 1, "x": {"a": 1, "b": {"c": 1, "c": 2}}})"),
            "/x/b/c: duplicate member \"c\" (JSON objects must not repeat a member)");
  auto c = lfpd.connect();
  EXPECT_THROW(c->call("enum", {{"kind", "filter"}, {"offset", -5}}), client::ClientError);

  // lfp apply: as lfp validate does.
  const std::string file = lfpd.dir() + "/dup.json";
  std::ofstream(file) << R"({"filters": [{"name": "a", "name": "b", "layer": "ALE_AUTH_CONNECT_V4", "action": "BLOCK"}]})";
  const Finished apply = lfp_cli(lfpd.socket(), "apply " + file);
  EXPECT_EQ(apply.code, 2) << apply.output;
  EXPECT_NE(apply.output.find("/filters/0/name: duplicate member"), std::string::npos) << apply.output;
  EXPECT_EQ(c->call("state")["filter_count"], 0);
}

TEST(HardeningInputs, PerConnectionLinesAreRateLimited) {
  protocol::LineLimit limit(50);
  uint64_t suppressed = 0, admitted = 0;
  for (int i = 0; i < 34566; ++i) {
    admitted += limit.admit(suppressed);
    EXPECT_EQ(suppressed, 0u);
  }
  EXPECT_EQ(admitted, 50u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1010));
  EXPECT_TRUE(limit.admit(suppressed));
  EXPECT_EQ(suppressed, 34566u - 50u);  // one summary line for them
}

// lfpd's own lines for sessions: 300 opened at once are not 300 lines.
TEST(HardeningInputs, SessionLinesAreRateLimited) {
  TempDir dir;
  LoggedLfpd lfpd(dir.path(), 5);
  const std::string& sock = lfpd.socket();
  for (int i = 0; i < 300; ++i) client::Client c(sock);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  client::Client last(sock);  // (its line comes after the summary)
  const Finished run = lfpd.finish();
  size_t opened = 0;
  for (size_t at = 0; (at = run.output.find("': opened by uid", at)) != std::string::npos; ++at) ++opened;
  EXPECT_LT(opened, 150u) << run.output.substr(0, 4000);
  EXPECT_NE(run.output.find("'opened' lines suppressed"), std::string::npos);
}

}  // namespace
}  // namespace lfp::test
