"""Shared fixtures: small, fast configurations of the embedded problems."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """The test session (and the runs it starts) use a fresh on-disk cache, not the user's."""
    os.environ.setdefault("ML2BENCH_CACHE", tempfile.mkdtemp(prefix="ml2bench-test-cache-"))


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tests' tensors are small, and two threads on a busy 2-core
    machine were measured up to 10x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_mlp() -> dict:
    """A run config of the mlp problem on a digits subset that trains in well under a second."""
    return {
        "problem": "mlp",
        "method": "adam",
        "seed": 0,
        "problem_params": {"n_train": 256, "n_test": 128, "width": 16},
        "budget": {"epochs": 3},
    }


@pytest.fixture(scope="session")
def tiny_run() -> list[str]:
    """``ml2bench run`` arguments (without ``--out``) of an mlp/sgd run of one step on 100 digits."""
    return [
        "run",
        "--problem",
        "mlp",
        "--method",
        "sgd",
        "--set",
        "problem.width=8",
        "--set",
        "problem.n_train=100",
        "--set",
        "problem.n_test=50",
        "--set",
        "budget.iterations=1",
        "--quiet",
    ]


@pytest.fixture(scope="session")
def tiny_sweep():
    """A factory of sweep configs of one tiny mlp entry (digits subset, a few seconds per run):
    ``tiny_sweep(seeds=(0, 1), methods=("sgd",), budget={"iterations": 2}, target=2.2)``."""

    def make(seeds=(0,), methods=("sgd", "adam"), budget=None, target=2.0) -> dict:
        return {
            "name": "tiny",
            "seeds": list(seeds),
            "run": {"device": "cpu", "threads": 1, "eval_interval": 0.5},
            "methods": {"sgd": {"params": {"lr": 0.1}}, "adam": {"params": {"lr": 0.01}}},
            "sweeps": [
                {
                    "id": "mlp_tiny",
                    "problem": "mlp",
                    "params": {"width": 8, "depth": 1, "n_train": 200, "n_test": 100},
                    "budget": dict(budget or {"work_units": 1}),
                    "methods": list(methods),
                    "target": {"quantity": "train_loss", "value": target},
                }
            ],
        }

    return make


@pytest.fixture(scope="session")
def smoke_results():
    """Every registered method's smoke runs (one row per run and seed, :func:`ml2bench.sweep.quality.run_sweep`),
    run once per session: the contract tests check that they learn, the quality test compares them."""
    from ml2bench.sweep import quality

    return quality.run_sweep(quality.sweep())
