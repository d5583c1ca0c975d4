// SPDX-License-Identifier: MIT
#include "capture_service.hpp"

#include "lfp/datapath/events.hpp"
#include "lfp/protocol/request.hpp"

namespace lfp::daemon {

using nlohmann::json;

CaptureService::CaptureService(Server& server, DataPathService& datapath)
    : datapath_(datapath), kernel_(*datapath.kernel()) {
  kernel_.set_dropped_sink([this, &server](const lfp_dropped& p) {
    if (dropped_.size() == kKept) dropped_.pop_front();
    dropped_.push_back(datapath::describe_dropped(p, server.engine()));
  });
  server.add_op("capture_packets", Role::ADMIN, [this](const OpContext&, const json& req) { return op_capture(req); });
}

CaptureService::~CaptureService() { kernel_.set_dropped_sink(nullptr); }

json CaptureService::op_capture(const json& req) {
  if (req.contains("on") && !req["on"].is_null()) {
    const bool on = protocol::bool_member(req, "on", false);
    if (on) dropped_.clear();
    kernel_.set_keep_dropped(on);
  }
  datapath_.drain();
  json packets = json::array();
  for (const auto& p : dropped_) packets.push_back(p);
  return json{{"on", kernel_.keep_dropped()}, {"kept_at_most", kKept}, {"packets", packets}};
}

}  // namespace lfp::daemon
