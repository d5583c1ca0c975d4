// SPDX-License-Identifier: MIT
#include "lfp/netevents/template.hpp"

#include <algorithm>

#include "lfp/engine/guid.hpp"

namespace lfp::netevents {

using nlohmann::json;

namespace {

constexpr std::string_view kFieldNames[] = {"IP_PROTOCOL",   "IP_LOCAL_ADDRESS", "IP_REMOTE_ADDRESS",
                                            "IP_LOCAL_PORT", "IP_REMOTE_PORT",   "ALE_APP_ID",
                                            "ALE_USER_ID",   "NET_EVENT_TYPE",   "FILTER_KEY",
                                            "PROVIDER_KEY",  "LAYER_KEY"};

enum class Kind { NUMBER, ADDRESS, TEXT };
Kind kind_of(TemplateField f) {
  switch (f) {
    case TemplateField::IP_LOCAL_ADDRESS:
    case TemplateField::IP_REMOTE_ADDRESS: return Kind::ADDRESS;
    case TemplateField::ALE_APP_ID:
    case TemplateField::FILTER_KEY:
    case TemplateField::PROVIDER_KEY:
    case TemplateField::LAYER_KEY: return Kind::TEXT;
    default: return Kind::NUMBER;
  }
}

[[noreturn]] void bad(const std::string& path, const std::string& why) { throw EventError(path + ": " + why); }

int64_t number(TemplateField f, const json& v, const std::string& path) {
  if (f == TemplateField::NET_EVENT_TYPE) {
    auto t = v.is_string() ? event_type_from_string(v.get<std::string>()) : std::nullopt;
    if (!t) bad(path, "must be a net event type name");
    return static_cast<int64_t>(*t);
  }
  if (f == TemplateField::IP_PROTOCOL) {
    try {
      return parse_event(json{{"type", "CLASSIFY_DROP"}, {"ip_protocol", v}}, 0).ip_protocol;
    } catch (const EventError& e) {
      bad(path, "must be a protocol number or tcp, udp, icmp, icmpv6");
    }
  }
  const uint64_t max = f == TemplateField::ALE_USER_ID ? UINT32_MAX : 65535;
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<uint64_t>() > max) bad(path, "must be an integer 0.." + std::to_string(max));
  return static_cast<int64_t>(v.get<uint64_t>());
}

AddrKey address(const json& v, const std::string& path) {
  auto a = v.is_string() ? parse_address(v.get<std::string>()) : std::nullopt;
  if (!a) bad(path, "must be an IPv4 or IPv6 address");
  return *a;
}

std::string text(TemplateField f, const json& v, const std::string& path) {
  if (!v.is_string()) bad(path, "must be a string");
  std::string s = v.get<std::string>();
  if (f == TemplateField::FILTER_KEY || f == TemplateField::PROVIDER_KEY) {
    auto g = Guid::parse(s);
    if (!g) bad(path, "must be a GUID");
    return g->str();
  }
  return s;
}

TemplateCondition parse_condition(const json& c, const std::string& path) {
  if (!c.is_object()) bad(path, "a condition is {\"field\", \"match\", \"value\"}");
  for (const auto& [k, v] : c.items())
    if (k != "field" && k != "match" && k != "value") bad(path + "/" + k, "unknown member");
  if (!c.contains("field") || !c["field"].is_string()) bad(path + "/field", "must be a field name");
  const std::string fname = c["field"].get<std::string>();
  auto it = std::find(std::begin(kFieldNames), std::end(kFieldNames), fname);
  if (it == std::end(kFieldNames))
    bad(path + "/field", "'" + fname + "' cannot be matched against net events (IP_PROTOCOL, IP_LOCAL_ADDRESS, "
                         "IP_REMOTE_ADDRESS, IP_LOCAL_PORT, IP_REMOTE_PORT, ALE_APP_ID, ALE_USER_ID, "
                         "NET_EVENT_TYPE, FILTER_KEY, PROVIDER_KEY, LAYER_KEY)");
  TemplateCondition out;
  out.field = static_cast<TemplateField>(it - std::begin(kFieldNames));
  if (c.contains("match") && !c["match"].is_string()) bad(path + "/match", "must be a match type name");
  const std::string match = c.value("match", std::string("EQUAL"));
  if (!c.contains("value")) bad(path + "/value", "is required");
  const json& v = c["value"];
  const std::string vpath = path + "/value";
  const Kind kind = kind_of(out.field);
  if (match == "RANGE") {
    if (kind == Kind::TEXT || !v.is_object() || !v.contains("low") || !v.contains("high"))
      bad(vpath, "RANGE takes {\"low\": ..., \"high\": ...} on a number or address field");
    if (kind == Kind::ADDRESS) {
      out.addr = {address(v["low"], vpath + "/low"), address(v["high"], vpath + "/high")};
      if (out.addr.hi < out.addr.lo) bad(vpath, "low is above high");
    } else {
      out.lo = number(out.field, v["low"], vpath + "/low");
      out.hi = number(out.field, v["high"], vpath + "/high");
      if (out.hi < out.lo) bad(vpath, "low is above high");
    }
    return out;
  }
  if (match == "PREFIX") {
    if (out.field != TemplateField::ALE_APP_ID) bad(path + "/match", "PREFIX applies to ALE_APP_ID only");
    out.text = text(out.field, v, vpath);
    out.prefix = true;
    return out;
  }
  const bool eq = match == "EQUAL", ne = match == "NOT_EQUAL";
  const bool order = match == "GREATER" || match == "LESS" || match == "GREATER_OR_EQUAL" || match == "LESS_OR_EQUAL";
  if (!eq && !ne && !order)
    bad(path + "/match", "'" + match + "': use EQUAL, NOT_EQUAL, GREATER, LESS, GREATER_OR_EQUAL, LESS_OR_EQUAL, "
                         "RANGE or PREFIX");
  if (order && kind != Kind::NUMBER) bad(path + "/match", match + " applies to number fields only");
  out.negate = ne;
  switch (kind) {
    case Kind::ADDRESS: {
      // An EQUAL on "ADDR/LEN" is a match on the prefix (the engine's V4_ADDR_MASK / V6_ADDR_MASK).
      auto r = v.is_string() ? parse_address_range(v.get<std::string>()) : std::nullopt;
      if (!r) bad(vpath, "must be an address or ADDRESS/PREFIX");
      out.addr = *r;
      break;
    }
    case Kind::TEXT:
      out.text = text(out.field, v, vpath);
      // An app is its executable file, as in the kernel: an event whose path was lost still matches.
      if (out.field == TemplateField::ALE_APP_ID && !out.negate) out.file = app_file_of(out.text);
      break;
    case Kind::NUMBER: {
      const int64_t n = number(out.field, v, vpath);
      out.lo = out.hi = n;
      if (match == "GREATER") out.lo = n + 1, out.hi = INT64_MAX;
      if (match == "GREATER_OR_EQUAL") out.hi = INT64_MAX;
      if (match == "LESS") out.lo = INT64_MIN, out.hi = n - 1;
      if (match == "LESS_OR_EQUAL") out.lo = INT64_MIN;
      break;
    }
  }
  return out;
}

int64_t number_of(const Record& r, TemplateField f) {
  switch (f) {
    case TemplateField::IP_PROTOCOL: return r.ip_protocol;
    case TemplateField::IP_LOCAL_PORT: return r.local_port;
    case TemplateField::IP_REMOTE_PORT: return r.remote_port;
    case TemplateField::ALE_USER_ID: return r.uid;
    default: return static_cast<int64_t>(r.type);  // NET_EVENT_TYPE
  }
}

const std::string& text_of(const Record& r, TemplateField f) {
  switch (f) {
    case TemplateField::ALE_APP_ID: return r.app_id;
    case TemplateField::FILTER_KEY: return r.filter_key;
    case TemplateField::PROVIDER_KEY: return r.provider;
    default: return r.layer;
  }
}

bool condition_holds(const TemplateCondition& c, const Record& r) {
  switch (kind_of(c.field)) {
    case Kind::ADDRESS: {
      const auto& a = c.field == TemplateField::IP_LOCAL_ADDRESS ? r.local_addr : r.remote_addr;
      if (!a) return false;
      return (c.addr.lo <= *a && *a <= c.addr.hi) != c.negate;
    }
    case Kind::TEXT: {
      const std::string& s = text_of(r, c.field);
      if (!c.file.empty() && !r.app_file.empty() && r.app_file == c.file) return true;
      if (s.empty()) return false;
      if (c.prefix) return s.ends_with(c.text);  // WFP's PREFIX is a suffix test (the engine's too)
      return (s == c.text) != c.negate;
    }
    case Kind::NUMBER: {
      const int64_t n = number_of(r, c.field);
      if (n < 0) return false;
      return (c.lo <= n && n <= c.hi) != c.negate;
    }
  }
  return false;
}

}  // namespace

std::string_view to_string(TemplateField f) { return kFieldNames[static_cast<size_t>(f)]; }

Template parse_template(const json& j) {
  Template t;
  if (j.is_null()) return t;
  if (!j.is_object()) bad("/template", "must be an object");
  for (const auto& [k, v] : j.items()) {
    if (k == "since" || k == "until") {
      auto ns = v.is_string() ? parse_time(v.get<std::string>()) : std::nullopt;
      if (!ns) bad("/template/" + k, "must be an ISO 8601 time with a zone");
      (k == "since" ? t.since : t.until) = *ns;
    } else if (k == "conditions") {
      if (!v.is_array()) bad("/template/conditions", "must be an array");
      for (size_t i = 0; i < v.size(); ++i)
        t.conditions.push_back(parse_condition(v[i], "/template/conditions/" + std::to_string(i)));
    } else {
      bad("/template/" + k, "unknown member (since, until, conditions)");
    }
  }
  std::stable_sort(t.conditions.begin(), t.conditions.end(),
                   [](const auto& a, const auto& b) { return a.field < b.field; });
  return t;
}

bool matches(const Template& t, const Record& r) {
  if (r.time_ns < t.since || r.time_ns > t.until) return false;
  if (t.only_uid && r.uid != *t.only_uid) return false;
  for (size_t i = 0; i < t.conditions.size();) {
    bool any = false;
    size_t j = i;
    for (; j < t.conditions.size() && t.conditions[j].field == t.conditions[i].field; ++j)
      any = any || condition_holds(t.conditions[j], r);
    if (!any) return false;
    i = j;
  }
  return true;
}

}  // namespace lfp::netevents
