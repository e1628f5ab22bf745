#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# proto=vsock without a vsock transport: the mount fails at once with a
# message that names the transport (and no kernel warning, no hang), and
# proto=vsockx fails naming the bad value. Needs the in-tree series; the
# transport module must not be loaded or loadable by modprobe.
set -euo pipefail

transports=/proc/sys/sunrpc/transports
if [[ -e /sys/module/xprtvsock ]] || grep -qw vsock "$transports" 2>/dev/null; then
	echo "skip: a vsock RPC transport is registered already" >&2
	exit 77
fi
if modprobe -n -q rpcvsock 2>/dev/null; then
	echo "skip: modprobe can load rpcvsock on this guest" >&2
	exit 77
fi

mnt=$(mktemp -d /tmp/xv21.XXXXXX)
marker="xv-test-21-$$-$RANDOM"
echo "$marker" >/dev/kmsg
since_marker() { dmesg | sed -n "/$marker/,\$p"; }
splat='(Oops|BUG:|WARNING:|Kernel panic|Call Trace:|general protection fault)'

try_mount() { # expect failure, within a bound
	local rc=0
	echo "\$ mount -i -t nfs4 -o $1 $2 $mnt"
	timeout 60 mount -i -t nfs4 -o "$1" "$2" "$mnt" || rc=$?
	if [[ $rc == 0 ]]; then
		umount "$mnt" || true
		echo "FAIL: mount -o $1 succeeded" >&2
		exit 1
	fi
	if [[ $rc == 124 ]]; then
		echo "FAIL: mount -o $1 hung (killed after 60 s)" >&2
		exit 1
	fi
	echo "mount failed as expected (status $rc)"
}
expect_log() {
	if ! since_marker | grep -qF -- "$1"; then
		echo "FAIL: kernel log does not say: $1" >&2
		since_marker >&2
		exit 1
	fi
	echo "kernel log: $1"
}

try_mount proto=vsock,addr=vsock:1 1:/
expect_log "NFS: Transport protocol 'vsock' is not available"

try_mount vers=4.1,proto=vsock,addr=1,clientaddr=1 1:/
try_mount proto=vsockx,addr=vsock:1 1:/
expect_log "NFS: Unrecognized transport protocol 'vsockx'"

if grep -qw vsock "$transports" 2>/dev/null; then
	echo "FAIL: a vsock transport appeared" >&2
	exit 1
fi
if since_marker | grep -aE "$splat"; then
	echo "FAIL: kernel splat" >&2
	exit 1
fi
echo "--- kernel log"
since_marker
rmdir "$mnt"
