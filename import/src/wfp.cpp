// SPDX-License-Identifier: MIT
#include "lfp/import/wfp.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <set>

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/guid.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::import {

using nlohmann::json;

namespace {

using Node = xmlNode*;

int line_of(Node n) { return n ? static_cast<int>(xmlGetLineNo(n)) : 0; }

Node child(Node n, const char* name) {
  if (!n) return nullptr;
  for (Node c = n->children; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>(name))) return c;
  return nullptr;
}

std::vector<Node> children(Node n, const char* name) {
  std::vector<Node> out;
  if (!n) return out;
  for (Node c = n->children; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>(name))) out.push_back(c);
  return out;
}

std::string text(Node n) {
  if (!n) return "";
  xmlChar* c = xmlNodeGetContent(n);
  std::string s = c ? reinterpret_cast<const char*>(c) : "";
  xmlFree(c);
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string text_of(Node n, const char* name) { return text(child(n, name)); }

uint64_t number(Node n, uint64_t max) {
  const std::string s = text(n);
  if (s.empty() || s.size() > 20 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
    throw ImportError(line_of(n), "'" + s + "' is not a number");
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno || v > max) throw ImportError(line_of(n), "'" + s + "' is out of range");
  return v;
}

// GUIDs WFP's docs give for the symbols netsh prints instead of them; LFP has these built in.
const std::map<std::string, std::string>& known_keys() {
  static const std::map<std::string, std::string> m = {
      {"FWPM_SUBLAYER_UNIVERSAL", "eebecc03-ced4-4380-819a-2734397b2b6f"},
      {"FWPM_SUBLAYER_INSPECTION", "877519e1-e6a9-41a5-81b4-8c4f118e4a60"},
  };
  return m;
}

// A key as netsh prints it: "{guid}", or a symbol for a well-known object (FWPM_PROVIDER_MPSSVC_WF).
// A symbol LFP does not know gets a GUID derived from its name, the same in every import.
std::string key_of(Node n, std::string* symbol = nullptr) {
  const std::string s = text(n);
  if (auto g = Guid::parse(s)) return g->str();
  if (s.empty() || s.size() > 200 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; }))
    throw ImportError(line_of(n), "'" + s + "' is neither a GUID nor a symbol");
  if (symbol) *symbol = s;
  if (auto it = known_keys().find(s); it != known_keys().end()) return it->second;
  uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};  // FNV-1a, two seeds
  for (unsigned char c : s)
    for (auto& x : h) x = (x ^ c) * 0x100000001b3ull;
  char buf[40];
  snprintf(buf, sizeof buf, "%08x-%04x-8%03x-%04x-%012llx", static_cast<unsigned>(h[0] >> 32), static_cast<unsigned>(h[0] >> 16 & 0xffff),
           static_cast<unsigned>(h[0] & 0xfff), static_cast<unsigned>(0x8000 | (h[1] >> 48 & 0x3fff)),
           static_cast<unsigned long long>(h[1] & 0xffffffffffffull));
  return buf;
}

bool is_builtin_sublayer(const std::string& key) {
  return key == known_keys().at("FWPM_SUBLAYER_UNIVERSAL") || key == known_keys().at("FWPM_SUBLAYER_INSPECTION");
}

std::string strip(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s; }

void display(Node item, json& o) {
  Node dd = child(item, "displayData");
  o["name"] = text_of(dd, "name");
  if (o["name"] == "") o["name"] = "(no name in the dump)";
  if (const std::string d = text_of(dd, "description"); !d.empty()) o["description"] = d;
}

// Flags by the names LFP takes; the rest (output-only ones such as REGISTERED) are dropped with a note.
json flags_of(Node item, const std::string& prefix, const std::set<std::string>& allowed, std::vector<std::string>& notes) {
  json out = json::array();
  for (Node f : children(child(item, "flags"), "item")) {
    const std::string name = strip(text(f), prefix);
    if (allowed.count(name)) out.push_back(name);
    else notes.push_back("flag " + text(f) + " has no LFP form (dropped)");
  }
  return out;
}

std::string hex_data(Node blob) { return text_of(blob, "data"); }

std::optional<std::string> lfp_layer(const std::string& wfp) {
  const std::string name = strip(wfp, "FWPM_LAYER_");
  if (!layer_from_string(name)) return std::nullopt;
  return name;
}

struct Ctx {
  const ImportOptions& opts;
  std::vector<std::string> problems;  // the filter is not imported
  std::vector<std::string> notes;     // it is, with these remarks
};

// An FWP_VALUE0 / FWP_CONDITION_VALUE0 as the policy format writes it, for `field`.
json value_of(Node v, const std::string& field, Ctx& cx, int depth = 0) {
  if (!v || depth > 2) throw ImportError(line_of(v), "a condition value is missing");
  const std::string type = text_of(v, "type");
  auto elem = [&](const char* name) {
    Node n = child(v, name);
    if (!n) throw ImportError(line_of(v), type + " without <" + name + ">");
    return n;
  };
  const bool address = field.find("_ADDRESS") != std::string::npos && field.rfind("MAC_", 0) != 0;
  if (type == "FWP_EMPTY") return nullptr;
  if (type == "FWP_UINT8" || type == "FWP_UINT16" || type == "FWP_UINT32" || type == "FWP_UINT64") {
    const char* name = type == "FWP_UINT8" ? "uint8" : type == "FWP_UINT16" ? "uint16" : type == "FWP_UINT32" ? "uint32" : "uint64";
    Node n = elem(name);
    const std::string s = text(n);
    if (!s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
      return number(n, type == "FWP_UINT8" ? 0xff : type == "FWP_UINT16" ? 0xffff : type == "FWP_UINT32" ? 0xffffffffull : UINT64_MAX);
    if (address && type == "FWP_UINT32") return s;  // netsh prints IPv4 addresses dotted
    // Named constants: FWP_CONDITION_FLAG_IS_LOOPBACK, FWP_DIRECTION_OUTBOUND, ... (netsh joins flags with |)
    std::string joined, tok;
    for (size_t i = 0; i <= s.size(); ++i) {
      if (i == s.size() || s[i] == '|') {
        const auto b = tok.find_first_not_of(' '), e = tok.find_last_not_of(' ');
        if (b == std::string::npos) throw ImportError(line_of(n), "'" + s + "' is not a value");
        std::string t = strip(strip(strip(tok.substr(b, e - b + 1), "FWP_CONDITION_FLAG_"), "FWP_DIRECTION_"), "FWP_CONDITION_L2_");
        joined += (joined.empty() ? "" : "|") + t;
        tok.clear();
      } else {
        tok += s[i];
      }
    }
    return joined;
  }
  if (type == "FWP_V4_ADDR_MASK") {
    Node m = elem("v4AddrMask");
    return text_of(m, "addr") + "/" + text_of(m, "mask");
  }
  if (type == "FWP_V6_ADDR_MASK") {
    Node m = elem("v6AddrMask");
    return text_of(m, "addr") + "/" + text_of(m, "prefixLength");
  }
  if (type == "FWP_BYTE_ARRAY16_TYPE") return text(elem("byteArray16"));
  if (type == "FWP_BYTE_ARRAY6_TYPE") return text(elem("byteArray6"));
  if (type == "FWP_UNICODE_STRING_TYPE") return text(elem("unicodeString"));
  if (type == "FWP_RANGE_TYPE") {
    Node r = elem("rangeValue");
    return json{{"low", value_of(child(r, "valueLow"), field, cx, depth + 1)}, {"high", value_of(child(r, "valueHigh"), field, cx, depth + 1)}};
  }
  if (type == "FWP_BYTE_BLOB_TYPE") {
    Node blob = elem("byteBlob");
    const std::string hex = hex_data(blob);
    if (field == "ALE_APP_ID" || field == "ALE_ORIGINAL_APP_ID") {
      const auto app = app_id_from_hex(hex);
      if (!app) throw ImportError(line_of(blob), "an app id that is not UTF-16: " + hex.substr(0, 64));
      // A Windows device path: only a --map-app prefix can say which Linux executable it is.
      for (const auto& [from, to] : cx.opts.map_app) {
        if (app->size() < from.size() || !std::equal(from.begin(), from.end(), app->begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
          continue;
        std::string rest = app->substr(from.size());
        std::replace(rest.begin(), rest.end(), '\\', '/');
        cx.notes.push_back("app id " + *app + " mapped to " + to + rest);
        return to + rest;
      }
      cx.problems.push_back("app id " + *app + " is a Windows path (no --map-app prefix rewrites it)");
      return nullptr;
    }
    if (hex.size() % 2 || !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c); }))
      throw ImportError(line_of(blob), "byte blob data is not hex");
    return json{{"hex", hex}};
  }
  if (type == "FWP_SID" || type == "FWP_SECURITY_DESCRIPTOR_TYPE" || type == "FWP_TOKEN_INFORMATION_TYPE" || type == "FWP_TOKEN_ACCESS_INFORMATION_TYPE") {
    cx.problems.push_back(type + " (" + field + "): Windows SIDs and security descriptors have no Linux form (write ALE_USER_ID uids)");
    return nullptr;
  }
  cx.problems.push_back("value type " + type + " has no LFP form");
  return nullptr;
}

struct Stub {
  std::string symbol;
  bool persistent = false;
  int line = 0;
};

}  // namespace

std::optional<std::string> app_id_from_hex(const std::string& hex) {
  if (hex.size() % 4) return std::nullopt;
  std::vector<uint32_t> units;
  for (size_t i = 0; i < hex.size(); i += 4) {
    unsigned v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = hex[i + k];
      if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
      v = v << 4 | static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10);
    }
    units.push_back((v & 0xff) << 8 | v >> 8);  // little endian
  }
  while (!units.empty() && units.back() == 0) units.pop_back();
  std::string out;
  for (size_t i = 0; i < units.size(); ++i) {
    uint32_t cp = units[i];
    if (cp == 0) return std::nullopt;
    if (cp >= 0xd800 && cp < 0xdc00) {
      if (i + 1 >= units.size() || units[i + 1] < 0xdc00 || units[i + 1] >= 0xe000) return std::nullopt;
      cp = 0x10000 + ((cp - 0xd800) << 10) + (units[++i] - 0xdc00);
    } else if (cp >= 0xdc00 && cp < 0xe000) {
      return std::nullopt;
    }
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) out += static_cast<char>(0xc0 | cp >> 6), out += static_cast<char>(0x80 | (cp & 0x3f));
    else if (cp < 0x10000)
      out += static_cast<char>(0xe0 | cp >> 12), out += static_cast<char>(0x80 | (cp >> 6 & 0x3f)), out += static_cast<char>(0x80 | (cp & 0x3f));
    else
      out += static_cast<char>(0xf0 | cp >> 18), out += static_cast<char>(0x80 | (cp >> 12 & 0x3f)),
          out += static_cast<char>(0x80 | (cp >> 6 & 0x3f)), out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

namespace {

// The dump parsed with libxml2: no network, no DTD, no entity expansion (the dump is data). The
// first error names the line (libxml2 goes on, and its last error is often the end of input).
std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> parse_xml(const std::string& xml) {
  if (xml.size() > INT_MAX) throw ImportError(0, "the dump is too large");
  struct First {
    int line = 0;
    std::string msg;
    bool set = false;
  } first;
  xmlSetStructuredErrorFunc(&first, [](void* ctx, xmlErrorPtr e) {  // libxml2 2.9: not const
    auto* f = static_cast<First*>(ctx);
    if (f->set || !e || e->level < XML_ERR_ERROR) return;
    f->set = true, f->line = e->line, f->msg = e->message ? e->message : "not XML";
  });
  std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> doc(
      xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "wfp.xml", nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
      xmlFreeDoc);
  xmlSetStructuredErrorFunc(nullptr, nullptr);
  if (!doc || first.set) {
    std::string msg = first.set ? first.msg : "not XML";
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    throw ImportError(first.line, "not XML: " + msg);
  }
  return doc;
}

bool has_flag(const json& o, const char* flag) { return std::find(o["flags"].begin(), o["flags"].end(), flag) != o["flags"].end(); }
void drop_flag(json& o, const char* flag) { o["flags"].erase(std::find(o["flags"].begin(), o["flags"].end(), flag)); }

void describe_key(json& o, const std::string& symbol) {
  if (symbol.empty()) return;
  o["description"] = o.value("description", std::string()) + (o.contains("description") ? " " : "") + "(key derived from " + symbol + ")";
}

void append_description(json& o, const std::string& more) {
  o["description"] = o.value("description", std::string()) + (o.contains("description") ? " " : "") + more;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

// One import: the objects read so far, what the filters name, and what is reported.
class WfpImport {
 public:
  explicit WfpImport(const ImportOptions& opts) : opts_(opts) {}

  ImportResult run(Node root) {
    // netsh puts providers and sublayers at the top, and callouts and filters either at the top or
    // in each <layers><item> (show state).
    collect(root);
    for (Node layers : children(root, "layers"))
      for (Node item : children(layers, "item")) collect(item);
    for (Node item : provider_items_) provider(item);
    for (Node item : sublayer_items_) sublayer(item);
    for (Node item : callout_items_) callout(item);
    for (Node item : filter_items_) filter(item);
    add_stand_ins();
    keep_persistence_consistent();
    std::stable_sort(res_.unmapped.begin(), res_.unmapped.end(), [](const Unmapped& a, const Unmapped& b) { return a.line < b.line; });
    res_.policy = std::move(pol_);
    return std::move(res_);
  }

 private:
  void collect(Node parent) {
    for (Node n : children(parent, "providers")) for (Node i : children(n, "item")) provider_items_.push_back(i);
    for (Node n : children(parent, "subLayers")) for (Node i : children(n, "item")) sublayer_items_.push_back(i);
    for (Node n : children(parent, "callouts")) for (Node i : children(n, "item")) callout_items_.push_back(i);
    for (Node n : children(parent, "filters")) for (Node i : children(n, "item")) filter_items_.push_back(i);
  }

  void report(Node item, const std::string& what, const std::string& why) { res_.unmapped.push_back({line_of(item), what, why}); }
  void report_notes(Node item, const std::string& what, const std::vector<std::string>& notes) {
    for (const auto& n : notes) report(item, what, "imported; " + n);
  }

  void provider(Node item) {
    std::string symbol;
    json p = {{"key", key_of(child(item, "providerKey"), &symbol)}};
    display(item, p);
    describe_key(p, symbol);
    std::vector<std::string> notes;
    p["flags"] = flags_of(item, "FWPM_PROVIDER_FLAG_", {"PERSISTENT"}, notes);
    if (const std::string s = text_of(item, "serviceName"); !s.empty()) p["service_name"] = s;
    const std::string key = p["key"];
    if (providers_.count(key)) throw ImportError(line_of(item), "provider " + key + " twice");
    providers_[key] = p["flags"].size() > 0;
    pol_["providers"].push_back(p);
    report_notes(item, "provider '" + p["name"].get<std::string>() + "'", notes);
  }

  // The object's provider; one the dump does not define gets a stand-in.
  void provider_ref(Node item, json& o, bool persistent) {
    Node pk = child(item, "providerKey");
    if (!pk || text(pk).empty()) return;
    std::string symbol;
    const std::string k = key_of(pk, &symbol);
    o["provider"] = k;
    if (!providers_.count(k)) note_missing(missing_providers_[k], symbol.empty() ? k : symbol, persistent, pk);
  }

  static void note_missing(Stub& s, const std::string& symbol, bool persistent, Node where) {
    s.symbol = symbol, s.persistent = s.persistent || persistent, s.line = s.line ? s.line : line_of(where);
  }

  void sublayer(Node item) {
    std::string symbol;
    const std::string key = key_of(child(item, "subLayerKey"), &symbol);
    if (is_builtin_sublayer(key)) return;  // every LFP engine has them
    json s = {{"key", key}};
    display(item, s);
    describe_key(s, symbol);
    std::vector<std::string> notes;
    s["flags"] = flags_of(item, "FWPM_SUBLAYER_FLAG_", {"PERSISTENT"}, notes);
    provider_ref(item, s, !s["flags"].empty());
    s["weight"] = child(item, "weight") ? number(child(item, "weight"), 0xffff) : 0;
    if (sublayers_.count(key)) throw ImportError(line_of(item), "sublayer " + key + " twice");
    sublayers_[key] = !s["flags"].empty();
    pol_["sublayers"].push_back(s);
    report_notes(item, "sublayer '" + s["name"].get<std::string>() + "'", notes);
  }

  void callout(Node item) {
    std::string symbol;
    json c = {{"key", key_of(child(item, "calloutKey"), &symbol)}};
    display(item, c);
    describe_key(c, symbol);
    std::vector<std::string> notes;
    c["flags"] = flags_of(item, "FWPM_CALLOUT_FLAG_", {"PERSISTENT", "USES_PROVIDER_CONTEXT"}, notes);
    const std::string layer = text_of(item, "applicableLayer");
    const auto l = lfp_layer(layer);
    if (!l) {
      report(item, "callout '" + c["name"].get<std::string>() + "' " + c["key"].get<std::string>(), "layer " + layer + ": LFP has no such layer");
      return;
    }
    c["layer"] = *l;
    provider_ref(item, c, has_flag(c, "PERSISTENT"));
    const std::string ckey = c["key"];
    if (callouts_.count(ckey)) throw ImportError(line_of(item), "callout " + ckey + " twice");
    callouts_[ckey] = has_flag(c, "PERSISTENT");
    callout_layer_[ckey] = *l;
    append_description(c, "(a Windows callout: in LFP it acts as unregistered unless a plugin registers its key)");
    pol_["callouts"].push_back(c);
    report_notes(item, "callout '" + c["name"].get<std::string>() + "'", notes);
  }

  void filter(Node item) {
    ++res_.rules;
    json f;
    Node fk = child(item, "filterKey");
    if (fk) f["key"] = key_of(fk);
    display(item, f);
    const std::string what = "filter '" + f["name"].get<std::string>() + "'" + (fk ? " " + f["key"].get<std::string>() : "") +
                             (child(item, "filterId") ? " (id " + text_of(item, "filterId") + ")" : "");
    Ctx cx{opts_, {}, {}};
    static const std::set<std::string> kFilterFlags = {"PERSISTENT", "BOOTTIME", "CLEAR_ACTION_RIGHT", "PERMIT_IF_CALLOUT_UNREGISTERED",
                                                       "DISABLED", "INDEXED", "HAS_PROVIDER_CONTEXT"};
    f["flags"] = flags_of(item, "FWPM_FILTER_FLAG_", kFilterFlags, cx.notes);
    if (has_flag(f, "HAS_PROVIDER_CONTEXT")) cx.problems.push_back("a provider context (" + text_of(item, "providerContextKey") + "): provider contexts are not imported");
    if (has_flag(f, "PERSISTENT") && has_flag(f, "BOOTTIME")) {
      drop_flag(f, "PERSISTENT");
      cx.notes.push_back("PERSISTENT dropped: a BOOTTIME filter cannot be persistent");
    }
    const std::string layer_text = text_of(item, "layerKey");
    if (layer_text.empty()) throw ImportError(line_of(item), "a filter without <layerKey>");
    const auto layer = lfp_layer(layer_text);
    if (!layer) {
      report(item, what, "layer " + layer_text + ": LFP has no such layer (IPsec/IKE, RPC, name resolution and discard layers have no Linux hook)");
      return;
    }
    f["layer"] = *layer;
    provider_ref(item, f, has_flag(f, "PERSISTENT"));
    if (Node sk = child(item, "subLayerKey"); sk && !text(sk).empty()) {
      std::string symbol;
      const std::string k = key_of(sk, &symbol);
      f["sublayer"] = k;
      if (!is_builtin_sublayer(k) && !sublayers_.count(k)) note_missing(missing_sublayers_[k], symbol.empty() ? k : symbol, has_flag(f, "PERSISTENT"), sk);
    }
    weight(item, f, cx);
    f["conditions"] = conditions(item, *layer, cx);
    action(item, f, *layer, cx);
    if (Node rc = child(item, "rawContext")) f["raw_context"] = number(rc, UINT64_MAX);

    // The policy reader is the judge of values (an address netsh would never print, ...).
    if (cx.problems.empty()) {
      try {
        policy::policy_from_json(json{{"filters", json::array({f})}});
      } catch (const policy::PolicyError& e) {
        cx.problems.push_back(std::string("refused by the policy reader: ") + e.what());
      }
    }
    if (!cx.problems.empty()) return report(item, what, joined(cx.problems));
    pol_["filters"].push_back(f);
    ++res_.filters;
    if (!cx.notes.empty()) report(item, what, "imported; " + joined(cx.notes));
  }

  // The BFE's effectiveWeight is WFP's order; without it, the weight as given.
  static void weight(Node item, json& f, Ctx& cx) {
    Node w = child(item, "weight");
    const std::string wtype = text_of(w, "type");
    std::string weight_text = wtype.empty() ? "FWP_EMPTY" : wtype;
    if (wtype == "FWP_UINT8") weight_text += " " + std::to_string(number(child(w, "uint8"), 0xff));
    if (wtype == "FWP_UINT64") weight_text += " " + std::to_string(number(child(w, "uint64"), UINT64_MAX));
    if (Node ew = child(item, "effectiveWeight"); ew && text_of(ew, "type") == "FWP_UINT64") {
      f["weight"] = {{"explicit", number(child(ew, "uint64"), UINT64_MAX)}};
    } else if (wtype == "FWP_UINT8") {
      const uint64_t r = number(child(w, "uint8"), 0xff);
      if (r > 15) cx.problems.push_back("weight FWP_UINT8 " + std::to_string(r) + " is above 15 (FWP_E_INVALID_WEIGHT)");
      f["weight"] = {{"range", r}};
    } else if (wtype == "FWP_UINT64") {
      f["weight"] = {{"explicit", number(child(w, "uint64"), UINT64_MAX)}};
    } else if (!wtype.empty() && wtype != "FWP_EMPTY") {
      throw ImportError(line_of(w), "weight of type " + wtype);
    }
    append_description(f, "(weight " + weight_text + " in the dump)");
  }

  static json conditions(Node item, const std::string& layer, Ctx& cx) {
    json conds = json::array();
    for (Node c : children(child(item, "filterCondition"), "item")) {
      const std::string fname = strip(text_of(c, "fieldKey"), "FWPM_CONDITION_");
      if (fname.empty()) throw ImportError(line_of(c), "a condition without <fieldKey>");
      const auto fid = field_from_string(fname);
      if (!fid || !layer_has_field(layer_info(*layer_from_string(layer)), *fid)) {
        cx.problems.push_back("field " + text_of(c, "fieldKey") + (fid ? " is not a field of " + layer : ": LFP has no such field"));
        continue;
      }
      const std::string match = strip(text_of(c, "matchType"), "FWP_MATCH_");
      if (match.empty()) throw ImportError(line_of(c), "a condition without <matchType>");
      const json v = value_of(child(c, "conditionValue"), fname, cx);
      conds.push_back({{"field", fname}, {"match", match}, {"value", v}});
    }
    return conds;
  }

  void action(Node item, json& f, const std::string& layer, Ctx& cx) {
    Node a = child(item, "action");
    const std::string atype = strip(text_of(a, "type"), "FWP_ACTION_");
    if (atype.empty()) throw ImportError(line_of(item), "a filter without <action><type>");
    if (atype == "BLOCK" || atype == "PERMIT") {
      f["action"] = {{"type", atype}};
      if (auto ft = Guid::parse(text_of(a, "filterType"))) f["action"]["filter_type"] = ft->str();
      return;
    }
    if (atype != "CALLOUT_TERMINATING" && atype != "CALLOUT_INSPECTION" && atype != "CALLOUT_UNKNOWN")
      throw ImportError(line_of(a), "action type " + text_of(a, "type"));
    Node ck = child(a, "calloutKey");
    if (!ck) throw ImportError(line_of(a), "a callout action without <calloutKey>");
    std::string symbol;
    const std::string k = key_of(ck, &symbol);
    f["action"] = {{"type", atype}, {"callout", k}};
    if (!callout_layer_.count(k)) {
      // Not in the dump (show filters): a callout object at the filter's layer stands for it.
      json c = {{"key", k}, {"name", "callout " + (symbol.empty() ? k : symbol)}, {"layer", layer}, {"flags", json::array({"PERSISTENT"})},
                {"description", "not in the dump; named by filter '" + f["name"].get<std::string>() + "'"}};
      pol_["callouts"].push_back(c);
      callouts_[k] = true;
      callout_layer_[k] = layer;
    } else if (callout_layer_[k] != layer) {
      cx.problems.push_back("callout " + k + " applies to " + callout_layer_[k] + ", not " + layer);
    }
    cx.notes.push_back(std::string("callout ") + (symbol.empty() ? k : symbol) + " is Windows code: in LFP it acts as unregistered (" +
                       (atype == "CALLOUT_INSPECTION" ? "it decides nothing" : has_flag(f, "PERMIT_IF_CALLOUT_UNREGISTERED") ? "PERMIT" : "BLOCK") +
                       ") until a plugin registers its key");
  }

  // Objects the filters name but the dump does not hold (show filters has no providers): stand-ins.
  // Persistent, so that persistent filters may reference them; a sublayer's weight is unknown.
  void add_stand_ins() {
    for (const auto& [k, s] : missing_providers_)
      pol_["providers"].push_back({{"key", k}, {"name", s.symbol}, {"flags", json::array({"PERSISTENT"})}, {"description", "not in the dump"}});
    for (const auto& [k, s] : missing_sublayers_) {
      pol_["sublayers"].push_back({{"key", k}, {"name", s.symbol}, {"flags", json::array({"PERSISTENT"})}, {"weight", 0},
                                   {"description", "not in the dump: its weight is unknown (0)"}});
      res_.unmapped.push_back({s.line, "sublayer " + s.symbol, "imported; not in the dump, so its weight is unknown: 0 assumed"});
    }
  }

  // A persistent object may only name persistent ones: the dump's own lifetimes are WFP's, but a
  // hand-edited dump may not hold to them.
  void keep_persistence_consistent() {
    auto provider_ok = [&](const json& o) {
      return !o.contains("provider") || !providers_.count(o["provider"].get<std::string>()) || providers_[o["provider"].get<std::string>()];
    };
    for (auto& o : pol_["sublayers"])
      if (has_flag(o, "PERSISTENT") && !provider_ok(o)) drop_flag(o, "PERSISTENT"), sublayers_[o["key"].get<std::string>()] = false;
    for (auto& o : pol_["callouts"])
      if (has_flag(o, "PERSISTENT") && !provider_ok(o)) drop_flag(o, "PERSISTENT"), callouts_[o["key"].get<std::string>()] = false;
    for (auto& f : pol_["filters"]) {
      if (!has_flag(f, "PERSISTENT")) continue;
      const bool ok = provider_ok(f) &&
                      (!f.contains("sublayer") || !sublayers_.count(f["sublayer"].get<std::string>()) || sublayers_[f["sublayer"].get<std::string>()]) &&
                      (!f["action"].contains("callout") || callouts_[f["action"]["callout"].get<std::string>()]);
      if (!ok) {
        drop_flag(f, "PERSISTENT");
        res_.unmapped.push_back({0, "filter '" + f["name"].get<std::string>() + "'", "imported; PERSISTENT dropped: it names a non-persistent object"});
      }
    }
  }

  const ImportOptions& opts_;
  ImportResult res_;
  json pol_ = {{"version", 1}, {"providers", json::array()}, {"sublayers", json::array()}, {"callouts", json::array()}, {"filters", json::array()}};
  std::vector<Node> provider_items_, sublayer_items_, callout_items_, filter_items_;
  std::map<std::string, bool> providers_, sublayers_, callouts_;  // defined key -> persistent
  std::map<std::string, std::string> callout_layer_;
  std::map<std::string, Stub> missing_providers_, missing_sublayers_;
};

}  // namespace

ImportResult import_wfp(const std::string& xml, const ImportOptions& opts) {
  const auto doc = parse_xml(xml);
  Node root = xmlDocGetRootElement(doc.get());
  if (!root || (!xmlStrEqual(root->name, BAD_CAST "wfpstate") && !xmlStrEqual(root->name, BAD_CAST "wfpdiag")))
    throw ImportError(line_of(root), "expected <wfpstate> (netsh wfp show state) or <wfpdiag> (netsh wfp show filters)");
  return WfpImport(opts).run(root);
}

}  // namespace lfp::import
