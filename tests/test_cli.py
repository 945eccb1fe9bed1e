"""End-to-end through the command line, as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from ml2bench.cli import main


def _ml2bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml2bench", *args], capture_output=True, text=True, timeout=300)


def test_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = _ml2bench(
        "run",
        "--problem",
        "mlp",
        "--method",
        "sgd",
        "--seed",
        "2",
        "--set",
        "budget.epochs=2",
        "--set",
        "problem.n_train=200",
        "--set",
        "method.lr=0.1",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "status=budget_exhausted" in proc.stdout
    s = pd.read_parquet(out / "summary.parquet")
    h = pd.read_parquet(out / "history.parquet")
    assert s["seed"].iloc[0] == 2 and s["method"].iloc[0] == "sgd" and len(h) >= 2
    assert '"lr": 0.1' in s["method_params"].iloc[0]


def test_config_file_and_override(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "problem: mlp\nmethod: adam\nproblem_params: {n_train: 128, n_test: 64}\n"
        "method_params: {lr: 1e-2}\nbudget: {epochs: 1}\n"
    )
    assert main(["run", "--config", str(cfg), "--set", "seed=3", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    s = pd.read_parquet(tmp_path / "o" / "summary.parquet")
    assert s["seed"].iloc[0] == 3 and '"lr": 0.01' in s["method_params"].iloc[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--problem", "mlpp", "--method", "sgd"], "unknown problem 'mlpp'; allowed: "),
        (
            ["--problem", "mlp", "--method", "sgd", "--set", "method.momentum=2"],
            "parameter 'momentum' = 2.0 is out of range",
        ),
        (
            ["--problem", "mlp", "--method", "sgd", "--config", "/nonexistent.yaml"],
            "config file '/nonexistent.yaml' not found",
        ),
        (["--problem", "mlp", "--method", "sgd", "--set", "problem.dataset=mnist"], "data_dir"),
    ],
)
def test_bad_input_exit_2_with_message(tmp_path, capsys, args, fragment):
    assert main(["run", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err
    assert not (tmp_path / "o").exists()  # nothing written for bad input


def test_list_shows_names_and_hyperparameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "sgd", "adam", "lbfgs"):
        assert f"  {name} " in out
    assert "history_size" in out and "[int >= 1]" in out


def test_help_is_helpful():
    proc = _ml2bench("run", "--help")
    assert proc.returncode == 0 and "budget.KEY" in proc.stdout and "Exit status" in proc.stdout


def test_tool_subcommands_are_dispatched(tmp_path, capsys):
    """`ml2bench compare|aggregate|tables|figures|report` hand their arguments to the module."""
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "new")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["figures", "--help"])
    assert done.value.code == 0 and "performance" in capsys.readouterr().out
