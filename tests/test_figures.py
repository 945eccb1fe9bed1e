"""Figure functions on small synthetic tables write PDF + PNG (and never draw absent energy)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ml2bench import figures as fg
from ml2bench import tables as tb
from ml2bench.report import build_report


def _history(with_energy: bool) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for method, rate in (("sgd", 0.5), ("adam", 0.8), ("rmtr", 1.2)):
        for seed in range(3):
            for i in range(8):
                wu = i * (1.0 + 0.1 * seed)
                loss = 2.0 * np.exp(-rate * wu) + 0.01
                rows.append({
                    "problem_id": "toy", "problem": "mlp", "method": method, "point": "default", "seed": seed,
                    "epoch": wu, "iteration": i, "grad_evals": wu, "work_units": wu,
                    "train_time_s": wu * 0.1 * (1 + 0.05 * rng.random()),
                    "energy_cpu_j": wu * 3.0 if with_energy else np.nan, "energy_dram_j": np.nan,
                    "energy_gpu_j": np.nan, "energy_j": wu * 3.0 if with_energy else np.nan,
                    "train_loss": loss, "step_loss": loss, "test_loss": loss * 1.1,
                    "test_metric": 1.0 - loss / 2.5,
                })
    return pd.DataFrame(rows)


def _exists(paths):
    assert {p.suffix for p in paths} == {".pdf", ".png"}
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
        magic = p.read_bytes()[:8]
        assert magic.startswith(b"%PDF") if p.suffix == ".pdf" else magic == b"\x89PNG\r\n\x1a\n"


def test_convergence_figure_with_energy(tmp_path):
    _exists(fg.convergence_figure(_history(True), "energy", tmp_path / "c_energy", "toy", "accuracy", True))


def test_energy_absent_gives_a_note_not_numbers(tmp_path):
    paths = fg.convergence_figure(_history(False), "energy", tmp_path / "e", "toy")
    _exists(paths)
    # a note figure is small and has a single (empty) axes: no plotted data
    assert paths[1].stat().st_size < 60_000


def test_seed_band_step_values():
    grid, med, q25, q75 = fg.seed_band([(np.array([0.0, 2.0]), np.array([1.0, 3.0])),
                                        (np.array([0.0, 1.0, 4.0]), np.array([2.0, 4.0, 5.0]))])
    assert list(grid) == [0.0, 1.0, 2.0, 4.0]
    # x=1: run 1 carries 1.0 forward, run 2 has 4.0 -> 2.5; x=4: run 1 finished at 3.0 and keeps it
    assert med[1] == 2.5 and med[3] == 4.0
    assert np.isnan(fg.step_values(np.array([1.0, 2.0]), np.array([5.0, 6.0]), np.array([0.5, 9.0])))[0]


def test_time_to_target_and_profiles(tmp_path):
    history = _history(False)
    targets = {"toy": {"quantity": "train_loss", "value": 0.2, "direction": "below"}}
    ttt = tb.time_to_target(history, targets)
    ttt.loc[ttt["method"] == "sgd", ["reached"]] = False
    ttt.loc[ttt["method"] == "sgd", ["work_units_to_target", "time_to_target_s"]] = np.inf
    _exists(fg.time_to_target_figure(ttt, tmp_path / "ttt", "toy", "target: train_loss ≤ 0.2"))
    summary = history.groupby(tb.RUN_KEYS).tail(1).assign(
        status="budget_exhausted", metric_name="accuracy", final_test_metric=0.9, final_train_loss=0.1)
    table = tb.comparison_table(summary, ttt)
    _exists(fg.profile_figure(tb.profiles(table), tmp_path / "profiles", 1))


def test_problem_figures_and_report_from_tables_dir(tmp_path):
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    history = _history(False)
    summary = history.groupby(tb.RUN_KEYS).tail(1).assign(
        status="budget_exhausted", metric_name="accuracy", metric_higher_is_better=True,
        final_test_metric=0.9, final_train_loss=0.1, energy_source="none")
    history.to_parquet(tables / "history.parquet")
    summary.to_parquet(tables / "summary.parquet")
    (tables / "targets.json").write_text(json.dumps({"toy": {"quantity": "train_loss", "value": 0.2}}))
    tb.build(tables)
    paths = fg.problem_figures(tables, "toy", tmp_path / "figures")
    assert len(paths) == 2 * len(fg.FIGURE_NAMES)
    _exists(paths)
    assert fg.main(["--tables", str(tables), "--out", str(tmp_path / "figures"), "--profiles"]) == 0
    report = build_report(tables, tmp_path / "figures", tmp_path / "results" / "report.md", "toy sweep")
    text = report.read_text()
    assert "../figures/toy/convergence_work_units.png" in text and "| rmtr |" in text
    assert "Energy:** not measured" in text
