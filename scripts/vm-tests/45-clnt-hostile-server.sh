#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The client against a misbehaving RPC server on vsock port 2049 (a small
# Python responder, not nfsd): replies with unknown XIDs and callbacks
# (CALL-direction records) are dropped, a reply split into fragments
# (one of them empty) and written a few bytes at a time is reassembled, a
# record with a bad direction and a marker announcing 2^31-1 bytes close the
# connection with a rate-limited message, and the mount then fails cleanly:
# no hang, no splat, the module unloads.
# xv-cost: 18
set -euo pipefail
. "$(dirname "$0")/clnt-lib.bash"

command -v python3 >/dev/null || xv_fail "missing: python3"
[[ -f $xv_ko ]] || xv_fail "missing: $xv_ko"
out=${XV_OUT:-/tmp}
log=$out/45-responder.log
rm -f "$log"
xv_mark 45
insmod "$xv_ko"
xv_loaded=1
xv_mnt=$(mktemp -d /tmp/xv45.XXXXXX)
responder_pid=
stop_responder() {
	local status=$?
	[[ -n $responder_pid ]] && kill "$responder_pid" 2>/dev/null
	wait 2>/dev/null
	xv_cleanup "$status"
}
trap stop_responder EXIT
ip link set lo up

python3 - "$log" <<'EOF' &
import socket, struct, sys, threading, time

log = open(sys.argv[1], 'w', buffering=1)
calls = 0
# The scenario served next: it advances only once a scenario was sent
# whole, so one lost to a reset connection is served again.
step = 1
lock = threading.Lock()

def exact(c, n):
    b = b''
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b

def frag(data, last):
    return struct.pack('>I', (0x80000000 if last else 0) | len(data)) + data

def reply(xid, proc):
    # MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS for NULL else PROG_UNAVAIL.
    return struct.pack('>6I', xid, 1, 0, 0, 0, 0 if proc == 0 else 1)

def trickle(c, data):
    for i in range(0, len(data), 3):
        c.sendall(data[i:i + 3])
        time.sleep(0.005)

def serve(c):
    global calls, step
    try:
        while True:
            rec = b''
            while True:
                (m,) = struct.unpack('>I', exact(c, 4))
                rec += exact(c, m & 0x7fffffff)
                if m & 0x80000000:
                    break
            xid, _, _, prog, vers, proc = struct.unpack('>6I', rec[:24])
            with lock:
                calls += 1
                n = step
            log.write(f'call {calls} prog={prog} vers={vers} proc={proc}\n')
            r = reply(xid, proc)
            if n == 1:
                # Unknown XID, then a callback, then the reply in three
                # fragments, the middle one empty.
                trickle(c, frag(reply(xid ^ 0x5a5a5a5a, proc), True))
                trickle(c, frag(struct.pack('>2I', xid, 0) + b'\0' * 32, True))
                trickle(c, frag(r[:5], False) + frag(b'', False) + frag(r[5:], True))
                log.write('sent: unknown xid, callback, fragmented reply\n')
            elif n == 2:
                c.sendall(frag(struct.pack('>2I', xid, 7) + b'\0' * 16, True))
                log.write('sent: bad direction\n')
            elif n == 3:
                c.sendall(struct.pack('>I', 0xffffffff) + b'\0' * 64)
                log.write('sent: 2^31-1 byte marker\n')
            else:
                c.sendall(frag(r, True))
                log.write('sent: reply\n')
            with lock:
                step = max(step, n + 1)
    except EOFError:
        log.write('closed by the client\n')
    except OSError as e:
        log.write(f'connection error: {e!r}\n')
    finally:
        c.close()

s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, 2049))
s.listen(8)
log.write('listening\n')
while True:
    c, addr = s.accept()
    log.write(f'accepted from {addr}\n')
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
responder_pid=$!
for _ in $(seq 100); do
	grep -q listening "$log" 2>/dev/null && break
	sleep 0.2
done
grep -q listening "$log" || xv_fail "the responder did not start"

# Each mount attempt fails (the responder is no NFS server); repeat until
# every misbehaviour was served.
for attempt in 1 2 3 4; do
	echo "\$ mount -t nfs4 -o vers=4.2,proto=vsock,retry=0 1:/ $xv_mnt (attempt $attempt)"
	rc=0
	timeout 90 mount -t nfs4 -o vers=4.2,proto=vsock,retry=0 1:/ "$xv_mnt" || rc=$?
	[[ $rc != 0 ]] || xv_fail "mount succeeded against a non-NFS responder"
	[[ $rc != 124 ]] || xv_fail "mount hung"
	grep -q 'sent: reply' "$log" && break
done
cat "$log"
grep -q 'sent: reply' "$log" || xv_fail "the responder's scenarios were not all served"
echo "--- kernel log"
xv_since_marker | grep -v overlayfs
xv_since_marker | grep -q 'xprtvsock: server vsock:1: bad message direction; closing the connection' ||
	xv_fail "no message about the bad direction"
xv_since_marker | grep -q 'xprtvsock: server vsock:1: bad record marking; closing the connection' ||
	xv_fail "no message about the bad record marker"
[[ $(grep -c '^accepted' "$log") -ge 3 ]] || xv_fail "the client did not reconnect after the closes"
# The first call's reply came after the noise: NULL succeeded on it.
[[ $(grep -c '^call' "$log") -ge 4 ]] || xv_fail "too few calls"
xv_check_log
kill "$responder_pid"
responder_pid=
