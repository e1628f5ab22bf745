#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# vsock loopback (CID 1), which every single-kernel transport test relies on,
# carries a stream intact inside the guest.
# xv-cost: 4
set -euxo pipefail
work=$(mktemp -d)
head -c 4M /dev/urandom >"$work/sent"

socat -u VSOCK-LISTEN:5000 "CREATE:$work/received" &
listener=$!
for _ in $(seq 50); do
	socat -u "OPEN:$work/sent" VSOCK-CONNECT:1:5000 && break
	sleep 0.2
done
wait "$listener"
cmp "$work/sent" "$work/received"
