// SPDX-License-Identifier: MIT
#include "callout_plugins.hpp"

#include <filesystem>

#include <spdlog/spdlog.h>

namespace lfp::daemon {

namespace {
std::string find_host() {
  const auto dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  std::string host;
  for (const auto& c : {dir / "lfp-callout-host", dir.parent_path() / "callouts" / "lfp-callout-host",
                        dir.parent_path() / "lib" / "lfp" / "lfp-callout-host"})  // (as installed: /usr/lib/lfp)
    if (std::filesystem::exists(c)) host = c.string();
  if (host.empty()) throw std::runtime_error("lfp-callout-host not found beside lfpd, in ../callouts or ../lib/lfp; give --callout-host");
  return host;
}
}  // namespace

CalloutPlugins::CalloutPlugins(Server& server, CalloutOptions options) : server_(server) {
  if (!options.plugins.empty() && options.host.empty()) options.host = find_host();
  for (const auto& plugin : options.plugins) {
    auto& h = hosts_.emplace_back(std::make_unique<callouts::CalloutHost>(plugin, options.host, options.timeout_ms));
    h->register_with(server.engine());
    spdlog::info("callout plugin {} ({}): {} callouts", h->name(), plugin, h->callouts().size());
    callouts::CalloutHost* hp = h.get();
    server.watch_fd(h->fd(), [this, hp] {
      if (hp->reap(server_.engine())) forget(*hp);
      for (const auto& [handle, permit] : hp->take_completions())
        if (on_complete) on_complete(handle, permit);
    });
  }
}

void CalloutPlugins::reap_failed() {
  for (auto& h : hosts_)
    if (!h->alive() && h->reap(server_.engine())) forget(*h);
}

void CalloutPlugins::forget(callouts::CalloutHost& host) {
  server_.unwatch_fd(host.fd());
  server_.notify_policy_changed();
}

}  // namespace lfp::daemon
