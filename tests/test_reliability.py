"""Fault injection: no bad value slips through, bad output locations fail before training,
one writer per run folder, re-runs repair, aggregation checks identity, the gate fails closed.

The end-to-end probes run Snakemake on a two-run sweep (conftest's ``tiny_sweep``), once per module
(``swept``), and work on copies of its folder. We run as root, so ``chmod``-based read-only
folders would still be writable: the read-only probe patches the create call that the
writability check makes (``tempfile.mkstemp`` in ``ml2bench.core.records``) to fail with EACCES/EROFS,
which is what a read-only mount or a foreign folder returns.
"""

from __future__ import annotations

import errno
import importlib.util
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml2bench.analysis.compare import main as compare_main
from ml2bench.cli import main as cli_main
from ml2bench.core import records
from ml2bench.core.config import BUDGET, RUN, load_yaml
from ml2bench.core.params import ConfigError
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS
from ml2bench.sweep.verify import check_file, check_run
from ml2bench.sweep.verify import main as verify_main

REPO = Path(__file__).resolve().parents[1]
from ml2bench.sweep import jobs as sweep  # noqa: E402

HAS_SNAKEMAKE = importlib.util.find_spec("snakemake") is not None
TIME_COLUMNS = (
    "train_time_s",
    "wall_time_s",
    "started_at",
    "bench_s",
    "bench_max_rss_mb",
    "bench_cpu_time_s",
    "energy_cpu_j",
    "energy_dram_j",
    "energy_gpu_j",
    "energy_j",
)
NON_FINITE = (math.nan, math.inf, -math.inf)


# --- NaN/inf and impossible values, everywhere a number is read ----------------------------
def _float_params():
    for owner, spec in (
        [("budget", BUDGET), ("run", RUN)]
        + [(f"problem {n}", PROBLEMS.get(n).params) for n in PROBLEMS.names()]
        + [(f"method {n}", METHODS.get(n).params) for n in METHODS.names()]
    ):
        for p in spec:
            types = p.type if isinstance(p.type, tuple) else (p.type,)
            if float in types:
                yield owner, p


FLOAT_PARAMS = list(_float_params())


@pytest.mark.parametrize("owner,param", FLOAT_PARAMS, ids=[f"{o}.{p.name}" for o, p in FLOAT_PARAMS])
def test_every_float_parameter_rejects_nan_and_inf(owner, param):
    for bad in NON_FINITE + ("nan", ".inf", 10**400):  # as YAML/--set deliver them too
        with pytest.raises(ConfigError, match="is not a finite number|wrong type"):
            param.validate(bad, owner)


@pytest.mark.parametrize(
    "item,fragment",
    [
        ("budget.work_units=nan", "'work_units' = nan is not a finite number"),
        ("budget.epochs=.inf", "'epochs' = inf is not a finite number"),
        ("method.lr=nan", "'lr' = nan is not a finite number"),
        ("eval_interval=nan", "'eval_interval' = nan is not a finite number"),
        ("seed=100000000000000000000000000", "'seed' = 100000000000000000000000000 is out of range"),
        ("threads=100000000000000000000", "'threads' = 100000000000000000000 is out of range"),
        ("problem.n_train=99999", "n_train = 99999 and n_val = 200: together more than the 1347"),
        ("problem.width=1000000000", "parameters: 4 copies at torch.float32 need"),
    ],
)
def test_run_rejects_impossible_values_before_training(tmp_path, capsys, monkeypatch, item, fragment):
    import ml2bench.core.runner as runner

    monkeypatch.setattr(runner, "_budget_reached", lambda *a: pytest.fail("training started"))
    assert cli_main(["run", "--problem", "mlp", "--method", "sgd", "--set", item, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_sweep_config_rejects_nan_and_inf_at_every_number():
    base = yaml.safe_load((REPO / "workflow" / "config" / "ci.yaml").read_text())
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            paths.append(path)

    walk(base, [])
    assert len(paths) >= 15  # seeds, run options, params, budgets, target values
    for path in paths:
        for bad in NON_FINITE:
            cfg = yaml.safe_load((REPO / "workflow" / "config" / "ci.yaml").read_text())
            node = cfg
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = bad
            with pytest.raises(sweep.SweepError, match="is not a finite number"):
                sweep.expand(cfg, validate_runs=False)


def test_sweep_schema_errors_are_one_line_naming_the_key():
    cfg = yaml.safe_load((REPO / "workflow" / "config" / "ci.yaml").read_text())
    cfg["sweeps"][0]["budget"] = {"epoch": 3}
    with pytest.raises(sweep.SweepError) as err:
        sweep.validate_schema(cfg)
    assert str(err.value) == (
        "config.sweeps[0].budget: unknown key(s) 'epoch'; allowed: epochs, grad_evals, iterations, time_s, work_units"
    )
    cfg["sweeps"][0]["budget"] = {"epochs": 3}
    cfg["seeds"] = [2**63]
    with pytest.raises(sweep.SweepError, match=r"^config.seeds\[0\]: 9223372036854775808 is greater than"):
        sweep.validate_schema(cfg)


def test_yaml_errors_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("problem: mlp\nmethod: [sgd\nseed: 1\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:3:5: not valid YAML: .*expected ',' or ']'"):
        load_yaml(bad)
    assert verify_main(["--configfile", str(bad)]) == 2  # the sweep config linter, same message
    assert f"{bad}:3:5: not valid YAML" in capsys.readouterr().err


def test_compare_thresholds_reject_nan(tmp_path, capsys):
    t = tmp_path / "s.csv"
    pd.DataFrame([{"problem": "p", "method": "m", "seed": 0}]).to_csv(t, index=False)
    assert compare_main([str(t), str(t), "--time-threshold", "nan"]) == 2
    assert "must be a number >= 0, got nan" in capsys.readouterr().err


# --- output location, permissions, full disk, two writers -----------------------------------
def _no_training(monkeypatch):
    import ml2bench.core.runner as runner

    monkeypatch.setattr(runner, "_run", lambda *a, **k: pytest.fail("training started"))


@pytest.mark.parametrize("out,fragment", [("", "an output folder is required"), ("FILE", "is an existing file")])
def test_bad_out_fails_before_training(tmp_path, capsys, monkeypatch, out, fragment):
    _no_training(monkeypatch)
    if out == "FILE":
        out = str(tmp_path / "f")
        Path(out).write_text("x")
    assert cli_main(["run", "--problem", "mlp", "--method", "sgd", "--out", out]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_read_only_out_fails_before_training(tmp_path, capsys, monkeypatch, code):
    """Root ignores permission bits, so the failure a read-only folder gives is injected (see module doc)."""
    _no_training(monkeypatch)

    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(records.tempfile, "mkstemp", refuse)
    assert cli_main(["run", "--problem", "mlp", "--method", "sgd", "--out", str(tmp_path / "ro" / "run")]) == 2
    assert f"is not writable ({os.strerror(code)})" in capsys.readouterr().err
    assert not (tmp_path / "ro").exists()  # the folders it created for the probe are gone again


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_result_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        records.write_parquet_atomic(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    finally:
        os.umask(old)
    assert (tmp_path / "t.parquet").stat().st_mode & 0o777 == mode


def test_full_disk_is_a_failed_write_with_no_partial_summary(tmp_path, capsys, monkeypatch, tiny_run):
    def full(self, path, *a, **k):
        Path(path).write_bytes(b"PAR1")  # a partial temp file, as a full disk leaves it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    out = tmp_path / "run"
    assert cli_main([*tiny_run, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "records could not be written" in err and "No space left on device" in err, err
    assert sorted(p.name for p in out.iterdir()) == []  # no temp file, no summary, lock released


def test_second_writer_is_refused_and_lock_survives_nothing(tmp_path, capsys, tiny_run):
    out = tmp_path / "run"
    out.mkdir()
    with records.run_lock(out):
        assert cli_main([*tiny_run, "--out", str(out)]) == 2
        assert "is in use by another ml2bench run (pid" in capsys.readouterr().err
    assert cli_main([*tiny_run, "--out", str(out)]) == 0  # free again
    assert check_run(out) == [] and not (out / records.LOCK_NAME).exists()


def test_lock_of_a_killed_writer_is_released(tmp_path):
    code = (
        "import sys, time; from ml2bench.core.records import run_lock\n"
        "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(records.OutputError, match=rf"in use by another ml2bench run \(pid {holder.pid} on"):
            with records.run_lock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with records.run_lock(tmp_path):  # kill -9 leaves the file, not the lock
        pass


# --- the regression gate fed incomplete tables ----------------------------------------------
def _summary(groups, seeds=(0, 1)):
    return pd.DataFrame(
        [
            {
                "problem": p,
                "method": m,
                "seed": s,
                "status": "budget_exhausted",
                "train_time_s": 1.0,
                "work_units": 10.0,
                "final_test_metric": 0.9,
                "metric_name": "accuracy",
                "metric_higher_is_better": True,
            }
            for p, m in groups
            for s in seeds
        ]
    )


OLD_GROUPS = [("mlp", "sgd"), ("mlp", "adam"), ("resnet", "sgd")]


@pytest.mark.parametrize(
    "case,new,fragment",
    [
        ("complete", _summary(OLD_GROUPS), None),
        ("header-only", _summary(OLD_GROUPS).iloc[:0], "NEW holds no runs"),
        ("problem missing", _summary(OLD_GROUPS[:2]), "group resnet/sgd missing in NEW (2 runs in OLD)"),
        ("fewer seeds", _summary(OLD_GROUPS, seeds=(0,)), "group mlp/adam has 1 runs in NEW, 2 in OLD"),
        ("no work_units", _summary(OLD_GROUPS).drop(columns=["work_units"]), "column 'work_units' missing in NEW"),
        (
            "no metric",
            _summary(OLD_GROUPS).drop(columns=["final_test_metric"]),
            "column 'final_test_metric' missing in NEW",
        ),
        (
            "metric NaN",
            _summary(OLD_GROUPS).assign(final_test_metric=math.nan),
            "group mlp/sgd: final_test_metric is empty (NaN) in NEW",
        ),
    ],
)
def test_gate_fails_closed_on_incomplete_new(tmp_path, capsys, case, new, fragment):
    old_p, new_p = tmp_path / "old.csv", tmp_path / "new.csv"
    _summary(OLD_GROUPS).to_csv(old_p, index=False)
    new.to_csv(new_p, index=False)
    code = compare_main([str(old_p), str(new_p), "--fail-on-regression"])
    err = capsys.readouterr().err
    if fragment is None:
        assert code == 0 and "missing:" not in err
    else:
        assert code == 1 and f"missing: {fragment}" in err, err


# --- Snakemake: kill -9, deleted / corrupt / misplaced runs ---------------------------------
def snakemake(workdir: Path, *args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "tiny.yaml"),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir)


def _tables(workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregated history and summary without the columns that measure time."""
    out = []
    for name in ("history", "summary"):
        df = pd.read_parquet(workdir / "results" / "tables" / f"{name}.parquet")
        out.append(df.drop(columns=[c for c in TIME_COLUMNS if c in df.columns]))
    return out[0], out[1]


def _assert_same_tables(a: Path, b: Path) -> None:
    for x, y in zip(_tables(a), _tables(b)):
        pd.testing.assert_frame_equal(x, y)


def _fresh(tmp_path: Path, name: str, config: dict) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "tiny.yaml").write_text(yaml.safe_dump(config))
    return d


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_sweep) -> Path:
    if not HAS_SNAKEMAKE:
        pytest.skip("snakemake not installed")
    d = _fresh(tmp_path_factory.mktemp("swept"), "ref", tiny_sweep())
    proc = snakemake(d, "tables")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


def _copy(swept: Path, tmp_path: Path) -> Path:
    d = tmp_path / "copy"
    shutil.copytree(swept, d, symlinks=True)
    return d


RUN_A = Path("results/runs/mlp_tiny/sgd/default/seed0")
RUN_B = Path("results/runs/mlp_tiny/adam/default/seed0")


def test_deleted_and_corrupt_runs_are_redone_then_reaggregated(swept, tmp_path, capsys):
    d = _copy(swept, tmp_path)
    shutil.rmtree(d / RUN_A)
    summary_b = d / RUN_B / "summary.parquet"
    summary_b.write_bytes(summary_b.read_bytes()[:200])  # truncated copy
    assert "not a readable parquet file" in check_file(summary_b)
    assert verify_main([str(d / "results"), "--configfile", str(d / "tiny.yaml")]) == 1
    listed = capsys.readouterr().out
    assert f"missing: {d / RUN_A / 'summary.parquet'}" in listed
    assert f"corrupt: {summary_b}: not a readable parquet file" in listed and "delete the run directory" in listed
    proc = snakemake(d, "tables")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        f"{RUN_B / 'summary.parquet'} not a readable parquet file" in proc.stderr and "the run is redone" in proc.stderr
    )
    assert len(list((d / RUN_B / "corrupt").iterdir())) == 1  # kept for inspection
    _assert_same_tables(swept, d)
    assert verify_main([str(d / "results"), "--configfile", str(d / "tiny.yaml")]) == 0
    again = snakemake(d, "tables")
    assert "Nothing to be done" in again.stdout + again.stderr  # repaired for good, not redone each time


def test_misplaced_run_is_an_error_naming_both(swept, tmp_path, capsys):
    d = _copy(swept, tmp_path)
    for name in ("history.parquet", "summary.parquet"):  # adam's files copied over sgd's
        shutil.copy(d / RUN_B / name, d / RUN_A / name)
    assert verify_main([str(d / "results"), "--configfile", str(d / "tiny.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"mismatch: {d / RUN_A / 'summary.parquet'}: holds the run (problem=mlp, method=adam, seed=0" in out
    assert "but this directory belongs to (problem=mlp, method=sgd, seed=0" in out
    proc = snakemake(d, "tables")  # newer run files: aggregate re-runs and refuses
    assert proc.returncode != 0
    assert "holds the run (problem=mlp, method=adam" in proc.stderr and "method=sgd" in proc.stderr


def test_kill_9_mid_sweep_then_unlock_and_rerun_incomplete(swept, tmp_path, tiny_sweep):
    d = _fresh(tmp_path, "killed", tiny_sweep())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(d),
        "--configfile",
        str(d / "tiny.yaml"),
        "--cores",
        "2",
        "tables",
    ]
    proc = subprocess.Popen(
        cmd, cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((d / "results" / "runs").glob("*/*/*/*/summary.parquet")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its running job, mid-sweep
    proc.wait()
    assert not (d / "results" / "tables" / "summary.parquet").exists()
    # the README's advice, as written: the stale lock first, then the incomplete jobs
    locked = snakemake(d, "tables", "--rerun-incomplete")
    assert locked.returncode != 0 and "--unlock" in locked.stderr + locked.stdout
    assert snakemake(d, "--unlock").returncode == 0
    resumed = snakemake(d, "tables", "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_tables(swept, d)


def test_batch_size_beyond_the_data_is_recorded_as_used(tmp_path, tiny_run):
    """A batch never exceeds the data set: the summary records the size used, not the one asked."""
    out = tmp_path / "run"
    assert cli_main([*tiny_run, "--set", "batch_size=1000000", "--out", str(out)]) == 0
    s = pd.read_parquet(out / "summary.parquet").iloc[0]
    assert s["batch_size"] == 100 and s["epochs"] == 1.0  # n_train=100, one step of the whole set


def test_corrupt_table_given_to_compare_is_named(tmp_path, capsys):
    bad = tmp_path / "summary.parquet"
    bad.write_bytes(b"PAR1 not really")
    assert compare_main([str(bad), str(bad)]) == 2
    assert f"error: '{bad}' is not a readable table" in capsys.readouterr().err


def test_model_size_check_abandons_a_huge_build_early():
    """depth 10**5 x width 10**4 (10**13 parameters) is refused after a few layers, not built."""
    import torch

    from ml2bench.core.cost.capacity import count_parameters

    cls = PROBLEMS.get("mlp")
    problem = cls(
        cls.params.validate({"depth": 10**5, "width": 10**4, "n_train": 100}, "mlp"),
        seed=0,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    limit = 10**9
    n = count_parameters(problem, limit=limit)
    assert limit < n <= limit + 10**4 * 10**4 + 10**4  # stopped within one layer past the limit
    small = cls(
        cls.params.validate({"depth": 2, "width": 8, "n_train": 100}, "mlp"),
        seed=0,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    assert count_parameters(small) == sum(p.numel() for p in small.build_model(0).parameters())


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--grid", "--problems", "poisson,foo"], "--problems: unknown 'foo'; allowed: poisson"),
        (["--grid", "--sizes", "31,30"], "--sizes: 30 is not a grid of 2^k - 1 nodes"),
        (["--grid", "--sizes", "45"], "--sizes: 45 is not a grid"),  # one coarsening only: no V-cycle to 1 node
        (["--grid", "--problems", "scherk", "--scherk-a", "3.5"], "--scherk-a: 3.5 is outside (0, π)"),
        (["--methods", "rmtr,none"], "--methods: unknown 'none'; allowed: rmtr, mgopt"),
    ],
)
def test_multilevel_bench_names_the_bad_argument(capsys, argv, fragment):
    """A bad benchmark argument is one argparse error naming it, before any run (no traceback, and
    no size that silently runs a single level instead of a V-cycle)."""
    from ml2bench.bench.multilevel import main as bench_main

    with pytest.raises(SystemExit) as exc:
        bench_main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_bench_dispatcher_lists_and_runs_mgh(capsys):
    from ml2bench.bench.__main__ import main as bench_main

    assert bench_main(["nope"]) == 2
    assert "available: multilevel, schwarz, mgh" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        bench_main(["mgh", "--help"])
    assert exc.value.code == 0 and "--max-evals" in capsys.readouterr().out
