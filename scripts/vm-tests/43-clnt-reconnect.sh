#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# nfsd restarts (threads and listeners torn down, then the vsock listener
# added again) during a write loop: the client reconnects, every write
# completes, and every file has the content written (20 files of 256 KiB
# in make check, 40 in make stress).
# xv-cost: 103
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

xv_start
xv_mount 4.2
mkdir -p /tmp/xv43
files=$(xv_sized 20 40)
writer() {
	local i
	for i in $(seq "$files"); do
		head -c 262144 /dev/urandom >"/tmp/xv43/$i"
		cp "/tmp/xv43/$i" "$xv_mnt/f$i"
		sync "$xv_mnt/f$i"
	done
}
writer &
writer_pid=$!
# Field 5 of the xprt line (after "xprt:", netid, srcport, binds) counts
# connects.
sleep 3
connects_before=$(grep -A 30 "mounted on $xv_mnt " /proc/self/mountstats |
	awk '$1 == "xprt:" { print $5; exit }')
echo "stopping nfsd (connects so far: $connects_before)"
rpc.nfsd 0
sleep 5
echo "starting nfsd"
xv_nfsd_up
timeout 300 tail --pid="$writer_pid" -f /dev/null || xv_fail "writer hung"
wait "$writer_pid" || xv_fail "a write failed"
connects_after=$(grep -A 30 "mounted on $xv_mnt " /proc/self/mountstats |
	awk '$1 == "xprt:" { print $5; exit }')
echo "connects: $connects_before -> $connects_after"
[[ $connects_after -gt $connects_before ]] || xv_fail "the client did not reconnect"
echo 3 >/proc/sys/vm/drop_caches
for i in $(seq "$files"); do
	cmp "/tmp/xv43/$i" "$xv_mnt/f$i" || xv_fail "f$i differs"
done
echo "$files files verified"
rm -rf /tmp/xv43 "$xv_mnt"/f*
xv_umount
xv_check_log
