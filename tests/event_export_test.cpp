// SPDX-License-Identifier: MIT
// lfpd --events-file and --events-journal (docs/metrics.md): the journal's fields for an event and the
// file's rotation (unit), and live: a real block reaches the file as the very JSON `lfp show netevents
// --json` lists, and after a rename (logrotate's create) or a truncation (copytruncate) the next event
// goes to the file at the path; and it reaches a real journald (one of the test's own, in a mount
// namespace of its own) with its LFP_* fields.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "event_export.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const std::string kFilt = "e7e00000-0000-4000-8000-0000000000f1";

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(EventExport, JournalFieldsAreTheEventsKeys) {
  const json event = {{"type", "CLASSIFY_DROP"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"filter_key", kFilt},
                      {"filter_id", 7}, {"remote_address", "192.0.2.10"}, {"remote_port", 8080},
                      {"app_id", "/usr/bin/curl"}, {"hard", false}, {"seq", 12}};
  const auto fields = daemon::journal_fields(event);
  auto has = [&](const std::string& f) { return std::find(fields.begin(), fields.end(), f) != fields.end(); };
  EXPECT_TRUE(has("LFP_FILTER_KEY=" + kFilt));
  EXPECT_TRUE(has("LFP_LAYER=ALE_AUTH_CONNECT_V4"));
  EXPECT_TRUE(has("LFP_TYPE=CLASSIFY_DROP"));
  EXPECT_TRUE(has("LFP_REMOTE_ADDRESS=192.0.2.10"));
  EXPECT_TRUE(has("LFP_REMOTE_PORT=8080"));
  EXPECT_TRUE(has("LFP_APP_ID=/usr/bin/curl"));
  EXPECT_TRUE(has("LFP_HARD=false"));
  EXPECT_TRUE(has("LFP_SEQ=12"));
  EXPECT_TRUE(has("PRIORITY=5"));  // a drop
  EXPECT_TRUE(has("SYSLOG_IDENTIFIER=lfpd"));
  EXPECT_TRUE(has("MESSAGE_ID=" + std::string(daemon::kNetEventMessageId)));
  ASSERT_FALSE(fields.empty());
  EXPECT_EQ(fields[0].rfind("MESSAGE=", 0), 0u);
  EXPECT_NE(fields[0].find("192.0.2.10"), std::string::npos) << fields[0];
  EXPECT_EQ(fields.size(), event.size() + 4);
  // A log filter's event decided nothing: not a drop's priority.
  const auto log = daemon::journal_fields({{"type", "CLASSIFY_LOG"}, {"log_prefix", "[UFW BLOCK] "}});
  EXPECT_NE(std::find(log.begin(), log.end(), "PRIORITY=6"), log.end());
}

TEST(EventExport, FileIsReopenedWhenMovedOrRemoved) {
  const fs::path dir = fs::temp_directory_path() / ("lfp-events-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "events.jsonl").string();
  {
    daemon::EventFile f(path);
    ASSERT_TRUE(f.append("{\"n\":1}"));
    fs::rename(path, path + ".1");  // logrotate's create
    ASSERT_TRUE(f.append("{\"n\":2}"));
    fs::remove(path);               // removed
    ASSERT_TRUE(f.append("{\"n\":3}"));
    fs::resize_file(path, 0);       // copytruncate: written at the new end
    ASSERT_TRUE(f.append("{\"n\":4}"));
  }
  EXPECT_EQ(lines_of(path + ".1"), std::vector<std::string>{"{\"n\":1}"});
  EXPECT_EQ(lines_of(path), std::vector<std::string>{"{\"n\":4}"});
  EXPECT_THROW(daemon::EventFile((dir / "no-such-dir" / "x").string()), std::runtime_error);
  fs::remove_all(dir);
}

class EventExportLive : public LiveTest {
 protected:
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  // A connect to B:8080 from the sandbox's cgroup, which the filter refuses.
  void blocked_connect() {
    const RunResult r = sb_->run("socat -T3 - TCP4:" + sb_->ip4(Side::B) + ":8080 </dev/null", {.in_cgroup = true});
    ASSERT_FALSE(answered(r));
  }
  // The file's lines once it has `n` (bounded: 5 s).
  std::vector<std::string> wait_lines(const std::string& path, size_t n) {
    std::vector<std::string> lines;
    for (int i = 0; i < 100 && (lines = lines_of(path)).size() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return lines;
  }
  std::unique_ptr<Daemon> lfpd_;
};

TEST_F(EventExportLive, ARealDropReachesTheFileAndRotationIsFollowed) {
  const std::string pins = sb_->mount_bpffs();
  const std::string path = sb_->tmpdir() + "/events.jsonl";
  lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", pins, "--events-file", path});
  ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080}));
  auto c = lfpd_->connect();
  c->apply({{"filters", {{{"key", kFilt}, {"name", "no 8080"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                          {"conditions", {when("IP_REMOTE_PORT", 8080)}}}}}});
  blocked_connect();

  auto lines = wait_lines(path, 1);
  ASSERT_EQ(lines.size(), 1u);
  const json line = json::parse(lines[0]);
  EXPECT_EQ(line["filter_key"], kFilt);
  EXPECT_EQ(line["layer"], "ALE_AUTH_CONNECT_V4");
  EXPECT_EQ(line["type"], "CLASSIFY_DROP");
  // The very item lfp show netevents --json lists (seq included).
  const json listed = wait_for_events(*c, json::array({when("FILTER_KEY", kFilt)}));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(line, listed[0]);

  // logrotate's create: the file is moved away; the next event goes to a new file at the path.
  fs::rename(path, path + ".1");
  blocked_connect();
  lines = wait_lines(path, 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0])["filter_key"], kFilt);
  EXPECT_GT(json::parse(lines[0])["seq"], line["seq"]);
  EXPECT_EQ(lines_of(path + ".1").size(), 1u);

  // copytruncate: the file is emptied in place; the next event is its first line (O_APPEND, no hole).
  fs::resize_file(path, 0);
  blocked_connect();
  lines = wait_lines(path, 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].front(), '{');
}

// journald, really: a systemd-journald of the test's own, in a mount namespace with its own /run (its
// socket at /run/systemd/journal/socket, where sd_journal_send looks; its journal files bound to the
// sandbox's temp dir), and lfpd started in that namespace with --events-journal.
TEST_F(EventExportLive, ARealDropReachesJournaldWithItsFields) {
  ASSERT_TRUE(fs::exists("/lib/systemd/systemd-journald")) << "systemd-journald (Debian's systemd package)";
  const std::string pins = sb_->mount_bpffs();
  const std::string logs = sb_->tmpdir() + "/journal-files", socket = sb_->tmpdir() + "/lfpd.sock";
  fs::create_directories(logs);
  const std::string script =
      "set -e; mount --make-rprivate /; mount -t tmpfs lfp-test-run /run; mkdir -p /run/log /run/systemd/journal; "
      "mount --bind " + logs + " /run/log; /lib/systemd/systemd-journald & "
      "for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done; "
      "exec " + lfpd_path() + " --state-dir " + sb_->tmpdir() + "/state --socket " + socket + " --config none --cgroup " +
      sb_->cgroup() + " --bpf-pin " + pins + " --no-packet-layers --log-level warn --events-journal";
  Process lfpd = sb_->spawn_argv({"unshare", "--mount", "sh", "-c", script});
  std::unique_ptr<client::Client> c;
  for (int i = 0; i < 400 && !c && lfpd.running(); ++i) {
    try {
      c = std::make_unique<client::Client>(socket);
    } catch (const client::ClientError&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_TRUE(c) << "lfpd did not start: " << lfpd.err();
  EXPECT_EQ(lfpd.err().find("journald is not running"), std::string::npos) << lfpd.err();
  ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080}));
  c->apply({{"filters", {{{"key", kFilt}, {"name", "no 8080"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                          {"conditions", {when("IP_REMOTE_PORT", 8080)}}}}}});
  blocked_connect();
  const json listed = wait_for_events(*c, json::array({when("FILTER_KEY", kFilt)}));
  ASSERT_EQ(listed.size(), 1u);

  // Read back by its filter key, as an admin would: journalctl LFP_FILTER_KEY=... (bounded: 5 s).
  json entry;
  for (int i = 0; i < 50 && entry.is_null(); ++i) {
    const RunResult r = sb_->run("journalctl --directory \"$(ls -d " + logs + "/journal/*)\" -o json LFP_FILTER_KEY=" + kFilt);
    if (r.ok() && !r.out.empty()) entry = json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
    if (entry.is_null() || entry.is_discarded()) {
      entry = nullptr;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ASSERT_TRUE(entry.is_object()) << "no journal entry with LFP_FILTER_KEY=" << kFilt;
  EXPECT_EQ(entry["LFP_FILTER_KEY"], kFilt);
  EXPECT_EQ(entry["LFP_LAYER"], "ALE_AUTH_CONNECT_V4");
  EXPECT_EQ(entry["LFP_TYPE"], "CLASSIFY_DROP");
  EXPECT_EQ(entry["LFP_REMOTE_ADDRESS"], sb_->ip4(Side::B));
  EXPECT_EQ(entry["LFP_REMOTE_PORT"], "8080");
  EXPECT_EQ(entry["LFP_SEQ"], std::to_string(listed[0]["seq"].get<uint64_t>()));
  EXPECT_EQ(entry["MESSAGE_ID"], std::string(daemon::kNetEventMessageId));
  EXPECT_EQ(entry["SYSLOG_IDENTIFIER"], "lfpd");
  EXPECT_EQ(entry["PRIORITY"], "5");
  EXPECT_NE(entry["MESSAGE"].get<std::string>().find(sb_->ip4(Side::B)), std::string::npos) << entry.dump(2);
}

}  // namespace
}  // namespace lfp::test
