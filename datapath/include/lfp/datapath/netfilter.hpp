// SPDX-License-Identifier: MIT
#pragma once
// LFP's netfilter rules: one nftables table, `inet lfp`, owned by one NetfilterTable per network
// namespace. Each user of netfilter in the data path (the ALE user-space path, the data layers, the
// packet queue) hands the owner its base chains; every change loads the whole table in one netlink
// batch (libnftnl objects, NFNL_MSG_BATCH_BEGIN .. END), so a packet meets the old rules or the new,
// never a mix, and a batch the kernel refuses changes nothing and throws with the kernel's reason.
//
// The table outlives nothing of lfpd's by accident: the first owner in a namespace replaces a table a
// crashed lfpd left, and the last one to go deletes it. A base chain, once made, stays (emptied) until
// the table goes: unregistering a netfilter hook may drop the packets waiting in the namespace's
// queues (nf_queue_nf_hook_drop), such as a connect waiting for a prompt.
//
// The NFQUEUE verdict is xtables' NFQUEUE target through nft_compat (what iptables-nft writes): a
// kernel without nft's own `queue` expression (CONFIG_NFT_QUEUE) has it too.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct mnl_socket;

namespace lfp::datapath::nf {

// `value == (key & mask)`.
struct Masked {
  uint32_t value = 0, mask = 0xffffffff;
};

// Queue to `first` (count 1), or spread over first .. first+count-1 by CPU (queue-cpu-fanout).
// bypass: the packet passes while no reader has the queue bound (--fail open).
struct QueueTo {
  uint16_t first = 0, count = 1;
  bool bypass = false;
};

// One rule: every match given must hold; then the packet is queued, or (`queue` unset) leaves the
// chain (return: the next chain or table decides).
struct Rule {
  std::optional<uint8_t> nfproto;          // NFPROTO_IPV4 / NFPROTO_IPV6
  std::optional<Masked> mark;              // meta mark
  std::optional<Masked> ct_mark;           // ct mark
  bool ct_new = false;                     // ct state new
  std::optional<uint8_t> l4proto;          // meta l4proto (after IPv6 extension headers)
  std::optional<std::string> iifname;      // meta iifname equals
  std::optional<uint32_t> fib_daddr_type;  // fib daddr type: RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST
  std::optional<QueueTo> queue;
};

// A base chain of type filter (policy accept) at a hook (NF_INET_*) and priority (raw -300, mangle
// -150, filter 0, security 50: those of the xtables chains they replace). Names are unique in the table.
struct Chain {
  std::string name;
  int hook = 0;
  int priority = 0;
  std::vector<Rule> rules;
};

class NetfilterTable {
 public:
  // The table of the calling thread's network namespace, shared by its users: made by the first (a
  // table left by a crashed lfpd is replaced), deleted when the last lets go. Throws std::runtime_error.
  static std::shared_ptr<NetfilterTable> shared();

  // Owns table `inet <name>` in the calling thread's network namespace (its netlink socket stays
  // there) and replaces any table of that name. Throws std::runtime_error.
  explicit NetfilterTable(std::string name = "lfp");
  ~NetfilterTable();  // the table goes (a failure is reported on stderr)
  NetfilterTable(const NetfilterTable&) = delete;
  NetfilterTable& operator=(const NetfilterTable&) = delete;

  // Replaces `user`'s chains (none: its rules go) and loads the whole table in one batch. On a
  // refusal the kernel's table and this owner stay as they were; throws std::runtime_error with the
  // kernel's reason and the object it refused.
  void set(const std::string& user, std::vector<Chain> chains);
  // set(user, {}) for destructors: a failure is reported on stderr, not thrown.
  void withdraw(const std::string& user) noexcept;
  const std::string& name() const { return name_; }

 private:
  // Sends one batch: the table (replaced first when `replace`), every chain made so far, and the
  // rules of every user.
  void load(bool replace);
  void remove() noexcept;

  std::string name_;
  mnl_socket* nl_ = nullptr;
  uint32_t seq_ = 0;
  std::mutex mutex_;
  std::map<std::string, std::vector<Chain>> users_;
  std::map<std::string, Chain> made_;  // every base chain in the kernel's table (rules aside)
};

}  // namespace lfp::datapath::nf
