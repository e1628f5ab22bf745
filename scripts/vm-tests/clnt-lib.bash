# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by the client cases 40-49 (and 21, 33-35, 60-62): loads
# xprtvsock.ko (and unloads it at the end), exports a tmpfs to the vsock
# client CID 1, starts nfsd with a vsock listener on port 2049 in this
# guest and mounts it over vsock loopback (CID 1), all with the commands an
# operator types: exportfs, rpc.mountd, rpc.nfsd --vsock and mount -t nfs4
# -o proto=vsock, from the project's nfs-utils (scripts/guest/enter puts
# them in place). The harness (scripts/guest/run-tests) starts every case
# with the module unloaded and fails a case that leaves it loaded.

. "$XV_ROOT/scripts/guest/xv-lib.bash"

xv_export=/tmp/xv-clnt-export
xv_mnt=
xv_loaded=
xv_mounted_nfsd=
xv_mounted_export=
xv_mountd_pid=

xv_skip() { echo "skip: $*" >&2; exit 77; }
xv_fail() { echo "FAIL: $*" >&2; exit 1; }

xv_check_log() {
	if xv_splats; then
		xv_fail "kernel splat"
	fi
}

# The EXIT trap (or its caller's, passing its status): undoes what
# xv_start did. A step that fails fails the
# case, which keeps its own status otherwise.
xv_cleanup() {
	local status=${1:-$?} failed=()
	set +e
	if [[ -n $xv_mnt ]]; then
		if mountpoint -q "$xv_mnt"; then
			umount -f "$xv_mnt" || failed+=("umount $xv_mnt")
		fi
		rmdir "$xv_mnt" || failed+=("rmdir $xv_mnt")
	fi
	if [[ -n $xv_mountd_pid ]]; then
		kill "$xv_mountd_pid"
		wait "$xv_mountd_pid" 2>/dev/null
	fi
	if [[ -e /proc/fs/nfsd/threads ]]; then
		rpc.nfsd 0 || failed+=("rpc.nfsd 0")
	fi
	exportfs -ua || failed+=("exportfs -ua")
	rm -f /etc/exports
	if [[ -n $xv_mounted_export ]]; then
		umount "$xv_export" || failed+=("umount $xv_export")
	fi
	if [[ -n $xv_mounted_nfsd ]]; then
		umount /proc/fs/nfsd || failed+=("umount /proc/fs/nfsd")
	fi
	if [[ -n $xv_loaded ]]; then
		xv_unload || failed+=("rmmod xprtvsock (refcnt $(cat /sys/module/xprtvsock/refcnt 2>/dev/null))")
	fi
	if [[ ${#failed[@]} -gt 0 ]]; then
		echo "FAIL: clean-up: ${failed[*]}" >&2
		exit 1
	fi
	exit "$status"
}

# xv_unload [SECONDS]: unloads xprtvsock (see xv_unload_module).
xv_unload() {
	xv_unload_module "$@" || return 1
	xv_loaded=
}

# xv_kmemleak_clean: fails the case if kmemleak finds a leak.
xv_kmemleak_clean() {
	kmemleak_clean || xv_fail "kmemleak reports leaks"
	echo "kmemleak: clean"
}

# Loads the module, starts nfsd on vsock port 2049 and creates a mount point.
xv_start() {
	for tool in rpc.nfsd rpc.mountd exportfs mount.nfs; do
		command -v "$tool" >/dev/null || xv_fail "missing: $tool"
	done
	[[ -f $xv_ko ]] || xv_fail "missing: $xv_ko"
	trap xv_cleanup EXIT
	xv_mark clnt
	insmod "$xv_ko" || xv_fail "insmod $xv_ko failed"
	xv_loaded=1
	ip link set lo up
	if ! mountpoint -q /proc/fs/nfsd; then
		mount -t nfsd nfsd /proc/fs/nfsd
		xv_mounted_nfsd=1
	fi
	mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs "$xv_export"
	# The guest's root is an overlay, which nfsd cannot export.
	mount -t tmpfs -o size=700M xv-clnt-export "$xv_export"
	xv_mounted_export=1
	# Secure (the default): the client must use a reserved source port.
	echo "$xv_export vsock:1(rw,no_subtree_check,no_root_squash,fsid=0)" >/etc/exports
	exportfs -ra
	xv_mountd_start || xv_fail "rpc.mountd did not open the auth.unix.ip channel"
	xv_nfsd_up
	xv_mnt=$(mktemp -d /tmp/xv-clnt.XXXXXX)
}

# Starts the nfsd threads and the vsock listener.
xv_nfsd_up() {
	xv_nfsd_tunables
	xv_nfsd_start || xv_fail "rpc.nfsd --vsock 2049 failed or portlist does not show it"
}

# xv_mount VERS [EXTRA-OPTIONS]
xv_mount() {
	local opts="vers=$1,proto=vsock${2:+,$2}"
	echo "\$ mount -t nfs4 -o $opts 1:/ $xv_mnt"
	timeout 120 mount -t nfs4 -o "$opts" 1:/ "$xv_mnt" ||
		xv_fail "mount -o $opts failed"
}

xv_umount() {
	timeout 60 umount "$xv_mnt" || xv_fail "umount $xv_mnt failed"
}
