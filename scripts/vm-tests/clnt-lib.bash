# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by the client cases 40-49 (and 33, 34): loads xprtvsock.ko (and
# unloads it at the end if this case loaded it, so that the no-transport
# cases still find it absent), exports a tmpfs to the vsock client CID 1,
# starts nfsd with a vsock listener on port 2049 in this guest and mounts it
# over vsock loopback (CID 1), all with the commands an operator types:
# exportfs, rpc.mountd, rpc.nfsd --vsock and mount -t nfs4 -o proto=vsock,
# from the project's nfs-utils (scripts/guest/enter puts them in place).

. "$XV_ROOT/scripts/guest/kmemleak.bash"

xv_ko=$XV_ROOT/xprtvsock.ko
xv_export=/tmp/xv-clnt-export
xv_mnt=
xv_loaded=
xv_mounted_nfsd=
xv_mounted_export=
xv_mountd_pid=
xv_marker=

xv_skip() { echo "skip: $*" >&2; exit 77; }
xv_fail() { echo "FAIL: $*" >&2; exit 1; }

xv_since_marker() { dmesg | sed -n "/$xv_marker/,\$p"; }

xv_check_log() {
	local splat='(Oops|BUG:|WARNING:|Kernel panic|Call Trace:|general protection fault|blocked for more than|UBSAN:)'
	if xv_since_marker | grep -aE "$splat"; then
		xv_fail "kernel splat"
	fi
}

xv_cleanup() {
	set +e
	if [[ -n $xv_mnt ]]; then
		mountpoint -q "$xv_mnt" && umount -f "$xv_mnt"
		rmdir "$xv_mnt"
	fi
	[[ -n $xv_mountd_pid ]] && kill "$xv_mountd_pid" && wait "$xv_mountd_pid" 2>/dev/null
	[[ -e /proc/fs/nfsd/threads ]] && rpc.nfsd 0
	exportfs -ua
	rm -f /etc/exports
	[[ -n $xv_mounted_export ]] && umount "$xv_export"
	[[ -n $xv_mounted_nfsd ]] && umount /proc/fs/nfsd
	[[ -n $xv_loaded ]] && xv_unload
}

# xv_unload [SECONDS]: unloads xprtvsock, retrying for up to SECONDS (10):
# the module stays pinned for a moment while transports are destroyed, and
# vsock may keep a closed socket, with zero-copy packets, for up to 8 s.
xv_unload() {
	local end=$((SECONDS + ${1:-10}))
	until rmmod xprtvsock 2>/dev/null; do
		((SECONDS < end)) || return 1
		sleep 0.2
	done
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
	xv_marker="xv-clnt-$$-$RANDOM"
	echo "$xv_marker" >/dev/kmsg
	if [[ ! -e /sys/module/xprtvsock ]]; then
		insmod "$xv_ko"
		xv_loaded=1
	fi
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
	rpc.mountd -F -N 3 &
	xv_mountd_pid=$!
	# The kernel denies a client whose upcall no daemon reads: wait until
	# mountd holds the auth.unix.ip channel.
	for _ in $(seq 150); do
		ls -l "/proc/$xv_mountd_pid/fd" 2>/dev/null | grep -q auth.unix.ip && break
		sleep 0.2
	done
	xv_nfsd_up
	xv_mnt=$(mktemp -d /tmp/xv-clnt.XXXXXX)
}

# Starts the nfsd threads and the vsock listener, with a short grace period
# so that opens need not wait 90 s after a (re)start, and 1 MiB READ/WRITE.
xv_nfsd_up() {
	echo 10 >/proc/fs/nfsd/nfsv4leasetime 2>/dev/null || true
	echo 10 >/proc/fs/nfsd/nfsv4gracetime 2>/dev/null || true
	# nfsd sizes its largest READ/WRITE from guest memory (256 KiB here).
	echo 1048576 >/proc/fs/nfsd/max_block_size
	rpc.nfsd -N 3 --vsock 2049 8 || xv_fail "rpc.nfsd --vsock 2049 failed"
	grep -qx 'vsock 2049' /proc/fs/nfsd/portlist ||
		xv_fail "portlist does not show the vsock listener"
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
