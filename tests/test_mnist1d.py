"""MNIST-1D (dataset ``mnist1d``): generated offline from the optional ``mnist1d`` package's
templates, seeded by the data seed; and the 1-D convolutional ODE-ResNet that trains on it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import WorkCounter
from ml2bench.core.runner import run
from ml2bench.data import DataError, load_dataset
from ml2bench.data.mnist1d import _generate
from ml2bench.problems import PROBLEMS

mnist1d = pytest.importorskip("mnist1d")


@pytest.fixture
def no_network(monkeypatch):
    """Any HTTP request fails the test: the data set is generated, never downloaded."""
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError(f"mnist1d tried to reach the network: {args}")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)


def test_generated_offline_with_the_published_shapes_and_balanced_classes(no_network):
    ds = load_dataset("mnist1d", None, seed=3)
    assert ds.name == "mnist1d" and ds.num_classes == 10 and ds.input_shape == (1, 40)
    assert ds.x_train.shape == (4000, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_test]), minlength=10)
    assert counts.tolist() == [500] * 10  # make_dataset: num_samples // 10 per class
    assert bool(torch.isfinite(ds.x_train).all())
    # the package standardises the whole set (train and test together) to mean 0, std 1
    both = torch.cat([ds.x_train, ds.x_test])
    assert abs(float(both.mean())) < 1e-4 and abs(float(both.std()) - 1.0) < 1e-3


def test_same_seed_same_data_other_seed_other_data_and_global_state_untouched(no_network):
    np.random.seed(123)
    random.seed(123)
    before = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    a1 = _generate(7)  # uncached: the generator itself
    after = np.random.random(), random.random()
    assert before == after  # NumPy's and Python's global random streams are restored
    a2, b = _generate(7), _generate(8)
    for x, y in zip(a1, a2):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a1[0], b[0])


def test_missing_package_is_a_clear_error(monkeypatch):
    import sys

    from ml2bench.data.mnist1d import load_mnist1d

    monkeypatch.setitem(sys.modules, "mnist1d", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r"pip install 'ml2bench\[mnist1d\]'"):
        load_mnist1d(0)


def test_conv_resnet_on_signals_halves_its_cost_per_level_and_trains():
    cls = PROBLEMS.get("resnet")
    hp = cls.params.validate({"dataset": "mnist1d", "arch": "conv", "width": 8, "depth": 8, "n_train": 256}, "resnet")
    problem = cls(hp, seed=0, device=torch.device("cpu"), dtype=torch.float32)
    net = problem.build_model(0)
    assert isinstance(net.opening, torch.nn.Conv1d)
    ratios = [o.cost_ratio for o in problem.hierarchy(4, WorkCounter()).objectives]
    for above, below in zip(ratios, ratios[1:]):
        assert 0.45 <= below / above <= 0.55
    cfg = RunConfig.from_dict(
        {
            "problem": "resnet",
            "method": "adam",
            "seed": 0,
            "problem_params": {"dataset": "mnist1d", "arch": "conv", "width": 8, "depth": 4, "n_train": 1000},
            "method_params": {"lr": 0.01},
            "budget": {"epochs": 8},
        }
    )
    result = run(cfg)
    assert result.status == "budget_exhausted", result.summary["error"].iloc[0]
    hist = result.history
    assert hist["train_loss"].iloc[-1] < 0.9 * hist["train_loss"].iloc[0]
    assert hist["val_metric"].iloc[-1] > 0.18  # chance is 0.1 (measured 0.225)
    assert len(json.loads(result.summary["level_cost_ratios"].iloc[0])) == 1
