# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The one library of the guest-side tests, sourced by the guest phase's
# harness (scripts/guest/run-tests), the cases' clnt-lib.bash and the
# two-kernel halves' pair-lib.bash: kernel-log markers and splats, kmemleak,
# the module's load and unload, nfsd's bring-up, and KTAP output.

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

# KTAP: ktap_begin FILE SUITE KEY... declares the suite's plan, one result
# per KEY, before the first result; ktap_result STATUS KEY DESCRIPTION
# [DIAGNOSTIC] records one (STATUS 0 is ok) in the order of the plan;
# ktap_end writes FILE, a declared KEY without a result as a failure, and
# fails if any result did. A result for a KEY not declared is a failure too.
ktap_begin() {
	ktap_file=$1
	ktap_suite=$2
	shift 2
	ktap_keys=("$@")
	declare -gA ktap_status=() ktap_text=() ktap_diag=()
	ktap_failed=0
	ktap_extra=()
}

ktap_result() {
	local status=$1 key=$2 description=$3 diagnostic=${4:-failed}
	# The seconds since the script began, to see where a run's time goes.
	if [[ $status == 0 ]]; then
		echo "ktap: ok $key: $description [${SECONDS} s]"
	else
		echo "ktap: not ok $key: $description: $diagnostic [${SECONDS} s]"
		ktap_failed=1
	fi
	if [[ " ${ktap_keys[*]} " != *" $key "* ]]; then
		ktap_extra+=("result for a key not in the plan, $key: $description")
		ktap_failed=1
	elif [[ -n ${ktap_status[$key]:-} ]]; then
		ktap_extra+=("a second result for $key: $description")
		ktap_failed=1
	else
		ktap_status[$key]=$status
		ktap_text[$key]=$description
		ktap_diag[$key]=${diagnostic//$'\n'/ }
	fi
}

ktap_end() {
	local n=0 key extra
	{
		echo "KTAP version 1"
		echo "1..1"
		echo "    KTAP version 1"
		echo "    # Subtest: $ktap_suite"
		echo "    1..$((${#ktap_keys[@]} + ${#ktap_extra[@]}))"
		for key in "${ktap_keys[@]}"; do
			n=$((n + 1))
			case ${ktap_status[$key]:-none} in
			0) echo "    ok $n ${ktap_text[$key]}" ;;
			none)
				echo "    # $key: no result"
				echo "    not ok $n $key"
				echo "ktap: not ok $key: no result" >&2
				ktap_failed=1
				;;
			*)
				echo "    # ${ktap_text[$key]}: ${ktap_diag[$key]}"
				echo "    not ok $n ${ktap_text[$key]}"
				;;
			esac
		done
		for extra in "${ktap_extra[@]}"; do
			n=$((n + 1))
			echo "    not ok $n $extra"
		done
		if [[ $ktap_failed == 0 ]]; then
			echo "ok 1 $ktap_suite"
		else
			echo "not ok 1 $ktap_suite"
		fi
	} >"$ktap_file"
	return "$ktap_failed"
}
