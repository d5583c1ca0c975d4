// SPDX-License-Identifier: MIT
#pragma once
// The kernel side of the ALE layers: loads the BPF programs (datapath/bpf/lfp_*.bpf.c), attaches
// them to one cgroup v2, pins what must outlive lfpd, and installs compiled policy with an atomic
// bank swap. Needs root (CAP_BPF, CAP_NET_ADMIN).
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lfp/datapath/compile.hpp"

struct lfp_bpf;     // the libbpf skeleton (datapath/CMakeLists.txt)
struct ring_buffer;
struct bpf_link;
struct bpf_program;

namespace lfp::datapath {

struct KernelOptions {
  std::string cgroup;   // cgroup v2 directory to attach to; empty: load only (no hooks run)
  std::string pin_dir;  // a directory on a bpffs: maps and links are pinned there and reused on restart
  bool fail_closed = false;  // a decision needing user space blocks while user space cannot take it
  bool log_allows = false;   // report permits as events too
  // The packet layers (docs/packet-layers.md): netfilter programs linked into the caller's network
  // namespace. They turn on the kernel's IP reassembly there, as conntrack does.
  bool packet_layers = false;
  bool no_packet_cache = false;  // classify every packet, not each set of values once (for benchmarks)
  // The most entries (64 bytes each) a policy bank may take; 0: kMaxBankEntries. A bank is sized to
  // its policy (there are two: one in force, one being filled); a policy that needs more is refused.
  uint32_t bank_entries = 0;
};
constexpr uint32_t kMaxBankEntries = 1u << 26;  // 4 GiB a bank

// The executable's (dev, inode) as the kernel reports it for `path` (stat, following links).
AppKey resolve_app(const std::string& path);

class KernelPath {
 public:
  // Loads and attaches; reuses pinned maps and replaces pinned links (a restart keeps enforcing:
  // the old links stay attached until the new ones are). Throws std::runtime_error.
  explicit KernelPath(KernelOptions opts);
  ~KernelPath();  // pinned objects stay; unpinned ones go with the process
  KernelPath(const KernelPath&) = delete;
  KernelPath& operator=(const KernelPath&) = delete;

  // Compiles the engine's filters and swaps them in; nothing changes when it throws
  // (std::length_error: the policy needs more entries than a bank holds; std::runtime_error: a map).
  // With `changes` (what a transaction changed since the last install), an update in place when it
  // can be one (compile.hpp's update()): its entries into the idle bank, the flip, then the same into
  // the other, so both banks stay alike and the next update can follow.
  const KernelPolicy& install(const FilterEngine& engine, uint32_t only_flags = 0,  // (compile's only_flags)
                              const FilterChanges* changes = nullptr);
  // How the last install went: in place (the bank entries it wrote), or compiled whole and why.
  struct InstallReport {
    bool in_place = false;
    size_t entries_written = 0;
    std::string why_whole;  // (with changes given, why they were not applied in place)
  };
  const InstallReport& last_install() const { return last_install_; }
  const KernelPolicy& installed() const { return policy_; }

  // The kernel's own evaluator (lfp_eval, run through BPF_PROG_TEST_RUN) on chosen values.
  lfp_verdict evaluate(lfp_kl kl, const lfp_values& v) const;
  // Its mean run time in ns over `runs` evaluations, as the kernel timed them (lfp-kernel-eval-bench).
  double time_evaluate(lfp_kl kl, const lfp_values& v, uint32_t runs) const;

  // Decisions the hooks reported. events_fd() is readable when some wait; drain delivers them.
  int events_fd() const;
  void drain_events(const std::function<void(const lfp_event&)>& cb);
  uint64_t events_lost() const { return counter(LFP_CNT_EVENTS_LOST); }
  void set_log_allows(bool on);  // report permits as events too (takes effect at once)
  bool log_allows() const { return opts_.log_allows; }
  // Packets the packet layers drop, their first LFP_DROP_SNAP bytes, while keep_dropped is on:
  // delivered to the sink by drain_events (lfp capture).
  void set_keep_dropped(bool on);
  bool keep_dropped() const;
  void set_dropped_sink(std::function<void(const lfp_dropped&)> sink) { dropped_sink_ = std::move(sink); }
  // The user-space path (userpath.hpp): whether the hooks hand decisions to lfpd's queue, and the
  // creator of the socket a queued packet's mark names.
  void set_userspace(bool on);
  // The data layers (inspect.hpp) take datagrams after the packet layers: a DATAGRAM_DATA filter the
  // kernel defers passes on to them instead of following --fail.
  void set_datagrams_inspected(bool on);
  // The packet queue (packet_queue.hpp) decides these hooks (LFP_QUEUED_HOOK bits): their programs
  // let every packet through to it.
  void set_queued_hooks(uint32_t mask);
  uint32_t queued_hooks() const;
  std::optional<lfp_pending> pending(uint32_t slot) const;
  // A redirected connection's record, by its local address and port (redirect.hpp).
  std::optional<lfp_redirect_record> redirect_record(const lfp_redirect_key& k) const;
  uint64_t deferred() const { return counter(LFP_CNT_DEFERRED); }
  // Outbound TCP flows whose group of lfp_flows slots was full: their record went in the socket's storage.
  uint64_t flows_in_storage() const { return counter(LFP_CNT_FLOWS_IN_STORAGE); }

  // The packet layers tell inbound from forwarded by the host's own addresses, and the MAC frame
  // layers hook each interface: this reads the addresses (getifaddrs) into the kernel's table and
  // attaches to interfaces not yet seen. Call it again when either changes (lfpd's one rtnetlink
  // watcher, daemon/interfaces.hpp, does).
  void refresh_interfaces();
  // An interface's INTERFACE_TYPE and MAC address, as the last refresh_interfaces() read them.
  std::optional<lfp_iface> iface(uint32_t ifindex) const;

  // The hooks linked now, each as "PROGRAM" (cgroup), "PROGRAM" (netfilter) or "PROGRAM@IFNAME" (tcx),
  // for lfp status.
  std::vector<std::string> attached_hooks() const;
  const KernelOptions& options() const { return opts_; }
  // The kernel memory the two policy banks take now.
  size_t bank_bytes() const;

  // Detaches every hook pinned under pin_dir and removes the pins (lfpd --detach).
  static void remove_pins(const std::string& pin_dir);

 private:
  uint64_t counter(lfp_counter c) const;
  void resize_bank(unsigned bank, size_t entries);
  bool install_in_place(const FilterEngine& engine, const FilterChanges& changes);
  void flip(unsigned bank);
  void attach_and_pin();
  void pin_link(int link_fd, const std::string& path);
  void link_nf_hook(size_t i, bool on);
  std::vector<bpf_program*> on_demand_programs() const;
  bool on_demand(const bpf_program* p) const;
  void link_cgroup(bpf_program* prog, bool on);
  void reauthorize();
  void drop_stale_links();
  void unlink_hook(int& fd, const std::string& pin);
  // attach: links the hooks `p` needs; else unlinks those it leaves idle.
  void sync_hooks(const KernelPolicy& p, bool attach);
  void release();  // frees what the constructor acquired (also when it fails half way)

  KernelOptions opts_;
  lfp_bpf* skel_ = nullptr;
  ring_buffer* rb_ = nullptr;
  std::function<void(const lfp_event&)> sink_;
  std::function<void(const lfp_dropped&)> dropped_sink_;
  KernelPolicy policy_;
  InstallReport last_install_;
  bool banks_alike_ = false;  // both banks hold policy_ (an update in place may follow)
  uint64_t gen_ = 0;
  uint32_t set_base_ = 1;
  struct Bank {
    int fd = -1;            // the array map lfp_banks holds at this index
    void* mem = nullptr;    // its mmap
    size_t capacity = 0;    // entries
  };
  std::array<Bank, 2> banks_;
  void* cfg_ = nullptr;    // mmap of lfp_cfg
  int cgroup_fd_ = -1;
  std::vector<bpf_link*> links_;
  std::vector<std::string> link_names_;  // their programs', in order
  std::map<bpf_program*, bpf_link*> on_demand_;  // linked only while their layers hold filters (sync_hooks)
  bpf_link* reauth_ = nullptr;                   // the re-authorization iterator
  // The packet layers' links, each there only while its layers hold filters (sync_hooks).
  std::array<int, 8> nf_fd_ = {-1, -1, -1, -1, -1, -1, -1, -1};  // kernel.cpp's kNfHooks, in order
  struct TcxLinks {
    std::string name;
    int fd[2] = {-1, -1};  // ingress, egress
  };
  std::map<unsigned, TcxLinks> tcx_;  // by ifindex: the MAC frame layers
  std::array<bool, 2> want_mac_ = {false, false};
  std::map<uint32_t, lfp_iface> ifaces_;  // what lfp_ifaces holds
};

}  // namespace lfp::datapath
