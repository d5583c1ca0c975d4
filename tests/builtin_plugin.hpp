// SPDX-License-Identifier: MIT
// The built-in callouts' plugin (liblfp_inspect_callouts.so) loaded as lfpd's callout host loads it,
// for the tests that call one of its callouts on a packet's bytes (the packet layers' user-space path).
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lfp/callout/plugin.hpp"

namespace lfp::test {

class BuiltinPlugin {
 public:
  BuiltinPlugin() : handle_(::dlopen(LFP_INSPECT_CALLOUTS, RTLD_NOW | RTLD_LOCAL)) {
    if (!handle_) error_ = ::dlerror();
    else if (auto entry = reinterpret_cast<const lfp_callout_plugin2* (*)()>(::dlsym(handle_, "lfp_callout_plugin_v2")))
      plugin_ = entry();
    else error_ = "no lfp_callout_plugin_v2";
  }
  ~BuiltinPlugin() {
    if (handle_) ::dlclose(handle_);
  }
  BuiltinPlugin(const BuiltinPlugin&) = delete;
  BuiltinPlugin& operator=(const BuiltinPlugin&) = delete;

  const std::string& error() const { return error_; }  // why the plugin did not load
  // The callout with this key, or nullptr.
  const lfp_callout2* callout(const std::string& key) const {
    for (size_t i = 0; plugin_ && i < plugin_->ncallouts; ++i)
      if (key == plugin_->callouts[i].key) return &plugin_->callouts[i];
    return nullptr;
  }
  // One classify at the callout's layer on a packet's bytes with this provider context. `before` is
  // the action the out-parameter holds before the call, so a test sees that the callout set its own.
  static int classify(const lfp_callout2* c, const std::string& config, const std::vector<uint8_t>& packet,
                      int before = LFP_CALLOUT_CONTINUE) {
    lfp_callout_classify_in2 in{};
    in.v1 = {c->layer, nullptr, 0, "f1", config.c_str(), 0, 0, "", packet.data(), packet.size(), 1};
    lfp_callout_classify_out2 out{};
    out.v1.action = before;
    c->classify(&in, &out);
    return out.v1.action;
  }

 private:
  void* handle_;
  const lfp_callout_plugin2* plugin_ = nullptr;
  std::string error_;
};

}  // namespace lfp::test
