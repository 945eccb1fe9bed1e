"""A fork server for sweeps: pay ``import torch`` (and pandas, ml2bench) once, not once per run.

Why: a sweep is many short runs, each a fresh ``ml2bench run`` process, and importing the stack
costs more than many runs train (measurements: docs/performance.md). Snakemake
runs each job's shell command as its own process and ignores ``group:`` for local execution, so
the jobs stay as they are — one job = one run = one set of outputs, resumable as before — and
only the *work* of ``ml2bench run`` moves: the command becomes a thin client that hands its
arguments, working directory, environment and stdout/stderr to this server, which ``fork()``\\ s a
child with everything already imported; the child runs ``ml2bench.cli.main(argv)`` exactly as a
fresh process would and its exit status becomes the client's.

* The server never runs a tensor operation before forking (no thread pools exist yet, so forking
  is safe) and never holds global RNG state beyond torch's fixed default: a child's run is
  bit-identical to a fresh process's (tested).
* A client that is killed (Snakemake cancels the job) closes its socket; the child notices and exits.
* The server exits when its parent (the Snakemake process) is gone, or on SIGTERM.
* The workflow starts it in ``onstart`` for local execution (``workflow/rules/train.smk``) and sets
  ``ML2BENCH_SERVER``; ``run: {fork_server: false}`` in a config, or a cluster executor, keeps
  plain processes. A client whose server cannot be reached runs in its own process and says so
  on stderr (same results, only slower).

    python -m ml2bench.sweep.forkserver --socket /tmp/ml2bench.sock     # serve until killed
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

ENV = "ML2BENCH_SERVER"
_HEADER = struct.Struct("!I")


def _send_msg(sock: socket.socket, payload: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode()
    if fds:
        socket.send_fds(sock, [_HEADER.pack(len(data)) + data], fds)
    else:
        sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int, fds: list[int] | None = None) -> bytes:
    buf = b""
    while len(buf) < n:
        if fds is not None and not buf:
            chunk, got, _, _ = socket.recv_fds(sock, n - len(buf), 4)
            fds.extend(got)
        else:
            chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket, fds: list[int] | None = None) -> dict:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds))
    return json.loads(_recv_exact(sock, size))


# --- client -----------------------------------------------------------------------------
def delegate(argv: list[str], path: str) -> int | None:
    """Run ``ml2bench argv`` in the server at ``path``; its exit status, or None when no server
    answers there (the caller then runs the command itself)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    with sock:
        sys.stdout.flush()
        sys.stderr.flush()
        _send_msg(
            sock,
            {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)},
            [sys.stdout.fileno(), sys.stderr.fileno()],
        )
        try:
            return int(_recv_msg(sock)["status"])
        except (ConnectionError, ValueError, KeyError):
            print("error: ml2bench fork server: the run's process ended without a status", file=sys.stderr)
            return 1


# --- server -----------------------------------------------------------------------------
def preload() -> None:
    """Everything an ``ml2bench run`` imports, so that a forked child imports nothing."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (torch.optim's constructors import it on first use)
    import tqdm.auto  # noqa: F401
    import yaml  # noqa: F401

    from ml2bench import cli  # noqa: F401
    from ml2bench.core import config, records, runner  # noqa: F401
    from ml2bench.core.cost import provenance  # noqa: F401

    provenance.warm()


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the client's process, run, report the status."""
    status = 1
    try:
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV, None)  # the child runs the command itself

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
            _send_msg(conn, {"status": status})
        finally:
            os._exit(status)


def serve(path: str, parent: int | None = None) -> None:
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    server.settimeout(1.0)
    print(f"ml2bench fork server ready on {path}", flush=True)
    try:
        while True:
            if parent is not None and os.getppid() != parent:
                return  # the workflow that started us is gone
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            fds: list[int] = []
            try:
                request = _recv_msg(conn, fds)
            except (ConnectionError, ValueError):
                request = None
            if request is None or len(fds) != 2:  # a probe, a broken client: nothing to run
                for fd in fds:  # descriptors that arrived before the failure are ours to close
                    os.close(fd)
                conn.close()
                continue
            if os.fork() == 0:
                server.close()
                _child(conn, request, fds)
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        server.close()
        if os.path.exists(path):
            os.unlink(path)


def start(path: str, timeout: float = 120.0):
    """Start a server process (child of this one) and wait until it accepts connections."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "ml2bench.sweep.forkserver", "--socket", path, "--parent", str(os.getpid())],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ml2bench fork server exited with status {proc.returncode}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            probe.close()  # an empty connection: the server drops it
            return proc
        except OSError:
            probe.close()
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"ml2bench fork server did not start within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml2bench.sweep.forkserver", description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="path of the UNIX socket to listen on")
    ap.add_argument("--parent", type=int, help="exit when this process is no longer our parent")
    args = ap.parse_args(argv)
    serve(args.socket, args.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
