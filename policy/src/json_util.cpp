// SPDX-License-Identifier: MIT
// JSON paths, member readers and small codecs shared by the policy sources.
#include <cstdio>

#include "internal.hpp"

namespace lfp::policy::detail {

std::string pointer_token(std::string_view member) {
  if (!valid_utf8(member)) return pointer_token(text_to_json(std::string(member)).get<std::string>());
  std::string out;
  out.reserve(member.size());
  for (char c : member) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string kind_of(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a non-integer number";
    case json::value_t::binary: return "binary data";
    case json::value_t::discarded: break;
  }
  return "an unknown value";
}

std::string kind_of(const JsonValue& j) {
  using T = JsonValue::Type;
  switch (j.type()) {
    case T::NUL: return "null";
    case T::OBJECT: return "an object";
    case T::ARRAY: return "an array";
    case T::STRING: return "a string";
    case T::BOOLEAN: return "a boolean";
    case T::INTEGER:
    case T::UNSIGNED: return "an integer";
    case T::FLOAT: return "a non-integer number";
    case T::OPAQUE: return "binary data or a value nested too deeply";
  }
  return "an unknown value";
}

std::string quote(std::string_view s, size_t max) {
  // The result is valid UTF-8 whatever the input (messages end up in JSON): valid multi-byte
  // sequences are kept whole, other bytes above 0x7e and control bytes become \xNN.
  std::string out = "\"";
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    if (n++ == max) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c >= 0x80 ? utf8_sequence_length(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i) : 0;
    if (len) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  out += '"';
  return out;
}

Members::Members(const JsonValue& j, const Path& path, std::string_view what,
                 std::initializer_list<std::string_view> allowed)
    : j_(j), path_(path) {
  if (!j.is_object()) fail(path_, "expected " + std::string(what) + " (a JSON object), got " + kind_of(j));
  for (auto it = j.members_begin(); it != j.members_end(); ++it) {
    bool ok = false;
    for (auto a : allowed)
      if (a == it->key) {
        ok = true;
        break;
      }
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(at(path_, it->key), "unknown member " + quote(it->key) + " in " + std::string(what) +
                                   " (members: " + list + ")");
    }
  }
}

const JsonValue* Members::get(std::string_view name) const {
  const JsonValue* v = j_.find(name);
  return v && !v->is_null() ? v : nullptr;
}

std::string get_string(const Members& m, std::string_view name, bool required) {
  const JsonValue* v = m.get(name);
  if (!v) {
    if (required) fail(m.path(name), "required member missing (expected a string)");
    return {};
  }
  if (!v->is_string()) fail(m.path(name), "expected a string, got " + kind_of(*v));
  const std::string_view s = v->str();
  if (required && s.empty()) fail(m.path(name), "must not be empty");
  return std::string(s);
}

json text_to_json(const std::string& s) {
  if (valid_utf8(s)) return s;
  // Keep the valid sequences, replace each invalid byte with U+FFFD.
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : utf8_sequence_length(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i);
    if (len) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

std::string bytes_from_json(const JsonValue& j, const Path& path) {
  if (j.is_string()) return std::string(j.str());
  if (j.is_object()) {
    Members m(j, path, "a byte string ({\"hex\": \"...\"})", {"hex"});
    const JsonValue* h = m.get("hex");
    if (!h || !h->is_string()) fail(m.path("hex"), "expected a string of hex digits");
    const std::string_view s = h->str();
    if (s.size() % 2) fail(m.path("hex"), "odd number of hex digits");
    std::string out;
    out.reserve(s.size() / 2);
    for (size_t i = 0; i < s.size(); i += 2) {
      int a = hex_digit(s[i]), b = hex_digit(s[i + 1]);
      if (a < 0 || b < 0) fail(m.path("hex"), "not a hex digit at offset " + std::to_string(a < 0 ? i : i + 1));
      out += static_cast<char>(a << 4 | b);
    }
    return out;
  }
  fail(path, "expected a string or {\"hex\": \"...\"}, got " + kind_of(j));
}

std::string get_bytes(const Members& m, std::string_view name) {
  const JsonValue* v = m.get(name);
  if (!v) return {};
  if (v->is_string()) return std::string(v->str());  // without building the path
  return bytes_from_json(*v, m.path(name));
}

json bytes_to_json(const std::string& s) {
  if (valid_utf8(s)) return s;
  static const char* hex = "0123456789abcdef";
  std::string h;
  h.reserve(s.size() * 2);
  for (unsigned char c : s) {
    h += hex[c >> 4];
    h += hex[c & 15];
  }
  return json{{"hex", h}};
}

Guid guid_from_json(const JsonValue& j, const Path& path) {
  if (!j.is_string()) fail(path, "expected a GUID string, got " + kind_of(j));
  const std::string_view s = j.str();
  auto g = Guid::parse(s);
  if (!g) fail(path, "not a GUID: " + quote(s) + " (expected 8-4-4-4-12 hex digits, braces optional)");
  return *g;
}

std::optional<Guid> get_guid(const Members& m, std::string_view name, bool required) {
  const JsonValue* v = m.get(name);
  if (!v) {
    if (required) fail(m.path(name), "required member missing (expected a GUID)");
    return std::nullopt;
  }
  if (v->is_string())
    if (auto g = Guid::parse(v->str())) return *g;  // without building the path
  return guid_from_json(*v, m.path(name));
}

uint32_t get_flags(const Members& m, uint32_t allowed, std::string_view what) {
  const JsonValue* v = m.get("flags");
  if (!v) return 0;
  auto path = [&] { return m.path("flags"); };
  if (!v->is_array()) fail(path(), "expected an array of flag names, got " + kind_of(*v));
  uint32_t flags = 0;
  for (size_t i = 0; i < v->size(); ++i) {
    const JsonValue& e = (*v)[i];
    if (!e.is_string()) fail(at(path(), i), "expected a flag name, got " + kind_of(e));
    const std::string_view s = e.str();
    auto f = flag_from_string(s);
    if (!f) fail(at(path(), i), "unknown flag " + quote(s));
    if (!(allowed & *f))
      fail(at(path(), i), "INVALID_FLAGS: " + std::string(what) + " does not take flag " + std::string(s));
    flags |= *f;
  }
  return flags;
}

json flags_to_json(uint32_t flags) {
  json a = json::array();
  for (auto n : flag_names(flags)) a.push_back(std::string(n));
  return a;
}

LayerId layer_from_json(const JsonValue& j, const Path& path) {
  if (!j.is_string()) fail(path, "expected a layer name, got " + kind_of(j));
  const std::string_view s = j.str();
  auto l = layer_from_string(s);
  if (!l) fail(path, "LAYER_NOT_FOUND: unknown layer " + quote(s) + " (see `lfp layers`)");
  return *l;
}

uint64_t uint_from_json(const JsonValue& j, const Path& path, uint64_t max, std::string_view what) {
  uint64_t v = 0;
  auto range = [&] { return std::string(what) + " must be an integer in 0.." + std::to_string(max); };
  if (j.is_number_unsigned()) {
    v = j.unsigned_value();
  } else if (j.is_number_integer()) {  // a signed JSON integer (built in C++ from an int)
    if (j.integer() < 0) fail(path, range() + ", got " + std::to_string(j.integer()));
    v = static_cast<uint64_t>(j.integer());
  } else if (j.is_string()) {
    const std::string_view s = j.str();
    bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    size_t i = hex ? 2 : 0;
    if (i == s.size()) fail(path, range() + ", got " + quote(s));
    for (; i < s.size(); ++i) {
      int d = hex ? hex_digit(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
      if (d < 0) fail(path, range() + ", got " + quote(s));
      unsigned base = hex ? 16 : 10;
      if (v > (UINT64_MAX - static_cast<unsigned>(d)) / base) fail(path, range() + ", got " + quote(s));
      v = v * base + static_cast<unsigned>(d);
    }
  } else {
    fail(path, range() + ", got " + kind_of(j));
  }
  if (v > max) fail(path, range() + ", got " + std::to_string(v));
  return v;
}

}  // namespace lfp::policy::detail
