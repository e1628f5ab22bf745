#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# NFSv4.2, 4.1 and 4.0 mount over vsock loopback with proto=vsock: files
# written through the mount appear in the export and back, /proc/mounts
# shows proto=vsock and addr=vsock:1, /proc/self/mountstats has the vsock
# transport line. Needs the in-tree series and xprtvsock.ko's client and
# server transports.
# xv-cost: 36
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

xv_start
for vers in 4.2 4.1 4.0; do
	xv_mount "$vers"
	line=$(grep " $xv_mnt " /proc/mounts) || xv_fail "not in /proc/mounts"
	echo "$line"
	[[ $line == *",proto=vsock,"* ]] || xv_fail "/proc/mounts lacks proto=vsock"
	[[ $line == *",addr=vsock:1"* ]] || xv_fail "/proc/mounts lacks addr=vsock:1"
	[[ $line == *"vers=$vers"* ]] || xv_fail "/proc/mounts lacks vers=$vers"
	stats=$(grep -A 30 "mounted on $xv_mnt with fstype nfs4" /proc/self/mountstats)
	xprt=$(grep -m1 $'^\txprt:\tvsock ' <<<"$stats") ||
		xv_fail "mountstats has no vsock transport line"
	echo "mountstats:$xprt"
	# srcport (field 3) is reserved: the export is "secure".
	srcport=$(awk '{ print $3 }' <<<"$xprt")
	[[ $srcport -ge 665 && $srcport -le 1023 ]] || xv_fail "source port $srcport is not reserved"

	msg="xv40 $vers $RANDOM"
	echo "$msg" >"$xv_mnt/v$vers"
	sync
	[[ $(cat "$xv_export/v$vers") == "$msg" ]] || xv_fail "export does not hold what was written"
	echo "$msg back" >"$xv_export/w$vers"
	[[ $(cat "$xv_mnt/w$vers") == "$msg back" ]] || xv_fail "mount does not show the export's file"
	ls -l "$xv_mnt"
	xv_umount
	echo "vers=$vers: ok"
done
xv_check_log
