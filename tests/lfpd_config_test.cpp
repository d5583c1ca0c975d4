// SPDX-License-Identifier: MIT
// lfpd's configuration file (one parser with the command line: every option is a key) and
// `lfp status` against a real lfpd (engine only: --cgroup none --no-packet-layers).
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;

struct Output {
  int code = -1;
  std::string out, err;
};

std::string quoted(const std::string& s) { return "'" + std::regex_replace(s, std::regex("'"), "'\\''") + "'"; }

// Runs a program with `args`; its exit code, standard output and standard error.
Output run(const std::string& exe, const std::vector<std::string>& args, const std::string& tmp) {
  std::string cmd = quoted(exe);
  for (const auto& a : args) cmd += " " + quoted(a);
  const std::string err_path = tmp + "/stderr";
  cmd += " 2>" + quoted(err_path);
  Output o;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return o;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  const int status = ::pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  o.err = ss.str();
  return o;
}

// key -> value (as TOML) of `lfpd --print-config`; keys it lists without a value map to "".
std::map<std::string, std::string> keys_of(const std::string& config_text) {
  static const std::regex key_line(R"(^(# ?)?([a-z][a-z0-9-]*) =(?: (.*))?$)");
  std::map<std::string, std::string> out;
  std::istringstream in(config_text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, key_line)) out[m[2]] = m[1].matched ? "" : m[3].str();
  }
  return out;
}

class LfpdConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lfpd-config-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = tmp_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  Output lfpd(std::vector<std::string> args) { return run(lfpd_path(), args, tmp_); }
  Output lfp(std::vector<std::string> args) { return run(lfp_cli_path(), args, tmp_); }

  std::string tmp_;
};

// A value other than the default for every key (TOML, as --print-config writes it). A new option
// must be added here: the test fails until it is.
const std::map<std::string, std::string> kNonDefault = {
    {"state-dir", "\"/x/state\""},       {"socket", "\"/x/lfpd.sock\""},
    {"admin-group", "\"wheel\""},        {"writer-group", "\"staff\""},
    {"read-access", "\"writers\""},      {"txn-wait-ms", "1234"},
    {"txn-idle-timeout-ms", "4321"},     {"max-sessions-per-uid", "7"},
    {"max-sessions", "99"},              {"frame-timeout-ms", "2345"},
    {"idle-timeout-ms", "3456"},         {"netevents-access", "\"all\""},
    {"log-level", "\"debug\""},          {"cgroup", "\"/sys/fs/cgroup/x\""},
    {"packet-layers", "false"},          {"no-packet-cache", "true"},
    {"bpf-pin", "\"/x/pins\""},          {"kernel-entries", "4096"},
    {"queue", "7"},                      {"fail", "\"closed\""},
    {"log-allows", "true"},              {"netevents-max", "5000"},
    {"netevents-max-age-days", "2.5"},   {"callout", "[\"/x/a.so\", \"/x/b.so\"]"},
    {"callout-timeout-ms", "300"},       {"callout-host", "\"/x/lfp-callout-host\""},
    {"pend-timeout-ms", "1000"},         {"pend-default", "\"permit\""},
    {"inspect-queue", "8"},              {"stream-hold-ms", "500"},
    {"packet-queue", "9"},               {"packet-queues", "2"},
    {"packet-userspace", "true"},
    {"metrics-listen", "\"127.0.0.1:9464\""},
    {"events-journal", "true"},
    {"events-file", "\"/var/log/lfp/events.jsonl\""},
};

TEST_F(LfpdConfig, EveryOptionIsAKeyAndTakesItsValueFromTheFile) {
  const Output defaults = lfpd({"--config", "none", "--print-config"});
  ASSERT_EQ(defaults.code, 0) << defaults.err;
  const auto keys = keys_of(defaults.out);
  ASSERT_GE(keys.size(), kNonDefault.size());
  std::string config;
  for (const auto& [key, value] : keys) {
    auto it = kNonDefault.find(key);
    ASSERT_NE(it, kNonDefault.end()) << "lfpd has an option '" << key << "' this test does not set: add it to kNonDefault";
    EXPECT_NE(it->second, value) << key << ": the test's value is the default";
    config += key + " = " + it->second + "\n";
  }
  for (const auto& [key, value] : kNonDefault) EXPECT_TRUE(keys.count(key)) << "lfpd --print-config does not list " << key;

  const Output set = lfpd({"--config", write("all.conf", config), "--print-config"});
  ASSERT_EQ(set.code, 0) << set.err;
  const auto got = keys_of(set.out);
  for (const auto& [key, value] : kNonDefault) EXPECT_EQ(got.count(key) ? got.at(key) : "(missing)", value) << key;
}

TEST_F(LfpdConfig, FlagsOverrideTheFile) {
  const std::string conf = write("lfpd.conf", "netevents-max = 5000\nqueue = 7\npacket-layers = false\n");
  const Output o = lfpd({"--config", conf, "--netevents-max", "6000", "--packet-layers", "--print-config"});
  ASSERT_EQ(o.code, 0) << o.err;
  const auto got = keys_of(o.out);
  EXPECT_EQ(got.at("netevents-max"), "6000");
  EXPECT_EQ(got.at("queue"), "7");
  EXPECT_EQ(got.at("packet-layers"), "true");
  // And the negative flag over the file's positive key.
  const Output off = lfpd({"--config", write("on.conf", "packet-layers = true\n"), "--no-packet-layers", "--print-config"});
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(keys_of(off.out).at("packet-layers"), "false");
  // The file's negative key.
  const Output neg = lfpd({"--config", write("neg.conf", "no-packet-layers = true\n"), "--print-config"});
  ASSERT_EQ(neg.code, 0) << neg.err;
  EXPECT_EQ(keys_of(neg.out).at("packet-layers"), "false");
}

TEST_F(LfpdConfig, BadKeysAndValuesAreRefusedByName) {
  struct Case {
    std::string text, says;
  } cases[] = {
      {"netevents-maxx = 5000\n", "unknown key 'netevents-maxx'"},
      {"[daemon]\nqueue = 7\n", "unknown section [daemon]"},
      {"queue = 70000\n", "--queue"},
      {"fail = \"sideways\"\n", "--fail"},
      {"txn-wait-ms = \"soon\"\n", "--txn-wait-ms"},
      {"boot = true\n", "boot"},  // an action, not configuration
  };
  for (const auto& c : cases) {
    const std::string conf = write("bad.conf", c.text);
    const Output o = lfpd({"--config", conf, "--print-config"});
    EXPECT_NE(o.code, 0) << c.text;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << c.text << " -> " << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line: " << o.err;
    EXPECT_TRUE(o.out.empty()) << o.out;
  }
  // A file named on the command line must exist.
  const Output missing = lfpd({"--config", tmp_ + "/nope.conf", "--print-config"});
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find(tmp_ + "/nope.conf"), std::string::npos) << missing.err;
}

// examples/lfpd.conf (packaging/lfpd-conf.sh writes it, as the shipped /etc/lfp/lfpd.conf) names
// every key, commented out with its default.
TEST_F(LfpdConfig, TheExampleFileListsEveryKeyWithItsDefault) {
  const Output defaults = lfpd({"--config", "none", "--print-config"});
  ASSERT_EQ(defaults.code, 0) << defaults.err;
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/examples/lfpd.conf");
  ASSERT_TRUE(in) << "examples/lfpd.conf";
  std::stringstream example;
  example << in.rdbuf();
  const auto listed = keys_of(example.str());
  std::string uncommented;  // the example with its values in force
  for (const auto& [key, value] : keys_of(defaults.out)) {
    EXPECT_TRUE(listed.count(key)) << "examples/lfpd.conf does not list " << key;
    EXPECT_EQ(example.str().find("\n" + key + " ="), std::string::npos) << key << " is not commented out";
  }
  static const std::regex commented(R"(^# ?([a-z][a-z0-9-]*) = (.+)$)");
  std::istringstream lines(example.str());
  for (std::string line; std::getline(lines, line);)
    if (std::smatch m; std::regex_match(line, m, commented)) uncommented += m[1].str() + " = " + m[2].str() + "\n";
  const Output same = lfpd({"--config", write("example.conf", uncommented), "--print-config"});
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_EQ(keys_of(same.out), keys_of(defaults.out)) << "the example's values are not lfpd's defaults";
}

// A real lfpd reads the file (and the command line wins); lfp status --json says so.
TEST_F(LfpdConfig, LfpdReadsTheFileAndStatusShowsIt) {
  const std::string conf = write("lfpd.conf", "netevents-max = 5000\nnetevents-max-age-days = 2\nfail = \"closed\"\n");
  Daemon d({"--config", conf, "--netevents-max", "7000"});
  const Output o = lfp({"--socket", d.socket(), "status", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  const json st = json::parse(o.out);
  EXPECT_EQ(st["config"], conf);
  EXPECT_EQ(st["netevents"]["retention"]["max_events"], 7000);       // the command line
  EXPECT_EQ(st["netevents"]["retention"]["max_age_s"], 2 * 86400);  // the file
  EXPECT_EQ(st["fail"], "closed");
}

TEST_F(LfpdConfig, StatusOfAnEngineOnlyLfpd) {
  Daemon d;  // --cgroup none --no-packet-layers --config none
  auto c = d.connect();
  json f = {{"key", "4c6f6f6b-0000-4000-8000-000000000001"}, {"name", "out"}, {"layer", "OUTBOUND_TRANSPORT_V4"},
            {"action", "BLOCK"}, {"conditions", {{{"field", "IP_REMOTE_PORT"}, {"value", 9}}}}};
  // lfp add says on standard error that nothing enforces the layer here, and exits 0.
  const Output added = lfp({"--socket", d.socket(), "add", "filter", f.dump()});
  EXPECT_EQ(added.code, 0) << added.err;
  EXPECT_NE(added.err.find("warning"), std::string::npos) << added.err;
  EXPECT_NE(added.err.find("OUTBOUND_TRANSPORT_V4"), std::string::npos) << added.err;
  EXPECT_NE(added.err.find("--no-packet-layers"), std::string::npos) << added.err;
  f["key"] = "4c6f6f6b-0000-4000-8000-000000000002";
  f["layer"] = "ALE_AUTH_CONNECT_V4";
  c->add("filter", f);

  const Output o = lfp({"--socket", d.socket(), "status", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  const json st = json::parse(o.out);
  EXPECT_EQ(st["version"], "0.1.0");
  EXPECT_EQ(st["pid"], d.pid());
  EXPECT_GE(st["uptime_s"].get<int64_t>(), 0);
  EXPECT_TRUE(st["config"].is_null());
  EXPECT_TRUE(st["cgroup"].is_null());
  EXPECT_FALSE(st["packet_layers"].get<bool>());
  EXPECT_TRUE(std::regex_match(st["netns"].get<std::string>(), std::regex(R"(net:\[\d+\])"))) << st["netns"];
  EXPECT_TRUE(st["kernel"].is_null());
  EXPECT_TRUE(st["degraded"].empty());
  EXPECT_EQ(st["filters"], 2);
  EXPECT_EQ(st["layers"]["OUTBOUND_TRANSPORT_V4"]["filters"], 1);
  EXPECT_NE(st["layers"]["OUTBOUND_TRANSPORT_V4"].value("not_enforced", "").find("--no-packet-layers"), std::string::npos);
  EXPECT_NE(st["layers"]["ALE_AUTH_CONNECT_V4"].value("not_enforced", "").find("--cgroup none"), std::string::npos);
  EXPECT_TRUE(st["queues"].empty());
  EXPECT_TRUE(st["netevents"].contains("complete_since"));
  EXPECT_EQ(st["netevents"]["events"], 0);

  // The same for a person.
  const Output human = lfp({"--socket", d.socket(), "status"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("OUTBOUND_TRANSPORT_V4 1  NOT ENFORCED"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("kernel: no data path"), std::string::npos) << human.out;
}

}  // namespace
}  // namespace lfp::test
