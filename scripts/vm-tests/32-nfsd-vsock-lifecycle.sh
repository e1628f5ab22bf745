#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# xprtvsock.ko cannot be unloaded while nfsd holds a vsock listener (each
# listener and connection holds a module reference, as for svcsock); once
# "rpc.nfsd 0" has shut the server down, it can. Cycles of load, listener,
# threads, NULL call, shutdown and unload (5 in make check, 20 in make
# stress) leave nothing behind (the harness scans kmemleak after the run). Needs the in-tree series and
# tools/xv-peer built.
# xv-cost: 45
set -euo pipefail
. "$XV_ROOT/scripts/guest/xv-lib.bash"

cycles=$(xv_sized 5 20)
peer=$XV_ROOT/target/release/xv-peer
[[ -x $peer ]] || { echo "FAIL: no $peer (cargo build --release -p xv-peer)" >&2; exit 1; }
command -v rpc.nfsd >/dev/null || { echo "FAIL: missing tool: rpc.nfsd" >&2; exit 1; }

mounted_nfsd=
cleanup() {
	set +e
	[[ -e /proc/fs/nfsd/threads ]] && rpc.nfsd 0
	[[ -n $mounted_nfsd ]] && umount /proc/fs/nfsd
	if [[ -e /sys/module/xprtvsock ]]; then
		rmmod xprtvsock || { echo "FAIL: clean-up: rmmod xprtvsock" >&2; exit 1; }
	fi
}
trap cleanup EXIT

if ! mountpoint -q /proc/fs/nfsd; then
	mount -t nfsd nfsd /proc/fs/nfsd
	mounted_nfsd=1
fi
mkdir -p /var/lib/nfs/v4recovery

cycle() { # $1: cycle number
	insmod "$XV_ROOT/xprtvsock.ko"
	rpc.nfsd -N 3 --vsock 2049 2
	"$peer" --timeout 30 null >/dev/null || {
		echo "FAIL: cycle $1: NULL call over vsock failed" >&2
		"$peer" --timeout 30 null
		exit 1
	}
	if rmmod xprtvsock 2>/dev/null; then
		echo "FAIL: cycle $1: rmmod succeeded while nfsd runs on vsock" >&2
		exit 1
	fi
	rpc.nfsd 0
	if grep -q vsock /proc/fs/nfsd/portlist 2>/dev/null; then
		echo "FAIL: cycle $1: vsock listener left after rpc.nfsd 0" >&2
		exit 1
	fi
	rmmod xprtvsock || { echo "FAIL: cycle $1: rmmod refused after rpc.nfsd 0" >&2; exit 1; }
}

echo "--- first cycle, step by step"
insmod "$XV_ROOT/xprtvsock.ko"
echo "refcnt when loaded: $(cat /sys/module/xprtvsock/refcnt)"
# rpc.nfsd sets the versions (no NFSv3, so no rpcbind is needed), which it
# can only do before the server exists.
rpc.nfsd -N 3 --vsock 2049 2
cat /proc/fs/nfsd/portlist
echo "refcnt with a listener: $(cat /sys/module/xprtvsock/refcnt)"
echo '$ rmmod xprtvsock'
if rmmod xprtvsock; then
	echo "FAIL: rmmod succeeded while nfsd holds a vsock listener" >&2
	exit 1
fi
echo '$ rpc.nfsd 0'
rpc.nfsd 0
echo "refcnt after rpc.nfsd 0: $(cat /sys/module/xprtvsock/refcnt)"
echo '$ rmmod xprtvsock'
rmmod xprtvsock
[[ ! -e /sys/module/xprtvsock ]] || { echo "FAIL: xprtvsock still loaded" >&2; exit 1; }

echo "--- $cycles cycles"
for i in $(seq "$cycles"); do
	cycle "$i"
done
[[ ! -e /sys/module/xprtvsock ]] || { echo "FAIL: xprtvsock still loaded" >&2; exit 1; }
echo "$cycles cycles done"
