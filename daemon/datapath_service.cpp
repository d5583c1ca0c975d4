// SPDX-License-Identifier: MIT
#include "datapath_service.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "callout_plugins.hpp"
#include "lfp/datapath/events.hpp"
#include "lfp/datapath/inspect.hpp"
#include "lfp/datapath/netfilter.hpp"
#include "lfp/datapath/notify.hpp"
#include "lfp/datapath/packet_queue.hpp"
#include "lfp/datapath/pending.hpp"
#include "lfp/datapath/redirect.hpp"
#include "lfp/datapath/userpath.hpp"
#include "lfp/engine/error.hpp"
#include "lfp/netevents/event.hpp"
#include "lfp/protocol/log_limit.hpp"
#include "lfp/protocol/request.hpp"
#include "lfp/sys/mounts.hpp"
#include "netevents_service.hpp"

namespace lfp::daemon {

using nlohmann::json;

namespace {

// A net event's log line (from `source`: "" for the kernel's ring). Any local process can cause one
// (a blocked connect), so they are rate-limited, and what they quote (an app's path) is escaped.
void log_net_event(const json& ev, std::string_view source) {
  static protocol::LineLimit limit(50);
  if (!spdlog::should_log(spdlog::level::info)) return;
  uint64_t suppressed;
  const bool admitted = limit.admit(suppressed);
  if (suppressed)
    spdlog::info("net events: {} lines suppressed (at most {} a second; lfp show netevents has them all)", suppressed,
                 limit.per_second());
  if (admitted) spdlog::info("net event{}: {}", source, protocol::log_safe(datapath::summary(ev), 1024));
}

// LFP's nftables table as a crashed lfpd left it, queueing to queues nothing reads now: the owner
// replaces it when it is made and deletes it when it goes.
void remove_stale_netfilter_table() {
  try {
    datapath::nf::NetfilterTable::shared();
  } catch (const std::exception& e) {
    spdlog::warn("{} (a table a previous lfpd left, if any, stays)", e.what());
  }
}

}  // namespace

// The kernel's layers (ALE and packet), kept in step with the engine's committed policy: lfpd's
// enforcer, so a policy the kernel cannot take is refused, not committed.
struct DataPathService::Kernel {
  datapath::KernelPath path;
  const FilterEngine* engine = nullptr;  // the engine last installed
  uint64_t lost_seen;                     // the ring's loss counter (pinned: it counts across restarts)
  int64_t lost_checked;                   // when it was last read
  uint64_t in_storage_seen = 0;

  explicit Kernel(datapath::KernelOptions o)
      : path(std::move(o)), lost_seen(path.events_lost()), lost_checked(netevents::now_ns()) {}

  void install(const FilterEngine& e, const FilterChanges* changes) {
    engine = &e;
    const auto& p = path.install(e, 0, changes);
    const auto& how = path.last_install();
    if (how.in_place)
      spdlog::info("kernel: {} filters installed (in place: {} added, {} deleted, {} entries written)", p.filters,
                   changes->added.size(), changes->deleted.size(), how.entries_written);
    else
      spdlog::info("kernel: {} filters installed ({} need user space, {} entries, {} bytes of kernel memory){}", p.filters,
                   p.userspace_filters, p.bank.size(), path.bank_bytes(), changes ? " compiled whole: " + how.why_whole : "");
  }
};

DataPathService::DataPathService(Server& server, NetEventService& events, CalloutPlugins& plugins, DataPathOptions options)
    : server_(server), events_(events), plugins_(plugins), opts_(std::move(options)) {
  if (opts_.queue >= 0 && opts_.kernel.cgroup.empty())
    throw std::runtime_error("--queue needs a cgroup (the hooks that fill it), not --cgroup none");
  if (!opts_.kernel.cgroup.empty() || opts_.kernel.packet_layers) start_kernel();
  if (opts_.inspect_queue >= 0) start_inspector();
  if (opts_.packet_queue >= 0) start_packet_queue();
  else if (opts_.packet_userspace) throw std::runtime_error("--packet-userspace needs --packet-queue");
  if (!userpath_ && !inspector_ && !packet_path_) remove_stale_netfilter_table();
  if (inspector_ || pending_) start_ticks();
  // Which layers nothing enforces in this configuration: lfp status, lfp show state, and the
  // warnings of add and apply.
  server_.set_layer_check([this](LayerId layer) { return why_unenforced(layer); });
}

DataPathService::~DataPathService() {
  if (tick_fd_ >= 0) ::close(tick_fd_);
}

datapath::KernelPath* DataPathService::kernel() { return kernel_ ? &kernel_->path : nullptr; }

void DataPathService::start_kernel() {
  // The pins need a bpffs: mounted at /sys/fs/bpf when the pins go there and none is (as bpftool
  // does), else a one-line reason.
  if (!opts_.kernel.pin_dir.empty()) sys::ensure_bpffs(opts_.kernel.pin_dir);
  kernel_ = std::make_unique<Kernel>(opts_.kernel);
  datapath::register_redirect_callouts(server_.engine());
  datapath::register_prompt_callouts(server_.engine());
  // A proxy asks where a redirected connection was going, by its peer address.
  server_.add_op("redirect_record", Role::READER, [this](const OpContext&, const json& req) {
    const auto peer = protocol::string_member(req, "peer");
    if (!peer) protocol::missing_member("peer", "the redirected connection's peer, \"ADDR:PORT\"");
    auto r = datapath::redirect_record(kernel_->path, *peer);
    if (!r) throw Error(ErrorCode::NOT_FOUND, "no redirected connection from " + protocol::log_safe(*peer, 64));
    return *r;
  });
  if (!opts_.kernel.cgroup.empty())
    spdlog::info("kernel: ALE hooks attached to {} (pins under {}, fail {})", opts_.kernel.cgroup, opts_.kernel.pin_dir,
                 opts_.fail);
  if (opts_.kernel.packet_layers)
    spdlog::info("kernel: packet layers linked into this network namespace's netfilter hooks (pins under {})",
                 opts_.kernel.pin_dir);
  server_.set_enforcer([this](const FilterEngine& e, const FilterChanges* c) {
    try {
      kernel_->install(e, c);
    } catch (...) {
      ++counts_.install_failures;
      throw;
    }
    ++(kernel_->path.last_install().in_place ? counts_.installs_in_place : counts_.installs_whole);
  });
  if (opts_.kernel.log_allows && !events_.settings().has("CLASSIFY_ALLOW")) {
    auto s = events_.settings();
    s.keywords.push_back("CLASSIFY_ALLOW");
    events_.set_settings(s);
  }
  events_.on_settings([this](const netevents::Settings& s) { kernel_->path.set_log_allows(s.has("CLASSIFY_ALLOW")); });
  if (opts_.queue >= 0) start_user_path();
  server_.watch_fd(kernel_->path.events_fd(), [this] {
    drain();
    plugins_.reap_failed();  // (the release layers' callouts are called there)
  });
}

void DataPathService::drain() {
  if (!kernel_) return;
  Kernel& k = *kernel_;
  k.path.drain_events([&](const lfp_event& ev) {
    // A released socket: its layer's callouts are called; recorded only when permits are logged.
    std::optional<json> j;
    if (datapath::notification_layer(ev.kl))
      j = datapath::notify_release(ev, *k.engine, k.path.installed(), k.path.log_allows());
    else
      j = datapath::describe(ev, *k.engine, k.path.installed());
    if (!j) return;
    record(*j, "");
  });
  // Events the hooks could not put in a full ring: a gap in the log, with their number.
  const int64_t now = netevents::now_ns();
  if (const uint64_t lost = k.path.events_lost(); lost > k.lost_seen) {
    events_.lost(k.lost_checked, now, lost - k.lost_seen, "the kernel's event ring was full");
    k.lost_seen = lost;
  }
  k.lost_checked = now;
  if (const uint64_t u = k.path.flows_in_storage(); u > k.in_storage_seen) {
    spdlog::info("kernel: {} more outbound TCP flows kept in their sockets' storage (the {} slots their "
                 "addresses name in the {} of lfp_flows all held open flows)",
                 u - k.in_storage_seen, LFP_FLOW_WAYS, LFP_FLOWS);
    k.in_storage_seen = u;
  }
}

void DataPathService::record(const json& event, std::string_view source) {
  log_net_event(event, source);
  events_.ingest(event);
}

// --queue: the ALE decisions the kernel hands to user space, and the connects pended there.
void DataPathService::start_user_path() {
  const bool fail_open = opts_.fail == "open";
  userpath_ = std::make_unique<datapath::UserPath>(kernel_->path, static_cast<uint16_t>(opts_.queue), fail_open);
  spdlog::info("user-space path: NFQUEUE {} (fail {} while lfpd is down or the queue is full)", opts_.queue, opts_.fail);
  pending_ = std::make_unique<datapath::PendingDecisions>(*userpath_, server_.engine(), kernel_->path,
                                                          int64_t{opts_.pend_timeout_ms} * 1'000'000,
                                                          opts_.pend_default == "permit");
  pending_->on_event = [this](const json& ev) { record(ev, " (user space)"); };
  plugins_.on_complete = [this](uint64_t handle, bool permit) { pending_->complete(handle, permit, "callout"); };
  server_.watch_fd(userpath_->fd(), [this, overflow_seen = userpath_->overflowed(), checked = netevents::now_ns()]() mutable {
    userpath_->drain([&](const datapath::QueuedFlow& f, uint32_t id) {
      const auto start = std::chrono::steady_clock::now();
      const int verdict = pending_->decide(f, id);
      counts_.user_decision_seconds.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return verdict;
    });
    plugins_.reap_failed();
    // Flows the queue could not take were decided by --fail, unseen: counted and logged.
    const int64_t now = netevents::now_ns();
    if (const uint64_t o = userpath_->overflowed(); o > overflow_seen) {
      spdlog::warn("user-space path: {} new flows overflowed NFQUEUE {} and were {} (--fail {})", o - overflow_seen,
                   opts_.queue, opts_.fail == "open" ? "passed" : "dropped", opts_.fail);
      events_.lost(checked, now, o - overflow_seen, "NFQUEUE overflow: decided by --fail " + opts_.fail);
      overflow_seen = o;
    }
    checked = now;
  });
}

// --inspect-queue: the data layers in user space (datapath/inspect.hpp).
void DataPathService::start_inspector() {
  if (opts_.queue == opts_.inspect_queue) throw std::runtime_error("--inspect-queue and --queue must be different queues");
  inspector_ = std::make_unique<datapath::DataInspector>(server_.engine(), static_cast<uint16_t>(opts_.inspect_queue),
                                                         opts_.fail == "open");
  inspector_->on_event = [this](json ev) { record(ev, " (data layer)"); };
  server_.on_policy_change([this](const FilterEngine&) {
    inspector_->update();
    if (kernel_) kernel_->path.set_datagrams_inspected(inspector_->queues_datagrams());
  });
  server_.watch_fd(inspector_->fd(), [this] {
    inspector_->drain();
    plugins_.reap_failed();
  });
  server_.add_op("flows", Role::READER, [this](const OpContext&, const json& req) {
    json page = protocol::page_of(inspector_->flows_json(), req, "flows");
    page["stats"] = inspect_stats();
    return page;
  });
  spdlog::info("data layers: NFQUEUE {} for STREAM and DATAGRAM_DATA (rules while the policy has filters there)",
               opts_.inspect_queue);
}

// --packet-queue: the packet layers' user-space path (datapath/packet_queue.hpp).
void DataPathService::start_packet_queue() {
  if (!opts_.kernel.packet_layers) throw std::runtime_error("--packet-queue needs the packet layers (not --no-packet-layers)");
  const int first = opts_.packet_queue, count = opts_.packet_queues;
  for (int q : {opts_.queue, opts_.inspect_queue})
    if (q >= first && q < first + count)
      throw std::runtime_error("--packet-queue's queues must differ from --queue and --inspect-queue");
  packet_path_ = std::make_unique<datapath::PacketQueue>(server_.engine(), kernel_->path, static_cast<uint16_t>(first),
                                                         static_cast<uint16_t>(count), opts_.fail == "open",
                                                         opts_.packet_userspace);
  packet_path_->set_log_allows(opts_.kernel.log_allows);
  events_.on_settings([this](const netevents::Settings& s) { packet_path_->set_log_allows(s.has("CLASSIFY_ALLOW")); });
  packet_path_->on_event = [this](json ev) { record(ev, " (packet queue)"); };
  server_.on_policy_change([this](const FilterEngine&) {  // (after the kernel's install, above)
    packet_path_->leave_datagrams_to_inspector(inspector_ && inspector_->queues_datagrams());
    packet_path_->update(kernel_->path.installed());
  });
  // Packets the queues could not take were decided by --fail, unseen: counted and logged (at most
  // once a second: the count is read from /proc).
  packet_overflow_ = [this, seen = packet_path_->overflowed(), checked = netevents::now_ns()]() mutable {
    const int64_t now = netevents::now_ns();
    if (now - checked < 1'000'000'000) return;
    if (const uint64_t o = packet_path_->overflowed(); o > seen) {
      spdlog::warn("packet queue: {} packets overflowed and were {} (--fail {})", o - seen,
                   opts_.fail == "open" ? "passed" : "dropped", opts_.fail);
      events_.lost(checked, now, o - seen, "packet queue overflow: decided by --fail " + opts_.fail);
      seen = o;
    }
    checked = now;
  };
  const auto fds = packet_path_->fds();
  for (size_t i = 0; i < fds.size(); ++i)
    server_.watch_fd(fds[i], [this, i] {
      packet_path_->drain(i);
      packet_overflow_();
    });
  server_.add_op("packet_queue", Role::READER, [this](const OpContext&, const json&) { return packet_queue_stats(); });
  spdlog::info("packet layers: NFQUEUE {}..{} for the hooks that need user space{}", first, first + count - 1,
               opts_.packet_userspace ? " (all hooks with filters: --packet-userspace)" : "");
}

// Five times a second: pended connects time out, stream bytes stop waiting, idle flows end.
void DataPathService::start_ticks() {
  tick_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  const itimerspec every{{0, 200'000'000}, {0, 200'000'000}};
  ::timerfd_settime(tick_fd_, 0, &every, nullptr);
  server_.watch_fd(tick_fd_, [this] {
    uint64_t n;
    while (::read(tick_fd_, &n, sizeof n) > 0) {}
    if (pending_) pending_->expire();
    if (inspector_) inspector_->sweep(120'000'000'000LL, int64_t{opts_.stream_hold_ms} * 1'000'000);
  });
}

std::optional<std::string> DataPathService::why_unenforced(LayerId layer) const {
  const auto kl = datapath::kernel_layer(layer);
  const bool data_layer = layer == LayerId::STREAM_V4 || layer == LayerId::STREAM_V6 ||
                          layer == LayerId::DATAGRAM_DATA_V4 || layer == LayerId::DATAGRAM_DATA_V6;
  if (data_layer && inspector_) return std::nullopt;  // the data layers in user space decide them all
  if (!kl) return "lfpd decides this layer in user space only, with --inspect-queue";
  const bool ale = *kl < LFP_KL_FIRST_PACKET;
  if (ale && opts_.kernel.cgroup.empty()) return "no cgroup is governed (--cgroup none)";
  if (!ale && !opts_.kernel.packet_layers)
    return std::string("the packet layers are off (--no-packet-layers)") + (data_layer ? " and there is no --inspect-queue" : "");
  // Filters the kernel hands to user space (a callout, a condition it cannot evaluate) with no
  // queue to take them follow --fail (as the policy the kernel holds now says).
  const uint32_t deferred = kernel_ ? kernel_->path.installed().layer_userspace[*kl] : 0;
  const bool mac = *kl == LFP_KL_MAC_IN || *kl == LFP_KL_MAC_OUT;
  if (deferred > 0 && (ale ? !userpath_ : (mac || !packet_path_)))
    return std::to_string(deferred) + " of its filters need user space and " +
           (ale ? std::string("there is no --queue") : mac ? std::string("the MAC frame layers have no queue")
                                                           : std::string("there is no --packet-queue")) +
           ": they follow --fail " + opts_.fail;
  return std::nullopt;
}

json DataPathService::kernel_status() const {
  if (!kernel_) return nullptr;
  const datapath::KernelPath& k = kernel_->path;
  const auto& p = k.installed();
  json kernel = {{"filters", p.filters}, {"userspace_filters", p.userspace_filters},
                 {"entries", p.bank.size()},
                 {"entries_max", opts_.kernel.bank_entries ? opts_.kernel.bank_entries : datapath::kMaxBankEntries},
                 {"kernel_bytes", k.bank_bytes()},
                 {"hooks", k.attached_hooks()}, {"events_lost", k.events_lost()},
                 {"deferred", k.deferred()}, {"flows_in_storage", k.flows_in_storage()},
                 {"bpf_pin", opts_.kernel.pin_dir}};
  // The last change: in place (a few entries written) or compiled whole, and why.
  const auto& how = k.last_install();
  kernel["last_install"] = how.in_place ? json{{"in_place", true}, {"entries_written", how.entries_written}}
                                        : json{{"in_place", false}, {"why_whole", how.why_whole}};
  return kernel;
}

json DataPathService::queues_status() const {
  json queues = json::object();
  if (userpath_)
    queues["user_space_path"] = {{"queue", opts_.queue}, {"overflowed", userpath_->overflowed()},
                                 {"decided", userpath_->decided()}, {"unknown", userpath_->unknown()},
                                 {"pending", pending_->size()}};
  if (packet_path_) queues["packet_queue"] = packet_queue_stats();
  if (inspector_) queues["inspect"] = inspect_stats();
  return queues;
}

json DataPathService::inspect_stats() const {
  const auto& st = inspector_->stats();
  return json{{"packets", st.packets}, {"datagrams", st.datagrams}, {"classifies", st.classifies},
              {"bytes_inspected", st.bytes_inspected}, {"flows", st.flows},
              {"flows_allowed", st.flows_allowed}, {"flows_blocked", st.flows_blocked},
              {"out_of_order", st.out_of_order}, {"modified", st.modified}, {"injected", st.injected}};
}

json DataPathService::packet_queue_stats() const {
  const auto& st = packet_path_->stats();
  return json{{"queued_hooks", packet_path_->queued_hooks()}, {"packets", st.packets},
              {"dropped", st.dropped}, {"classifies", st.classifies}, {"reads", st.reads},
              {"verdict_messages", st.verdict_messages}, {"unparsed", st.unparsed},
              {"overflowed", packet_path_->overflowed()}};
}

}  // namespace lfp::daemon
