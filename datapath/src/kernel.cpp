#include "lfp/datapath/kernel.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "lfp_ale.skel.h"

namespace lfp::datapath {

namespace {

constexpr size_t kBankBytes = size_t{LFP_BANK_ENTRIES} * sizeof(lfp_entry);
// User-set ids are split between the banks, so the idle bank's sets can be replaced while the
// active bank's stay.
constexpr uint32_t kSetBase[2] = {1, 0x80000000u};

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

std::string link_pin(const std::string& dir, const bpf_program* p) { return dir + "/link_" + bpf_program__name(p); }

}  // namespace

AppKey resolve_app(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return AppKey{};
  // The kernel's dev_t packs major and minor as MAJOR << 20 | MINOR (include/linux/kdev_t.h).
  return AppKey{uint64_t{major(st.st_dev)} << 20 | minor(st.st_dev), st.st_ino};
}

KernelPath::KernelPath(KernelOptions opts) : opts_(std::move(opts)) {
  skel_ = lfp_ale__open();
  if (!skel_) fail("cannot open the BPF object", errno);
  if (!opts_.pin_dir.empty()) {
    bpf_map* m;
    bpf_object__for_each_map(m, skel_->obj) {
      const std::string path = opts_.pin_dir + "/" + bpf_map__name(m);
      if (int e = bpf_map__set_pin_path(m, path.c_str())) fail("pin path " + path, e);
    }
  }
  if (int e = lfp_ale__load(skel_)) {
    lfp_ale__destroy(skel_);
    fail("cannot load the BPF programs (pinned maps from another version? lfpd --detach removes them)", e);
  }
  banks_ = ::mmap(nullptr, 2 * kBankBytes, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(skel_->maps.lfp_banks), 0);
  cfg_ = ::mmap(nullptr, sizeof(lfp_config), PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(skel_->maps.lfp_cfg), 0);
  if (banks_ == MAP_FAILED || cfg_ == MAP_FAILED) {
    int e = errno;
    release();
    fail("cannot map the policy banks", e);
  }
  auto* cfg = static_cast<lfp_config*>(cfg_);
  gen_ = cfg->gen_bank >> 1;  // a pinned policy keeps counting
  cfg->fail_closed = opts_.fail_closed;
  cfg->log_allows = opts_.log_allows;

  rb_ = ring_buffer__new(
      bpf_map__fd(skel_->maps.lfp_events),
      [](void* self, void* data, size_t size) -> int {
        auto* k = static_cast<KernelPath*>(self);
        if (size >= sizeof(lfp_event) && k->sink_) k->sink_(*static_cast<const lfp_event*>(data));
        return 0;
      },
      this, nullptr);
  if (!rb_) {
    int e = errno;
    release();
    fail("cannot open the event ring", e);
  }
  if (!opts_.cgroup.empty()) {
    try {
      attach_and_pin();
    } catch (...) {
      release();
      throw;
    }
  }
}

void KernelPath::attach_and_pin() {
  cgroup_fd_ = ::open(opts_.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup_fd_ < 0) fail("cgroup " + opts_.cgroup, errno);
  bpf_program* p;
  bpf_object__for_each_program(p, skel_->obj) {
    if (p == skel_->progs.lfp_test_eval) continue;
    bpf_link* link = bpf_program__attach_cgroup(p, cgroup_fd_);
    if (!link) fail(std::string("cannot attach ") + bpf_program__name(p) + " to " + opts_.cgroup, errno);
    if (!opts_.pin_dir.empty()) {
      // Replace a previous daemon's link: the new hook is attached before the old one goes.
      const std::string path = link_pin(opts_.pin_dir, p);
      int old = bpf_obj_get(path.c_str());
      if (old >= 0) ::unlink(path.c_str());
      if (int e = bpf_link__pin(link, path.c_str())) fail("pin " + path, e);
      if (old >= 0) {
        bpf_link_detach(old);
        ::close(old);
      }
    }
    links_.push_back(link);
  }
}

KernelPath::~KernelPath() { release(); }

void KernelPath::set_userspace(bool on) { static_cast<lfp_config*>(cfg_)->userspace = on; }

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

void KernelPath::set_log_allows(bool on) {
  opts_.log_allows = on;
  static_cast<lfp_config*>(cfg_)->log_allows = on;
}

void KernelPath::release() {
  for (bpf_link* l : links_) bpf_link__destroy(l);  // a pinned link stays attached
  links_.clear();
  if (rb_) ring_buffer__free(rb_);
  rb_ = nullptr;
  if (banks_ && banks_ != MAP_FAILED) ::munmap(banks_, 2 * kBankBytes);
  if (cfg_ && cfg_ != MAP_FAILED) ::munmap(cfg_, sizeof(lfp_config));
  banks_ = cfg_ = nullptr;
  if (cgroup_fd_ >= 0) ::close(cgroup_fd_);
  cgroup_fd_ = -1;
  if (skel_) lfp_ale__destroy(skel_);
  skel_ = nullptr;
}

const KernelPolicy& KernelPath::install(const FilterEngine& engine, uint32_t only_flags) {
  auto* cfg = static_cast<lfp_config*>(cfg_);
  const uint64_t active = __atomic_load_n(&cfg->gen_bank, __ATOMIC_ACQUIRE);
  const unsigned bank = active == 0 ? 0 : !(active & 1);
  KernelPolicy next = compile(engine, resolve_app, kSetBase[bank], only_flags);

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
  std::memcpy(static_cast<char*>(banks_) + bank * kBankBytes, next.bank.data(), next.bank.size() * sizeof(lfp_entry));
  __atomic_store_n(&cfg->gen_bank, (++gen_ << 1) | bank, __ATOMIC_RELEASE);
  policy_ = std::move(next);
  return policy_;
}

lfp_verdict KernelPath::evaluate(lfp_kl kl, const lfp_values& v) const {
  lfp_test_ctx ctx{};
  ctx.kl = kl;
  ctx.values = v;
  LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &ctx, .ctx_size_in = sizeof ctx);
  if (int e = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.lfp_test_eval), &run)) fail("test run", e);
  return ctx.out;
}

int KernelPath::events_fd() const { return ring_buffer__epoll_fd(rb_); }

void KernelPath::drain_events(const std::function<void(const lfp_event&)>& cb) {
  sink_ = cb;
  ring_buffer__consume(rb_);
  sink_ = nullptr;
}

uint64_t KernelPath::counter(uint32_t i) const {
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
