// SPDX-License-Identifier: MIT
// Fast compact JSON text for nlohmann::json (lfp/protocol/json_text.hpp).
#include "lfp/protocol/json_text.hpp"

#include "lfp/policy/utf8.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

namespace lfp::wire {

namespace {

using nlohmann::json;

void append_string(std::string& out, const std::string& s, bool replace_invalid) {
  const size_t mark = out.size();
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = policy::utf8_sequence_length(p + i, n - i);
      if (!len) {
        // Invalid UTF-8: nlohmann decides (replaces, or throws its type_error).
        out.resize(mark);
        out += json(s).dump(-1, ' ', false, replace_invalid ? json::error_handler_t::replace : json::error_handler_t::strict);
        return;
      }
      i += len;
      continue;
    }
    out.append(s, run, i - run);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        static const char* hex = "0123456789abcdef";
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        out.append(esc, 6);
      }
    }
    run = ++i;
  }
  out.append(s, run, n - run);
  out += '"';
}

void append_value(std::string& out, const json& j, bool replace_invalid) {
  char buf[32];
  switch (j.type()) {
    case json::value_t::null: out += "null"; return;
    case json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case json::value_t::number_integer: {
      auto r = std::to_chars(buf, buf + sizeof buf, j.get<int64_t>());
      out.append(buf, r.ptr);
      return;
    }
    case json::value_t::number_unsigned: {
      auto r = std::to_chars(buf, buf + sizeof buf, j.get<uint64_t>());
      out.append(buf, r.ptr);
      return;
    }
    case json::value_t::number_float: {
      const double d = j.get<double>();
      if (!std::isfinite(d)) {
        out += "null";  // as nlohmann writes them
        return;
      }
      auto r = std::to_chars(buf, buf + sizeof buf, d);  // the shortest text that reads back as d
      out.append(buf, r.ptr);
      if (std::memchr(buf, '.', static_cast<size_t>(r.ptr - buf)) == nullptr &&
          std::memchr(buf, 'e', static_cast<size_t>(r.ptr - buf)) == nullptr)
        out += ".0";  // still a float when read back
      return;
    }
    case json::value_t::string: append_string(out, j.get_ref<const std::string&>(), replace_invalid); return;
    case json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) out += ',';
        first = false;
        append_value(out, e, replace_invalid);
      }
      out += ']';
      return;
    }
    case json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, v] : j.get_ref<const json::object_t&>()) {
        if (!first) out += ',';
        first = false;
        append_string(out, k, replace_invalid);
        out += ':';
        append_value(out, v, replace_invalid);
      }
      out += '}';
      return;
    }
    default:  // binary, discarded: as nlohmann writes them
      out += j.dump(-1, ' ', false, replace_invalid ? json::error_handler_t::replace : json::error_handler_t::strict);
      return;
  }
}

}  // namespace

void append_json(std::string& out, const nlohmann::json& j, bool replace_invalid) { append_value(out, j, replace_invalid); }

}  // namespace lfp::wire
