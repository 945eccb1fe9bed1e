"""workflow/config/default.yaml: valid, and every target means "solved" by a stated rule.

PINN targets: relative L2 error <= 5e-2 (Allen-Cahn <= 0.1), issue 11. Classification targets: the
rule of ml2bench/sweep/targets.py applied to the measured best accuracies the config records
(`_measured_best`, from `python -m ml2bench.sweep.targets workflow/config/default.yaml`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml2bench.problems import PROBLEMS
from ml2bench.sweep.targets import RULE, rule_target, sweep_estimate, targets_by_rule

REPO = Path(__file__).resolve().parents[1]
from ml2bench.sweep import jobs as sweep  # noqa: E402

PINN_SOLVED = {"pinn_allen_cahn": 0.1}  # default: 5e-2
MOVED_TO_PAPER = ("pinn_burgers", "pinn_allen_cahn", "pinn_klein_gordon")


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((REPO / "workflow" / "config" / "default.yaml").read_text())


def test_default_config_validates(config):
    sweep.validate_schema(config)
    jobs = sweep.expand(config)
    assert jobs and all(j.resolved for j in jobs)


def test_every_target_means_solved(config):
    rule = config["_target_rule"]
    assert (rule["factor"], rule["seed"], rule["margin"]) == (RULE["factor"], RULE["seed"], RULE["margin"])
    measured = config["_measured_best"]
    kinds = set()
    for entry in config["sweeps"]:
        pid, target = entry.get("id") or entry["problem"], entry["target"]
        assert target["quantity"] == "test_metric", pid
        if PROBLEMS.get(entry["problem"]).metric_higher_is_better:  # classification accuracy
            kinds.add("classification")
            assert target["direction"] == "above"
            best = measured[pid]["best"]
            assert 0.0 < best <= 1.0 and measured[pid]["by"], pid
            assert target["value"] == rule_target(best, rule["margin"]), pid
        else:  # PINN relative L2 error
            kinds.add("pinn")
            assert target.get("direction", "below") == "below"
            assert target["value"] <= PINN_SOLVED.get(entry["problem"], 5e-2), pid
    assert kinds == {"classification", "pinn"}
    assert set(measured) == {e["id"] for e in config["sweeps"] if PROBLEMS.get(e["problem"]).metric_higher_is_better}


def test_unsolvable_pinns_are_in_the_paper_config(config):
    in_default = {e["problem"] for e in config["sweeps"]}
    paper = yaml.safe_load((REPO / "workflow" / "config" / "paper.yaml").read_text())
    in_paper = {e["problem"] for e in paper["sweeps"]}
    for problem in MOVED_TO_PAPER:
        assert problem not in in_default and problem in in_paper


def test_rule_target_rounds_down_after_the_margin():
    assert rule_target(0.984444) == 0.96
    assert rule_target(0.99) == 0.97  # exact: no float round-off below 0.97
    assert rule_target(0.9) == 0.88
    assert rule_target(0.966, margin=0.05) == 0.91


def test_targets_and_estimate_from_runs():
    import pandas as pd

    runs = pd.DataFrame(
        [
            {
                "problem_id": "a",
                "method": "sgd",
                "point": "lr~0.1",
                "best_test_metric": 0.95,
                "wall_s": 2.0,
                "train_time_s": 1.5,
            },
            {
                "problem_id": "a",
                "method": "tr",
                "point": "default",
                "best_test_metric": 0.975,
                "wall_s": 1.0,
                "train_time_s": 0.5,
            },
            {
                "problem_id": "b",
                "method": "adam",
                "point": "default",
                "best_test_metric": 0.5,
                "wall_s": 4.0,
                "train_time_s": 3.0,
            },
        ]
    )
    t = targets_by_rule(runs).set_index("problem_id")
    assert t.loc["a", "best_by"] == "tr[default]" and t.loc["a", "target"] == 0.95
    assert t.loc["b", "target"] == 0.48
    est = sweep_estimate(runs, n_seeds=3, cores=2).set_index("problem_id")
    assert est.loc["a", "serial_all_seeds_s"] == 9.0 and est.loc["a", "on_cores_s"] == 4.5


def test_rule_runs_only_classification_entries_at_factor_times_the_budget(tmp_path, capsys):
    """The command end to end on a tiny config: long runs = factor x budget, PINN entries skipped."""
    from ml2bench.sweep.targets import main, run_jobs

    cfg = {
        "name": "tiny",
        "seeds": [0, 1],
        "run": {"threads": 1, "eval_interval": 1.0},
        "methods": {"sgd": {"params": {"momentum": 0.9}, "grid": {"lr": [0.02, 0.1]}}, "tr": {}},
        "sweeps": [
            {
                "id": "mlp_tiny",
                "problem": "mlp",
                "params": {"dataset": "digits", "width": 8, "depth": 1},
                "budget": {"work_units": 2},
                "target": {"quantity": "test_metric", "value": 0.5},
            },
            {
                "id": "poisson_tiny",
                "problem": "pinn_poisson",
                "params": {"width": 4, "depth": 2, "n_interior": 16, "n_boundary": 8, "n_test": 5},
                "budget": {"work_units": 2},
                "target": {"quantity": "test_metric", "value": 0.05},
            },
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runs = run_jobs(path, seed=0, factor=2.0, classification_only=True)
    assert list(runs["problem_id"].unique()) == ["mlp_tiny"]
    assert sorted(runs["method"] + "/" + runs["point"]) == ["sgd/lr~0.02", "sgd/lr~0.1", "tr/default"]
    assert (runs["work_units"] >= 4.0).all() and (runs["work_units"] < 5.0).all()  # 2 x budget
    assert main([str(path), "--factor", "2"]) == 0
    out = capsys.readouterr().out
    best = runs["best_test_metric"].max()
    assert float(out.splitlines()[-1].split()[-1]) == rule_target(best)  # the target column
    assert main([str(tmp_path / "missing.yaml")]) == 2
