#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Planted fault: a client case (clnt-lib.bash) whose clean-up cannot unload
# the module, because a second mount it does not know of still holds it.
# xv-cost: 2
# xv-expect: FAIL: clean-up: rmmod xprtvsock
set -euo pipefail
. "$XV_ROOT/scripts/vm-tests/clnt-lib.bash"
xv_start
xv_mount 4.2
hidden=$(mktemp -d /tmp/xv-planted.XXXXXX)
# NFSv4.1, so that it has an NFS client (and a transport) of its own, not
# xv_mnt's, and soft with a short timeout: once the clean-up has stopped
# nfsd, the harness's unmount of it gives up on the server in seconds, not
# minutes.
timeout 120 mount -t nfs4 -o vers=4.1,proto=vsock,soft,timeo=20,retrans=1 1:/ "$hidden"
# The clean-up stops nfsd and unmounts xv_mnt; the hidden mount keeps a
# reference on the module.
