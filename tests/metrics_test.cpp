// SPDX-License-Identifier: MIT
// lfpd --metrics-listen (docs/metrics.md): the exposition format (unit), and live: a real Prometheus
// (Debian's, its own config and TSDB in the sandbox's temp dir) scrapes lfpd in the sandbox's network
// namespace A and its query API returns the drop counter a real block just raised; promtool finds the
// page clean; a bad address and a port in use stop lfpd at start with one line.
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"
#include "metrics.hpp"

namespace lfp::test {
namespace {

using daemon::Histogram;
using daemon::MetricsText;
using nlohmann::json;

TEST(Metrics, FamiliesHaveHelpAndTypeAndLabelValuesAreEscaped) {
  MetricsText page;
  page.family("lfp_x_total", "counter", "What \\ it counts\nover two lines")
      .sample(3, {{"layer", "ALE_AUTH_CONNECT_V4"}, {"why", "a \"quoted\" \\ path\nand more"}})
      .sample(0.25);
  EXPECT_EQ(page.text(),
            "# HELP lfp_x_total What \\\\ it counts\\nover two lines\n"
            "# TYPE lfp_x_total counter\n"
            "lfp_x_total{layer=\"ALE_AUTH_CONNECT_V4\",why=\"a \\\"quoted\\\" \\\\ path\\nand more\"} 3\n"
            "lfp_x_total 0.25\n");
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h;
  h.observe(2e-6);  // in le=5e-06
  h.observe(3e-6);
  h.observe(0.2);   // in le=0.5
  h.observe(7);     // only in +Inf
  MetricsText page;
  page.family("lfp_d_seconds", "histogram", "d");
  h.write(page);
  const std::string& t = page.text();
  EXPECT_NE(t.find("lfp_d_seconds_bucket{le=\"1e-06\"} 0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lfp_d_seconds_bucket{le=\"5e-06\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lfp_d_seconds_bucket{le=\"0.1\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lfp_d_seconds_bucket{le=\"0.5\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lfp_d_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lfp_d_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lfp_d_seconds_count 4\n"), std::string::npos) << t;
  const size_t sum = t.find("lfp_d_seconds_sum ");
  ASSERT_NE(sum, std::string::npos) << t;
  EXPECT_NEAR(std::stod(t.substr(sum + 18)), 7.200005, 1e-9);
}

TEST(Metrics, ListenAddressIsChecked) {
  EXPECT_EQ(daemon::parse_listen_address("127.0.0.1:9464").host, "127.0.0.1");
  EXPECT_EQ(daemon::parse_listen_address("127.0.0.1:9464").port, 9464);
  EXPECT_EQ(daemon::parse_listen_address("[::1]:80").host, "::1");
  for (const char* bad : {"nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:9x", "localhost:9464",
                          "::1:9464", "[::1]:", ":9464"})
    EXPECT_THROW(daemon::parse_listen_address(bad), std::invalid_argument) << bad;
}

const std::string kFilt = "3e700000-0000-4000-8000-0000000000f1";

class MetricsLive : public LiveTest {
 protected:
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();  // (kills Prometheus, removes its TSDB with the temp dir)
  }
  // GET `url` from namespace A (where lfpd and Prometheus listen on loopback).
  std::string get(const std::string& url, const std::string& query = "") {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "5", "-G", url};
    if (!query.empty()) argv.insert(argv.end(), {"--data-urlencode", "query=" + query});
    const RunResult r = sb_->run_argv(argv);
    return r.ok() ? r.out : "";
  }
  std::unique_ptr<Daemon> lfpd_;
};

TEST_F(MetricsLive, PrometheusScrapesTheDropOfARealBlock) {
  const std::string pins = sb_->mount_bpffs();
  lfpd_ = std::make_unique<Daemon>(
      std::vector<std::string>{"--cgroup", sb_->cgroup(), "--bpf-pin", pins, "--metrics-listen", "127.0.0.1:9464"},
      sb_->ns_path(Side::A));
  ASSERT_TRUE(serve_hi(*sb_, Side::B, {8080}));
  auto c = lfpd_->connect();
  c->apply({{"filters", {{{"key", kFilt}, {"name", "no 8080"}, {"layer", "ALE_AUTH_CONNECT_V4"}, {"action", "BLOCK"},
                          {"conditions", {when("IP_REMOTE_PORT", 8080)}}}}}});

  // Prometheus, in A beside lfpd, scraping it every second.
  const std::string config = sb_->write_file("prometheus.yml",
                                             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                             "scrape_configs:\n  - job_name: lfpd\n    static_configs:\n"
                                             "      - targets: ['127.0.0.1:9464']\n");
  sb_->spawn_argv({"/usr/bin/prometheus", "--config.file=" + config, "--storage.tsdb.path=" + sb_->tmpdir() + "/tsdb",
                   "--web.listen-address=127.0.0.1:9090"});
  ASSERT_TRUE(sb_->wait_for_port(Side::A, 9090, std::chrono::seconds(20)));

  // Before the block: no drop yet at that layer.
  const std::string query = "lfp_decisions_total{layer=\"ALE_AUTH_CONNECT_V4\",action=\"BLOCK\"}";
  std::string page = get("http://127.0.0.1:9464/metrics");
  ASSERT_NE(page.find("# TYPE lfp_decisions_total counter"), std::string::npos) << page;
  EXPECT_EQ(page.find(query), std::string::npos) << page;
  EXPECT_NE(page.find("lfp_filters{layer=\"ALE_AUTH_CONNECT_V4\"} 1\n"), std::string::npos) << page;

  const RunResult r = sb_->run("socat -T3 - TCP4:" + sb_->ip4(Side::B) + ":8080 </dev/null", {.in_cgroup = true});
  ASSERT_FALSE(answered(r));  // really refused

  // The page has the drop, and Prometheus's query returns it (bounded: 30 s).
  double value = 0;
  json answer;
  for (int i = 0; i < 60 && value < 1; ++i) {
    answer = json::parse(get("http://127.0.0.1:9090/api/v1/query", query), nullptr, false);
    if (answer.is_object() && answer["status"] == "success" && !answer["data"]["result"].empty())
      value = std::stod(answer["data"]["result"][0]["value"][1].get<std::string>());
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(value, 1) << answer.dump(2);
  if (!answer["data"]["result"].empty()) {
    EXPECT_EQ(answer["data"]["result"][0]["metric"]["job"], "lfpd");
  }
  page = get("http://127.0.0.1:9464/metrics");
  EXPECT_NE(page.find(query + " 1\n"), std::string::npos) << page;
  EXPECT_NE(page.find("lfp_net_events_total{type=\"CLASSIFY_DROP\"} 1\n"), std::string::npos) << page;
  EXPECT_NE(page.find("lfp_transactions_total{outcome=\"committed\"} 1\n"), std::string::npos) << page;

  // promtool finds the page clean (exit 0, nothing said).
  const std::string saved = sb_->write_file("metrics.txt", page);
  const RunResult lint = sb_->run("promtool check metrics < " + saved);
  EXPECT_EQ(lint.code, 0) << lint.out << lint.err;
  EXPECT_EQ(lint.out + lint.err, "");
}

// An address lfpd cannot listen on stops it at start, with one line that says why.
TEST_F(MetricsLive, BadListenAddressesStopLfpdWithOneLine) {
  const std::vector<std::string> base = {lfpd_path(),  "--state-dir", sb_->tmpdir() + "/state", "--socket",
                                         sb_->tmpdir() + "/lfpd.sock", "--config", "none", "--cgroup", "none",
                                         "--no-packet-layers", "--log-level", "error"};
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return sb_->run_argv(argv);
  };
  RunResult r = run({"--metrics-listen", "nonsense"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "lfpd: --metrics-listen: 'nonsense' is not ADDR:PORT (e.g. 127.0.0.1:9464)\n");

  sb_->spawn("exec socat TCP-LISTEN:9464,bind=127.0.0.1,fork,reuseaddr SYSTEM:'echo hi'");
  ASSERT_TRUE(sb_->wait_for_port(Side::A, 9464));
  r = run({"--metrics-listen", "127.0.0.1:9464"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--metrics-listen 127.0.0.1:9464: cannot listen: Address already in use\n"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // With the endpoint's threads running, SIGTERM still stops lfpd cleanly (they take no signals).
  Process lfpd = sb_->spawn_argv([&] {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), {"--metrics-listen", "127.0.0.1:9465"});
    return argv;
  }());
  ASSERT_TRUE(sb_->wait_for_port(Side::A, 9465));
  EXPECT_NE(get("http://127.0.0.1:9465/metrics").find("lfp_sessions "), std::string::npos);
  lfpd.kill(SIGTERM);
  EXPECT_EQ(lfpd.wait(), 0) << lfpd.err();
}

}  // namespace
}  // namespace lfp::test
