// SPDX-License-Identifier: MIT
#pragma once
// lfpd's core: sessions, transactions, access control, persistence and change notification around
// one FilterEngine, served over a Unix socket with a single-threaded poll loop (docs/lfpd.md).
#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "lfp/engine/engine.hpp"
#include "lfp/policy/policy.hpp"
#include "lfp/protocol/wire.hpp"
#include "lfp/store/store.hpp"
#include "request_reader.hpp"

namespace lfp::daemon {

struct Config {
  std::string state_dir = "/var/lib/lfp";
  std::string socket_path = "/run/lfp/lfpd.sock";
  std::string admin_group = "lfpadmin";   // members may change any policy
  std::string writer_group = "lfpwriter"; // members may add objects and delete their own
  bool readers_all = true;                // other users may read (else: only writers and admins)
  uint32_t default_txn_wait_ms = 15000;   // WFP's default transaction wait
  uint32_t txn_idle_ms = 60000;           // a write transaction with no request for this long is aborted (0: never)
  // What sessions that are not an admin's may take (admins always get through: one user must not
  // starve lfpd or its admins of file descriptors, memory or time).
  size_t max_sessions = 512;                 // such sessions in all
  size_t max_sessions_per_uid = 32;          // of one uid
  size_t max_input_per_uid = 64u << 20;      // bytes of requests not yet whole, all of a uid's sessions
  size_t max_output_per_uid = 256u << 20;    // bytes of replies not yet read, all of a uid's sessions
  uint32_t frame_timeout_ms = 10000;         // a request must arrive whole within this of its first byte
  uint32_t idle_timeout_ms = 300000;         // a session with nothing open or subscribed is closed after this
};

enum class Role { NONE, READER, WRITER, ADMIN };

// What lfpd records about each object besides the object itself.
struct Owner {
  uint32_t uid = 0;
  uint64_t session = 0;  // 0: loaded from the store
  bool dynamic = false;
};

enum class ObjKind { PROVIDER, SUBLAYER, CALLOUT, PROVIDER_CONTEXT, FILTER };

// Who sent a request to an op added with Server::add_op.
struct OpContext {
  uint64_t session = 0;
  Role role = Role::NONE;
  ucred cred{};
};
// Returns the reply's result; throws lfp::Error or std::exception (INVALID_PARAMETER) to fail.
using OpHandler = std::function<nlohmann::json(const OpContext&, const nlohmann::json& req)>;

class Server {
 public:
  explicit Server(Config cfg);
  ~Server();
  // Binds the socket and loads the store. Throws std::runtime_error.
  void start();
  // Loads the store only (lfpd --boot: the persistent policy without serving it).
  void load() { if (!store_) load_store(); }
  // Serves until SIGTERM or SIGINT (read through a signalfd).
  void run();
  // One turn of the loop: waits at most max_wait_ms (-1: until something happens).
  void serve_once(int max_wait_ms);
  // Serves a connected socket as a session of the peer `cred`, whose supplementary groups are
  // `groups` (both as the socket gave them at connect: SO_PEERCRED, SO_PEERGROUPS). Tests and
  // fuzzing use socketpairs. 0 when refused (a limit of non-admin sessions; the fd is closed).
  uint64_t adopt(int fd, const ucred& cred, std::vector<gid_t> groups = {});
  size_t session_count() const { return sessions_.size(); }
  // Write transactions ended, for lfpd's metrics: committed, and aborted (by the client, by lfpd, or
  // a commit refused), of which `refused` are commits the kernel or the store could not take.
  struct TxnCounts {
    uint64_t committed = 0, aborted = 0, refused = 0;
  };
  const TxnCounts& txn_counts() const { return txn_counts_; }
  const FilterEngine& engine() const { return engine_; }
  FilterEngine& engine() { return engine_; }

  // Extension points for the data path, which stands beside the server.
  // The data path's install: called with the engine as a write transaction leaves it, BEFORE the
  // store commits; an exception aborts the transaction (the engine and the kernel keep the previous
  // policy, nothing is stored) and the client gets TXN_ABORTED naming the cause. Also called at
  // start (after the store loads), after a dynamic session's objects go, and by
  // notify_policy_changed(): a failure there cannot be refused, so it puts lfpd in the degraded
  // state (part "kernel"), which the next successful call clears.
  // A commit passes what its transaction changed (the enforcer may apply just that); the other calls
  // pass nullptr: the whole policy.
  using Enforcer = std::function<void(const FilterEngine&, const FilterChanges*)>;
  void set_enforcer(Enforcer enforce) { enforcer_ = std::move(enforce); }
  // Why filters at `layer` are not enforced in this configuration (nullopt: they are).
  void set_layer_check(std::function<std::optional<std::string>(LayerId)> check) { layer_check_ = std::move(check); }
  // Called after the enforcer, once the policy is committed (and at start, and on
  // notify_policy_changed); failures are logged.
  void on_policy_change(std::function<void(const FilterEngine&)> cb) { policy_observers_.push_back(std::move(cb)); }
  // Parts of enforcement that are down: part -> why ("kernel" -> "the kernel image holds at most
  // ..."). Observers hear of each change (why = nullopt: the part is back).
  void set_degraded(const std::string& part, const std::string& why);
  void clear_degraded(const std::string& part);
  const std::map<std::string, std::string>& degraded() const { return degraded_; }
  void on_degraded(std::function<void(const std::string& part, const std::optional<std::string>& why)> cb) {
    degraded_observers_.push_back(std::move(cb));
  }
  // Layers holding filters (not DISABLED) that nothing enforces here: layer name -> why (the layer check).
  std::map<std::string, std::string> unenforced_layers() const;
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }
  // `fd` is polled with the sessions; `on_readable` runs in the loop when it is readable.
  void watch_fd(int fd, std::function<void()> on_readable) { watched_.push_back({fd, std::move(on_readable)}); }
  void unwatch_fd(int fd) {  // (safe inside a watch callback: the entry stays, poll skips it)
    for (auto& w : watched_)
      if (w.first == fd) w.first = -1;
  }
  // Something besides a commit changed what the engine decides (a callout driver came or went):
  // the enforcer and the policy observers run again (an enforcer failure: degraded, never thrown).
  void notify_policy_changed() { policy_changed(); }
  // Services beside the engine (the net event log, the data path, prompts, capture) serve ops of
  // their own: `name` for sessions with at least `min_role`, in the one op table lfpd's own ops are
  // in (a name registered twice is a std::logic_error). Like every read, such an op waits while
  // another session's write transaction is open. Services may push frames without "id" to a
  // session (a live stream) until it closes, which on_session_closed announces.
  void add_op(std::string name, Role min_role, OpHandler handler);
  void send_event(uint64_t session, const nlohmann::json& msg);
  void on_session_closed(std::function<void(uint64_t)> cb) { close_observers_.push_back(std::move(cb)); }

 private:
  struct Session;
  struct Request;
  struct Undo;
  struct WriteTxn;
  using Clock = std::chrono::steady_clock;

  // What an op answers: its result as JSON, or as JSON text already written (apply's and enum's can be large).
  struct JsonText {
    std::string text;
  };
  using OpResult = std::variant<nlohmann::json, JsonText>;
  // Who may run an op, and when (docs/security.md, docs/protocol.md).
  enum class OpLock {
    NONE,   // runs at once
    READ,   // waits while another session's write transaction is open (nobody sees half of one)
    WRITE,  // takes the write lock: inside the session's transaction, else one of its own (committed after)
  };
  struct OpRule {
    Role min_role = Role::READER;
    OpLock lock = OpLock::READ;
    bool before_hello = false;  // hello: the one op of a session not yet open
    bool in_ended_txn = false;  // runs when lfpd ended the session's transaction (every other op says so)
  };
  // An op: its result, or nullopt when it must wait for the transaction lock.
  using OpRun = std::function<std::optional<OpResult>(Session&, const Request&)>;
  struct Op {
    OpRule rule;
    OpRun run;
  };
  void register_op(std::string name, OpRule rule, OpRun run);
  void add_core_ops();  // lfpd's own (ops_core.cpp)
  void need_role(const Session& s, Role r, std::string_view what) const;  // else ACCESS_DENIED
  void check_access(const Session& s, std::string_view op, const OpRule& rule) const;
  // A WRITE op: run in the session's write transaction, or in one of its own committed after it.
  std::optional<OpResult> run_write(Session& s, const Request& r, const OpRun& run);
  void reply_ok(Session& s, const nlohmann::json& id, OpResult result);
  std::vector<Guid> unenforced_adds(size_t from) const;  // the transaction's filters since change `from` that nothing enforces

  void accept_client();
  void on_readable(Session& s);
  void read_requests(Session& s);  // the whole frames the session sent, queued (not yet handled)
  void on_writable(Session& s);
  void close_session(uint64_t id, const std::string& why);
  void process(Session& s);  // runs queued requests until one must wait
  // Returns false when the request must wait for the transaction lock.
  bool handle(Session& s, const Request& r);
  void reply(Session& s, const nlohmann::json& msg);
  void reply_text(Session& s, const nlohmann::json& id, std::string_view payload);  // a reply already serialized
  void reply_error(Session& s, const nlohmann::json& id, std::string_view code, const std::string& msg);
  void expire_waits();
  void expire_sessions();  // non-admin sessions past frame_timeout_ms or idle_timeout_ms
  // The bytes uid's non-admin sessions hold: requests not yet whole (input) or replies not yet read.
  size_t held_by_uid(uid_t uid, bool input) const;
  void retry_waiting();
  int poll_timeout_ms() const;

  // Transactions.
  bool can_read(const Session& s) const;
  // The write lock for s, if no other session writes. Readers never hold a writer back: their read
  // transactions end (their next request says so), as they do before a dynamic session's clean-up.
  bool can_write(Session& s);
  void end_read_txns(const std::string& why);
  void end_idle_write();
  std::string holder() const;  // who holds the write lock, for a waiter's TIMEOUT
  void begin_write(Session& s, bool explicit_txn);
  // Enforces, stores and announces the transaction; throws lfp::Error (TXN_ABORTED) when the
  // enforcer or the store refuses it, after undoing it in the engine and the kernel.
  void commit_write(Session& s);
  void abort_write(Session& s, bool counted = true);  // counted: an abort (not an empty commit's end)
  void undo_to(WriteTxn& t, size_t mark);
  uint64_t engine_add(ObjKind kind, policy::Policy& one);  // a filter's id, or 0
  void engine_delete(ObjKind kind, const Guid& key);
  void cleanup_dynamic(uint64_t session_id);
  // The enforcer, then the observers, on the engine as it is (outside a transaction's commit).
  // Inside an open write transaction, deferred to its end (the kernel never sees half of one).
  void policy_changed();
  // The enforcer on the engine as it is: why it failed, or nullopt. Never throws.
  std::optional<std::string> enforce(const FilterChanges* changes = nullptr);
  // The same where a failure cannot be refused: it sets the "kernel" degraded part, a success clears it.
  void enforce_or_degrade();
  void run_policy_observers();  // (their failures are logged)
  void tell_degraded(const std::string& part, const std::optional<std::string>& why);
  std::vector<std::string> layer_warnings(const std::vector<Guid>& filters) const;

  // lfpd's own ops (ops_core.cpp).
  nlohmann::json op_hello(Session& s, const nlohmann::json& req);
  std::optional<OpResult> op_txn_begin(Session& s, const nlohmann::json& req);
  OpResult op_txn_end(Session& s, bool commit);  // txn_commit, txn_abort
  nlohmann::json op_classify(const nlohmann::json& req) const;
  nlohmann::json op_subscribe(Session& s, const nlohmann::json& req);
  // The object a get or delete names: its "key", or for a filter its run-time "filter_id".
  Guid object_key(ObjKind kind, const nlohmann::json& req) const;
  // Object operations inside a write transaction. `text`: the request text the object was read
  // from (a persistent object's is kept for the store until the commit).
  nlohmann::json op_add(Session& s, ObjKind kind, const Request& r);
  Guid add_parsed(Session& s, ObjKind kind, policy::Policy& one, std::string_view text, uint64_t* filter_id);
  bool is_persistent(ObjKind kind, const Guid& key) const;
  bool has_subscribers(ObjKind kind) const;
  void op_delete(Session& s, ObjKind kind, const Guid& key, bool force);
  std::string op_apply(Session& s, const Request& r);  // the result, as JSON text
  void check_may_delete(const Session& s, ObjKind kind, const Guid& key, bool force) const;

  nlohmann::json object_json(ObjKind kind, const Guid& key) const;  // with "owner"
  std::string op_enum(const nlohmann::json& req) const;  // the result, as JSON text
  // `with_objects`: the providers, sublayers, callouts and provider contexts too (else their counts only).
  nlohmann::json op_state(bool with_objects) const;
  void notify_changes(const std::vector<nlohmann::json>& changes);
  void persist(WriteTxn& t);
  void load_store();

  Config cfg_;
  FilterEngine engine_;
  std::unique_ptr<store::Store> store_;
  int listen_fd_ = -1;
  Clock::time_point accept_paused_until_{};  // out of file descriptors: accept again after this
  int signal_fd_ = -1;
  bool stopping_ = false;
  uint64_t next_session_ = 1;
  RequestReader requests_;  // frames into requests (large ones on a worker thread)
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::map<ObjKind, absl::flat_hash_map<Guid, Owner>> owners_;  // (a million filters: one open-addressed insert each)
  std::unordered_set<Guid> stored_[5];  // per kind, the keys with a row in the store
  // The transaction lock: one writer, or any number of explicit readers.
  std::optional<uint64_t> writer_;
  std::set<uint64_t> readers_;
  std::unique_ptr<WriteTxn> txn_;
  std::deque<uint64_t> pending_cleanups_;  // ended dynamic sessions whose objects wait for the lock
  bool policy_change_deferred_ = false;     // notify_policy_changed() came inside a write transaction
  TxnCounts txn_counts_;
  Enforcer enforcer_;
  std::function<std::optional<std::string>(LayerId)> layer_check_;
  std::map<std::string, std::string> degraded_;
  std::vector<std::function<void(const std::string&, const std::optional<std::string>&)>> degraded_observers_;
  Clock::time_point started_at_ = Clock::now();
  // --admin-group and --writer-group, resolved when the server is made (nullopt: nobody is in it).
  std::optional<gid_t> admin_gid_, writer_gid_;
  std::vector<std::function<void(const FilterEngine&)>> policy_observers_;
  std::vector<std::pair<int, std::function<void()>>> watched_;
  absl::flat_hash_map<std::string, Op> ops_;  // every op by name (one hash of the name a request)
  std::vector<std::function<void(uint64_t)>> close_observers_;
};

std::string_view kind_name(ObjKind k);    // "filter"
std::string_view kind_plural(ObjKind k);  // "filters": its list in a policy
std::optional<ObjKind> kind_from_string(std::string_view s);
std::string_view role_name(Role r);

}  // namespace lfp::daemon
