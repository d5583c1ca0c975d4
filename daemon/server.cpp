// SPDX-License-Identifier: MIT
#include "server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>
#include <type_traits>
#include <variant>

#include <spdlog/spdlog.h>

#include "lfp/engine/error.hpp"
#include "lfp/policy/policy.hpp"
#include "lfp/protocol/json_text.hpp"
#include "lfp/protocol/request.hpp"
#include "lfp/store/files.hpp"
#include "server_parts.hpp"

namespace lfp::daemon {

using nlohmann::json;

namespace {

constexpr std::string_view kKindNames[] = {"provider", "sublayer", "callout", "provider_context", "filter"};
constexpr std::string_view kKindPlural[] = {"providers", "sublayers", "callouts", "provider_contexts", "filters"};
constexpr size_t kMaxQueued = 4096;             // requests a client may have waiting
constexpr size_t kMaxOutput = 256u << 20;       // bytes a slow client may leave unread

// A role's group, by name (--admin-group, --writer-group). Resolved once: a name that does not
// resolve is logged, and nobody is in it.
std::optional<gid_t> group_id(const std::string& name, std::string_view role) {
  if (name.empty()) return std::nullopt;
  std::vector<char> buf(16384);
  group g{}, *found = nullptr;
  int err;
  while ((err = getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
  if (found) return found->gr_gid;
  spdlog::warn("{} group '{}' {}: nobody has the {} role through a group", role, name,
               err ? std::string("cannot be read: ") + std::strerror(err) : std::string("does not exist"), role);
  return std::nullopt;
}

// The groups the peer of a Unix socket had when it connected (the kernel's copy: a pid read
// later could be another process's). Empty if the kernel cannot tell.
std::vector<gid_t> socket_peer_groups(int fd) {
  std::vector<gid_t> groups(64);
  for (;;) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) return {};
    groups.resize(len / sizeof(gid_t) + 1);  // (len now says how much is needed)
  }
}

}  // namespace

std::string_view kind_name(ObjKind k) { return kKindNames[static_cast<size_t>(k)]; }
std::string_view kind_plural(ObjKind k) { return kKindPlural[static_cast<size_t>(k)]; }
std::string_view role_name(Role r) {
  switch (r) {
    case Role::ADMIN: return "admin";
    case Role::WRITER: return "writer";
    case Role::READER: return "reader";
    default: return "none";
  }
}

std::optional<ObjKind> kind_from_string(std::string_view s) {
  for (size_t i = 0; i < std::size(kKindNames); ++i)
    if (kKindNames[i] == s || kKindPlural[i] == s) return static_cast<ObjKind>(i);
  return std::nullopt;
}

Server::Server(Config cfg)
    : cfg_(std::move(cfg)),
      admin_gid_(group_id(cfg_.admin_group, "admin")),
      writer_gid_(group_id(cfg_.writer_group, "writer")) {
  add_core_ops();
}

Server::~Server() {
  for (auto& [id, s] : sessions_) ::close(s->fd);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(cfg_.socket_path.c_str());
  }
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

// ---------------------------------------------------------------------------------------------
// Start-up: the store first (persistent policy is enforced before anyone can connect), then the socket.

void Server::load_store() {
  store_ = std::make_unique<store::Store>(cfg_.state_dir);
  size_t n = 0, bad = 0;
  std::string first_bad;
  for (const auto& rec : store_->load()) {
    const ObjKind kind = static_cast<ObjKind>(rec.kind);
    const auto key = Guid::parse(rec.key);
    if (key && static_cast<size_t>(rec.kind) < std::size(stored_)) stored_[static_cast<size_t>(rec.kind)].insert(*key);
    try {
      if (!key || static_cast<size_t>(rec.kind) >= std::size(stored_)) throw std::runtime_error("bad kind or key");
      // The body is the object as policy JSON: as the daemon wrote it, or the request's own text
      // (whose key may be absent when the daemon generated it: the row's key is the key).
      auto doc = policy::JsonDoc::parse(rec.body);
      policy::Policy p = policy::object_from_json(kind_plural(kind), doc->root(), "", {"id", "effective_weight", "owner"});
      switch (kind) {
        case ObjKind::PROVIDER: p.providers.at(0).key = *key; break;
        case ObjKind::SUBLAYER: p.sublayers.at(0).key = *key; break;
        case ObjKind::CALLOUT: p.callouts.at(0).key = *key; break;
        case ObjKind::PROVIDER_CONTEXT: p.provider_contexts.at(0).key = *key; break;
        case ObjKind::FILTER: p.filters.at(0).key = *key; break;
      }
      engine_add(kind, p);
      owners_[kind][*key] = Owner{rec.owner_uid, 0, false};
      ++n;
    } catch (const std::exception& e) {
      ++bad;
      const auto k = static_cast<size_t>(rec.kind);
      const std::string row = (k < std::size(kKindNames) ? std::string(kKindNames[k]) : "row of kind " + std::to_string(k)) +
                              " " + protocol::log_safe(rec.key) + ": " + e.what();
      spdlog::error("store: cannot load {}", row);
      if (first_bad.empty()) first_bad = row;
    }
  }
  // Serving part of the stored policy would enforce something no one committed (docs/lfpd.md, Start-up).
  if (bad)
    throw std::runtime_error(store_->path() + ": " + std::to_string(bad) + " stored object" + (bad > 1 ? "s" : "") +
                             " cannot be loaded (the first: " + first_bad +
                             "); lfpd will not serve a partial policy: restore the file, or delete the row");
  spdlog::info("store {}: loaded {} persistent objects", store_->path(), n);
}

void Server::start() {
  load();
  // The data path enforces persistent policy before anyone connects. If it cannot, lfpd serves
  // anyway, degraded (op "state" says why), so that the policy can be fixed.
  policy_changed();

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // As many descriptors as the system lets lfpd have: sessions are capped well below (admins first).
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  // The socket's directory: lfpd's own, which no one else may write (else the path could be
  // swapped between the bind and the listen); 0755, so that every user reaches the socket.
  store::ensure_private_dir(std::filesystem::path(cfg_.socket_path).parent_path().string(), 0755);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (cfg_.socket_path.size() >= sizeof(addr.sun_path)) throw std::runtime_error("socket path too long: " + cfg_.socket_path);
  std::strcpy(addr.sun_path, cfg_.socket_path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  // A stale socket from a crashed daemon: remove it, but never steal a live daemon's socket.
  if (::connect(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
    throw std::runtime_error("another lfpd is serving " + cfg_.socket_path);
  ::close(listen_fd_);
  ::unlink(cfg_.socket_path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  // Everyone may connect (access is decided per peer uid): the socket file is made 0666 by bind
  // itself, from the socket's own mode and no umask, never by a chmod of its path (which follows a
  // symlink swapped in after the bind).
  if (::fchmod(listen_fd_, 0666) != 0) throw std::runtime_error(std::string("fchmod socket: ") + std::strerror(errno));
  const mode_t umask_before = ::umask(0);
  const int bound = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(umask_before);
  if (bound != 0) throw std::runtime_error("bind " + cfg_.socket_path + ": " + std::strerror(bind_errno));
  if (::listen(listen_fd_, 128) != 0) throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
  spdlog::info("listening on {}", cfg_.socket_path);
}

// ---------------------------------------------------------------------------------------------
// The loop.

void Server::run() {
  while (!stopping_) serve_once(-1);
}

void Server::serve_once(int max_wait_ms) {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  fds.push_back({listen_fd_, static_cast<short>(Clock::now() < accept_paused_until_ ? 0 : POLLIN), 0});
  fds.push_back({signal_fd_, POLLIN, 0});
  for (auto& [fd, cb] : watched_) fds.push_back({fd, POLLIN, 0});
  const size_t first_session = fds.size();
  for (auto& [id, s] : sessions_) {
    short ev = POLLIN;
    if (s->out.size() > s->out_off) ev |= POLLOUT;
    fds.push_back({s->fd, ev, 0});
    ids.push_back(id);
  }
  int timeout = poll_timeout_ms();
  if (max_wait_ms >= 0) timeout = timeout < 0 ? max_wait_ms : std::min(timeout, max_wait_ms);
  int n = ::poll(fds.data(), fds.size(), timeout);
  if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
  if (fds[1].revents & POLLIN) {
    signalfd_siginfo si;
    while (::read(signal_fd_, &si, sizeof si) == sizeof si) {
      spdlog::info("signal {}: stopping", si.ssi_signo);
      stopping_ = true;
    }
  }
  if (fds[0].revents & POLLIN) accept_client();
  for (size_t i = 2; i < first_session; ++i)
    if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) watched_[i - 2].second();
  for (size_t i = first_session; i < fds.size(); ++i) {
    auto it = sessions_.find(ids[i - first_session]);
    if (it == sessions_.end()) continue;
    Session& s = *it->second;
    if (fds[i].revents & POLLOUT) on_writable(s);
    if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) on_readable(s);
  }
  expire_waits();
  expire_sessions();
  retry_waiting();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    if (it->second->closing) close_session(it->first, "closed");
    it = next;
  }
}

int Server::poll_timeout_ms() const {
  // (Woken at least once a second while a non-admin session may time out, or accepting is paused.)
  int t = Clock::now() < accept_paused_until_ ||
                  std::any_of(sessions_.begin(), sessions_.end(), [](auto& e) { return e.second->role != Role::ADMIN; })
              ? 1000
              : -1;
  auto now = Clock::now();
  if (writer_ && cfg_.txn_idle_ms)  // (woken to end an idle write transaction)
    if (auto it = sessions_.find(*writer_); it != sessions_.end()) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(it->second->last_request +
                                                                      std::chrono::milliseconds(cfg_.txn_idle_ms) - now).count();
      const int v = static_cast<int>(std::clamp<long long>(ms + 1, 0, 60000));
      t = t < 0 ? v : std::min(t, v);
    }
  for (auto& [id, s] : sessions_)
    if (s->deadline) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*s->deadline - now).count();
      int v = static_cast<int>(std::clamp<long long>(ms + 1, 0, 60000));
      t = t < 0 ? v : std::min(t, v);
    }
  return t;
}

void Server::accept_client() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
      // Out of descriptors or memory: stop polling the listening socket for a moment (it stays
      // readable: polling it now would spin) and serve the sessions there are.
      spdlog::warn("accept: {}; not accepting for 200 ms", std::strerror(errno));
      accept_paused_until_ = Clock::now() + std::chrono::milliseconds(200);
      return;
    }
    if (fd < 0) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      ::close(fd);
      continue;
    }
    adopt(fd, cred, socket_peer_groups(fd));
  }
}

uint64_t Server::adopt(int fd, const ucred& cred, std::vector<gid_t> groups) {
  auto s = std::make_unique<Session>();
  s->id = next_session_++;
  s->fd = fd;
  s->cred = cred;
  // Who may do what (docs/lfpd.md "Access control"), from what the socket says of the peer.
  groups.push_back(cred.gid);
  auto in = [&](const std::optional<gid_t>& g) {
    return g && std::find(groups.begin(), groups.end(), *g) != groups.end();
  };
  if (cred.uid == 0 || in(admin_gid_)) s->role = Role::ADMIN;
  else if (in(writer_gid_)) s->role = Role::WRITER;
  else s->role = cfg_.readers_all ? Role::READER : Role::NONE;
  s->txn_wait_ms = cfg_.default_txn_wait_ms;
  if (s->role != Role::ADMIN) {
    size_t all = 0, mine = 0;
    for (const auto& [id, o] : sessions_)
      if (o->role != Role::ADMIN) ++all, mine += o->cred.uid == cred.uid;
    std::string why;
    if (mine >= cfg_.max_sessions_per_uid)
      why = "uid " + std::to_string(cred.uid) + " has " + std::to_string(mine) + " sessions open, the most one user may";
    else if (all >= cfg_.max_sessions)
      why = std::to_string(all) + " sessions of users who are not admins are open, the most lfpd takes";
    if (!why.empty()) {
      // Told in a frame of its own (the client reads it as its hello's answer), then closed.
      const std::string frame = wire::encode(wire::to_json_text(
          json{{"id", nullptr}, {"ok", false}, {"error", {{"code", "TOO_MANY_SESSIONS"}, {"message", why}}}}, true));
      [[maybe_unused]] const ssize_t sent = ::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      ::close(fd);
      spdlog::debug("refused a session of uid {} (pid {}): {}", cred.uid, cred.pid, why);
      return 0;
    }
  }
  s->last_read = s->last_request = Clock::now();
  spdlog::debug("session {}: connected (uid {}, pid {}, {})", s->id, cred.uid, cred.pid, role_name(s->role));
  const uint64_t id = s->id;
  sessions_.emplace(id, std::move(s));
  return id;
}

void Server::on_readable(Session& s) {
  read_requests(s);
  process(s);
}

void Server::read_requests(Session& s) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(s.fd, buf, sizeof buf);
    if (r > 0) {
      s.reader.feed(buf, static_cast<size_t>(r));
      s.last_read = Clock::now();
      if (s.frame_since == Clock::time_point{}) s.frame_since = s.last_read;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
    s.closing = true;  // EOF or error: the client is gone (or died)
    break;
  }
  while (auto frame = s.reader.next()) {
    s.frame_since = s.last_read;  // (the next request's bytes came with this read at the earliest)
    if (s.queue.size() >= kMaxQueued) {
      reply_error(s, nullptr, "INVALID_PARAMETER", "too many requests waiting");
      s.closing = true;
      break;
    }
    s.queue.push_back(Request{requests_.read(std::move(*frame))});
  }
  if (!s.reader.error().empty()) {
    reply_error(s, nullptr, "INVALID_PARAMETER", "bad frame: " + s.reader.error());
    spdlog::warn("session {}: {}; closing", s.id, s.reader.error());
    s.closing = true;
  }
  if (s.reader.buffered() == 0) s.frame_since = {};
  else if (s.role != Role::ADMIN && held_by_uid(s.cred.uid, true) > cfg_.max_input_per_uid) {
    reply_error(s, nullptr, "TOO_MANY_SESSIONS",
                "uid " + std::to_string(s.cred.uid) + "'s sessions hold more than " +
                    std::to_string(cfg_.max_input_per_uid >> 20) + " MiB of requests not yet whole; closing this one");
    s.closing = true;
  }
}

size_t Server::held_by_uid(uid_t uid, bool input) const {
  size_t bytes = 0;
  for (const auto& [id, o] : sessions_)
    if (o->role != Role::ADMIN && o->cred.uid == uid) bytes += input ? o->reader.buffered() : o->out.size() - o->out_off;
  return bytes;
}

void Server::expire_sessions() {
  const auto now = Clock::now();
  for (auto& [id, s] : sessions_) {
    if (s->role == Role::ADMIN || s->closing) continue;
    if (s->frame_since != Clock::time_point{} && now - s->frame_since > std::chrono::milliseconds(cfg_.frame_timeout_ms)) {
      reply_error(*s, nullptr, "TIMEOUT", "a request did not arrive whole within " + std::to_string(cfg_.frame_timeout_ms) + " ms; closing");
      on_writable(*s);
      s->closing = true;
    } else if (s->txn == Session::Txn::NONE && !s->subscribed && !s->dynamic && s->queue.empty() &&
               s->out.size() == s->out_off && now - std::max(s->last_read, s->last_request) > std::chrono::milliseconds(cfg_.idle_timeout_ms)) {
      spdlog::debug("session {}: idle for {} ms; closing", s->id, cfg_.idle_timeout_ms);
      s->closing = true;
    }
  }
}

void Server::on_writable(Session& s) {
  while (s.out_off < s.out.size()) {
    ssize_t w = ::write(s.fd, s.out.data() + s.out_off, s.out.size() - s.out_off);
    if (w > 0) {
      s.out_off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
    s.closing = true;
    return;
  }
  s.out.clear();
  s.out_off = 0;
}

void Server::reply(Session& s, const json& msg) {
  reply_text(s, msg.value("id", json()), wire::to_json_text(msg, true));
}

void Server::reply_text(Session& s, const json& id, std::string_view payload) {
  if (payload.size() > wire::kMaxFrame) {
    reply(s, json{{"id", id}, {"ok", false},
                  {"error", {{"code", "INVALID_PARAMETER"}, {"message", "reply too large; use paging (offset/limit)"}}}});
    return;
  }
  s.out += wire::encode(payload);
  if (s.role != Role::ADMIN && held_by_uid(s.cred.uid, false) > cfg_.max_output_per_uid) {
    spdlog::warn("session {}: uid {}'s sessions leave more than {} MiB of replies unread; closing", s.id, s.cred.uid,
                 cfg_.max_output_per_uid >> 20);
    s.closing = true;
    return;
  }
  if (s.out.size() - s.out_off > kMaxOutput) {
    spdlog::warn("session {}: not reading its replies; closing", s.id);
    s.closing = true;
    return;
  }
  on_writable(s);
}

void Server::reply_error(Session& s, const json& id, std::string_view code, const std::string& msg) {
  reply(s, json{{"id", id}, {"ok", false}, {"error", {{"code", code}, {"message", msg}}}});
}

void Server::process(Session& s) {
  while (!s.queue.empty() && !s.closing) {
    Request& r = s.queue.front();
    // A large frame (a piece of a large apply) is read on the worker: the pieces that came since go
    // to it first, so that it reads them while this one is handled.
    if (!r.doc && !r.pending.in_hand()) read_requests(s);
    if (std::string error; !r.take(error)) {
      reply_error(s, r.req.value("id", json()), "INVALID_PARAMETER", error);
      s.queue.pop_front();
      continue;
    }
    const json& req = r.req;
    bool done;
    try {
      done = handle(s, r);
    } catch (const Error& e) {
      reply_error(s, req.value("id", json()), to_string(e.code()), e.detail());
      done = true;
    } catch (const policy::PolicyError& e) {
      reply_error(s, req.value("id", json()), "INVALID_PARAMETER", e.what());
      done = true;
    } catch (const json::exception& e) {
      // An op that read a member unchecked (every op should use protocol's accessors): the client is
      // told which op, not nlohmann's text, and the log says where to look.
      spdlog::warn("session {}: op {}: a member read unchecked: {}", s.id, protocol::log_safe(req.value("op", json()).dump()), e.what());
      reply_error(s, req.value("id", json()), "INVALID_PARAMETER", "a member of the request has the wrong type (docs/protocol.md)");
      done = true;
    } catch (const std::exception& e) {
      reply_error(s, req.value("id", json()), "INVALID_PARAMETER", e.what());
      done = true;
    }
    if (!done) {
      if (!s.deadline) s.deadline = Clock::now() + std::chrono::milliseconds(s.txn_wait_ms);
      return;
    }
    s.deadline.reset();
    s.queue.pop_front();
    s.last_request = Clock::now();
  }
}

void Server::expire_waits() {
  auto now = Clock::now();
  for (auto& [id, s] : sessions_)
    if (s->deadline && *s->deadline <= now && !s->queue.empty()) {
      reply_error(*s, s->queue.front().req.value("id", json()), "TIMEOUT",
                  "waited " + std::to_string(s->txn_wait_ms) + " ms for the transaction lock" +
                      (writer_ ? ", held by " + holder() : ""));
      s->queue.pop_front();
      s->deadline.reset();
      process(*s);
    }
}

void Server::retry_waiting() {
  end_idle_write();
  // Ended dynamic sessions first: their objects go as soon as no one writes.
  if (!pending_cleanups_.empty() && !writer_ && !readers_.empty()) end_read_txns("a dynamic session's objects are removed");
  while (!pending_cleanups_.empty() && !writer_) {
    uint64_t id = pending_cleanups_.front();
    pending_cleanups_.pop_front();
    cleanup_dynamic(id);
  }
  bool progress = true;
  while (progress) {
    progress = false;
    for (auto& [id, s] : sessions_) {
      if (!s->deadline || s->closing) continue;
      size_t before = s->queue.size();
      process(*s);
      if (s->queue.size() != before) progress = true;
    }
  }
}

void Server::close_session(uint64_t id, const std::string& why) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  if (s.txn == Session::Txn::WRITE) {
    spdlog::info("session {}: ended inside a transaction; aborting it", id);
    abort_write(s);
  }
  readers_.erase(id);
  const bool had_dynamic = s.dynamic;
  ::close(s.fd);
  spdlog::debug("session {}: {}", id, why);
  sessions_.erase(it);
  if (had_dynamic) pending_cleanups_.push_back(id);
  for (auto& cb : close_observers_) cb(id);
  retry_waiting();
}

void Server::send_event(uint64_t session, const json& msg) {
  auto it = sessions_.find(session);
  if (it != sessions_.end() && !it->second->closing) reply(*it->second, msg);
}

// ---------------------------------------------------------------------------------------------
// Transactions.

bool Server::can_read(const Session& s) const { return !writer_ || *writer_ == s.id; }

bool Server::can_write(Session& s) {
  if (writer_ && *writer_ != s.id) return false;
  if (!readers_.empty())
    end_read_txns("session " + std::to_string(s.id) + " (uid " + std::to_string(s.cred.uid) + ") began to write");
  return true;
}

void Server::end_read_txns(const std::string& why) {
  for (uint64_t id : readers_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    it->second->txn = Session::Txn::NONE;
    it->second->txn_ended = "the read transaction was ended: " + why + " (a reader never holds a writer back; begin again for a consistent view)";
    spdlog::info("session {}: read transaction ended: {}", id, why);
  }
  readers_.clear();
}

// A write transaction whose session sent nothing for cfg_.txn_idle_ms is aborted: one stalled
// client must not hold every other writer, reader and clean-up.
void Server::end_idle_write() {
  if (!writer_ || !cfg_.txn_idle_ms) return;
  auto it = sessions_.find(*writer_);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  if (!s.queue.empty() || Clock::now() - s.last_request < std::chrono::milliseconds(cfg_.txn_idle_ms)) return;
  spdlog::warn("session {} '{}' (uid {}, pid {}): write transaction idle for {} ms: aborted", s.id, s.name, s.cred.uid,
               s.cred.pid, cfg_.txn_idle_ms);
  abort_write(s);
  s.txn_ended = "the transaction was aborted: no request for " + std::to_string(cfg_.txn_idle_ms) + " ms (lfpd --txn-idle-timeout-ms)";
}

std::string Server::holder() const {
  if (!writer_) return "";
  auto it = sessions_.find(*writer_);
  if (it == sessions_.end()) return "session " + std::to_string(*writer_);
  const Session& w = *it->second;
  const auto open_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - w.txn_since).count();
  return "session " + std::to_string(w.id) + " '" + w.name + "' (uid " + std::to_string(w.cred.uid) + ", pid " +
         std::to_string(w.cred.pid) + "), writing for " + std::to_string(open_ms) + " ms";
}

void Server::begin_write(Session& s, bool explicit_txn) {
  s.txn_since = Clock::now();
  writer_ = s.id;
  txn_ = std::make_unique<WriteTxn>(WriteTxn{s.id, explicit_txn, {}, {}});
  if (explicit_txn) s.txn = Session::Txn::WRITE;
}

// The engine's add and delete for each kind, in one place.
uint64_t Server::engine_add(ObjKind kind, policy::Policy& one) {
  switch (kind) {
    case ObjKind::PROVIDER: engine_.add_provider(std::move(one.providers.at(0))); break;
    case ObjKind::SUBLAYER: engine_.add_sublayer(std::move(one.sublayers.at(0))); break;
    case ObjKind::CALLOUT: engine_.add_callout(std::move(one.callouts.at(0))); break;
    case ObjKind::PROVIDER_CONTEXT: engine_.add_provider_context(std::move(one.provider_contexts.at(0))); break;
    case ObjKind::FILTER: return engine_.add_filter(std::move(one.filters.at(0)));
  }
  return 0;
}

void Server::engine_delete(ObjKind kind, const Guid& key) {
  switch (kind) {
    case ObjKind::FILTER: engine_.delete_filter(key); break;
    case ObjKind::CALLOUT: engine_.delete_callout(key); break;
    case ObjKind::PROVIDER_CONTEXT: engine_.delete_provider_context(key); break;
    case ObjKind::SUBLAYER: engine_.delete_sublayer(key); break;
    case ObjKind::PROVIDER: engine_.delete_provider(key); break;
  }
}

void Server::undo_to(WriteTxn& t, size_t mark) {
  while (t.undo.size() > mark) {
    Undo u = std::move(t.undo.back());
    t.undo.pop_back();
    if (u.added) {
      engine_delete(u.kind, u.key);
      owners_[u.kind].erase(u.key);
    } else {
      // The object as it was, with its run-time id (the engine keeps a filter's id when it is
      // free; callout and provider context ids are the engine's to assign).
      policy::Policy p;
      std::visit(
          [&](auto& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<T, Provider>) p.providers.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, Sublayer>) p.sublayers.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, Callout>) p.callouts.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, ProviderContext>) p.provider_contexts.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, Filter>) p.filters.push_back(std::move(o));
          },
          *u.object);
      engine_add(u.kind, p);
      owners_[u.kind][u.key] = u.owner;
    }
  }
}

// Writes what the transaction changed of the persistent policy: a row for each persistent object
// it added (the request's own text; the object as lfpd serializes it should there be none), and
// deletes the rows of the stored objects it removed. Nothing for the rest.
void Server::persist(WriteTxn& t) {
  std::vector<store::Record> upserts;
  std::vector<std::pair<store::Kind, std::string>> deletes;
  std::unordered_set<Guid> seen[std::size(stored_)];
  // The last change of each object decides; rows go in the order of those changes.
  for (auto u = t.undo.rbegin(); u != t.undo.rend(); ++u) {
    const size_t k = static_cast<size_t>(u->kind);
    // An add that was not persistent has no row to write (were the object re-added persistent
    // later, that later change writes it) and none to delete unless one is stored.
    if (u->added && !u->persistent && !stored_[k].count(u->key)) continue;
    const bool persistent = is_persistent(u->kind, u->key);
    if (!persistent && !stored_[k].count(u->key)) continue;
    if (!seen[k].insert(u->key).second) continue;
    if (persistent) {
      std::string body;
      if (u->added && !u->text.empty()) {
        body.assign(u->text);
      } else {
        json obj = object_json(u->kind, u->key);
        obj.erase("owner");
        body = obj.dump();
      }
      upserts.push_back({static_cast<store::Kind>(u->kind), u->key.str(), owners_[u->kind][u->key].uid, std::move(body)});
    } else {
      deletes.emplace_back(static_cast<store::Kind>(u->kind), u->key.str());
    }
  }
  if (upserts.empty() && deletes.empty()) return;
  std::reverse(upserts.begin(), upserts.end());
  std::reverse(deletes.begin(), deletes.end());
  store_->commit(upserts, deletes);
  for (const auto& r : upserts) stored_[static_cast<size_t>(r.kind)].insert(*Guid::parse(r.key));
  for (const auto& [kind, key] : deletes) stored_[static_cast<size_t>(kind)].erase(*Guid::parse(key));
}

bool Server::is_persistent(ObjKind kind, const Guid& key) const {
  switch (kind) {
    case ObjKind::PROVIDER: { auto* o = engine_.provider(key); return o && (o->flags & PERSISTENT); }
    case ObjKind::SUBLAYER: { auto* o = engine_.sublayer(key); return o && (o->flags & PERSISTENT); }
    case ObjKind::CALLOUT: { auto* o = engine_.callout(key); return o && (o->flags & PERSISTENT); }
    case ObjKind::PROVIDER_CONTEXT: { auto* o = engine_.provider_context(key); return o && (o->flags & PERSISTENT); }
    case ObjKind::FILTER: { auto* o = engine_.filter(key); return o && (o->flags & (PERSISTENT | BOOTTIME)); }
  }
  return false;
}

bool Server::has_subscribers(ObjKind kind) const {
  for (auto& [id, s] : sessions_)
    if (s->subscribed && s->sub_kinds.count(kind)) return true;
  return false;
}

// A committed policy is an enforced policy: the enforcer (the kernel's install) takes the engine as
// the transaction leaves it before the store commits; if either refuses, the transaction is undone
// in the engine and the enforcer is given the previous policy back.
void Server::commit_write(Session& s) {
  WriteTxn& t = *txn_;
  if (t.undo.empty() && !policy_change_deferred_) {  // nothing to enforce, store or announce
    ++txn_counts_.committed;
    abort_write(s, false);
    return;
  }
  auto refuse = [&](const std::string& why) {
    spdlog::error("commit of session {} refused: {}; rolling back", s.id, why);
    ++txn_counts_.refused;
    policy_change_deferred_ = true;  // (abort_write: the enforcer and observers see the old policy again)
    abort_write(s);
    throw Error(ErrorCode::TXN_ABORTED, why);
  };
  // A bulk load is enforced whole (no list of changes): the enforcer is not handed a million ids.
  const bool bulk = t.undo.size() > kInPlaceChangesMax;
  FilterChanges filter_changes;
  filter_changes.other = policy_change_deferred_;
  for (const Undo& u : bulk || filter_changes.other ? std::span<const Undo>{} : std::span<const Undo>{t.undo}) {
    if (u.kind != ObjKind::FILTER) filter_changes.other = true;
    else if (u.added) filter_changes.added.push_back(engine_.filter(u.key) ? engine_.filter(u.key)->id : 0);
    else if (auto* f = u.object ? std::get_if<Filter>(u.object.get()) : nullptr) filter_changes.deleted.push_back(f->id);
    else filter_changes.other = true;
  }
  if (auto why = enforce(bulk ? nullptr : &filter_changes)) refuse("the kernel cannot enforce this policy: " + *why);
  try {
    persist(t);
  } catch (const std::exception& e) {
    refuse(std::string("the store could not commit: ") + e.what());
  }
  if (enforcer_) clear_degraded("kernel");
  policy_change_deferred_ = false;
  std::vector<json> changes;
  for (auto& u : t.undo)
    if (!u.body.is_null())
      changes.push_back({{"event", "change"}, {"change", u.added ? "ADD" : "DELETE"}, {"kind", kind_name(u.kind)},
                         {"object", std::move(u.body)}});
  txn_.reset();
  writer_.reset();
  s.txn = Session::Txn::NONE;
  ++txn_counts_.committed;
  run_policy_observers();
  notify_changes(changes);
}

void Server::policy_changed() {
  if (txn_) {
    policy_change_deferred_ = true;
    return;
  }
  enforce_or_degrade();
  run_policy_observers();
}

void Server::run_policy_observers() {
  for (auto& cb : policy_observers_) {
    try {
      cb(engine_);
    } catch (const std::exception& e) {
      spdlog::error("policy observer: {}", e.what());
    }
  }
}

std::optional<std::string> Server::enforce(const FilterChanges* changes) {
  if (!enforcer_) return std::nullopt;
  try {
    enforcer_(engine_, changes);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
  return std::nullopt;
}

void Server::enforce_or_degrade() {
  if (auto why = enforce()) set_degraded("kernel", *why);
  else if (enforcer_) clear_degraded("kernel");
}

void Server::set_degraded(const std::string& part, const std::string& why) {
  auto [it, added] = degraded_.try_emplace(part, why);
  if (!added && it->second == why) return;
  it->second = why;
  spdlog::error("degraded: {}: {}", part, why);
  tell_degraded(part, why);
}

void Server::clear_degraded(const std::string& part) {
  if (!degraded_.erase(part)) return;
  spdlog::info("{}: enforcing again", part);
  tell_degraded(part, std::nullopt);
}

void Server::tell_degraded(const std::string& part, const std::optional<std::string>& why) {
  for (auto& cb : degraded_observers_) {
    try {
      cb(part, why);
    } catch (const std::exception& e) {
      spdlog::error("degraded state observer: {}", e.what());
    }
  }
}

std::map<std::string, std::string> Server::unenforced_layers() const {
  std::map<std::string, std::string> out;
  if (!layer_check_) return out;
  for (const LayerInfo& l : all_layers()) {
    auto why = layer_check_(l.id);
    if (!why) continue;
    FilterTemplate t;
    t.layer = l.id;
    for (const Filter* f : engine_.filters(t))
      if (!(f->flags & DISABLED)) {
        out.emplace(std::string(l.name), *why);
        break;
      }
  }
  return out;
}

// What an add or apply answers besides its result: the filters it added at layers nothing enforces
// here (one warning per layer).
std::vector<std::string> Server::layer_warnings(const std::vector<Guid>& filters) const {
  std::vector<std::string> out;
  if (!layer_check_) return out;
  std::map<LayerId, std::pair<std::optional<std::string>, std::vector<Guid>>> by_layer;
  std::vector<LayerId> order;
  for (const Guid& key : filters) {
    const Filter* f = engine_.filter(key);
    if (!f || (f->flags & DISABLED)) continue;
    auto [it, first] = by_layer.try_emplace(f->layer);
    if (first) {
      it->second.first = layer_check_(f->layer);
      order.push_back(f->layer);
    }
    if (it->second.first) it->second.second.push_back(key);
  }
  for (LayerId layer : order) {
    const auto& [why, keys] = by_layer[layer];
    if (keys.empty()) continue;
    const std::string name(layer_info(layer).name);
    out.push_back(keys.size() == 1 ? "filter " + keys[0].str() + " at " + name + " is accepted but not enforced: " + *why
                                   : std::to_string(keys.size()) + " filters at " + name +
                                         " are accepted but not enforced: " + *why);
  }
  return out;
}

void Server::abort_write(Session& s, bool counted) {
  if (txn_ && counted) ++txn_counts_.aborted;
  if (txn_) undo_to(*txn_, 0);
  txn_.reset();
  writer_.reset();
  s.txn = Session::Txn::NONE;
  if (std::exchange(policy_change_deferred_, false)) policy_changed();
}

void Server::cleanup_dynamic(uint64_t session_id) {
  // Filters first, then what they may reference.
  static constexpr ObjKind order[] = {ObjKind::FILTER, ObjKind::CALLOUT, ObjKind::PROVIDER_CONTEXT, ObjKind::SUBLAYER,
                                      ObjKind::PROVIDER};
  std::vector<json> changes;
  size_t n = 0;
  for (ObjKind k : order) {
    std::vector<Guid> keys;
    for (auto& [key, o] : owners_[k])
      if (o.dynamic && o.session == session_id) keys.push_back(key);
    for (const Guid& key : keys) {
      json obj = object_json(k, key);
      try {
        engine_delete(k, key);
        owners_[k].erase(key);
        changes.push_back({{"event", "change"}, {"change", "DELETE"}, {"kind", kind_name(k)}, {"object", obj}});
        ++n;
      } catch (const Error& e) {
        spdlog::error("session {}: cannot delete dynamic {} {}: {}", session_id, kind_name(k), key.str(), e.what());
      }
    }
  }
  if (n) {
    spdlog::info("session {}: deleted its {} dynamic objects", session_id, n);
    policy_changed();
  }
  notify_changes(changes);
}

void Server::notify_changes(const std::vector<json>& changes) {
  for (const json& c : changes) {
    if (c["object"].is_null()) continue;  // nobody was subscribed when it happened
    ObjKind k = *kind_from_string(c["kind"].get<std::string>());
    for (auto& [id, s] : sessions_)
      if (s->subscribed && s->sub_kinds.count(k)) reply(*s, c);
  }
}

// ---------------------------------------------------------------------------------------------
// Objects.

json Server::object_json(ObjKind kind, const Guid& key) const {
  json j;
  switch (kind) {
    case ObjKind::PROVIDER: if (auto* o = engine_.provider(key)) j = policy::to_json(*o); break;
    case ObjKind::SUBLAYER: if (auto* o = engine_.sublayer(key)) j = policy::to_json(*o); break;
    case ObjKind::CALLOUT: if (auto* o = engine_.callout(key)) j = policy::to_json(*o); break;
    case ObjKind::PROVIDER_CONTEXT: if (auto* o = engine_.provider_context(key)) j = policy::to_json(*o); break;
    case ObjKind::FILTER: if (auto* o = engine_.filter(key)) j = policy::to_json(*o); break;
  }
  if (j.is_null()) return j;
  auto ok = owners_.find(kind);
  if (ok != owners_.end()) {
    auto it = ok->second.find(key);
    if (it != ok->second.end()) {
      json owner = {{"uid", it->second.uid}, {"dynamic", it->second.dynamic}};
      auto sit = sessions_.find(it->second.session);
      owner["session"] = sit != sessions_.end() ? json(sit->second->key.str()) : json();
      j["owner"] = owner;
    }
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// Requests (docs/protocol.md): one table of ops, lfpd's own (ops_core.cpp) and its services', each
// with the rule of who may run it and when.

void Server::register_op(std::string name, OpRule rule, OpRun run) {
  const auto [it, added] = ops_.try_emplace(std::move(name), Op{rule, std::move(run)});
  if (!added) throw std::logic_error("op '" + it->first + "' is registered twice");
}

void Server::add_op(std::string name, Role min_role, OpHandler handler) {
  register_op(std::move(name), OpRule{min_role},
              [handler = std::move(handler)](Session& s, const Request& r) -> std::optional<OpResult> {
                return OpResult{handler(OpContext{s.id, s.role, s.cred}, r.req)};
              });
}

void Server::need_role(const Session& s, Role r, std::string_view what) const {
  if (s.role < r)
    throw Error(ErrorCode::ACCESS_DENIED, std::string(what) + " needs the " + std::string(role_name(r)) + " role; uid " +
                                              std::to_string(s.cred.uid) + " is " + std::string(role_name(s.role)));
}

void Server::check_access(const Session& s, std::string_view op, const OpRule& rule) const {
  if (!s.hello && !rule.before_hello) throw Error(ErrorCode::INVALID_PARAMETER, "open the session with 'hello' first");
  if (rule.min_role != Role::NONE) need_role(s, Role::READER, op);  // (said before anything else of the op)
  // A transaction lfpd ended (idle, or a reader that yielded to a writer): every request in it fails
  // and says why, until the client aborts, commits or begins again (never applied outside it).
  if (!s.txn_ended.empty() && !rule.in_ended_txn) throw Error(ErrorCode::TXN_ABORTED, s.txn_ended);
  need_role(s, rule.min_role, op);
}

bool Server::handle(Session& s, const Request& r) {
  const auto op_name = protocol::string_member(r.req, "op");
  if (!op_name) protocol::missing_member("op", "the operation's name");
  const auto found = ops_.find(*op_name);
  const Op* op = found != ops_.end() ? &found->second : nullptr;
  const OpRule rule = op ? op->rule : OpRule{};  // an unknown op is checked as a read is, then refused
  check_access(s, *op_name, rule);
  if (rule.lock == OpLock::READ && s.txn == Session::Txn::NONE && !can_read(s)) return false;
  if (!op) throw Error(ErrorCode::INVALID_PARAMETER, "unknown op '" + *op_name + "'");
  std::optional<OpResult> result = rule.lock == OpLock::WRITE ? run_write(s, r, op->run) : op->run(s, r);
  if (!result) return false;  // it waits for the transaction lock
  reply_ok(s, r.req.value("id", json()), std::move(*result));
  return true;
}

std::optional<Server::OpResult> Server::run_write(Session& s, const Request& r, const OpRun& run) {
  if (s.txn == Session::Txn::READ) throw Error(ErrorCode::INCOMPATIBLE_TXN, "the session's transaction is read-only");
  const bool implicit = s.txn == Session::Txn::NONE;
  if (implicit) {
    if (!can_write(s)) return std::nullopt;
    begin_write(s, false);
  }
  const size_t mark = txn_->undo.size();
  std::optional<OpResult> result;
  try {
    result = run(s, r);
  } catch (...) {
    // A failed call changes nothing, and does not spoil an explicit transaction (as in WFP).
    undo_to(*txn_, mark);
    if (implicit) abort_write(s);
    throw;
  }
  const std::vector<std::string> warnings = layer_warnings(unenforced_adds(mark));
  if (implicit) commit_write(s);
  if (warnings.empty()) return result;
  if (auto* text = std::get_if<JsonText>(&*result)) {
    text->text.pop_back();  // the result's closing brace
    text->text += ",\"warnings\":" + wire::to_json_text(json(warnings), true) + "}";
  } else {
    std::get<json>(*result)["warnings"] = warnings;
  }
  return result;
}

void Server::reply_ok(Session& s, const json& id, OpResult result) {
  if (auto* text = std::get_if<JsonText>(&result)) {
    // {"id": ..., "ok": true, "result": <text>}: the id as the client sent it.
    std::string msg = "{\"id\":" + wire::to_json_text(id, true) + ",\"ok\":true,\"result\":";
    msg.reserve(msg.size() + text->text.size() + 1);
    msg += text->text;
    msg += '}';
    reply_text(s, id, msg);
    return;
  }
  json msg = json::object();  // (an initializer list would copy the result)
  msg["id"] = id;
  msg["ok"] = true;
  msg["result"] = std::move(std::get<json>(result));
  reply(s, msg);
}

// The filters added since the transaction's change `from` at layers nothing enforces here: what
// layer_warnings words (each layer checked once, not each filter looked up).
std::vector<Guid> Server::unenforced_adds(size_t from) const {
  std::vector<Guid> keys;
  if (!layer_check_) return keys;
  std::vector<int8_t> unenforced(kLayerCount, -1);  // -1: not checked yet
  for (size_t i = from; i < txn_->undo.size(); ++i) {
    const Undo& u = txn_->undo[i];
    if (!u.added || u.kind != ObjKind::FILTER) continue;
    int8_t& known = unenforced[static_cast<size_t>(u.layer)];
    if (known < 0) known = layer_check_(u.layer).has_value();
    if (known) keys.push_back(u.key);
  }
  return keys;
}

}  // namespace lfp::daemon
