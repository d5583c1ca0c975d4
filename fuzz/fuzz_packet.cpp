// SPDX-License-Identifier: MIT
// libFuzzer target: the packet parser and the layer walk (packet/) on arbitrary bytes, every link
// type. Input: one byte of setup (link type, local address mode, where to block), then packets, each
// a 2-byte big-endian length and its bytes, walked in order through one Walk with small tables so
// that flows and fragments evict. Checks the walk's invariants: every value it gives is a field of
// its layer, with the catalogue's type.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lfp/packet/parse.hpp"
#include "lfp/packet/walk.hpp"

using namespace lfp;
using namespace lfp::packet;

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t setup = data[0];
  const LinkType link = static_cast<LinkType>(setup & 3);
  WalkOptions o;
  o.max_flows = 16;
  o.max_datagrams = 4;
  o.max_fragments = 8;
  o.first_source_is_local = setup & 4;
  if (setup & 8) o.ifindex = 7;
  Walk walk(o);
  if (!(setup & 4)) {
    walk.add_local(ip4(0x0a000001));  // 10.0.0.1
    walk.add_local(*parse_ip("2001:db8::1"));
  }
  const unsigned block_every = setup >> 4;  // 0: never block
  size_t off = 1;
  unsigned step = 0;
  Packet p;
  while (off + 2 <= size) {
    const size_t len = std::min<size_t>(size - off - 2, size_t{data[off]} << 8 | data[off + 1]);
    off += 2;
    // An exact-size copy: a read past the packet is a heap overflow under ASan.
    const std::vector<uint8_t> pkt(data + off, data + off + len);
    off += len;
    parse(pkt, link, p);
    check(p.length == len);
    check(to_string(p.status) != "?");
    walk.begin(p, uint64_t{step} * 1'000'000'000);
    size_t layers = 0;
    while (walk.next()) {
      check(++layers <= 16);
      const LayerInfo& info = layer_info(walk.layer());
      for (size_t i = 0; i < kFieldCount; ++i) {
        const auto f = static_cast<FieldId>(i);
        const Value& v = walk.values().get(f);
        if (v.type == DataType::EMPTY) continue;
        check(layer_has_field(info, f));
        check(v.type == field_type(f, info.family));
      }
      if (block_every && ++step % block_every == 0) break;  // a BLOCK: stop consuming
    }
    check(walk.flow_count() <= 16);
    check(walk.datagram_count() <= 4);
  }
  return 0;
}
