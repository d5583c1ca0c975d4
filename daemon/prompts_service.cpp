// SPDX-License-Identifier: MIT
#include "prompts_service.hpp"

#include "lfp/engine/error.hpp"
#include "lfp/protocol/request.hpp"

namespace lfp::daemon {

using nlohmann::json;

PromptsService::PromptsService(Server& server, datapath::PendingDecisions& pending) : pending_(pending) {
  server.add_op("pending_list", Role::READER, [this](const OpContext& ctx, const json& req) {
    return protocol::page_of(ctx.role == Role::ADMIN ? pending_.list() : pending_.list(ctx.cred.uid), req, "pending");
  });
  server.add_op("pending_complete", Role::READER,
                [this](const OpContext& ctx, const json& req) { return op_complete(ctx, req); });
}

json PromptsService::op_complete(const OpContext& ctx, const json& req) {
  // ("id" names the request itself in the protocol.)
  const auto pending_id = protocol::maybe_uint_member(req, "pending", UINT64_MAX);
  if (!pending_id) protocol::missing_member("pending", "a pending decision's id (pending_list)");
  const std::string action = protocol::string_member(req, "action").value_or("");
  if (action != "PERMIT" && action != "BLOCK")
    throw Error(ErrorCode::INVALID_PARAMETER, "/action: must be PERMIT or BLOCK, not \"" + protocol::log_safe(action, 64) + "\"");
  const uint64_t id = *pending_id;
  const auto uid = pending_.owner(id);
  if (!uid) throw Error(ErrorCode::NOT_FOUND, "no pending decision " + std::to_string(id) + " (answered, or timed out)");
  if (ctx.role != Role::ADMIN && ctx.cred.uid != *uid)
    throw Error(ErrorCode::ACCESS_DENIED, "only the connection's user or an admin may answer it");
  pending_.complete(id, action == "PERMIT", "uid " + std::to_string(ctx.cred.uid));
  return json{{"pending", id}, {"action", action}};
}

}  // namespace lfp::daemon
