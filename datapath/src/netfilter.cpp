// SPDX-License-Identifier: MIT
// LFP's own nftables table, written by the one netfilter owner (lfp/datapath/netfilter.hpp).
#include "lfp/datapath/netfilter.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

namespace lfp::datapath::nf {

namespace {

// One netlink batch being written, and what each message is, to name the one the kernel refuses.
class Batch {
 public:
  explicit Batch(uint32_t& seq) : seq_(seq) { nftnl_batch_begin(next(), seq_++); }

  // The header of the next message; fill it, then next() takes the following one.
  nlmsghdr* message(uint16_t type, uint16_t flags, std::string what) {
    whats_.emplace_back(seq_, std::move(what));
    return nftnl_nlmsg_build_hdr(next(), type, NFPROTO_INET, flags | NLM_F_ACK, seq_++);
  }
  // Sends the batch and reads every answer; throws on the first refusal.
  void send(mnl_socket* nl, const std::string& table) {
    nftnl_batch_end(next(), seq_++);
    close_last();
    if (mnl_socket_sendto(nl, buf_.data(), used_) < 0)
      throw std::runtime_error("nftables: cannot send table inet " + table + ": " + std::strerror(errno));
    // The kernel answers the whole batch inside sendmsg: what is not there now never comes.
    alignas(nlmsghdr) char reply[MNL_SOCKET_BUFFER_SIZE];
    std::string refused;
    size_t answers = 0;  // one a message (NLM_F_ACK): fewer means some were lost, never a success
    for (;;) {
      const ssize_t n = ::recv(mnl_socket_get_fd(nl), reply, sizeof reply, MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        throw std::runtime_error("nftables: cannot read the kernel's answer for table inet " + table + ": " + std::strerror(errno));
      if (n <= 0) break;
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<const nlmsghdr*>(reply); mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        ++answers;
        const int error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h))->error;
        if (error == 0 || !refused.empty()) continue;
        refused = "a message: " + std::string(std::strerror(-error));
        for (const auto& [seq, what] : whats_)
          if (seq == h->nlmsg_seq) refused = what + ": " + std::strerror(-error);
      }
    }
    if (!refused.empty()) throw std::runtime_error("nftables: the kernel refused table inet " + table + "'s " + refused);
    if (answers != whats_.size())
      throw std::runtime_error("nftables: " + std::to_string(answers) + " answers for the " + std::to_string(whats_.size()) +
                               " messages of table inet " + table);
  }

 private:
  char* next() {
    close_last();
    open_ = true;
    if (buf_.size() < used_ + kMaxMessage) buf_.resize(used_ + 4 * kMaxMessage);
    return buf_.data() + used_;
  }
  void close_last() {  // the message written last counts
    if (open_) used_ += NLMSG_ALIGN(reinterpret_cast<const nlmsghdr*>(buf_.data() + used_)->nlmsg_len);
    open_ = false;
  }

  static constexpr size_t kMaxMessage = 4096;  // (a rule here is a few hundred bytes)
  uint32_t& seq_;
  std::vector<char> buf_;
  size_t used_ = 0;
  bool open_ = false;
  std::vector<std::pair<uint32_t, std::string>> whats_;
};

// A rule's expressions, added in order (each match leaves its value in register 1, then compares).
class RuleBuilder {
 public:
  explicit RuleBuilder(nftnl_rule* r) : r_(r) {}

  void meta(uint32_t key) {
    nftnl_expr* e = add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  }
  void ct(uint32_t key) {
    nftnl_expr* e = add("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
  }
  void fib_daddr_type() {
    nftnl_expr* e = add("fib");
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
  }
  void and_mask(uint32_t mask) {  // register 1 &= mask (a 32-bit key)
    const uint32_t zero = 0;
    nftnl_expr* e = add("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof mask);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
  }
  void cmp(uint32_t op, const void* data, uint32_t len) {
    nftnl_expr* e = add("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  }
  template <class T>
  void equals(T v) {
    cmp(NFT_CMP_EQ, &v, sizeof v);
  }
  void masked(const Masked& m) {
    if (m.mask != 0xffffffff) and_mask(m.mask);
    equals(m.value);
  }
  void queue(const QueueTo& q) {  // xtables' NFQUEUE target, revision 3 (through nft_compat)
    auto* info = static_cast<xt_NFQ_info_v3*>(std::calloc(1, XT_ALIGN(sizeof(xt_NFQ_info_v3))));
    if (!info) throw std::bad_alloc();
    info->queuenum = q.first;
    info->queues_total = q.count ? q.count : 1;
    info->flags = static_cast<uint16_t>((q.bypass ? NFQ_FLAG_BYPASS : 0) | (q.count > 1 ? NFQ_FLAG_CPU_FANOUT : 0));
    nftnl_expr* e = add("target");
    nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
    nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
    nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, XT_ALIGN(sizeof(xt_NFQ_info_v3)));  // (the expression frees it)
  }
  void verdict(int code) {
    nftnl_expr* e = add("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(code));
  }

 private:
  nftnl_expr* add(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    if (!e) throw std::bad_alloc();
    nftnl_rule_add_expr(r_, e);  // (the rule frees it)
    return e;
  }
  nftnl_rule* r_;
};

void build_rule(RuleBuilder& b, const Rule& rule) {
  if (rule.nfproto) {
    b.meta(NFT_META_NFPROTO);
    b.equals(*rule.nfproto);
  }
  if (rule.iifname) {
    char name[IFNAMSIZ] = {};
    std::strncpy(name, rule.iifname->c_str(), IFNAMSIZ - 1);
    b.meta(NFT_META_IIFNAME);
    b.cmp(NFT_CMP_EQ, name, sizeof name);
  }
  if (rule.l4proto) {
    b.meta(NFT_META_L4PROTO);
    b.equals(*rule.l4proto);
  }
  if (rule.fib_daddr_type) {
    b.fib_daddr_type();
    b.equals(*rule.fib_daddr_type);
  }
  if (rule.mark) {
    b.meta(NFT_META_MARK);
    b.masked(*rule.mark);
  }
  if (rule.ct_mark) {
    b.ct(NFT_CT_MARK);
    b.masked(*rule.ct_mark);
  }
  if (rule.ct_new) {
    const uint32_t zero = 0;
    b.ct(NFT_CT_STATE);
    b.and_mask(NF_CT_STATE_BIT(IP_CT_NEW));
    b.cmp(NFT_CMP_NEQ, &zero, sizeof zero);
  }
  if (rule.queue) b.queue(*rule.queue);
  else b.verdict(NFT_RETURN);
}

template <class T, class Free>
std::unique_ptr<T, Free> owned(T* p, Free free) {
  if (!p) throw std::bad_alloc();
  return {p, free};
}

void put_table(Batch& batch, const std::string& table, uint16_t type) {
  const auto t = owned(nftnl_table_alloc(), &nftnl_table_free);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
  const char* verb = type == NFT_MSG_NEWTABLE ? "add" : "delete";
  nftnl_table_nlmsg_build_payload(batch.message(type, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0, std::string(verb) + " of the table"), t.get());
}

void put_chain(Batch& batch, const std::string& table, const Chain& c) {
  const auto ch = owned(nftnl_chain_alloc(), &nftnl_chain_free);
  nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, c.name.c_str());
  nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_HOOKNUM, static_cast<uint32_t>(c.hook));
  nftnl_chain_set_s32(ch.get(), NFTNL_CHAIN_PRIO, c.priority);
  nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  nftnl_chain_nlmsg_build_payload(batch.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "chain " + c.name), ch.get());
  // Its rules go (a rule with no handle names them all), in the same batch as the new ones.
  const auto flush = owned(nftnl_rule_alloc(), &nftnl_rule_free);
  nftnl_rule_set_u32(flush.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_set_str(flush.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(flush.get(), NFTNL_RULE_CHAIN, c.name.c_str());
  nftnl_rule_nlmsg_build_payload(batch.message(NFT_MSG_DELRULE, 0, "flush of chain " + c.name), flush.get());
}

void put_rule(Batch& batch, const std::string& table, const std::string& chain, size_t index, const Rule& rule) {
  const auto r = owned(nftnl_rule_alloc(), &nftnl_rule_free);
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
  RuleBuilder b(r.get());
  build_rule(b, rule);
  nftnl_rule_nlmsg_build_payload(
      batch.message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, "rule " + std::to_string(index + 1) + " of chain " + chain),
      r.get());
}

}  // namespace

std::shared_ptr<NetfilterTable> NetfilterTable::shared() {
  static std::mutex registry_mutex;
  static std::map<std::pair<dev_t, ino_t>, std::weak_ptr<NetfilterTable>> registry;  // by network namespace
  struct stat ns {};
  if (::stat("/proc/thread-self/ns/net", &ns) != 0)
    throw std::runtime_error(std::string("nftables: cannot read this thread's network namespace: ") + std::strerror(errno));
  std::lock_guard lock(registry_mutex);
  auto& slot = registry[{ns.st_dev, ns.st_ino}];
  if (auto owner = slot.lock()) return owner;
  auto owner = std::make_shared<NetfilterTable>();
  slot = owner;
  return owner;
}

NetfilterTable::NetfilterTable(std::string name) : name_(std::move(name)) {
  nl_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl_ || mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int e = errno;
    if (nl_) mnl_socket_close(nl_);
    throw std::runtime_error(std::string("nftables: cannot open netlink: ") + std::strerror(e));
  }
  int on = 1;
  setsockopt(mnl_socket_get_fd(nl_), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);  // (answers without our messages)
  try {
    load(true);  // (a table a crashed lfpd left goes)
  } catch (...) {
    mnl_socket_close(nl_);
    throw;
  }
}

NetfilterTable::~NetfilterTable() {
  remove();
  mnl_socket_close(nl_);
}

void NetfilterTable::set(const std::string& user, std::vector<Chain> chains) {
  std::lock_guard lock(mutex_);
  const auto users_before = users_;
  const auto made_before = made_;
  if (chains.empty()) users_.erase(user);
  else users_[user] = std::move(chains);
  try {
    load(false);
  } catch (...) {
    users_ = users_before;
    made_ = made_before;
    throw;
  }
}

void NetfilterTable::withdraw(const std::string& user) noexcept {
  try {
    set(user, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfpd: %s\n", e.what());
  }
}

void NetfilterTable::load(bool replace) {
  for (const auto& [user, chains] : users_)
    for (const Chain& c : chains) made_[c.name] = Chain{c.name, c.hook, c.priority, {}};
  Batch batch(seq_);
  if (replace) {  // (adding first: deleting a table that is not there would fail the batch)
    put_table(batch, name_, NFT_MSG_NEWTABLE);
    put_table(batch, name_, NFT_MSG_DELTABLE);
  }
  put_table(batch, name_, NFT_MSG_NEWTABLE);
  for (const auto& [name, chain] : made_) put_chain(batch, name_, chain);
  for (const auto& [user, chains] : users_)
    for (const Chain& c : chains)
      for (size_t i = 0; i < c.rules.size(); ++i) put_rule(batch, name_, c.name, i, c.rules[i]);
  batch.send(nl_, name_);
}

void NetfilterTable::remove() noexcept {
  try {
    Batch batch(seq_);
    put_table(batch, name_, NFT_MSG_NEWTABLE);
    put_table(batch, name_, NFT_MSG_DELTABLE);
    batch.send(nl_, name_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lfpd: %s\n", e.what());
  }
}

}  // namespace lfp::datapath::nf
