#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mount.nfs over vsock as an operator types it, on vsock loopback (the
# client is CID 1): proto=vsock with clientaddr= before or after it, as a
# bare CID or vsock:CID, or left out (the local CID is used); mount -t nfs4;
# fstab lines "1:/ MNT nfs4 proto=vsock" and "vsock:1:/ MNT nfs4 defaults"
# with mount -a, mount MNT, findmnt and umount agreeing with /proc/mounts.
# NFSv3 over vsock, a server that refuses, and every malformed address fail
# at once with a message that names them, never falling back to rpcbind,
# NFSv3 or another transport.
# xv-cost: 105
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

xv_start
fstab_saved=$(mktemp /tmp/xv47-fstab.XXXXXX)
cp /etc/fstab "$fstab_saved" 2>/dev/null || : >"$fstab_saved"
restore_fstab() {
	local status=$?
	cp "$fstab_saved" /etc/fstab
	rm -f "$fstab_saved"
	xv_cleanup "$status"
}
trap restore_fstab EXIT

# Mounted at $xv_mnt from SOURCE over vsock, with clientaddr=vsock:1.
check_mounted() {
	local line
	line=$(grep " $xv_mnt " /proc/mounts) || xv_fail "$xv_mnt is not in /proc/mounts"
	echo "  /proc/mounts: $line"
	[[ $line == "$1 $xv_mnt nfs4 "* ]] || xv_fail "/proc/mounts source is not $1"
	[[ $line == *",proto=vsock,"* && $line == *",addr=vsock:1"* ]] ||
		xv_fail "/proc/mounts lacks proto=vsock or addr=vsock:1"
	[[ $line == *",clientaddr=vsock:1,"* ]] || xv_fail "/proc/mounts lacks clientaddr=vsock:1"
	[[ $(findmnt -n -o SOURCE "$xv_mnt") == "$1" ]] || xv_fail "findmnt disagrees with /proc/mounts"
	echo "xv47 $RANDOM" >"$xv_mnt/probe" && sync && [[ -s $xv_export/probe ]] ||
		xv_fail "a file written through $xv_mnt is not in the export"
}

# mounts CMD...: runs an operator's mount command, checks, unmounts.
mounts() {
	echo "\$ $*"
	timeout 120 "$@" || xv_fail "$* failed"
	check_mounted "${source:-1:/}"
	timeout 60 umount "$xv_mnt" || xv_fail "umount $xv_mnt failed"
}

# refused CMD...: the command fails within 60 s with a message that
# matches $expect (a grep -E pattern), and nothing is mounted.
refused() {
	local rc=0 out
	echo "\$ $*"
	out=$(timeout 60 "$@" 2>&1) || rc=$?
	echo "  $out" | head -n 3
	[[ $rc != 0 ]] || { umount "$xv_mnt"; xv_fail "$* succeeded"; }
	[[ $rc != 124 ]] || xv_fail "$* hung"
	grep -qiE -- "$expect" <<<"$out" || xv_fail "the message of $* does not match '$expect'"
	! mountpoint -q "$xv_mnt" || xv_fail "$xv_mnt is mounted after a failure"
}

mounts mount.nfs 1:/ "$xv_mnt" -o proto=vsock,clientaddr=1
mounts mount.nfs 1:/ "$xv_mnt" -o clientaddr=1,proto=vsock
mounts mount.nfs 1:/ "$xv_mnt" -o proto=vsock,clientaddr=vsock:1
mounts mount.nfs 1:/ "$xv_mnt" -o proto=vsock
mounts mount -t nfs4 -o proto=vsock 1:/ "$xv_mnt"
source=vsock:1:/ mounts mount.nfs vsock:1:/ "$xv_mnt"

echo "--- fstab"
for entry in "1:/ $xv_mnt nfs4 proto=vsock 0 0" "vsock:1:/ $xv_mnt nfs4 defaults 0 0"; do
	source=${entry%% *}
	{ cat "$fstab_saved"; echo "$entry"; } >/etc/fstab
	echo "fstab: $entry"
	mounts mount "$xv_mnt"
	echo "\$ mount -a -t nfs4 (twice)"
	timeout 120 mount -a -t nfs4 || xv_fail "mount -a failed"
	timeout 120 mount -a -t nfs4 || xv_fail "a second mount -a failed: fstab and /proc/mounts disagree"
	check_mounted "$source"
	[[ $(grep -c " $xv_mnt " /proc/mounts) == 1 ]] || xv_fail "mount -a mounted $source twice"
	[[ $(findmnt -n -o SOURCE --fstab --target "$xv_mnt") == "$source" ]] || xv_fail "findmnt --fstab disagrees"
	timeout 60 umount "$xv_mnt" || xv_fail "umount $xv_mnt (fstab $source) failed"
done
cp "$fstab_saved" /etc/fstab
unset source

echo "--- NFSv4 only, no fallback"
expect='version 4|NFSv4'
refused mount.nfs 1:/ "$xv_mnt" -o vers=3,proto=vsock
refused mount.nfs 1:/ "$xv_mnt" -o proto=vsock,nfsvers=3
refused mount -t nfs -o vers=3 vsock:1:/ "$xv_mnt"
expect='address|CID|vsock'
refused mount.nfs nohost:/ "$xv_mnt" -o proto=vsock
# The listener gone, the server refuses: an error, not TCP or NFSv3.
rpc.nfsd 0
expect='refused|timed out|No such device|reset'
refused mount.nfs 1:/ "$xv_mnt" -o proto=vsock,retry=0
xv_nfsd_up

echo "--- malformed addresses"
for bad in vsock: vsock:x vsock:4294967296 vsock:-1 vsock:1x; do
	expect=$bad
	refused mount.nfs "$bad:/" "$xv_mnt"
	refused mount.nfs 1:/ "$xv_mnt" -o "proto=vsock,clientaddr=$bad"
	refused mount.nfs 1:/ "$xv_mnt" -o "proto=vsock,addr=$bad"
done
expect='clientaddr'
refused mount.nfs 1:/ "$xv_mnt" -o proto=vsock,clientaddr=
xv_check_log
