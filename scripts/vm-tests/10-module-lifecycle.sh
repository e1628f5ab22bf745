#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# xprtvsock.ko carries its license and aliases, loads and registers the
# client transport "vsock" (listed in /proc/sys/sunrpc/transports), and
# unloads, unregistering it, cleanly again and again.
set -euxo pipefail
ko=$XV_ROOT/xprtvsock.ko

modinfo -F license "$ko" | grep -qx GPL
modinfo -F alias "$ko" | grep -qx rpcvsock
modinfo -F alias "$ko" | grep -qx svcvsock

registered() { grep -q '^vsock ' /proc/sys/sunrpc/transports; }
unregistered() { ! registered; }
unregistered
insmod "$ko"
test -d /sys/module/xprtvsock
registered
rmmod xprtvsock
test ! -e /sys/module/xprtvsock
unregistered

for _ in $(seq 10); do
	insmod "$ko"
	rmmod xprtvsock
done
test ! -e /sys/module/xprtvsock
