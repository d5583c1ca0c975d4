#pragma once
// The callout interface as the engine sees it (FWPS_CALLOUT's classifyFn and notifyFn). The full
// callout API for plugins (flow contexts, stream data, pending) builds on this in callouts/.
#include <cstdint>

#include "lfp/engine/catalogue.hpp"
#include "lfp/engine/condition.hpp"

namespace lfp {

struct Filter;

// FWP_ACTION_* a classifyFn may return.
enum class CalloutVerdict : uint8_t { CONTINUE, PERMIT, BLOCK, NONE };

struct CalloutClassifyIn {
  LayerId layer;
  const FieldValues& values;
  const Filter& filter;
  bool action_write;  // FWPS_RIGHT_ACTION_WRITE on entry: clear means only a BLOCK (veto) counts
};

struct CalloutClassifyOut {
  CalloutVerdict verdict = CalloutVerdict::CONTINUE;
  bool clear_action_write = false;  // make this decision hard
};

class CalloutDriver {
 public:
  enum class NotifyType { ADD_FILTER, DELETE_FILTER };
  virtual ~CalloutDriver() = default;
  virtual void classify(const CalloutClassifyIn& in, CalloutClassifyOut& out) = 0;
  // Returning false for ADD_FILTER refuses the filter (the add fails).
  virtual bool notify(NotifyType type, const Filter& filter) { return true; }
};

}  // namespace lfp
