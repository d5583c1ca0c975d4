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
#include "lfp/protocol/log_limit.hpp"
#include "lfp/protocol/request.hpp"
#include "lfp/store/files.hpp"

namespace lfp::daemon {

using nlohmann::json;

namespace {

constexpr std::string_view kKindNames[] = {"provider", "sublayer", "callout", "provider_context", "filter"};
constexpr std::string_view kKindPlural[] = {"providers", "sublayers", "callouts", "provider_contexts", "filters"};
constexpr size_t kMaxQueued = 4096;             // requests a client may have waiting
constexpr size_t kMaxOutput = 256u << 20;       // bytes a slow client may leave unread
constexpr uint64_t kMaxTxnWaitMs = 3'600'000;  // an hour: a wait longer than that is a mistake
constexpr uint64_t kMaxFirst = UINT32_MAX;      // apply's "first" indexes: more objects than a policy has

std::string_view plural(ObjKind k) { return kKindPlural[static_cast<size_t>(k)]; }

// A request-level failure: code (WFP error name or protocol code) and message.
struct Fail {
  std::string code, message;
};
[[noreturn]] void fail(std::string code, std::string message) { throw Fail{std::move(code), std::move(message)}; }

// A member holding a GUID, nullopt when absent (`at`: the path of the object holding it, as for
// protocol::string_member); guid_arg: one that is required.
std::optional<Guid> guid_member(const json& req, std::string_view name, std::string_view at = {}) {
  const auto text = protocol::string_member(req, name, at);
  if (!text) return std::nullopt;
  const auto g = Guid::parse(*text);
  if (!g) fail("INVALID_PARAMETER", std::string(at) + "/" + std::string(name) + ": not a GUID: \"" + protocol::log_safe(*text, 64) + "\"");
  return g;
}

Guid guid_arg(const json& req, std::string_view name) {
  const auto g = guid_member(req, name);
  if (!g) protocol::missing_member(name, "a GUID");
  return *g;
}

ObjKind kind_arg(const json& req) {
  const auto text = protocol::string_member(req, "kind");
  if (!text) protocol::missing_member("kind", "provider, sublayer, callout, provider_context or filter");
  const auto k = kind_from_string(*text);
  if (!k)
    fail("INVALID_PARAMETER", "/kind: unknown kind \"" + protocol::log_safe(*text, 64) +
                                  "\" (provider, sublayer, callout, provider_context or filter)");
  return *k;
}

std::string_view role_name(Role r) {
  switch (r) {
    case Role::ADMIN: return "admin";
    case Role::WRITER: return "writer";
    case Role::READER: return "reader";
    default: return "none";
  }
}

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
std::optional<ObjKind> kind_from_string(std::string_view s) {
  for (size_t i = 0; i < std::size(kKindNames); ++i)
    if (kKindNames[i] == s || kKindPlural[i] == s) return static_cast<ObjKind>(i);
  return std::nullopt;
}

// A request as queued: its members as JSON, except "policy" and "object", which the write operations
// read straight from the parsed frame (and whose text the store keeps).
// A request as queued: being read (a large frame, on the reader's worker) until process() takes it.
struct Server::Request {
  RequestReader::Pending pending;
  json req;
  std::shared_ptr<policy::JsonDoc> doc;
  mutable std::optional<policy::Policy> policy;  // op "apply": its policy, read by the reader
  std::exception_ptr policy_error;
  const policy::JsonValue* member(std::string_view name) const { return doc->root().find(name); }
  // The request read (waiting for the worker if it is not yet); false: not a request, and why.
  bool take(std::string& error) {
    if (doc) return true;
    ReadRequest& r = pending.get();
    req = std::move(r.req);
    error = std::move(r.error);
    if (!error.empty()) return false;
    doc = std::move(r.doc);
    policy = std::move(r.policy);
    policy_error = r.policy_error;
    return true;
  }
};

struct Server::Session {
  uint64_t id = 0;
  int fd = -1;
  ucred cred{};
  Role role = Role::NONE;
  Guid key;
  std::string name;
  bool hello = false;
  bool dynamic = false;
  uint32_t txn_wait_ms = 0;
  std::optional<Guid> provider;
  wire::FrameReader reader;
  std::string out;
  size_t out_off = 0;
  std::deque<Request> queue;                      // requests in arrival order
  std::optional<Clock::time_point> deadline;      // the head request waits for the lock until then
  enum class Txn { NONE, READ, WRITE } txn = Txn::NONE;
  Clock::time_point txn_since{}, last_request{};
  Clock::time_point last_read{};   // the last bytes from the client
  Clock::time_point frame_since{}; // the first byte of a request not yet whole (epoch: none)
  std::string txn_ended;  // why lfpd ended this session's transaction (told at its next request)
  bool subscribed = false;
  std::set<ObjKind> sub_kinds;
  bool closing = false;
};

// One change of a write transaction, in order: what undoes it, and what commit persists and announces.
struct Server::Undo {
  bool added;        // true: undo deletes the object; false: undo restores `object`
  ObjKind kind;
  Guid key;
  // The change notification's object (with "owner") if someone listened when the change was made,
  // else null. Commit announces the non-null ones.
  json body;
  Owner owner;
  std::string_view text;  // a persistent added object's request text (in the transaction's texts), if any
  // A deleted object as the engine held it, run-time ids included, to be restored exactly (behind a
  // pointer: a transaction of a million adds keeps a million of these records).
  using Deleted = std::variant<Provider, Sublayer, Callout, ProviderContext, Filter>;
  std::unique_ptr<Deleted> object;
  // An added object as it was added, so that a commit of a million adds need not look each one up:
  bool persistent = false;  // PERSISTENT or BOOTTIME
  LayerId layer{};          // a filter's layer
};

struct Server::WriteTxn {
  uint64_t session;
  bool explicit_txn;
  std::vector<Undo> undo;                              // one entry per change, in order
  std::deque<std::string> texts;  // the request texts of the persistent objects added, for the store
};

Server::Server(Config cfg)
    : cfg_(std::move(cfg)),
      admin_gid_(group_id(cfg_.admin_group, "admin")),
      writer_gid_(group_id(cfg_.writer_group, "writer")) {}

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
      policy::Policy p = policy::object_from_json(plural(kind), doc->root(), "", {"id", "effective_weight", "owner"});
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
    } catch (const Fail& f) {
      reply_error(s, req.value("id", json()), f.code, f.message);
      done = true;
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

void Server::add_op(std::string name, Role min_role, OpHandler handler) {
  extra_ops_[std::move(name)] = {min_role, std::move(handler)};
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
    abort_write(s);
    return;
  }
  auto refuse = [&](const std::string& why) {
    spdlog::error("commit of session {} refused: {}; rolling back", s.id, why);
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

void Server::abort_write(Session& s) {
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

namespace {
// The keys an object references, with their kinds (for lifetime checks).
std::vector<std::pair<ObjKind, Guid>> references(const policy::Policy& p) {
  std::vector<std::pair<ObjKind, Guid>> out;
  auto prov = [&](const std::optional<Guid>& g) { if (g) out.emplace_back(ObjKind::PROVIDER, *g); };
  for (auto& x : p.sublayers) prov(x.provider);
  for (auto& x : p.callouts) prov(x.provider);
  for (auto& x : p.provider_contexts) prov(x.provider);
  for (auto& f : p.filters) {
    prov(f.provider);
    if (f.sublayer) out.emplace_back(ObjKind::SUBLAYER, *f.sublayer);
    if (is_callout(f.action.type)) out.emplace_back(ObjKind::CALLOUT, f.action.callout_key);
    if (f.provider_context) out.emplace_back(ObjKind::PROVIDER_CONTEXT, *f.provider_context);
  }
  return out;
}
uint32_t flags_of(const policy::Policy& p) {
  if (!p.providers.empty()) return p.providers[0].flags;
  if (!p.sublayers.empty()) return p.sublayers[0].flags;
  if (!p.callouts.empty()) return p.callouts[0].flags;
  if (!p.provider_contexts.empty()) return p.provider_contexts[0].flags;
  return p.filters.empty() ? 0 : p.filters[0].flags;
}
}  // namespace

json Server::op_add(Session& s, ObjKind kind, const Request& r) {
  const policy::JsonValue* obj = r.member("object");
  if (!obj || obj->is_null()) protocol::missing_member("object", "the object to add, as in a policy file");
  if (!obj->is_object()) fail("INVALID_PARAMETER", "/object: must be an object, not " + protocol::log_safe(obj->text(), 64));
  policy::Policy p;
  try {
    // Output-only members are ignored ("owner" too: what `get` returns can be added back).
    p = policy::object_from_json(plural(kind), *obj, "/object", {"id", "effective_weight", "owner"});
  } catch (const policy::PolicyError& e) {
    fail("INVALID_PARAMETER", e.what());
  }
  uint64_t id = 0;
  const Guid key = add_parsed(s, kind, p, obj->text(), &id);
  json result = {{"key", key.str()}};
  if (kind == ObjKind::FILTER) result["id"] = id;
  return result;
}

// Adds the one object `p` holds (of `kind`) inside the current write transaction.
Guid Server::add_parsed(Session& s, ObjKind kind, policy::Policy& p, std::string_view text, uint64_t* filter_id) {
  const uint32_t flags = flags_of(p);
  if (s.dynamic && (flags & (PERSISTENT | BOOTTIME)))
    throw Error(ErrorCode::DYNAMIC_SESSION_IN_PROGRESS, "a dynamic session cannot add persistent or boot-time objects");
  // WFP's lifetimes: a dynamic object may be referenced only by its own session's objects.
  for (const auto& [rk, rkey] : references(p)) {
    auto& owners = owners_[rk];
    auto it = owners.find(rkey);
    if (it != owners.end() && it->second.dynamic && !(s.dynamic && it->second.session == s.id))
      throw Error(ErrorCode::LIFETIME_MISMATCH, std::string(kind_name(rk)) + " " + rkey.str() +
                                                    " is dynamic in another session; only that session may reference it");
  }
  // Give the object its key now (nil means "generate"), so the daemon knows what was added.
  Guid key;
  auto take = [&](Guid& k) {
    if (k.is_nil()) k = Guid::generate();
    key = k;
  };
  switch (kind) {
    case ObjKind::PROVIDER: take(p.providers.at(0).key); break;
    case ObjKind::SUBLAYER: take(p.sublayers.at(0).key); break;
    case ObjKind::CALLOUT: take(p.callouts.at(0).key); break;
    case ObjKind::PROVIDER_CONTEXT: take(p.provider_contexts.at(0).key); break;
    case ObjKind::FILTER: take(p.filters.at(0).key); break;
  }
  auto& undo = txn_->undo;
  if (undo.size() == undo.capacity()) undo.reserve(std::max<size_t>(64, 2 * undo.capacity()));  // recording the add cannot fail once the engine has it
  // The store keeps a persistent object as the request gave it: its text, kept until the commit.
  if (!(flags & (PERSISTENT | BOOTTIME))) text = {};
  else if (!text.empty()) text = txn_->texts.emplace_back(text);
  const LayerId layer = kind == ObjKind::FILTER ? p.filters.at(0).layer : LayerId{};
  // Straight into the engine: its errors keep WFP's codes (SUBLAYER_NOT_FOUND, ...).
  const uint64_t id = engine_add(kind, p);  // (a filter's id)
  if (filter_id) *filter_id = id;
  Owner owner{s.cred.uid, s.id, s.dynamic};
  owners_[kind][key] = owner;
  // The notification's object only when someone listens (building it costs more than the add).
  undo.push_back(Undo{true, kind, key, has_subscribers(kind) ? object_json(kind, key) : json(), owner, text, {},
                      (flags & (PERSISTENT | BOOTTIME)) != 0, layer});
  return key;
}

void Server::check_may_delete(const Session& s, ObjKind kind, const Guid& key, bool force) const {
  json obj = object_json(kind, key);
  if (obj.is_null()) return;  // the engine reports NOT_FOUND
  if (s.role != Role::ADMIN) {
    auto ok = owners_.find(kind);
    bool own = ok != owners_.end() && ok->second.count(key) && ok->second.at(key).uid == s.cred.uid;
    if (s.role != Role::WRITER || !own)
      throw Error(ErrorCode::ACCESS_DENIED, "only its owner or an admin may delete " + std::string(kind_name(kind)) + " " + key.str());
  }
  if (obj.contains("provider") && obj["provider"].is_string() && s.provider) {
    auto p = Guid::parse(obj["provider"].get<std::string>());
    if (p && *p != *s.provider && !(s.role == Role::ADMIN && force))
      throw Error(ErrorCode::ACCESS_DENIED, std::string(kind_name(kind)) + " " + key.str() + " belongs to provider " +
                                                p->str() + ", not to this session's provider (an admin may pass force)");
  }
}

void Server::op_delete(Session& s, ObjKind kind, const Guid& key, bool force) {
  check_may_delete(s, kind, key, force);
  Undo u{false, kind, key, has_subscribers(kind) ? object_json(kind, key) : json(), Owner{}, {}, {}};
  if (auto it = owners_[kind].find(key); it != owners_[kind].end()) u.owner = it->second;
  switch (kind) {
    case ObjKind::PROVIDER: if (auto* o = engine_.provider(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
    case ObjKind::SUBLAYER: if (auto* o = engine_.sublayer(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
    case ObjKind::CALLOUT: if (auto* o = engine_.callout(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
    case ObjKind::PROVIDER_CONTEXT:
      if (auto* o = engine_.provider_context(key)) u.object = std::make_unique<Undo::Deleted>(*o);
      break;
    case ObjKind::FILTER: if (auto* o = engine_.filter(key)) u.object = std::make_unique<Undo::Deleted>(*o); break;
  }
  auto& undo = txn_->undo;
  if (undo.size() == undo.capacity()) undo.reserve(std::max<size_t>(64, 2 * undo.capacity()));
  engine_delete(kind, key);  // NOT_FOUND, IN_USE, ... before anything changed
  owners_[kind].erase(key);
  undo.push_back(std::move(u));
}

std::string Server::op_apply(Session& s, const Request& r) {
  const policy::JsonValue* policy_json = r.member("policy");
  if (!policy_json || policy_json->is_null()) protocol::missing_member("policy", "the policy to apply");
  // (Errors inside it name their path in the policy, as in its file: "/filters/3/weight: ...".)
  if (!policy_json->is_object()) fail("INVALID_PARAMETER", "/policy: must be an object, not " + protocol::log_safe(policy_json->text(), 64));
  // "first": {"filters": N, ...}: this request is a piece of a larger policy whose objects of a kind
  // start at N, so that errors name their place in the whole (lfp sends a large policy in pieces).
  const policy::JsonValue* first_index = r.member("first");
  if (first_index && first_index->is_null()) first_index = nullptr;
  if (first_index && !first_index->is_object())
    fail("INVALID_PARAMETER", "/first: must be an object, not " + protocol::log_safe(first_index->text(), 64));
  auto base_of = [&](std::string_view list) {
    uint64_t base = 0;
    const policy::JsonValue* b = first_index ? first_index->find(list) : nullptr;
    if (b && !b->is_null() && (!b->get_uint(base) || base > kMaxFirst))
      fail("INVALID_PARAMETER", "/first/" + std::string(list) + ": must be an integer 0.." + std::to_string(kMaxFirst) +
                                    ", not " + protocol::log_safe(b->text(), 64));
    return base;
  };
  policy::Policy p;
  try {
    // (Read with the request, on the reader's worker for a large one.) It checks the whole policy
    // first, and names the path.
    if (r.policy_error) std::rethrow_exception(r.policy_error);
    p = r.policy ? std::move(*std::exchange(r.policy, std::nullopt)) : policy::policy_from_json(*policy_json);
  } catch (const policy::PolicyError& e) {
    // "/filters/3/..." of the piece is "/filters/(first + 3)/..." of the policy.
    const std::string& path = e.path();
    const size_t list_end = path.find('/', 1), index_end = path.find('/', list_end + 1);
    if (!first_index || list_end == std::string::npos) throw;
    const std::string list = path.substr(1, list_end - 1), index = path.substr(list_end + 1, index_end - list_end - 1);
    if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) throw;
    throw policy::PolicyError("/" + list + "/" + std::to_string(base_of(list) + std::stoull(index)) +
                                  (index_end == std::string::npos ? "" : path.substr(index_end)),
                              e.reason());
  }
  // Then each object through add_parsed, so ownership, lifetimes and notifications are those of add.
  // The result, {"added": [{"key", "id"?}...]}, is written as text (it can hold many thousands).
  std::string out = "{\"added\":[";
  out.reserve(out.size() + 64 * (p.providers.size() + p.sublayers.size() + p.callouts.size() +
                                 p.provider_contexts.size() + p.filters.size()));
  bool first = true;
  auto add_all = [&](ObjKind kind, auto& objects, auto member) {
    const policy::JsonValue* list = policy_json->find(plural(kind));
    const uint64_t base = base_of(plural(kind));
    // A bulk load grows the map once, and a policy sent in pieces doubles it, not once a piece (a
    // reserve to the exact size would rehash every owner at every piece).
    auto& owners = owners_[kind];
    if (const size_t need = owners.size() + objects.size(); need > owners.bucket_count() * owners.max_load_factor())
      owners.reserve(std::max(need, 2 * owners.size()));
    for (size_t j = 0; j < objects.size(); ++j) {
      policy::Policy one;
      (one.*member).push_back(std::move(objects[j]));
      uint64_t id = 0;
      Guid key;
      try {
        key = add_parsed(s, kind, one, (*list)[j].text(), &id);
      } catch (const Fail& f) {
        fail(f.code, "/" + std::string(plural(kind)) + "/" + std::to_string(base + j) + ": " + f.message);
      } catch (const Error& e) {
        throw Error(e.code(), "/" + std::string(plural(kind)) + "/" + std::to_string(base + j) + ": " + e.detail());
      }
      out += first ? "{\"key\":\"" : ",{\"key\":\"";
      first = false;
      out += key.str();
      out += '"';
      if (kind == ObjKind::FILTER) {
        out += ",\"id\":";
        out += std::to_string(id);
      }
      out += '}';
    }
  };
  add_all(ObjKind::PROVIDER, p.providers, &policy::Policy::providers);
  add_all(ObjKind::SUBLAYER, p.sublayers, &policy::Policy::sublayers);
  add_all(ObjKind::CALLOUT, p.callouts, &policy::Policy::callouts);
  add_all(ObjKind::PROVIDER_CONTEXT, p.provider_contexts, &policy::Policy::provider_contexts);
  add_all(ObjKind::FILTER, p.filters, &policy::Policy::filters);
  out += "]}";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reads.

std::string Server::op_enum(const json& req) const {
  const ObjKind kind = kind_arg(req);
  static const json no_template = json::object();
  const json* given_tmpl = protocol::object_member(req, "template");
  const json& tmpl = given_tmpl ? *given_tmpl : no_template;
  size_t offset = protocol::uint_member(req, "offset", 0, SIZE_MAX >> 1);
  size_t limit = protocol::uint_member(req, "limit", protocol::kDefaultPage, protocol::kMaxPage);
  const auto layer_name = protocol::string_member(tmpl, "layer", "/template");
  std::vector<Guid> keys;
  if (kind == ObjKind::FILTER) {
    FilterTemplate t;
    std::optional<LayerId> layer;
    if (layer_name) {
      layer = layer_from_string(*layer_name);
      if (!layer) fail("INVALID_PARAMETER", "/template/layer: unknown layer \"" + protocol::log_safe(*layer_name, 64) + "\"");
      t.layer = layer;
    }
    t.provider = guid_member(tmpl, "provider", "/template");
    t.sublayer = guid_member(tmpl, "sublayer", "/template");
    if (const auto action = protocol::string_member(tmpl, "action", "/template")) {
      t.action = action_type_from_string(*action);
      if (!t.action) fail("INVALID_PARAMETER", "/template/action: unknown action type \"" + protocol::log_safe(*action, 64) + "\"");
    }
    if (const json* flags = protocol::array_member(tmpl, "flags", "/template"))
      for (size_t i = 0; i < flags->size(); ++i) {
        const auto flag = flags->at(i).is_string() ? flag_from_string(flags->at(i).get_ref<const std::string&>()) : std::nullopt;
        if (!flag)
          fail("INVALID_PARAMETER", "/template/flags/" + std::to_string(i) + ": must be a flag's name, not " +
                                        protocol::log_safe(flags->at(i).dump(), 64));
        t.flags_all_set |= *flag;
      }
    // "Filters that would match these values" (FWPM_FILTER_ENUM_TEMPLATE0's conditions).
    std::unique_ptr<policy::Request> values;
    if (const json* given_values = protocol::object_member(tmpl, "values", "/template")) {
      if (!layer) fail("INVALID_PARAMETER", "/template/values needs /template/layer");
      values = std::make_unique<policy::Request>();
      try {
        policy::parse_request(json{{"layer", *layer_name}, {"values", *given_values}}, *values);
      } catch (const policy::PolicyError& e) {  // (its paths are the template's)
        fail("INVALID_PARAMETER", "/template" + e.path() + ": " + e.reason());
      }
    }
    for (const Filter* f : engine_.filters(t))
      if (!values || conditions_match(f->conditions, values->values)) keys.push_back(f->key);
  } else {
    const std::optional<Guid> provider = guid_member(tmpl, "provider", "/template");
    auto want = [&](const std::optional<Guid>& p) { return !provider || p == provider; };
    switch (kind) {
      case ObjKind::PROVIDER:
        for (auto* o : engine_.providers()) if (!provider || o->key == *provider) keys.push_back(o->key);
        break;
      case ObjKind::SUBLAYER: for (auto* o : engine_.sublayers()) if (want(o->provider)) keys.push_back(o->key); break;
      case ObjKind::CALLOUT:
        for (auto* o : engine_.callouts()) {
          if (!want(o->provider)) continue;
          if (layer_name && layer_info(o->applicable_layer).name != *layer_name) continue;
          keys.push_back(o->key);
        }
        break;
      case ObjKind::PROVIDER_CONTEXT:
        for (auto* o : engine_.provider_contexts()) if (want(o->provider)) keys.push_back(o->key);
        break;
      default: break;
    }
  }
  // A page ends early at wire::kPageBytes (10000 filters of many conditions could be too large for a frame).
  std::string out = "{\"objects\":[";
  size_t i = offset;
  for (; i < keys.size() && i < offset + limit && (i == offset || out.size() < wire::kPageBytes); ++i) {
    if (i > offset) out += ',';
    wire::append_json(out, object_json(kind, keys[i]), true);
  }
  out += "],\"total\":" + std::to_string(keys.size()) + ",\"next_offset\":" + (i < keys.size() ? std::to_string(i) : "null") + "}";
  return out;
}

json Server::op_state(bool with_objects) const {
  json j;
  for (ObjKind k : {ObjKind::PROVIDER, ObjKind::SUBLAYER, ObjKind::CALLOUT, ObjKind::PROVIDER_CONTEXT}) {
    std::vector<Guid> keys;
    switch (k) {
      case ObjKind::PROVIDER: for (auto* o : engine_.providers()) keys.push_back(o->key); break;
      case ObjKind::SUBLAYER: for (auto* o : engine_.sublayers()) keys.push_back(o->key); break;
      case ObjKind::CALLOUT: for (auto* o : engine_.callouts()) keys.push_back(o->key); break;
      default: for (auto* o : engine_.provider_contexts()) keys.push_back(o->key); break;
    }
    j[std::string(kind_name(k)) + "_count"] = keys.size();
    if (!with_objects) continue;  // (the client pages them with enum)
    json arr = json::array();
    for (const Guid& key : keys) arr.push_back(object_json(k, key));
    j[std::string(plural(k))] = std::move(arr);
  }
  j["filter_count"] = engine_.filter_count();
  // The first kMaxPage sessions (a reply of more could be too large for a frame), and how many there are.
  json sessions = json::array();
  size_t session_count = 0;
  for (auto& [id, s] : sessions_)
    if (s->hello && session_count++ < protocol::kMaxPage)
      sessions.push_back({{"key", s->key.str()}, {"name", s->name}, {"uid", s->cred.uid}, {"pid", s->cred.pid},
                          {"dynamic", s->dynamic}, {"role", role_name(s->role)}});
  j["sessions"] = std::move(sessions);
  j["session_count"] = session_count;
  j["enforcement"] = {{"degraded", degraded_}, {"unenforced_layers", unenforced_layers()}};
  return j;
}

// ---------------------------------------------------------------------------------------------
// Requests (docs/protocol.md).

bool Server::handle(Session& s, const Request& request) {
  const json& req = request.req;
  const json id = req.value("id", json());
  const auto op_member = protocol::string_member(req, "op");
  if (!op_member) protocol::missing_member("op", "the operation's name");
  const std::string& op = *op_member;
  auto ok = [&](json result = json::object()) {
    json msg = json::object();  // (an initializer list would copy the result)
    msg["id"] = id;
    msg["ok"] = true;
    msg["result"] = std::move(result);
    reply(s, msg);
  };
  // The same for a result written as JSON text (apply's and enum's can be large).
  auto ok_text = [&](std::string_view result) {
    std::string msg = "{\"id\":" + wire::to_json_text(id, true) + ",\"ok\":true,\"result\":";
    msg.reserve(msg.size() + result.size() + 1);
    msg += result;
    msg += '}';
    reply_text(s, id, msg);
  };
  // The filters added since the transaction's change `from` at layers nothing enforces here: what
  // layer_warnings words (each layer checked once, not each filter looked up).
  auto unenforced_adds = [&](size_t from) {
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
  };
  // The object a get or delete names: its "key", or for a filter its run-time "filter_id".
  auto object_key = [&](ObjKind kind) {
    const auto filter_id = kind == ObjKind::FILTER ? protocol::maybe_uint_member(req, "filter_id", UINT64_MAX) : std::nullopt;
    if (!filter_id) return guid_arg(req, "key");
    const Filter* f = engine_.filter_by_id(*filter_id);
    if (!f) throw Error(ErrorCode::FILTER_NOT_FOUND, "filter id " + std::to_string(*filter_id) + " not found");
    return f->key;
  };
  auto need = [&](Role r, const char* what) {
    if (s.role < r)
      throw Error(ErrorCode::ACCESS_DENIED, std::string(what) + " needs the " + std::string(role_name(r)) +
                                                " role; uid " + std::to_string(s.cred.uid) + " is " +
                                                std::string(role_name(s.role)));
  };

  if (op == "hello") {
    if (s.hello) fail("INVALID_PARAMETER", "the session is already open");
    if (protocol::uint_member(req, "version", wire::kVersion, UINT32_MAX) != wire::kVersion)
      fail("INVALID_PARAMETER", "/version: protocol version " + req["version"].dump() + " is not supported (this lfpd speaks 1)");
    s.name = protocol::name_member(req, "name");  // (bounded, no control characters: it is logged and listed)
    s.dynamic = protocol::bool_member(req, "dynamic", false);
    s.txn_wait_ms = static_cast<uint32_t>(protocol::uint_member(req, "txn_wait_timeout_ms", 0, kMaxTxnWaitMs));
    if (s.txn_wait_ms == 0) s.txn_wait_ms = cfg_.default_txn_wait_ms;
    s.provider = guid_member(req, "provider");
    s.key = Guid::generate();
    s.hello = true;
    // (Any user may open sessions by the thousand: their lines are rate-limited, docs/security.md.)
    static protocol::LineLimit session_lines(50);
    uint64_t suppressed;
    const bool admitted = session_lines.admit(suppressed);
    if (suppressed) spdlog::info("sessions: {} 'opened' lines suppressed (at most {} a second)", suppressed, session_lines.per_second());
    if (admitted)
      spdlog::info("session {} '{}': opened by uid {} pid {} ({}{})", s.id, s.name, s.cred.uid, s.cred.pid,
                   role_name(s.role), s.dynamic ? ", dynamic" : "");
    ok({{"version", wire::kVersion},
        {"session", {{"key", s.key.str()}, {"uid", s.cred.uid}, {"role", role_name(s.role)}, {"dynamic", s.dynamic}}}});
    return true;
  }
  if (!s.hello) fail("INVALID_PARAMETER", "open the session with 'hello' first");
  if (op == "ping") {
    ok();
    return true;
  }
  need(Role::READER, op.c_str());

  using Txn = Session::Txn;
  // A transaction lfpd ended (idle, or a reader that yielded to a writer): every request in it fails
  // and says why, until the client aborts, commits or begins again (never applied outside it).
  if (!s.txn_ended.empty()) {
    if (op == "txn_abort") {
      s.txn_ended.clear();
      ok();
      return true;
    }
    if (op == "txn_begin") {
      s.txn_ended.clear();
    } else {
      const std::string why = s.txn_ended;
      if (op == "txn_commit") s.txn_ended.clear();
      throw Error(ErrorCode::TXN_ABORTED, why);
    }
  }
  if (op == "txn_begin") {
    if (s.txn != Txn::NONE) throw Error(ErrorCode::TXN_IN_PROGRESS, "the session already has a transaction");
    if (protocol::bool_member(req, "read_only", false)) {
      if (!can_read(s)) return false;
      readers_.insert(s.id);
      s.txn = Txn::READ;
      s.txn_since = Clock::now();
    } else {
      need(Role::WRITER, "a read/write transaction");
      if (!can_write(s)) return false;
      begin_write(s, true);
    }
    ok();
    return true;
  }
  if (op == "txn_commit" || op == "txn_abort") {
    if (s.txn == Txn::NONE) throw Error(ErrorCode::NO_TXN_IN_PROGRESS, "the session has no transaction");
    if (s.txn == Txn::READ) {
      readers_.erase(s.id);
      s.txn = Txn::NONE;
    } else if (op == "txn_commit") {
      // The transaction's filters at layers nothing enforces here, counted once for all of it (a
      // policy applied in pieces gets one warning a layer, not one a piece).
      std::vector<std::string> warnings = layer_warnings(unenforced_adds(0));
      commit_write(s);
      json result = json::object();
      if (!warnings.empty()) result["warnings"] = std::move(warnings);
      ok(std::move(result));
      return true;
    } else {
      abort_write(s);
    }
    ok();
    return true;
  }

  if (auto extra = extra_ops_.find(op); extra != extra_ops_.end()) {
    need(extra->second.first, op.c_str());
    if (s.txn == Txn::NONE && !can_read(s)) return false;  // they may read the policy: never half a transaction
    ok(extra->second.second(OpContext{s.id, s.role, s.cred}, req));
    return true;
  }

  if (op == "add" || op == "delete" || op == "apply") {
    need(Role::WRITER, op.c_str());
    if (s.txn == Txn::READ) throw Error(ErrorCode::INCOMPATIBLE_TXN, "the session's transaction is read-only");
    const bool implicit = s.txn == Txn::NONE;
    if (implicit) {
      if (!can_write(s)) return false;
      begin_write(s, false);
    }
    const size_t mark = txn_->undo.size();
    json result;
    std::string result_text;
    try {
      if (op == "add") {
        result = op_add(s, kind_arg(req), request);
      } else if (op == "apply") {
        result_text = op_apply(s, request);
      } else {
        const ObjKind kind = kind_arg(req);
        const Guid key = object_key(kind);
        op_delete(s, kind, key, protocol::bool_member(req, "force", false));
        result = {{"key", key.str()}};
      }
    } catch (...) {
      // A failed call changes nothing, and does not spoil an explicit transaction (as in WFP).
      undo_to(*txn_, mark);
      if (implicit) abort_write(s);
      throw;
    }
    const std::vector<std::string> warnings = layer_warnings(unenforced_adds(mark));
    if (implicit) commit_write(s);
    if (op == "apply") {
      // {"id": ..., "ok": true, "result": <text>}: the id as the client sent it.
      if (!warnings.empty()) {
        result_text.pop_back();  // the result's closing brace
        result_text += ",\"warnings\":" + wire::to_json_text(json(warnings), true) + "}";
      }
      ok_text(result_text);
    } else {
      if (!warnings.empty()) result["warnings"] = warnings;
      ok(std::move(result));
    }
    return true;
  }

  // Reads: wait while another session's write transaction is open (nobody sees half of one).
  if (s.txn == Txn::NONE && !can_read(s)) return false;
  if (op == "get") {
    const ObjKind kind = kind_arg(req);
    const Guid key = object_key(kind);
    json obj = object_json(kind, key);
    if (obj.is_null()) throw Error(ErrorCode::NOT_FOUND, std::string(kind_name(kind)) + " " + key.str() + " not found");
    ok(obj);
  } else if (op == "enum") {
    ok_text(op_enum(req));
  } else if (op == "state") {
    ok(op_state(protocol::bool_member(req, "objects", true)));
  } else if (op == "classify") {
    policy::Request r;
    policy::parse_request(json{{"layer", req.value("layer", json())}, {"values", req.value("values", json::object())}}, r);
    // Values as typed on a command line ("IP_PROTOCOL": "TCP"), typed by the field at the layer.
    if (const json* text_values = protocol::object_member(req, "text_values"))
      for (const auto& [name, text] : text_values->items()) {
        auto f = field_from_string(name);
        if (!f) fail("INVALID_PARAMETER", "/text_values/" + name + ": unknown field");
        const auto value = protocol::string_member(*text_values, name, "/text_values");
        if (!value) protocol::missing_member(name, "the value as text", "/text_values");
        r.set_text(*f, *value);
      }
    ok(policy::result_to_json(engine_, engine_.classify(r.layer, r.values, protocol::bool_member(req, "explain", false))));
  } else if (op == "subscribe") {
    s.sub_kinds.clear();
    static const json all_kinds = {"provider", "sublayer", "callout", "provider_context", "filter"};
    const json* kinds = protocol::array_member(req, "kinds");
    if (!kinds) kinds = &all_kinds;
    for (size_t i = 0; i < kinds->size(); ++i) {
      const json& k = kinds->at(i);
      const auto kind = k.is_string() ? kind_from_string(k.get_ref<const std::string&>()) : std::nullopt;
      if (!kind) fail("INVALID_PARAMETER", "/kinds/" + std::to_string(i) + ": unknown kind " + protocol::log_safe(k.dump(), 64));
      s.sub_kinds.insert(*kind);
    }
    s.subscribed = true;
    ok();
  } else if (op == "unsubscribe") {
    s.subscribed = false;
    ok();
  } else {
    fail("INVALID_PARAMETER", "unknown op '" + op + "'");
  }
  return true;
}

}  // namespace lfp::daemon
