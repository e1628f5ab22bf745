#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# xprtvsock.ko carries its license and aliases, loads and registers the
# client transport "vsock" (SUNRPC logs that), unloads and unregisters it,
# cleanly again and again.
# xv-cost: 21
set -euxo pipefail
ko=$XV_ROOT/xprtvsock.ko

modinfo -F license "$ko" | grep -qx GPL
modinfo -F alias "$ko" | grep -qx rpcvsock
modinfo -F alias "$ko" | grep -qx svcvsock

logged() { dmesg | grep -c "RPC: $1 vsock transport module" || true; }
registered=$(logged Registered)
unregistered=$(logged Unregistered)
insmod "$ko"
test -d /sys/module/xprtvsock
test "$(logged Registered)" -gt "$registered"
rmmod xprtvsock
test ! -e /sys/module/xprtvsock
test "$(logged Unregistered)" -gt "$unregistered"

for _ in $(seq 10); do
	insmod "$ko"
	rmmod xprtvsock
done
test ! -e /sys/module/xprtvsock
