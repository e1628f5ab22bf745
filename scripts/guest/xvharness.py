#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The test harness's Python library: KTAP results and the two-kernel cases.

KTAP. Ktap declares a suite's plan, one result per key, before the first
result; a declared key without a result, a second result for a key and a
result for a key not declared are failures. It is the one writer of the
harness's KTAP files: the guest phase assembles vm.ktap with the command
line form,

    xvharness.py ktap FILE SUITE KEY... < RESULTS

where each line of RESULTS is "STATUS<TAB>KEY<TAB>DESCRIPTION<TAB>DIAGNOSTIC"
and STATUS is ok, "not ok" or skip (whose reason is the diagnostic). It
exits 1 if the suite failed.

Two kernels. In the style of the kernel's multi-host selftests
(tools/testing/selftests/net/lib/py): the client kernel runs the cases
(scripts/guest/pair-cases); each case is one function whose steps run in
the client (cmd) or in the server kernel (Server.cmd), where

    xvharness.py agent

runs each step it is sent, answering over TCP port 7001 of vm-pair's
virtio-net link (169.254.0.2). Neither the NFS mount nor the vsock
transport under test carries the harness's steps or results, so a fault in
them cannot silence it. A step is a bash script run with
scripts/guest/xv-lib.bash sourced (splats, kmemleak, the module, nfsd's
bring-up) and, in the server, scripts/guest/pair-lib.bash; a step that
leaves a process running sends that process's output to a file.
"""

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.environ.get("XV_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SERVER_IP = "169.254.0.2"
AGENT_PORT = 7001
_START = time.monotonic()


def elapsed():
    """Seconds since this process began, to see where a run's time goes."""
    return int(time.monotonic() - _START)


class Ktap:
    """One suite's results, written to a KTAP file by end()."""

    def __init__(self, path, suite, keys, echo=True):
        self.path = path
        self.echo = echo
        self.suite = suite
        self.keys = list(keys)
        self.results = {}
        self.extra = []
        self.failed = False

    def result(self, key, status, description, diagnostic=""):
        """Records one result: status True (ok), False (not ok) or "skip".

        Returns whether the result is not a failure."""
        diagnostic = " ".join(str(diagnostic).split("\n")).strip() or "failed"
        if status is True:
            line = f"ok {key}: {description}"
        elif status == "skip":
            line = f"skip {key}: {description}: {diagnostic}"
        else:
            status = False
            line = f"not ok {key}: {description}: {diagnostic}"
            self.failed = True
        if self.echo:
            print(f"ktap: {line} [{elapsed()} s]", flush=True)
        if key not in self.keys:
            self.extra.append(f"result for a key not in the plan, {key}: {description}")
            self.failed = True
        elif key in self.results:
            self.extra.append(f"a second result for {key}: {description}")
            self.failed = True
        else:
            self.results[key] = (status, description, diagnostic)
        return status is not False

    def missing(self):
        """The declared keys without a result yet."""
        return [key for key in self.keys if key not in self.results]

    def end(self):
        """Writes the file; returns False if any result failed or is missing."""
        lines = ["KTAP version 1", "1..1", "    KTAP version 1", f"    # Subtest: {self.suite}",
                 f"    1..{len(self.keys) + len(self.extra)}"]
        for n, key in enumerate(self.keys, 1):
            status, description, diagnostic = self.results.get(key, (None, key, "no result"))
            if status is True:
                lines.append(f"    ok {n} {description}")
            elif status == "skip":
                lines.append(f"    ok {n} {description} # SKIP {diagnostic}")
            else:
                if status is None:
                    print(f"ktap: not ok {key}: no result", file=sys.stderr, flush=True)
                    self.failed = True
                lines.append(f"    # {description}: {diagnostic}")
                lines.append(f"    not ok {n} {description}")
        for n, extra in enumerate(self.extra, len(self.keys) + 1):
            lines.append(f"    not ok {n} {extra}")
        lines.append(("not ok" if self.failed else "ok") + f" 1 {self.suite}")
        with open(self.path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return not self.failed


class Result:
    """What a step did: its exit status and its output (stdout and stderr)."""

    def __init__(self, rc, out):
        self.rc = rc
        self.out = out

    @property
    def ok(self):
        return self.rc == 0

    @property
    def text(self):
        return self.out.strip()

    def __repr__(self):
        return f"status {self.rc}: {self.text[-400:]}"


def _with_libraries(script, libraries):
    """script as a bash program run in ROOT with the libraries sourced."""
    prelude = f"cd {ROOT} || exit 1\n" + "".join(f". scripts/guest/{lib} || exit 1\n" for lib in libraries)
    return ["bash", "-c", prelude + "set -o pipefail\n" + script]


def _bash(script, timeout, libraries):
    """Runs script in bash with the libraries sourced; its process group is
    killed on timeout (status 124)."""
    proc = subprocess.Popen(_with_libraries(script, libraries), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            text=True, errors="replace")
    try:
        out, _ = proc.communicate(timeout=timeout)
        return Result(proc.returncode, out)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return Result(124, f"{out}\n(timed out after {timeout} s)")


def cmd(script, timeout=120):
    """Runs one step in this kernel; prints it and its output."""
    print(f"$ {script.strip()}", flush=True)
    result = _bash(script, timeout, ["xv-lib.bash"])
    if result.text:
        print(result.text, flush=True)
    return result


class Bkg:
    """A step of this kernel in the background, its output in a file."""

    def __init__(self, script, log):
        print(f"$ {script.strip()} &", flush=True)
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(_with_libraries(script, ["xv-lib.bash"]),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def signal(self, sig):
        """Signals the step's process: a step that is one program execs it."""
        self.proc.send_signal(sig)

    def wait(self, timeout=600):
        """The step's Result; killed (status 124) if it runs past timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            rc = 124
        with open(self.log, errors="replace") as f:
            return Result(rc, f.read())


class Server:
    """The server kernel's agent, over the virtio-net link."""

    def __init__(self, address=SERVER_IP, port=AGENT_PORT):
        self.address = (address, port)

    def _ask(self, request, timeout, connect_for):
        end = time.monotonic() + connect_for
        while True:
            try:
                conn = socket.create_connection(self.address, timeout=5)
                break
            except OSError as err:
                if time.monotonic() >= end:
                    return {"rc": 255, "out": f"no answer from the server's agent: {err}"}
                time.sleep(1)
        with conn:
            conn.settimeout(timeout + 30)
            try:
                conn.sendall((json.dumps(request) + "\n").encode())
                line = conn.makefile("r", errors="replace").readline()
                return json.loads(line)
            except (OSError, ValueError) as err:
                return {"rc": 255, "out": f"the server's agent did not answer: {err}"}

    def cmd(self, script, timeout=120, connect_for=10):
        """Runs one step in the server kernel; prints it and its output."""
        print(f"server$ {script.strip()}", flush=True)
        answer = self._ask({"cmd": script, "timeout": timeout}, timeout, connect_for)
        result = Result(answer["rc"], answer["out"])
        if result.text:
            print("\n".join("server: " + line for line in result.text.split("\n")), flush=True)
        return result

    def boot(self, wait=60, after=0):
        """The server's boot number (XV_PAIR_BOOT), once an agent of a boot
        after the given one answers, waiting up to wait seconds; None if
        none does (an agent that is ending may accept and not answer)."""
        end = time.monotonic() + wait
        while True:
            result = self.cmd("echo $XV_PAIR_BOOT", timeout=30, connect_for=max(1, end - time.monotonic()))
            if result.ok and result.text.isdigit() and int(result.text) > after:
                return int(result.text)
            if time.monotonic() >= end:
                return None
            time.sleep(2)

    def exit(self):
        """Ends the agent, and so the server's boot."""
        return self._ask({"exit": True}, 30, 10).get("rc") == 0


class _AgentHandler(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            request = json.loads(self.rfile.readline())
        except ValueError as err:
            answer = {"rc": 255, "out": f"a request the agent cannot read: {err}"}
        else:
            if request.get("exit"):
                answer = {"rc": 0, "out": ""}
                self.server.done.set()
            else:
                print(f"agent: {request['cmd'].strip()}", flush=True)
                result = _bash(request["cmd"], int(request.get("timeout", 120)), ["xv-lib.bash", "pair-lib.bash"])
                print(result.out, end="", flush=True)
                answer = {"rc": result.rc, "out": result.out}
        self.wfile.write((json.dumps(answer) + "\n").encode())


def agent(done_file):
    """Serves steps until asked to end, or until done_file appears (the
    last client has ended; see scripts/vm-pair)."""
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", AGENT_PORT), _AgentHandler) as server:
        server.done = threading.Event()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print("READY", flush=True)
        while not server.done.wait(1):
            if done_file and os.path.exists(done_file):
                print("agent: the clients are done", flush=True)
                break
        server.shutdown()


class Cases:
    """A boot's cases: each a function that reports the keys it declares.

    run() declares every case's keys before the first runs; a case that
    stops (an exception) has its keys without a result failed, naming why."""

    def __init__(self):
        self.cases = []

    def case(self, *keys):
        def register(fn):
            self.cases.append((fn, keys))
            return fn
        return register

    def run(self, path, suite, selected=None):
        cases = [(fn, keys) for fn, keys in self.cases if not selected or fn.__name__ in selected]
        ktap = Ktap(path, suite, [key for _, keys in cases for key in keys])
        for fn, keys in cases:
            print(f"pair: case {fn.__name__} [{elapsed()} s]", flush=True)
            try:
                fn(ktap)
            except Exception as err:
                traceback.print_exc()
                for key in keys:
                    if key not in ktap.results:
                        ktap.result(key, False, key, f"case {fn.__name__} stopped: {err!r}")
        return ktap


def _ktap_cli(args):
    if len(args) < 2:
        sys.exit("usage: xvharness.py ktap FILE SUITE KEY... < RESULTS")
    ktap = Ktap(args[0], args[1], args[2:], echo=False)
    for line in sys.stdin:
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 3:
            continue
        status = {"ok": True, "skip": "skip"}.get(fields[0], False)
        ktap.result(fields[1], status, fields[2], fields[3] if len(fields) > 3 else "")
    sys.exit(0 if ktap.end() else 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["ktap"]:
        _ktap_cli(sys.argv[2:])
    elif sys.argv[1:2] == ["agent"]:
        agent(os.environ.get("XV_PAIR_DONE"))
    else:
        sys.exit("usage: xvharness.py ktap FILE SUITE KEY... < RESULTS | xvharness.py agent")
