// SPDX-License-Identifier: MIT
#include "request_reader.hpp"

#include "lfp/protocol/request.hpp"

namespace lfp::daemon {

ReadRequest read_request(std::string frame) {
  ReadRequest r;
  r.req = nlohmann::json::object();
  try {
    r.doc = policy::JsonDoc::parse(std::move(frame));
  } catch (const policy::JsonParseError& e) {
    r.error = std::string("malformed JSON: ") + e.what();
    return r;
  }
  const policy::JsonValue& root = r.doc->root();
  if (!root.is_object()) {
    r.error = "a request is a JSON object";
    return r;
  }
  if (auto dup = protocol::duplicate_member(root)) {  // (one rule with lfp validate: never "the last wins")
    if (const policy::JsonValue* id = root.find("id")) r.req["id"] = id->to_json();
    r.error = *dup;
    return r;
  }
  for (auto m = root.members_begin(); m != root.members_end(); ++m)
    if (m->key != "policy" && m->key != "object") r.req[std::string(m->key)] = m->value.to_json();
  const policy::JsonValue* op = root.find("op");
  const policy::JsonValue* policy = root.find("policy");
  if (op && op->str() == "apply" && policy && policy->is_object()) {
    try {
      r.policy = policy::policy_from_json(*policy);
      // A filter without a key gets it here rather than on the loop, which can then fetch the
      // maps' slots for a filter's key ahead of its add (a nil key means "generate one" either way).
      for (Filter& f : r.policy->filters)
        if (f.key.is_nil()) f.key = Guid::generate();
    } catch (...) {
      r.policy_error = std::current_exception();
    }
  }
  return r;
}

ReadRequest& RequestReader::Pending::get() {
  if (!now_) now_ = later_.get();
  return *now_;
}

RequestReader::Pending RequestReader::read(std::string frame) {
  Pending p;
  if (frame.size() < kWorkerBytes) {
    p.now_ = read_request(std::move(frame));
    return p;
  }
  std::packaged_task<ReadRequest()> job([f = std::move(frame)]() mutable { return read_request(std::move(f)); });
  p.later_ = job.get_future();
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
    if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
  }
  cv_.notify_one();
  return p;
}

void RequestReader::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // (stopping, nothing left)
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

RequestReader::~RequestReader() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();
}

}  // namespace lfp::daemon
