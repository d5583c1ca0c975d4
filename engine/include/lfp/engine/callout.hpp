// SPDX-License-Identifier: MIT
#pragma once
// The callout interface as the engine sees it (FWPS_CALLOUT's classifyFn and notifyFn). The full
// callout API for plugins (flow contexts, stream data, pending) builds on this in callouts/.
#include <cstdint>
#include <optional>
#include <string_view>
#include <string>
#include <unordered_map>
#include <vector>

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/condition.hpp"
#include "lfp/engine/guid.hpp"

namespace lfp {

struct Filter;

// FWP_ACTION_* a classifyFn may return.
enum class CalloutVerdict : uint8_t { CONTINUE, PERMIT, BLOCK, NONE };

// FWPS_STREAM_CALLOUT_IO_PACKET0.streamAction.
enum class StreamAction : uint8_t { NONE, ALLOW_CONNECTION, NEED_MORE_DATA, DROP_CONNECTION, DEFER };

// FWPS_STREAM_DATA0.flags.
enum StreamFlag : uint32_t {
  STREAM_FLAG_RECEIVE = 0x1,
  STREAM_FLAG_RECEIVE_DISCONNECT = 0x4,  // FIN after this data
  STREAM_FLAG_RECEIVE_ABORT = 0x8,       // RST
  STREAM_FLAG_SEND = 0x10,
  STREAM_FLAG_SEND_DISCONNECT = 0x80,
  STREAM_FLAG_SEND_ABORT = 0x100,
};

// What the data path knows beyond the layer's values, and what callouts hand back to it: WFP's
// incoming metadata (FWPS_INCOMING_METADATA_VALUES0), layer data (the packet, datagram payload or
// FWPS_STREAM_CALLOUT_IO_PACKET0), flow contexts and pending. The engine only passes it through.
struct ClassifyMeta {
  uint64_t flow_handle = 0;  // 0: no flow
  uint32_t pid = 0;
  std::string_view process_path;
  const uint8_t* data = nullptr;  // the layer's data
  size_t data_len = 0;
  uint32_t stream_flags = 0;      // StreamFlag, at STREAM layers
  uint64_t stream_offset = 0;     // bytes of this direction before `data`
  // Out, at STREAM layers. Any action other than NONE makes the engine's verdict moot (WFP).
  StreamAction stream_action = StreamAction::NONE;
  uint32_t count_bytes_required = 0;  // NEED_MORE_DATA: this many more bytes
  // Flow contexts (FwpsFlowAssociateContext0): callout key -> context, owned by the data path,
  // which calls flow_delete for each when the flow ends. Null where flows have no contexts.
  std::unordered_map<Guid, uint64_t>* flow_contexts = nullptr;
  // FwpsPendOperation0: the callout pended this decision (it returned BLOCK meanwhile); the data
  // path holds the packet until the callout completes it, then classifies again (IS_REAUTHORIZE).
  bool pended = false;
  Guid pended_by;            // the callout that pended it
  uint64_t pend_handle = 0;  // the completion handle the data path gives (0: this decision cannot pend)
  // The classify after a completion (IS_REAUTHORIZE): the pending callout answers what it completed.
  std::optional<bool> completed_permit;
  Guid completed_by;
  // Modification and injection (DATAGRAM_DATA): a new payload for the datagram, packets to inject.
  std::optional<std::string> new_data;
  std::vector<std::string> inject;
  // Net events callouts asked for (the log callout answers CONTINUE and asks for one): the filter
  // that called it, the event's text (its log_prefix), events it left out since (over its rate).
  struct Log {
    const Filter* filter;
    std::string text;
    uint64_t suppressed = 0;
  };
  std::vector<Log> logs;
};


struct CalloutClassifyIn {
  LayerId layer;
  const FieldValues& values;
  const Filter& filter;
  bool action_write;  // FWPS_RIGHT_ACTION_WRITE on entry: clear means only a BLOCK (veto) counts
  ClassifyMeta* meta = nullptr;  // null: no metadata (a classify that is not from the data path)
};

struct CalloutClassifyOut {
  CalloutVerdict verdict = CalloutVerdict::CONTINUE;
  bool clear_action_write = false;  // make this decision hard
};

// For a driver's classify: the completed answer of a decision this callout pended, if this is the
// classify that follows the completion. True when it answered.
inline bool answer_completion(const Guid& callout, ClassifyMeta* m, CalloutClassifyOut& out) {
  if (!m || !m->completed_permit || m->completed_by != callout) return false;
  out.verdict = *m->completed_permit ? CalloutVerdict::PERMIT : CalloutVerdict::BLOCK;
  return true;
}

class CalloutDriver {
 public:
  enum class NotifyType { ADD_FILTER, DELETE_FILTER };
  virtual ~CalloutDriver() = default;
  virtual void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) = 0;
  // Returning false for ADD_FILTER refuses the filter (the add fails).
  virtual bool notify(NotifyType type, const Filter& filter) { return true; }
  // flowDeleteFn: a flow this callout associated `context` with (ClassifyMeta::flow_contexts) ended.
  virtual void flow_delete(uint64_t flow_handle, uint64_t context) {}
};

}  // namespace lfp
