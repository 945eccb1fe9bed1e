"""workflow/config/default.yaml and claims.yaml: valid, and every target means "solved" by a stated
rule, chosen on nothing an evaluation run is judged on.

PINN targets: relative L2 error <= 5e-2 (Allen-Cahn <= 0.1), issue 11. Classification targets: on
the validation accuracy, the rule of ml2bench/sweep/targets.py applied to the measured best
validation accuracies each config records (`_measured_best`, from `python -m ml2bench.targets
CONFIG`), measured on a calibration seed that is none of the evaluation seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml2bench.core.params import ConfigError
from ml2bench.problems import PROBLEMS
from ml2bench.sweep.targets import (
    RULE,
    check_calibration_seed,
    config_rule,
    rule_target,
    sweep_estimate,
    targets_by_rule,
)

REPO = Path(__file__).resolve().parents[1]
from ml2bench.sweep import jobs as sweep  # noqa: E402

PINN_SOLVED = {"pinn_allen_cahn": 0.1}  # default: 5e-2
MOVED_TO_PAPER = ("pinn_allen_cahn", "pinn_klein_gordon")


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / "workflow" / "config" / name).read_text())


@pytest.fixture(scope="module")
def config():
    return _load("default.yaml")


def test_default_config_validates(config):
    sweep.validate_schema(config)
    jobs = sweep.expand(config)
    assert jobs and all(j.resolved for j in jobs)


@pytest.mark.parametrize("name", ["default.yaml", "claims.yaml"])
def test_every_target_means_solved(name):
    config = _load(name)
    rule = config_rule(config)
    assert set(config["_target_rule"]) == set(RULE)
    check_calibration_seed(config, int(rule["seed"]))  # calibration is no evaluation seed
    measured = config["_measured_best"]
    kinds = set()
    classification = set()
    for entry in config["sweeps"]:
        pid, target = entry.get("id") or entry["problem"], entry["target"]
        if PROBLEMS.get(entry["problem"]).selection_quantity == "val_metric":  # classification accuracy
            kinds.add("classification")
            classification.add(pid)
            assert target["quantity"] == "val_metric" and target["direction"] == "above", pid
            best = measured[pid]["best"]
            assert 0.0 < best <= 1.0 and measured[pid]["by"], pid
            assert target["value"] == rule_target(best, rule["margin"], rule["step"]), pid
        else:  # PINN relative L2 error (the reported metric; no validation split)
            kinds.add("pinn")
            assert target["quantity"] == "test_metric", pid
            assert target.get("direction", "below") == "below"
            assert target["value"] <= PINN_SOLVED.get(entry["problem"], 5e-2), pid
    assert kinds == {"classification", "pinn"}
    assert set(measured) == classification


def test_a_calibration_seed_among_the_evaluation_seeds_is_refused(config):
    with pytest.raises(ConfigError, match=r"calibration seed 1 is an evaluation seed of sweep 'mlp'"):
        check_calibration_seed(config, 1)
    with pytest.raises(ConfigError, match=r"_target_rule: unknown keys \['rounding'\]"):
        config_rule({"_target_rule": {"rounding": 0.01}})


def test_a_target_on_a_test_column_is_refused_where_a_validation_split_exists(config):
    cfg = _load("default.yaml")
    cfg["sweeps"][0]["target"] = {"quantity": "test_metric", "value": 0.9}
    with pytest.raises(sweep.SweepError, match=r"'test_metric' is a test column.*allowed: train_loss, val_loss"):
        sweep.expand(cfg)


def test_unsolvable_pinns_are_in_the_paper_config(config):
    in_default = {e["problem"] for e in config["sweeps"]}
    paper = yaml.safe_load((REPO / "workflow" / "config" / "paper.yaml").read_text())
    in_paper = {e["problem"] for e in paper["sweeps"]}
    for problem in MOVED_TO_PAPER:
        assert problem not in in_default and problem in in_paper


def test_burgers_is_in_the_papers_formulation_and_stops_at_its_target(config):
    """Burgers is back in the default sweep (issue 21): hard constraints (the authors' lifting), 10^4
    collocation points, target rel. L2 5e-2; its runs stop at the target, so solved seeds cost only
    their work to it."""
    (entry,) = [e for e in config["sweeps"] if e["problem"] == "pinn_burgers"]
    assert entry["params"]["constraints"] == "hard" and entry["params"]["n_interior"] >= 10_000
    assert entry["target"] == {"quantity": "test_metric", "value": 0.05, "direction": "below"}
    assert entry["stop_at_target"] is True
    jobs = [j for j in sweep.expand(config) if j.problem == "pinn_burgers"]
    assert jobs and all(j.target == entry["target"] for j in jobs)


def test_rule_target_rounds_down_after_the_margin():
    assert rule_target(0.984444) == 0.96
    assert rule_target(0.99) == 0.97  # exact: no float round-off below 0.97
    assert rule_target(0.9) == 0.88
    assert rule_target(0.966, margin=0.05) == 0.91
    assert rule_target(0.966, margin=0.05, step=0.05) == 0.9
    assert rule_target(1.0, margin=0.05, step=0.05) == 0.95


def test_targets_and_estimate_from_runs():
    import pandas as pd

    runs = pd.DataFrame(
        [
            {
                "problem_id": "a",
                "method": "sgd",
                "point": "lr~0.1",
                "best_val_metric": 0.95,
                "wall_s": 2.0,
                "train_time_s": 1.5,
            },
            {
                "problem_id": "a",
                "method": "tr",
                "point": "default",
                "best_val_metric": 0.975,
                "wall_s": 1.0,
                "train_time_s": 0.5,
            },
            {
                "problem_id": "b",
                "method": "adam",
                "point": "default",
                "best_val_metric": 0.5,
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
                "target": {"quantity": "val_metric", "value": 0.5},
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
    runs = run_jobs(path, seed=RULE["seed"], factor=2.0, classification_only=True)
    assert list(runs["problem_id"].unique()) == ["mlp_tiny"]
    assert sorted(runs["method"] + "/" + runs["point"]) == ["sgd/lr~0.02", "sgd/lr~0.1", "tr/default"]
    assert runs["work_units"].between(3.9, 4.0).all()  # 2 x budget, never more
    assert main([str(path), "--factor", "2"]) == 0  # the calibration seed: RULE's
    out = capsys.readouterr().out
    best = runs["best_val_metric"].max()
    assert float(out.splitlines()[-1].split()[-1]) == rule_target(best)  # the target column
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert main([str(path), "--seed", "1"]) == 2  # an evaluation seed cannot calibrate


def test_calibration_runs_ignore_stop_at_target(tmp_path):
    """The rule's long runs measure the best value reachable, so an entry's stop_at_target must not stop
    them at the current target (each recalibration would then lower it by the margin)."""
    from ml2bench.sweep.targets import run_jobs

    cfg = {
        "name": "tiny",
        "seeds": [0],
        "run": {"threads": 1, "eval_interval": 1.0},
        "methods": {"tr": {}},
        "sweeps": [
            {
                "id": "mlp_tiny",
                "problem": "mlp",
                "params": {"dataset": "digits", "width": 8, "depth": 1},
                "budget": {"work_units": 2},
                "stop_at_target": True,  # met by the initial network: a run with it would stop at 0 work units
                "target": {"quantity": "val_metric", "value": 0.01},
            }
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert all(j.target for j in sweep.expand(cfg))
    runs = run_jobs(path, seed=RULE["seed"], factor=2.0, classification_only=True)
    assert runs["work_units"].between(3.9, 4.0).all()
