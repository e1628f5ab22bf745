#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The guest half of make bench (see scripts/bench).

Serves an export from nfsd inside this guest and measures it mounted over
proto=vsock (loopback CID 1) and over TCP (127.0.0.1), one transport mounted
at a time, plus a raw AF_VSOCK stream between two sockets of this guest as
the ceiling of the vsock transport. Every figure is taken in ROUNDS rounds,
the transports taking turns. Writes one JSON document with every round and
the median of each figure to $XV_OUT/bench.json; the host turns the medians
into ratios.
"""

import json
import os
import re
import statistics
import socket
import subprocess
import sys
import threading
import time

ROOT = os.environ["XV_ROOT"]
OUT = os.environ["XV_OUT"]
SIZE_MIB = int(os.environ.get("XV_BENCH_MIB", "256"))
EXPORT = "/srv/xv-bench"
MOUNTS = {"vsock": "/tmp/xv-vsock", "tcp": "/tmp/xv-tcp"}
RTT_MOUNTS = {"vsock": "/tmp/xv-vsock-noac", "tcp": "/tmp/xv-tcp-noac"}
META_FILES = 300
RTT_CALLS = 2000
RAW_PORT = 5201
# Every figure is measured this many times, the transports taking turns, and
# reported as the median: under TCG one run of a figure can move by a third.
ROUNDS = int(os.environ.get("XV_BENCH_ROUNDS", "3"))
SOURCES = {"vsock": "1:/", "tcp": "127.0.0.1:/"}
_COMMON = "vers=4.2,rsize=1048576,wsize=1048576"
MOUNT_OPTIONS = {
    "vsock": f"{_COMMON},proto=vsock",
    "tcp": f"{_COMMON},proto=tcp",
}
# vsock's default socket buffer, and the one xprtvsock sets (BUFFER_LEN in
# rust/vsock.rs): the raw stream at both sizes shows what the larger buffer
# buys.
RAW_BUFFERS = {"raw vsock": 2 << 20, "raw vsock 256k": 256 << 10}


def run(*args, **kw):
    print("$", " ".join(args), flush=True)
    return subprocess.run(args, check=True, **kw)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def start_nfsd(clients, tmpfs_size):
    """Exports a tmpfs of tmpfs_size at EXPORT to clients (their names, in
    /etc/exports syntax), starts rpc.mountd, loads the module, starts nfsd
    with a vsock listener and waits until mountd reads the auth.unix.ip
    upcalls. Returns mountd's process."""
    run("ip", "link", "set", "lo", "up")
    if not os.path.ismount("/proc/fs/nfsd"):
        run("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
    for d in ("/var/lib/nfs/v4recovery", "/var/lib/nfs/rpc_pipefs", EXPORT):
        os.makedirs(d, exist_ok=True)
    # The guest's root is read-only and /srv an overlay on 9p, which nfsd
    # cannot export. A tmpfs also keeps the server's data in memory, as
    # virtiofsd's and QEMU's 9p's is on the real host (a tmpfs there too).
    run("mount", "-t", "tmpfs", "-o", f"size={tmpfs_size}", "xv-bench", EXPORT)
    opts = "rw,no_subtree_check,no_root_squash,insecure,fsid=0"
    write("/etc/exports",
          EXPORT + "".join(f" {client}({opts})" for client in clients) + "\n")
    run("exportfs", "-ra")
    mountd = subprocess.Popen(["rpc.mountd", "-F", "-N", "3"])
    run("insmod", os.path.join(ROOT, "xprtvsock.ko"))
    # nfsd sizes its largest READ/WRITE from memory; every mount gets 1 MiB.
    write("/proc/fs/nfsd/max_block_size", "1048576\n")
    # No client has state to reclaim: the shortest grace period.
    write("/proc/fs/nfsd/nfsv4gracetime", "10\n")
    run("rpc.nfsd", "-N", "3", "--vsock", "2049", "8")
    # The kernel denies a client whose upcall no daemon reads yet.
    for _ in range(150):
        fds = f"/proc/{mountd.pid}/fd"
        if any("auth.unix.ip" in os.readlink(os.path.join(fds, fd))
               for fd in os.listdir(fds)):
            break
        time.sleep(0.2)
    return mountd


def mount_transport(transport):
    """Mounts the export over one transport, with and without attribute
    caching. The other transport's mounts must be gone: the NFS client
    treats a second mount of the same server as client ID trunking and
    reuses the existing nfs_client, transport and all, whatever proto= says.
    """
    opts = MOUNT_OPTIONS[transport]
    run("mount", "-t", "nfs4", "-o", opts, SOURCES[transport],
        MOUNTS[transport])
    run("mount", "-t", "nfs4", "-o", f"{opts},noac,nosharecache",
        SOURCES[transport], RTT_MOUNTS[transport])
    for mountpoint in (MOUNTS[transport], RTT_MOUNTS[transport]):
        used = mount_transport_name(mountpoint)
        if used != transport:
            sys.exit(f"{mountpoint}: mounted with proto={transport} but the "
                     f"client uses {used}")


def mountstats(mountpoint):
    """The fields of each line of one mount's section of mountstats."""
    with open("/proc/self/mountstats") as stats:
        current = None
        for line in stats:
            if line.startswith("device "):
                current = line.split()[4]
            elif current == mountpoint:
                yield line.split()


def mount_transport_name(mountpoint):
    """The transport named by a mount's "xprt:" line in mountstats."""
    for fields in mountstats(mountpoint):
        if fields[:1] == ["xprt:"]:
            return fields[1]
    sys.exit(f"{mountpoint}: no transport in /proc/self/mountstats")


def getattr_count(mountpoint):
    """(GETATTR calls, their total execute ms) of one NFS mount."""
    for fields in mountstats(mountpoint):
        if fields[:1] == ["GETATTR:"]:
            # ops trans timeouts bytes_sent bytes_recv queue rtt execute
            return int(fields[1]), int(fields[8])
    raise RuntimeError(f"{mountpoint}: no GETATTR line in mountstats")


def unmount_transport(transport):
    run("umount", RTT_MOUNTS[transport])
    run("umount", MOUNTS[transport])


def drop_caches():
    os.sync()
    write("/proc/sys/vm/drop_caches", "3\n")


def fio(name, directory, rw, bs, direct, extra=(), cwd=None):
    args = ["fio", "--output-format=json", f"--name={name}",
            f"--directory={directory}", f"--rw={rw}", f"--bs={bs}",
            f"--size={SIZE_MIB}M", f"--direct={int(direct)}",
            "--ioengine=psync", "--filename=bench.dat", *extra]
    print("$", " ".join(args), flush=True)
    out = subprocess.run(args, check=True, capture_output=True, text=True,
                         cwd=cwd).stdout
    # --exec_prerun and --exec_postrun each print a line before the JSON.
    result = json.loads(out[out.index("{"):])
    job = result["jobs"][0]
    side = job["write"] if "write" in rw else job["read"]
    return {"MiB/s": side["bw_bytes"] / 2**20, "IOPS": side["iops"]}


def throughput(directory):
    figures = {}
    figures["seq write buffered"] = fio("seqwrite", directory, "write", "1M",
                                        False, ["--end_fsync=1"])
    drop_caches()
    figures["seq read buffered"] = fio("seqread", directory, "read", "1M",
                                       False)
    figures["seq write direct"] = fio("seqwrite", directory, "write", "1M",
                                      True)
    figures["seq read direct"] = fio("seqread", directory, "read", "1M", True)
    figures["4k random read direct"] = fio(
        "randread", directory, "randread", "4k", True,
        ["--ioengine=libaio", "--iodepth=16", "--time_based",
         "--runtime=10"])
    os.unlink(os.path.join(directory, "bench.dat"))
    return figures


def metadata(directory):
    base = os.path.join(directory, "meta")
    os.mkdir(base)
    names = [os.path.join(base, f"f{i}") for i in range(META_FILES)]
    rates = {}
    start = time.monotonic()
    for name in names:
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644))
    rates["create/s"] = META_FILES / (time.monotonic() - start)
    start = time.monotonic()
    for name in names:
        os.stat(name)
    rates["stat/s"] = META_FILES / (time.monotonic() - start)
    start = time.monotonic()
    for name in names:
        os.unlink(name)
    rates["unlink/s"] = META_FILES / (time.monotonic() - start)
    os.rmdir(base)
    return rates


def round_trip(directory, nfs_mount=None):
    """Mean time of a stat(2) that reaches the server: on a noac mount it
    costs a GETATTR for the file and one for each directory of its path
    below the export. With nfs_mount, that mount's GETATTRs during the
    loop are counted too: the mean execute time of one (SUNRPC's, queueing
    included) and their number per stat(2)."""
    path = os.path.join(directory, "rtt")
    write(path, "")
    os.stat(path)
    before = getattr_count(nfs_mount) if nfs_mount else None
    start = time.monotonic()
    for _ in range(RTT_CALLS):
        os.stat(path)
    elapsed = time.monotonic() - start
    after = getattr_count(nfs_mount) if nfs_mount else None
    os.unlink(path)
    result = {"us": elapsed / RTT_CALLS * 1e6}
    if nfs_mount:
        calls = after[0] - before[0]
        if calls == 0:
            raise RuntimeError(f"{nfs_mount}: stat(2) sent no GETATTR")
        result["getattr"] = {"us": (after[1] - before[1]) * 1000 / calls,
                             "per stat": calls / RTT_CALLS}
    return result


def set_buffer(sock, size):
    sock.setsockopt(socket.AF_VSOCK, socket.SO_VM_SOCKETS_BUFFER_MAX_SIZE, size)
    sock.setsockopt(socket.AF_VSOCK, socket.SO_VM_SOCKETS_BUFFER_SIZE, size)


TRACING = "/sys/kernel/tracing"
# Where a GETATTR's time goes, from SUNRPC's tracepoints: the client queues
# the request (xprt_transmit), nfsd has read all of it (svc_xdr_recvfrom),
# nfsd has sent the reply (svc_send), the client has matched it to its
# request (xprt_lookup_rqst), and the task is done (rpc_stats_latency).
PHASE_EVENTS = ("xprt_transmit", "svc_xdr_recvfrom", "svc_send",
                "xprt_lookup_rqst", "rpc_stats_latency")
TRACE_LINE = re.compile(r" (\d+\.\d+): (\w+): .*?xid=(0x[0-9a-f]+)")


def rpc_phases(directory):
    """Median microseconds of each phase of a GETATTR round trip."""
    if not os.path.isdir(os.path.join(TRACING, "events")):
        run("mount", "-t", "tracefs", "tracefs", TRACING)
    write(os.path.join(TRACING, "buffer_size_kb"), "8192")
    write(os.path.join(TRACING, "trace"), "")
    for event in PHASE_EVENTS:
        write(os.path.join(TRACING, "events/sunrpc", event, "enable"), "1")
    round_trip(directory)
    for event in PHASE_EVENTS:
        write(os.path.join(TRACING, "events/sunrpc", event, "enable"), "0")
    seen = {}
    with open(os.path.join(TRACING, "trace")) as trace:
        for line in trace:
            m = TRACE_LINE.search(line)
            if m:
                stamp, event, xid = m.groups()
                seen.setdefault(xid, {}).setdefault(event, float(stamp) * 1e6)
    phases = {"request to nfsd": [], "nfsd": [], "reply to client": [],
              "wake-up to done": []}
    for c in seen.values():
        if not all(e in c for e in PHASE_EVENTS):
            continue
        phases["request to nfsd"].append(c["svc_xdr_recvfrom"] -
                                         c["xprt_transmit"])
        phases["nfsd"].append(c["svc_send"] - c["svc_xdr_recvfrom"])
        phases["reply to client"].append(c["xprt_lookup_rqst"] -
                                         c["svc_send"])
        phases["wake-up to done"].append(c["rpc_stats_latency"] -
                                         c["xprt_lookup_rqst"])
    return {name: statistics.median(v) if v else None
            for name, v in phases.items()} | {
        "calls": len(phases["nfsd"])}


def raw_vsock(buffer):
    """One stream of SIZE_MIB MiB between two AF_VSOCK sockets over CID 1,
    each with a socket buffer of `buffer` bytes."""
    total = SIZE_MIB * 2**20
    chunk = bytes(2**20)
    listener = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    # Accepted sockets inherit the listener's buffer.
    set_buffer(listener, buffer)
    listener.bind((socket.VMADDR_CID_ANY, RAW_PORT))
    listener.listen(1)
    received = [0]

    def sink():
        conn, _ = listener.accept()
        buf = bytearray(2**20)
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            received[0] += n
        conn.close()

    thread = threading.Thread(target=sink)
    thread.start()
    sender = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    set_buffer(sender, buffer)
    sender.connect((1, RAW_PORT))
    start = time.monotonic()
    sent = 0
    while sent < total:
        sender.sendall(chunk)
        sent += len(chunk)
    sender.shutdown(socket.SHUT_WR)
    thread.join()
    elapsed = time.monotonic() - start
    sender.close()
    listener.close()
    if received[0] != total:
        sys.exit(f"raw vsock: received {received[0]} of {total} bytes")
    return {"MiB/s": SIZE_MIB / elapsed}


def measure(transport, round_number):
    mount_transport(transport)
    figures = throughput(MOUNTS[transport])
    figures["metadata"] = metadata(MOUNTS[transport])
    figures["rpc round trip"] = round_trip(RTT_MOUNTS[transport])
    figures["rpc phases us"] = rpc_phases(RTT_MOUNTS[transport])
    # Per-operation counts and times, to see where a figure's time went.
    with open("/proc/self/mountstats") as stats:
        write(os.path.join(OUT, f"mountstats-{transport}-{round_number}.txt"),
              stats.read())
    unmount_transport(transport)
    return figures


def medians(samples):
    """The median of every number across dicts of the same shape."""
    first = samples[0]
    if isinstance(first, dict):
        return {key: medians([s[key] for s in samples]) for key in first}
    values = [s for s in samples if s is not None]
    return statistics.median(values) if values else None


def main():
    for m in list(MOUNTS.values()) + list(RTT_MOUNTS.values()):
        os.makedirs(m, exist_ok=True)
    start_nfsd(["vsock:1", "127.0.0.1"], "1G")
    rounds = []
    for number in range(ROUNDS):
        # Alternate which transport goes first, so that neither always
        # runs on a fresh page cache or after the other's writeback.
        order = ("vsock", "tcp") if number % 2 == 0 else ("tcp", "vsock")
        figures = {t: measure(t, number) for t in order}
        figures.update({name: raw_vsock(buffer)
                        for name, buffer in RAW_BUFFERS.items()})
        rounds.append(figures)
    results = {"size MiB": SIZE_MIB, "kernel": os.uname().release,
               "rounds": rounds} | medians(rounds)
    run("rpc.nfsd", "0")
    write(os.path.join(OUT, "bench.json"), json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
