"""``ml2bench.analysis.compare`` on hand-made summary tables with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ml2bench.analysis.compare import Thresholds, compare, has_regression, main, read_table, to_markdown


def _runs(problem, method, times, works, metrics, *, higher=True, metric_name="accuracy", status=None):
    status = status or ["budget_exhausted"] * len(times)
    return [
        {
            "problem": problem,
            "method": method,
            "seed": s,
            "status": st,
            "train_time_s": t,
            "work_units": w,
            "final_test_metric": m,
            "metric_name": metric_name,
            "metric_higher_is_better": higher,
            "final_train_loss": 0.1,
        }
        for s, (t, w, m, st) in enumerate(zip(times, works, metrics, status))
    ]


def _table(*groups) -> pd.DataFrame:
    return pd.DataFrame([r for g in groups for r in g])


def _row(table: pd.DataFrame, problem: str, method: str) -> pd.Series:
    hit = table[(table["problem"] == problem) & (table["method"] == method)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


OLD = _table(
    _runs("mlp", "sgd", [1.0, 2.0, 3.0], [10, 10, 10], [0.90, 0.80, 0.85]),
    _runs("mlp", "adam", [1.0, 1.0, 1.0], [10, 10, 10], [0.90, 0.90, 0.90]),
    _runs("pinn_poisson", "lbfgs", [4.0, 4.0], [20, 20], [1e-2, 1e-2], higher=False, metric_name="rel_l2"),
    _runs("pinn_poisson", "adam", [4.0, 4.0], [20, 20], [1e-2, 1e-2], higher=False, metric_name="rel_l2"),
)


def test_medians_over_seeds_and_relative_change():
    new = _table(
        _runs("mlp", "sgd", [3.0, 3.0, 5.0], [10, 10, 10], [0.85, 0.80, 0.90]),  # medians 3.0, 0.85
        OLD[OLD["method"] != "sgd"].to_dict("records"),
    )
    out = compare(OLD, new)
    r = _row(out, "mlp", "sgd")
    assert r["time_old"] == 2.0 and r["time_new"] == 3.0
    assert r["time_rel"] == pytest.approx(0.5)
    assert r["metric_old"] == pytest.approx(0.85) and r["metric_rel"] == pytest.approx(0.0)
    assert r["work_rel"] == 0.0
    assert r["flag"] == "slower"
    assert r["runs_old"] == 3 and r["runs_new"] == 3
    assert _row(out, "mlp", "adam")["flag"] == ""
    assert has_regression(out)


def test_metric_direction_accuracy_higher_rel_l2_lower_is_better():
    new = _table(
        _runs("mlp", "sgd", [2.0] * 3, [10] * 3, [0.80] * 3),  # accuracy 0.85 -> 0.80: worse
        _runs("mlp", "adam", [1.0] * 3, [10] * 3, [0.95] * 3),  # accuracy 0.90 -> 0.95: better
        _runs("pinn_poisson", "lbfgs", [4.0] * 2, [20] * 2, [2e-2] * 2, higher=False, metric_name="rel_l2"),
        _runs("pinn_poisson", "adam", [4.0] * 2, [20] * 2, [5e-3] * 2, higher=False, metric_name="rel_l2"),
    )
    out = compare(OLD, new)
    assert _row(out, "mlp", "sgd")["flag"] == "worse"
    assert _row(out, "mlp", "adam")["flag"] == "better"
    lb = _row(out, "pinn_poisson", "lbfgs")
    assert lb["flag"] == "worse" and lb["metric_rel"] == pytest.approx(1.0)  # rel_l2 doubled
    ad = _row(out, "pinn_poisson", "adam")
    assert ad["flag"] == "better" and ad["metric_rel"] == pytest.approx(-0.5)  # rel_l2 halved


def test_metric_direction_read_from_csv_strings(tmp_path):
    """CSV round trips turn booleans into 'True'/'False' strings; direction must survive."""
    old_p, new_p = tmp_path / "old.csv", tmp_path / "new.csv"
    OLD.to_csv(old_p, index=False)
    new = OLD.copy()
    new.loc[new["problem"] == "pinn_poisson", "final_test_metric"] = 5e-3
    new.to_csv(new_p, index=False)
    out = compare(read_table(old_p), read_table(new_p))
    assert _row(out, "pinn_poisson", "lbfgs")["flag"] == "better"


def test_thresholds_faster_and_within_tolerance():
    new = OLD.copy()
    new.loc[new["method"] == "adam", "train_time_s"] *= 1.05  # +5 %: under the 10 % default
    new.loc[new["method"] == "lbfgs", "work_units"] *= 0.5  # half the work: faster
    out = compare(OLD, new)
    assert _row(out, "mlp", "adam")["flag"] == ""
    assert _row(out, "pinn_poisson", "lbfgs")["flag"] == "faster"
    strict = compare(OLD, new, Thresholds(time=0.01))
    assert _row(strict, "mlp", "adam")["flag"] == "slower"
    assert not has_regression(out) and has_regression(strict)


def test_slower_and_better_together_and_more_failures_is_worse():
    new = _table(
        _runs("mlp", "sgd", [4.0] * 3, [10] * 3, [0.95] * 3),  # slower, better
        _runs("mlp", "adam", [1.0] * 3, [10] * 3, [0.90] * 3, status=["ok", "failed", "ok"]),
    )
    out = compare(OLD, new)
    assert _row(out, "mlp", "sgd")["flag"] == "slower,better"
    ad = _row(out, "mlp", "adam")
    assert ad["flag"] == "worse" and ad["unfinished_new"] == 1
    lb = _row(out, "pinn_poisson", "lbfgs")
    assert lb["note"] == "only in old" and lb["flag"] == "" and math.isnan(lb["time_new"])


def test_groups_by_problem_id_and_point_when_both_have_them():
    old = OLD.assign(problem_id="mlp_small", point="default")
    new = pd.concat([old, old.assign(point="lr0.1")], ignore_index=True)
    out = compare(old, new)
    assert {"problem_id", "point"} <= set(out.columns) and "problem" not in out.columns
    assert (out[out["point"] == "lr0.1"]["note"] == "only in new").all()


def test_markdown_and_cli_exit_codes(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    OLD.to_parquet(tmp_path / "old" / "summary.parquet")  # a results/tables folder
    new = OLD.copy()
    new["train_time_s"] *= 2.0
    new.to_parquet(tmp_path / "new.parquet")
    assert main([str(tmp_path / "old"), str(tmp_path / "new.parquet")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("| problem | method |") and "+100.0%" in text and "slower" in text
    assert main([str(tmp_path / "old"), str(tmp_path / "new.parquet"), "--fail-on-regression"]) == 1
    assert main([str(tmp_path / "old"), str(tmp_path / "old"), "--fail-on-regression"]) == 0
    assert main([str(tmp_path / "missing"), str(tmp_path / "old")]) == 2
    capsys.readouterr()
    assert "| a |" in to_markdown(pd.DataFrame({"a": [1.0]}))


def test_runs_root_is_concatenated(tmp_path):
    for i, rec in enumerate(OLD.to_dict("records")):
        d = tmp_path / "runs" / rec["problem"] / rec["method"] / "default" / f"seed{i}"
        d.mkdir(parents=True)
        pd.DataFrame([rec]).to_parquet(d / "summary.parquet")
    table = read_table(tmp_path / "runs")
    assert len(table) == len(OLD)


# --- the gate fails closed on values it cannot compare (issue 24) ----------------------------
def _gate(tmp_path, capsys, old: pd.DataFrame, new: pd.DataFrame) -> tuple[int, str]:
    old_p, new_p = tmp_path / "old.csv", tmp_path / "new.csv"
    old.to_csv(old_p, index=False)
    new.to_csv(new_p, index=False)
    code = main([str(old_p), str(new_p), "--fail-on-regression"])
    return code, capsys.readouterr().err


def _with(df: pd.DataFrame, method: str, seed: int, col: str, value) -> pd.DataFrame:
    df = df.copy().astype({col: object}) if not isinstance(value, float) else df.copy()
    df.loc[(df["method"] == method) & (df["seed"] == seed), col] = value
    return df


@pytest.mark.parametrize(
    "new,fragment",
    [
        (  # defect 3: the median skipped the NaN and called the group better
            _with(OLD, "sgd", 1, "final_test_metric", math.nan),
            "missing: group mlp/sgd: final_test_metric is empty (NaN) in NEW (seed 1) where OLD is finite",
        ),
        (  # defect 4: a rel. L2 that overflowed: the relative change was NaN, nothing flagged
            _with(OLD, "lbfgs", 0, "final_test_metric", math.inf),
            "invalid: group pinn_poisson/lbfgs: final_test_metric is +inf in NEW (seed 0) where OLD is finite",
        ),
        (
            _with(OLD, "adam", 2, "train_time_s", -math.inf),
            "invalid: group mlp/adam: train_time_s is -inf in NEW (seed 2) where OLD is finite",
        ),
        (  # a duplicated seed masked a missing one: rows were counted, not seeds
            _with(OLD, "sgd", 2, "seed", 1),
            "invalid: group mlp/sgd: seed 1 appears 2 times in NEW",
        ),
        (_with(OLD, "sgd", 2, "seed", 1), "missing: group mlp/sgd: seed(s) 2 missing in NEW"),
        (
            _with(OLD, "adam", 0, "metric_higher_is_better", "maybe"),
            "invalid: group mlp/adam: direction of final_test_metric unknown",
        ),
        (
            OLD.drop(columns=["metric_higher_is_better"]),
            "invalid: group mlp/adam: direction of final_test_metric unknown",
        ),
        (
            OLD.assign(metric_higher_is_better=~OLD["metric_higher_is_better"]),
            "invalid: group mlp/sgd: metric_higher_is_better differs between OLD and NEW",
        ),
    ],
    ids=["nan", "inf", "-inf", "duplicate-seed", "masked-seed", "direction-word", "direction-absent", "flipped"],
)
def test_gate_fails_closed_on_values_it_cannot_compare(tmp_path, capsys, new, fragment):
    code, err = _gate(tmp_path, capsys, OLD, new)
    assert code == 1 and fragment in err, err


def test_gate_fails_closed_on_an_unparseable_old_value(tmp_path, capsys):
    code, err = _gate(tmp_path, capsys, _with(OLD, "sgd", 0, "final_test_metric", "0.9x"), OLD)
    assert code == 1 and "invalid: OLD final_test_metric holds 1 value(s) that are not numbers ('0.9x')" in err, err


def test_gate_names_old_rows_without_a_point_instead_of_crashing(tmp_path, capsys):
    old = OLD.assign(point="default")
    old.loc[0, "point"] = math.nan  # was: TypeError in the group lookup
    code, err = _gate(tmp_path, capsys, old, OLD.assign(point="default"))
    assert code == 1 and "invalid: OLD has 1 row(s) with no point" in err, err


def test_gate_passes_identical_tables_with_nan_on_both_sides(tmp_path, capsys):
    both = _with(OLD, "sgd", 1, "final_test_metric", math.nan)  # a run without a metric, in OLD and NEW
    code, err = _gate(tmp_path, capsys, both, both)
    assert code == 0 and err == "", err
