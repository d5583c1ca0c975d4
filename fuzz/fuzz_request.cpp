// SPDX-License-Identifier: MIT
// libFuzzer target over classify requests, against the demo policy. Input that is JSON goes to
// parse_request; anything else is command-line text: byte 0 picks the layer, byte 1 the field, the
// rest is the value for Request::set_text. Either must succeed or throw PolicyError; the result of
// classifying then goes through both result writers.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>

#include "lfp/policy/policy.hpp"

using namespace lfp;
using namespace lfp::policy;
using nlohmann::json;

namespace {
FilterEngine* engine = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::ifstream in(LFP_DEMO_POLICY, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  engine = new FilterEngine;
  try {
    apply_policy(*engine, parse_policy(ss.str()));
  } catch (const PolicyError& e) {
    std::fprintf(stderr, "fuzz_request: cannot load %s: %s\n", LFP_DEMO_POLICY, e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Request r;
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  try {
    if (!j.is_discarded()) {
      parse_request(j, r);
    } else {
      if (size < 2) return 0;
      r.layer = static_cast<LayerId>(data[0] % kLayerCount);
      r.set_text(static_cast<FieldId>(data[1] % kFieldCount), text.substr(2));
    }
  } catch (const PolicyError& e) {
    (void)json(e.what()).dump();  // messages are valid UTF-8 (they end up in JSON output)
    return 0;
  }
  ClassifyResult res = engine->classify(r.layer, r.values, size % 2 == 0);
  ClassifyResult lin = engine->classify_linear(r.layer, r.values);
  if (res.permit != lin.permit || res.filter != lin.filter) {
    std::fprintf(stderr, "fuzz_request: compiled and linear classification disagree\n");
    std::abort();
  }
  (void)result_to_json(*engine, res).dump();
  (void)result_to_text(*engine, res);
  return 0;
}
