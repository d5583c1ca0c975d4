// SPDX-License-Identifier: MIT
// libFuzzer target over policy files: parse_policy must either succeed or throw PolicyError. A
// policy that parses must survive to_json -> parse unchanged, and apply_policy to a fresh engine
// must either succeed (then the export re-applies to another engine with the same result) or fail
// leaving the engine empty.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "lfp/policy/policy.hpp"

using namespace lfp;
using namespace lfp::policy;
using nlohmann::json;

namespace {

[[noreturn]] void bug(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_policy: %s\n%s\n", what, detail.c_str());
  std::abort();
}

bool empty_engine(const FilterEngine& e) {
  return e.filter_count() == 0 && e.providers().empty() && e.sublayers().size() == 2 && e.callouts().empty() &&
         e.provider_contexts().empty();
}

json without_ids(json j) {
  for (auto& f : j["filters"]) f.erase("id");
  return j;
}

// Classifies an empty request at every layer that has filters, through both result writers.
void classify_all(const FilterEngine& e) {
  for (const auto& l : all_layers()) {
    if (e.filters(FilterTemplate{.layer = l.id}).empty()) continue;
    Request r;
    r.layer = l.id;
    ClassifyResult res = e.classify(l.id, r.values, true);
    (void)result_to_json(e, res).dump();
    (void)result_to_text(e, res);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Policy p;
  try {
    p = parse_policy(text);
  } catch (const PolicyError& e) {
    (void)json(e.what()).dump();  // messages are valid UTF-8 (they end up in JSON output)
    return 0;
  }

  // Round trip through the writer.
  const json j = to_json(p);
  const std::string dumped = j.dump();
  try {
    Policy q = parse_policy(dumped);
    if (to_json(q) != j) bug("round trip changed the policy", dumped);
  } catch (const PolicyError& e) {
    bug("to_json output does not parse", std::string(e.what()) + "\n" + dumped);
  }

  // All or nothing.
  FilterEngine engine;
  try {
    apply_policy(engine, p);
  } catch (const PolicyError& e) {
    (void)json(e.what()).dump();
    if (!empty_engine(engine)) bug("a failed apply left objects behind", dumped);
    return 0;
  }
  classify_all(engine);

  // What the engine exports re-applies to a fresh engine and exports the same again.
  const json exported = to_json(export_policy(engine));
  FilterEngine again;
  try {
    apply_policy(again, parse_policy(exported.dump()));
  } catch (const PolicyError& e) {
    bug("the export does not re-apply", std::string(e.what()) + "\n" + exported.dump());
  }
  if (without_ids(to_json(export_policy(again))) != without_ids(exported))
    bug("re-applying the export changed it", exported.dump());
  return 0;
}
