#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# vsock's credit updates keep every sender going: series patch 12 sends one
# only when the peer's credit runs below half its window, which is the
# smaller of the two socket buffers. Streams and a ping-pong of small
# messages (RPC's pattern, whose replies carry the credit) cross vsock
# loopback between sockets of unequal buffers, each way; a sender that
# waits for an update that never comes fails the case after 60 s.
# xv-cost: 39
set -euo pipefail
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }
python3 - <<'EOF'
import hashlib
import os
import socket
import sys
import threading

PORT = 5012
STALL = 60
STREAM = 4 << 20


def set_buffer(sock, size):
    sock.setsockopt(socket.AF_VSOCK, socket.SO_VM_SOCKETS_BUFFER_MAX_SIZE, size)
    sock.setsockopt(socket.AF_VSOCK, socket.SO_VM_SOCKETS_BUFFER_SIZE, size)


def pair(send_buffer, recv_buffer):
    listener = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    # Accepted sockets inherit the listener's buffer.
    set_buffer(listener, recv_buffer)
    listener.bind((socket.VMADDR_CID_ANY, PORT))
    listener.listen(1)
    sender = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    set_buffer(sender, send_buffer)
    sender.settimeout(STALL)
    sender.connect((1, PORT))
    listener.settimeout(STALL)
    receiver, _ = listener.accept()
    listener.close()
    receiver.settimeout(STALL)
    return sender, receiver


def stream(send_buffer, recv_buffer, read_size):
    """STREAM random bytes one way, read read_size bytes at a time."""
    data = os.urandom(STREAM)
    sender, receiver = pair(send_buffer, recv_buffer)
    digest = hashlib.sha256()
    received = 0

    def read():
        nonlocal received
        while True:
            chunk = receiver.recv(read_size)
            if not chunk:
                return
            digest.update(chunk)
            received += len(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    sender.sendall(data)
    sender.shutdown(socket.SHUT_WR)
    reader.join(STALL + 5)
    sender.close()
    receiver.close()
    if reader.is_alive() or received != STREAM:
        raise RuntimeError(f"{received} of {STREAM} bytes arrived")
    if digest.digest() != hashlib.sha256(data).digest():
        raise RuntimeError("the stream arrived changed")


def exact(sock, n):
    """n bytes from sock. Not MSG_WAITALL: a socket with a timeout is
    non-blocking underneath, and a non-blocking read returns what is there."""
    data = bytearray(n)
    view = memoryview(data)
    got = 0
    while got < n:
        count = sock.recv_into(view[got:])
        if count == 0:
            raise RuntimeError(f"closed after {got} of {n} bytes")
        got += count
    return bytes(data)


def ping_pong(send_buffer, recv_buffer, size, count):
    """count messages of size bytes, each answered by the same bytes."""
    client, server = pair(send_buffer, recv_buffer)

    def echo():
        try:
            for _ in range(count):
                server.sendall(exact(server, size))
        except (OSError, RuntimeError):
            pass

    responder = threading.Thread(target=echo)
    responder.start()
    for i in range(count):
        message = i.to_bytes(4, "big") * (size // 4)
        client.sendall(message)
        if exact(client, size) != message:
            raise RuntimeError(f"message {i} came back changed")
    responder.join(STALL)
    client.close()
    server.close()


K = 1 << 10
M = 1 << 20
cases = []
for send_buffer, recv_buffer in ((256 * K, 256 * K), (256 * K, 2 * M),
                                 (2 * M, 256 * K), (2 * M, 2 * M),
                                 (16 * K, 2 * M), (2 * M, 16 * K)):
    name = f"{send_buffer // K} KiB to {recv_buffer // K} KiB"
    cases.append((f"stream {name}, 64 KiB reads",
                  lambda s=send_buffer, r=recv_buffer: stream(s, r, 64 * K)))
    cases.append((f"stream {name}, 1 MiB reads",
                  lambda s=send_buffer, r=recv_buffer: stream(s, r, M)))
    cases.append((f"ping-pong {name}, 200 bytes",
                  lambda s=send_buffer, r=recv_buffer:
                  ping_pong(s, r, 200, 1000)))
    cases.append((f"ping-pong {name}, 96 KiB",
                  lambda s=send_buffer, r=recv_buffer:
                  ping_pong(s, r, 96 * K, 50)))
failed = 0
for name, run in cases:
    try:
        run()
        print(f"ok: {name}", flush=True)
    except (OSError, RuntimeError) as e:
        print(f"FAILED: {name}: {e}", flush=True)
        failed += 1
sys.exit(1 if failed else 0)
EOF
