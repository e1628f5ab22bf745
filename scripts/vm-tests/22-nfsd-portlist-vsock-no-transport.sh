#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# "vsock 2049" written to /proc/fs/nfsd/portlist with no vsock transport
# registered fails cleanly, and the running nfsd keeps its TCP listener:
# portlist still lists "tcp 2049", nothing vsock is listed, the threads keep
# running, 127.0.0.1:2049 accepts connections and an NFSv4.1 mount over TCP
# still works. Needs the in-tree series; the transport module must not be
# loaded or loadable by modprobe.
# xv-cost: 20
set -euo pipefail

# The harness starts every case with no vsock transport registered.
if modprobe -n -q svcvsock 2>/dev/null; then
	echo "skip: modprobe can load svcvsock on this machine" >&2
	exit 77
fi
for tool in rpc.nfsd rpc.mountd exportfs; do
	command -v "$tool" >/dev/null || { echo "FAIL: missing tool: $tool" >&2; exit 1; }
done

export_dir=/srv/xv22
mnt=$(mktemp -d /tmp/xv22.XXXXXX)
mounted_nfsd=
mounted_export=
mountd_pid=
mounted_nfs=
cleanup() {
	set +e
	[[ -n $mounted_nfs ]] && umount "$mnt"
	[[ -n $mountd_pid ]] && kill "$mountd_pid" && wait "$mountd_pid"
	[[ -e /proc/fs/nfsd/threads ]] && rpc.nfsd 0
	exportfs -ua
	[[ -n $mounted_nfsd ]] && umount /proc/fs/nfsd
	[[ -n $mounted_export ]] && umount "$export_dir"
	rm -f /etc/exports
	rmdir "$mnt"
}
trap cleanup EXIT

ip link set lo up
if ! mountpoint -q /proc/fs/nfsd; then
	mount -t nfsd nfsd /proc/fs/nfsd
	mounted_nfsd=1
fi
mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs "$export_dir"
# The guest's /srv is an overlay on 9p, which nfsd cannot export.
mount -t tmpfs xv22 "$export_dir"
mounted_export=1
echo xv22 >"$export_dir/file"
echo "$export_dir 127.0.0.1(rw,no_subtree_check,no_root_squash,insecure,fsid=0)" >/etc/exports
exportfs -ra
rpc.mountd -F -N 3 &
mountd_pid=$!
rpc.nfsd -N 3 8
sleep 1

ports() { echo "--- portlist"; cat /proc/fs/nfsd/portlist; }
ports
grep -qx 'tcp 2049' /proc/fs/nfsd/portlist || { echo "FAIL: nfsd did not start on tcp 2049" >&2; exit 1; }
threads=$(cat /proc/fs/nfsd/threads)
[[ $threads -gt 0 ]] || { echo "FAIL: no nfsd threads" >&2; exit 1; }

echo '$ echo "vsock 2049" > /proc/fs/nfsd/portlist'
if echo "vsock 2049" >/proc/fs/nfsd/portlist; then
	echo "FAIL: a vsock listener was created without a vsock transport" >&2
	exit 1
fi
echo "write failed as expected"

ports
grep -qx 'tcp 2049' /proc/fs/nfsd/portlist || { echo "FAIL: tcp 2049 listener lost" >&2; exit 1; }
if grep -q vsock /proc/fs/nfsd/portlist; then
	echo "FAIL: portlist lists a vsock listener" >&2
	exit 1
fi
[[ $(cat /proc/fs/nfsd/threads) == "$threads" ]] || { echo "FAIL: nfsd threads changed" >&2; exit 1; }
timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2049' || { echo "FAIL: 127.0.0.1:2049 refuses connections" >&2; exit 1; }
echo "127.0.0.1:2049 accepts connections"

echo "\$ mount -t nfs4 -o vers=4.1,proto=tcp 127.0.0.1:/ $mnt"
timeout 120 mount -t nfs4 -o vers=4.1,proto=tcp,addr=127.0.0.1,clientaddr=127.0.0.1 127.0.0.1:/ "$mnt" ||
	{ echo "FAIL: NFSv4.1 mount over TCP failed" >&2; exit 1; }
mounted_nfs=1
grep -qx xv22 "$mnt/file" || { echo "FAIL: cannot read through the TCP mount" >&2; exit 1; }
grep " $mnt " /proc/mounts
echo "NFSv4.1 over TCP still works"
