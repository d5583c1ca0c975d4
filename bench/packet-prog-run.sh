#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What LFP's packet programs cost with everything in cache: BPF_PROG_TEST_RUN (bpftool prog run) of
# lfp_tc_ingress and lfp_nf_in4 on one 42-byte UDP frame, repeated, against a tc program that
# returns at once (the test loop's own cost). Against lfp-packet-bench's per-run times, the rest is
# what a packet pays for lines that are not in cache.
#
#   bench/packet-prog-run.sh [LFPD] [REPEAT]   (root; LFPD defaults to build/daemon/lfpd)
#
# lfpd runs in a network namespace of its own (one veth pair inside, for tcx) with two filters at
# INBOUND_MAC_FRAME_ETHERNET and two at INBOUND_TRANSPORT_V4; its programs are run, never fed traffic.
# The trivial program is loaded, pinned in a bpffs of the run's own (mounted in its temporary
# directory, never at /sys/fs/bpf, where bpftool would mount one for the host) and never attached.
set -euo pipefail
cd "$(dirname "$0")/.."
lfpd=$(realpath "${1:-build/daemon/lfpd}")
repeat=${2:-5000000}
lfp=$(realpath build/cli/lfp)  # (this checkout's, whichever lfpd runs)
ns=lfp-prog-run-$$
dir=$(mktemp -d /tmp/lfp-prog-run-XXXXXX)
pin=
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  [ -n "$pin" ] && rm -f "$pin"
  mountpoint -q "$dir/bpffs" 2>/dev/null && umount "$dir/bpffs"
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/policy.json" <<'EOF'
{"filters": [
 {"name": "mac block", "layer": "INBOUND_MAC_FRAME_ETHERNET", "action": "BLOCK",
  "conditions": [{"field": "ETHER_TYPE", "match": "EQUAL", "value": 36864}]},
 {"name": "mac permit", "layer": "INBOUND_MAC_FRAME_ETHERNET", "action": "PERMIT",
  "conditions": [{"field": "ETHER_TYPE", "match": "EQUAL", "value": 2048}]},
 {"name": "transport block", "layer": "INBOUND_TRANSPORT_V4", "action": "BLOCK",
  "conditions": [{"field": "IP_LOCAL_PORT", "match": "EQUAL", "value": 20001}]},
 {"name": "transport permit", "layer": "INBOUND_TRANSPORT_V4", "action": "PERMIT",
  "conditions": [{"field": "IP_LOCAL_PORT", "match": "EQUAL", "value": 9000}]}
]}
EOF
# Ethernet (IPv4), IPv4 10.0.0.1 -> 10.0.0.2 (UDP, DF), UDP 40000 -> 9000, no payload.
printf '\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00\x45\x00\x00\x1c\x00\x00\x40\x00\x40\x11\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02\x9c\x40\x23\x28\x00\x08\x00\x00' > "$dir/frame"
cat > "$dir/trivial.c" <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int lfp_prog_run_trivial(struct __sk_buff *skb) { return 0; }
char LICENSE[] SEC("license") = "GPL";
EOF
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$dir/trivial.c" -o "$dir/trivial.o"
mkdir "$dir/bpffs"
mount -t bpf bpf "$dir/bpffs"
pin="$dir/bpffs/trivial"
bpftool prog load "$dir/trivial.o" "$pin"

ip netns add "$ns"
ip -n "$ns" link add lfpr0 type veth peer name lfpr1
ip -n "$ns" link set lfpr0 up
ip -n "$ns" link set lfpr1 up
nsenter --net="/run/netns/$ns" "$lfpd" --state-dir "$dir/state" --socket "$dir/sock" --log-level warn \
  --cgroup none --packet-layers --bpf-pin "" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 200); do "$lfp" --socket "$dir/sock" show filters > /dev/null 2>&1 && break; sleep 0.05; done
"$lfp" --socket "$dir/sock" apply "$dir/policy.json" > /dev/null || { cat "$dir/log"; exit 1; }

# A program's id: the newest of that name (lfpd's, just loaded).
prog_id() { bpftool -j prog show | python3 -c "import json, sys; print(max(p['id'] for p in json.load(sys.stdin) if p.get('name') == '$1'))"; }
run() { bpftool prog run "$@" data_in "$dir/frame" repeat "$repeat" | sed -n 's/.*duration (average): //p'; }
echo "BPF_PROG_TEST_RUN, $repeat runs of a 42-byte UDP frame; average per run, three times each"
echo "trivial tc program  $(run pinned "$pin") $(run pinned "$pin") $(run pinned "$pin")"
for name in lfp_tc_ingress lfp_nf_in4; do
  id=$(prog_id "$name")
  echo "$name $(printf '%*s' $((19 - ${#name})) '')$(run id "$id") $(run id "$id") $(run id "$id")"
done
