#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Data-integrity soak, over vsock and over TCP in the same guest, the
# transports taking turns for XV62_ROUNDS rounds each (1 in make check,
# 3 in make stress);
# XV62_TRANSPORTS names those that take part (vsock in make check; vsock
# and TCP, the control, in make stress).
# A round runs at once, on its own mount:
# * a git repository: XV62_COMMITS commits (5; 40 in make stress, as in
#   the failure seen once) of files of random sizes, with a file of
#   XV62_BIG_MIB MiB (4; 48 in make stress) read back after dropping caches halfway, then git fsck --full
#   --strict;
# * two writers and two readers: XV62_FILES files each (3; 12) of random
#   sizes (up to 1 MiB) with
#   their SHA-256 recorded by the writer and checked by a reader with
#   O_DIRECT, from the server (dropping all caches for each file made the
#   guest read its tools again over 9p, minutes per round under TCG);
# * fio random writes of random sizes (512 B to 128 KiB) at random offsets,
#   verified with CRC-32C.
# Any failure keeps the failing tool's output in this case's log and the
# repository's metadata under $XV_OUT/soak/.
# xv-timeout: 900 3000
# xv-cost: 150
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

for tool in git fio sha256sum; do
	command -v "$tool" >/dev/null || xv_fail "missing: $tool"
done
rounds=${XV62_ROUNDS:-$(xv_sized 1 3)}
commits=${XV62_COMMITS:-$(xv_sized 5 40)}
big_mib=${XV62_BIG_MIB:-$(xv_sized 4 48)}
files=${XV62_FILES:-$(xv_sized 3 12)}
read -ra transports <<<"${XV62_TRANSPORTS:-$(xv_sized vsock "vsock tcp")}"
keep=$XV_OUT/soak
xv_start
echo "$xv_export 127.0.0.1(rw,no_subtree_check,no_root_squash,fsid=0)" >>/etc/exports
exportfs -ra
grep -qx 'tcp 2049' /proc/fs/nfsd/portlist || xv_fail "nfsd has no TCP listener"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# Keeps what a failing step left for a post-mortem and fails the case.
lose() {
	local dir=$1 what=$2
	mkdir -p "$keep"
	local dest
	dest=$keep/$(basename "$dir")-$(date +%s)
	cp -a "$dir/repo/.git" "$dest.git" 2>/dev/null || true
	ls -lR "$dir" >"$dest.ls" 2>&1 || true
	xv_fail "$what (kept in ${dest#"$XV_OUT"/})"
}

git_workload() {
	local dir=$1 repo=$1/repo i f
	git init -q "$repo"
	git -C "$repo" config user.name soak
	git -C "$repo" config user.email soak@localhost
	for i in $(seq "$commits"); do
		for f in 1 2 3; do
			head -c $((RANDOM * 2 + 1)) /dev/urandom >"$repo/f$((RANDOM % 12))"
		done
		if ((i == commits / 2)); then
			dd if=/dev/urandom of="$repo/big" bs=1M count="$big_mib" status=none
			local want
			want=$(sha256sum <"$repo/big")
			drop
			[[ $(sha256sum <"$repo/big") == "$want" ]] || { echo "the $big_mib MiB file reads back wrong" >&2; return 1; }
		fi
		git -C "$repo" add -A
		git -C "$repo" commit -q -m "commit $i" || return 1
	done
	drop
	git -C "$repo" fsck --full --strict >"$dir/fsck.log" 2>&1 || { cat "$dir/fsck.log" >&2; return 1; }
	[[ $(git -C "$repo" rev-list --count HEAD) == "$commits" ]] ||
		{ echo "history is not $commits commits" >&2; return 1; }
}

writer() { # DIR N: writes N files, each with its checksum beside it
	local dir=$1 n=$2 i
	for i in $(seq "$n"); do
		head -c $((RANDOM * 32 + RANDOM)) /dev/urandom >"$dir/$i.data"
		sha256sum <"$dir/$i.data" >"$dir/$i.sum.tmp"
		mv "$dir/$i.sum.tmp" "$dir/$i.sum"
	done
}

reader() { # DIR N: checks each file, read past the client's cache, once its checksum is there
	local dir=$1 n=$2 i
	for i in $(seq "$n"); do
		while [[ ! -e $dir/$i.sum ]]; do sleep 0.2; done
		[[ $(dd if="$dir/$i.data" iflag=direct bs=1M status=none | sha256sum) == "$(cat "$dir/$i.sum")" ]] ||
			{ echo "reader: $dir/$i.data differs from its checksum" >&2; return 1; }
	done
}

fio_workload() {
	fio --name=rand --directory="$1" --rw=randwrite --bsrange=512-128k --size=16M \
		--ioengine=psync --end_fsync=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--verify_state_save=0 --randseed="$RANDOM" --output-format=terse >"$1.fio.log" 2>&1 ||
		{ cat "$1.fio.log" >&2; return 1; }
}

round() { # TRANSPORT ROUND
	local transport=$1 n=$2 source opts dir start=$SECONDS
	case $transport in
	vsock) source=1:/ opts=vers=4.2,proto=vsock ;;
	tcp) source=127.0.0.1:/ opts=vers=4.2,proto=tcp ;;
	*) xv_fail "XV62_TRANSPORTS: unknown transport $transport (vsock, tcp)" ;;
	esac
	timeout 120 mount -t nfs4 -o "$opts" "$source" "$xv_mnt" || xv_fail "mount -o $opts failed"
	dir=$xv_mnt/$transport-$n
	mkdir -p "$dir/w1" "$dir/w2" "$dir/fio"
	local pids=()
	git_workload "$dir" & pids+=($!)
	writer "$dir/w1" "$files" & pids+=($!)
	writer "$dir/w2" "$files" & pids+=($!)
	reader "$dir/w1" "$files" & pids+=($!)
	reader "$dir/w2" "$files" & pids+=($!)
	fio_workload "$dir/fio" & pids+=($!)
	local pid failed=
	for pid in "${pids[@]}"; do
		wait "$pid" || failed=1
	done
	[[ -z $failed ]] || lose "$dir" "$transport round $n failed"
	echo "figure: $transport round $n: passed in $((SECONDS - start)) s"
	rm -rf "$dir"
	xv_umount
}

for n in $(seq "$rounds"); do
	for transport in "${transports[@]}"; do
		round "$transport" "$n"
	done
done
echo "figure: soak: $rounds rounds each over ${transports[*]}, no corruption"
xv_check_log
