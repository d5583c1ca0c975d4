// SPDX-License-Identifier: MIT
// Values in policy files and requests: addresses, prefixes, numbers, named constants, MACs,
// byte strings, user sets and ranges, typed by the field's data type at the layer.
#include <charconv>

#include "internal.hpp"

namespace lfp::policy::detail {

namespace {

uint64_t max_of(DataType t) {
  unsigned w = uint_width(t);
  return w >= 64 ? UINT64_MAX : (uint64_t{1} << w) - 1;
}

bool is_flags_field(FieldId f) { return f == FieldId::FLAGS || f == FieldId::L2_FLAGS; }

// What a field of type t takes, for messages.
std::string expected(FieldId f, DataType t) {
  const std::string name(field_name(f));
  if (is_address_field(f))
    return t == DataType::BYTE_ARRAY16_TYPE ? "an IPv6 address" : "an IPv4 address (a.b.c.d)";
  switch (t) {
    case DataType::UINT8:
    case DataType::UINT16:
    case DataType::UINT32:
    case DataType::UINT64: {
      std::string s = "a " + std::string(to_string(t)) + " (0.." + std::to_string(max_of(t)) + ")";
      switch (f) {
        case FieldId::IP_PROTOCOL:
        case FieldId::EMBEDDED_PROTOCOL: s += " or a protocol name (TCP, UDP, ICMP, ...)"; break;
        case FieldId::FLAGS: s += " or flag names (IS_LOOPBACK|IS_FRAGMENT)"; break;
        case FieldId::DIRECTION: s += " or INBOUND / OUTBOUND"; break;
        case FieldId::ETHER_TYPE: s += " or IPV4, IPV6, ARP, VLAN"; break;
        default:
          if (field_is_interface(f)) s += " or an interface by name ({\"name\": \"eth0\"})";
          break;
      }
      return s;
    }
    case DataType::BYTE_ARRAY16_TYPE: return "an IPv6 address";
    case DataType::BYTE_ARRAY6_TYPE: return "a MAC address (aa:bb:cc:dd:ee:ff)";
    case DataType::BYTE_BLOB_TYPE:
    case DataType::UNICODE_STRING_TYPE: return "a string or {\"hex\": \"...\"}";
    default: return "a " + std::string(to_string(t));
  }
}

std::optional<uint64_t> parse_number(std::string_view s) {
  bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  if (hex) s.remove_prefix(2);
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, hex ? 16 : 10);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// An unsigned integer from text: a number, a named constant, or for flags fields NAME|NAME|0x8.
uint64_t uint_from_text(FieldId f, DataType t, std::string_view text, const Path& path) {
  auto bad = [&]() -> uint64_t {
    fail(path, "expected " + expected(f, t) + " for " + std::string(field_name(f)) + ", got " + quote(text));
  };
  auto one = [&](std::string_view part) -> uint64_t {
    if (auto n = parse_number(part)) return *n;
    if (auto c = named_constant(f, part)) return *c;
    return bad();
  };
  uint64_t v = 0;
  if (is_flags_field(f) && text.find('|') != std::string_view::npos) {
    size_t start = 0;
    while (true) {
      size_t bar = text.find('|', start);
      v |= one(text.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start));
      if (bar == std::string_view::npos) break;
      start = bar + 1;
    }
  } else {
    v = one(text);
  }
  if (v > max_of(t))
    fail(path, std::to_string(v) + " does not fit " + std::string(to_string(t)) + " (" + std::string(field_name(f)) +
                   " takes 0.." + std::to_string(max_of(t)) + ")");
  return v;
}

uint32_t uid_from_json(const JsonValue& j, const Path& path, std::string_view what) {
  return static_cast<uint32_t>(uint_from_json(j, path, UINT32_MAX, what));
}

std::vector<uint32_t> ids_from_json(const JsonValue& j, const Path& path, std::string_view what) {
  if (!j.is_array()) fail(path, "expected an array of " + std::string(what) + "s, got " + kind_of(j));
  std::vector<uint32_t> out;
  for (size_t i = 0; i < j.size(); ++i) out.push_back(uid_from_json(j[i], at(path, i), what));
  return out;
}

}  // namespace

bool is_address_field(FieldId f) {
  return field_type(f, IpFamily::V4) == DataType::UINT32 && field_type(f, IpFamily::V6) == DataType::BYTE_ARRAY16_TYPE;
}

OwnedValue plain_from_text(FieldId f, DataType t, std::string_view text, const Path& path) {
  OwnedValue v;
  v.type = t;
  switch (t) {
    case DataType::UINT8:
    case DataType::UINT16:
    case DataType::UINT32:
    case DataType::UINT64:
      if (t == DataType::UINT32 && is_address_field(f)) {
        if (auto a = parse_ip4(text)) {
          v.u = *a;
          return v;
        }
        if (auto n = parse_number(text); n && *n <= UINT32_MAX) {
          v.u = *n;
          return v;
        }
        fail(path, "expected " + expected(f, t) + " for " + std::string(field_name(f)) + ", got " + quote(text));
      }
      v.u = uint_from_text(f, t, text, path);
      return v;
    case DataType::BYTE_ARRAY16_TYPE:
      if (auto a = parse_ip6(text)) {
        v.bytes = *a;
        return v;
      }
      break;
    case DataType::BYTE_ARRAY6_TYPE:
      if (auto m = parse_mac(text)) {
        std::copy(m->begin(), m->end(), v.bytes.begin());
        return v;
      }
      break;
    case DataType::BYTE_BLOB_TYPE:
    case DataType::UNICODE_STRING_TYPE:
      v.str = std::string(text);
      return v;
    default:
      fail(path, std::string(field_name(f)) + " takes no plain value (" + std::string(to_string(t)) + ")");
  }
  fail(path, "expected " + expected(f, t) + " for " + std::string(field_name(f)) + ", got " + quote(text));
}

OwnedValue plain_from_json(FieldId f, DataType t, const JsonValue& j, const Path& path) {
  switch (t) {
    case DataType::UINT8:
    case DataType::UINT16:
    case DataType::UINT32:
    case DataType::UINT64:
      if (j.is_string()) return plain_from_text(f, t, j.str(), path);
      if (uint64_t u; j.get_uint(u) && u <= max_of(t)) return OwnedValue{t, u};  // without building messages
      if (j.is_number()) {
        std::string what = std::string(field_name(f)) + " (" + std::string(to_string(t)) + ")";
        return OwnedValue{t, uint_from_json(j, path, max_of(t), what)};
      }
      break;
    case DataType::BYTE_ARRAY16_TYPE:
    case DataType::BYTE_ARRAY6_TYPE:
      if (j.is_string()) return plain_from_text(f, t, j.str(), path);
      break;
    case DataType::BYTE_BLOB_TYPE:
    case DataType::UNICODE_STRING_TYPE:
      if (j.is_string() || j.is_object()) {
        OwnedValue v;
        v.type = t;
        v.str = bytes_from_json(j, path);
        return v;
      }
      break;
    default:
      fail(path, std::string(field_name(f)) + " takes no plain value (" + std::string(to_string(t)) + ")");
  }
  fail(path, "expected " + expected(f, t) + " for " + std::string(field_name(f)) + ", got " + kind_of(j));
}

json plain_to_json(FieldId f, const OwnedValue& v) {
  switch (v.type) {
    case DataType::UINT8:
    case DataType::UINT16:
    case DataType::UINT64: return v.u;
    case DataType::UINT32:
      if (is_address_field(f) && v.u <= UINT32_MAX) return format_ip4(static_cast<uint32_t>(v.u));
      return v.u;
    case DataType::BYTE_ARRAY16_TYPE: return format_ip6(v.bytes);
    case DataType::BYTE_ARRAY6_TYPE: return format_mac(v.bytes);
    case DataType::BYTE_BLOB_TYPE:
    case DataType::UNICODE_STRING_TYPE: return bytes_to_json(v.str);
    default: return nullptr;
  }
}

ConditionValue condition_value_from_json(FieldId f, IpFamily family, const JsonValue& v, const Path& path) {
  const DataType ft = field_type(f, family);
  if (v.is_null()) return ConditionValue{};
  if (ft == DataType::TOKEN_INFORMATION_TYPE) {
    // SECURITY_DESCRIPTOR_TYPE: on Linux, the users and groups the condition grants.
    Members m(v, path, "a user set ({\"uids\": [...], \"gids\": [...]})", {"uids", "gids"});
    UserSet u;
    if (const JsonValue* x = m.get("uids")) u.uids = ids_from_json(*x, m.path("uids"), "uid");
    if (const JsonValue* x = m.get("gids")) u.gids = ids_from_json(*x, m.path("gids"), "gid");
    return ConditionValue::user_set(std::move(u));
  }
  if (v.is_object() && v.contains("name")) {
    // An interface by name: lfpd resolves it where it runs, and again as interfaces come and go.
    Members m(v, path, "an interface by name ({\"name\": \"eth0\"})", {"name"});
    const JsonValue* n = m.get("name");
    if (!n || !n->is_string() || n->str().empty())
      fail(m.path("name"), "expected an interface name (\"eth0\"), got " + (n ? kind_of(*n) : std::string("null")));
    if (!field_is_interface(f)) fail(path, std::string(field_name(f)) + " holds no interface: it takes no interface name");
    return ConditionValue::interface(ft, std::string(n->str()));
  }
  if (v.is_object() && (v.contains("low") || v.contains("high"))) {
    Members m(v, path, "a range ({\"low\": ..., \"high\": ...})", {"low", "high"});
    const JsonValue* lo = m.get("low");
    const JsonValue* hi = m.get("high");
    if (!lo) fail(m.path("low"), "a range needs both \"low\" and \"high\"");
    if (!hi) fail(m.path("high"), "a range needs both \"low\" and \"high\"");
    return ConditionValue::range(plain_from_json(f, ft, *lo, m.path("low")), plain_from_json(f, ft, *hi, m.path("high")));
  }
  if (v.is_string() && is_address_field(f)) {
    const std::string_view s = v.str();
    const size_t slash = s.find('/');
    if (slash != std::string_view::npos) {
      const std::string_view addr = std::string_view(s).substr(0, slash), suffix = std::string_view(s).substr(slash + 1);
      const bool digits = !suffix.empty() && suffix.size() <= 3 &&
                          suffix.find_first_not_of("0123456789") == std::string_view::npos;
      if (ft == DataType::BYTE_ARRAY16_TYPE) {
        auto a = parse_ip6(addr);
        if (!a) fail(path, "expected an IPv6 address or prefix (2001:db8::/32), got " + quote(s));
        if (!digits) fail(path, "INVALID_NET_MASK: bad prefix length in " + quote(s) + " (expected /0../128)");
        unsigned len = static_cast<unsigned>(std::stoul(std::string(suffix)));
        if (len > 128) fail(path, "INVALID_NET_MASK: prefix length " + std::to_string(len) + " is above 128");
        return ConditionValue::v6_prefix_of(*a, len);
      }
      auto a = parse_ip4(addr);
      if (!a) fail(path, "expected an IPv4 address or prefix (192.0.2.0/24), got " + quote(s));
      if (digits) {
        unsigned len = static_cast<unsigned>(std::stoul(std::string(suffix)));
        if (len > 32) fail(path, "INVALID_NET_MASK: prefix length " + std::to_string(len) + " is above 32");
        return ConditionValue::v4_prefix(*a, len);
      }
      auto mask = parse_ip4(suffix);
      if (!mask) fail(path, "INVALID_NET_MASK: bad prefix length or mask in " + quote(s) + " (expected /0../32 or /255.255.255.0)");
      ConditionValue c = ConditionValue::v4_prefix(*a, 0);
      c.v4_mask = *mask;  // a non-contiguous mask is left for validate_condition to reject
      return c;
    }
  }
  return ConditionValue::plain(plain_from_json(f, ft, v, path));
}

json condition_value_to_json(FieldId f, const ConditionValue& c) {
  if (!c.interface_name.empty()) return json{{"name", text_to_json(c.interface_name)}};
  switch (c.type) {
    case DataType::EMPTY: return nullptr;
    case DataType::V4_ADDR_MASK: {
      int len = v4_prefix_len(c.v4_mask);
      return format_ip4(static_cast<uint32_t>(c.value.u)) + "/" +
             (len >= 0 ? std::to_string(len) : format_ip4(c.v4_mask));
    }
    case DataType::V6_ADDR_MASK: return format_ip6(c.value.bytes) + "/" + std::to_string(c.v6_prefix);
    case DataType::RANGE_TYPE: return json{{"low", plain_to_json(f, c.value)}, {"high", plain_to_json(f, c.high)}};
    case DataType::SECURITY_DESCRIPTOR_TYPE: return json{{"uids", c.users.uids}, {"gids", c.users.gids}};
    default: {
      OwnedValue v = c.value;
      v.type = c.type;
      return plain_to_json(f, v);
    }
  }
}

Token token_from_text(std::string_view text, const Path& path) {
  auto bad = [&]() -> Token {
    fail(path, "expected a user: a uid (1000) or \"uid=1000,gids=1000+27\", got " + quote(text));
  };
  auto id = [&](std::string_view s) -> uint32_t {
    auto n = parse_number(s);
    if (!n || *n > UINT32_MAX) bad();
    return static_cast<uint32_t>(*n);
  };
  Token t;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
    t.uid = id(text);
    return t;
  }
  bool have_uid = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.starts_with("uid=")) {
      if (have_uid) bad();
      t.uid = id(item.substr(4));
      have_uid = true;
    } else if (item.starts_with("gids=")) {
      std::string_view g = item.substr(5);
      size_t s = 0;
      while (true) {
        size_t plus = g.find('+', s);
        t.gids.push_back(id(g.substr(s, plus == std::string_view::npos ? std::string_view::npos : plus - s)));
        if (plus == std::string_view::npos) break;
        s = plus + 1;
      }
    } else {
      bad();
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (!have_uid) bad();
  return t;
}

Token token_from_json(const JsonValue& j, const Path& path) {
  if (j.is_string()) return token_from_text(j.str(), path);
  if (j.is_number()) return Token{uid_from_json(j, path, "a uid"), {}};
  Members m(j, path, "a user ({\"uid\": 1000, \"gids\": [1000, 27]})", {"uid", "gids"});
  const JsonValue* u = m.get("uid");
  if (!u) fail(m.path("uid"), "required member missing (the user's uid)");
  Token t;
  t.uid = uid_from_json(*u, m.path("uid"), "a uid");
  if (const JsonValue* g = m.get("gids")) t.gids = ids_from_json(*g, m.path("gids"), "gid");
  return t;
}

}  // namespace lfp::policy::detail
