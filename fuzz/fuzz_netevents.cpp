// SPDX-License-Identifier: MIT
// libFuzzer: the net event log's parsers on arbitrary JSON: events (the ingestion API), enumeration
// templates, collection settings, diagnose hypotheses and endpoints, and the nftables ruleset walk of
// `lfp diagnose` (foreign causes). Bad input may be refused (EventError), never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lfp/diagnostics/foreign.hpp"
#include "lfp/netevents/log.hpp"

using nlohmann::json;
namespace ne = lfp::netevents;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const json j = json::parse(text, nullptr, false);
  try {
    lfp::diagnostics::parse_endpoint(text, "fuzz");
  } catch (const ne::EventError&) {
  }
  ne::parse_time(text);
  ne::parse_address_range(text);
  if (j.is_discarded()) return 0;
  std::optional<ne::Record> rec;
  std::optional<ne::Template> tmpl;
  try {
    rec = ne::parse_event(j, 0);
    ne::parse_event(rec->body, 0);  // a normalized event parses again
  } catch (const ne::EventError&) {
  }
  try {
    tmpl = ne::parse_template(j);
  } catch (const ne::EventError&) {
  }
  if (j.is_object() && j.contains("template") && j.contains("event")) {
    try {
      tmpl = ne::parse_template(j["template"]);
      rec = ne::parse_event(j["event"], 0);
    } catch (const ne::EventError&) {
    }
  }
  if (tmpl && rec) ne::matches(*tmpl, *rec);
  try {
    ne::settings_from_json(j);
  } catch (const ne::EventError&) {
  }
  lfp::diagnostics::Hypothesis h;
  try {
    h = lfp::diagnostics::parse_hypothesis(j, 0);
  } catch (const ne::EventError&) {
    h.protocol = 6;
    h.remote = {"10.0.0.2", 80};
    h.local = {"fd00::1", 40000};
  }
  lfp::diagnostics::nft_causes(j, h);
  return 0;
}
