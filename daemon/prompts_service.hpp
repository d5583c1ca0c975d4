// SPDX-License-Identifier: MIT
#pragma once
// lfp prompt's ops (docs/callouts.md): pending_list, the connects pended for a person or a callout
// (a user sees their own, an admin all), and pending_complete, their answers.
#include "lfp/datapath/pending.hpp"
#include "server.hpp"

namespace lfp::daemon {

class PromptsService {
 public:
  PromptsService(Server& server, datapath::PendingDecisions& pending);

 private:
  nlohmann::json op_complete(const OpContext& ctx, const nlohmann::json& req);

  datapath::PendingDecisions& pending_;
};

}  // namespace lfp::daemon
