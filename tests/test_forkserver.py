"""The fork server: a run handed to it equals a run in a fresh process; statuses pass through."""

from __future__ import annotations

import os
import subprocess
import sys
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
def server(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fs") / "s.sock")
    proc = forkserver.start(path)
    yield path
    proc.terminate()
    proc.wait(timeout=30)


def _cli(args, cwd, server_path=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop(forkserver.ENV, None)
    if server_path:
        env[forkserver.ENV] = server_path
    return subprocess.run(
        [sys.executable, "-m", "ml2bench", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
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
