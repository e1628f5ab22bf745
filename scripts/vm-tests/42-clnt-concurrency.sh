#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# 16 parallel fio jobs writing and verifying over one NFSv4.2 vsock mount
# finish without errors and without hung tasks.
# xv-cost: 68
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

command -v fio >/dev/null || xv_fail "missing: fio"
xv_start
xv_mount 4.2
start=$SECONDS
fio --name=par --directory="$xv_mnt" --numjobs=16 --thread --rw=randwrite --bs=16k \
	--size=4M --ioengine=psync --end_fsync=1 --verify=crc32c \
	--do_verify=1 --verify_fatal=1 --verify_state_save=0 --group_reporting \
	--output-format=terse >/dev/null || xv_fail "parallel fio failed"
echo "16 jobs took $((SECONDS - start)) s"
rm -f "$xv_mnt"/par.*
xv_umount
xv_check_log
