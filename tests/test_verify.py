"""ml2bench verify: a run's two files are one consistent pair; one run folder can be checked."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ml2bench.cli import main as cli_main
from ml2bench.sweep.verify import check_run
from ml2bench.sweep.verify import main as verify_main


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    """Two hyper-parameter points of one method in the sweep layout (runs root)."""
    root = tmp_path_factory.mktemp("runs")
    for lr in ("0.02", "0.1"):
        assert cli_main([*tiny_run, "--set", f"method.lr={lr}", "--out", str(root / f"mlp/sgd/lr~{lr}/seed0")]) == 0
    return root


def _copy(runs, tmp_path):
    shutil.copytree(runs, tmp_path / "runs")
    return tmp_path / "runs"


def test_history_swapped_between_points_is_named(runs, tmp_path, capsys):
    """Defect 2: same problem, method and seed — only the config hash tells the histories apart."""
    root = _copy(runs, tmp_path)
    a, b = root / "mlp/sgd/lr~0.02/seed0", root / "mlp/sgd/lr~0.1/seed0"
    (a / "history.parquet").rename(tmp_path / "h")
    (b / "history.parquet").rename(a / "history.parquet")
    (tmp_path / "h").rename(b / "history.parquet")
    assert verify_main([str(root)]) == 1
    out = capsys.readouterr().out
    for d in (a, b):
        assert f"mismatch: {d / 'history.parquet'}: config_hash" in out and "are from different runs" in out, out
    assert "2 runs checked: 2 problem(s)" in out


def test_summary_final_values_must_be_the_history_last_row(runs, tmp_path):
    root = _copy(runs, tmp_path)
    d = root / "mlp/sgd/lr~0.1/seed0"
    h = pd.read_parquet(d / "history.parquet")
    h.iloc[:-1].to_parquet(d / "history.parquet", index=False)  # an older history of the same run
    (finding,) = check_run(d)
    assert finding.kind == "mismatch" and "its last row has train_loss=" in finding.detail
    assert "but the summary's final_train_loss is" in finding.detail


def test_verify_checks_one_run_folder(runs, tmp_path, capsys):
    root = _copy(runs, tmp_path)
    d = root / "mlp/sgd/lr~0.1/seed0"
    assert verify_main([str(d)]) == 0
    assert "1 runs checked: 0 problem(s)" in capsys.readouterr().out
    (d / "summary.parquet").write_bytes(b"PAR1 truncated")
    assert verify_main([str(d)]) == 1
    assert f"corrupt: {d / 'summary.parquet'}: not a readable parquet file" in capsys.readouterr().out


def test_verify_of_a_folder_without_runs_fails(tmp_path, capsys):
    assert verify_main([str(tmp_path)]) == 1
    assert "no runs found in" in capsys.readouterr().out
