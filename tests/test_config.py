"""Run configs: YAML files, --set overrides and validation before anything runs."""

from __future__ import annotations

import pytest

from ml2bench.core.config import RunConfig, apply_overrides, load_yaml
from ml2bench.core.params import ConfigError


def test_resolves_defaults(small_mlp):
    cfg = RunConfig.from_dict(small_mlp)
    assert cfg.method_params["lr"] == 1e-3 and cfg.problem_params["dataset"] == "digits"
    assert cfg.budget["epochs"] == 3 and cfg.budget["work_units"] is None


def test_default_budget_comes_from_problem():
    cfg = RunConfig.from_dict({"problem": "mlp", "method": "sgd"})
    assert cfg.budget["epochs"] == 20.0


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"problem": "mpl", "method": "sgd"}, "unknown problem 'mpl'; allowed: "),
        ({"problem": "mlp", "method": "sgdd"}, "unknown method 'sgdd'; allowed: "),
        ({"method": "sgd"}, "'problem' is required"),
        ({"problem": "mlp", "method": "sgd", "sed": 1}, "unknown parameter(s) 'sed'"),
        ({"problem": "mlp", "method": "sgd", "budget": {"epoch": 1}}, "budget: unknown parameter(s) 'epoch'"),
        ({"problem": "mlp", "method": "sgd", "budget": {"epochs": -1}}, "budget: parameter 'epochs' = -1.0 is out"),
        ({"problem": "mlp", "method": "sgd", "method_params": {"lr": -1}}, "method 'sgd': parameter 'lr'"),
        ({"problem": "mlp", "method": "sgd", "problem_params": {"width": 0}}, "problem 'mlp': parameter 'width'"),
        ({"problem": "mlp", "method": "sgd", "method_params": [1]}, "'method_params' must be a mapping"),
        ({"problem": "mlp", "method": "sgd", "device": "tpu"}, "parameter 'device' = 'tpu' is not allowed"),
    ],
)
def test_bad_configs_fail_with_named_key(raw, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    assert fragment in str(err.value)


def test_overrides_parse_yaml_scalars():
    raw = apply_overrides(
        {"problem": "mlp"},
        ["method=sgd", "method.lr=1e-2", "budget.epochs=2", "problem.n_train=null", "method.nesterov=true"],
    )
    cfg = RunConfig.from_dict(raw)
    assert cfg.method_params["lr"] == 0.01 and cfg.method_params["nesterov"] is True
    assert cfg.budget["epochs"] == 2.0 and cfg.problem_params["n_train"] is None
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["method.lr"])
    with pytest.raises(ConfigError, match="key must be"):
        apply_overrides({}, ["a.b.c=1"])


def test_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("problem: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_yaml(lst)


def test_hash_is_stable_and_sensitive(small_mlp):
    a, b = RunConfig.from_dict(small_mlp), RunConfig.from_dict(small_mlp)
    assert a.hash() == b.hash()
    small_mlp["seed"] = 1
    assert RunConfig.from_dict(small_mlp).hash() != a.hash()
