# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by both halves of the two-kernel cases (scripts/vm-pair): KTAP
# results in $XV_OUT/pair.ktap, and the two halves' conversation. They talk
# through two small files in the export, over the NFS mount under test:
# the guest writes "guest-says", the host answers in "host-says". Close-to-
# open consistency makes each open see the other side's last write.

. "$XV_ROOT/scripts/guest/kmemleak.bash"

pair_ktap=$XV_OUT/pair.ktap
pair_n=0
pair_failed=0

pair_begin() { # SUITE-NAME
	pair_suite=$1
	: >"$pair_ktap.body"
	rm -f "$pair_ktap"
}

# pair_result STATUS NAME [DIAGNOSTIC]: one KTAP line; STATUS 0 is ok.
pair_result() {
	pair_n=$((pair_n + 1))
	if [[ $1 == 0 ]]; then
		echo "    ok $pair_n $2" >>"$pair_ktap.body"
		echo "pair: ok $pair_n $2"
	else
		echo "    # $2: ${3:-failed}" >>"$pair_ktap.body"
		echo "    not ok $pair_n $2" >>"$pair_ktap.body"
		echo "pair: not ok $pair_n $2: ${3:-failed}"
		pair_failed=1
	fi
}

# Writes the KTAP file, its plan first; fails if any result did.
pair_end() {
	{
		echo "KTAP version 1"
		echo "1..1"
		echo "    KTAP version 1"
		echo "    # Subtest: $pair_suite"
		echo "    1..$pair_n"
		cat "$pair_ktap.body"
		if [[ $pair_failed == 0 ]]; then
			echo "ok 1 $pair_suite"
		else
			echo "not ok 1 $pair_suite"
		fi
	} >"$pair_ktap"
	rm -f "$pair_ktap.body"
	return "$pair_failed"
}

# pair_wait_line FILE PREFIX SECONDS: prints the first line of FILE once it
# starts with PREFIX; fails after SECONDS.
pair_wait_line() {
	local line end=$((SECONDS + $3))
	while ((SECONDS < end)); do
		line=$(head -n 1 "$1" 2>/dev/null || true)
		if [[ $line == "$2"* ]]; then
			echo "$line"
			return 0
		fi
		sleep 0.5
	done
	return 1
}

pair_splat='(Oops|BUG:|WARNING:|Kernel panic|Call Trace:|general protection fault|blocked for more than|UBSAN:)'

# pair_net_up N: this kernel's end of vm-pair's virtio-net link (the NIC
# whose MAC is 52:54:00:78:76:*) gets 169.254.0.N/24, for TCP controls.
pair_net_up() {
	local dev
	dev=$(ip -o link | awk -F': ' '/52:54:00:78:76:/ { print $2; exit }')
	[[ -n $dev ]] || { echo "pair: no vm-pair NIC" >&2; return 1; }
	ip link set "$dev" up && ip addr add "169.254.0.$1/24" dev "$dev"
}

# pair_disk SERIAL: the block device of the virtio disk with that serial.
pair_disk() {
	local dev
	for dev in /sys/block/vd*; do
		[[ $(cat "$dev/serial" 2>/dev/null) == "$1" ]] && { echo "/dev/${dev##*/}"; return 0; }
	done
	return 1
}
