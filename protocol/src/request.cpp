// SPDX-License-Identifier: MIT
#include "lfp/protocol/request.hpp"

#include "lfp/protocol/wire.hpp"

#include <algorithm>
#include <vector>

namespace lfp::protocol {

namespace {

// JSON Pointer escaping of one token (RFC 6901).
std::string pointer_token(std::string_view key) {
  std::string t;
  for (char c : key) {
    if (c == '~') t += "~0";
    else if (c == '/') t += "~1";
    else t += c;
  }
  return t;
}

std::optional<std::string> duplicate_at(const policy::JsonValue& v, std::string& path) {
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_array() && !v[i].is_object()) continue;
      const size_t len = path.size();
      path += "/" + std::to_string(i);
      if (auto d = duplicate_at(v[i], path)) return d;
      path.resize(len);
    }
    return std::nullopt;
  }
  if (!v.is_object()) return std::nullopt;
  // Small objects (nearly all of them) by comparing each pair; larger ones sorted.
  const auto* first = v.members_begin();
  const size_t n = v.size();
  auto duplicate = [&](std::string_view key) {
    return path + "/" + pointer_token(key) + ": duplicate member \"" + std::string(key) +
           "\" (JSON objects must not repeat a member)";
  };
  if (n <= 16) {
    for (size_t i = 1; i < n; ++i)
      for (size_t j = 0; j < i; ++j)
        if (first[i].key == first[j].key) return duplicate(first[i].key);
  } else {
    std::vector<std::string_view> keys;
    keys.reserve(n);
    for (size_t i = 0; i < n; ++i) keys.push_back(first[i].key);
    std::sort(keys.begin(), keys.end());
    if (auto it = std::adjacent_find(keys.begin(), keys.end()); it != keys.end()) return duplicate(*it);
  }
  for (size_t i = 0; i < n; ++i) {
    const policy::JsonValue& m = first[i].value;
    if (!m.is_array() && !m.is_object()) continue;
    const size_t len = path.size();
    path += "/" + pointer_token(first[i].key);
    if (auto d = duplicate_at(m, path)) return d;
    path.resize(len);
  }
  return std::nullopt;
}

const nlohmann::json* member(const nlohmann::json& req, std::string_view name) {
  auto it = req.find(name);
  return it == req.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void bad(std::string_view at, std::string_view name, const std::string& what) {
  throw Error(ErrorCode::INVALID_PARAMETER, std::string(at) + "/" + pointer_token(name) + ": " + what);
}

// What was given instead, as a message shows it (bounded: it may be a large object).
std::string given(const nlohmann::json& m) { return log_safe(m.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 64); }

}  // namespace

std::optional<std::string> duplicate_member(const policy::JsonValue& v) {
  std::string path;
  return duplicate_at(v, path);
}

uint64_t uint_member(const nlohmann::json& req, std::string_view name, uint64_t dflt, uint64_t max, std::string_view at) {
  return maybe_uint_member(req, name, max, at).value_or(dflt);
}

std::optional<uint64_t> maybe_uint_member(const nlohmann::json& req, std::string_view name, uint64_t max, std::string_view at) {
  const nlohmann::json* m = member(req, name);
  if (!m) return std::nullopt;
  // (A non-negative integer built in C++ from an int is signed: the same number.)
  const bool non_negative = m->is_number_unsigned() || (m->is_number_integer() && m->get<int64_t>() >= 0);
  if (!non_negative || m->get<uint64_t>() > max)
    bad(at, name, "must be an integer 0.." + std::to_string(max) + ", not " + given(*m));
  return m->get<uint64_t>();
}

bool bool_member(const nlohmann::json& req, std::string_view name, bool dflt, std::string_view at) {
  const nlohmann::json* m = member(req, name);
  if (!m) return dflt;
  if (!m->is_boolean()) bad(at, name, "must be true or false, not " + given(*m));
  return m->get<bool>();
}

std::optional<std::string> string_member(const nlohmann::json& req, std::string_view name, std::string_view at) {
  const nlohmann::json* m = member(req, name);
  if (!m) return std::nullopt;
  if (!m->is_string()) bad(at, name, "must be a string, not " + given(*m));
  return m->get<std::string>();
}

const nlohmann::json* object_member(const nlohmann::json& req, std::string_view name, std::string_view at) {
  const nlohmann::json* m = member(req, name);
  if (m && !m->is_object()) bad(at, name, "must be an object, not " + given(*m));
  return m;
}

const nlohmann::json* array_member(const nlohmann::json& req, std::string_view name, std::string_view at) {
  const nlohmann::json* m = member(req, name);
  if (m && !m->is_array()) bad(at, name, "must be an array, not " + given(*m));
  return m;
}

void missing_member(std::string_view name, std::string_view what, std::string_view at) {
  bad(at, name, "required (" + std::string(what) + ")");
}

std::string name_member(const nlohmann::json& req, std::string_view name) {
  const nlohmann::json* m = member(req, name);
  if (!m) return {};
  if (!m->is_string()) bad({}, name, "must be a string, not " + given(*m));
  const std::string& s = m->get_ref<const std::string&>();
  if (s.size() > kMaxName)
    bad({}, name, "at most " + std::to_string(kMaxName) + " bytes (" + std::to_string(s.size()) + " given)");
  if (std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
    bad({}, name, "must not hold control characters (" + log_safe(s, 64) + ")");
  return s;
}

std::string log_safe(std::string_view s, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::string_view shown = s.substr(0, max);
  out.reserve(shown.size());
  for (unsigned char c : shown) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...(+" + std::to_string(s.size() - max) + " bytes)";
  return out;
}

nlohmann::json page_of(nlohmann::json items, const nlohmann::json& req, std::string_view member) {
  const size_t offset = uint_member(req, "offset", 0, SIZE_MAX >> 1);
  const size_t limit = uint_member(req, "limit", kDefaultPage, kMaxPage);
  const size_t n = items.is_array() ? items.size() : 0;
  nlohmann::json page = nlohmann::json::array();
  size_t i = std::min(offset, n), bytes = 0;
  for (; i < n && i - offset < limit && (page.empty() || bytes < wire::kPageBytes); ++i) {
    bytes += items[i].dump().size();
    page.push_back(std::move(items[i]));
  }
  return {{std::string(member), std::move(page)}, {"total", n}, {"next_offset", i < n ? nlohmann::json(i) : nlohmann::json()}};
}

}  // namespace lfp::protocol
