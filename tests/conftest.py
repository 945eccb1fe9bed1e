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
