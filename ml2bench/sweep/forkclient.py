"""The client side of the sweep fork server (:mod:`ml2bench.sweep.forkserver`) and its wire format.

``ml2bench run`` with ``ML2BENCH_SERVER`` set hands its arguments, working directory, environment,
process context and stdout/stderr descriptors to the server at that address (:func:`delegate`) and
exits with the status the server's child reports. Kept apart from the server so that the CLI
imports no server code: the server imports the CLI it runs (one direction, no import cycle).

Wire format: a 4-byte big-endian length, then that many bytes of JSON; the request carries the
two descriptors as SCM_RIGHTS ancillary data.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
from typing import Any

ENV = "ML2BENCH_SERVER"
REQUEST_TIMEOUT_S = 10.0  # a client sends its whole request within this (a local client needs microseconds)
MAX_REQUEST = 16 * 2**20  # bytes of one request (argv, cwd and the environment)
HEADER = struct.Struct("!I")


def sockaddr(address: str) -> str:
    """``@name`` is ``name`` in Linux's abstract namespace (a leading NUL byte); else a path."""
    return "\0" + address[1:] if address.startswith("@") else address


def send_msg(sock: socket.socket, payload: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode()
    if fds:
        socket.send_fds(sock, [HEADER.pack(len(data)) + data], fds)
    else:
        sock.sendall(HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return buf


def recv_msg(sock: socket.socket) -> dict:
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    return json.loads(_recv_exact(sock, size))


# --- the caller's process context -----------------------------------------------------------
def _rlimits() -> dict[str, list[int]]:
    import resource

    out = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            with contextlib.suppress(ValueError, OSError):  # a limit this kernel does not know
                out[name] = list(resource.getrlimit(getattr(resource, name)))
    return out


def process_context() -> dict[str, Any]:
    """What a process inherits beyond its environment: umask, rlimits, CPU affinity, niceness."""
    mask = os.umask(0)
    os.umask(mask)
    ctx: dict[str, Any] = {"umask": mask, "rlimits": _rlimits(), "nice": os.getpriority(os.PRIO_PROCESS, 0)}
    if hasattr(os, "sched_getaffinity"):
        ctx["affinity"] = sorted(os.sched_getaffinity(0))
    return ctx


def delegate(argv: list[str], address: str) -> int | None:
    """Run ``ml2bench argv`` in the server at ``address``; its exit status, or None when no server
    answers there or it cannot run the command (the caller then runs the command itself)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(REQUEST_TIMEOUT_S)
    try:
        sock.connect(sockaddr(address))
    except (OSError, ValueError):
        sock.close()
        return None
    with sock:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            send_msg(
                sock,
                {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "context": process_context()},
                [sys.stdout.fileno(), sys.stderr.fileno()],
            )
        except OSError:
            return None
        sock.settimeout(None)  # the run takes as long as it takes
        try:
            reply = recv_msg(sock)
        except (ConnectionError, ValueError, struct.error):
            print("error: ml2bench fork server: the run's process ended without a status", file=sys.stderr)
            return 1
        if "status" not in reply:  # the server could not start the run: nothing has happened yet
            print(f"note: ml2bench fork server: {reply.get('refused', 'refused')}", file=sys.stderr)
            return None
        return int(reply["status"])
