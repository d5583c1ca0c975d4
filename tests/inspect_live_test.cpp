// SPDX-License-Identifier: MIT
// The data layers in user space (lfpd --inspect-queue, datapath/inspect.hpp) on real flows in the
// sandbox: the example plugin's STREAM_V4 callout asks for more bytes, blocks mid-stream (both ends
// reset), counts a flow's bytes in its flow context (flow_delete), and sees a stream whose segments
// came out of order in order; its DATAGRAM_DATA_V4 callout decides on each datagram's payload.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
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

const std::string kStream = "4c460000-0000-4000-8000-0000000000cb";    // the example plugin's STREAM_V4 callout
const std::string kDatagram = "4c460000-0000-4000-8000-0000000000cc";  // and its DATAGRAM_DATA_V4 one

// A filter at `layer` to TCP/UDP port `port` whose callout acts on `how` (the example plugin's words).
json data_policy(const std::string& layer, const std::string& callout, const std::string& how, int port) {
  return callout_policy(layer, callout, how, {when("IP_REMOTE_PORT", port)});
}

// A file's text once it holds `size` bytes (at most 2 s: then what it holds).
std::string read_at_least(const std::string& path, size_t size) {
  std::string text = read_text(path);
  for (int i = 0; i < 40 && text.size() < size; ++i, std::this_thread::sleep_for(50ms)) text = read_text(path);
  return text;
}

class InspectLive : public LiveTest {
 protected:
  void TearDown() override {
    lfpd_.reset();
    sb_.reset();
  }
  // lfpd in namespace `side`, with the example plugin and the data layers on queue 7351.
  void start(Side side, const json& policy, std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"--inspect-queue", "7351", "--callout", LFP_EXAMPLE_CALLOUT, "--stream-hold-ms", "1500"};
    args.insert(args.end(), more.begin(), more.end());
    lfpd_ = std::make_unique<Daemon>(args, sb_->ns_path(side));
    lfpd_->connect()->apply(policy);
  }
  // A TCP server on B:port that writes what it receives to a file (returned).
  std::string sink(int port) {
    const std::string out = sb_->tmpdir() + "/sink-" + std::to_string(port);
    sb_->spawn("exec socat -u TCP-LISTEN:" + std::to_string(port) + ",reuseaddr OPEN:" + out + ",creat,trunc", {.side = Side::B});
    EXPECT_TRUE(sb_->wait_for_port(Side::B, static_cast<uint16_t>(port)));
    return out;
  }
  // From A: the pieces, each its own segment (a pause between), to B:port.
  RunResult send_pieces(int port, const std::vector<std::string>& pieces) {
    std::string script = "(";
    for (const auto& p : pieces) script += "printf '%s' '" + p + "'; sleep 0.15; ";
    script += "sleep 0.3) | socat -t2 - TCP4:" + sb_->ip4(Side::B) + ":" + std::to_string(port) + ",nodelay";
    return sb_->run(script, {.side = Side::A, .timeout = 10s});
  }
  json flows() { return lfpd_->connect()->call("flows"); }

  std::unique_ptr<Daemon> lfpd_;
};

// The callout asks for 20 bytes first: the first pieces wait in the queue, and the server receives
// nothing until the callout has decided. Then it allows the rest of the flow.
TEST_F(InspectLive, NeedMoreDataHoldsTheBytesUntilTheCalloutDecides) {
  start(Side::A, data_policy("STREAM_V4", kStream, "need:20 block:SECRET", 9000));
  const std::string out = sink(9000);
  std::thread later([&] {
    std::this_thread::sleep_for(250ms);  // after two of the pieces (12 bytes): nothing reached B yet
    EXPECT_EQ(read_text(out), "");
  });
  const RunResult r = send_pieces(9000, {"hello ", "world ", "this is ", "fine ", "and done"});
  later.join();
  EXPECT_TRUE(r.ok()) << r.err;
  const std::string whole = "hello world this is fine and done";
  EXPECT_EQ(read_at_least(out, whole.size()), whole);
  const json f = flows();
  EXPECT_EQ(f["stats"]["flows_allowed"], 1) << f.dump();
  EXPECT_EQ(f["stats"]["flows_blocked"], 0) << f.dump();
}

// The callout inspects every byte (CONTINUE) and blocks when SECRET appears: what came before has
// reached the server, SECRET has not, and both ends were reset. A net event names the filter.
TEST_F(InspectLive, ABlockMidStreamResetsBothEnds) {
  start(Side::A, data_policy("STREAM_V4", kStream, "inspect block:SECRET", 9001));
  const std::string out = sink(9001);
  const RunResult r = send_pieces(9001, {"first part. ", "second part. ", "the SECRET ", "never arrives"});
  EXPECT_FALSE(r.ok()) << "the client's connection should have been reset: " << r.out;
  const std::string before = "first part. second part. ";
  EXPECT_EQ(read_at_least(out, before.size()), before);  // (and nothing after: the flow was reset before it)
  const json ev = wait_for_events(*lfpd_->connect(), json::array({when("NET_EVENT_TYPE", "CLASSIFY_DROP")}));
  ASSERT_EQ(ev.size(), 1u) << ev.dump();
  EXPECT_EQ(ev[0]["layer"], "STREAM_V4");
  EXPECT_EQ(ev[0]["filter_key"], "ca110000-0000-4000-8000-000000000017");
  EXPECT_EQ(ev[0]["remote_port"], 9001);
  // The server's socket was reset too: it is gone from B.
  const RunResult ss = sb_->run("ss -Htn state established '( sport = :9001 )'", {.side = Side::B});
  EXPECT_EQ(ss.out, "") << ss.out;
}

// A flow context carries the byte count across classifies; flow_delete writes it when the flow ends.
TEST_F(InspectLive, AFlowContextComesBackAndFlowDeleteEndsIt) {
  const std::string counts = sb_->tmpdir() + "/counts";
  start(Side::A, data_policy("STREAM_V4", kStream, "inspect count:" + counts, 9002));
  const std::string out = sink(9002);
  const RunResult r = send_pieces(9002, {"0123456789", "abcdefghij", "KLMNOPQRST", "uvwxy"});
  EXPECT_TRUE(r.ok()) << r.err;
  std::string c;
  for (int i = 0; i < 40 && c.empty(); ++i, std::this_thread::sleep_for(50ms)) c = read_text(counts);
  std::istringstream in(c);
  uint64_t flow = 0, bytes = 0;
  ASSERT_TRUE(in >> flow >> bytes) << c;
  EXPECT_EQ(bytes, 35u) << c;
  EXPECT_EQ(read_text(out).size(), 35u);
}

// Datagrams: the payload decides each one. An answered "hello", an unanswered SECRET.
class InspectDatagrams : public InspectLive, public ::testing::WithParamInterface<bool> {};

// Alone, and with the packet layers in the kernel too under --fail closed: the kernel's DATAGRAM_DATA
// layer cannot decide the callout filter and lets the datagram on to the data layers.
TEST_P(InspectDatagrams, EachDatagramIsDecidedOnItsPayload) {
  std::vector<std::string> more;
  if (GetParam()) more = {"--cgroup", "none", "--packet-layers", "--fail", "closed", "--bpf-pin", sb_->mount_bpffs()};
  start(Side::A, data_policy("DATAGRAM_DATA_V4", kDatagram, "block:SECRET", 9003), more);
  sb_->spawn("exec socat UDP4-RECVFROM:9003,fork,reuseaddr SYSTEM:'echo hi',shut-null", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 9003, 5s, /*udp=*/true));
  auto ask = [&](const std::string& what) {
    return sb_->run("printf '" + what + "' | socat -T1 - UDP4:" + sb_->ip4(Side::B) + ":9003,null-eof", {.side = Side::A});
  };
  bool hello = false;
  for (int i = 0; i < 3 && !hello; ++i) hello = answered(ask("hello"));
  EXPECT_TRUE(hello);
  EXPECT_FALSE(answered(ask("a SECRET")));
  const json ev = wait_for_events(*lfpd_->connect(), json::array({when("NET_EVENT_TYPE", "CLASSIFY_DROP")}));
  ASSERT_GE(ev.size(), 1u);
  EXPECT_EQ(ev[0]["layer"], "DATAGRAM_DATA_V4");
}
INSTANTIATE_TEST_SUITE_P(WithAndWithoutPacketLayers, InspectDatagrams, ::testing::Bool());

// Modification: the datagram reaches B with the callout's longer payload (B's kernel drops it if a
// length or checksum were wrong).
TEST_F(InspectLive, ACalloutRewritesADatagram) {
  start(Side::A, data_policy("DATAGRAM_DATA_V4", kDatagram, "rewrite:hello=howdy-partner", 9006));
  const std::string got = sb_->tmpdir() + "/udp-9006";
  sb_->spawn("exec socat -u UDP4-RECV:9006 OPEN:" + got + ",creat,append", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 9006, 5s, /*udp=*/true));
  ASSERT_TRUE(sb_->run("printf 'hello there' | socat -u - UDP4:" + sb_->ip4(Side::B) + ":9006", {.side = Side::A}).ok());
  std::string text;
  for (int i = 0; i < 40 && text.empty(); ++i, std::this_thread::sleep_for(50ms)) text = read_text(got);
  EXPECT_EQ(text, "howdy-partner there");
  EXPECT_EQ(flows()["stats"]["modified"], 1);
}

// Injection, clone-and-block: the query is blocked, and the callout's answer comes back to the client
// as if from B, on A's receive path. B never sees the query.
TEST_F(InspectLive, ACalloutAnswersInPlaceOfTheServer) {
  start(Side::A, data_policy("DATAGRAM_DATA_V4", kDatagram, "answer:ping=pong", 9007));
  const std::string got = sb_->tmpdir() + "/udp-9007";
  sb_->spawn("exec socat -u UDP4-RECV:9007 OPEN:" + got + ",creat,append", {.side = Side::B});
  ASSERT_TRUE(sb_->wait_for_port(Side::B, 9007, 5s, /*udp=*/true));
  const RunResult r = sb_->run("printf ping | socat -T2 - UDP4:" + sb_->ip4(Side::B) + ":9007", {.side = Side::A, .timeout = 10s});
  EXPECT_EQ(r.out, "pong") << r.err;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(read_text(got), "");
  EXPECT_EQ(flows()["stats"]["injected"], 1);
}

// --- Out of order: a TCP client written by hand (a raw socket in A) sends its segments shuffled.

uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Just enough TCP to open a connection and send data segments in any order.
class RawTcp {
 public:
  RawTcp(const std::string& ns_path, std::string src, std::string dst, uint16_t sport, uint16_t dport)
      : src_(std::move(src)), dst_(std::move(dst)), sport_(sport), dport_(dport) {
    // Only this thread enters A (the namespace is per thread).
    std::thread([&] {
      int ns = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns >= 0 && ::setns(ns, CLONE_NEWNET) == 0) fd_ = ::socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
      if (ns >= 0) ::close(ns);
    }).join();
    timeval tv{0, 200000};
    if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawTcp() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // SYN, SYN-ACK, ACK. False without an answer.
  bool open() {
    send_segment(isn_, 0, 0x02, "");
    for (int i = 0; i < 20; ++i) {
      uint8_t buf[1500];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 40) continue;
      const size_t ihl = (buf[0] & 15) * 4;
      const tcphdr* t = reinterpret_cast<const tcphdr*>(buf + ihl);
      if (ntohs(t->source) != dport_ || ntohs(t->dest) != sport_) continue;
      if (t->syn && t->ack) {
        ack_ = ntohl(t->seq) + 1;
        send_segment(isn_ + 1, ack_, 0x10, "");
        return true;
      }
    }
    return false;
  }
  // A data segment at stream offset `off`.
  void data(uint32_t off, const std::string& bytes) { send_segment(isn_ + 1 + off, ack_, 0x18, bytes); }
  // True if a RST for this connection came.
  bool reset_seen() {
    for (int i = 0; i < 10; ++i) {
      uint8_t buf[1500];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 40) continue;
      const tcphdr* t = reinterpret_cast<const tcphdr*>(buf + (buf[0] & 15) * 4);
      if (ntohs(t->source) == dport_ && ntohs(t->dest) == sport_ && t->rst) return true;
    }
    return false;
  }

 private:
  void send_segment(uint32_t seq, uint32_t ack, uint8_t flags, const std::string& payload) {
    std::vector<uint8_t> seg(20 + payload.size());
    auto* t = reinterpret_cast<tcphdr*>(seg.data());
    t->source = htons(sport_);
    t->dest = htons(dport_);
    t->seq = htonl(seq);
    t->ack_seq = htonl(ack);
    t->doff = 5;
    seg[13] = flags;
    t->window = htons(65535);
    std::memcpy(seg.data() + 20, payload.data(), payload.size());
    // The pseudo-header, then the segment.
    in_addr s{}, d{};
    inet_pton(AF_INET, src_.c_str(), &s);
    inet_pton(AF_INET, dst_.c_str(), &d);
    uint8_t pseudo[12];
    std::memcpy(pseudo, &s, 4);
    std::memcpy(pseudo + 4, &d, 4);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_TCP;
    pseudo[10] = static_cast<uint8_t>(seg.size() >> 8);
    pseudo[11] = static_cast<uint8_t>(seg.size());
    uint32_t sum = 0;
    for (int i = 0; i < 12; i += 2) sum += uint32_t{pseudo[i]} << 8 | pseudo[i + 1];
    const uint16_t c = checksum(seg.data(), seg.size(), sum);
    t->check = htons(c);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr = d;
    ::sendto(fd_, seg.data(), seg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  std::string src_, dst_;
  uint16_t sport_, dport_;
  uint32_t isn_ = 0x1000000, ack_ = 0;
  int fd_ = -1;
};

class InspectOutOfOrder : public InspectLive {
 protected:
  void SetUpLive() override {
    // A's kernel knows nothing of the hand-made connection: its resets must not reach B.
    ASSERT_TRUE(sb_->run("iptables -w -A OUTPUT -p tcp --tcp-flags RST RST -j DROP", {.side = Side::A}).ok());
  }
  // Sends `text` in `pieces` segments to B:port, in a shuffled order (the first one last).
  bool send_shuffled(int port, const std::string& text, int pieces, bool* reset) {
    RawTcp c(sb_->ns_path(Side::A), sb_->ip4(Side::A), sb_->ip4(Side::B), 40000 + port, static_cast<uint16_t>(port));
    if (!c.ok() || !c.open()) return false;
    std::vector<std::pair<uint32_t, std::string>> segs;
    const size_t step = (text.size() + pieces - 1) / pieces;
    for (size_t off = 0; off < text.size(); off += step) segs.push_back({static_cast<uint32_t>(off), text.substr(off, step)});
    std::mt19937 rng(7);
    std::shuffle(segs.begin() + 1, segs.end(), rng);
    std::rotate(segs.begin(), segs.begin() + 1, segs.end());  // the first bytes come last: every other one waits
    for (const auto& [off, bytes] : segs) {
      c.data(off, bytes);
      std::this_thread::sleep_for(5ms);
    }
    if (reset) *reset = c.reset_seen();
    return true;
  }
};

// lfpd at the server (B): the segments arrive shuffled, and the callout sees the stream in order.
TEST_F(InspectOutOfOrder, ShuffledSegmentsReachTheCalloutAndTheServerInOrder) {
  const std::string text = "GET /index.html HTTP/1.1\r\nHost: b.test\r\nAccept: */*\r\n\r\n";
  start(Side::B, data_policy("STREAM_V4", kStream, "need:" + std::to_string(text.size()) + " block:SECRET", 40000 + 9004));
  const std::string out = sink(9004);
  ASSERT_TRUE(send_shuffled(9004, text, 12, nullptr));
  std::string got;
  for (int i = 0; i < 40 && got.size() < text.size(); ++i, std::this_thread::sleep_for(50ms)) got = read_text(out);
  EXPECT_EQ(got, text);
  EXPECT_GT(flows()["stats"]["out_of_order"].get<int>(), 0);
}

TEST_F(InspectOutOfOrder, AWordSplitAcrossShuffledSegmentsIsFound) {
  const std::string text = "here is a SECRET split over several segments...";
  start(Side::B, data_policy("STREAM_V4", kStream, "need:" + std::to_string(text.size()) + " block:SECRET", 40000 + 9005));
  const std::string out = sink(9005);
  bool reset = false;
  ASSERT_TRUE(send_shuffled(9005, text, 16, &reset));  // 3 bytes a segment: SECRET spans three
  EXPECT_TRUE(reset) << "the hand-made client should have been reset";
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(read_text(out), "");
}

}  // namespace
}  // namespace lfp::test
