#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A peer that stops reading its replies, then sends more calls: its
# stalled READ reply holds one thread until the 30 s send bound closes the
# connection, no thread takes its later calls, and other peers are
# answered meanwhile.
#
# Zero-copy packets outlive the connection that sent them. Over vsock
# loopback, tools/xv-peer asks nfsd for a 64 KiB READ and leaves the reply
# unread: its pages sit by reference in the peer's receive queue, holding
# the connection's completion handle. Once nfsd is stopped ("rpc.nfsd 0")
# the module must still refuse to unload, because those packets will call
# its completion code when they are freed; once the peer has closed, it
# unloads. Nothing oopses. Needs the in-tree series and tools/xv-peer
# built.
# xv-cost: 68
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

peer=$XV_ROOT/target/release/xv-peer
[[ -x $peer ]] || xv_fail "no $peer (cargo build --release -p xv-peer)"
xv_start
# xv-peer calls with AUTH_NONE from an unprivileged port: the export must
# allow both.
echo "$xv_export vsock:1(rw,insecure,sec=sys:none,no_subtree_check,no_root_squash,fsid=0)" >/etc/exports
exportfs -ra
# A READ with the anonymous stateid gets NFS4ERR_GRACE during the grace
# period, and this nfsd has no client to wait for.
echo Y >/proc/fs/nfsd/v4_end_grace
head -c 65536 /dev/urandom >"$xv_export/xv-peer-data"
chmod 644 "$xv_export/xv-peer-data"
threads=$(cat /proc/fs/nfsd/threads)

echo "--- a peer that stops reading, then sends more calls"
"$peer" --timeout 60 stall=45 &
stall=$!
sleep 5
# Only the stalled reply holds a thread: the others answer at once.
"$peer" --timeout 5 null || xv_fail "no answer while a reply is stalled"
wait "$stall" || xv_fail "xv-peer stall failed"
"$peer" --timeout 30 null || xv_fail "no answer after the stalled peer"
[[ $(cat /proc/fs/nfsd/threads) == "$threads" ]] || xv_fail "nfsd threads changed"
xv_since_marker | grep -qE "xprtvsock: vsock:1: (sent [0-9]+ of [0-9]+ reply bytes|reply of [0-9]+ bytes failed).*; closing the connection" ||
	xv_fail "no log line for the stalled reply's close"

echo "--- a reply left unread while the module is unloaded"

"$peer" --timeout 30 read-unread=10 &
holder=$!
sleep 4
rpc.nfsd 0
grep -q vsock /proc/fs/nfsd/portlist 2>/dev/null && xv_fail "vsock listener left after rpc.nfsd 0"
if rmmod xprtvsock 2>/dev/null; then
	xv_loaded=
	xv_fail "rmmod succeeded while packets of an unread reply held the module's code"
fi
echo "rmmod refused while the reply is unread: ok (refcnt $(cat /sys/module/xprtvsock/refcnt))"
wait "$holder" || xv_fail "xv-peer read-unread failed"
xv_unload 15 || xv_fail "rmmod refused after the peer closed: refcnt $(cat /sys/module/xprtvsock/refcnt)"
echo "rmmod after the peer closed: ok"
xv_check_log
