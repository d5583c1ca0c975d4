// SPDX-License-Identifier: MIT
#pragma once
// lfpd's options (docs/lfpd.md): the command line and the configuration file are one parser, CLI11's
// TOML reader: every option is a key, named as its long flag without "--"; the command line wins.
#include <optional>
#include <string>

#include "callout_plugins.hpp"
#include "datapath_service.hpp"
#include "event_export.hpp"
#include "lfp/netevents/log.hpp"
#include "server.hpp"

namespace lfp::daemon {

struct LfpdOptions {
  Config server;
  std::string log_level = "info";
  bool netevents_all = false;  // --netevents-access all: readers see every user's net events
  netevents::Retention retention;
  CalloutOptions callouts;
  std::string metrics_listen;  // --metrics-listen ADDR:PORT ("": no metrics)
  EventExportOptions events;   // --events-journal, --events-file
  // (The pins under /sys/fs/bpf/lfp; the packet layers on: with the cgroup2 root, lfpd governs the
  // machine unless told less.)
  DataPathOptions datapath{.kernel = {.pin_dir = "/sys/fs/bpf/lfp", .packet_layers = true}};
  std::string cgroup;       // --cgroup as given: "" the cgroup2 root; "none": no ALE hooks
  std::string config_path;  // the configuration file read ("": none)
  bool boot = false, detach = false;
};

// Reads the command line and the configuration file into `o`. nullopt: lfpd goes on; else it exits
// with this code (--help, --version, --print-config, or a bad option, told on standard error).
std::optional<int> parse_options(int argc, char** argv, LfpdOptions& o);

}  // namespace lfp::daemon
