"""Methods and problems from outside the package: a plugin file (``ml2bench run --plugin``,
``ml2bench list --plugin``, ``plugins:`` in a sweep config, ``ml2bench verify --configfile``) and an
installed distribution's entry points (group ``ml2bench.methods``). Each test writes its plugin into
a temporary folder outside the repository and runs ml2bench as a subprocess, so the test session's
own registries stay as they are."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml2bench.core.params import ConfigError
from ml2bench.core.registry import Registry, load_plugin

REPO = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent(
    '''
    """A method defined outside ml2bench: gradient descent with a fixed step."""
    from ml2bench.api import Method, Param, SmokeRun, StepResult, register_method, spec


    @register_method
    class PlainGD(Method):
        name = "plain_gd"
        description = "gradient descent with a fixed step (a plugin)"
        params = spec(Param("lr", float, 0.5, "step length", low=0.0, low_inclusive=False))
        smoke = (SmokeRun("mlp", {"iterations": 30}),)

        def step(self, batch):
            f, g = self.hierarchy.fine.loss_grad(self.x, batch)
            self.x = self.x - self.hp["lr"] * g
            return StepResult(f)
    '''
)
SMALL_MLP = ["--set", "problem.n_train=128", "--set", "problem.n_test=64", "--set", "problem.width=16"]


def ml2bench(*args: str, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(REPO), os.environ.get("PYTHONPATH"), str(extra_path) if extra_path else None]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
    env.pop("ML2BENCH_SERVER", None)
    cmd = [sys.executable, "-m", "ml2bench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture
def plugin(tmp_path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(PLUGIN)
    return path


def test_run_and_list_with_a_plugin_file(plugin, tmp_path):
    listed = ml2bench("list", "methods", "--plugin", str(plugin), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "plain_gd" in listed.stdout and "gradient descent with a fixed step (a plugin)" in listed.stdout
    out = tmp_path / "run"
    done = ml2bench(
        "run", "--plugin", "mine.py", "--problem", "mlp", "--method", "plain_gd", "--set", "budget.iterations=20",
        *SMALL_MLP, "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    s = pd.read_parquet(out / "summary.parquet").iloc[0]
    h = pd.read_parquet(out / "history.parquet")
    assert (s["method"], s["status"], s["stop_reason"]) == ("plain_gd", "budget_exhausted", "budget:iterations")
    assert s["grad_evals"] == 20 and h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]  # one charged evaluation a step


def test_a_bad_plugin_is_one_error_before_any_work(tmp_path):
    missing = ml2bench("run", "--plugin", "nope.py", "--problem", "mlp", "--method", "adam", "--out", "o", cwd=tmp_path)
    assert missing.returncode == 2 and "plugin 'nope.py': no such Python file" in missing.stderr
    (tmp_path / "broken.py").write_text("raise RuntimeError('half written')\n")
    broken = ml2bench("list", "--plugin", "broken.py", cwd=tmp_path)
    assert broken.returncode == 2 and "plugin 'broken.py' failed to load: RuntimeError: half written" in broken.stderr
    assert not (tmp_path / "o").exists()


def test_load_plugin_imports_a_file_once(tmp_path):
    path = tmp_path / "counted.py"
    path.write_text("import builtins\nbuiltins.plugin_loads = getattr(builtins, 'ml2bench_plugin_loads', 0) + 1\n")
    import builtins

    try:
        assert load_plugin(path) is load_plugin(tmp_path / "." / "counted.py")
        assert builtins.plugin_loads == 1
    finally:
        del builtins.plugin_loads
    with pytest.raises(ConfigError, match="allowed: the path of a .py file"):
        load_plugin(tmp_path)


def test_entry_point_plugins_load_at_first_lookup(plugin, tmp_path):
    """An installed distribution (here a bare .dist-info on the path) declaring the entry point
    ``plain_gd = mine:PlainGD`` in group ``ml2bench.methods``: listed and runnable without --plugin."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "mine.py").write_text(plugin.read_text())
    info = site / "ml2bench_plain_gd-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ml2bench-plain-gd\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ml2bench.methods]\nplain_gd = mine:PlainGD\n")
    listed = ml2bench("list", "methods", cwd=tmp_path, extra_path=site)
    assert listed.returncode == 0 and "plain_gd" in listed.stdout, listed.stderr
    (info / "entry_points.txt").write_text("[ml2bench.methods]\nother_name = mine:PlainGD\n")
    renamed = ml2bench("list", "methods", cwd=tmp_path, extra_path=site)
    assert renamed.returncode == 2 and "is named 'plain_gd'; allowed: the entry point's name" in renamed.stderr


def test_registry_loads_entry_points_once_and_names_the_bad_one(monkeypatch):
    class EP:
        name, value = "bad", "nowhere:Thing"

        def load(self):
            raise ImportError("No module named 'nowhere'")

    calls = []
    monkeypatch.setattr("ml2bench.core.registry.entry_points", lambda group: calls.append(group) or [EP()])
    registry = Registry("method", group="ml2bench.methods")
    with pytest.raises(ConfigError, match="method plugin 'bad' .*failed to load: ImportError"):
        registry.names()
    assert registry.names() == [] and calls == ["ml2bench.methods"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")
def test_a_sweep_with_plugins(plugin, tmp_path):
    """``plugins:`` in a sweep config: ``ml2bench verify --configfile`` and the workflow load it before
    checking names, and every job runs ``ml2bench run --plugin``."""
    config = {
        "plugins": ["mine.py"],
        "seeds": [0],
        "methods": {"plain_gd": {"params": {"lr": 0.5}}, "sgd": None},
        "sweeps": [
            {
                "id": "tiny",
                "problem": "mlp",
                "params": {"n_train": 128, "n_test": 64, "width": 16},
                "budget": {"iterations": 10},
                "target": {"quantity": "train_loss", "value": 1.0},
            }
        ],
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    verified = ml2bench("verify", "--configfile", "sweep.yaml", cwd=tmp_path)
    assert verified.returncode == 0 and "2 runs, all valid" in verified.stdout, verified.stderr
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    cmd += ["tables", "--configfile", "sweep.yaml"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = pd.read_parquet(tmp_path / "results" / "tables" / "summary.parquet")
    assert sorted(summary["method"]) == ["plain_gd", "sgd"] and set(summary["status"]) == {"budget_exhausted"}
    log = (tmp_path / "results" / "logs" / "runs" / "tiny" / "plain_gd" / "default" / "seed0.log").read_text()
    assert "plain_gd" in log
    assert ml2bench("verify", "results", "--configfile", "sweep.yaml", cwd=tmp_path).returncode == 0
