#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The NFSv4.1 backchannel over vsock: nfsd's callback path to a vsock
# client comes up (so the client is not told CB_PATH_DOWN in every SEQUENCE
# reply and does not rebind its connection over and over), nfsd hands out a
# delegation, and a local write to the file on the server recalls it over
# the backchannel: CB_RECALL reaches the client, DELEGRETURN comes back and
# the local write completes instead of waiting for the lease-break timeout.
# xv-cost: 33
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

# The local writer waits this long at most for a delegation that is not
# returned; the check below gives the recall half of it.
lease_break_time=60

op_count() {
	grep -A 80 "mounted on $xv_mnt with fstype nfs4" /proc/self/mountstats |
		awk -v op="$1:" '$1 == op { print $2; exit }'
}

nfsd_clients() { cat /proc/fs/nfsd/clients/*/"$1" 2>/dev/null || true; }

xv_start
saved_break_time=$(cat /proc/sys/fs/lease-break-time)
trap 'status=$?; echo "$saved_break_time" >/proc/sys/fs/lease-break-time; xv_cleanup "$status"' EXIT
echo "$lease_break_time" >/proc/sys/fs/lease-break-time

for vers in 4.2 4.1; do
	xv_mount "$vers"
	# nfsd probes the callback path asynchronously after CREATE_SESSION.
	up=
	for _ in $(seq 50); do
		if nfsd_clients info | grep -q '^callback state: UP$'; then
			up=1
			break
		fi
		sleep 0.2
	done
	nfsd_clients info
	[[ -n $up ]] || xv_fail "vers=$vers: nfsd's callback path to the vsock client is not up"

	for i in $(seq 50); do
		echo "$i" >"$xv_mnt/f$i"
	done
	rm -f "$xv_mnt"/f*
	binds=$(op_count BIND_CONN_TO_SESSION)
	echo "BIND_CONN_TO_SESSION calls: $binds"
	[[ $binds -le 1 ]] || xv_fail "vers=$vers: the client rebound its connection $binds times"

	echo "before recall" >"$xv_export/deleg"
	exec 3<"$xv_mnt/deleg"
	[[ $(cat <&3) == "before recall" ]] || xv_fail "vers=$vers: read through the mount failed"
	nfsd_clients states
	nfsd_clients states | grep -q 'type: deleg' ||
		xv_fail "vers=$vers: nfsd gave the vsock client no delegation"
	returns=$(op_count DELEGRETURN)
	# Opening the file for writing on the server breaks the delegation.
	timeout $((lease_break_time / 2)) bash -c "echo 'after recall' >>'$xv_export/deleg'" ||
		xv_fail "vers=$vers: the delegation was not recalled over the backchannel"
	exec 3<&-
	after=$(op_count DELEGRETURN)
	echo "DELEGRETURN calls: $returns -> $after"
	[[ $after -gt $returns ]] || xv_fail "vers=$vers: the client returned no delegation"
	[[ $(tail -n 1 "$xv_mnt/deleg") == "after recall" ]] ||
		xv_fail "vers=$vers: the mount does not show the server's write"
	rm -f "$xv_export/deleg"
	xv_umount
	echo "vers=$vers: ok"
done
xv_check_log
