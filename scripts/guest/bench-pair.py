#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The two guests of make bench's pair part (scripts/bench, scripts/vm-pair).

bench-pair.py serve, in the server guest (CID 2 to the client, 169.254.0.2
on vm-pair's virtio-net link): brings up the host path vm-pair chose
(XV_PAIR_HOST_PATH: vhost_vsock and xv-vhost-bridge, or the guest's own
virtio-vsock device), then nfsd exports a tmpfs over vsock and over TCP,
and raw stream servers listen on vsock and on TCP, port 5201 (the client
writes, the server counts) and 5202 (the server sends what the client asks
for). Prints READY and serves until the client is done.

bench-pair.py measure CONFIG, in the client guest (CID 3): measures every
file system the client reaches, one mounted at a time,
  NFSv4.2 over vsock (xv-vsockd) and over TCP (the virtio-net link), both
      served by the other guest's nfsd from a tmpfs,
  virtio-fs, virtiofsd on the real host with --cache=auto and with
      --cache=never (two devices, tags xvbench-auto and xvbench-never),
  9p, QEMU's export of the same host directory (tag xvbench9p), mounted
      with cache=loose and with cache=none,
and the raw channels, vsock through xv-vsockd and TCP over virtio-net,
each way. Every figure is taken in ROUNDS rounds, the transports taking
turns at going first. The CPU time xv-vsockd spends is asked of the real
host (scripts/bench answers through $XV_OUT/vsockd-cpu); the client's own
CPU time during each sequential transfer and each metadata loop is read
from its /proc/uptime and /proc/stat. Writes every round, the medians and
the host path to $XV_OUT/bench-pair.json; a figure that could not be
taken is None there and its error is listed.

CONFIG is a JSON file of scripts/bench's: "size MiB" and "rounds" (what
XV_BENCH_MIB and XV_BENCH_ROUNDS said) and "tree" (the tarball to unpack).
A file rather than the
environment: the guest command travels on the kernel command line, whose
2 KiB it must share with virtme-ng's own arguments.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The loopback benchmark's helpers: fio, the metadata loop, the GETATTR
# round trip, medians, the mountstats check of a mount's transport.
import bench  # noqa: E402

ROOT = os.environ["XV_ROOT"]
OUT = os.environ["XV_OUT"]
# From CONFIG (measure); the loopback module's fio reads bench.SIZE_MIB.
SIZE_MIB = bench.SIZE_MIB
ROUNDS = bench.ROUNDS
TREE_TAR = None
SERVER_IP = "169.254.0.2"
SINK_PORT = 5201
SOURCE_PORT = 5202
# The socket buffer xprtvsock sets (BUFFER_LEN in rust/vsock.rs); the raw
# vsock stream uses it too, so it is the ceiling of the same channel.
VSOCK_BUFFER = 2 << 20
CHUNK = 1 << 20

_NFS = "vers=4.2,rsize=1048576,wsize=1048576"
_9P = "trans=virtio,version=9p2000.L,msize=524288"
# name: (type, source, options, uncached: stat(2) reaches the server)
TRANSPORTS = {
    "nfs vsock": ("nfs4", "2:/", f"{_NFS},proto=vsock", False),
    "nfs tcp": ("nfs4", f"{SERVER_IP}:/", f"{_NFS},proto=tcp", False),
    "virtiofs auto": ("virtiofs", "xvbench-auto", None, False),
    "virtiofs never": ("virtiofs", "xvbench-never", None, True),
    "9p loose": ("9p", "xvbench9p", f"{_9P},cache=loose", False),
    "9p none": ("9p", "xvbench9p", f"{_9P},cache=none", True),
}
NFS_TRANSPORT = {"nfs vsock": "vsock", "nfs tcp": "tcp"}
RAW = {
    "raw vsock": (socket.AF_VSOCK, 2),
    "raw tcp": (socket.AF_INET, SERVER_IP),
}
errors = []


def run(*args, **kw):
    return bench.run(*args, **kw)


def pair_lib(command):
    """A command of scripts/guest/pair-lib.bash's."""
    run("bash", "-c", f". {ROOT}/scripts/guest/pair-lib.bash && {command}")


def slug(name):
    return name.replace(" ", "-")


# --- the server guest -------------------------------------------------------

def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            raise ConnectionError("peer closed early")
        data += part
    return data


def sink(listener):
    """Counts what each client sends; answers the count once it has all."""
    buf = bytearray(CHUNK)
    while True:
        conn, _ = listener.accept()
        try:
            received = 0
            while True:
                n = conn.recv_into(buf)
                if n == 0:
                    break
                received += n
            conn.sendall(struct.pack("!Q", received))
        except OSError as e:
            print(f"raw sink: {e}", flush=True)
        conn.close()


def source(listener):
    """Sends each client the number of bytes it asks for, then closes."""
    chunk = bytes(CHUNK)
    while True:
        conn, _ = listener.accept()
        try:
            left = struct.unpack("!Q", recv_exact(conn, 8))[0]
            while left > 0:
                conn.sendall(chunk[:min(left, CHUNK)])
                left -= min(left, CHUNK)
        except OSError as e:
            print(f"raw source: {e}", flush=True)
        conn.close()


def listen(family, address):
    listener = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_VSOCK:
        # Accepted sockets inherit the listener's buffer.
        bench.set_buffer(listener, VSOCK_BUFFER)
    else:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(4)
    return listener


def serve():
    pair_lib("pair_net_up 2 && pair_host_path_up")
    mountd = bench.start_nfsd(["vsock:*", "169.254.0.0/24"], "1200M")
    for family, host in ((socket.AF_VSOCK, socket.VMADDR_CID_ANY),
                         (socket.AF_INET, SERVER_IP)):
        for port, serve_one in ((SINK_PORT, sink), (SOURCE_PORT, source)):
            threading.Thread(target=serve_one, daemon=True,
                             args=(listen(family, (host, port)),)).start()
    print("READY", flush=True)
    done = os.environ["XV_PAIR_DONE"]
    while not os.path.exists(done):
        time.sleep(1)
    run("rpc.nfsd", "0")
    mountd.terminate()


# --- the client guest -------------------------------------------------------

class VsockdCpu:
    """xv-vsockd's CPU seconds (utime + stime), asked of the real host: a
    request file in $XV_OUT/vsockd-cpu, which the host's side of make bench
    answers from /proc/PID/stat of xv-vsockd."""

    def __init__(self):
        self.dir = os.path.join(OUT, "vsockd-cpu")
        os.makedirs(self.dir, exist_ok=True)
        self.n = 0
        self.available = True

    def seconds(self):
        if not self.available:
            return None
        self.n += 1
        answer = os.path.join(self.dir, f"ans-{self.n}")
        bench.write(os.path.join(self.dir, f"req-{self.n}"), "")
        for _ in range(100):
            if os.path.exists(answer):
                ticks, hz = open(answer).read().split()
                os.unlink(answer)
                return int(ticks) / int(hz)
            time.sleep(0.1)
        print("no answer from the real host: xv-vsockd's CPU is not "
              "measured (run through scripts/bench)", flush=True)
        self.available = False
        return None


cpu = None
CLK_TCK = os.sysconf("SC_CLK_TCK")
# What the client's CPU time is read from, by this script or by fio.
PROC_CPU = ("/proc/uptime", "/proc/stat")


def busy_seconds(readings):
    """The CPU seconds this guest has spent busy since it booted, from
    /proc/uptime and /proc/stat read in that order: its CPUs' time since
    boot less what the "cpu" line counts as idle and iowait. Not the sum of
    that line's other fields: those are sampled at the 10 ms tick, which
    this tickless kernel stops while idle, so they miss most of the short
    bursts of an I/O-bound loop (one of 1 ms busy and 1 ms asleep read 0
    there), while idle and iowait are measured at each entry to and exit
    from idle."""
    lines = readings.splitlines()
    since_boot = float(lines[0].split()[0])
    fields = lines[1].split()
    waiting = (int(fields[4]) + int(fields[5])) / CLK_TCK
    return since_boot * os.cpu_count() - waiting


def client_cpu_seconds():
    readings = ""
    for path in PROC_CPU:
        with open(path) as f:
            readings += f.read()
    return busy_seconds(readings)


def guarded(what, fn, *args):
    """fn(*args), or None with the error recorded: one figure that cannot
    be taken must not cost the others of a long run."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 (any failure is reported)
        traceback.print_exc()
        errors.append(f"{what}: {e}")
        return None


def metadata(directory):
    """The loopback benchmark's create, stat and unlink loop over 300 files,
    with the client's caches dropped between the creates and the stats:
    each stat is then a lookup at the server, on every file system. With
    the creates' attributes still cached, the stat rate would measure the
    cache, and on NFS whether the creates outlasted its 3 s attribute
    timeout. Each loop's rate, and the client's CPU per operation."""
    base = os.path.join(directory, "meta")
    os.mkdir(base)
    names = [os.path.join(base, f"f{i}") for i in range(bench.META_FILES)]
    figures = {}

    def loop(op, call):
        cpu_before = client_cpu_seconds()
        start = time.monotonic()
        for name in names:
            call(name)
        elapsed = time.monotonic() - start
        figures[f"{op}/s"] = len(names) / elapsed
        figures[f"{op} client CPU us/op"] = (
            (client_cpu_seconds() - cpu_before) * 1e6 / len(names))

    loop("create", lambda name: os.close(
        os.open(name, os.O_CREAT | os.O_WRONLY, 0o644)))
    bench.drop_caches()
    loop("stat", os.stat)
    loop("unlink", os.unlink)
    os.rmdir(base)
    return figures


def ms_per_mib(before, after, mib):
    if before is None or after is None:
        return None
    return (after - before) * 1000 / mib


# fio's working directory, where it leaves what its --exec_prerun and
# --exec_postrun commands print (JOB.prerun.txt, JOB.postrun.txt).
FIO_CWD = "/tmp"


def sequential(job, directory, rw, direct, extra=()):
    """One sequential fio pass of SIZE_MIB in 1 MiB blocks, with the
    client's CPU time per MiB during its I/O. fio reads /proc itself just
    before its first I/O and after its last (and the end_fsync), which
    leaves out its start, its JSON and its exit: some 0.6 s of a TCG
    guest's CPU per pass, which would weigh on every pass alike."""
    outputs = [os.path.join(FIO_CWD, f"{job}.{when}.txt")
               for when in ("prerun", "postrun")]
    for path in outputs:
        if os.path.exists(path):
            os.unlink(path)
    read = f"cat {' '.join(PROC_CPU)}"
    figures = bench.fio(job, directory, rw, "1M", direct,
                        [*extra, f"--exec_prerun={read}",
                         f"--exec_postrun={read}"], FIO_CWD)
    readings = []
    for path in outputs:
        with open(path) as f:
            readings.append(busy_seconds(f.read()))
    before, after = readings
    figures["client CPU ms/MiB"] = (after - before) * 1000 / SIZE_MIB
    return figures


def throughput(name, directory):
    f = {}
    before = cpu.seconds() if name == "nfs vsock" else None
    f["seq write buffered"] = guarded(f"{name}: seq write buffered",
                                      sequential, "seqwrite", directory,
                                      "write", False, ["--end_fsync=1"])
    guarded(f"{name}: drop caches", bench.drop_caches)
    f["seq read buffered"] = guarded(f"{name}: seq read buffered",
                                     sequential, "seqread", directory, "read",
                                     False)
    f["seq write direct"] = guarded(f"{name}: seq write direct", sequential,
                                    "seqwrite", directory, "write", True)
    f["seq read direct"] = guarded(f"{name}: seq read direct", sequential,
                                   "seqread", directory, "read", True)
    if before is not None:
        # Four passes of SIZE_MIB through the device.
        f["xv-vsockd ms/MiB"] = ms_per_mib(before, cpu.seconds(),
                                           4 * SIZE_MIB)
    f["4k random read direct"] = guarded(
        f"{name}: 4k random read", bench.fio, "randread", directory,
        "randread", "4k", True, ["--ioengine=libaio", "--iodepth=16",
                                 "--time_based", "--runtime=10"])
    guarded(f"{name}: remove bench.dat", os.unlink,
            os.path.join(directory, "bench.dat"))
    return f


TREE_COPY = "/tmp/xv-bench-src"


def unpack(directory):
    """The source tree unpacked, to the last byte on the server."""
    start = time.monotonic()
    run("tar", "-xf", os.path.join(TREE_COPY, "tree.tar"), "-C", directory,
        "--no-same-owner")
    run("sync", "-f", directory)
    return {"s": time.monotonic() - start}


def git_walk(directory):
    """git status and git diff --stat over the unpacked tree, from a cold
    client cache: every file is looked up, and read, since its inode and
    ctime differ from the index's."""
    bench.drop_caches()
    tree = os.path.join(directory, "xv-tree")
    git = ["git", "-c", "safe.directory=*", "-C", tree]
    env = dict(os.environ, HOME="/tmp", GIT_CONFIG_NOSYSTEM="1")
    start = time.monotonic()
    status = subprocess.run(git + ["status", "--porcelain"], check=True,
                            env=env, capture_output=True, text=True).stdout
    diff = subprocess.run(git + ["diff", "--stat"], check=True, env=env,
                          capture_output=True, text=True).stdout
    elapsed = time.monotonic() - start
    changed = len(status.splitlines())
    if not diff.strip() or changed == 0:
        raise RuntimeError("git found no change in the unpacked tree")
    return {"s": elapsed, "files changed": changed}


def mount(name, mountpoint):
    fstype, src, options, _ = TRANSPORTS[name]
    args = ["mount", "-t", fstype]
    if options:
        args += ["-o", options]
    run(*args, src, mountpoint)
    if fstype == "nfs4":
        # Only one NFS transport is mounted at a time (the client takes a
        # second mount of the same server for trunking and would reuse the
        # first one's transport); check the one in use.
        used = bench.mount_transport_name(mountpoint)
        if used != NFS_TRANSPORT[name]:
            raise RuntimeError(f"{mountpoint}: the client uses {used}")


def mount_options(mountpoint):
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[1] == mountpoint:
                return fields[3]
    return None


def measure_fs(name, number):
    mountpoint = f"/tmp/xv-{slug(name)}"
    rtt_mount = f"{mountpoint}-noac"
    os.makedirs(mountpoint, exist_ok=True)
    figures = {}
    try:
        mount(name, mountpoint)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        errors.append(f"{name}: mount: {e}")
        # Mounted over the wrong transport: gone before the next mount.
        if os.path.ismount(mountpoint):
            guarded(f"{name}: umount", run, "umount", mountpoint)
        return figures
    nfs = TRANSPORTS[name][0] == "nfs4"
    try:
        figures["mount options"] = mount_options(mountpoint)
        work = os.path.join(mountpoint, f"xv-bench-{slug(name)}")
        if os.path.exists(work):  # left by a round that failed half-way
            shutil.rmtree(work)
        os.mkdir(work)
        figures.update(throughput(name, work))
        figures["metadata"] = guarded(f"{name}: metadata", metadata, work)
        # GETATTR round trip: stat(2) where it reaches the server, on a
        # noac mount for NFS, on the uncached variants of virtio-fs and 9p;
        # with attributes cached it measures the cache, so it is not taken.
        rtt_dir = None
        if nfs:
            os.makedirs(rtt_mount, exist_ok=True)
            opts = f"{TRANSPORTS[name][2]},noac,nosharecache"
            if guarded(f"{name}: noac mount", run, "mount", "-t", "nfs4",
                       "-o", opts, TRANSPORTS[name][1], rtt_mount):
                rtt_dir = os.path.join(rtt_mount, os.path.basename(work))
        elif TRANSPORTS[name][3]:
            rtt_dir = work
        figures["rpc round trip"] = (
            guarded(f"{name}: round trip", bench.round_trip, rtt_dir,
                    rtt_mount if nfs else None)
            if rtt_dir else None)
        if nfs and figures["rpc round trip"]:
            figures["getattr call"] = figures["rpc round trip"].pop("getattr")
        if nfs and os.path.ismount(rtt_mount):
            with open("/proc/self/mountstats") as stats:
                bench.write(os.path.join(
                    OUT, f"mountstats-{slug(name)}-{number}.txt"),
                    stats.read())
            guarded(f"{name}: umount noac", run, "umount", rtt_mount)
        if TREE_TAR:
            figures["unpack"] = guarded(f"{name}: unpack", unpack, work)
            figures["git status+diff"] = (
                guarded(f"{name}: git", git_walk, work)
                if figures["unpack"] else None)
        guarded(f"{name}: clean up", shutil.rmtree, work)
    except Exception as e:  # noqa: BLE001 (the next transport still runs)
        traceback.print_exc()
        errors.append(f"{name}: {e}")
    finally:
        if os.path.ismount(rtt_mount):
            guarded(f"{name}: umount noac", run, "umount", rtt_mount)
        guarded(f"{name}: umount", run, "umount", mountpoint)
    return figures


def raw_stream(name, direction):
    """SIZE_MIB MiB one way over a raw stream to the server guest: "write"
    is client to server (timed until the server has counted it all),
    "read" server to client (until the last byte is in)."""
    family, host = RAW[name]
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_VSOCK:
        bench.set_buffer(sock, VSOCK_BUFFER)
    total = SIZE_MIB * 2**20
    if direction == "write":
        sock.connect((host, SINK_PORT))
        chunk = bytes(CHUNK)
        start = time.monotonic()
        for _ in range(total // CHUNK):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        got = struct.unpack("!Q", recv_exact(sock, 8))[0]
    else:
        sock.connect((host, SOURCE_PORT))
        buf = bytearray(CHUNK)
        start = time.monotonic()
        sock.sendall(struct.pack("!Q", total))
        got = 0
        while True:
            n = sock.recv_into(buf)
            if n == 0:
                break
            got += n
    elapsed = time.monotonic() - start
    sock.close()
    if got != total:
        raise RuntimeError(f"{name} {direction}: {got} of {total} bytes")
    return {"MiB/s": SIZE_MIB / elapsed}


def measure_raw(name):
    figures = {}
    for direction in ("write", "read"):
        before = cpu.seconds() if name == "raw vsock" else None
        figures[direction] = guarded(f"{name} {direction}", raw_stream, name,
                                     direction)
        if before is not None and figures[direction]:
            figures[direction]["xv-vsockd ms/MiB"] = ms_per_mib(
                before, cpu.seconds(), SIZE_MIB)
    return figures


def setup_client(cid):
    run("ip", "link", "set", "lo", "up")
    pair_lib(f"pair_net_up {cid}")
    run("insmod", os.path.join(ROOT, "xprtvsock.ko"))
    tree = {}
    if TREE_TAR:
        # Unpacked from memory, not from the 9p root it lives on.
        os.makedirs(TREE_COPY, exist_ok=True)
        run("mount", "-t", "tmpfs", "-o", "size=256M", "xv-bench-src",
            TREE_COPY)
        shutil.copy(TREE_TAR, os.path.join(TREE_COPY, "tree.tar"))
        with tarfile.open(os.path.join(TREE_COPY, "tree.tar")) as tar:
            members = tar.getmembers()
        tree = {"tarball": TREE_TAR,
                "files": sum(m.isfile() for m in members),
                "MiB": os.path.getsize(TREE_TAR) / 2**20}
    return tree


def rotate(items, n):
    items = list(items)
    n %= len(items)
    return items[n:] + items[:n]


def measure(config):
    global cpu, SIZE_MIB, ROUNDS, TREE_TAR
    with open(config) as f:
        cfg = json.load(f)
    SIZE_MIB = bench.SIZE_MIB = int(cfg["size MiB"])
    ROUNDS = int(cfg["rounds"])
    TREE_TAR = cfg.get("tree")
    cid = int(os.environ.get("XV_PAIR_CID", "3"))
    cpu = VsockdCpu()
    tree = setup_client(cid)
    rounds = []
    for number in range(ROUNDS):
        # Each round starts with another transport, so that none always
        # runs first or always after the same one.
        figures = {}
        for name in rotate(TRANSPORTS, number):
            print(f"=== round {number + 1}/{ROUNDS}: {name}", flush=True)
            figures[name] = measure_fs(name, number)
        for name in rotate(RAW, number):
            print(f"=== round {number + 1}/{ROUNDS}: {name}", flush=True)
            figures[name] = measure_raw(name)
        rounds.append(figures)
    results = {"size MiB": SIZE_MIB, "kernel": os.uname().release,
               "host path": os.environ.get("XV_PAIR_HOST_PATH", "guest"),
               "rounds": rounds, "tree": tree, "errors": errors,
               "medians": medians(rounds)}
    bench.write(os.path.join(OUT, "bench-pair.json"),
                json.dumps(results, indent=2))
    print(json.dumps(results["medians"], indent=2))
    if errors:
        print(f"{len(errors)} figures could not be taken:", *errors,
              sep="\n  ", flush=True)


def medians(rounds):
    """The median of every number across rounds, keys absent in some
    rounds (a failed mount) included; strings are taken from the first
    round that has them."""
    def merge(samples):
        present = [s for s in samples if s is not None]
        if not present:
            return None
        if isinstance(present[0], dict):
            keys = []
            for s in present:
                keys += [k for k in s if k not in keys]
            return {k: merge([s.get(k) for s in present]) for k in keys}
        if isinstance(present[0], str):
            return present[0]
        return bench.medians(present)
    return merge(rounds)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif len(sys.argv) == 3 and sys.argv[1] == "measure":
        measure(sys.argv[2])
    else:
        sys.exit("usage: bench-pair.py serve | measure CONFIG")
