// SPDX-License-Identifier: MIT
#pragma once
// Framing of lfpd's protocol: each message is a 4-byte big-endian length N (1..kMaxFrame) followed by
// N bytes of UTF-8 JSON. Any language can speak it with a socket and a JSON parser (docs/protocol.md).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lfp::wire {

inline constexpr int kVersion = 1;
inline constexpr size_t kMaxFrame = 16u << 20;  // 16 MiB
// A page of a listing (enum, netevents_enum) stops growing once it holds this many bytes, so that no
// page is too large for a frame whatever its objects hold; its next_offset says where the next begins.
inline constexpr size_t kPageBytes = kMaxFrame / 2;

std::string encode(std::string_view payload);

// Incremental decoder for a non-blocking reader: feed() what arrived, then take frames with next().
class FrameReader {
 public:
  explicit FrameReader(size_t max_frame = kMaxFrame) : max_(max_frame) {}
  void feed(const char* data, size_t n) { buf_.append(data, n); }
  // A complete frame, or nullopt if more bytes are needed. After an error() nothing more is returned.
  std::optional<std::string> next();
  // Set when the stream is corrupt (zero or oversized length): the connection must be dropped.
  const std::string& error() const { return error_; }
  size_t buffered() const { return buf_.size() - pos_; }
  // A complete frame waits (next() returns it).
  bool ready() const;

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t max_;
  std::string error_;
};

// Blocking helpers for clients. Return false on EOF or error (errno set; `err` says which).
bool write_frame(int fd, std::string_view payload, std::string& err);
bool write_all(int fd, std::string_view data, std::string& err);  // bytes as they are
bool read_frame(int fd, std::string& payload, std::string& err, size_t max_frame = kMaxFrame);

}  // namespace lfp::wire
