// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* What LFP's BPF programs and user space share (the programs: lfp_*.bpf.c; user space:
 * datapath/src/compile.cpp, kernel.cpp and the rest of the data path): the constants
 * (lfp_consts.h) and the structs (lfp_structs.h). The map definitions are the programs' own
 * (lfp_maps.h); user space reaches the maps through the skeleton, by name.
 */
#ifndef LFP_KERNEL_H
#define LFP_KERNEL_H

#ifdef __cplusplus
#include <cstddef>
#endif

#include "lfp_consts.h"
#include "lfp_structs.h"

#endif
