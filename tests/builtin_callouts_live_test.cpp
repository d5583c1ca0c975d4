// SPDX-License-Identifier: MIT
// The built-in inspection callouts (liblfp_inspect_callouts.so) through lfpd's data layers
// (--inspect-queue) on real clients in the sandbox's namespace A: curl against a TLS server
// (openssl s_server) blocked by SNI and against an HTTP server blocked by Host, and dig's queries
// blocked by name and logged, all to servers in namespace B.
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon_support.hpp"
#include "live_test.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kSni = "4c460000-0000-4000-8000-000000000101", kHttp = "4c460000-0000-4000-8000-000000000103",
                  kDns = "4c460000-0000-4000-8000-000000000105";

class BuiltinCallouts : public LiveTest {
 protected:
  void SetUpLive() override {
    log_ = sb_->tmpdir() + "/inspect.jsonl";
    const json config = {{"block", {"blocked.test", "*.ads.test"}}, {"log", log_}};
    auto filter = [&](const std::string& layer, const std::string& callout, int port, const std::string& name) {
      return json{{"name", name},
                  {"layer", layer},
                  {"action", {{"type", "CALLOUT_TERMINATING"}, {"callout", callout}}},
                  {"flags", {"HAS_PROVIDER_CONTEXT"}},
                  {"provider_context", "ca110000-0000-4000-8000-0000000003c1"},
                  {"conditions", {when("IP_REMOTE_PORT", port)}}};
    };
    const json policy = {
        {"callouts",
         {{{"key", kSni}, {"name", "tls sni"}, {"layer", "STREAM_V4"}},
          {{"key", kHttp}, {"name", "http host"}, {"layer", "STREAM_V4"}},
          {{"key", kDns}, {"name", "dns"}, {"layer", "DATAGRAM_DATA_V4"}}}},
        {"provider_contexts", {{{"key", "ca110000-0000-4000-8000-0000000003c1"}, {"name", "block list"}, {"data", config.dump()}}}},
        {"filters",
         {filter("STREAM_V4", kSni, 8443, "TLS SNI"), filter("STREAM_V4", kHttp, 8080, "HTTP Host"),
          filter("DATAGRAM_DATA_V4", kDns, 53, "DNS")}}};
    lfpd_ = std::make_unique<Daemon>(std::vector<std::string>{"--inspect-queue", "7353", "--callout", LFP_INSPECT_CALLOUTS},
                                     sb_->ns_path(Side::A));
    lfpd_->connect()->apply(policy);
  }
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  RunResult curl(const std::string& url, const std::string& host, int port) {
    return sb_->run("curl -sS -k --max-time 5 --resolve " + host + ":" + std::to_string(port) + ":" + sb_->ip4(Side::B) + " " + url,
                    {.side = Side::A, .timeout = 10s});
  }
  json log_lines() {
    json a = json::array();
    std::istringstream in(read_text(log_));
    for (std::string l; std::getline(in, l);) a.push_back(json::parse(l, nullptr, false));
    return a;
  }
  std::unique_ptr<Daemon> lfpd_;
  std::string log_;
};

TEST_F(BuiltinCallouts, TlsIsBlockedByItsServerName) {
  const std::string d = sb_->tmpdir();
  ASSERT_TRUE(sb_->run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test -keyout " + d + "/key.pem -out " + d +
                       "/cert.pem")
                  .ok());
  sb_->spawn("exec openssl s_server -quiet -www -accept 8443 -cert " + d + "/cert.pem -key " + d + "/key.pem", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 8443));
  const RunResult ok = curl("https://allowed.test:8443/", "allowed.test", 8443);
  EXPECT_TRUE(ok.ok()) << ok.err;
  EXPECT_NE(ok.out.find("s_server"), std::string::npos) << ok.out;  // -www's status page
  const RunResult blocked = curl("https://blocked.test:8443/", "blocked.test", 8443);
  EXPECT_FALSE(blocked.ok()) << blocked.out;
  const RunResult sub = curl("https://x.ads.test:8443/", "x.ads.test", 8443);
  EXPECT_FALSE(sub.ok());
  const json ev = wait_for_events(*lfpd_->connect(), json::array({when("NET_EVENT_TYPE", "CLASSIFY_DROP")}));
  ASSERT_GE(ev.size(), 1u);
  EXPECT_EQ(ev[0]["layer"], "STREAM_V4");
  EXPECT_EQ(ev[0]["filter_name"], "TLS SNI");
}

TEST_F(BuiltinCallouts, HttpIsBlockedByItsHost) {
  // Reads the request to its empty line, then answers.
  const std::string response = sb_->write_file("response", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nhi\n");
  sb_->spawn("exec socat TCP-LISTEN:8080,fork,reuseaddr SYSTEM:\"sed -u '/^.$/q' >/dev/null; cat " + response + "\"",
             {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 8080));
  const RunResult ok = curl("http://allowed.test:8080/", "allowed.test", 8080);
  EXPECT_TRUE(answered(ok)) << ok.err << ok.out;
  const RunResult blocked = curl("http://blocked.test:8080/", "blocked.test", 8080);
  EXPECT_FALSE(answered(blocked)) << blocked.out;
  bool seen = false;
  for (int i = 0; i < 40 && !seen; ++i, std::this_thread::sleep_for(50ms))
    for (const auto& l : log_lines()) seen = seen || (l.value("name", "") == "blocked.test" && l.value("action", "") == "BLOCK");
  EXPECT_TRUE(seen) << read_text(log_);
}

TEST_F(BuiltinCallouts, DnsQueriesAreLoggedAndBlockedByName) {
  const std::string got = sb_->tmpdir() + "/dns-received";
  sb_->spawn("exec socat -u UDP4-RECV:53 OPEN:" + got + ",creat,append", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 53, 5s, /*udp=*/true));
  auto dig = [&](const std::string& name) {
    return sb_->run("dig +tries=1 +time=1 @" + sb_->ip4(Side::B) + " " + name + " A", {.side = Side::A, .timeout = 10s});
  };
  dig("allowed.test");
  dig("blocked.test");
  dig("www.ads.test");
  // A last allowed query: once it is in, whatever of the blocked ones went through would be too.
  dig("marker.test");
  std::string received;
  for (int i = 0; i < 100 && received.find("marker") == std::string::npos; ++i, std::this_thread::sleep_for(50ms))
    received = read_text(got);
  ASSERT_NE(received.find("marker"), std::string::npos);
  EXPECT_NE(received.find("allowed"), std::string::npos);  // (the query's labels, on the wire)
  EXPECT_EQ(received.find("blocked"), std::string::npos);
  EXPECT_EQ(received.find("ads"), std::string::npos);
  std::map<std::string, std::string> logged;
  for (const auto& l : log_lines())
    if (l.is_object()) logged[l.value("name", "")] = l.value("action", "");
  EXPECT_EQ(logged["allowed.test"], "PERMIT") << read_text(log_);
  EXPECT_EQ(logged["blocked.test"], "BLOCK");
  EXPECT_EQ(logged["www.ads.test"], "BLOCK");
}

}  // namespace
}  // namespace lfp::test
