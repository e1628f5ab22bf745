#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# xprtvsock.ko carries its license and aliases, loads, says so, and unloads
# cleanly again and again.
set -euxo pipefail
ko=$XV_ROOT/xprtvsock.ko

modinfo -F license "$ko" | grep -qx GPL
modinfo -F alias "$ko" | grep -qx rpcvsock
modinfo -F alias "$ko" | grep -qx svcvsock

loaded() { dmesg | grep -c 'xprtvsock: AF_VSOCK stream sockets available' || true; }
before=$(loaded)
insmod "$ko"
test -d /sys/module/xprtvsock
test "$(loaded)" -gt "$before"
rmmod xprtvsock
test ! -e /sys/module/xprtvsock

for _ in $(seq 10); do
	insmod "$ko"
	rmmod xprtvsock
done
test ! -e /sys/module/xprtvsock
