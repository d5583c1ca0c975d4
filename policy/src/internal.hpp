// SPDX-License-Identifier: MIT
#pragma once
// Helpers shared by the policy sources (not installed): JSON paths, member readers, value codecs.
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lfp/engine/engine.hpp"
#include "lfp/engine/error.hpp"
#include "lfp/policy/json_doc.hpp"
#include "lfp/policy/policy.hpp"
#include "lfp/policy/utf8.hpp"

namespace lfp::policy::detail {

using nlohmann::json;

// --- JSON pointers (RFC 6901) ------------------------------------------------------------------
std::string pointer_token(std::string_view member);  // escapes '~' and '/'
inline std::string at(const std::string& path, std::string_view member) {
  std::string out;
  if (member.find_first_of("~/") != std::string_view::npos || !valid_utf8(member)) return path + "/" + pointer_token(member);
  out.reserve(path.size() + 1 + member.size());
  out.append(path).append(1, '/').append(member);
  return out;
}
inline std::string at(const std::string& path, size_t index) {
  char buf[24];
  const int n = std::snprintf(buf, sizeof buf, "/%zu", index);
  std::string out;
  out.reserve(path.size() + static_cast<size_t>(n));
  out.append(path).append(buf, static_cast<size_t>(n));
  return out;
}

[[noreturn]] inline void fail(const std::string& path, std::string reason) {
  throw PolicyError(path, std::move(reason));
}

// A JSON pointer built only when a message needs it: a string, or a parent and a member or an
// index. A Path refers to its parent and base string without owning them: pass children as
// arguments or keep them as locals, never past their parent (or a temporary base string).
class Path {
 public:
  Path(const std::string& base) : base_(&base) {}  // NOLINT: implicit, paths are often strings
  Path(const Path& parent, std::string_view member) : parent_(&parent), member_(member) {}
  Path(const Path& parent, size_t index) : parent_(&parent), index_(index), is_index_(true) {}
  Path(const Path&) = default;
  std::string str() const {
    if (base_) return *base_;
    return is_index_ ? at(parent_->str(), index_) : at(parent_->str(), member_);
  }
  operator std::string() const { return str(); }  // NOLINT

 private:
  const std::string* base_ = nullptr;
  const Path* parent_ = nullptr;
  std::string_view member_;
  size_t index_ = 0;
  bool is_index_ = false;
};
inline Path at(const Path& path, std::string_view member) { return Path(path, member); }
inline Path at(const Path& path, size_t index) { return Path(path, index); }
[[noreturn]] inline void fail(const Path& path, std::string reason) { throw PolicyError(path.str(), std::move(reason)); }
// "a string", "a number", "an object", ... for error messages.
std::string kind_of(const json& j);
std::string kind_of(const JsonValue& j);
// Quotes a user-supplied text for a message, escaping quotes and control bytes; longer texts are
// cut at `max` bytes.
std::string quote(std::string_view s, size_t max = 80);

// --- Objects with a fixed set of members ------------------------------------------------------
// The readers read JsonValue (lfp/policy/json_doc.hpp): parsed text, or a view of a nlohmann::json.
class Members {
 public:
  // Checks that `j` is an object and has no member outside `allowed`; `what` names the object
  // ("a filter") in messages. `path`'s parent must outlive the Members.
  Members(const JsonValue& j, const Path& path, std::string_view what, std::initializer_list<std::string_view> allowed);
  // The member, or null when absent or JSON null.
  const JsonValue* get(std::string_view name) const;
  bool present(std::string_view name) const { return j_.contains(name); }
  Path path(std::string_view member) const { return Path(path_, member); }
  const Path& path() const { return path_; }

 private:
  const JsonValue& j_;
  Path path_;
};

std::string get_string(const Members& m, std::string_view name, bool required = false);
// Bytes: a JSON string (UTF-8 text) or {"hex": "..."} (any bytes).
std::string get_bytes(const Members& m, std::string_view name);
std::string bytes_from_json(const JsonValue& j, const Path& path);
json bytes_to_json(const std::string& s);  // a string when valid UTF-8, else {"hex": ...}
json text_to_json(const std::string& s);   // display text: invalid UTF-8 bytes become U+FFFD
std::optional<Guid> get_guid(const Members& m, std::string_view name, bool required = false);
Guid guid_from_json(const JsonValue& j, const Path& path);
uint32_t get_flags(const Members& m, uint32_t allowed, std::string_view what);
json flags_to_json(uint32_t flags);
LayerId layer_from_json(const JsonValue& j, const Path& path);

// An unsigned integer: a JSON number, or a string in decimal or 0x-hex. `max` bounds it.
uint64_t uint_from_json(const JsonValue& j, const Path& path, uint64_t max, std::string_view what);

// --- Values ------------------------------------------------------------------------------------
// True for the address fields (UINT32 at _V4 layers, BYTE_ARRAY16_TYPE at _V6 layers).
bool is_address_field(FieldId f);

// A plain value of type `t` for field `f` from JSON or from command-line text.
OwnedValue plain_from_json(FieldId f, DataType t, const JsonValue& v, const Path& path);
OwnedValue plain_from_text(FieldId f, DataType t, std::string_view text, const Path& path);
json plain_to_json(FieldId f, const OwnedValue& v);

// A filter condition's value for field `f` at a layer of `family` (see docs/policy-format.md).
ConditionValue condition_value_from_json(FieldId f, IpFamily family, const JsonValue& v, const Path& path);
json condition_value_to_json(FieldId f, const ConditionValue& v);

// A user (ALE_USER_ID request value): 1000, "1000", "uid=1000,gids=1000+27", {"uid":..,"gids":[..]}.
Token token_from_text(std::string_view text, const Path& path);
Token token_from_json(const JsonValue& j, const Path& path);

// --- Objects -----------------------------------------------------------------------------------
Provider provider_from_json(const JsonValue& j, const Path& path);
Sublayer sublayer_from_json(const JsonValue& j, const Path& path);
Callout callout_from_json(const JsonValue& j, const Path& path);
ProviderContext provider_context_from_json(const JsonValue& j, const Path& path);
Filter filter_from_json(const JsonValue& j, const Path& path);

}  // namespace lfp::policy::detail
