"""The fork server: a run handed to it equals a run in a fresh process; statuses pass through."""

from __future__ import annotations

import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from ml2bench.sweep import forkserver

REPO = Path(__file__).resolve().parents[1]
RUN = [
    "run",
    "--problem",
    "pinn_burgers",
    "--method",
    "adam",
    "--seed",
    "3",
    "--set",
    "problem.width=8",
    "--set",
    "problem.depth=2",
    "--set",
    "problem.n_interior=64",
    "--set",
    "problem.n_test_x=16",
    "--set",
    "problem.n_test_t=8",
    "--set",
    "budget.iterations=5",
    "--set",
    "eval_interval=0.5",
    "--set",
    "threads=1",
    "--quiet",
]


@pytest.fixture(scope="module")
def server():
    srv = forkserver.launch(request_timeout=2.0)
    yield srv.address
    srv.close()


def _cli(args, cwd, server_path=None, extra_env=None, preexec_fn=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop(forkserver.ENV, None)
    env.update(extra_env or {})
    if server_path:
        env[forkserver.ENV] = server_path
    return subprocess.run(
        [sys.executable, "-m", "ml2bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=preexec_fn,
    )


def test_run_through_server_equals_fresh_process(server, tmp_path):
    via = _cli([*RUN, "--out", "via"], tmp_path, server)
    fresh = _cli([*RUN, "--out", "fresh"], tmp_path)
    assert via.returncode == 0 and fresh.returncode == 0, via.stderr + fresh.stderr
    assert "status=budget_exhausted" in via.stdout  # the child's stdout reached the client's
    a, b = (pd.read_parquet(tmp_path / d / "history.parquet") for d in ("via", "fresh"))
    same = [c for c in a.columns if "time" not in c and "energy" not in c]
    pd.testing.assert_frame_equal(a[same], b[same])
    sa, sb = (pd.read_parquet(tmp_path / d / "summary.parquet") for d in ("via", "fresh"))
    assert sa["config_hash"].iloc[0] == sb["config_hash"].iloc[0]


def test_bad_input_exit_status_and_message_pass_through(server, tmp_path):
    res = _cli(["run", "--problem", "nope", "--method", "adam", "--out", "x"], tmp_path, server)
    assert res.returncode == 2
    assert "unknown problem 'nope'" in res.stderr
    assert not (tmp_path / "x").exists()


def test_unreachable_server_runs_in_process_and_says_so(tmp_path):
    res = _cli([*RUN, "--out", "local"], tmp_path, str(tmp_path / "no-such.sock"))
    assert res.returncode == 0
    assert "no ml2bench fork server" in res.stderr
    assert (tmp_path / "local" / "summary.parquet").is_file()


# --- hostile clients, the caller's process context, addresses (issue 24) -------------------
def _connect(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + address[1:] if address.startswith("@") else address)
    return sock


def _alive(address: str, capfd) -> bool:
    """A real request (``ml2bench list methods`` in a forked child) is answered."""
    status = forkserver.delegate(["list", "methods"], address)
    return status == 0 and "rmtr" in capfd.readouterr().out


def test_a_stalled_client_blocks_nobody_and_is_dropped(server, capfd):
    stalled = _connect(server)
    stalled.sendall(b"\x00\x00")  # half a header, then nothing
    assert _alive(server, capfd)  # was: every other client waited forever
    stalled.settimeout(60)
    assert stalled.recv(1) == b""  # dropped after the request timeout
    stalled.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 60000 + b"]" * 60000,  # was: an uncaught RecursionError killed the server
        b"\xff\xfe not json",
        b'{"argv": "run", "cwd": 1, "env": []}',
        b"{}",
    ],
    ids=["nested", "garbage", "wrong-types", "empty"],
)
def test_bad_requests_are_dropped_and_the_server_lives_on(server, capfd, payload):
    bad = _connect(server)
    socket.send_fds(bad, [struct.pack("!I", len(payload)) + payload], [1, 2])
    bad.settimeout(60)
    assert bad.recv(1) == b""  # dropped, no child started
    bad.close()
    assert _alive(server, capfd)


def test_an_oversized_request_is_refused_unread(server, capfd):
    bad = _connect(server)
    bad.sendall(struct.pack("!I", forkserver.MAX_REQUEST + 1))
    bad.settimeout(60)
    assert bad.recv(1) == b""
    bad.close()
    assert _alive(server, capfd)


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="needs root to be someone else")
def test_another_user_is_refused(server, capfd):
    """The abstract namespace has no file permissions: the server checks the peer's uid."""
    pid = os.fork()
    if pid == 0:  # as nobody: a well-formed request, answered only by closing the connection
        code = 2
        try:
            os.setuid(65534)
            sock = _connect(server)
            sock.settimeout(60)
            payload = json.dumps({"argv": ["list"], "cwd": "/", "env": {}}).encode()
            try:
                socket.send_fds(sock, [struct.pack("!I", len(payload)) + payload], [1, 2])
                code = 0 if sock.recv(1) == b"" else 1
            except (BrokenPipeError, ConnectionResetError):  # closed before or while we sent
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _alive(server, capfd)


NO_THREADS = RUN[: RUN.index("threads=1") - 1] + RUN[RUN.index("threads=1") + 1 :]  # torch's default threads


def test_the_callers_environment_and_umask_reach_the_run(server, tmp_path):
    """Was: the server's TZ, torch threads and umask, not the caller's."""
    env = {"TZ": "XYZ-5", "OMP_NUM_THREADS": "7"}
    res = _cli([*NO_THREADS, "--out", "via"], tmp_path, server, env, preexec_fn=lambda: os.umask(0o027))
    assert res.returncode == 0, res.stderr
    s = pd.read_parquet(tmp_path / "via" / "summary.parquet").iloc[0]
    assert s["torch_threads"] == 7
    assert s["started_at"].endswith("+0500")
    assert (tmp_path / "via" / "summary.parquet").stat().st_mode & 0o777 == 0o640


def test_the_callers_rlimits_reach_the_run(server, tmp_path):
    """A run that fails under ``ulimit -f`` in a plain process fails the same way through the server."""

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    plain = _cli([*RUN, "--out", "plain"], tmp_path, None, preexec_fn=small_files)
    via = _cli([*RUN, "--out", "via"], tmp_path, server, preexec_fn=small_files)
    assert plain.returncode == 1 and "File too large" in plain.stderr, plain.stderr
    assert via.returncode == 1 and "File too large" in via.stderr, via.stderr  # was: 0, records written


def test_launch_needs_no_folder_and_ignores_tmpdir(monkeypatch):
    long_tmp = Path(tempfile.mkdtemp()) / ("x" * 100) / ("y" * 100)
    long_tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))  # was: "AF_UNIX path too long" in onstart
    srv = forkserver.launch()
    try:
        assert srv.proc.poll() is None
        if sys.platform.startswith("linux"):
            assert srv.address.startswith("@") and srv.folder is None
    finally:
        srv.close()
    assert not list(long_tmp.iterdir())


def test_launch_without_the_abstract_namespace_removes_its_folder(monkeypatch):
    monkeypatch.setattr(forkserver, "_LINUX", False)
    srv = forkserver.launch()
    try:
        assert len(srv.address) < 100 and srv.folder is not None and srv.folder.is_dir()
    finally:
        srv.close()
    assert not srv.folder.exists()  # was: an empty /tmp/ml2bench-XXXX/ per sweep


def test_a_server_that_cannot_start_means_plain_processes(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(forkserver, "_new_address", lambda: (str(tmp_path / "no" / "such" / "dir" / "s"), None))
    assert forkserver.launch_for_workflow() is None  # the server process exits: it cannot bind there
    err = capsys.readouterr().err
    assert "ml2bench fork server could not start (" in err and "jobs run as plain processes" in err, err
