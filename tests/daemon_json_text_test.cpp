// SPDX-License-Identifier: MIT
// The JSON text lfpd and its client write (lfp::wire::append_json): what nlohmann reads back is
// what was written, byte strings and numbers included, and it fails where json::dump() fails.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "lfp/protocol/json_text.hpp"

namespace lfp {
namespace {

using nlohmann::json;

json random_value(std::mt19937& rng, int depth) {
  switch (rng() % (depth > 3 ? 6 : 8)) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng()) - (int64_t{1} << 31);
    case 3: return (static_cast<uint64_t>(rng()) << 32) | rng();
    case 4: {
      const double pool[] = {0.0, -0.0, 1.0, -2.5, 1e100, 1e-300, 0.1, 123456789012.0, 3.141592653589793, 5e-324,
                             std::numeric_limits<double>::max()};
      return pool[rng() % std::size(pool)];
    }
    case 5: {
      std::string s;
      const size_t n = rng() % 12;
      const char* pieces[] = {"a", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "\xc3\xa9",
                              "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "~"};
      for (size_t i = 0; i < n; ++i) s += pieces[rng() % std::size(pieces)];
      return s;
    }
    case 6: {
      json a = json::array();
      for (size_t i = rng() % 4; i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (size_t i = rng() % 4; i > 0; --i) o[random_value(rng, 99).dump()] = random_value(rng, depth + 1);
      return o;
    }
  }
}

TEST(DaemonJsonText, ReadsBackAsWritten) {
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    json v = random_value(rng, 0);
    const std::string text = wire::to_json_text(v);
    json back = json::parse(text);
    ASSERT_EQ(back, v) << text;
    ASSERT_EQ(back.dump(), v.dump()) << text;  // types too: a float stays a float
  }
}

TEST(DaemonJsonText, Specials) {
  EXPECT_EQ(wire::to_json_text(json(1.0)), "1.0");
  EXPECT_EQ(wire::to_json_text(json(std::nan(""))), "null");
  EXPECT_EQ(wire::to_json_text(json(-std::numeric_limits<double>::infinity())), "null");
  EXPECT_EQ(wire::to_json_text(json("a\x01\"")), "\"a\\u0001\\\"\"");
  const json o = {{"b", 1}, {"a", {1, 2}}};
  EXPECT_EQ(wire::to_json_text(o), o.dump());
  // Invalid UTF-8: an error, as json::dump() makes it, or replaced.
  EXPECT_THROW(wire::to_json_text(json("a\xff")), json::type_error);
  EXPECT_EQ(wire::to_json_text(json("a\xff"), true), json("a\xff").dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace
}  // namespace lfp
