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
    assert counts["speedup"] == 1
    assert len(config["seeds"]) >= 10  # the paired rank test needs >= 6 informative seeds to reproduce anything
    from ml2bench.analysis.claims import load_claims

    claims = load_claims(config)
    assert {c.id for c in claims} >= {
        "rmtr_vs_tr",
        "mgopt_vs_smoother",
        "spqn_error",
        "schwarz_parallel_speedup",
        "rmtr_level_independence",
    }
    kinds = {c.id: c.kind for c in claims}
    assert kinds["schwarz_parallel_speedup"] == "speedup" and kinds["robust_apts"] == "robustness"


def test_claim_on_an_unknown_problem_is_refused_before_any_job(tmp_path):
    config = yaml.safe_load((CONFIGS / "claims.yaml").read_text())
    config["claims"][0]["problems"] = ["resnet_peakz"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    res = snakemake(tmp_path, "-n", "--configfile", str(path))
    assert res.returncode != 0
    assert "resnet_peakz" in res.stderr + res.stdout


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "baselines",
            ["adma", "sgd"],
            "method 'adma' is not run on 'conv_digits'; allowed: adam, mgopt, rmtr, sgd",
        ),
        (
            "metric",
            "work_unit_to_target",
            "metric = 'work_unit_to_target' is not a column of the runs table; allowed: ",
        ),
        ("method", "tr[radius0~1]", "'tr[radius0~1]' names a point; allowed: a method name"),
    ],
)
def test_a_misspelt_claim_stops_snakemake_before_any_job(tmp_path, key, value, message):
    # today a misspelt method gives a silent "inconclusive" (n = 0) and a misspelt metric fails after the sweep
    config = yaml.safe_load((CONFIGS / "claims.yaml").read_text())
    claim = next(c for c in config["claims"] if c["id"] == ("robust_tr" if key == "method" else "rmtr_vs_adam_sgd"))
    claim[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    res = snakemake(tmp_path, "-n", "--configfile", str(path))
    assert res.returncode != 0
    lines = [line for line in (res.stderr + res.stdout).splitlines() if message in line]
    assert len(lines) == 1 and lines[0].startswith("claim ")  # one line naming the value and what is allowed
    assert "Traceback" not in res.stderr and "Job stats" not in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


def test_default_config_has_no_claims_rule(tmp_path):
    res = snakemake(tmp_path, "-n", "--configfile", str(CONFIGS / "ci.yaml"))
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    assert "claims" not in counts and "grid_cycles" not in counts


def test_ml2bench_verify_refuses_a_misspelt_claim_with_exit_2(tmp_path, capsys):
    from ml2bench.sweep.verify import main

    config = yaml.safe_load((CONFIGS / "claims.yaml").read_text())
    next(c for c in config["claims"] if c["id"] == "rmtr_vs_tr")["metric"] = "final_test_metrc"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    assert main(["--configfile", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: claim 'rmtr_vs_tr': metric = 'final_test_metrc' is not a column")
    assert "allowed: " in err and "final_test_metric" in err and len(err.splitlines()) == 1
    assert main(["--configfile", str(CONFIGS / "claims.yaml")]) == 0
