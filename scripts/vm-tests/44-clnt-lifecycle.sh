#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# xprtvsock.ko cannot be unloaded while a vsock mount uses it and can be
# after unmounting (and stopping nfsd's vsock listener); 20 mount/umount
# cycles leave no leak behind (kmemleak).
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

[[ ! -e /sys/module/xprtvsock ]] || xv_skip "xprtvsock is loaded already"
xv_start
xv_mount 4.2
if rmmod xprtvsock 2>/dev/null; then
	xv_fail "rmmod succeeded while mounted"
fi
echo "rmmod refused while mounted: ok"
xv_umount
for i in $(seq 20); do
	xv_mount 4.2
	echo "$i" >"$xv_mnt/cycle"
	xv_umount
done
[[ $(cat "$xv_export/cycle") == 20 ]] || xv_fail "cycle writes lost"
rpc.nfsd 0
xv_unload || xv_fail "rmmod refused after umount: refcnt $(cat /sys/module/xprtvsock/refcnt)"
echo "rmmod after umount: ok"
xv_kmemleak_clean
xv_check_log
