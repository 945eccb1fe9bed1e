"""A fork server for sweeps: pay ``import torch`` (and pandas, ml2bench) once, not once per run.

Why: a sweep is many short runs, each a fresh ``ml2bench run`` process, and importing the stack
costs more than many runs train (measurements: docs/performance.md). Snakemake
runs each job's shell command as its own process and ignores ``group:`` for local execution, so
the jobs stay as they are — one job = one run = one set of outputs, resumable as before — and
only the *work* of ``ml2bench run`` moves: the command becomes a thin client
(:mod:`ml2bench.sweep.forkclient`, which ``ml2bench.cli`` imports; this module imports the CLI it
serves, so it sits above the CLI in the layers of docs/ARCHITECTURE.md) that hands its
arguments, working directory, environment, process limits and stdout/stderr to this server,
which ``fork()``\\ s a child with everything already imported; the child becomes the client's
process (environment with ``TZ`` re-read and torch's threads from ``OMP_NUM_THREADS``, umask,
rlimits, CPU affinity, niceness) and runs ``ml2bench.cli.main(argv)`` exactly as a fresh process
would; its exit status becomes the client's.

* The server never runs a tensor operation before forking (no thread pools exist yet, so forking
  is safe) and never holds global RNG state beyond torch's fixed default: a child's run is
  bit-identical to a fresh process's (tested).
* Address: on Linux a name in the abstract socket namespace (``@ml2bench-…``: no file, no length
  limit from ``TMPDIR``, nothing left behind), accepting only clients of the same user
  (``SO_PEERCRED``); elsewhere a socket in a fresh owner-only folder under ``/tmp``, removed by
  :meth:`Server.close`.
* One event loop, no threads: a client has :data:`REQUEST_TIMEOUT_S` to send its request, and a
  client that stalls, sends garbage, oversized or deeply nested JSON is dropped without
  affecting the others; every error is caught per request.
* A client that is killed (Snakemake cancels the job) closes its socket; the child notices and exits.
* The server exits when its parent (the Snakemake process) is gone, or on SIGTERM.
* The workflow starts it in ``onstart`` for local execution (``workflow/rules/train.smk``) and sets
  ``ML2BENCH_SERVER``; ``fork_server: false`` in a config, a cluster executor, or a server that
  cannot start keeps plain processes. A client whose server cannot be reached (or cannot fork)
  runs in its own process and says so on stderr (same results, only slower).

    python -m ml2bench.sweep.forkserver --socket @ml2bench-test     # serve until killed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml2bench.sweep.forkclient import (  # noqa: F401  (ENV, MAX_REQUEST, delegate: also this module's names)
    ENV,
    HEADER,
    MAX_REQUEST,
    REQUEST_TIMEOUT_S,
    delegate,
    process_context,
    send_msg,
    sockaddr,
)

_LINUX = sys.platform.startswith("linux")


# --- the caller's process context, applied in the child -----------------------------------------
def _torch_threads(env: dict[str, str]) -> int | None:
    """The intra-op threads a fresh process would start with under ``env``: OMP_NUM_THREADS (the
    first number of a list), else None (torch's own default)."""
    value = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def apply_context(env: dict[str, str], ctx: dict[str, Any], default_threads: int | None = None) -> list[str]:
    """Make this (forked) process the client's: its environment (``TZ`` re-read, torch's threads
    from ``OMP_NUM_THREADS``), umask, rlimits, affinity and niceness. Returns notes on what could
    not be applied (a limit above this process's hard limit cannot be raised)."""
    import resource

    notes = []
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    threads = _torch_threads(env) or default_threads
    if threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    os.umask(int(ctx.get("umask", 0o022)))
    for name, (soft, hard) in (ctx.get("rlimits") or {}).items():
        res = getattr(resource, name, None)
        if res is None or resource.getrlimit(res) == (soft, hard):
            continue
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError) as err:
            notes.append(f"{name} {soft}/{hard} not applied ({err})")
    if ctx.get("affinity") and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, ctx["affinity"])
    nice = ctx.get("nice")
    if nice is not None and nice > os.getpriority(os.PRIO_PROCESS, 0):  # lowering priority needs no privilege
        os.setpriority(os.PRIO_PROCESS, 0, int(nice))
    return notes


# --- server -----------------------------------------------------------------------------
def preload() -> int:
    """Import everything an ``ml2bench run`` imports, so that a forked child imports nothing;
    returns torch's default intra-op threads of a process without OMP_NUM_THREADS."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import torch
    import torch._dynamo  # noqa: F401  (torch.optim's constructors import it on first use)
    import tqdm.auto  # noqa: F401
    import yaml  # noqa: F401

    from ml2bench import cli  # noqa: F401
    from ml2bench.core import config, records, runner  # noqa: F401
    from ml2bench.core.cost import provenance  # noqa: F401

    provenance.warm()
    if _torch_threads(dict(os.environ)) is None:
        return torch.get_num_threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _child(conn: socket.socket, request: dict, fds: list[int], default_threads: int | None) -> None:
    """In the forked child: become the client's process, run, report the status."""
    status = 1
    try:
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        conn.setblocking(True)
        os.chdir(request["cwd"])
        env = dict(request["env"])
        env.pop(ENV, None)  # the child runs the command itself
        for note in apply_context(env, request.get("context") or {}, default_threads):
            print(f"note: ml2bench fork server: {note}", file=sys.stderr)

        def watch() -> None:  # the client went away (job cancelled): stop working
            try:
                if not conn.recv(1):
                    os._exit(1)
            except OSError:
                os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
        from ml2bench import cli

        status = int(cli.main(list(request["argv"])) or 0)
    except SystemExit as exc:  # argparse errors, --help
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            send_msg(conn, {"status": status})
        finally:
            os._exit(status)


def _valid(request: Any, fds: list[int]) -> str:
    """Why ``request`` cannot be run ('' when it can)."""
    if len(fds) != 2:
        return f"{len(fds)} file descriptors, expected stdout and stderr"
    if not isinstance(request, dict):
        return "not a JSON object"
    if not (isinstance(request.get("argv"), list) and all(isinstance(a, str) for a in request["argv"])):
        return "argv is not a list of strings"
    if not isinstance(request.get("cwd"), str):
        return "cwd is not a string"
    env = request.get("env")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        return "env is not a mapping of strings"
    if not isinstance(request.get("context", {}), dict):
        return "context is not an object"
    return ""


@dataclass
class _Pending:
    """A connection whose request has not fully arrived."""

    conn: socket.socket
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        self.conn.close()

    def read(self) -> dict | None:
        """Read what arrived; the request once complete (raises for a broken one)."""
        data, fds, _, _ = socket.recv_fds(self.conn, 65536, 4)
        self.fds.extend(fds)
        if not data:
            raise ConnectionError("closed before the request was complete")
        self.buf += data
        if len(self.buf) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self.buf)
        if size > MAX_REQUEST:
            raise ValueError(f"request of {size} bytes, above {MAX_REQUEST}")
        if len(self.buf) < HEADER.size + size:
            return None
        return json.loads(bytes(self.buf[HEADER.size : HEADER.size + size]))


def _same_user(conn: socket.socket) -> bool:
    """On Linux, the peer runs as this user (abstract sockets have no file permissions)."""
    if not _LINUX:
        return True  # the socket's folder is owner-only
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid == os.getuid()


def _log(message: str) -> None:
    print(f"ml2bench fork server: {message}", file=sys.stderr, flush=True)


def serve(address: str, parent: int | None = None, request_timeout: float = REQUEST_TIMEOUT_S) -> None:
    """Accept requests on ``address`` until SIGTERM or until ``parent`` is gone; prints one
    ``ready`` line on stdout once it serves (bind first: an address that cannot be used fails
    before the seconds of imports)."""
    path = None if address.startswith("@") else address
    if path is not None and os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sockaddr(address))
    server.listen(64)
    server.setblocking(False)
    default_threads = preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    pending: dict[socket.socket, _Pending] = {}

    def drop(p: _Pending, why: str = "") -> None:
        sel.unregister(p.conn)
        pending.pop(p.conn, None)
        p.close()
        if why:
            _log(f"dropped a request: {why}")

    print(f"ml2bench fork server ready on {address}", flush=True)
    with open(os.devnull, "w") as devnull:  # nobody reads stdout after the ready line
        os.dup2(devnull.fileno(), 1)
    try:
        while True:
            if parent is not None and os.getppid() != parent:
                return  # the workflow that started us is gone
            for key, _ in sel.select(timeout=0.5):
                if key.fileobj is server:
                    _accept(server, sel, pending, request_timeout)
                    continue
                p = pending[key.fileobj]
                try:
                    request = p.read()
                    if request is None:
                        continue
                    why = _valid(request, p.fds)
                    if why:
                        drop(p, why)
                        continue
                    sel.unregister(p.conn)
                    pending.pop(p.conn)
                    _start_child(p, request, server, sel, pending, default_threads)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    drop(p)  # a probe or a client that gave up: nothing to run
                except Exception as err:  # garbage, RecursionError from nested JSON, anything: this request only
                    drop(p, f"{type(err).__name__}: {' '.join(str(err).split())[:200]}")
            now = time.monotonic()
            for p in [p for p in pending.values() if p.deadline < now]:
                drop(p, f"no complete request within {request_timeout:g} s")
    finally:
        for p in list(pending.values()):
            p.close()
        sel.close()
        server.close()
        if path is not None and os.path.exists(path):
            os.unlink(path)


def _accept(
    server: socket.socket, sel: selectors.BaseSelector, pending: dict[socket.socket, _Pending], timeout: float
) -> None:
    try:
        conn, _ = server.accept()
    except OSError:  # BlockingIOError (another wake-up took it), EMFILE: the client retries or runs itself
        return
    try:
        conn.setblocking(False)
        if not _same_user(conn):
            conn.close()
            _log("refused a connection from another user")
            return
        pending[conn] = _Pending(conn, time.monotonic() + timeout)
        sel.register(conn, selectors.EVENT_READ)
    except Exception as err:
        pending.pop(conn, None)
        conn.close()
        _log(f"dropped a connection: {err}")


def _start_child(p: _Pending, request: dict, server: socket.socket, sel, pending, default_threads) -> None:
    """Fork the run's process; the parent keeps nothing of the request."""
    try:
        pid = os.fork()
    except OSError as err:  # out of processes or memory: the client runs the command itself
        with contextlib.suppress(OSError):
            p.conn.setblocking(True)
            send_msg(p.conn, {"refused": f"cannot fork ({err.strerror}); running in the job's own process"})
        p.close()
        return
    if pid == 0:
        sel.close()
        server.close()
        for other in pending.values():
            other.close()
        _child(p.conn, request, p.fds, default_threads)
    p.close()


def start(address: str, timeout: float = 120.0, request_timeout: float = REQUEST_TIMEOUT_S):
    """Start a server process (child of this one) on ``address`` and wait until it serves;
    raises RuntimeError when it does not."""
    import subprocess

    cmd = [sys.executable, "-m", "ml2bench.sweep.forkserver", "--socket", address, "--parent", str(os.getpid())]
    proc = subprocess.Popen([*cmd, "--request-timeout", str(request_timeout)], stdout=subprocess.PIPE)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if b"ready" in line:
        return proc
    if proc.poll() is None:
        proc.terminate()
    status = proc.wait()
    raise RuntimeError(
        f"ml2bench fork server did not start within {timeout:.0f} s"
        if not ready
        else f"ml2bench fork server exited with status {status}"
    )


@dataclass
class Server:
    """A running server (:func:`launch`): its address for ``ML2BENCH_SERVER``, its process, and
    the folder that holds its socket where there is one."""

    address: str
    proc: Any
    folder: Path | None = None

    def close(self) -> None:
        """Stop the server and remove its folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _new_address() -> tuple[str, Path | None]:
    """A fresh address that always fits, and the folder to remove afterwards (if any)."""
    if _LINUX:
        return f"@ml2bench-{os.getuid()}-{os.getpid()}-{secrets.token_hex(8)}", None
    folder = Path(tempfile.mkdtemp(prefix="ml2b-", dir="/tmp"))  # sun_path holds ~104 bytes: not $TMPDIR
    return str(folder / "s"), folder


def launch(timeout: float = 120.0, request_timeout: float = REQUEST_TIMEOUT_S) -> Server:
    """Start a server on a fresh address (see the module docstring); RuntimeError when it fails."""
    address, folder = _new_address()
    try:
        return Server(address, start(address, timeout, request_timeout), folder)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def launch_for_workflow() -> Server | None:
    """:func:`launch`, or None with one line saying the jobs run as plain processes (a sandbox
    without sockets, a broken install): the server only saves start-up time."""
    try:
        return launch()
    except (OSError, RuntimeError) as err:
        print(f"ml2bench fork server could not start ({err}); jobs run as plain processes", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml2bench.sweep.forkserver", description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="socket path, or @name for Linux's abstract namespace")
    ap.add_argument("--parent", type=int, help="exit when this process is no longer our parent")
    ap.add_argument("--request-timeout", type=float, default=REQUEST_TIMEOUT_S, help="seconds a client has to send")
    args = ap.parse_args(argv)
    serve(args.socket, args.parent, args.request_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
