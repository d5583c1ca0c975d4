// SPDX-License-Identifier: MIT
#include "lfp/datapath/kernel.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "lfp_bpf.skel.h"

namespace lfp::datapath {

namespace {

// User-set ids are split between the banks, so the idle bank's sets can be replaced while the
// active bank's stay.
constexpr uint32_t kSetBase[2] = {1, 0x80000000u};

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

std::string link_pin(const std::string& dir, const bpf_program* p) { return dir + "/link_" + bpf_program__name(p); }

// BPF netfilter programs (kernel 6.4+) and tcx (6.6+), which libbpf 1.1 and the 6.1 uapi headers
// predate: their numbers are lfp_consts.h's LFP_BPF_*.
bool is_netfilter(const bpf_program* p) { return std::strcmp(bpf_program__section_name(p), "lfp_netfilter") == 0; }
bool is_tc(const bpf_program* p) { return std::strcmp(bpf_program__section_name(p), "tc") == 0; }

int link_tcx(int prog_fd, int ifindex, uint32_t attach_type) {
  uint32_t a[8] = {};  // BPF_LINK_CREATE: prog_fd, target_ifindex, attach_type, flags, tcx{relative, revision}
  a[0] = static_cast<uint32_t>(prog_fd);
  a[1] = static_cast<uint32_t>(ifindex);
  a[2] = attach_type;
  return static_cast<int>(::syscall(__NR_bpf, BPF_LINK_CREATE, a, sizeof a));
}

// Where each packet-layer program hooks (lfp_packet.bpf.c): family, hook, priority, flags. PRE_ROUTING
// runs before the kernel's reassembly (-400). IPv4 reaches LOCAL_IN reassembled by the stack itself
// (ip_local_deliver); IPv6 reassembles after LOCAL_IN, so its program asks for netfilter's
// reassembly, as FORWARD's do (the flag costs every packet of the namespace a defrag hook: only
// where it is needed).
struct NfHook {
  const char* prog;
  uint32_t pf, hook;
  int32_t priority;
  uint32_t flags;
};
constexpr uint32_t kNfInet4 = LFP_NFPROTO_IPV4, kNfInet6 = LFP_NFPROTO_IPV6, kDefrag = LFP_BPF_F_NETFILTER_IP_DEFRAG;
constexpr NfHook kNfHooks[] = {
    {"lfp_nf_pre4", kNfInet4, LFP_HOOK_PRE, -450, 0}, {"lfp_nf_pre6", kNfInet6, LFP_HOOK_PRE, -450, 0},
    {"lfp_nf_in4", kNfInet4, LFP_HOOK_IN, -100, 0}, {"lfp_nf_in6", kNfInet6, LFP_HOOK_IN, -100, kDefrag},
    {"lfp_nf_fwd4", kNfInet4, LFP_HOOK_FWD, -100, kDefrag}, {"lfp_nf_fwd6", kNfInet6, LFP_HOOK_FWD, -100, kDefrag},
    {"lfp_nf_out4", kNfInet4, LFP_HOOK_OUT, -100, 0}, {"lfp_nf_out6", kNfInet6, LFP_HOOK_OUT, -100, 0},
};

// Whether a netfilter program's layers (lfp_packet.bpf.c's walk()) hold a filter in `p`: it is linked
// only then, so that a hook with no filter costs nothing at all.
bool nf_hook_wanted(const NfHook& h, const KernelPolicy& p) {
  for (lfp_kl kl : hook_layers(static_cast<int>(h.hook)))
    if (p.layer_filters[kl + (h.pf == kNfInet6)]) return true;
  return false;
}

// BPF_LINK_CREATE's netfilter form, as in the kernel's union bpf_attr.
struct NfLinkAttr {
  uint32_t prog_fd, target_fd, attach_type, flags;
  uint32_t pf, hooknum;
  int32_t priority;
  uint32_t nf_flags;
};

int link_netfilter(int prog_fd, const NfHook& h, int32_t priority) {
  NfLinkAttr a{};
  a.prog_fd = static_cast<uint32_t>(prog_fd);
  a.attach_type = LFP_BPF_NETFILTER;
  a.pf = h.pf;
  a.hooknum = h.hook;
  a.priority = priority;
  a.nf_flags = h.flags;
  return static_cast<int>(::syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof a));
}

}  // namespace

AppKey resolve_app(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return AppKey{};
  // The kernel's dev_t packs major and minor as MAJOR << 20 | MINOR (include/linux/kdev_t.h).
  return AppKey{uint64_t{major(st.st_dev)} << 20 | minor(st.st_dev), st.st_ino};
}

// Whether a previous daemon left this pin (a link it had).
bool pinned(const std::string& pin) {
  struct stat st;
  return ::stat(pin.c_str(), &st) == 0;
}

bool pinned_with_prefix(const std::string& dir, const std::string& prefix) {
  if (dir.empty()) return false;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool found = false;
  while (dirent* e = ::readdir(d))
    if (std::string(e->d_name).rfind(prefix, 0) == 0) found = true;
  ::closedir(d);
  return found;
}

KernelPath::KernelPath(KernelOptions opts) : opts_(std::move(opts)) {
  if (opts_.bank_entries > kMaxBankEntries)
    throw std::runtime_error("kernel entries a bank: at most " + std::to_string(kMaxBankEntries) + ", not " +
                             std::to_string(opts_.bank_entries));
  skel_ = lfp_bpf__open();
  if (!skel_) fail("cannot open the BPF object", errno);
  if (!opts_.pin_dir.empty()) {
    bpf_map* m;
    bpf_object__for_each_map(m, skel_->obj) {
      const std::string path = opts_.pin_dir + "/" + bpf_map__name(m);
      if (int e = bpf_map__set_pin_path(m, path.c_str())) fail("pin path " + path, e);
    }
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (is_tc(prog)) bpf_program__set_autoload(prog, opts_.packet_layers);
    if (!is_netfilter(prog)) continue;
    bpf_program__set_type(prog, static_cast<bpf_prog_type>(LFP_BPF_PROG_TYPE_NETFILTER));
    bpf_program__set_expected_attach_type(prog, static_cast<bpf_attach_type>(LFP_BPF_NETFILTER));
    bpf_program__set_autoload(prog, opts_.packet_layers);
  }
  if (int e = lfp_bpf__load(skel_)) {
    lfp_bpf__destroy(skel_);
    fail("cannot load the BPF programs (pinned maps from another version? lfpd --detach removes them)", e);
  }
  cfg_ = ::mmap(nullptr, sizeof(lfp_config), PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(skel_->maps.lfp_cfg), 0);
  if (cfg_ == MAP_FAILED) {
    int e = errno;
    release();
    fail("cannot map lfp_cfg", e);
  }
  // A previous daemon's banks (pinned): the one in force keeps enforcing until install() flips.
  for (unsigned b = 0; b < 2; ++b) {
    uint32_t id = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.lfp_banks), &b, &id) != 0) continue;
    Bank& bank = banks_[b];
    bank.fd = bpf_map_get_fd_by_id(id);
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bank.fd >= 0 && bpf_obj_get_info_by_fd(bank.fd, &info, &len) == 0) {
      bank.capacity = info.max_entries;
      bank.mem = ::mmap(nullptr, bank.capacity * sizeof(lfp_entry), PROT_READ | PROT_WRITE, MAP_SHARED, bank.fd, 0);
    }
    if (bank.fd < 0 || bank.mem == MAP_FAILED) {
      int e = errno;
      release();
      fail("cannot map the pinned policy bank", e);
    }
  }
  auto* cfg = static_cast<lfp_config*>(cfg_);
  gen_ = cfg->gen_bank >> 1;  // a pinned policy keeps counting
  cfg->fail_closed = opts_.fail_closed;
  cfg->log_allows = opts_.log_allows;
  cfg->no_packet_cache = opts_.no_packet_cache;
  cfg->keep_dropped = 0;  // (a capture turns it on)
  cfg->queued_hooks = 0;  // (the packet queue, when there is one, takes its hooks again)

  rb_ = ring_buffer__new(
      bpf_map__fd(skel_->maps.lfp_events),
      [](void* self, void* data, size_t size) -> int {
        auto* k = static_cast<KernelPath*>(self);
        if (size >= sizeof(lfp_event) && k->sink_) k->sink_(*static_cast<const lfp_event*>(data));
        return 0;
      },
      this, nullptr);
  if (!rb_ || ring_buffer__add(
                  rb_, bpf_map__fd(skel_->maps.lfp_dropped),
                  [](void* self, void* data, size_t size) -> int {
                    auto* k = static_cast<KernelPath*>(self);
                    if (size >= sizeof(lfp_dropped) && k->dropped_sink_) k->dropped_sink_(*static_cast<const lfp_dropped*>(data));
                    return 0;
                  },
                  this) != 0) {
    int e = errno;
    release();
    fail("cannot open the event rings", e);
  }
  if (!opts_.cgroup.empty() || opts_.packet_layers) {
    try {
      attach_and_pin();
    } catch (...) {
      release();
      throw;
    }
  }
}

void KernelPath::attach_and_pin() {
  if (!opts_.cgroup.empty()) {
    cgroup_fd_ = ::open(opts_.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd_ < 0) fail("cgroup " + opts_.cgroup, errno);
    bpf_program* p;
    bpf_object__for_each_program(p, skel_->obj) {
      if (p == skel_->progs.lfp_test_eval || p == skel_->progs.lfp_reauth || is_netfilter(p) || is_tc(p) ||
          on_demand(p))
        continue;
      bpf_link* link = bpf_program__attach_cgroup(p, cgroup_fd_);
      if (!link) fail(std::string("cannot attach ") + bpf_program__name(p) + " to " + opts_.cgroup, errno);
      links_.push_back(link);
      link_names_.emplace_back(bpf_program__name(p));
      pin_link(bpf_link__fd(link), link_pin(opts_.pin_dir, p));
    }
    // (replacing a previous daemon's; install() unlinks those whose layers are empty)
    for (bpf_program* p : on_demand_programs())
      if (pinned(link_pin(opts_.pin_dir, p))) link_cgroup(p, true);
    drop_stale_links();
    reauth_ = bpf_program__attach_iter(skel_->progs.lfp_reauth, nullptr);
    if (!reauth_) fail("cannot create the re-authorization iterator", errno);
  }
  if (opts_.packet_layers) {
    // The hooks a previous daemon pinned, replaced (they enforce its last policy until then); install()
    // links those the policy needs and unlinks those it leaves empty. Nothing else is linked before.
    for (int dir = 0; dir < 2; ++dir)
      want_mac_[dir] = pinned_with_prefix(opts_.pin_dir, std::string("link_") +
                                          (dir ? "lfp_tc_egress" : "lfp_tc_ingress") + "_");
    refresh_interfaces();  // before the hooks run: they need the host's addresses
    for (size_t i = 0; i < std::size(kNfHooks); ++i)
      if (bpf_program* p = bpf_object__find_program_by_name(skel_->obj, kNfHooks[i].prog);
          p && pinned(link_pin(opts_.pin_dir, p)))
        link_nf_hook(i, true);
  }
}

// A previous version's pinned links to programs this one no longer has (lfp_sock_create, say) would
// stay attached, running its program: they are detached.
void KernelPath::drop_stale_links() {
  if (opts_.pin_dir.empty()) return;
  DIR* d = ::opendir(opts_.pin_dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.rfind("link_", 0) != 0) continue;
    bool ours = false;  // link_<program> or link_<program>_<interface>
    bpf_program* p;
    bpf_object__for_each_program(p, skel_->obj) {
      const std::string prog = bpf_program__name(p);
      ours = ours || n.compare(5, std::string::npos, prog) == 0 || n.rfind("link_" + prog + "_", 0) == 0;
    }
    if (!ours) stale.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : stale) {
    const std::string path = opts_.pin_dir + "/" + n;
    if (int fd = bpf_obj_get(path.c_str()); fd >= 0) {
      bpf_link_detach(fd);
      ::close(fd);
    }
    ::unlink(path.c_str());
  }
}

// With pins, pins the link and replaces a previous daemon's (the new hook is attached before the old
// one goes).
void KernelPath::pin_link(int link_fd, const std::string& path) {
  if (opts_.pin_dir.empty()) return;
  int old = bpf_obj_get(path.c_str());
  if (old >= 0) ::unlink(path.c_str());
  if (bpf_obj_pin(link_fd, path.c_str()) != 0) fail("pin " + path, errno);
  if (old >= 0) {
    bpf_link_detach(old);
    ::close(old);
  }
}

void KernelPath::refresh_interfaces() {
  // The MAC frame layers on every interface but loopback (ifindex 1 in every namespace), new ones
  // included, while they hold filters.
  std::map<unsigned, std::string> names;
  if (struct if_nameindex* ifs = ::if_nameindex()) {
    for (struct if_nameindex* i = ifs; i->if_index; ++i)
      if (i->if_index != 1) names[i->if_index] = i->if_name;
    ::if_freenameindex(ifs);
  }
  for (auto it = tcx_.begin(); it != tcx_.end();)  // gone: their links went with them
    if (!names.count(it->first)) {
      for (int fd : it->second.fd)
        if (fd >= 0) ::close(fd);
      if (!opts_.pin_dir.empty())
        for (bpf_program* prog : {skel_->progs.lfp_tc_ingress, skel_->progs.lfp_tc_egress})
          ::unlink((link_pin(opts_.pin_dir, prog) + "_" + it->second.name).c_str());
      it = tcx_.erase(it);
    } else {
      ++it;
    }
  for (const auto& [index, name] : names) {
    TcxLinks& t = tcx_[index];
    t.name = name;
    for (int dir = 0; dir < 2; ++dir) {
      bpf_program* prog = dir == 0 ? skel_->progs.lfp_tc_ingress : skel_->progs.lfp_tc_egress;
      const std::string pin = link_pin(opts_.pin_dir, prog) + "_" + name;
      if (want_mac_[dir] && t.fd[dir] < 0) {
        const int fd = link_tcx(bpf_program__fd(prog), static_cast<int>(index), dir == 0 ? LFP_BPF_TCX_INGRESS : LFP_BPF_TCX_EGRESS);
        if (fd < 0) fail(std::string("cannot attach ") + bpf_program__name(prog) + " to " + name, errno);
        t.fd[dir] = fd;
        pin_link(fd, pin);
      } else if (!want_mac_[dir] && t.fd[dir] >= 0) {
        unlink_hook(t.fd[dir], pin);
      }
    }
  }
  std::map<std::vector<uint8_t>, uint8_t> want;  // lfp_local_key bytes -> type
  std::map<uint32_t, lfp_iface> ifaces;          // INTERFACE_TYPE, INTERFACE_MAC_ADDRESS by ifindex
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) fail("getifaddrs", errno);
  auto add = [&](const sockaddr* sa, uint8_t type) {
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) return;
    lfp_local_key k{};
    if (sa->sa_family == AF_INET) {
      k.family = 4;
      std::memcpy(k.addr, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    } else {
      k.family = 6;
      std::memcpy(k.addr, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    }
    const auto* b = reinterpret_cast<const uint8_t*>(&k);
    want.emplace(std::vector<uint8_t>(b, b + sizeof k), type);
  };
  for (ifaddrs* a = all; a; a = a->ifa_next) {
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_PACKET) {  // one a link: its type and address
      const auto* ll = reinterpret_cast<const sockaddr_ll*>(a->ifa_addr);
      lfp_iface info{};
      info.iftype = iftype_of_arphrd(ll->sll_hatype);
      if (ll->sll_halen == 6) std::memcpy(info.mac, ll->sll_addr, 6);
      ifaces[static_cast<uint32_t>(ll->sll_ifindex)] = info;
    }
    add(a->ifa_addr, LFP_NLAT_UNICAST);
    if ((a->ifa_flags & IFF_BROADCAST) && a->ifa_addr && a->ifa_addr->sa_family == AF_INET)
      add(a->ifa_broadaddr, LFP_NLAT_BROADCAST);
  }
  ::freeifaddrs(all);
  const int fd = bpf_map__fd(skel_->maps.lfp_local_addrs);
  std::vector<lfp_local_key> stale;
  lfp_local_key k{}, nk{};
  for (int r = bpf_map_get_next_key(fd, nullptr, &nk); r == 0; r = bpf_map_get_next_key(fd, &k, &nk)) {
    const auto* b = reinterpret_cast<const uint8_t*>(&nk);
    if (!want.count(std::vector<uint8_t>(b, b + sizeof nk))) stale.push_back(nk);
    k = nk;
  }
  for (auto& key : stale) bpf_map_delete_elem(fd, &key);
  for (const auto& [bytes, type] : want)
    if (int e = bpf_map_update_elem(fd, bytes.data(), &type, BPF_ANY)) fail("local address map", e);
  const int ifd = bpf_map__fd(skel_->maps.lfp_ifaces);
  for (const auto& [index, info] : ifaces_)
    if (!ifaces.count(index)) bpf_map_delete_elem(ifd, &index);
  for (const auto& [index, info] : ifaces)
    if (int e = bpf_map_update_elem(ifd, &index, &info, BPF_ANY)) fail("interface map", e);
  ifaces_ = std::move(ifaces);
}

std::optional<lfp_iface> KernelPath::iface(uint32_t ifindex) const {
  auto it = ifaces_.find(ifindex);
  if (it == ifaces_.end()) return std::nullopt;
  return it->second;
}

KernelPath::~KernelPath() { release(); }

void KernelPath::set_userspace(bool on) { static_cast<lfp_config*>(cfg_)->userspace = on; }
void KernelPath::set_datagrams_inspected(bool on) { static_cast<lfp_config*>(cfg_)->datagrams_inspected = on; }
void KernelPath::set_queued_hooks(uint32_t mask) { static_cast<lfp_config*>(cfg_)->queued_hooks = mask; }
uint32_t KernelPath::queued_hooks() const { return static_cast<const lfp_config*>(cfg_)->queued_hooks; }

std::optional<lfp_pending> KernelPath::pending(uint32_t slot) const {
  lfp_pending p{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.lfp_pending), &slot, &p)) return std::nullopt;
  return p;
}

std::optional<lfp_redirect_record> KernelPath::redirect_record(const lfp_redirect_key& k) const {
  lfp_redirect_record r{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.lfp_redirect_records), &k, &r)) return std::nullopt;
  return r;
}

void KernelPath::set_keep_dropped(bool on) { static_cast<lfp_config*>(cfg_)->keep_dropped = on; }
bool KernelPath::keep_dropped() const { return static_cast<const lfp_config*>(cfg_)->keep_dropped != 0; }

void KernelPath::set_log_allows(bool on) {
  opts_.log_allows = on;
  static_cast<lfp_config*>(cfg_)->log_allows = on;
}

void KernelPath::link_nf_hook(size_t i, bool on) {
  const NfHook& h = kNfHooks[i];
  bpf_program* p = bpf_object__find_program_by_name(skel_->obj, h.prog);
  if (!p) fail(std::string("no program ") + h.prog, ENOENT);
  if (!on) {
    if (nf_fd_[i] >= 0) unlink_hook(nf_fd_[i], link_pin(opts_.pin_dir, p));
    return;
  }
  if (nf_fd_[i] >= 0) return;
  // Two BPF programs may not share a netfilter hook's priority (the kernel says EBUSY), and a
  // previous daemon's pinned link holds it until ours replaces it (pin_link): ours then takes the
  // next priority, and the two alternate from one start to the next.
  int fd = link_netfilter(bpf_program__fd(p), h, h.priority);  // (libbpf 1.1 has no bpf_link for it)
  if (fd < 0 && errno == EBUSY) fd = link_netfilter(bpf_program__fd(p), h, h.priority + 1);
  if (fd < 0) fail(std::string("cannot link ") + h.prog + " into this network namespace's netfilter hooks", errno);
  nf_fd_[i] = fd;
  pin_link(fd, link_pin(opts_.pin_dir, p));
}

std::vector<std::string> KernelPath::attached_hooks() const {
  std::vector<std::string> out = link_names_;
  for (const auto& [prog, link] : on_demand_)
    if (link) out.emplace_back(bpf_program__name(prog));
  for (size_t i = 0; i < std::size(kNfHooks); ++i)
    if (nf_fd_[i] >= 0) out.emplace_back(kNfHooks[i].prog);
  for (const auto& [index, t] : tcx_)
    for (int dir = 0; dir < 2; ++dir)
      if (t.fd[dir] >= 0) out.push_back(std::string(dir ? "lfp_tc_egress@" : "lfp_tc_ingress@") + t.name);
  return out;
}

// A link's last references are its pin and our descriptor: without both it is detached.
void KernelPath::unlink_hook(int& fd, const std::string& pin) {
  if (!opts_.pin_dir.empty()) ::unlink(pin.c_str());
  ::close(fd);
  fd = -1;
}

// Cgroup hooks a connection should not pay for while their layers are empty: sock_ops runs several
// times on every TCP connection (connect, RTO and window set-up, established), cgroup_skb on every
// packet.
std::vector<bpf_program*> KernelPath::on_demand_programs() const {
  return {skel_->progs.lfp_sockops, skel_->progs.lfp_ingress, skel_->progs.lfp_egress};
}

bool KernelPath::on_demand(const bpf_program* p) const {
  const auto all = on_demand_programs();
  return std::find(all.begin(), all.end(), p) != all.end();
}

void KernelPath::link_cgroup(bpf_program* prog, bool on) {
  const std::string pin = link_pin(opts_.pin_dir, prog);
  bpf_link*& link = on_demand_[prog];
  if (!on) {
    if (!link) return;
    if (!opts_.pin_dir.empty()) ::unlink(pin.c_str());
    bpf_link__destroy(link);
    link = nullptr;
    return;
  }
  if (link) return;
  link = bpf_program__attach_cgroup(prog, cgroup_fd_);
  if (!link) fail(std::string("cannot attach ") + bpf_program__name(prog) + " to " + opts_.cgroup, errno);
  pin_link(bpf_link__fd(link), pin);
}

void KernelPath::sync_hooks(const KernelPolicy& p, bool attach) {
  if (cgroup_fd_ >= 0) {
    auto holds = [&](std::initializer_list<lfp_kl> kls) {
      return std::any_of(kls.begin(), kls.end(), [&](lfp_kl kl) { return p.layer_filters[kl] > 0; });
    };
    // A flow cut at ALE_FLOW_ESTABLISHED is dropped by the packet hooks; ingress also decides
    // ALE_AUTH_RECV_ACCEPT and drops a refused listener's SYNs.
    const bool flow = holds({LFP_KL_FLOW_V4, LFP_KL_FLOW_V6});
    const bool listen = holds({LFP_KL_LISTEN_V4, LFP_KL_LISTEN_V6});
    const std::pair<bpf_program*, bool> want[] = {
        {skel_->progs.lfp_sockops, flow || listen || holds({LFP_KL_REDIRECT_V4, LFP_KL_REDIRECT_V6})},
        {skel_->progs.lfp_ingress, flow || listen || holds({LFP_KL_RECV_ACCEPT_V4, LFP_KL_RECV_ACCEPT_V6})},
        {skel_->progs.lfp_egress, flow}};
    for (const auto& [prog, on] : want)
      if (on == attach) link_cgroup(prog, on);
  }
  if (!opts_.packet_layers) return;
  for (size_t i = 0; i < std::size(kNfHooks); ++i) {
    const bool want = nf_hook_wanted(kNfHooks[i], p);
    if (want == attach) link_nf_hook(i, want);
  }
  const std::array<bool, 2> mac = {p.layer_filters[LFP_KL_MAC_IN] > 0, p.layer_filters[LFP_KL_MAC_OUT] > 0};
  bool changed = false;
  for (int dir = 0; dir < 2; ++dir)
    if (mac[dir] == attach && mac[dir] != want_mac_[dir]) {
      want_mac_[dir] = mac[dir];
      changed = true;
    }
  if (changed) refresh_interfaces();
}

void KernelPath::release() {
  for (bpf_link* l : links_) bpf_link__destroy(l);  // a pinned link stays attached
  links_.clear();
  link_names_.clear();
  for (auto& [prog, link] : on_demand_)
    if (link) bpf_link__destroy(link);
  on_demand_.clear();
  if (reauth_) bpf_link__destroy(reauth_);
  reauth_ = nullptr;
  for (int& fd : nf_fd_)  // likewise
    if (fd >= 0) ::close(fd), fd = -1;
  for (auto& [index, t] : tcx_)
    for (int fd : t.fd)
      if (fd >= 0) ::close(fd);
  tcx_.clear();
  if (rb_) ring_buffer__free(rb_);
  rb_ = nullptr;
  for (Bank& b : banks_) {
    if (b.mem && b.mem != MAP_FAILED) ::munmap(b.mem, b.capacity * sizeof(lfp_entry));
    if (b.fd >= 0) ::close(b.fd);
    b = Bank{};
  }
  if (cfg_ && cfg_ != MAP_FAILED) ::munmap(cfg_, sizeof(lfp_config));
  cfg_ = nullptr;
  if (cgroup_fd_ >= 0) ::close(cgroup_fd_);
  cgroup_fd_ = -1;
  if (skel_) lfp_bpf__destroy(skel_);
  skel_ = nullptr;
}

// A new array map of `entries` for bank `bank`, put in lfp_banks in place of the old one (the bank is
// idle: a walk still reading the old one sees the generation change and starts again).
void KernelPath::resize_bank(unsigned bank, size_t entries) {
  LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE | BPF_F_INNER_MAP);
  Bank fresh;
  fresh.capacity = entries;
  fresh.fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lfp_bank", sizeof(uint32_t), sizeof(lfp_entry),
                            static_cast<uint32_t>(entries), &o);
  if (fresh.fd < 0)
    fail("the kernel cannot give a policy bank of " + std::to_string(entries * sizeof(lfp_entry) >> 20) + " MiB", errno);
  fresh.mem = ::mmap(nullptr, entries * sizeof(lfp_entry), PROT_READ | PROT_WRITE, MAP_SHARED, fresh.fd, 0);
  if (fresh.mem == MAP_FAILED) {
    const int e = errno;
    ::close(fresh.fd);
    fail("cannot map a policy bank", e);
  }
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.lfp_banks), &bank, &fresh.fd, BPF_ANY) != 0) {
    const int e = errno;
    ::munmap(fresh.mem, entries * sizeof(lfp_entry));
    ::close(fresh.fd);
    fail("cannot put a policy bank in lfp_banks", e);
  }
  Bank& old = banks_[bank];
  if (old.mem) ::munmap(old.mem, old.capacity * sizeof(lfp_entry));
  if (old.fd >= 0) ::close(old.fd);
  old = fresh;
}

size_t KernelPath::bank_bytes() const { return (banks_[0].capacity + banks_[1].capacity) * sizeof(lfp_entry); }

// The policy in force becomes bank `bank`'s (one atomic store: a walk on the other bank starts again).
void KernelPath::flip(unsigned bank) {
  __atomic_store_n(&static_cast<lfp_config*>(cfg_)->gen_bank, (++gen_ << 1) | bank, __ATOMIC_RELEASE);
}

const KernelPolicy& KernelPath::install(const FilterEngine& engine, uint32_t only_flags, const FilterChanges* changes) {
  last_install_ = {};
  if (changes && only_flags == 0) {
    if (install_in_place(engine, *changes)) return policy_;
  } else {
    last_install_.why_whole = changes ? "boot-time filters only" : "the whole policy was asked for";
  }
  auto* cfg = static_cast<lfp_config*>(cfg_);
  const uint64_t active = __atomic_load_n(&cfg->gen_bank, __ATOMIC_ACQUIRE);
  const unsigned bank = active == 0 ? 0 : !(active & 1);
  KernelPolicy next = compile(engine, resolve_app, kSetBase[bank], only_flags);
  const size_t limit = opts_.bank_entries ? opts_.bank_entries : kMaxBankEntries;
  if (next.bank.size() > limit)
    throw std::length_error("the kernel cannot hold this policy: its " + std::to_string(next.filters) +
                            " filters need " + std::to_string(next.bank.size()) + " kernel entries (" +
                            std::to_string(next.bank.size() * sizeof(lfp_entry) >> 20) + " MiB) and a bank may take " +
                            std::to_string(limit) + (opts_.bank_entries ? " (lfpd --kernel-entries)" : ""));
  // The idle bank, sized to this policy: a new map when it is too small, or much too large.
  const size_t need = next.bank.size();
  const auto fits = [&](unsigned b) { return banks_[b].capacity >= need && banks_[b].capacity <= 4 * need + 65536; };
  const size_t room = std::min(limit, need + need / 4 + 4096);  // (a quarter more: room for updates in place)
  if (!fits(bank)) resize_bank(bank, room);

  // The idle bank's user sets are stale: replace them.
  const int sets = bpf_map__fd(skel_->maps.lfp_user_sets);
  std::vector<lfp_user_key> stale;
  lfp_user_key k{}, nk{};
  for (int r = bpf_map_get_next_key(sets, nullptr, &nk); r == 0; r = bpf_map_get_next_key(sets, &k, &nk)) {
    if ((nk.set >= kSetBase[1]) == (bank == 1)) stale.push_back(nk);
    k = nk;
  }
  for (auto& s : stale) bpf_map_delete_elem(sets, &s);
  const uint8_t one = 1;
  for (auto& s : next.user_sets)
    if (int e = bpf_map_update_elem(sets, &s, &one, BPF_ANY)) fail("user set map", e);

  // Redirect targets by filter id, before the policy that uses them is flipped in.
  const int redirects = bpf_map__fd(skel_->maps.lfp_redirects);
  for (const auto& [id, t] : next.redirects)
    if (int e = bpf_map_update_elem(redirects, &id, &t, BPF_ANY)) fail("redirect map", e);
  std::memcpy(banks_[bank].mem, next.bank.data(), need * sizeof(lfp_entry));
  sync_hooks(next, true);  // hooks the policy needs are linked before it is in force,
  banks_alike_ = false;
  flip(bank);
  sync_hooks(next, false);  // and those it leaves idle go after
  policy_ = std::move(next);
  // The other bank gets the same policy, so that an update in place can follow (no walk is on it
  // now, or one that is starts again). Not for a policy only ever compiled whole.
  if (policy_.places) {
    const unsigned other = !bank;
    try {
      if (!fits(other)) resize_bank(other, room);
      std::memcpy(banks_[other].mem, policy_.bank.data(), need * sizeof(lfp_entry));
      policy_.bank.reserve(std::min(banks_[0].capacity, banks_[1].capacity));  // (updates append: no reallocation then)
      banks_alike_ = true;
    } catch (const std::exception&) {
      // (Enforced as it is: only the next change is compiled whole.)
    }
  }
  reauthorize();
  return policy_;
}

// The changes applied to the policy in force, in both banks; false when they need a whole compile
// (last_install_.why_whole says why; nothing in the kernel changed).
bool KernelPath::install_in_place(const FilterEngine& engine, const FilterChanges& changes) {
  if (!banks_alike_ || !policy_.places) {
    last_install_.why_whole = "the banks do not both hold the policy in force";
    return false;
  }
  const size_t limit = opts_.bank_entries ? opts_.bank_entries : kMaxBankEntries;
  const size_t capacity = std::min({banks_[0].capacity, banks_[1].capacity, limit});
  UpdateResult u = update(policy_, engine, changes, resolve_app, capacity);
  if (!u.applied) {
    last_install_.why_whole = u.why_whole;
    policy_.places.reset();  // (half changed: the whole compile that follows replaces it)
    banks_alike_ = false;
    return false;
  }
  auto* cfg = static_cast<lfp_config*>(cfg_);
  const unsigned active = __atomic_load_n(&cfg->gen_bank, __ATOMIC_ACQUIRE) & 1;
  const auto copy_to = [&](unsigned b) {
    auto* mem = static_cast<lfp_entry*>(banks_[b].mem);
    for (uint32_t e : u.written) mem[e] = policy_.bank[e];
  };
  copy_to(!active);
  flip(!active);
  copy_to(active);  // (a walk still on it starts again on the other)
  sync_hooks(policy_, false);  // (a layer that lost its last filter needs its hooks no more)
  last_install_.in_place = true;
  last_install_.entries_written = u.written.size();
  reauthorize();
  return true;
}

namespace {

// The network namespaces of the processes in `cgroup` and below it, one open descriptor each.
std::vector<int> cgroup_netns(const std::string& cgroup) {
  std::vector<int> fds;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::vector<std::string> dirs = {cgroup};
  while (!dirs.empty()) {
    const std::string dir = dirs.back();
    dirs.pop_back();
    if (FILE* f = std::fopen((dir + "/cgroup.procs").c_str(), "re")) {
      for (long pid; std::fscanf(f, "%ld", &pid) == 1;) {
        const std::string ns = "/proc/" + std::to_string(pid) + "/ns/net";
        struct stat st;
        if (::stat(ns.c_str(), &st) != 0 || !seen.insert({st.st_dev, st.st_ino}).second) continue;
        if (int fd = ::open(ns.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) fds.push_back(fd);
      }
      std::fclose(f);
    }
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d))
        if (e->d_type == DT_DIR && e->d_name[0] != '.') dirs.push_back(dir + "/" + e->d_name);
      ::closedir(d);
    }
  }
  return fds;
}

// Runs the iterator `link` in each namespace: a thread of its own enters them (lfpd stays where it is).
void run_iterator_in(bpf_link* link, const std::vector<int>& netns) {
  std::thread([&] {
    for (int ns : netns) {
      if (::setns(ns, CLONE_NEWNET) != 0) continue;  // (the namespace's last process is gone)
      const int it = bpf_iter_create(bpf_link__fd(link));
      if (it < 0) continue;
      char buf[64];
      while (::read(it, buf, sizeof buf) > 0) {
      }
      ::close(it);
    }
  }).join();
}

}  // namespace

// WFP re-authorizes every flow when the policy changes; here the iterator lfp_reauth does, in each
// namespace the cgroup's processes are in (an iterator sees the namespace it is created in). A
// connect() that read the old generation may not be in the kernel's socket table yet at the first
// pass: it is by the second, a moment later.
void KernelPath::reauthorize() {
  if (!reauth_ || opts_.cgroup.empty()) return;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::vector<int> netns = cgroup_netns(opts_.cgroup);
    run_iterator_in(reauth_, netns);
    for (int fd : netns) ::close(fd);
  }
}

lfp_verdict KernelPath::evaluate(lfp_kl kl, const lfp_values& v) const {
  lfp_test_ctx ctx{};
  ctx.kl = kl;
  ctx.values = v;
  LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &ctx, .ctx_size_in = sizeof ctx);
  if (int e = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.lfp_test_eval), &run)) fail("test run", e);
  return ctx.out;
}

double KernelPath::time_evaluate(lfp_kl kl, const lfp_values& v, uint32_t runs) const {
  // BPF_PROG_TEST_RUN of a syscall program has no `repeat`: the kernel's own run-time statistics
  // (on while `stats` is open) time the runs, without the system calls around them.
  const int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats < 0) fail("BPF_ENABLE_STATS", errno);
  const int fd = bpf_program__fd(skel_->progs.lfp_test_eval);
  auto read = [&] {
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (int e = bpf_obj_get_info_by_fd(fd, &info, &len)) fail("program info", e);
    return std::pair<uint64_t, uint64_t>{info.run_time_ns, info.run_cnt};
  };
  lfp_test_ctx ctx{};
  ctx.kl = kl;
  ctx.values = v;
  LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &ctx, .ctx_size_in = sizeof ctx);
  const auto before = read();
  for (uint32_t i = 0; i < runs; ++i)
    if (int e = bpf_prog_test_run_opts(fd, &run)) {
      ::close(stats);
      fail("test run", e);
    }
  const auto after = read();
  ::close(stats);
  return after.second > before.second
             ? static_cast<double>(after.first - before.first) / static_cast<double>(after.second - before.second)
             : 0;
}

int KernelPath::events_fd() const { return ring_buffer__epoll_fd(rb_); }

void KernelPath::drain_events(const std::function<void(const lfp_event&)>& cb) {
  sink_ = cb;
  ring_buffer__consume(rb_);
  sink_ = nullptr;
}

uint64_t KernelPath::counter(lfp_counter c) const {
  const uint32_t i = c;
  const int n = libbpf_num_possible_cpus();
  std::vector<uint64_t> per(n > 0 ? n : 1);
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.lfp_counters), &i, per.data())) return 0;
  uint64_t sum = 0;
  for (auto x : per) sum += x;
  return sum;
}

void KernelPath::remove_pins(const std::string& pin_dir) {
  DIR* d = ::opendir(pin_dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(d);
  for (const auto& n : names) {
    const std::string path = pin_dir + "/" + n;
    if (n.rfind("link_", 0) == 0) {
      int fd = bpf_obj_get(path.c_str());
      if (fd >= 0) {
        bpf_link_detach(fd);
        ::close(fd);
      }
    }
    ::unlink(path.c_str());
  }
}

}  // namespace lfp::datapath
