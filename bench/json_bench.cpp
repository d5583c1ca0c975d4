// SPDX-License-Identifier: MIT
// lfp-json-bench: reading a policy's JSON text, LFP's reader (policy/json_doc: an arena with every
// value's span, what lfpd and `lfp apply` use) against the libraries that could stand in its place:
// nlohmann's parser (a DOM, and its SAX interface with handlers that do nothing) and simdjson (its DOM
// parser, and its On Demand parser visiting every value without keeping any). Rounds interleave the
// readers; each round's time is a ratio to LFP's reader in the same round; the median is reported.
//
//   lfp-json-bench [--sizes 1000,10000,100000] [--rounds 9] [--json]
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "lfp/policy/json_doc.hpp"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A policy of n filters as lfp apply sends it: blocks of remote addresses and port ranges.
std::string policy_text(size_t n) {
  json filters = json::array();
  for (size_t i = 0; i < n; ++i) {
    const std::string addr = "10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." + std::to_string(i & 255);
    json conditions = json::array({{{"field", "IP_REMOTE_ADDRESS"}, {"match", "EQUAL"}, {"value", addr}}});
    if (i % 4 == 0)
      conditions.push_back({{"field", "IP_REMOTE_PORT"}, {"match", "RANGE"}, {"value", {{"low", 1024 + i % 1000}, {"high", 65535}}}});
    char key[48];
    std::snprintf(key, sizeof key, "00000000-0000-4000-8000-%012zx", i + 1);
    filters.push_back({{"key", key}, {"name", "block " + addr + " \u00e9"}, {"layer", "ALE_AUTH_CONNECT_V4"},
                       {"action", {{"type", "BLOCK"}}}, {"weight", {{"explicit", 1000 + i % 7}}}, {"conditions", conditions}});
  }
  return json{{"version", 1}, {"filters", filters}}.dump();
}

struct NoOpSax : json::json_sax_t {
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

// Every value visited, as a reader building anything from the text would (strings unescaped).
size_t visit(simdjson::ondemand::value v) {
  using simdjson::ondemand::json_type;
  size_t n = 1;
  switch (v.type().value()) {
    case json_type::object:
      for (auto field : v.get_object()) {
        n += field.unescaped_key().value().size();
        n += visit(field.value().value());
      }
      break;
    case json_type::array:
      for (auto element : v.get_array()) n += visit(element.value());
      break;
    case json_type::string: n += v.get_string().value().size(); break;
    case json_type::number: n += static_cast<size_t>(v.get_double().value()); break;
    case json_type::boolean: n += v.get_bool().value(); break;
    case json_type::null: break;
  }
  return n;
}

struct Reader {
  const char* name;
  std::function<size_t(const std::string&)> read;  // returns something of what it read (kept from the optimizer)
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("lfp-json-bench: LFP's JSON reader against nlohmann and simdjson on policies");
  std::string sizes = "1000,10000,100000";
  int rounds = 9;
  bool as_json = false;
  app.add_option("--sizes", sizes, "filters in each policy, comma-separated");
  app.add_option("--rounds", rounds, "interleaved rounds (the median ratio is reported)")->check(CLI::Range(1, 1000));
  app.add_flag("--json", as_json, "one JSON object on stdout");
  CLI11_PARSE(app, argc, argv);

  simdjson::dom::parser dom_parser;
  simdjson::ondemand::parser on_demand_parser;
  const std::vector<Reader> readers = {
      {"lfp json_doc (arena, spans)", [](const std::string& t) { return lfp::policy::JsonDoc::parse(t)->root().size(); }},
      {"nlohmann DOM", [](const std::string& t) { return json::parse(t).size(); }},
      {"nlohmann SAX (no-op handlers)",
       [](const std::string& t) {
         NoOpSax sax;
         return static_cast<size_t>(json::sax_parse(t, &sax));
       }},
      {"simdjson DOM", [&](const std::string& t) { return dom_parser.parse(t).get_object().value().size(); }},
      {"simdjson On Demand (visit all)",
       [&](const std::string& t) {
         const simdjson::padded_string padded(t);
         auto doc = on_demand_parser.iterate(padded);
         size_t n = 0;
         for (auto member : doc.get_object()) n += visit(member.value().value());
         return n;
       }},
  };

  json out = json::array();
  for (const std::string& size_text : lfp::bench::split_list(sizes)) {
    size_t n = 0;
    try {
      n = std::stoul(size_text);
    } catch (const std::exception&) {
      std::fprintf(stderr, "lfp-json-bench: --sizes: '%s' is not a number\n", size_text.c_str());
      return 2;
    }
    const std::string text = policy_text(n);
    std::vector<std::vector<double>> ms(readers.size()), ratio(readers.size());
    size_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
      std::vector<double> round(readers.size());
      for (size_t i = 0; i < readers.size(); ++i) {
        const auto t0 = Clock::now();
        sink += readers[i].read(text);
        round[i] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        ms[i].push_back(round[i]);
      }
      for (size_t i = 0; i < readers.size(); ++i) ratio[i].push_back(round[i] / round[0]);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    if (!as_json) std::printf("%zu filters (%.1f MB of JSON), %d rounds:\n", n, text.size() / 1e6, rounds);
    for (size_t i = 0; i < readers.size(); ++i) {
      const double m = median(ms[i]), q = median(ratio[i]);
      if (as_json) out.push_back({{"filters", n}, {"bytes", text.size()}, {"reader", readers[i].name}, {"median_ms", m}, {"ratio_to_lfp", q}});
      else std::printf("  %-32s %9.2f ms  %5.2fx LFP's time\n", readers[i].name, m, q);
    }
    if (sink == 42) std::printf(" ");
  }
  if (as_json) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
