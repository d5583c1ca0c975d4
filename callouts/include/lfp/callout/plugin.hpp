#pragma once
// LFP's callout plugin interface, version 1: what a callout plugin (`lfpd --callout PLUGIN.so`)
// implements. Plain C types across the boundary, so that a plugin built with another compiler or
// standard library works; a new version adds lfp_callout_plugin_v2 and keeps v1.
//
// A plugin is loaded in a host process of its own (lfp-callout-host), never in lfpd: a plugin that
// crashes or hangs costs its own decisions (as if unregistered: PERMIT_IF_CALLOUT_UNREGISTERED
// applies), never lfpd's packet path. lfpd waits for an answer at most the host's timeout.
//
// The semantics are WFP's (FWPS_CALLOUT): classifyFn, notifyFn, flowDeleteFn. Classify returns
// PERMIT, BLOCK or CONTINUE; a BLOCK overrides a hard PERMIT (veto) when the action right is clear.
#include <stddef.h>
#include <stdint.h>

#define LFP_CALLOUT_API_VERSION 1

extern "C" {

// One field of the layer's incoming values, as text: "IP_REMOTE_PORT" -> "443",
// "IP_REMOTE_ADDRESS" -> "192.0.2.7", "ALE_APP_ID" -> "/usr/bin/curl", "ALE_USER_ID" -> "uid=1000,gids=1000+27".
struct lfp_callout_field {
  const char* name;
  const char* value;
};

struct lfp_callout_classify_in {
  const char* layer;                  // "ALE_AUTH_CONNECT_V4"
  const lfp_callout_field* fields;    // the values present at this layer
  size_t nfields;
  const char* filter_key;             // the filter that invoked the callout
  const char* provider_context;       // its provider context's data ("" if none)
  uint64_t flow_handle;               // the flow (socket cookie), 0 if none
  uint32_t pid;                       // metadata: the process, when known
  const char* process_path;
  const uint8_t* data;                // the layer's data (packet, payload), may be null
  size_t data_len;
  int action_write;                   // FWPS_RIGHT_ACTION_WRITE on entry
};

enum lfp_callout_action { LFP_CALLOUT_CONTINUE = 0, LFP_CALLOUT_PERMIT = 1, LFP_CALLOUT_BLOCK = 2 };

struct lfp_callout_classify_out {
  int action;              // lfp_callout_action
  int clear_action_write;  // make this decision hard
};

enum lfp_callout_notify { LFP_CALLOUT_FILTER_ADD = 0, LFP_CALLOUT_FILTER_DELETE = 1 };

struct lfp_callout {
  const char* key;    // the callout's GUID (the callout object in the policy has the same key)
  const char* layer;  // its applicable layer
  void (*classify)(const lfp_callout_classify_in* in, lfp_callout_classify_out* out);
  int (*notify)(int type, const char* filter_key);  // may be null; nonzero refuses an added filter
  void (*flow_delete)(uint64_t flow_handle);        // may be null
};

struct lfp_callout_plugin {
  uint32_t api_version;  // LFP_CALLOUT_API_VERSION
  const char* name;
  const lfp_callout* callouts;
  size_t ncallouts;
};

// Exported by every plugin.
const lfp_callout_plugin* lfp_callout_plugin_v1(void);
}
