#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Exports to vsock clients as an operator writes them, on vsock loopback
# (the client is CID 1): /etc/exports lines with vsock:1, vsock:*, a plain
# *, and vsock and IP clients on one line, each mounted; exportfs -ra and
# -v showing them; the command-line forms exportfs vsock:1:/path and
# exportfs -u vsock:1:/path; CID 1 refused with "access denied" within
# 30 s by an export to vsock:5 alone (rpc.mountd answers the auth.unix.ip
# upcall for vsock:1 by matching the client specs) and after the unexport;
# and malformed vsock clients in an exports line or on the command line
# refused with a message naming them.
# xv-cost: 50
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

xv_start
opts=no_subtree_check,no_root_squash,fsid=0

# exports LINE: makes /etc/exports that one line and re-exports.
exports() {
	echo "$1" >/etc/exports
	echo "/etc/exports: $1"
	exportfs -ra || xv_fail "exportfs -ra failed for: $1"
}

# mounts_rw / mounts_ro: CID 1 mounts the export, and can (or cannot) write.
mounts() {
	echo "\$ mount -t nfs4 -o proto=vsock,retry=0 1:/ $xv_mnt"
	timeout 120 mount -t nfs4 -o proto=vsock,retry=0 1:/ "$xv_mnt" || xv_fail "mount failed"
	if [[ $1 == rw ]]; then
		echo xv48 >"$xv_mnt/rw" || xv_fail "cannot write to a rw export"
	elif echo xv48 >"$xv_mnt/ro" 2>/dev/null; then
		xv_fail "could write to a ro export"
	fi
	timeout 60 umount "$xv_mnt" || xv_fail "umount failed"
}

# denied SECONDS: CID 1's mount fails with "access denied" within SECONDS.
denied() {
	local rc=0 out start=$SECONDS
	echo "\$ mount -t nfs4 -o proto=vsock,retry=0 1:/ $xv_mnt (expect access denied)"
	out=$(timeout 120 mount -t nfs4 -o proto=vsock,retry=0 1:/ "$xv_mnt" 2>&1) || rc=$?
	echo "  $out (status $rc, $((SECONDS - start)) s)"
	[[ $rc != 0 ]] || { umount "$xv_mnt"; xv_fail "CID 1 mounted an export it is not admitted to"; }
	[[ $((SECONDS - start)) -le $1 ]] || xv_fail "the refusal took more than $1 s"
	grep -qi 'access denied' <<<"$out" || xv_fail "the refusal does not say access denied"
}

exports "$xv_export vsock:1(rw,$opts)"
exportfs -v | tee /dev/stderr | grep -q 'vsock:1(' || xv_fail "exportfs -v does not show vsock:1"
mounts rw
exports "$xv_export vsock:*(ro,$opts)"
exportfs -v | grep -q 'vsock:\*(' || xv_fail "exportfs -v does not show vsock:*"
mounts ro
exports "$xv_export *(rw,$opts)"
mounts rw
exports "$xv_export 127.0.0.1(ro,$opts) vsock:1(rw,$opts) vsock:7(ro,$opts)"
exportfs -v | grep -q '127.0.0.1(' || xv_fail "exportfs -v lost the IP client"
mounts rw

echo "--- a CID no export admits"
exports "$xv_export vsock:5(rw,$opts)"
denied 30

echo "--- the command line"
: >/etc/exports
exportfs -ra
echo "\$ exportfs -o rw,$opts vsock:1:$xv_export"
exportfs -o "rw,$opts" "vsock:1:$xv_export" || xv_fail "exportfs vsock:1:$xv_export failed"
exportfs -v | grep -q 'vsock:1(' || xv_fail "exportfs -v does not show the command-line export"
mounts rw
echo "\$ exportfs -u vsock:1:$xv_export"
exportfs -u "vsock:1:$xv_export" || xv_fail "exportfs -u vsock:1:$xv_export failed"
! exportfs -v | grep -q 'vsock:1(' || xv_fail "vsock:1 is still exported"
# The client retries a call refused with AUTH_BADCRED twice, each time on
# a new connection: the bound also checks that it reconnects at once, from
# another port, rather than backing off against the connection it closed.
denied 30

echo "--- malformed clients"
for bad in vsock: vsock:x vsock:4294967296 vsock:-1 vsock:1x vsock:4294967295; do
	echo "$xv_export $bad(rw,$opts)" >/etc/exports
	rc=0
	out=$(exportfs -ra 2>&1) || rc=$?
	echo "  exportfs -ra with '$bad': $out (status $rc)"
	[[ $rc != 0 ]] || xv_fail "exportfs -ra accepted '$bad'"
	grep -qF -- "'$bad'" <<<"$out" || xv_fail "exportfs does not name '$bad'"
	rc=0
	out=$(exportfs -o rw "$bad:$xv_export" 2>&1) || rc=$?
	[[ $rc != 0 ]] || xv_fail "exportfs $bad:$xv_export succeeded"
	grep -qF -- "$bad" <<<"$out" || xv_fail "exportfs does not name '$bad' on the command line"
done
: >/etc/exports
exportfs -ra
xv_check_log
