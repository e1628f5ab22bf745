#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# rpc.nfsd's vsock listener as an operator sets it: rpc.nfsd --vsock 2049 8
# and nfs.conf's [nfsd] vsock=2049 (what nfs-server.service reads) create
# it; with tcp=n and udp=n NFSv4 is served over vsock alone (and mounted);
# rpc.nfsd 0 removes it; a malformed port on the command line or in
# nfs.conf is refused with a message naming it, and nfsd is not started.
# xv-cost: 50
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

xv_start
conf_saved=$(mktemp /tmp/xv49-conf.XXXXXX)
cp /etc/nfs.conf "$conf_saved"
restore_conf() {
	local status=$?
	cp "$conf_saved" /etc/nfs.conf
	rm -f "$conf_saved"
	xv_cleanup "$status"
}
trap restore_conf EXIT

stop() {
	rpc.nfsd 0
	! grep -q vsock /proc/fs/nfsd/portlist 2>/dev/null || xv_fail "a vsock listener is left after rpc.nfsd 0"
}
listens() { grep -qx 'vsock 2049' /proc/fs/nfsd/portlist || xv_fail "no vsock listener after: $1"; }

echo "--- command line"
stop
rpc.nfsd -N 3 --vsock 2049 8 || xv_fail "rpc.nfsd --vsock 2049 8 failed"
cat /proc/fs/nfsd/portlist
listens "rpc.nfsd --vsock 2049 8"
stop

echo "--- nfs.conf"
printf '[nfsd]\nvsock=2049\nvers3=n\n' >/etc/nfs.conf
rpc.nfsd 8 || xv_fail "rpc.nfsd with [nfsd] vsock=2049 failed"
listens "[nfsd] vsock=2049"
stop
printf '[nfsd]\nvsock=2049\nvers3=n\ntcp=n\nudp=n\n' >/etc/nfs.conf
rpc.nfsd 8 || xv_fail "rpc.nfsd with vsock alone failed"
cat /proc/fs/nfsd/portlist
listens "tcp=n udp=n vsock=2049"
! grep -qE '^(tcp|udp) ' /proc/fs/nfsd/portlist || xv_fail "tcp=n udp=n left an IP listener"
xv_mount 4.2
echo xv49 >"$xv_mnt/only-vsock" || xv_fail "cannot write over a vsock-only nfsd"
xv_umount
stop

echo "--- malformed ports"
cp "$conf_saved" /etc/nfs.conf
for bad in x -1 4294967296 2049x; do
	for how in cli conf; do
		rc=0
		if [[ $how == cli ]]; then
			out=$(rpc.nfsd -N 3 --vsock "$bad" 8 2>&1) || rc=$?
		else
			printf '[nfsd]\nvsock=%s\n' "$bad" >/etc/nfs.conf
			out=$(rpc.nfsd -N 3 8 2>&1) || rc=$?
			cp "$conf_saved" /etc/nfs.conf
		fi
		echo "  $how '$bad': $out (status $rc)"
		[[ $rc != 0 ]] || xv_fail "rpc.nfsd took vsock port '$bad' ($how)"
		grep -qF -- "\"$bad\"" <<<"$out" || xv_fail "rpc.nfsd does not name '$bad' ($how)"
		[[ $(cat /proc/fs/nfsd/threads) == 0 ]] || xv_fail "nfsd started with vsock port '$bad' ($how)"
	done
done
rc=0
out=$(rpc.nfsd -N 3 --vsock '' 8 2>&1) || rc=$?
[[ $rc != 0 && $(cat /proc/fs/nfsd/threads) == 0 ]] || xv_fail "rpc.nfsd took an empty vsock port"
xv_nfsd_up
xv_check_log
