"""Result files are written atomically and a failed run never replaces a finished one."""

from __future__ import annotations

import pandas as pd
import pytest

from ml2bench.core.config import RunConfig
from ml2bench.core.records import (
    SUMMARY_COLUMNS,
    SUMMARY_MEASURES,
    finished_run_exists,
    write_parquet_atomic,
    write_run,
)
from ml2bench.core.runner import run


def _tables(status: str, loss: float):
    return pd.DataFrame({"train_loss": [loss]}), pd.DataFrame({"status": [status], "final_train_loss": [loss]})


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    write_parquet_atomic(pd.DataFrame({"a": [1]}), path)

    def broken(self, *args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(pd.DataFrame({"a": [2]}), path)
    monkeypatch.undo()
    assert pd.read_parquet(path)["a"].tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # no temp files left


def test_failed_run_does_not_overwrite_finished(tmp_path):
    out = write_run(*_tables("budget_exhausted", 0.5), tmp_path / "run")
    assert out == tmp_path / "run" and finished_run_exists(out)
    failed_out = write_run(*_tables("failed", float("nan")), tmp_path / "run")
    assert failed_out == tmp_path / "run" / "failed"
    assert pd.read_parquet(tmp_path / "run" / "summary.parquet")["status"].iloc[0] == "budget_exhausted"
    assert pd.read_parquet(failed_out / "summary.parquet")["status"].iloc[0] == "failed"


def test_finished_run_may_be_replaced_by_finished_run(tmp_path):
    write_run(*_tables("diverged", 1e9), tmp_path)
    write_run(*_tables("ok", 0.1), tmp_path)
    assert pd.read_parquet(tmp_path / "summary.parquet")["status"].iloc[0] == "ok"


def test_a_run_writes_exactly_the_documented_summary_columns(small_mlp):
    """SUMMARY_COLUMNS (which docs/records.md is generated from) is the summary a run writes, in order."""
    summary = run(RunConfig.from_dict(small_mlp)).summary
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert all(text.strip() for text in SUMMARY_COLUMNS.values())
    # the measures (what a claim may compare) are the numeric columns that are not the run's identity
    numeric = {c for c in summary if pd.api.types.is_numeric_dtype(summary[c]) and summary[c].dtype != bool}
    assert set(SUMMARY_MEASURES) == numeric - {"seed", "torch_threads"}
