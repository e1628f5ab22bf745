# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced, after xv-lib.bash, by the two-kernel cases' steps in the server
# kernel (scripts/guest/xvharness.py's agent runs each with both) and by
# the boots' set-up: vm-pair's virtio-net link, the export's disk, and
# the server's helpers the cases (scripts/guest/pair-cases) call.

# The export lives on the disk vm-pair gives every server boot, so data
# outlives a reboot; NFSv4's pseudo-root is the disk, the client's path
# /export.
pair_root=/srv/xv-pair-root
pair_export=$pair_root/export
# The server's nfsd threads (the fairness case's share is half of them).
pair_threads=8
# The table of vsock connections per CID (CID LIVE REFUSED CALLS).
pair_conns=/sys/kernel/debug/xprtvsock/connections

# pair_net_up N: this kernel's ends of vm-pair's virtio-net links. A
# client (N = its CID) has one NIC, MAC 52:54:00:78:76:N, which gets
# 169.254.0.N/24. The server (N = 2) has one NIC per client CID, MAC
# 52:54:00:78:02:CID, each a point-to-point link: 169.254.0.2 on every one,
# and a route to 169.254.0.CID through its own.
pair_net_up() {
	local mac dev cid links=0
	ip link set lo up || return 1
	while read -r mac dev; do
		if [[ $1 == 2 && $mac == 52:54:00:78:02:* ]]; then
			cid=$((16#${mac##*:}))
			ip link set "$dev" up && ip addr add 169.254.0.2/32 dev "$dev" &&
				ip route add "169.254.0.$cid/32" dev "$dev" || return 1
		elif [[ $1 != 2 && $mac == "52:54:00:78:76:$(printf %02x "$1")" ]]; then
			ip link set "$dev" up && ip addr add "169.254.0.$1/24" dev "$dev" || return 1
		else
			continue
		fi
		links=$((links + 1))
	done < <(ip -o link | sed -nE 's/^[0-9]+: ([^:@]+).* link\/ether ([0-9a-f:]+) .*/\2 \1/p')
	[[ $links -gt 0 ]] || { echo "pair: no vm-pair NIC for 169.254.0.$1" >&2; return 1; }
}

# pair_host_path_up: on the server, the host path scripts/vm-pair chose
# (XV_PAIR_HOST_PATH). For "vhost": vhost_vsock loaded, and for each
# client's host stream (a virtio-serial port named xv.host-stream.CID) a
# tools/xv-vhost-bridge playing that client's virtio driver, its log in
# $XV_OUT/vhost-bridge-CID.log. Fails unless every bridge has started its
# device within 30 s. A bridge ends when its client goes away (xv-vsockd
# closes the stream, as a VM's end closes its vhost-vsock); the next one,
# a second later, stands for the client started anew. They live as long
# as this kernel.
pair_host_path_up() {
	local bridge=$XV_ROOT/target/release/xv-vhost-bridge port name cid module
	local -a cids=()
	[[ ${XV_PAIR_HOST_PATH:-guest} == vhost ]] || return 0
	[[ -x $bridge ]] || { echo "pair: no $bridge" >&2; return 1; }
	for module in vhost_iotlb vhost vhost_vsock; do
		insmod "$XV_KDIR/drivers/vhost/$module.ko" || return 1
	done
	for port in /sys/class/virtio-ports/*; do
		read -r name <"$port/name" || continue
		[[ $name == xv.host-stream.* ]] || continue
		cid=${name#xv.host-stream.}
		: >"$XV_OUT/vhost-bridge-$cid.log"
		setsid bash -c 'while :; do "$0" --cid "$1" --stream "$2"; sleep 1; done' \
			"$bridge" "$cid" "/dev/${port##*/}" >>"$XV_OUT/vhost-bridge-$cid.log" 2>&1 </dev/null &
		cids+=("$cid")
	done
	[[ ${#cids[@]} -gt 0 ]] || { echo "pair: no xv.host-stream port" >&2; return 1; }
	for cid in "${cids[@]}"; do
		for _ in $(seq 150); do
			grep -q "guest CID $cid on " "$XV_OUT/vhost-bridge-$cid.log" && continue 2
			sleep 0.2
		done
		echo "pair: xv-vhost-bridge for CID $cid did not start:" >&2
		cat "$XV_OUT/vhost-bridge-$cid.log" >&2
		return 1
	done
	echo "pair: vhost_vsock up, bridges for CIDs ${cids[*]}"
}

# pair_disk SERIAL: the block device of the virtio disk with that serial.
pair_disk() {
	local dev
	for dev in /sys/block/vd*; do
		[[ $(cat "$dev/serial" 2>/dev/null) == "$1" ]] && { echo "/dev/${dev##*/}"; return 0; }
	done
	return 1
}

# pair_export_to CLIENT...: /etc/exports names these clients, as an
# operator writes it, and exportfs -rv applies it.
pair_export_to() {
	local client line=$pair_root
	for client in "$@"; do
		line+=" $client(rw,no_subtree_check,no_root_squash,fsid=0)"
	done
	echo "$line" >/etc/exports
	cat /etc/exports
	exportfs -rv
}

# pair_nfsd_start: nfsd as an operator starts it, its vsock listener up.
pair_nfsd_start() {
	echo "\$ rpc.nfsd -N 3 --vsock 2049 $pair_threads"
	xv_nfsd_start "$pair_threads"
}

# pair_connections_from CID: the vsock connections nfsd holds from CID.
pair_connections_from() {
	ss -H --vsock state established "( sport = :2049 )" | grep -c " $1:" || true
}

# pair_conns_field CID COLUMN: a column of the connection table (0 without
# a line for CID).
pair_conns_field() {
	awk -v key="$1" -v col="$2" \
		'$1 == key { print $col; found = 1 } END { if (!found) print 0 }' "$pair_conns"
}

# pair_size FILE: its size in bytes (0 if absent).
pair_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# pair_local_io MNT MIB: MIB MiB of /tmp/xv-fair.data written to MNT and
# read back with O_DIRECT; prints "WRITE READ" in MiB/s (one decimal),
# fails if the data read back differs.
pair_local_io() {
	local start mid end
	start=$(date +%s%N)
	dd if=/tmp/xv-fair.data of="$1/fair.data" bs=1M oflag=direct conv=fsync status=none || return 1
	mid=$(date +%s%N)
	dd if="$1/fair.data" of=/tmp/xv-fair.back bs=1M iflag=direct status=none || return 1
	end=$(date +%s%N)
	cmp -s /tmp/xv-fair.data /tmp/xv-fair.back || return 1
	awk -v mib="$2" -v w=$((mid - start)) -v r=$((end - mid)) \
		'BEGIN { printf "%.1f %.1f\n", mib * 1e9 / w, mib * 1e9 / r }'
}

# pair_mount_connects MNT: the connect count of MNT's vsock transport
# (mountstats: xprt: vsock srcport bind_count connect_count ...).
pair_mount_connects() {
	grep -A 30 " mounted on $1 " /proc/self/mountstats |
		awk '$1 == "xprt:" && $2 == "vsock" { print $5; exit }'
}

# pair_sample_calls FILE: four times a second, the calls in progress of
# CIDs 1 and 3 ("C1 C3") appended to FILE, until killed. Without a fork
# (read, and read -t as the sleep): the flood it samples keeps the
# server's CPU busy, and a process per sample would come seconds apart.
pair_sample_calls() {
	local cid live refused calls c1 c3 never
	exec {never}<> <(:)
	while :; do
		c1=0 c3=0
		while read -r cid live refused calls; do
			case $cid in
			1) c1=$calls ;;
			3) c3=$calls ;;
			esac
		done <"$pair_conns"
		echo "$c1 $c3"
		read -r -t 0.25 -u "$never" _
	done >>"$1"
}
