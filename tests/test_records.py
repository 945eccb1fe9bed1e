"""Result files are written atomically and a failed run never replaces a finished one."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest

from ml2bench.cli import main as cli_main
from ml2bench.core import records
from ml2bench.core.config import RunConfig
from ml2bench.core.records import (
    SUMMARY_COLUMNS,
    SUMMARY_MEASURES,
    finished_run_exists,
    write_parquet_atomic,
    write_run,
)
from ml2bench.core.runner import run
from ml2bench.sweep.verify import check_run

REASON = {"budget_exhausted": "budget:epochs", "failed": "failed", "diverged": "diverged", "ok": "grad_tol"}


def _tables(status: str, loss: float):
    """A one-row history and its summary, consistent with each other as a run writes them."""
    ident = {"problem": "mlp", "method": "sgd", "seed": 0, "config_hash": "0123456789abcdef"}
    last = {"train_loss": loss, "test_loss": loss, "test_metric": 0.5, "epoch": 1.0}
    history = pd.DataFrame([{**ident, **last}])
    final = {"final_train_loss": loss, "final_test_loss": loss, "final_test_metric": 0.5, "epochs": 1.0}
    return history, pd.DataFrame([{**ident, "status": status, "stop_reason": REASON[status], **final}])


@pytest.mark.parametrize(
    "status, reason, match",
    [("ok", "converged", "unknown stop reason 'converged'"), ("ok", "roundoff", "implies status 'stopped'")],
)
def test_unknown_or_inconsistent_stop_reason_is_not_written(tmp_path, status, reason, match):
    history, summary = _tables(status, 0.1)
    summary["stop_reason"] = reason
    with pytest.raises(ValueError, match=match):
        write_run(history, summary, tmp_path)
    assert not list(tmp_path.iterdir())


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


# --- the two files of a run are one unit (issue 24) ------------------------------------------


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _fail_on(monkeypatch, name: str, err: int = errno.ENOSPC):
    """``to_parquet`` of the file ``name`` writes a partial file, then fails as a full disk does."""
    real = pd.DataFrame.to_parquet

    def partial(self, path, *args, **kwargs):
        if Path(path).name == name:
            Path(path).write_bytes(b"PAR1")
            raise OSError(err, os.strerror(err))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", partial)


def test_disk_full_at_the_second_file_leaves_the_previous_pair(tmp_path, capsys, monkeypatch, tiny_run):
    """Defect 1: the new history was renamed into place before the summary write failed."""
    out = tmp_path / "run"
    assert cli_main([*tiny_run, "--set", "method.lr=0.1", "--out", str(out)]) == 0
    before = _snapshot(out)
    _fail_on(monkeypatch, "summary.parquet")
    assert cli_main([*tiny_run, "--set", "method.lr=0.02", "--out", str(out), "--force"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device; the previous records in it are unchanged" in err, err
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)
    assert check_run(out) == []


def test_disk_full_on_a_new_folder_says_nothing_was_written(tmp_path, capsys, monkeypatch, tiny_run):
    _fail_on(monkeypatch, "history.parquet")
    out = tmp_path / "run"
    assert cli_main([*tiny_run, "--out", str(out)]) == 1
    assert "No space left on device; nothing was written to it" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_crash_after_the_commit_point_is_rolled_forward(tmp_path, monkeypatch):
    out = tmp_path / "run"
    write_run(*_tables("ok", 0.5), out)
    real = os.replace

    def crash(src, dst):  # the machine stops after the history was moved into place
        if Path(dst).name == "summary.parquet":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(records.RecordsError, match=r"complete in \.commit/ but not yet in place"):
        write_run(*_tables("ok", 0.25), out)
    monkeypatch.undo()
    assert pd.read_parquet(out / "summary.parquet")["final_train_loss"].iloc[0] == 0.5  # old summary ...
    assert pd.read_parquet(out / "history.parquet")["train_loss"].iloc[0] == 0.25  # ... beside the new history
    assert [f.kind for f in check_run(out)] == ["interrupted"]
    with records.claim_output(out, force=True):  # the next writer finishes the commit first
        pass
    assert pd.read_parquet(out / "summary.parquet")["final_train_loss"].iloc[0] == 0.25
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "summary.parquet"]


def test_an_uncommitted_staging_folder_is_discarded(tmp_path):
    out = tmp_path / "run"
    write_run(*_tables("ok", 0.5), out)
    (out / f"{records.STAGING_PREFIX}abc").mkdir()  # a writer killed before its commit point
    (out / f"{records.STAGING_PREFIX}abc" / "history.parquet").write_bytes(b"PAR1")
    assert records.recover(out)
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "summary.parquet"]
    assert pd.read_parquet(out / "summary.parquet")["final_train_loss"].iloc[0] == 0.5


def test_history_carries_the_run_identity(tmp_path, tiny_run):
    out = tmp_path / "run"
    assert cli_main([*tiny_run, "--out", str(out)]) == 0
    h, s = (pd.read_parquet(out / n) for n in ("history.parquet", "summary.parquet"))
    for col in records.IDENTITY:
        assert set(h[col]) == {s[col].iloc[0]}, col


# --- ml2bench run --out: never silently over another run or the aggregated tables ------------
def test_run_refuses_a_folder_holding_another_run(tmp_path, capsys, tiny_run):
    out = tmp_path / "run"
    assert cli_main([*tiny_run, "--set", "method.lr=0.1", "--out", str(out)]) == 0
    before = _snapshot(out)
    assert cli_main([*tiny_run, "--set", "method.lr=0.02", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds another run (problem=mlp, method=sgd, seed=0, config_hash=" in err and "--force" in err, err
    assert _snapshot(out) == before
    assert cli_main([*tiny_run, "--set", "method.lr=0.1", "--out", str(out)]) == 0  # the same run: replaced
    assert cli_main([*tiny_run, "--set", "method.lr=0.02", "--out", str(out), "--force"]) == 0
    assert pd.read_parquet(out / "summary.parquet")["method_params"].iloc[0].count('"lr": 0.02') == 1


@pytest.mark.parametrize("marker", ["targets.json", "summary.csv", "aggregated summary"])
def test_run_refuses_the_tables_folder(tmp_path, capsys, marker, tiny_run):
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    if marker == "aggregated summary":
        pd.DataFrame({"problem_id": ["mlp"], "problem": ["mlp"]}).to_parquet(tables / "summary.parquet")
    else:
        (tables / marker).write_text("{}")
    before = _snapshot(tables)
    assert cli_main([*tiny_run, "--out", str(tables), "--force"]) == 2
    assert "holds aggregated tables" in capsys.readouterr().err
    assert _snapshot(tables) == before


def test_atomic_write_keeps_the_format_of_the_final_name(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    write_parquet_atomic(df, tmp_path / "t.csv")
    write_parquet_atomic(df, tmp_path / "t.parquet")
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df)
