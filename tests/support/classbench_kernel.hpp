// SPDX-License-Identifier: MIT
// A ClassBench header as the values the INBOUND_TRANSPORT_V4 hook supplies (the source as the remote
// end, as classbench::to_filter reads a rule), for the tests and benchmarks that run ClassBench sets
// through the kernel's compiled policy. Needs lfp_datapath (datapath/bpf/lfp_kernel.h).
#pragma once

#include "classbench_io.hpp"
#include "lfp_kernel.h"

namespace lfp::classbench {

inline lfp_values kernel_values(const Packet& p) {
  lfp_values v{};
  auto put = [&](int slot, uint64_t x) {
    v.v[slot][1] = x;
    v.present |= 1u << slot;
  };
  put(LFP_S_REMOTE_ADDR, p.src);
  put(LFP_S_LOCAL_ADDR, p.dst);
  put(LFP_S_REMOTE_PORT, p.sport);
  put(LFP_S_LOCAL_PORT, p.dport);
  put(LFP_S_PROTOCOL, p.proto);
  return v;
}

}  // namespace lfp::classbench
