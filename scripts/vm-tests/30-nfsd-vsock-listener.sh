#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# nfsd listens on vsock: `rpc.nfsd --vsock 2049` (which writes "vsock 2049"
# to /proc/fs/nfsd/portlist) loads xprtvsock.ko through its "svcvsock" alias
# (the kernel runs modprobe),
# portlist reads back "vsock 2049", nfsd runs without rpcbind, and an RPC
# NULL call to NFSv4 over vsock loopback (CID 1, port 2049) is accepted.
#
# The guest has no module tree for the out-of-tree module, so the case
# builds one in a tmpfs directory (depmod -b) and points the kernel's
# modprobe helper (/proc/sys/kernel/modprobe) at a wrapper running the real
# modprobe with -d on that tree: the alias is resolved by modprobe from
# the module's own modinfo, as on an installed system. Needs the in-tree
# series and tools/xv-peer built (cargo build --release -p xv-peer).
# xv-cost: 14
set -euo pipefail

for tool in rpc.nfsd depmod modprobe; do
	command -v "$tool" >/dev/null || { echo "FAIL: missing tool: $tool" >&2; exit 1; }
done
peer=$XV_ROOT/target/release/xv-peer
[[ -x $peer ]] || { echo "FAIL: no $peer (cargo build --release -p xv-peer)" >&2; exit 1; }

tree=$(mktemp -d /tmp/xv30.XXXXXX)
modprobe_path=/proc/sys/kernel/modprobe
old_modprobe=$(cat "$modprobe_path")
mounted_nfsd=
cleanup() {
	set +e
	[[ -e /proc/fs/nfsd/threads ]] && rpc.nfsd 0
	[[ -n $mounted_nfsd ]] && umount /proc/fs/nfsd
	echo "$old_modprobe" >"$modprobe_path"
	rm -rf "$tree"
	if [[ -e /sys/module/xprtvsock ]]; then
		rmmod xprtvsock || { echo "FAIL: clean-up: rmmod xprtvsock" >&2; exit 1; }
	fi
}
trap cleanup EXIT

release=$(uname -r)
mkdir -p "$tree/lib/modules/$release/extra" /var/lib/nfs/v4recovery
cp "$XV_ROOT/xprtvsock.ko" "$tree/lib/modules/$release/extra/"
# Files a kernel build installs; depmod warns without them.
touch "$tree/lib/modules/$release/"modules.{order,builtin,builtin.modinfo}
depmod -b "$tree" "$release"
cat >"$tree/modprobe" <<EOF
#!/bin/sh
exec /sbin/modprobe -d $tree "\$@"
EOF
chmod +x "$tree/modprobe"
"$tree/modprobe" -n -q svcvsock || { echo "FAIL: modprobe does not resolve svcvsock" >&2; exit 1; }
echo "$tree/modprobe" >"$modprobe_path"

if ! mountpoint -q /proc/fs/nfsd; then
	mount -t nfsd nfsd /proc/fs/nfsd
	mounted_nfsd=1
fi

# No rpcbind runs: NFSv4 alone needs none, and the vsock listener is
# anonymous.
echo '$ rpc.nfsd -N 3 --vsock 2049 8'
rpc.nfsd -N 3 --vsock 2049 8
[[ $(cat /proc/fs/nfsd/threads) == 8 ]] || { echo "FAIL: nfsd threads did not start" >&2; exit 1; }
[[ -e /sys/module/xprtvsock ]] || { echo "FAIL: xprtvsock was not loaded" >&2; exit 1; }
echo "xprtvsock loaded through modprobe svcvsock"
echo "--- portlist"
cat /proc/fs/nfsd/portlist
grep -qx 'vsock 2049' /proc/fs/nfsd/portlist || { echo "FAIL: portlist lacks 'vsock 2049'" >&2; exit 1; }
refs=$(cat /sys/module/xprtvsock/refcnt)
[[ $refs -ge 1 ]] || { echo "FAIL: the listener holds no module reference" >&2; exit 1; }
echo "module references: $refs"

echo '$ xv-peer --cid 1 --port 2049 null'
"$peer" --cid 1 --port 2049 --timeout 30 null
echo "--- /proc/fs/nfsd/pool_stats"
cat /proc/fs/nfsd/pool_stats
