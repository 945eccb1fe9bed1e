"""The sweep on a real SLURM: a single-node cluster started for this module
(workflow/profiles/slurm/local-cluster.sh), driven by ``snakemake --executor slurm`` with the
project's own profile (workflow/profiles/slurm).

Checked: a small sweep cut from workflow/config/ci.yaml, run through the profile's wrapper
(workflow/profiles/slurm/run_sweep.py), gives through SLURM the same tables as run locally (all columns
but wall times, energy and provenance); a sweep whose run fails on purpose exits non-zero, reports
the SLURM job as failed and leaves the run's log and the per-job SLURM log where the profile says;
a sweep whose status queries fail (squeue shimmed to exit 1, as with an unreachable controller)
is stopped by the wrapper's watchdog, which exits 3 with what to do, instead of hanging. Skipped
with the reason when SLURM, munge or the executor plugin is not installed or this process is not
root (the daemons are started by hand); `.ci/run` installs them.

The local cluster has no accounting (no slurmdbd): job states come from squeue, as the profile
says. Without that setting the plugin's default (sacct) makes such a sweep hang forever.
ML2BENCH_SLURM_ACCOUNTING=1 runs the same tests on a cluster with accounting (MariaDB + slurmdbd,
`local-cluster.sh start --accounting`; packages slurmdbd mariadb-server).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CLUSTER = PROFILE / "local-cluster.sh"
SWEEP = PROFILE / "run_sweep.py"
CI_CONFIG = REPO / "workflow" / "config" / "ci.yaml"
LOCK = Path("/tmp/ml2bench-slurm.lock")  # one local cluster per machine: ports 6817/6818, /etc/slurm
TABLES = ("summary", "history", "comparison")
# A hang (the failure mode this profile exists to avoid) must fail the test, not block CI. The
# slowest SLURM sweep measured here took 152 s (2 cores at load average 12): 600 s leaves ~4x.
SWEEP_TIMEOUT_S = 600


def _skip_reason() -> str | None:
    missing = [t for t in ("sinfo", "sbatch", "squeue", "slurmctld", "slurmd", "munged") if shutil.which(t) is None]
    if missing:
        return f"SLURM not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')"
    if os.geteuid() != 0:
        return "the local SLURM cluster is started by hand and needs root"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


ACCOUNTING = os.environ.get("ML2BENCH_SLURM_ACCOUNTING", "") == "1"


def _cluster(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def local_slurm():
    """Start the single-node cluster for this module and always stop it again.

    A file lock serialises test sessions on one machine (they would share ports and the config);
    a session that waits too long is skipped, not failed."""
    with LOCK.open("w") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.skip("another test session holds the local SLURM cluster for > 600 s")
                time.sleep(2)
        started = _cluster("start", *(["--accounting"] if ACCOUNTING else []))
        if started.returncode == 3:
            pytest.skip(f"packages missing: {started.stderr.strip()}")
        if started.returncode == 4:
            pytest.skip(f"a SLURM not started by this test is in the way: {started.stderr.strip()}")
        try:
            assert started.returncode == 0, started.stderr
            yield started.stderr
        finally:
            stopped = _cluster("stop")
            assert stopped.returncode == 0, stopped.stderr


def _start_snakemake(
    workdir: Path, *args: str, wrapper: tuple[str, ...] | None = None, path_prefix: Path | None = None
) -> subprocess.Popen:
    """Snakemake itself, or (wrapper=its options) through the profile's run_sweep.py, the recommended way."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    head = [sys.executable, "-m", "snakemake"] if wrapper is None else [sys.executable, str(SWEEP), *wrapper]
    cmd = [*head, "-s", str(SNAKEFILE), "-d", str(workdir), *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir, start_new_session=True
    )


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """Wait for Snakemake; on timeout kill its whole process group (a hung Snakemake ignores
    SIGTERM; its SLURM jobs are cancelled by the fixture's 'stop') and fail."""
    try:
        out, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"snakemake did not finish in {SWEEP_TIMEOUT_S} s (hung?):\n{out[-4000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _node_memory_mb() -> int:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%m"], capture_output=True, text=True, timeout=30).stdout
    return int(out.split()[0])


def _slurm_args(config: Path) -> list[str]:
    """The profile as a user runs it; only the status-check interval is 2 s instead of 20 s so that
    the test does not wait on it. The profile's memory requests (up to
    16 GB, sized for paper.yaml) are lowered to 1 GB only on a node with less memory than that:
    SLURM rejects a request no node can satisfy."""
    args = [
        "--executor",
        "slurm",
        "--workflow-profile",
        str(PROFILE),
        "--configfile",
        str(config),
        "--slurm-init-seconds-before-status-checks",
        "2",
    ]
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    requests = {rule: res["mem_mb"] for rule, res in profile["set-resources"].items() if "mem_mb" in res}
    if max(requests.values()) > _node_memory_mb():
        args += ["--set-resources", *(f"{rule}:mem_mb=1000" for rule in requests)]
    return args


def _small_ci_config(tmp: Path) -> Path:
    """ci.yaml cut to one seed and one method per problem (mlp/adam, resnet/rmtr — a multilevel
    method included): two train jobs, one wave on the 2-CPU node."""
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    cfg["name"] = "ci_slurm"
    cfg["seeds"] = [0]
    keep = {"mlp_small": ["adam"], "resnet_tiny": ["rmtr"]}
    cfg["sweeps"] = [dict(s, methods=keep[s["id"]]) for s in cfg["sweeps"] if s["id"] in keep]
    cfg["methods"] = {m: spec for m, spec in cfg["methods"].items() if m in {"adam", "rmtr"}}
    path = tmp / "ci_slurm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without what legitimately differs between two executions of the same runs:
    wall/CPU times, energy, the benchmark file's numbers, and provenance (when, where, with what)."""
    import torch

    from ml2bench.core.cost import provenance

    prov = set(provenance.collect(torch.device("cpu"))) | {"started_at"}
    drop = [c for c in table.columns if c in prov or "time" in c or "energy" in c or c.startswith("bench_")]
    keys = [c for c in ("problem_id", "method", "point", "seed", "iteration") if c in table.columns]
    return table.drop(columns=drop).sort_values(keys).reset_index(drop=True)


def test_sweep_through_slurm_equals_local_run(local_slurm, tmp_path):
    config = _small_ci_config(tmp_path)
    target = "results/tables/comparison.md"
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    on_slurm.mkdir(), local.mkdir()

    # the local reference runs while the SLURM sweep mostly waits on its status checks
    t0 = time.monotonic()
    # through the profile's wrapper with its default stall limit (600 s): a healthy sweep passes. squeue
    # every 2 s instead of 30 s only to measure the longest stall finely (printed; README)
    slurm_proc = _start_snakemake(on_slurm, target, *_slurm_args(config), wrapper=("--poll-s", "2"))
    res_local = _finish(_start_snakemake(local, target, "--cores", "1", "--configfile", str(config)))
    res = _finish(slurm_proc)
    slurm_s = time.monotonic() - t0
    assert res_local.returncode == 0, res_local.stdout[-4000:]
    assert res.returncode == 0, res.stdout[-6000:]
    # every rule ran as a SLURM job, and the job states came from squeue (no accounting here)
    # 2 train jobs + the group "tables" (aggregate, comparison); fewer if train jobs are grouped too
    submitted = res.stdout.count("has been submitted with SLURM jobid")
    assert 2 <= submitted <= 3, res.stdout[-4000:]
    assert not [rule for rule in ("train", "aggregate", "comparison") if f"localrule {rule}:" in res.stdout]
    assert "Falling back to 'sacct'" not in res.stdout
    assert "slurm-sweep: snakemake exited with 0; longest stall seen" in res.stdout, res.stdout[-2000:]
    slurm_logs = sorted((on_slurm / "results" / "logs" / "slurm").rglob("*.log"))
    assert len(slurm_logs) == submitted  # per-job logs kept where the profile puts them

    for name in TABLES:
        a = pd.read_parquet(on_slurm / "results" / "tables" / f"{name}.parquet")
        b = pd.read_parquet(local / "results" / "tables" / f"{name}.parquet")
        assert len(a) > 0 and list(a.columns) == list(b.columns), name
        pd.testing.assert_frame_equal(_comparable(a), _comparable(b), check_exact=True, obj=name)
    print(f"SLURM sweep {slurm_s:.0f} s;", res.stdout.strip().splitlines()[-1])


def _one_run_config(tmp_path: Path, name: str, python_code: str) -> Path:
    """The small CI sweep cut to its first entry with Adam alone (one run), whose job runs
    ``python -c python_code`` instead of ml2bench (ml2bench_cmd): a job that fails or hangs on purpose."""
    cfg = yaml.safe_load(_small_ci_config(tmp_path).read_text())
    cfg["sweeps"] = [dict(cfg["sweeps"][0], methods=["adam"])]
    cfg["methods"] = {"adam": cfg["methods"]["adam"]}
    cfg["ml2bench_cmd"] = f"{sys.executable} -c '{python_code}'"
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_failing_run_is_reported_failed(local_slurm, tmp_path):
    """A run whose command exits 1 (ml2bench_cmd replaced by a failing one): the SLURM job is
    reported failed, Snakemake exits non-zero, the run
    leaves no outputs, and its log and the per-job SLURM log stay for the user."""
    config = _one_run_config(tmp_path, "fail", 'raise SystemExit("ml2bench test: failing on purpose")')
    workdir = tmp_path / "fail"
    workdir.mkdir()

    # --retries 0: the profile resubmits a failed job once; here one failure is enough (saves a minute)
    res = _finish(_start_snakemake(workdir, "results/tables/summary.parquet", *_slurm_args(config), "--retries", "0"))
    assert res.returncode != 0
    assert "Error in rule train" in res.stdout
    assert res.stdout.count("failed, SLURM status is: 'FAILED'") == 1, res.stdout[-4000:]
    run_log = next((workdir / "results" / "logs" / "runs").rglob("seed0.log"))
    assert "failing on purpose" in run_log.read_text()
    assert list((workdir / "results" / "logs" / "slurm" / "rule_train").rglob("*.log"))
    assert not list((workdir / "results" / "runs").rglob("summary.parquet"))
    assert not (workdir / "results" / "tables").exists()


# (job sleeps, squeue shim, what the watchdog reports): squeue fails for everyone, as when slurmctld is
# unreachable (the job sleeps 300 s: still running when the watchdog acts, so it must be cancelled); or
# only the plugin's query fails (a short outage that the watchdog's own squeue did not see: the job,
# 10 s, is then seen running and ending, and the stall counts from there)
STATUS_FAILURES = {
    "squeue_down": (
        300,
        "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1",
        "squeue fails",
    ),
    "plugin_query_fails": (
        10,
        'case "$*" in *--states=all*) exit 1;; esac\nexec {squeue} "$@"',
        "no job of the run is pending or running",
    ),
}


@pytest.mark.parametrize("case", list(STATUS_FAILURES))
def test_broken_status_query_fails_the_sweep(local_slurm, tmp_path, case):
    """The plugin's status checks fail (a PATH shim for squeue): it drops the job and Snakemake alone
    would wait forever (--verbose shows it: "No active jobs; skipping status query."). Through
    run_sweep.py the sweep fails: Snakemake is stopped, the run's SLURM jobs cancelled, exit status 3
    with what to do next (--stall-s 15, --poll-s 1, --grace-s 5: seconds instead of minutes)."""
    sleep_s, shim_body, reason = STATUS_FAILURES[case]
    config = _one_run_config(tmp_path, "sleep", f"import time; time.sleep({sleep_s})")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "squeue").write_text("#!/bin/sh\n" + shim_body.format(squeue=shutil.which("squeue")) + "\n")
    (shim / "squeue").chmod(0o755)
    workdir = tmp_path / "broken"
    workdir.mkdir()

    t0 = time.monotonic()
    # --latency-wait 1: the job's own Snakemake would wait 60 s for the outputs the sleep never writes
    res = _finish(
        _start_snakemake(
            workdir,
            "results/tables/summary.parquet",
            *_slurm_args(config),
            "--verbose",
            "--latency-wait",
            "1",
            wrapper=("--stall-s", "15", "--poll-s", "1", "--grace-s", "5"),
            path_prefix=shim,
        )
    )
    took_s = time.monotonic() - t0
    assert res.returncode == 3, res.stdout[-4000:]
    assert res.stdout.count("has been submitted with SLURM jobid") == 1, res.stdout[-4000:]
    assert "could not check status of job" in res.stdout and "No active jobs; skipping status query." in res.stdout
    assert f"slurm-sweep: FAILED: Snakemake stalled: for 15 s {reason}" in res.stdout, res.stdout[-4000:]
    assert "--unlock" in res.stdout and "--rerun-incomplete" in res.stdout
    assert list((workdir / ".snakemake" / "locks").iterdir())  # what --unlock is for
    run_id = re.search(r"SLURM run ID: (\S+)", res.stdout).group(1)
    assert f"were cancelled (scancel --name {run_id})" in res.stdout, res.stdout[-4000:]
    for _ in range(20):  # scancel signals the job; give SLURM up to 10 s to end it
        left = subprocess.run(
            ["squeue", "--noheader", "--format=%i %T", "--states=all", "--name", run_id],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert left.returncode == 0, left.stderr
        if "CANCELLED" in left.stdout or "FAILED" in left.stdout:
            break
        time.sleep(0.5)
    # cancelled if still running; the one that ended before (plugin_query_fails) failed on its own:
    # the sleep writes none of the rule's outputs
    assert left.stdout.split()[1:] == ["CANCELLED" if sleep_s == 300 else "FAILED"], left.stdout
    print(f"{case}: stalled sweep failed after {took_s:.0f} s:", *res.stdout.strip().splitlines()[-2:], sep="\n")
