// SPDX-License-Identifier: GPL-2.0
/* The one definition of the object's maps (lfp_maps.h; every other unit declares them extern), and
 * its licence. The programs are in lfp_classify.bpf.c (the classifier), lfp_ale_sock.bpf.c and
 * lfp_ale_flow.bpf.c (the ALE layers) and lfp_packet.bpf.c (the packet layers);
 * `bpftool gen object` links them into one object (datapath/CMakeLists.txt).
 */
#define LFP_MAPS_DEFINED_HERE
#include "lfp_maps.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";  // (the kernel lets GPL-compatible programs call its GPL-only helpers)
