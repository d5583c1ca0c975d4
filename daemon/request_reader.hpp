// SPDX-License-Identifier: MIT
#pragma once
// lfpd's requests as they arrive: each frame parsed once (the arena reader), checked (a JSON object
// that repeats no member), its small members copied out as nlohmann json, and an apply's policy read
// (policy_from_json). A large frame (a piece of a large apply) is read on a worker thread, so that
// lfpd adds one piece while the next ones are read: the event loop stays the only one to touch the
// engine; the worker touches nothing but the frame's text.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "lfp/policy/json_doc.hpp"
#include "lfp/policy/policy.hpp"

namespace lfp::daemon {

struct ReadRequest {
  nlohmann::json req;                    // an object: the request's members but "policy" and "object" (read from doc)
  std::shared_ptr<policy::JsonDoc> doc;  // the whole request
  // op "apply" with a policy object: the policy read, or why it cannot be (a PolicyError, thrown
  // where the op reads it, which names the piece's place in the whole).
  std::optional<policy::Policy> policy;
  std::exception_ptr policy_error;
  std::string error;  // not a request: why (its "id", if it had one, is in req)
};

// One frame's request, read on the calling thread.
ReadRequest read_request(std::string frame);

// Reads frames of at least kWorkerBytes on a worker thread, in the order given; smaller ones at once.
class RequestReader {
 public:
  static constexpr size_t kWorkerBytes = 32 << 10;

  // A request being read: get() waits for it (at most as long as one frame's parse).
  class Pending {
   public:
    ReadRequest& get();
    // In hand: read at once (a small frame), or already taken from the worker.
    bool in_hand() const { return now_.has_value(); }

   private:
    friend class RequestReader;
    std::optional<ReadRequest> now_;
    std::future<ReadRequest> later_;
  };

  RequestReader() = default;
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  Pending read(std::string frame);

 private:
  void work();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<ReadRequest()>> jobs_;
  bool stop_ = false;
  std::thread worker_;  // started by the first large frame
};

}  // namespace lfp::daemon
