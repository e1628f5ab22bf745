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
unloaded=
for _ in $(seq 50); do
	if rmmod xprtvsock 2>/dev/null; then
		unloaded=1
		break
	fi
	sleep 0.2
done
[[ -n $unloaded ]] || xv_fail "rmmod refused after umount: $(cat /sys/module/xprtvsock/refcnt)"
xv_loaded=
echo "rmmod after umount: ok"
kml=/sys/kernel/debug/kmemleak
if [[ -w $kml ]]; then
	sleep 6
	echo scan >"$kml"
	sleep 1
	echo scan >"$kml"
	if grep -q unreferenced "$kml"; then
		head -40 "$kml"
		xv_fail "kmemleak reports leaks"
	fi
	echo "kmemleak: clean"
fi
xv_check_log
