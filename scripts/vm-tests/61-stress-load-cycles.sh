#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# XV61_CYCLES cycles (3 in make check, 100 in make stress) of insmod, nfsd's
# vsock listener up, mount over vsock, a checked write and read, umount,
# nfsd down, rmmod. Every fifth cycle and the last move 16 MiB each way with
# O_DIRECT, so zero-copy sends are in flight just before the unmount, and
# rmmod follows at once: the window in which a zero-copy completion could
# outlive the module. Afterwards kmemleak reports nothing and the kernel
# log has no splat.
# xv-timeout: 900 3000
# xv-cost: 70
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

cycles=${XV61_CYCLES:-$(xv_sized 3 100)}
xv_start
rpc.nfsd 0
rmmod xprtvsock
xv_loaded=

start=$SECONDS
heavy=0
for i in $(seq "$cycles"); do
	insmod "$xv_ko"
	xv_loaded=1
	xv_nfsd_up
	# A fresh nfsd has no client to wait for: no grace period.
	echo Y >/proc/fs/nfsd/v4_end_grace
	xv_mount 4.2 >/dev/null
	echo "$i" >"$xv_mnt/cycle"
	[[ $(cat "$xv_mnt/cycle") == "$i" ]] || xv_fail "cycle $i: read back differs"
	if ((i % 5 == 0 || i == cycles)); then
		dd if=/dev/urandom of="$xv_mnt/heavy" bs=1M count=16 oflag=direct status=none
		dd if="$xv_mnt/heavy" of=/dev/null bs=1M iflag=direct status=none
		heavy=$((heavy + 1))
	fi
	xv_umount
	rpc.nfsd 0
	xv_unload || xv_fail "cycle $i: rmmod refused: refcnt $(cat /sys/module/xprtvsock/refcnt)"
	((i % 5)) || echo "cycle $i at $((SECONDS - start)) s"
done
[[ $(cat "$xv_export/cycle") == "$cycles" ]] || xv_fail "the last cycle's write is lost"
echo "figure: cycles: $cycles load/mount/umount/unload in $((SECONDS - start)) s ($heavy with 32 MiB of O_DIRECT traffic before rmmod)"

xv_kmemleak_clean
xv_check_log
