"""workflow/config/claims_gpu.yaml (the claims at the papers' sizes) is a valid sweep whose every run asks for
one GPU: a Snakemake dry run (no job runs), and its header states the expected device time of each entry."""

from __future__ import annotations

import importlib.util
import re

import pytest
import yaml
from test_gpu_config import REPO
from test_pipeline import job_counts, snakemake

from ml2bench.sweep import jobs as sweep

CONFIG = REPO / "workflow" / "config" / "claims_gpu.yaml"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")


def test_the_claims_at_the_papers_sizes():
    config = yaml.safe_load(CONFIG.read_text())
    jobs = sweep.expand(config)
    assert len(config["seeds"]) == 10
    for job in jobs:
        assert job.device == "cuda"
        if job.problem.startswith("pinn_"):
            assert job.problem_params["n_interior"] == 10**4 and job.problem_params["width"] == 20
    images = {j.problem_id for j in jobs if j.problem_params.get("arch") == "conv"}
    assert images == {"conv_digits", "robust_conv_digits"}
    from ml2bench.analysis.claims import load_claims

    cpu = {c.id for c in load_claims(yaml.safe_load((REPO / "workflow" / "config" / "claims.yaml").read_text()))}
    assert {c.id for c in load_claims(config)} >= cpu  # every CPU claim has its paper-size counterpart
    assert config["claims_speedup"][0]["params"]["width"] >= 128


def test_the_header_states_an_estimated_device_time_for_every_entry():
    text = CONFIG.read_text()
    header = text[: text.index("name: claims_gpu")]
    assert "ESTIMATE" in header and "python tools/device_time_estimate.py" in header
    config = yaml.safe_load(text)
    for entry in [s["id"] for s in config["sweeps"]] + [s["id"] for s in config["claims_speedup"]]:
        assert re.search(rf"^#\s+\|\s*{re.escape(entry)}\s*\|.*\|\s*\d+\s*\|\s*$", header, re.M), entry


def test_dry_run_one_gpu(tmp_path):
    res = snakemake(tmp_path, "-n", "--cores", "16", "--resources", "gpu=1", "--configfile", str(CONFIG))
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = job_counts(out)
    jobs = sweep.expand(yaml.safe_load(CONFIG.read_text()))
    assert counts["train"] == len(jobs) == 510
    assert counts["claims"] == counts["speedup"] == counts["grid_cycles"] == 1
    assert len(re.findall(r"gpu=1", out)) >= len(jobs)  # every run job asks for the GPU
    assert not (tmp_path / "results" / "runs").exists()
