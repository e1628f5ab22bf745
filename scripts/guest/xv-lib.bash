# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The one library of the guest-side tests, sourced by the guest phase's
# harness (scripts/guest/run-tests), the cases' clnt-lib.bash and every
# step of the two-kernel cases (scripts/guest/xvharness.py): kernel-log
# markers and splats, kmemleak, the module's load and unload, nfsd's
# bring-up, and KTAP output (written by xvharness.py).

xv_ko=$XV_ROOT/xprtvsock.ko

# The kernel's splats (scripts/splats), as one extended regular expression.
xv_splat_regex="($(grep -v -e '^#' -e '^$' "$XV_ROOT/scripts/splats" | paste -sd '|'))"

# xv_sized CHECK STRESS: the size of a case's load in make check (bounded,
# to keep within its time) or in make stress (full), by XV_SIZE.
xv_sized() { if [[ ${XV_SIZE:-check} == stress ]]; then echo "$2"; else echo "$1"; fi; }

# xv_mark NAME: a unique line in the kernel log; xv_since_marker prints the
# log from it on.
xv_mark() {
	xv_marker="xv-mark-$1-$$-$RANDOM"
	echo "$xv_marker" >/dev/kmsg
}
xv_since_marker() { dmesg | sed -n "/$xv_marker/,\$p"; }

# xv_splats: the splat lines logged since the marker; fails if there are none.
xv_splats() { xv_since_marker | grep -aE "$xv_splat_regex"; }
# xv_no_boot_splat: prints the splat lines of this boot's kernel log, and
# fails if there are any.
xv_no_boot_splat() { ! dmesg | grep -aE "$xv_splat_regex"; }

kmemleak=/sys/kernel/debug/kmemleak

# kmemleak_scan: leaves a fresh report in $kmemleak; fails if the kernel has
# no kmemleak. Objects freed by RCU or a deferred worker need a moment, and
# kmemleak reports only what two scans agree on.
kmemleak_scan() {
	[[ -w $kmemleak ]] || return 1
	sleep 6
	echo scan >"$kmemleak"
	sleep 1
	echo scan >"$kmemleak"
}

# kmemleak_clean: fails, showing the first reports, if kmemleak finds a
# leak, or if the kernel has no kmemleak.
kmemleak_clean() {
	kmemleak_scan || { echo "no $kmemleak" >&2; return 1; }
	if grep -q unreferenced "$kmemleak"; then
		head -n 40 "$kmemleak"
		return 1
	fi
}

# xv_unload_module [SECONDS]: unloads xprtvsock, retrying for up to SECONDS
# (10): the module stays pinned for a moment while transports are destroyed,
# and vsock may keep a closed socket, with zero-copy packets, for up to 8 s.
xv_unload_module() {
	local end=$((SECONDS + ${1:-10}))
	until rmmod xprtvsock 2>/dev/null; do
		((SECONDS < end)) || return 1
		sleep 0.2
	done
}

# xv_nfsd_tunables: a short grace period, so that opens need not wait 90 s
# after a (re)start, and 1 MiB READ/WRITE (nfsd sizes its largest from guest
# memory, 256 KiB here). Before the threads start.
xv_nfsd_tunables() {
	echo 10 >/proc/fs/nfsd/nfsv4leasetime 2>/dev/null || true
	echo 10 >/proc/fs/nfsd/nfsv4gracetime 2>/dev/null || true
	echo 1048576 >/proc/fs/nfsd/max_block_size
}

# xv_nfsd_start [THREADS]: nfsd's threads with a vsock listener on port
# 2049, as an operator starts them; fails unless portlist shows it.
xv_nfsd_start() {
	rpc.nfsd -N 3 --vsock 2049 "${1:-8}" && grep -qx 'vsock 2049' /proc/fs/nfsd/portlist
}

# xv_mountd_start [LOG]: rpc.mountd in the background (its PID in
# xv_mountd_pid), once it holds the auth.unix.ip channel: the kernel denies
# a client whose upcall no daemon reads.
xv_mountd_start() {
	rpc.mountd -F -N 3 2>"${1:-/dev/null}" &
	xv_mountd_pid=$!
	for _ in $(seq 150); do
		ls -l "/proc/$xv_mountd_pid/fd" 2>/dev/null | grep -q auth.unix.ip && return 0
		sleep 0.2
	done
	return 1
}

# KTAP, written by scripts/guest/xvharness.py (its Ktap, the harness's one
# KTAP writer): ktap_begin FILE SUITE KEY... declares the suite's plan, one
# result per KEY; ktap_result STATUS KEY DESCRIPTION [DIAGNOSTIC] records
# one (STATUS 0 is ok, "skip" a skip whose reason is the DIAGNOSTIC, any
# other not ok); ktap_end writes FILE, and fails if a result failed, a
# declared KEY has none, or a KEY was not declared or has two.
ktap_begin() {
	ktap_file=$1
	ktap_suite=$2
	shift 2
	ktap_keys=("$@")
	ktap_records=()
}

ktap_result() {
	local status=$1 key=$2 description=$3 diagnostic=${4:-}
	case $status in
	0) status=ok ;;
	skip) ;;
	*) status="not ok" ;;
	esac
	ktap_records+=("$status"$'\t'"$key"$'\t'"$description"$'\t'"${diagnostic//[$'\t\n']/ }")
}

ktap_end() {
	printf '%s\n' "${ktap_records[@]}" |
		/usr/bin/python3 "$XV_ROOT/scripts/guest/xvharness.py" ktap "$ktap_file" "$ktap_suite" "${ktap_keys[@]}"
}
