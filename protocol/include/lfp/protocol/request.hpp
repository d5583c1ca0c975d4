// SPDX-License-Identifier: MIT
#pragma once
// One rule for what a client sends lfpd, on the wire and in the files `lfp` reads (docs/protocol.md,
// docs/security.md): no JSON object repeats a member; request members have their type and range
// checked, and a failure names the member; client strings that reach a log line are escaped.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lfp/engine/error.hpp"
#include "lfp/policy/json_doc.hpp"

namespace lfp::protocol {

// The first member an object repeats, anywhere in `v`, as "/path/member: duplicate member ..."
// (nlohmann and JsonDoc would keep the last silently); nullopt when there is none.
std::optional<std::string> duplicate_member(const policy::JsonValue& v);

// Members of a request object (absent or null: the default, nullopt or nullptr). Every op reads its
// members through these, never with nlohmann's get<T>() or value() (whose type_error names no member).
// A member of the wrong type or out of range throws lfp::Error INVALID_PARAMETER whose detail() names
// it, "<at>/<name>: ..." ("/txn_wait_timeout_ms: ..."); `at` is the object's own path in the request ("" for the
// request itself, "/template" for a member of its template).
uint64_t uint_member(const nlohmann::json& req, std::string_view name, uint64_t dflt, uint64_t max,
                     std::string_view at = {});
std::optional<uint64_t> maybe_uint_member(const nlohmann::json& req, std::string_view name, uint64_t max,
                                          std::string_view at = {});
bool bool_member(const nlohmann::json& req, std::string_view name, bool dflt, std::string_view at = {});
std::optional<std::string> string_member(const nlohmann::json& req, std::string_view name, std::string_view at = {});
const nlohmann::json* object_member(const nlohmann::json& req, std::string_view name, std::string_view at = {});
const nlohmann::json* array_member(const nlohmann::json& req, std::string_view name, std::string_view at = {});
// What a required member that is absent gets: "<at>/<name>: required (<what>)".
[[noreturn]] void missing_member(std::string_view name, std::string_view what, std::string_view at = {});

// A listing op's page (as `enum`'s, docs/protocol.md): the request's "offset" (0) and "limit" (kDefaultPage,
// at most kMaxPage), ending early at wire::kPageBytes; as {"<member>": [...], "total": N,
// "next_offset": M, or null after the last}. `items`: the whole listing, in its order.
inline constexpr size_t kDefaultPage = 1000, kMaxPage = 10000;
nlohmann::json page_of(nlohmann::json items, const nlohmann::json& req, std::string_view member);

// A name a client gives itself (hello's "name"): at most kMaxName bytes of UTF-8 with no control
// characters, else Error INVALID_PARAMETER. It is shown in logs and in every session listing.
inline constexpr size_t kMaxName = 256;
std::string name_member(const nlohmann::json& req, std::string_view name);

// A client-supplied string as it may appear in a log line: control characters (newline, ESC, DEL)
// as \xNN, and cut at `max` bytes with the length that was cut ("...(+N bytes)").
std::string log_safe(std::string_view s, size_t max = kMaxName);

}  // namespace lfp::protocol
