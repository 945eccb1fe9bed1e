"""The claims sweep as a Snakemake workflow (dry runs; the tiny end-to-end run is in docs/claims.md)."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from test_pipeline import CONFIGS, job_counts, snakemake, sweep

pytestmark = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")


def test_claims_config_dry_run(tmp_path):
    res = snakemake(tmp_path, "-n", "--configfile", str(CONFIGS / "claims.yaml"))
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    config = yaml.safe_load((CONFIGS / "claims.yaml").read_text())
    assert counts["train"] == len(sweep.expand(config))
    assert counts["claims"] == 1 and counts["grid_cycles"] == 1 and counts["report_md"] == 1
    assert len(config["seeds"]) >= 5
    from ml2bench.analysis.claims import load_claims

    claims = load_claims(config)
    assert {c.id for c in claims} >= {"rmtr_work", "spqn_error", "schwarz_parallel_speedup", "rmtr_level_independence"}


def test_claim_on_an_unknown_problem_is_refused_before_any_job(tmp_path):
    config = yaml.safe_load((CONFIGS / "claims.yaml").read_text())
    config["claims"][0]["problems"] = ["resnet_peakz"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    res = snakemake(tmp_path, "-n", "--configfile", str(path))
    assert res.returncode != 0
    assert "resnet_peakz" in res.stderr + res.stdout


def test_default_config_has_no_claims_rule(tmp_path):
    res = snakemake(tmp_path, "-n", "--configfile", str(CONFIGS / "ci.yaml"))
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    assert "claims" not in counts and "grid_cycles" not in counts
