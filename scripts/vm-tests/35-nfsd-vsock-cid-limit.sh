#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# nfsd's vsock listener limits the connections of each peer CID
# (max_conns_per_cid) and leaves alone those it has. With this case's own
# NFS mount over vsock loopback (CID 1) open, the limit is set through
# sysfs to the mount's connections plus 3; three tools/xv-peer connections
# that go silent (half=SECS) fill it, and three more, each with a NULL
# call, are refused at accept: closed before any reply. The mount keeps
# working meanwhile. /sys/kernel/debug/xprtvsock/connections shows CID 1
# at the limit with three refusals and the kernel log names vsock:1 and
# the limit; once the silent peers have closed, the counts are the
# mount's again and a NULL call is served. A limit of the mount's own
# count refuses the next connection, 0 refuses none, and after the
# unmount CID 1 has no connection left but keeps its refusals. Needs the
# in-tree series and tools/xv-peer built.
# xv-cost: 62
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

peer=$XV_ROOT/target/release/xv-peer
[[ -x $peer ]] || xv_fail "no $peer (cargo build --release -p xv-peer)"
conns=/sys/kernel/debug/xprtvsock/connections
param=/sys/module/xprtvsock/parameters/max_conns_per_cid

xv_start
[[ -r $conns ]] || xv_fail "no $conns"
saved_limit=$(cat "$param")
restore_limit() {
	local status=$?
	set +e
	[[ -w $param ]] && echo "$saved_limit" >"$param"
	xv_cleanup "$status"
}
trap restore_limit EXIT

# field CID|all COLUMN: a column of the accounting file's line (0 without one).
field() {
	awk -v key="$1" -v col="$2" \
		'$1 == key { print $col; found = 1 } END { if (!found) print 0 }' "$conns"
}
live() { field "$1" 2; }
refused() { field "$1" 3; }
# wait_live CID N: CID has N connections within 30 s (a connection counts
# until nfsd frees it).
wait_live() {
	for _ in $(seq 150); do
		[[ $(live "$1") == "$2" ]] && return 0
		sleep 0.2
	done
	cat "$conns"
	xv_fail "CID $1 has $(live "$1") connections, not $2"
}
# refused_null: a NULL call on a new connection must not be answered.
refused_null() {
	local out
	if out=$("$peer" --timeout 10 null); then
		echo "$out"
		cat "$conns"
		xv_fail "a connection beyond the limit was served"
	fi
	echo "refused, as expected: $out"
}
# check_mount WHAT: the mount still writes and reads back.
check_mount() {
	local data=$xv_mnt/xv-cid-limit
	head -c 1048576 /dev/urandom >/tmp/xv-cid-limit
	{ cp /tmp/xv-cid-limit "$data" && sync "$data"; } || xv_fail "write through the mount failed ($1)"
	echo 3 >/proc/sys/vm/drop_caches
	cmp /tmp/xv-cid-limit "$data" || xv_fail "read through the mount differs ($1)"
	echo "mount works ($1): ok"
}

echo "--- accounting before the mount"
cat "$conns"
[[ $(head -n 1 "$conns") == "cid live refused calls" ]] || xv_fail "unexpected header in $conns"
[[ $(live 1) == 0 ]] || xv_fail "CID 1 has connections before the mount"
refused0=$(refused 1)

xv_mount 4.2
check_mount "mounted"
base=$(live 1)
((base >= 1)) || xv_fail "the mount's connection is not counted for CID 1"
limit=$((base + 3))
echo "$limit" >"$param"
echo "--- mount: $base connection(s) of CID 1; max_conns_per_cid=$limit"

halves=()
for _ in 1 2 3; do
	"$peer" --timeout 30 half=20 &
	halves+=($!)
done
wait_live 1 "$limit"
echo "--- three more connections beyond the limit"
for _ in 1 2 3; do
	refused_null
done
cat "$conns"
[[ $(refused 1) == $((refused0 + 3)) ]] || xv_fail "CID 1 shows $(refused 1) refusals, not $((refused0 + 3))"
[[ $(live 1) == "$limit" ]] || xv_fail "CID 1 has $(live 1) connections, not $limit"
[[ $(field all 2) == "$limit" ]] || xv_fail "the sum of connections is not $limit"
check_mount "at the limit"
xv_since_marker | grep -q "xprtvsock: vsock:1: at the limit of $limit connections per CID (max_conns_per_cid); refusing a connection" ||
	xv_fail "no log line for the refusals"

echo "--- the silent peers close"
for pid in "${halves[@]}"; do
	wait "$pid" || true
done
wait_live 1 "$base"
"$peer" --timeout 20 null || xv_fail "a connection within the limit was refused"
wait_live 1 "$base"

echo "--- max_conns_per_cid=$base (the mount's), then 0 (no limit)"
echo "$base" >"$param"
refused_null
echo 0 >"$param"
"$peer" --timeout 20 null || xv_fail "a connection was refused without a limit"
check_mount "after the refusals"
[[ $(refused 1) == $((refused0 + 4)) ]] || xv_fail "CID 1 shows $(refused 1) refusals, not $((refused0 + 4))"

xv_umount
wait_live 1 0
cat "$conns"
[[ $(refused 1) == $((refused0 + 4)) ]] || xv_fail "CID 1 lost its refusals"
[[ $(field all 2) == 0 ]] || xv_fail "connections left after the unmount"
[[ $(field all 3) -ge $((refused0 + 4)) ]] || xv_fail "the total misses refusals"
xv_check_log
