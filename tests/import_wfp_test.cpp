// SPDX-License-Identifier: MIT
// lfp import wfp: a `netsh wfp show state` dump to a policy; the mapping, the report, line-numbered
// errors, and the proof: random connections decided by a reference evaluator that runs the dump's own
// filters by WFP's arbitration rules (sublayers by weight, filters by effectiveWeight, block over soft
// permit, hard permits, unregistered callouts) and by the engine on the imported policy.
#include <arpa/inet.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "lfp/engine/engine.hpp"
#include "lfp/import/wfp.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::test {
namespace {

using nlohmann::json;
using import::ImportError;

std::string fixture() {
  std::ifstream in(std::string(LFP_SOURCE_DIR) + "/tests/data/import/wfp-filters.xml");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const import::ImportOptions kOpts{.source = "wfp", .map_app = {{"\\device\\harddiskvolume3\\", "/mnt/c/"}}};

const json* filter_named(const json& pol, const std::string& name, const std::string& layer = "") {
  for (const auto& f : pol["filters"])
    if (f["name"] == name && (layer.empty() || f["layer"] == layer)) return &f;
  return nullptr;
}

TEST(ImportWfp, KeepsKeysWeightsFlagsAndMapsNames) {
  const auto r = import::import_wfp(fixture(), kOpts);
  EXPECT_EQ(r.rules, 24u);
  EXPECT_EQ(r.filters, 19u);
  EXPECT_EQ(r.policy["providers"].size(), 3u);
  EXPECT_EQ(r.policy["sublayers"].size(), 3u);  // the universal sublayer is LFP's own
  EXPECT_EQ(r.policy["callouts"].size(), 2u);
  const json* dns = filter_named(r.policy, "Core Networking - DNS (UDP-Out)");
  ASSERT_TRUE(dns);
  EXPECT_EQ((*dns)["key"], "2a9d6e31-7c05-4b8e-a1f4-6d3b8e9c1f22");
  EXPECT_EQ((*dns)["layer"], "ALE_AUTH_CONNECT_V4");
  EXPECT_EQ((*dns)["weight"], json::parse(R"({"explicit": 412316860416})"));  // effectiveWeight 0x6000000000
  EXPECT_EQ((*dns)["conditions"], json::parse(R"([{"field":"ALE_APP_ID","match":"EQUAL","value":"/mnt/c/windows/system32/svchost.exe"},
      {"field":"IP_PROTOCOL","match":"EQUAL","value":17},{"field":"IP_REMOTE_PORT","match":"EQUAL","value":53}])"));
  // Symbolic keys (FWPM_PROVIDER_MPSSVC_WF) get a stable derived GUID, said in the description.
  EXPECT_EQ((*dns)["provider"], r.policy["providers"][0]["key"]);
  EXPECT_NE(r.policy["providers"][0]["description"].get<std::string>().find("FWPM_PROVIDER_MPSSVC_WF"), std::string::npos);
  EXPECT_EQ(import::import_wfp(fixture(), kOpts).policy["providers"][0]["key"], r.policy["providers"][0]["key"]);
  // Every condition value type.
  const json* vpn = filter_named(r.policy, "Contoso VPN server");
  ASSERT_TRUE(vpn);
  EXPECT_EQ((*vpn)["flags"], json::parse(R"(["PERSISTENT","CLEAR_ACTION_RIGHT","INDEXED"])"));
  EXPECT_EQ((*vpn)["conditions"][0]["value"], "203.0.113.5");  // FWP_UINT32 as IPv4
  EXPECT_EQ((*filter_named(r.policy, "Contoso VPN block outside the tunnel"))["conditions"][0]["value"],
            json::parse(R"({"low":"198.51.100.0","high":"198.51.100.255"})"));
  EXPECT_EQ((*filter_named(r.policy, "Allow LAN development servers"))["conditions"][0]["value"], "192.168.0.0/255.255.0.0");
  EXPECT_EQ((*filter_named(r.policy, "Allow LAN development servers"))["conditions"][1]["value"], json::parse(R"({"low":8000,"high":8099})"));
  EXPECT_EQ((*filter_named(r.policy, "Contoso VPN loopback"))["conditions"][0]["value"], "IS_LOOPBACK");
  const json* doc6 = filter_named(r.policy, "Block documentation prefixes");
  EXPECT_EQ((*doc6)["conditions"][0]["value"], "2001:db8::/32");
  EXPECT_EQ((*doc6)["conditions"][1]["match"], "RANGE");
  const json* boot = filter_named(r.policy, "Contoso VPN boot-time telnet block");
  EXPECT_EQ((*boot)["flags"], json::parse(R"(["BOOTTIME"])"));
  const json* edr = filter_named(r.policy, "Fabrikam EDR quarantine");
  EXPECT_EQ((*edr)["action"], json::parse(R"({"type":"CALLOUT_TERMINATING","callout":"e3b8d1f4-27a9-4c6e-b5d0-9f1a2c7e8b33"})"));
  EXPECT_EQ(filter_named(r.policy, "Fabrikam EDR transport inspection")->at("layer"), "OUTBOUND_TRANSPORT_V4");
  EXPECT_EQ(filter_named(r.policy, "Block NetBIOS")->at("layer"), "INBOUND_TRANSPORT_V4");
  FilterEngine e;
  EXPECT_NO_THROW(policy::apply_policy(e, policy::policy_from_json(r.policy)));
}

TEST(ImportWfp, ReportsWhatLfpCannotExpressByLine) {
  const auto r = import::import_wfp(fixture(), kOpts);
  std::map<std::string, std::string> why;  // by filter name
  std::set<int> lines;
  for (const auto& u : r.unmapped) {
    why[u.text.substr(0, u.text.find('\'', 8) + 1)] += u.reason;
    lines.insert(u.line);
  }
  EXPECT_NE(why["filter 'IKEEXT default'"].find("FWPM_LAYER_IKEEXT_V4"), std::string::npos);
  EXPECT_NE(why["filter 'RPC filter: block remote registry'"].find("no such layer"), std::string::npos);
  EXPECT_NE(why["filter 'Block Outbound Default Rule'"].find("ALE_PACKAGE_ID"), std::string::npos);
  EXPECT_NE(why["filter 'Allow administrators outbound'"].find("security descriptors"), std::string::npos);
  EXPECT_NE(why["filter 'Legacy app'"].find("harddiskvolume1"), std::string::npos);
  EXPECT_NE(why["filter 'Fabrikam EDR quarantine'"].find("acts as unregistered (BLOCK)"), std::string::npos);
  EXPECT_EQ(lines.count(0), 0u);
  // Without --map-app every app id filter is reported, not imported with a Windows path.
  const auto bare = import::import_wfp(fixture());
  EXPECT_EQ(bare.filters, 15u);
  // Every filter item is a filter or reported as not imported.
  size_t not_imported = 0;
  for (const auto& u : r.unmapped) not_imported += u.reason.rfind("imported;", 0) != 0;
  EXPECT_EQ(r.filters + not_imported, r.rules);
  // show filters: no providers or sublayers in the dump; stand-ins, and the unknown weight reported.
  const auto f = import::import_wfp(R"(<?xml version="1.0"?>
<wfpdiag>
<filters numItems="1">
<item><filterKey>{a0000000-0000-4000-8000-000000000011}</filterKey><displayData><name>x</name></displayData>
<flags numItems="1"><item>FWPM_FILTER_FLAG_PERSISTENT</item></flags>
<providerKey>{6b2fa1c4-0000-4000-8000-000000000001}</providerKey><layerKey>FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4</layerKey>
<subLayerKey>{7c3fb2d5-0000-4000-8000-000000000002}</subLayerKey><weight><type>FWP_UINT8</type><uint8>3</uint8></weight>
<action><type>FWP_ACTION_CALLOUT_TERMINATING</type><calloutKey>{8d40c3e6-0000-4000-8000-000000000003}</calloutKey></action></item>
</filters>
</wfpdiag>)");
  ASSERT_EQ(f.filters, 1u);
  EXPECT_EQ(f.policy["filters"][0]["weight"], json::parse(R"({"range":3})"));
  EXPECT_EQ(f.policy["sublayers"].size(), 1u);
  EXPECT_EQ(f.policy["callouts"].size(), 1u);
  FilterEngine e;
  EXPECT_NO_THROW(policy::apply_policy(e, policy::policy_from_json(f.policy)));
  EXPECT_TRUE(std::any_of(f.unmapped.begin(), f.unmapped.end(), [](const auto& u) { return u.reason.find("weight is unknown") != std::string::npos; }));
}

TEST(ImportWfp, MalformedInputGetsALineNumberedError) {
  const std::pair<std::string, int> cases[] = {
      {"<?xml version=\"1.0\"?>\n<wfpstate>\n<providers>\n</wfpstate>\n", 4},
      {"<?xml version=\"1.0\"?>\n<netEvents/>\n", 2},
      {"<wfpstate>\n<layers><item><filters>\n<item><displayData><name>x</name></displayData>\n<action><type>FWP_ACTION_BLOCK</type></action></item>"
       "</filters></item></layers></wfpstate>", 3},
      {"<wfpdiag><filters>\n<item><layerKey>FWPM_LAYER_ALE_AUTH_CONNECT_V4</layerKey>\n<weight><type>FWP_UINT64</type>\n<uint64>x</uint64></weight>"
       "<action><type>FWP_ACTION_BLOCK</type></action></item></filters></wfpdiag>", 4},
      {"<wfpdiag><filters>\n<item><layerKey>FWPM_LAYER_ALE_AUTH_CONNECT_V4</layerKey>\n<action><type>FWP_ACTION_DANCE</type></action></item></filters></wfpdiag>", 3},
      {"<wfpdiag><filters>\n<item><layerKey>FWPM_LAYER_ALE_AUTH_CONNECT_V4</layerKey>\n<filterCondition><item><fieldKey>FWPM_CONDITION_IP_REMOTE_PORT</fieldKey>"
       "<matchType>FWP_MATCH_EQUAL</matchType>\n<conditionValue><type>FWP_UINT16</type></conditionValue></item></filterCondition>"
       "<action><type>FWP_ACTION_BLOCK</type></action></item></filters></wfpdiag>", 4},
  };
  for (const auto& [text, line] : cases) {
    try {
      import::import_wfp(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ImportError& e) {
      EXPECT_EQ(e.line(), line) << e.what();
    }
  }
  // Random damage to the real dump: an error or a policy the engine takes, never a crash.
  const std::string good = fixture();
  std::mt19937 rng(7);
  int errors = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string s = good;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) s[rng() % s.size()] = "<>/\"&x0_F{ \n"[rng() % 12];
    try {
      const auto r = import::import_wfp(s, kOpts);
      FilterEngine e;
      policy::apply_policy(e, policy::policy_from_json(r.policy));
    } catch (const ImportError&) {
      ++errors;
    } catch (const policy::PolicyError& e) {
      ADD_FAILURE() << "the imported policy is refused: " << e.what();
    }
  }
  EXPECT_GT(errors, 100);
}

// ---- The reference: the dump's filters run by WFP's filter arbitration (docs: filter-arbitration). ----

std::string text(xmlNode* n) {
  if (!n) return "";
  xmlChar* c = xmlNodeGetContent(n);
  std::string s = reinterpret_cast<const char*>(c);
  xmlFree(c);
  s.erase(0, s.find_first_not_of(" \t\n"));
  s.erase(s.find_last_not_of(" \t\n") + 1);
  return s;
}
xmlNode* kid(xmlNode* n, const char* name) {
  for (xmlNode* c = n ? n->children : nullptr; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && std::string(reinterpret_cast<const char*>(c->name)) == name) return c;
  return nullptr;
}
std::vector<xmlNode*> kids(xmlNode* n, const char* name) {
  std::vector<xmlNode*> out;
  for (xmlNode* c = n ? n->children : nullptr; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && std::string(reinterpret_cast<const char*>(c->name)) == name) out.push_back(c);
  return out;
}

// Values compared as WFP does: numbers, IPv4 as a number, IPv6 as 16 bytes (a string of them), blobs as bytes.
struct WValue {
  std::string type, s;  // s: v6 bytes, blob text, SID/SD
  uint64_t u = 0, mask = 0;
  int prefix = 0;
  std::vector<WValue> range;
};
uint32_t v4(const std::string& t) {
  in_addr a{};
  inet_pton(AF_INET, t.c_str(), &a);
  return ntohl(a.s_addr);
}
std::string v6(const std::string& t) {
  unsigned char b[16] = {};
  inet_pton(AF_INET6, t.c_str(), b);
  return std::string(reinterpret_cast<char*>(b), 16);
}
WValue parse_value(xmlNode* v) {
  WValue w;
  w.type = text(kid(v, "type"));
  if (w.type == "FWP_UINT8") w.u = std::stoull(text(kid(v, "uint8")));
  else if (w.type == "FWP_UINT16") w.u = std::stoull(text(kid(v, "uint16")));
  else if (w.type == "FWP_UINT32") {
    const std::string t = text(kid(v, "uint32"));
    w.u = t == "FWP_CONDITION_FLAG_IS_LOOPBACK" ? 1 : t.find('.') != std::string::npos ? v4(t) : std::stoull(t);
  } else if (w.type == "FWP_V4_ADDR_MASK") {
    w.u = v4(text(kid(kid(v, "v4AddrMask"), "addr"))), w.mask = v4(text(kid(kid(v, "v4AddrMask"), "mask")));
  } else if (w.type == "FWP_V6_ADDR_MASK") {
    w.s = v6(text(kid(kid(v, "v6AddrMask"), "addr"))), w.prefix = std::stoi(text(kid(kid(v, "v6AddrMask"), "prefixLength")));
  } else if (w.type == "FWP_BYTE_ARRAY16_TYPE") {
    w.s = v6(text(kid(v, "byteArray16")));
  } else if (w.type == "FWP_BYTE_BLOB_TYPE") {
    w.s = *import::app_id_from_hex(text(kid(kid(v, "byteBlob"), "data")));
  } else if (w.type == "FWP_RANGE_TYPE") {
    w.range = {parse_value(kid(kid(v, "rangeValue"), "valueLow")), parse_value(kid(kid(v, "rangeValue"), "valueHigh"))};
  } else if (w.type == "FWP_SID") {
    w.s = text(kid(v, "sid"));
  } else if (w.type == "FWP_SECURITY_DESCRIPTOR_TYPE") {
    w.s = text(kid(v, "sd"));
  }
  return w;
}

struct WFilter {
  std::string key, name, layer, sublayer, action;
  uint64_t weight = 0;
  std::set<std::string> flags;
  std::vector<std::tuple<std::string, std::string, WValue>> conds;  // field, match, value
};

struct WConn {
  std::string layer, app, package = "S-1-0-0";
  bool admin = false, loopback = false;
  uint64_t proto = 6, rport = 0, lport = 0;
  uint32_t raddr4 = 0;
  std::string raddr6;  // 16 bytes at _V6
};

bool cond_match(const std::string& field, const std::string& match, const WValue& v, const WConn& c) {
  const bool six = c.layer.back() == '6';
  if (field == "ALE_PACKAGE_ID") return match == "FWP_MATCH_NOT_EQUAL" ? c.package != v.s : c.package == v.s;
  if (field == "ALE_USER_ID") return c.admin && v.s.find(";BA)") != std::string::npos;  // the administrators' SID
  if (field == "ALE_APP_ID") return c.app == v.s;
  if (field == "FLAGS") return match == "FWP_MATCH_FLAGS_ALL_SET" && (c.loopback ? 1u : 0u) == (v.u & 1u) && v.u == 1;
  uint64_t x = 0;
  if (field == "IP_PROTOCOL") x = c.proto;
  else if (field == "IP_REMOTE_PORT") x = c.rport;
  else if (field == "IP_LOCAL_PORT") x = c.lport;
  else if (field == "IP_REMOTE_ADDRESS" && six) {
    if (v.type == "FWP_V6_ADDR_MASK") {
      for (int i = 0; i < v.prefix; ++i)
        if (((c.raddr6[i / 8] >> (7 - i % 8)) & 1) != ((v.s[i / 8] >> (7 - i % 8)) & 1)) return false;
      return true;
    }
    if (v.type == "FWP_RANGE_TYPE") return c.raddr6 >= v.range[0].s && c.raddr6 <= v.range[1].s;
    return c.raddr6 == v.s;
  } else if (field == "IP_REMOTE_ADDRESS") {
    x = c.raddr4;
    if (v.type == "FWP_V4_ADDR_MASK") return (x & v.mask) == (v.u & v.mask);
  } else {
    ADD_FAILURE() << "the reference does not know field " << field;
  }
  if (match == "FWP_MATCH_RANGE") return x >= v.range[0].u && x <= v.range[1].u;
  return x == v.u;
}

bool filter_match(const WFilter& f, const WConn& c) {
  std::map<std::string, bool> by_field;  // OR within a field, AND across fields
  for (const auto& [field, match, v] : f.conds) by_field[field] = by_field[field] || cond_match(field, match, v, c);
  return std::all_of(by_field.begin(), by_field.end(), [](const auto& p) { return p.second; });
}

// Filter arbitration: every sublayer, highest weight first; in one, the first matching filter (by
// effectiveWeight) that returns permit or block; a hard decision (block, or a permit with
// CLEAR_ACTION_RIGHT) stands against lower sublayers. Callouts are the Windows drivers' code, not
// here: unregistered, a terminating callout acts as a block (a permit with
// PERMIT_IF_CALLOUT_UNREGISTERED); an inspection callout decides nothing.
std::pair<bool, std::string> wfp_decides(const std::vector<WFilter>& filters, const std::map<std::string, uint32_t>& sub_weight, const WConn& c) {
  std::map<std::string, std::vector<const WFilter*>> by_sub;
  for (const auto& f : filters)
    if (f.layer == c.layer && !f.flags.count("FWPM_FILTER_FLAG_DISABLED")) by_sub[f.sublayer].push_back(&f);
  std::vector<std::string> subs;
  for (const auto& [s, v] : by_sub) subs.push_back(s);
  std::sort(subs.begin(), subs.end(), [&](const auto& a, const auto& b) { return sub_weight.at(a) > sub_weight.at(b); });
  bool decided = false, permit = true, hard = false;
  std::string by;
  for (const auto& s : subs) {
    auto fs = by_sub[s];
    std::sort(fs.begin(), fs.end(), [](const WFilter* a, const WFilter* b) { return a->weight > b->weight; });
    for (const WFilter* f : fs) {
      if (!filter_match(*f, c) || f->action == "FWP_ACTION_CALLOUT_INSPECTION") continue;
      bool p, h;
      if (f->action == "FWP_ACTION_PERMIT") p = true, h = f->flags.count("FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT");
      else if (f->action == "FWP_ACTION_BLOCK") p = false, h = true;
      else p = f->flags.count("FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED"), h = !p;
      if (!decided || !hard) decided = true, permit = p, hard = h, by = f->key;
      break;
    }
  }
  return {permit, by};
}

TEST(ImportWfp, DecidesAsWfpArbitratesTheDumpOnRandomConnections) {
  const std::string xml = fixture();
  // The reference reads the dump itself.
  std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "f.xml", nullptr, XML_PARSE_NONET), xmlFreeDoc);
  ASSERT_TRUE(doc);
  xmlNode* root = xmlDocGetRootElement(doc.get());
  std::map<std::string, uint32_t> sub_weight;
  for (xmlNode* s : kids(kid(root, "subLayers"), "item")) sub_weight[text(kid(s, "subLayerKey"))] = std::stoul(text(kid(s, "weight")));
  std::vector<WFilter> filters;
  for (xmlNode* l : kids(kid(root, "layers"), "item"))
    for (xmlNode* i : kids(kid(l, "filters"), "item")) {
      WFilter f;
      f.key = text(kid(i, "filterKey"));
      f.key = f.key.substr(1, f.key.size() - 2);
      f.name = text(kid(kid(i, "displayData"), "name"));
      f.layer = text(kid(i, "layerKey")).substr(11);
      f.sublayer = text(kid(i, "subLayerKey"));
      f.action = text(kid(kid(i, "action"), "type"));
      f.weight = std::stoull(text(kid(kid(i, "effectiveWeight"), "uint64")));
      for (xmlNode* fl : kids(kid(i, "flags"), "item")) f.flags.insert(text(fl));
      for (xmlNode* c : kids(kid(i, "filterCondition"), "item"))
        f.conds.emplace_back(text(kid(c, "fieldKey")).substr(15), text(kid(c, "matchType")), parse_value(kid(c, "conditionValue")));
      filters.push_back(f);
    }
  ASSERT_EQ(filters.size(), 24u);

  const auto r = import::import_wfp(xml, kOpts);
  FilterEngine engine;
  policy::apply_policy(engine, policy::policy_from_json(r.policy));
  std::set<std::string> kept;
  for (const auto& f : r.policy["filters"]) kept.insert(f["key"]);
  std::vector<WFilter> mapped;
  for (const auto& f : filters)
    if (kept.count(f.key)) mapped.push_back(f);

  const std::vector<std::string> apps = {"\\device\\harddiskvolume3\\windows\\system32\\svchost.exe",
                                         "\\device\\harddiskvolume3\\program files\\mozilla firefox\\firefox.exe",
                                         "\\device\\harddiskvolume3\\users\\public\\downloads\\invoice.exe",
                                         "\\device\\harddiskvolume1\\legacy\\app.exe", "\\device\\harddiskvolume3\\tools\\putty.exe"};
  const std::vector<std::string> a4 = {"192.168.4.20", "10.1.2.3", "198.51.100.77", "203.0.113.5", "203.0.113.6", "127.0.0.1", "8.8.8.8"};
  const std::vector<std::string> a6 = {"2001:db8::1", "3fff:0:1::5", "2606:4700::1111", "::1"};
  const std::vector<uint64_t> ports = {23, 53, 80, 443, 445, 1194, 3389, 4444, 8000, 8050, 8099, 8100, 137};
  std::mt19937 rng(21);
  int differences = 0;
  std::map<std::string, int> by_filter;
  for (int i = 0; i < 5000; ++i) {
    WConn c;
    const int kind = rng() % 3;
    c.layer = kind == 0 ? "ALE_AUTH_CONNECT_V4" : kind == 1 ? "ALE_AUTH_RECV_ACCEPT_V4" : "ALE_AUTH_CONNECT_V6";
    c.app = apps[rng() % apps.size()];
    c.admin = rng() % 4 == 0;
    c.proto = std::vector<uint64_t>{6, 6, 17, 17, 1, 58}[rng() % 6];
    const std::string addr = kind == 2 ? a6[rng() % a6.size()] : a4[rng() % a4.size()];
    if (kind == 2) c.raddr6 = v6(addr);
    else c.raddr4 = v4(addr);
    c.loopback = addr == "127.0.0.1" || addr == "::1";
    const uint64_t port = rng() % 6 ? ports[rng() % ports.size()] : 1 + rng() % 65535;
    c.rport = kind == 1 ? 50000 + rng() % 1000 : port;
    c.lport = kind == 1 ? port : 50000 + rng() % 1000;
    // LFP sees the app as the --map-app rewrite names it.
    std::string linux_app = c.app.rfind("\\device\\harddiskvolume3\\", 0) == 0 ? "/mnt/c/" + c.app.substr(24) : "/mnt/old" + c.app.substr(23);
    std::replace(linux_app.begin(), linux_app.end(), '\\', '/');
    json values = {{"IP_PROTOCOL", c.proto}, {"IP_REMOTE_ADDRESS", addr}, {"IP_REMOTE_PORT", c.rport}, {"IP_LOCAL_PORT", c.lport},
                   {"IP_LOCAL_ADDRESS", kind == 2 ? "2001:db8:1::2" : "192.168.4.2"}, {"ALE_APP_ID", linux_app},
                   {"FLAGS", c.loopback ? "IS_LOOPBACK" : "0"}};
    policy::Request req;
    policy::parse_request(json{{"layer", c.layer}, {"values", values}}, req);
    const bool lfp = engine.classify(req.layer, req.values).permit;
    const auto [want, by] = wfp_decides(filters, sub_weight, c);
    const auto [want_mapped, by_mapped] = wfp_decides(mapped, sub_weight, c);
    const std::string what = c.layer + " " + c.app + " proto " + std::to_string(c.proto) + " " + addr + " rport " + std::to_string(c.rport) +
                             " lport " + std::to_string(c.lport) + (c.admin ? " admin" : "");
    EXPECT_EQ(lfp, want_mapped) << what << ": WFP's deciding filter " << by_mapped;
    if (lfp != want) {
      ++differences;
      ++by_filter[by];
      EXPECT_FALSE(kept.count(by)) << what << ": decided by " << by << ", which was imported";
    }
  }
  std::string summary;
  for (const auto& [k, n] : by_filter) summary += " " + k + ": " + std::to_string(n) + ";";
  std::cout << "5000 connections, " << differences << " differences, each decided by a filter reported as not expressible:" << summary << '\n';
  EXPECT_GT(differences, 0);
}

}  // namespace
}  // namespace lfp::test
