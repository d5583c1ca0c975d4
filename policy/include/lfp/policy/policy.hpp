// SPDX-License-Identifier: MIT
#pragma once
// LFP policy files: JSON holding providers, sublayers, callouts, provider contexts and filters with
// WFP's identifiers (docs/policy-format.md). Parsing checks everything it can without an engine
// (fields per layer, value kinds, match types, GUIDs) and names the JSON path of the first error.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/engine/engine.hpp"
#include "lfp/policy/json_doc.hpp"

namespace lfp::policy {

inline constexpr int kFormatVersion = 1;

struct Policy {
  std::vector<Provider> providers;
  std::vector<Sublayer> sublayers;
  std::vector<Callout> callouts;
  std::vector<ProviderContext> provider_contexts;
  std::vector<Filter> filters;
};

// A bad policy, request or value: `path` is a JSON pointer ("/filters/3/conditions/0/value"),
// `reason` says what is wrong. what() is "<path>: <reason>".
class PolicyError : public std::runtime_error {
 public:
  PolicyError(std::string path, std::string reason)
      : std::runtime_error((path.empty() ? std::string("/") : path) + ": " + reason),
        path_(std::move(path)), reason_(std::move(reason)) {}
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_, reason_;
};

// Text -> Policy. Throws PolicyError (also for malformed JSON; never crashes on any input).
Policy parse_policy(std::string_view json_text);
Policy policy_from_json(const nlohmann::json& j);
// The same from a parsed JsonDoc (lfp/policy/json_doc.hpp): what lfpd reads requests with.
Policy policy_from_json(const JsonValue& j);
// One object as an element of the policy list `list` ("providers", "sublayers", "callouts",
// "provider_contexts" or "filters") would be read, with `path` naming it in errors: a Policy holding
// just that object. Members named in `ignore` are skipped (e.g. output-only ones like "owner").
Policy object_from_json(std::string_view list, const JsonValue& j, const std::string& path,
                        std::initializer_list<std::string_view> ignore = {});

// Policy -> JSON (round-trips with parse_policy). Keys are always written.
nlohmann::json to_json(const Policy& p);
// Everything an engine holds except the built-in objects, as a Policy (for export / show state).
Policy export_policy(const FilterEngine& engine);

// Adds the policy to the engine all-or-nothing: on any error every object it added is removed
// again and a PolicyError names the offending object's path (e.g. "/filters/2/sublayer").
// Returns the run-time ids of the added filters, in file order.
std::vector<uint64_t> apply_policy(FilterEngine& engine, const Policy& p);

// One object to JSON (the same form as in a policy file).
nlohmann::json to_json(const Provider& p);
nlohmann::json to_json(const Sublayer& s);
nlohmann::json to_json(const Callout& c);
nlohmann::json to_json(const ProviderContext& c);
nlohmann::json to_json(const Filter& f);  // includes "id" and "effective_weight" when assigned

// A classify request's values, with the storage they point into.
class Request {
 public:
  LayerId layer = LayerId::ALE_AUTH_CONNECT_V4;
  FieldValues values;
  // A requests file's optional "expect" member: "PERMIT" or "BLOCK" (checked by parse_request).
  std::optional<std::string> expect;
  // Sets FIELD from text as given on the command line (`--set IP_REMOTE_ADDRESS=192.0.2.7`):
  // addresses, ports and numbers, named constants (TCP, INBOUND, IS_LOOPBACK), MACs, app paths,
  // users ("uid=1000,gids=1000+27" or "1000"). Throws PolicyError naming the field.
  void set_text(FieldId field, std::string_view text);
  // Sets FIELD from a JSON value (the form of `values` in a requests file).
  void set_json(FieldId field, const nlohmann::json& v, const std::string& path);
  void set_json(FieldId field, const JsonValue& v, const std::string& path);
  // Forgets every value (and `expect`); the layer stays.
  void clear();

  Request() = default;
  Request(const Request&) = delete;  // values point into this object's storage
  Request& operator=(const Request&) = delete;

 private:
  std::vector<std::unique_ptr<std::string>> strings_;
  std::vector<std::unique_ptr<Token>> tokens_;
};

// {"layer": "...", "values": {"FIELD": value, ...}, "expect": "PERMIT"|"BLOCK", "comment": "..."}
// -> request ("values", "expect" and "comment" optional). Throws PolicyError.
void parse_request(const nlohmann::json& j, Request& out);
void parse_request(const JsonValue& j, Request& out);

// A classification result as JSON: {"action": "PERMIT"|"BLOCK", "filter": {"id","key","name"}|null,
// "sublayer": {"key","name"}|null, "provider": "<guid>"|null, "hard": bool, "veto": bool,
// "vetoed_filter": {...}|null}, plus "explain": [...] when the result has a trace.
nlohmann::json result_to_json(const FilterEngine& engine, const ClassifyResult& r);
// The same for people: one line, or the explain table when the result has a trace.
std::string result_to_text(const FilterEngine& engine, const ClassifyResult& r);

}  // namespace lfp::policy
