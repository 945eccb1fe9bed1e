"""Run configs: YAML files, --set overrides and validation before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

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


# --- one YAML loader: YAML 1.2 numbers, no duplicate keys (issue 24) --------------------------
@pytest.mark.parametrize("text,value", [("5e-1", 0.5), ("2e1", 20.0), ("1.0e12", 1e12), ("3E+2", 300.0)])
def test_exponent_numbers_are_floats_everywhere(tmp_path, text, value):
    """YAML 1.1 (PyYAML) reads these as strings: budgets and run options rejected them."""
    path = tmp_path / "run.yaml"
    path.write_text(f"problem: mlp\nmethod: sgd\neval_interval: {text}\nbudget: {{work_units: {text}}}\n")
    raw = load_yaml(path)
    assert raw["eval_interval"] == value and isinstance(raw["eval_interval"], float)
    cfg = RunConfig.from_dict(raw)
    assert cfg.budget["work_units"] == value and cfg.eval_interval == value
    assert apply_overrides({}, [f"budget.time_s={text}"])["budget"]["time_s"] == value


def test_integers_and_words_keep_their_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 12\nb: 0.5\nc: true\nd: null\ne: 1e\nf: abc\ng: .inf\n")
    assert load_yaml(path) == {"a": 12, "b": 0.5, "c": True, "d": None, "e": "1e", "f": "abc", "g": float("inf")}


def test_duplicate_keys_are_an_error_with_file_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("problem: mlp\nmethod_params:\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5:3: not valid YAML: .*duplicate key 'lr' \(first on line 3\)"):
        load_yaml(path)


def test_sweep_config_duplicate_keys_and_exponents(tmp_path):
    from ml2bench.sweep import jobs

    ci = (Path(jobs.DEFAULT_CONFIG).parent / "ci.yaml").read_text()
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        ci.replace("budget: {work_units: 20}", "budget: {work_units: 2e1}").replace("value: 0.5", "value: 5e-1")
    )
    (job,) = [j for j in jobs.load_jobs(exp) if j.method == "sgd" and j.seed == 0]
    (ref,) = [j for j in jobs.load_jobs(Path(jobs.DEFAULT_CONFIG).parent / "ci.yaml") if j.key == job.key]
    assert job.identity() == ref.identity()  # the same runs, the same config hashes
    dup = tmp_path / "dup.yaml"
    dup.write_text(ci.replace("seeds: [0, 1]\n", "seeds: [0, 1]\nseeds: [0]\n"))
    with pytest.raises(jobs.SweepError, match=r"dup.yaml:\d+:1: not valid YAML: .*duplicate key 'seeds'"):
        jobs.load_jobs(dup)


def _sweep_with(spec: dict) -> dict:
    return {
        "seeds": [0],
        "methods": {"sgd": spec},
        "sweeps": [{"problem": "mlp", "methods": ["sgd"], "target": {"quantity": "train_loss", "value": 1.0}}],
    }


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ({"grid": {"lr": [1e-3, 0.001]}}, "are the same point 'lr~0.001' (duplicate runs)"),
        ({"points": [{"lr": 0.05}, {}]}, "are the same run (identical hyper-parameters once defaults are filled in)"),
        ({"points": [{f"parameter_{i:02d}": 0.5 for i in range(23)}]}, "bytes, above the 255 a file system allows"),
    ],
    ids=["grid", "default", "long-name"],
)
def test_duplicate_and_over_long_points_are_config_errors(spec, fragment):
    from ml2bench.sweep import jobs

    with pytest.raises(jobs.SweepError, match=re.escape(fragment)):  # before any job: at enumeration
        jobs.expand(_sweep_with(spec))
