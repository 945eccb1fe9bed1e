"""Methods built from Python with a partial hyper-parameter dict get the declared defaults."""

from __future__ import annotations

import pytest
import torch

from ml2bench.core.objective import WorkCounter
from ml2bench.core.params import ConfigError
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS

PARTIAL = {"sgd": {"lr": 0.1}, "schwarz": {"subdomains": 2}, "adam": {"lr": 0.01}, "tr": {"qn": "lbfgs"}}


@pytest.fixture(scope="module")
def problem():
    cls = PROBLEMS.get("resnet")
    hp = cls.params.validate({"n_train": 32, "n_test": 16, "width": 4, "depth": 4}, "problem 'resnet'")
    return cls(hp, seed=0, device=torch.device("cpu"), dtype=torch.float32)


@pytest.mark.parametrize("name", METHODS.names())
def test_partial_dict_gets_the_defaults(problem, name):
    """Was: KeyError for sgd (nesterov) and schwarz (decomposition); the others validated."""
    cls = METHODS.get(name)
    given = PARTIAL.get(name, {})
    full = cls.params.validate(given, f"method {name!r}")
    losses = []
    for hp in (given, full):
        torch.manual_seed(0)  # the same initial network for both
        h = problem.hierarchy(cls.levels_required(full), WorkCounter())
        method = cls(h, h.fine.initial_x(), hp)
        assert method.hp == full
        batch = next(iter(problem.train_batches(16, torch.Generator().manual_seed(0))))
        losses.append(method.step(batch).loss)
        method.close()
    assert losses[0] == losses[1]  # the partial dict means exactly the defaults


def test_a_bad_value_from_python_is_a_config_error(problem):
    h = problem.hierarchy(1, WorkCounter())
    with pytest.raises(ConfigError, match=r"method 'sgd': unknown parameter\(s\) 'lrr'"):
        METHODS.get("sgd")(h, h.fine.initial_x(), {"lrr": 0.1})
