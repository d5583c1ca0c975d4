// SPDX-License-Identifier: MIT
// The classifier on ClassBench filter sets: every trace packet, and the reader's error handling.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "classbench_io.hpp"
#include "lfp/engine/tuple_classifier.hpp"

namespace {

namespace cb = lfp::classbench;
using lfp::cls::kNoRule;

std::string data_file(const std::string& name) { return std::string(LFP_SOURCE_DIR) + "/../shared/classbench/" + name; }

void run_set(const std::string& set) {
  const std::string rf = data_file(set + ".rules.xz"), tf = data_file(set + ".trace.xz");
  if (!std::filesystem::exists(rf) || !std::filesystem::exists(tf)) GTEST_SKIP() << "no " << rf << " or " << tf;
  const auto rules = cb::read_rules(rf);
  const auto trace = cb::read_trace(tf);
  ASSERT_FALSE(rules.empty());
  ASSERT_FALSE(trace.empty());
  const uint32_t n = uint32_t(rules.size());
  lfp::cls::V4Classifier c;
  for (uint32_t i = 0; i < n; ++i) c.insert(i, cb::to_spec(rules[i], n - i));
  ASSERT_EQ(c.size(), n);
  // Every packet: the first match is the trace's rule or an earlier one.
  size_t wrong = 0;
  std::vector<lfp::cls::V4Classifier::Key> keys;
  keys.reserve(trace.size());
  for (const auto& p : trace) {
    keys.push_back(cb::to_key(p));
    uint32_t r = c.match(keys.back());
    if (r == kNoRule || r > p.rule) ++wrong;
  }
  EXPECT_EQ(wrong, 0u) << set;
  // Batched lookups give the same answers.
  std::vector<uint32_t> out(keys.size());
  for (int mode : {1, 2}) {
    c.set_batch_mode(mode);  // interleaved and packet by packet
    for (size_t i = 0; i < keys.size(); i += 256)
      c.match_batch(keys.data() + i, std::min<size_t>(256, keys.size() - i), out.data() + i);
    size_t batch_diff = 0;
    for (size_t i = 0; i < keys.size(); ++i) batch_diff += out[i] != c.match(keys[i]);
    EXPECT_EQ(batch_diff, 0u) << "batch mode " << mode;
  }
  // The generic (non-AVX-512) lookup path gives the same answers.
  c.set_simd(false);
  size_t generic_diff = 0;
  for (size_t i = 0; i < keys.size(); i += 3) generic_diff += c.match(keys[i]) != out[i];
  EXPECT_EQ(generic_diff, 0u);
  c.set_simd(true);
  // A sample against a linear scan, including the walk down with bounds over all matching rules.
  for (size_t i = 0; i < trace.size(); i += 97) {
    std::vector<uint32_t> all;
    for (uint32_t j = 0; j < n; ++j)
      if (cb::rule_matches(rules[j], trace[i])) all.push_back(j);
    uint32_t bound = UINT32_MAX;
    for (uint32_t want : all) {
      uint32_t got = c.match(keys[i], bound, [](uint32_t) { return true; });
      ASSERT_EQ(got, want) << set << " packet " << i;
      bound = c.priority(got);
    }
    ASSERT_EQ(c.match(keys[i], bound, [](uint32_t) { return true; }), kNoRule);
  }
  // Delete every other rule and check again against the scan.
  for (uint32_t i = 0; i < n; i += 2) ASSERT_TRUE(c.erase(i));
  for (size_t i = 0; i < trace.size(); i += 211) {
    uint32_t want = kNoRule;
    for (uint32_t j = 1; j < n; j += 2)
      if (cb::rule_matches(rules[j], trace[i])) {
        want = j;
        break;
      }
    ASSERT_EQ(c.match(keys[i]), want) << set << " packet " << i << " after deletes";
  }
}

TEST(ClassBench, Acl1_1k) { run_set("acl1_1k"); }
TEST(ClassBench, Fw1_1k) { run_set("fw1_1k"); }
TEST(ClassBench, Ipc1_1k) { run_set("ipc1_1k"); }

TEST(ClassBench, ReaderAcceptsFiveFieldsAndSpaces) {
  auto r = cb::parse_rules("@10.0.0.0/8 192.168.1.7/32  0 : 65535\t53 : 53 0x11/0xFF\n\n@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\t\n");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].src, 0x0a000000u);
  EXPECT_EQ(r[0].src_len, 8);
  EXPECT_EQ(r[0].dst, 0xc0a80107u);
  EXPECT_EQ(r[0].dport_lo, 53);
  EXPECT_EQ(r[0].proto, 0x11);
  EXPECT_EQ(r[0].proto_mask, 0xff);
  EXPECT_EQ(r[1].proto_mask, 0);
  auto s = cb::to_spec(r[0], 9);
  EXPECT_EQ(s.lo[0], 0x0a000000u);
  EXPECT_EQ(s.hi[0], 0x0affffffu);
  EXPECT_EQ(s.lo[4], 0x11u);
  EXPECT_EQ(s.hi[4], 0x11u);
  auto t = cb::parse_trace("167772161 3232235783 1 53 17 0 0\n1 2 3 4 5 6\n");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].dport, 53);
  EXPECT_EQ(t[1].rule, 6u);
}

TEST(ClassBench, ReaderReportsTheBadLine) {
  auto expect_error = [](auto f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, wanted " << needle;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([] { cb::parse_rules("@1.2.3.4/32 5.6.7.8/32 0 : 1 0 : 1 0x06/0xFF\n@1.2.3/32 5.6.7.8/32 0 : 1 0 : 1 0x06/0xFF\n", "r"); }, "r:2:");
  expect_error([] { cb::parse_rules("@1.2.3.4/33 5.6.7.8/32 0 : 1 0 : 1 0x06/0xFF\n", "r"); }, "r:1:");
  expect_error([] { cb::parse_rules("@1.2.3.4/3 5.6.7.8/32 9 : 1 0 : 1 0x06/0xFF\n", "r"); }, "source port");
  expect_error([] { cb::parse_rules("@1.2.3.4/3 5.6.7.8/32 0 : 1 0 : 70000 0x06/0xFF\n", "r"); }, "destination port");
  expect_error([] { cb::parse_rules("1.2.3.4/3 5.6.7.8/32 0 : 1 0 : 1 0x06/0xFF\n", "r"); }, "'@'");
  expect_error([] { cb::parse_rules("@1.2.3.4/3 5.6.7.8/32 0 : 1 0 : 1 0x06/0x0F\n", "r"); }, "protocol mask");
  expect_error([] { cb::parse_trace("1 2 3 4 5 6 7\n1 2 3\n", "t"); }, "t:2:");
  expect_error([] { cb::parse_trace("1 2 3 4 x 6 7\n", "t"); }, "t:1:");
  expect_error([] { cb::read_rules("/nonexistent/lfp.rules"); }, "cannot open");
}

}  // namespace
