"""Classification problems hold out a validation split of the training data (docs/protocol.md):
sizes as problem parameters, drawn by its own seeded stream, recorded at every evaluation point."""

from __future__ import annotations

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.params import ConfigError
from ml2bench.core.runner import derive_seeds, run
from ml2bench.data import load_digits
from ml2bench.problems import PROBLEMS


def _problem(name="mlp", seed=0, **hp):
    cls = PROBLEMS.get(name)
    return cls(cls.params.validate(hp, "p"), seed=seed, device=torch.device("cpu"), dtype=torch.float32)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(x.shape[0], -1)}


def test_digits_split_sizes_disjoint_and_drawn_from_the_training_data():
    p = _problem(n_train=500, n_val=150, n_test=100)
    assert (p.n_train, p.x_val.shape[0], p.x_test.shape[0]) == (500, 150, 100)
    pool = _rows(load_digits(0).x_train)
    train, val, test = _rows(p.x_train), _rows(p.x_val), _rows(p.x_test)
    assert val <= pool and train <= pool  # both from the training data (digits has no duplicate images here)
    assert not (val & train) and not (val & test) and not (train & test)
    # all training data but the validation samples when n_train is null
    full = _problem(n_val=150)
    assert full.n_train == len(pool) - 150 and _rows(full.x_val) == val


def test_the_draw_is_seeded_by_the_data_seed_only():
    a, b, c = _problem(seed=0, n_val=100), _problem(seed=0, n_val=100), _problem(seed=1, n_val=100)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_val, c.x_val)
    # the run's data seed (not its init or order seed) is what the problem gets
    cfg = {"problem": "mlp", "method": "sgd", "seed": 3, "problem_params": {"n_train": 64, "n_val": 50, "n_test": 50}}
    seeds = derive_seeds(3)
    direct = _problem(seed=seeds["data"], n_train=64, n_val=50, n_test=50)
    h = run(RunConfig.from_dict({**cfg, "budget": {"iterations": 1}})).history
    with torch.no_grad():
        assert h["val_metric"].iloc[0] == pytest.approx(
            float(_initial_accuracy(direct, seeds["init"], direct.x_val, direct.y_val)), abs=1e-7
        )


def _initial_accuracy(problem, init_seed, x, y):
    torch.manual_seed(init_seed)
    model = problem.build_model(0)
    return (model(x).argmax(dim=1) == y).float().mean()


def test_synthetic_sets_generate_the_validation_samples_with_the_training_data():
    p = _problem("resnet", dataset="ellipses", arch="dense", width=4, depth=2, n_train=300, n_val=120, n_test=200)
    assert (p.n_train, p.x_val.shape[0], p.x_test.shape[0]) == (300, 120, 200)
    assert not (_rows(p.x_val) & _rows(p.x_train))  # continuous points: no duplicates by chance
    assert 40 < int(p.y_val.sum()) < 80  # a random draw of a balanced 2-class set


def test_too_many_samples_name_both_sizes():
    too_many = r"n_train = 1300 and n_val = 200: .* 1347 .* allowed: n_train \+ n_val <= 1347"
    with pytest.raises(ConfigError, match=too_many):
        _problem(n_train=1300, n_val=200)
    with pytest.raises(ConfigError, match="n_val"):
        _problem(n_val=0)


def test_runs_record_validation_beside_test():
    res = run(
        RunConfig.from_dict(
            {
                "problem": "mlp",
                "method": "adam",
                "seed": 0,
                "problem_params": {"n_train": 256, "n_val": 100, "n_test": 128, "width": 16},
                "budget": {"epochs": 2},
            }
        )
    )
    h, s = res.history, res.summary.iloc[0]
    assert h["val_metric"].notna().all() and h["val_loss"].notna().all()
    assert s["final_val_metric"] == h["val_metric"].iloc[-1] and s["best_val_metric"] == h["val_metric"].max()
    assert s["selection_quantity"] == "val_metric"
    # a PINN has no validation split: it chooses on the training loss, and its val columns are NaN
    pinn = run(
        RunConfig.from_dict(
            {
                "problem": "pinn_poisson",
                "method": "adam",
                "seed": 0,
                "problem_params": {"width": 4, "depth": 2, "n_interior": 16, "n_boundary": 8, "n_test": 5},
                "budget": {"iterations": 2},
            }
        )
    )
    assert pinn.summary["selection_quantity"].iloc[0] == "train_loss" and pinn.history["val_metric"].isna().all()
