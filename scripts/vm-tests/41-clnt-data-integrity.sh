#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Data integrity over an NFSv4.2 vsock mount with rsize=wsize=1M: fio
# sequential (XV41_SEQ_SIZE: 64M in make check, 256M in make stress) and
# 4 KiB random writes verified with crc32c; a file (32 MiB, 100 MiB in
# make stress) has the same checksum through NFS as in the export after
# dropping caches, both ways; rename, link, symlink,
# chmod, truncate and unlink behave as on a local file system.
# xv-cost: 60
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

command -v fio >/dev/null || xv_fail "missing: fio"
seq_size=${XV41_SEQ_SIZE:-$(xv_sized 64M 256M)}
big_mib=$(xv_sized 32 100)
xv_start
xv_mount 4.2 rsize=1048576,wsize=1048576
line=$(grep " $xv_mnt " /proc/mounts)
echo "$line"
[[ $line == *rsize=1048576,wsize=1048576* ]] || xv_fail "rsize/wsize are not 1M"

timed() { # runs a command, prints how long it took, returns its status
	local start=$SECONDS status=0
	"$@" || status=$?
	echo "took $((SECONDS - start)) s: $*" >&2
	return "$status"
}

timed fio --name=seq --directory="$xv_mnt" --rw=write --bs=1M --size="$seq_size" \
	--ioengine=psync --end_fsync=1 --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --verify_state_save=0 --output-format=terse >/dev/null ||
	xv_fail "sequential fio verify failed"
timed fio --name=rand --directory="$xv_mnt" --rw=randwrite --bs=4k --size=8M \
	--ioengine=psync --end_fsync=1 --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --verify_state_save=0 --output-format=terse >/dev/null ||
	xv_fail "random fio verify failed"
rm -f "$xv_mnt"/seq.* "$xv_mnt"/rand.*

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Export to client.
dd if=/dev/urandom of="$xv_export/big" bs=1M count="$big_mib" status=none
want=$(sha256sum <"$xv_export/big")
drop
got=$(timed sha256sum <"$xv_mnt/big")
[[ ${got%%$'\n'*} == "$want" ]] || xv_fail "checksum through NFS differs"
# Client to export.
timed dd if=/dev/urandom of="$xv_mnt/big2" bs=1M count="$big_mib" conv=fsync status=none
want=$(sha256sum <"$xv_mnt/big2")
drop
[[ $(sha256sum <"$xv_export/big2") == "$want" ]] || xv_fail "checksum in the export differs"
rm -f "$xv_mnt/big" "$xv_mnt/big2"

# Name space and attribute operations.
cd "$xv_mnt"
echo one >a
mv a b
[[ ! -e a && $(cat b) == one ]] || xv_fail "rename"
ln b c
[[ $(stat -c %h b) == 2 && $(cat c) == one ]] || xv_fail "link"
ln -s b d
[[ $(readlink d) == b && $(cat d) == one ]] || xv_fail "symlink"
chmod 640 b
[[ $(stat -c %a c) == 640 ]] || xv_fail "chmod"
truncate -s 1 b
[[ $(stat -c %s c) == 1 && $(cat c) == o ]] || xv_fail "truncate"
truncate -s 10000 b
[[ $(stat -c %s b) == 10000 ]] || xv_fail "extending truncate"
rm b
[[ ! -e b && $(stat -c %h c) == 1 ]] || xv_fail "unlink"
[[ ! -e d ]] || xv_fail "dangling symlink resolves"
mkdir e && rmdir e
rm c d
cd /
[[ -z $(ls -A "$xv_export") ]] || xv_fail "export not empty: $(ls -A "$xv_export")"
xv_umount
xv_check_log
