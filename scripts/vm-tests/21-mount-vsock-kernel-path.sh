#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The kernel's side of proto=vsock, driven with "mount -i" (no mount.nfs):
# the one case that mounts without nfs-utils, so that the kernel's own
# parsing is proven whatever mount.nfs passes it.
#
# Without a vsock transport the mount fails at once with a message that
# names the transport (and no kernel warning, no hang), and proto=vsockx
# fails naming the bad value. With xprtvsock loaded, addr= and clientaddr=
# take bare CIDs before or after proto=vsock, the device name may be
# "vsock:CID:/path" and /proc/mounts shows it as given, and bad vsock
# addresses fail naming the option. Needs the in-tree series; the harness
# starts it with no vsock transport registered. A machine whose modprobe
# can load the transport (an installed xprtvsock) cannot run it.
# xv-cost: 48
set -euo pipefail
. "$XV_ROOT/scripts/guest/xv-lib.bash"

transports=/proc/sys/sunrpc/transports
if modprobe -n -q rpcvsock 2>/dev/null; then
	echo "skip: modprobe can load rpcvsock on this machine" >&2
	exit 77
fi

mnt=$(mktemp -d /tmp/xv21.XXXXXX)
trap 'rmdir "$mnt"' EXIT
xv_mark 21

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
	if ! xv_since_marker | grep -qF -- "$1"; then
		echo "FAIL: kernel log does not say: $1" >&2
		xv_since_marker >&2
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
if xv_splats; then
	echo "FAIL: kernel splat" >&2
	exit 1
fi
echo "--- kernel log"
xv_since_marker
rmdir "$mnt"

echo "--- with the transport"
. "$(dirname "$0")/clnt-lib.bash"
xv_start
mnt=$xv_mnt
# mount -i OPTIONS DEVICE EXPECTED-SOURCE: mounts, checks /proc/mounts and
# the transport, unmounts.
mounts() {
	echo "\$ mount -i -t nfs4 -o $1 $2 $mnt"
	timeout 120 mount -i -t nfs4 -o "$1" "$2" "$mnt" || xv_fail "mount -o $1 $2 failed"
	grep -q "^$3 $mnt nfs4 .*proto=vsock" /proc/mounts ||
		xv_fail "/proc/mounts does not show $3 over vsock: $(grep " $mnt " /proc/mounts)"
	grep -A 30 "device $3 mounted on $mnt" /proc/self/mountstats | grep -q $'\txprt:\tvsock ' ||
		xv_fail "mountstats of $3 name no vsock transport"
	xv_umount
}
mounts vers=4.2,proto=vsock,addr=1,clientaddr=1 1:/ 1:/
mounts vers=4.2,clientaddr=1,addr=1,proto=vsock 1:/ 1:/
mounts clientaddr=vsock:1,vers=4.1,addr=vsock:1,proto=vsock 1:/ 1:/
mounts addr=1,proto=vsock,vers=4.2 vsock:1:/ vsock:1:/

# Without proto=vsock a bare CID is no address.
try_mount addr=1,vers=4.2 1:/
try_mount vers=4.2,addr=x,proto=vsock 1:/
expect_log "NFS: Bad vsock address in 'addr=x'"
try_mount vers=4.2,clientaddr=vsock:-1,addr=1,proto=vsock 1:/
expect_log "NFS: Bad vsock address in 'clientaddr=vsock:-1'"
try_mount vers=4.2,addr=4294967296,proto=vsock 1:/
expect_log "NFS: Bad vsock address in 'addr=4294967296'"
try_mount vers=4.2,addr=vsock:1,proto=tcp 1:/
xv_check_log
