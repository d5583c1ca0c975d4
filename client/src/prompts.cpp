// SPDX-License-Identifier: MIT
#include "lfp/client/prompts.hpp"

namespace lfp::client {

using nlohmann::json;

namespace {

json answer_filter(Client& c, const json& p, bool permit, bool forever, const std::string& by) {
  json conds = json::array({{{"field", "IP_REMOTE_ADDRESS"}, {"value", p["remote_address"]}},
                            {{"field", "IP_REMOTE_PORT"}, {"value", p["remote_port"]}},
                            {{"field", "IP_PROTOCOL"}, {"value", p["ip_protocol"]}}});
  if (p.contains("app_id")) conds.push_back({{"field", "ALE_APP_ID"}, {"value", p["app_id"]}});
  json f = {{"name", std::string(permit ? "allow " : "deny ") + p.value("app_id", "any app") + " to " +
                         p.value("remote_address", "") + ":" + std::to_string(p.value("remote_port", 0)) + " (" + by + ")"},
            {"layer", p["layer"]},
            {"action", permit ? "PERMIT" : "BLOCK"},
            {"conditions", conds}};
  if (forever) f["flags"] = {"PERSISTENT"};
  if (p.contains("filter_key")) {
    const json prompt = c.get("filter", p["filter_key"].get<std::string>());
    if (prompt.contains("sublayer")) f["sublayer"] = prompt["sublayer"];
    if (prompt.contains("effective_weight") && prompt["effective_weight"].is_number_unsigned())
      f["weight"] = {{"explicit", prompt["effective_weight"].get<uint64_t>() + 1}};
  }
  return c.add("filter", f);
}

}  // namespace

json answer_prompt(Client& c, uint64_t id, bool permit, PromptScope scope, const std::string& by) {
  static const char* const kScopes[] = {"once", "session", "forever"};
  json out = {{"id", id}, {"action", permit ? "PERMIT" : "BLOCK"}, {"scope", kScopes[static_cast<int>(scope)]}};
  if (scope != PromptScope::ONCE) {
    json pending;
    for (const auto& p : c.list("pending_list", "pending").items)
      if (p["id"] == id) pending = p;
    if (pending.is_null())
      throw ClientError("NOT_FOUND", "no pending connection " + std::to_string(id) + " (answered, or timed out)");
    out["filter"] = answer_filter(c, pending, permit, scope == PromptScope::FOREVER, by);  // first: the re-classify sees it
  }
  c.call("pending_complete", {{"pending", id}, {"action", permit ? "PERMIT" : "BLOCK"}});
  return out;
}

}  // namespace lfp::client
