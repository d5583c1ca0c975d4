// SPDX-License-Identifier: MIT
#pragma once
// Compiles the engine's enforced ALE filters into the kernel's form (datapath/bpf/lfp_kernel.h).
// Pure: no kernel, no files. The BPF programs evaluate the result with the engine's arbitration;
// what the kernel cannot decide (callouts, string matches on ALE_APP_ID) becomes LFP_A_USERSPACE.
#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lfp/engine/engine.hpp"

extern "C" {
#include "lfp_kernel.h"
}

namespace lfp::datapath {

// The _V4 packet layers a netfilter hook walks (NF_INET_PRE_ROUTING .. NF_INET_LOCAL_OUT, as
// lfp_packet.bpf.c's walk(); the _V6 layer of each is the next one).
const std::vector<lfp_kl>& hook_layers(int nf_hook);

// The kernel layer a hook feeds, and the engine layer it stands for.
LayerId engine_layer(lfp_kl kl);
std::optional<lfp_kl> kernel_layer(LayerId layer);

// The fields a kernel layer's hook supplies (the others are EMPTY, as the engine sees them), and the
// lfp_slot each is in (LFP_S_NONE for the others).
bool kernel_supplies(lfp_kl kl, FieldId f);
int kernel_slot(lfp_kl kl, FieldId f);

// ALE_APP_ID in the kernel: the identity of the executable file, (device, inode), which the hooks
// read from the current task (mm->exe_file). A path in a condition stands for the file it names when
// the policy is compiled.
struct AppKey {
  uint64_t dev = ~0ull;  // the kernel's dev_t; all ones: no such file (matches no process)
  uint64_t ino = ~0ull;
  friend auto operator<=>(const AppKey&, const AppKey&) = default;
};
using AppResolver = std::function<AppKey(const std::string& path)>;

struct PolicyPlaces;  // where each compiled filter is, for update() (compile.cpp)

struct KernelPolicy {
  std::vector<lfp_entry> bank;  // LFP_KL_COUNT layer headers, then the conditions
  std::vector<lfp_user_key> user_sets;
  std::map<AppKey, std::string> apps;  // the executables the policy names
  std::map<uint64_t, lfp_redirect> redirects;  // ALE_CONNECT_REDIRECT targets by filter id
  size_t filters = 0;            // filters compiled
  size_t index_keys = 0;         // values the layers' hash tables hold (docs/kernel-index.md)
  size_t residual_filters = 0;   // filters no value indexes: every decision at their layer visits them
  size_t widened_filters = 0;    // filters under a key wider than their conditions (a /27 under its /24)
  size_t userspace_filters = 0;  // of which the kernel hands to user space
  std::array<uint32_t, LFP_KL_COUNT> layer_filters{};    // filters compiled, per kernel layer
  std::array<uint32_t, LFP_KL_COUNT> layer_userspace{};  // of which need user space
  // What update() needs; null when the policy can only be compiled whole (compiled with only_flags,
  // or holding user sets, whose ids differ between the two banks).
  std::shared_ptr<PolicyPlaces> places;
};

// The bank's size is the policy's (KernelPath checks it against the map's capacity).
// User sets get ids from `user_set_base` on, so two policies' sets can coexist during a swap.
// only_flags: compile only the filters with all these flags (lfpd --boot: BOOTTIME).
KernelPolicy compile(const FilterEngine& engine, const AppResolver& apps, uint32_t user_set_base,
                     uint32_t only_flags = 0);

// An incremental update (docs/kernel-index.md): a transaction's filter changes applied to the policy
// compiled before it, in place. Each added filter gets an order key between its neighbours', its
// conditions and guard past the bank's end, and a copy of its list with it in place (its key's bucket,
// or the residual list); a deleted filter's guard becomes one that never holds. `written`: the bank
// entries that changed or are new, to copy into both banks. Not applied (`why_whole`) when the change
// needs the whole compile: something besides filters changed, a layer or sublayer gets its first
// filter, a filter needs user space or a user set, no order key is left between the neighbours, the
// residual list doubled, or the bank would outgrow `capacity`; `policy` is then half changed and must be
// compiled anew.
struct UpdateResult {
  bool applied = false;
  std::vector<uint32_t> written;  // sorted
  std::string why_whole;
};
UpdateResult update(KernelPolicy& policy, const FilterEngine& engine, const FilterChanges& changes,
                    const AppResolver& apps, size_t capacity);

// The filters a decision at layer kl with values v visits in the kernel: the residual list and the
// lists its probes find (docs/kernel-index.md), or the whole layer when it has no index. For the
// benchmarks and tests that measure the index; the hooks' own walk is lfp_eval.
size_t index_candidates(const KernelPolicy& policy, lfp_kl kl, const lfp_values& v);

// What lfp_eval reads for one decision, in bank entries (64-byte cache lines), by kind: a model of
// its walk (bank_walk.cpp) for the benchmarks, since out of cache each distinct line is a miss.
struct WalkCost {
  size_t probes = 0, lists = 0;      // shapes probed (the hook has their fields), lists found
  size_t candidates = 0;             // filters whose guard was read
  size_t filters_read = 0;           // of which the conditions were read
  size_t index_lines = 0, fingerprint_lines = 0, bucket_lines = 0, list_lines = 0, guard_lines = 0, condition_lines = 0;
  size_t lines() const {
    return index_lines + fingerprint_lines + bucket_lines + list_lines + guard_lines + condition_lines;
  }
};
WalkCost walk_cost(const KernelPolicy& policy, lfp_kl kl, const lfp_values& v);

// The engine's view of kernel values: the same FieldValues a hook's lfp_values stand for.
// `app_paths` names the executables; `token` receives the user. Both must outlive `out`.
void to_field_values(lfp_kl kl, const lfp_values& v, const std::map<AppKey, std::string>& app_paths,
                     Token& token, FieldValues& out);

}  // namespace lfp::datapath
