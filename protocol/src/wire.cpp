// SPDX-License-Identifier: MIT
#include "lfp/protocol/wire.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace lfp::wire {

std::string encode(std::string_view payload) {
  std::string out(4 + payload.size(), '\0');
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  std::memcpy(out.data() + 4, payload.data(), payload.size());
  return out;
}

namespace {
uint32_t be32(const char* p) {
  auto u = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}
}  // namespace

bool FrameReader::ready() const {
  if (!error_.empty() || buf_.size() - pos_ < 4) return false;
  const uint32_t n = be32(buf_.data() + pos_);
  return n == 0 || n > max_ || buf_.size() - pos_ - 4 >= n;  // (a bad length: next() says so)
}

std::optional<std::string> FrameReader::next() {
  if (!error_.empty() || buf_.size() - pos_ < 4) return std::nullopt;
  const uint32_t n = be32(buf_.data() + pos_);
  if (n == 0 || n > max_) {
    error_ = "frame length " + std::to_string(n) + " outside 1.." + std::to_string(max_);
    return std::nullopt;
  }
  if (buf_.size() - pos_ - 4 < n) return std::nullopt;
  std::string frame = buf_.substr(pos_ + 4, n);
  pos_ += 4 + n;
  if (pos_ > 65536 && pos_ * 2 > buf_.size()) {  // compact now and then
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return frame;
}

bool write_frame(int fd, std::string_view payload, std::string& err) {
  if (payload.empty() || payload.size() > kMaxFrame) {
    err = "message size " + std::to_string(payload.size()) + " outside 1.." + std::to_string(kMaxFrame);
    return false;
  }
  return write_all(fd, encode(payload), err);
}

bool write_all(int fd, std::string_view data, std::string& err) {
  size_t off = 0;
  while (off < data.size()) {
    // (send without SIGPIPE: a peer that closed the socket is an error here, not the end of the process)
    ssize_t w = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = std::string("write: ") + std::strerror(errno);
      return false;
    }
    off += static_cast<size_t>(w);
  }
  return true;
}

namespace {
bool read_exact(int fd, char* p, size_t n, std::string& err) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = ::read(fd, p + off, n - off);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      err = "connection closed";
      return false;
    }
    if (r < 0) {
      err = std::string("read: ") + std::strerror(errno);
      return false;
    }
    off += static_cast<size_t>(r);
  }
  return true;
}
}  // namespace

bool read_frame(int fd, std::string& payload, std::string& err, size_t max_frame) {
  char hdr[4];
  if (!read_exact(fd, hdr, 4, err)) return false;
  const uint32_t n = be32(hdr);
  if (n == 0 || n > max_frame) {
    err = "frame length " + std::to_string(n) + " outside 1.." + std::to_string(max_frame);
    return false;
  }
  payload.resize(n);
  return read_exact(fd, payload.data(), n, err);
}

}  // namespace lfp::wire
