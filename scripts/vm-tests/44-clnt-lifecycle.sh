#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# xprtvsock.ko cannot be unloaded while a vsock mount uses it and can be
# after unmounting (and stopping nfsd's vsock listener); mount/umount
# cycles (5 in make check, 20 in make stress) leave no leak behind
# (kmemleak).
# xv-cost: 50
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

xv_start
xv_mount 4.2
# nfsd's vsock listener pins the module too: stop it, so that the mount
# alone holds it when rmmod is refused.
rpc.nfsd 0
[[ $(cat /proc/fs/nfsd/threads) == 0 ]] && ! grep -q vsock /proc/fs/nfsd/portlist ||
	xv_fail "nfsd or its vsock listener still runs after rpc.nfsd 0"
refcnt=$(cat /sys/module/xprtvsock/refcnt)
((refcnt > 0)) || xv_fail "the mount holds no reference on xprtvsock"
if rmmod xprtvsock 2>/dev/null; then
	xv_fail "rmmod succeeded while mounted"
fi
echo "rmmod refused while only the mount uses the module: ok (refcnt $refcnt)"
xv_nfsd_up
xv_umount
cycles=$(xv_sized 5 20)
for i in $(seq "$cycles"); do
	xv_mount 4.2
	echo "$i" >"$xv_mnt/cycle"
	xv_umount
done
[[ $(cat "$xv_export/cycle") == "$cycles" ]] || xv_fail "cycle writes lost"
rpc.nfsd 0
xv_unload || xv_fail "rmmod refused after umount: refcnt $(cat /sys/module/xprtvsock/refcnt)"
echo "rmmod after umount: ok"
xv_kmemleak_clean
xv_check_log
