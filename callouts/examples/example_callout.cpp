// An example callout plugin (and the one the tests load): callout 4c460000-0000-4000-8000-0000000000ca
// at ALE_AUTH_CONNECT_V4 acts on its filter's provider context:
//   "block" / "permit" / "continue": that action;   "block-odd-ports": BLOCK when IP_REMOTE_PORT is odd;
//   "crash": the plugin crashes (lfpd must not);      "hang": the plugin never answers.
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include "lfp/callout/plugin.hpp"

namespace {

const char* field(const lfp_callout_classify_in* in, const char* name) {
  for (size_t i = 0; i < in->nfields; ++i)
    if (std::strcmp(in->fields[i].name, name) == 0) return in->fields[i].value;
  return nullptr;
}

void classify(const lfp_callout_classify_in* in, lfp_callout_classify_out* out) {
  const char* how = in->provider_context;
  out->clear_action_write = 0;
  if (!std::strcmp(how, "block")) out->action = LFP_CALLOUT_BLOCK;
  else if (!std::strcmp(how, "permit")) out->action = LFP_CALLOUT_PERMIT;
  else if (!std::strcmp(how, "block-odd-ports")) {
    const char* port = field(in, "IP_REMOTE_PORT");
    out->action = port && std::atoi(port) % 2 ? LFP_CALLOUT_BLOCK : LFP_CALLOUT_PERMIT;
  } else if (!std::strcmp(how, "crash")) {
    std::raise(SIGSEGV);
  } else if (!std::strcmp(how, "hang")) {
    for (;;) ::pause();
  } else {
    out->action = LFP_CALLOUT_CONTINUE;
  }
}

const lfp_callout kCallouts[] = {
    {"4c460000-0000-4000-8000-0000000000ca", "ALE_AUTH_CONNECT_V4", classify, nullptr, nullptr},
};
const lfp_callout_plugin kPlugin = {LFP_CALLOUT_API_VERSION, "lfp example callout", kCallouts, 1};

}  // namespace

extern "C" const lfp_callout_plugin* lfp_callout_plugin_v1(void) { return &kPlugin; }
