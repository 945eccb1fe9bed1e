"""The package works installed, outside a checkout: a non-editable install into a fresh virtual
environment, then, from a folder that holds nothing of the repository, the commands a user of the
wheel runs: ``ml2bench verify --configfile`` (the schema is package data), ``python -m
ml2bench.targets --help``, ``ml2bench quality`` (its reference is package data) and ``ml2bench run``.

The venv sees the system's site-packages (torch and friends are not installed again, and nothing
is downloaded: ``--no-deps --no-build-isolation``); the test checks that ``import ml2bench`` in it
loads the installed copy and not the checkout (an editable install elsewhere, or PYTHONPATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"  # a copy: building in the checkout would leave build/ and *.egg-info there
    shutil.copytree(REPO / "ml2bench", source / "ml2bench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    env_dir = root / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ML2BENCH_SERVER", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    work = root / "elsewhere"
    work.mkdir()
    return {"python": str(python), "env": env, "cwd": work, "site": env_dir}


def call(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), capture_output=True, text=True, env=installed["env"], cwd=installed["cwd"], timeout=600
    )


def test_the_venv_imports_the_installed_copy(installed):
    done = call(installed, installed["python"], "-c", "import ml2bench; print(ml2bench.__file__)")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert installed["site"] in path.parents and REPO not in path.parents, path
    assert shutil.which("ml2bench", path=installed["env"]["PATH"]).startswith(str(installed["site"]))


def test_verify_targets_quality_and_run_outside_the_checkout(installed):
    config = installed["cwd"] / "sweep.yaml"
    shutil.copy(REPO / "workflow" / "config" / "ci.yaml", config)
    verified = call(installed, "ml2bench", "verify", "--configfile", "sweep.yaml")
    assert verified.returncode == 0 and "10 runs, all valid" in verified.stdout, verified.stderr
    targets = call(installed, installed["python"], "-m", "ml2bench.targets", "--help")
    assert targets.returncode == 0 and "--estimate" in targets.stdout, targets.stderr
    quality = call(installed, "ml2bench", "quality", "--quiet")
    assert quality.returncode == 0 and "quality: all runs match the reference" in quality.stdout, quality.stderr
    out = installed["cwd"] / "run"
    args = ["--problem", "mlp", "--method", "adam", "--set", "budget.epochs=1", "--set", "problem.n_train=128"]
    ran = call(installed, "ml2bench", "run", *args, "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    assert pd.read_parquet(out / "summary.parquet")["status"].iloc[0] == "budget_exhausted"
