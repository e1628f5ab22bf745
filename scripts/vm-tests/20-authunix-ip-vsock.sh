#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The auth.unix.ip cache (nfsd's IP-address-to-export-domain map) takes
# AF_VSOCK clients: a "vsock:CID" downcall is accepted and shown back as
# "vsock:CID", malformed vsock addresses are refused, and IPv4 entries work
# as before. Needs the in-tree series (patches "AF_VSOCK presentation" and
# "auth.unix.ip"), not the transport module.
# xv-cost: 2
set -euo pipefail

cache=/proc/net/rpc/auth.unix.ip
if [[ ! -e $cache/channel ]]; then
	# The cache belongs to sunrpc; nfsd's pseudo-fs makes sure it is there.
	mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd
fi
[[ -e $cache/channel ]] || { echo "no $cache/channel" >&2; exit 1; }

# Expiry in seconds since the epoch (2038): never expires during the test.
expiry=2147483647
cleanup() { date +%s >"$cache/flush" 2>/dev/null || true; }
trap cleanup EXIT

write() { # one write(2) per message, as the cache channel requires
	printf '%s\n' "$1" >"$cache/channel"
}
accept() {
	echo "write '$1': expect success"
	write "$1" || { echo "FAIL: '$1' was refused" >&2; exit 1; }
}
refuse() {
	echo "write '$1': expect failure"
	if write "$1" 2>/dev/null; then
		echo "FAIL: '$1' was accepted" >&2
		exit 1
	fi
}
shown() {
	echo "content: expect '$1'"
	grep -qxF -- "$1" "$cache/content" || {
		echo "FAIL: '$1' not in $cache/content:" >&2
		cat "$cache/content" >&2
		exit 1
	}
}

accept "nfsd vsock:3 $expiry *"
shown "nfsd vsock:3 *"
accept "nfsd vsock:4294967295 $expiry *"
shown "nfsd vsock:4294967295 *"
# No domain: a negative entry, which the cache lists commented out.
accept "nfsd vsock:5 $expiry"
shown "# nfsd vsock:5 -no-domain-"

refuse "nfsd vsock:x $expiry *"
refuse "nfsd vsock: $expiry *"
refuse "nfsd vsock:3x $expiry *"
refuse "nfsd vsock:-1 $expiry *"
refuse "nfsd vsock:4294967296 $expiry *"
refuse "nfsd vsock $expiry *"

# IPv4 and IPv6 behave as before.
accept "nfsd 192.0.2.7 $expiry *"
shown "nfsd 192.0.2.7 *"
accept "nfsd 2001:db8::7 $expiry *"
grep -q '^nfsd 2001:0db8:0000:0000:0000:0000:0000:0007 \*$' "$cache/content" || {
	echo "FAIL: IPv6 entry not shown as before" >&2
	cat "$cache/content" >&2
	exit 1
}
refuse "nfsd 192.0.2 $expiry *"

echo "--- $cache/content"
cat "$cache/content"
