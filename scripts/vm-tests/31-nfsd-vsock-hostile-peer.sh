#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A hostile peer cannot hurt nfsd's vsock transport: against nfsd listening
# on vsock port 2049, tools/xv-peer sends, each on its own connection,
# an oversized fragment header, a flood of empty non-final fragments,
# garbage XDR, a REPLY-direction record, a call in byte-sized fragments, a
# large call in slow pieces, and half records followed by silence (more of
# them at once than nfsd has threads). Between and during these, nfsd
# keeps answering NULL
# calls; the kernel log gains one rate-limited line per closed
# connection, naming the peer as vsock:1, and nothing else.
# Needs the in-tree series and tools/xv-peer built.
# xv-cost: 35
set -euo pipefail
. "$XV_ROOT/scripts/guest/xv-lib.bash"

peer=$XV_ROOT/target/release/xv-peer
[[ -x $peer ]] || { echo "FAIL: no $peer (cargo build --release -p xv-peer)" >&2; exit 1; }
command -v rpc.nfsd >/dev/null || { echo "FAIL: missing tool: rpc.nfsd" >&2; exit 1; }

loaded=
mounted_nfsd=
# A failed step of the clean-up fails the case.
cleanup() {
	local status=$?
	set +e
	if [[ -e /proc/fs/nfsd/threads ]]; then rpc.nfsd 0 || status=1; fi
	if [[ -n $mounted_nfsd ]]; then umount /proc/fs/nfsd || status=1; fi
	if [[ -n $loaded ]]; then
		xv_unload_module || { echo "FAIL: clean-up: rmmod xprtvsock" >&2; status=1; }
	fi
	exit "$status"
}
trap cleanup EXIT

insmod "$xv_ko"
loaded=1
if ! mountpoint -q /proc/fs/nfsd; then
	mount -t nfsd nfsd /proc/fs/nfsd
	mounted_nfsd=1
fi
mkdir -p /var/lib/nfs/v4recovery
rpc.nfsd -N 3 --vsock 2049 4
threads=$(cat /proc/fs/nfsd/threads)
cat /proc/fs/nfsd/portlist

xv_mark 31
# The log after the marker's own line.
since_marker() { xv_since_marker | tail -n +2; }

null() { "$peer" --timeout 30 null; }
null
for scenario in oversized zero-flood garbage reply-dir null-frag big; do
	echo "--- $scenario"
	"$peer" --timeout 30 "$scenario"
	null
done

echo "--- half records: 2 x threads connections go silent for 8 s"
halves=()
for _ in $(seq $((2 * threads))); do
	"$peer" half=8 &
	halves+=($!)
done
sleep 1
for _ in 1 2 3; do
	null
done
for pid in "${halves[@]}"; do
	wait "$pid"
done
null

echo "--- kernel log since the first scenario"
since_marker
if xv_splats; then
	echo "FAIL: kernel splat" >&2
	exit 1
fi
for what in 'exceeds the limit' 'more than 1024 fragments'; do
	since_marker | grep -q "xprtvsock: vsock:1: .*$what.*; closing the connection" || {
		echo "FAIL: no log line for: $what" >&2
		exit 1
	}
done
# Our lines are rate-limited (net_ratelimit): the count of those it
# suppressed is logged too, when the scenarios come fast enough.
if since_marker | grep -vE 'xprtvsock: vsock:1: |net_ratelimit: [0-9]+ callbacks suppressed'; then
	echo "FAIL: unexpected kernel log lines (above)" >&2
	exit 1
fi
