# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by the guest scripts that look for leaks: run-tests, the cases'
# clnt-lib.bash and the two-kernel cases' pair-lib.bash.

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
