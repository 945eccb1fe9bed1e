"""workflow/config/gpu.yaml (GPU smoke sweep) is valid and asks for one GPU per run: a dry run."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "workflow" / "config" / "gpu.yaml"
from ml2bench.sweep import jobs as sweep  # noqa: E402

pytestmark = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")


def test_every_method_on_every_pinn_and_a_deep_resnet_at_paper_sizes():
    jobs = sweep.expand(yaml.safe_load(CONFIG.read_text()))
    methods = {"sgd", "adam", "lbfgs", "tr", "rmtr", "mgopt", "schwarz"}
    by_problem: dict[str, set] = {}
    for job in jobs:
        by_problem.setdefault(job.problem, set()).add(job.method)
        assert job.device == "cuda"
        assert job.budget.get("time_s") and job.budget.get("work_units")  # small budgets
        if job.problem.startswith("pinn"):
            assert (job.problem_params["width"], job.problem_params["depth"]) == (64, 8)
            assert job.problem_params["n_interior"] == 10000
        else:
            assert job.problem_params["arch"] == "conv" and job.problem_params["depth"] == 16
    assert by_problem == {
        p: methods for p in ("resnet", "pinn_poisson", "pinn_burgers", "pinn_allen_cahn", "pinn_klein_gordon")
    }


def test_dry_run_one_gpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "-n",
            "--cores",
            "4",
            "--resources",
            "gpu=1",
            "--configfile",
            str(CONFIG),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    m = re.search(r"^train\s+(\d+)$", out, re.M)
    assert m and int(m.group(1)) == 35
    assert len(re.findall(r"gpu=1", out)) >= 35  # every run job asks for the GPU
    assert not (tmp_path / "results" / "runs").exists()
