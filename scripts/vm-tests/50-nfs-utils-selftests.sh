#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# nfs-utils' own test suite (the TESTS of tests/Makefile.am in its source:
# statd's MON and UNMON through nsm_client) against the patched build, here
# where it gets what dpkg-buildpackage's sandbox lacks and so skips: root,
# rpcbind and /dev/log. A skip is a failure.
# xv-cost: 24
set -euo pipefail
src=$(readlink -f "$XV_NFS_UTILS/../src")
work=$(mktemp -d /tmp/xv50.XXXXXX)
pids=()
cleanup() {
	set +e
	[[ -s /run/rpc.statd.pid ]] && kill "$(cat /run/rpc.statd.pid)" 2>/dev/null
	for pid in "${pids[@]}"; do kill "$pid"; done
	rm -rf "$work"
}
trap cleanup EXIT

tests=$(sed -n 's/^TESTS = //p' "$src/tests/Makefile.am")
[[ -n $tests ]] || { echo "FAIL: no TESTS in $src/tests/Makefile.am" >&2; exit 1; }
for tool in rpcbind rpcinfo socat hostname; do
	command -v "$tool" >/dev/null || { echo "FAIL: missing tool: $tool" >&2; exit 1; }
done

# The tests run from a copy: they write beside themselves, and the build
# tree is read-only in the guest. They find statd at ../utils/statd.
cp -a "$src/tests" "$work/tests"
mkdir -p "$work/utils/statd"
cp "$src/utils/statd/statd" "$work/utils/statd/"

ip link set lo up
mkdir -p /run/rpcbind /var/lib/nfs/statd/sm /var/lib/nfs/statd/sm.bak
[[ -e /dev/log ]] || {
	socat -u UNIX-RECV:/dev/log,unlink-early - >"$work/syslog" &
	pids+=($!)
}
rpcbind -f -w &
pids+=($!)
for _ in $(seq 50); do
	rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break
	sleep 0.2
done

failed=0
for t in $tests; do
	rc=0
	(cd "$work/tests" && srcdir=. bash "./$t") || rc=$?
	case $rc in
	0) echo "nfs-utils test $t: PASS" ;;
	77) echo "nfs-utils test $t: SKIP, which is a failure here"; failed=1 ;;
	*) echo "nfs-utils test $t: FAIL ($rc)"; failed=1 ;;
	esac
done
exit "$failed"
