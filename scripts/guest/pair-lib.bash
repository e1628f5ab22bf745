# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by both halves of the two-kernel cases (scripts/vm-pair): KTAP
# results in $XV_OUT/pair.ktap (scripts/guest/xv-lib.bash), and the halves'
# conversation. The client asks, the server answers, one line each way over
# a TCP connection of its own on vm-pair's virtio-net link (port 7001 of
# 169.254.0.2): neither the NFS mount nor the vsock transport under test
# carries the harness, so a fault in them cannot silence it.

. "$XV_ROOT/scripts/guest/xv-lib.bash"

pair_server=169.254.0.2
pair_port=7001

pair_begin() { ktap_begin "$XV_OUT/pair.ktap" "$@"; } # SUITE KEY...
pair_result() { ktap_result "$@"; }                  # STATUS KEY DESCRIPTION [DIAGNOSTIC]
pair_end() { ktap_end; }

# pair_net_up N: this kernel's end of vm-pair's virtio-net link (the NIC
# whose MAC is 52:54:00:78:76:*) gets 169.254.0.N/24.
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

# Client side. pair_ask QUESTION [SECONDS]: the server's answer line; keeps
# trying to connect for up to SECONDS (120), so a server that is rebooting
# answers once it is back.
pair_ask() {
	local seconds=${2:-120}
	echo "$1" | timeout "$seconds" socat -t "$seconds" - \
		"TCP:$pair_server:$pair_port,connect-timeout=5,retry=$seconds,interval=1" 2>/dev/null |
		head -n 1
}

# Server side. pair_question SECONDS: waits up to SECONDS for a question and
# sets pair_line (empty if none came); the connection stays open for
# pair_answer LINE, which closes it.
pair_question() {
	pair_line=
	if [[ -z ${pair_conn_pid:-} ]]; then
		# The question ends the client's half of the connection; -t keeps ours
		# open until the answer is written.
		coproc PAIR_CONN { exec socat -t 3600 TCP-LISTEN:$pair_port,reuseaddr STDIO 2>/dev/null; }
		pair_conn_in=${PAIR_CONN[0]}
		pair_conn_out=${PAIR_CONN[1]}
		pair_conn_pid=$PAIR_CONN_PID
	fi
	IFS= read -r -t "$1" pair_line <&"$pair_conn_in" || pair_line=
}
pair_answer() {
	echo "$1" >&"$pair_conn_out"
	exec {pair_conn_out}>&- {pair_conn_in}<&-
	wait "$pair_conn_pid" 2>/dev/null
	pair_conn_pid=
}
