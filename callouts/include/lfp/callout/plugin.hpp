// SPDX-License-Identifier: MIT
#pragma once
// LFP's callout plugin interface: what a callout plugin (`lfpd --callout PLUGIN.so`) implements.
// Plain C types across the boundary, so that a plugin built with another compiler or standard
// library works. Version 2 (stream and datagram data, stream actions, flow contexts, pending) adds
// lfp_callout_plugin_v2 and keeps version 1: the host takes whichever a plugin exports (v2 first).
//
// A plugin is loaded in a host process of its own (lfp-callout-host), never in lfpd: a plugin that
// crashes or hangs costs its own decisions (as if unregistered: PERMIT_IF_CALLOUT_UNREGISTERED
// applies), never lfpd's packet path. lfpd waits for an answer at most the host's timeout.
//
// The semantics are WFP's (FWPS_CALLOUT): classifyFn, notifyFn, flowDeleteFn. Classify returns
// PERMIT, BLOCK or CONTINUE; a BLOCK overrides a hard PERMIT (veto) when the action right is clear.
#include <stddef.h>
#include <stdint.h>

#define LFP_CALLOUT_API_VERSION 2

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
// Exported by every version-1 plugin (api_version 1).
const lfp_callout_plugin* lfp_callout_plugin_v1(void);

// ---- Version 2 -----------------------------------------------------------------------------------
// At STREAM_V4/V6, `data` is the flow's bytes of one direction, in order, that no earlier classify
// decided (FWPS_STREAM_CALLOUT_IO_PACKET0); at DATAGRAM_DATA_V4/V6 the UDP payload of one datagram.

// FWPS_STREAM_ACTION_TYPE. Any action but NONE makes `action` moot.
enum lfp_stream_action {
  LFP_STREAM_ACTION_NONE = 0,
  LFP_STREAM_ACTION_ALLOW_CONNECTION = 1,  // permit the rest of the flow; the callout is not asked again
  LFP_STREAM_ACTION_NEED_MORE_DATA = 2,    // ask again with count_bytes_required more bytes (the packets wait)
  LFP_STREAM_ACTION_DROP_CONNECTION = 3,   // reset both ends (CALLOUT_UNKNOWN filters; BLOCK does the same)
};

// FWPS_STREAM_DATA0.flags (values as lfp/engine/callout.hpp's StreamFlag).
#define LFP_STREAM_FLAG_RECEIVE 0x1u
#define LFP_STREAM_FLAG_RECEIVE_DISCONNECT 0x4u
#define LFP_STREAM_FLAG_SEND 0x10u
#define LFP_STREAM_FLAG_SEND_DISCONNECT 0x80u
// FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED: the data path holds no more; decide on what is here.
#define LFP_STREAM_FLAG_BUFFER_LIMIT_REACHED 0x10000u

struct lfp_callout_classify_in2 {
  lfp_callout_classify_in v1;  // as in version 1 (data, data_len: the layer's data)
  uint32_t stream_flags;       // LFP_STREAM_FLAG_*, at STREAM layers
  uint64_t stream_offset;      // bytes of this direction before `data`
  uint64_t flow_context;       // what this callout associated with the flow, 0 if none
  uint64_t pend_handle;        // nonzero where this decision may be pended (ALE_AUTH_CONNECT)
};

struct lfp_callout_classify_out2 {
  lfp_callout_classify_out v1;    // action, clear_action_write
  int stream_action;              // lfp_stream_action
  uint32_t count_bytes_required;  // with NEED_MORE_DATA
  int set_flow_context;           // nonzero: associate flow_context with the flow (FwpsFlowAssociateContext0)
  uint64_t flow_context;
  int pend;  // nonzero: the decision is pended (FwpsPendOperation0); complete it with lfp_callout_complete
  // Modification and injection (the plugin keeps the bytes valid until its next classify returns):
  const uint8_t* new_data;  // DATAGRAM_DATA: the datagram goes on with this payload instead (lfpd fixes
  size_t new_data_len;      // the lengths and checksums); with a PERMIT (or CONTINUE that ends permitted)
  const uint8_t* inject;    // an IPv4 or IPv6 packet to inject, checksums fixed by lfpd: to one of the host's
  size_t inject_len;        // own addresses it takes the receive path, to any other the send path. With
                            // BLOCK of the original this is WFP's clone-and-block.
  // A net event for this packet, whatever the action (CONTINUE included): lfpd records a CLASSIFY_LOG
  // event naming the filter, with this text as its log_prefix (at the packet layers' user-space path).
  const char* log_text;     // null: none (the plugin keeps it valid until its next classify returns)
  uint64_t log_suppressed;  // with log_text: the filter's events the plugin left out since its last one
};

struct lfp_callout2 {
  const char* key;
  const char* layer;
  void (*classify)(const lfp_callout_classify_in2* in, lfp_callout_classify_out2* out);
  int (*notify)(int type, const char* filter_key);             // may be null; nonzero refuses an added filter
  void (*flow_delete)(uint64_t flow_handle, uint64_t context);  // may be null: a flow with a context ended
};

struct lfp_callout_plugin2 {
  uint32_t api_version;  // 2
  const char* name;
  const lfp_callout2* callouts;
  size_t ncallouts;
};

// Exported by every version-2 plugin.
const lfp_callout_plugin2* lfp_callout_plugin_v2(void);

// Given to plugins by the host (FwpsCompleteOperation0): completes a pended decision with
// LFP_CALLOUT_PERMIT or LFP_CALLOUT_BLOCK. May be called from any thread of the plugin.
void lfp_callout_complete(uint64_t pend_handle, int action);
}
