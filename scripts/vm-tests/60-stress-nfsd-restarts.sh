#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# nfsd stopped and started (XV60_RESTARTS: 3 times in make check, 10 in
# make stress) while a client writes
# over an NFSv4.2 vsock mount: every file fio wrote, each block carrying a
# CRC-32C, reads back intact from the server after dropping caches. The
# client's writes block across each restart (a hard mount) and resume; none
# fails, no byte is corrupt. Each restart waits until the client has
# finished the file it interrupted, so that every restart cuts into a
# different file.
# xv-timeout: 900 1800
# xv-cost: 100
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

command -v fio >/dev/null || xv_fail "missing: fio"
restarts=${XV60_RESTARTS:-$(xv_sized 3 10)}
xv_start
xv_mount 4.2 rsize=1048576,wsize=1048576

# Writes 4 MiB verified files one after another until the stop file appears;
# the file being written is numbered in xv60-started.
stop=/tmp/xv60-stop
rm -f "$stop" /tmp/xv60-started
writer() {
	local n=0
	while [[ ! -e $stop ]]; do
		n=$((n + 1))
		# Renamed into place, so that a reader never sees it empty.
		echo "$n" >/tmp/xv60-started.new
		mv /tmp/xv60-started.new /tmp/xv60-started
		fio --name="w$n" --filename="$xv_mnt/w$n" --rw=write --bs=1M --size=4M \
			--ioengine=psync --end_fsync=1 --verify=crc32c --do_verify=0 \
			--verify_state_save=0 --output-format=terse >/dev/null ||
			{ echo "writer: fio w$n failed" >&2; return 1; }
	done
}
writer &
writer_pid=$!

# wait_progress N: the writer starts a file after file N within 300 s.
wait_progress() {
	local end=$((SECONDS + 300))
	while (($(cat /tmp/xv60-started) <= $1)); do
		kill -0 "$writer_pid" 2>/dev/null || xv_fail "the writer ended after restart $i"
		((SECONDS < end)) || xv_fail "the client did not finish file $1 within 300 s of restart $i"
		sleep 0.5
	done
}

start=$SECONDS
for i in $(seq "$restarts"); do
	sleep 2
	cut=$(cat /tmp/xv60-started)
	rpc.nfsd 0
	sleep 1
	xv_nfsd_up
	restarted=$SECONDS
	wait_progress "$cut"
	echo "restart $i at $((restarted - start)) s cut into file $cut; the client finished it $((SECONDS - restarted)) s later"
done
# Let the client reclaim and write a last file after the last restart.
sleep 5
touch "$stop"
wait "$writer_pid" || xv_fail "a write failed across the restarts"
files=$(cat /tmp/xv60-started)

sync
echo 3 >/proc/sys/vm/drop_caches
for n in $(seq "$files"); do
	fio --name="w$n" --filename="$xv_mnt/w$n" --rw=write --bs=1M --size=4M \
		--ioengine=psync --verify=crc32c --verify_only --verify_fatal=1 \
		--verify_state_save=0 --output-format=terse >/dev/null ||
		xv_fail "w$n does not verify after the restarts"
done
echo "figure: restarts: $restarts in $((SECONDS - start)) s, each into another file; verified $files files, $((files * 4)) MiB, 0 corrupt"
rm -f "$xv_mnt"/w*
xv_umount
xv_check_log
