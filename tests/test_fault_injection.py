"""A whole sweep under faults (tools/fault_injection.py): a corrupt cache entry, a full disk at a
random write, kill -9 at a random moment, deleted tables and figures — after the documented
recovery the tables equal those of an uninterrupted sweep apart from times.

Four runs (two methods x two seeds) keep it to a few CPU-minutes; ``ML2BENCH_FAULT_SEED`` picks
another draw of the failing write and the kill moment (``python tools/fault_injection.py``
runs the CI sweep with a random one).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fault_injection", REPO / "tools" / "fault_injection.py")
fault_injection = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fault_injection)


@pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")
def test_faults_then_the_documented_recovery_give_the_uninterrupted_tables(tmp_path, tiny_sweep):
    config = tmp_path / "faults.yaml"
    config.write_text(yaml.safe_dump(tiny_sweep(seeds=(0, 1), budget={"work_units": 2}, target=2.2)))
    seed = int(os.environ.get("ML2BENCH_FAULT_SEED", "24"))
    fault_injection.scenario(config, tmp_path / "sweeps", seed)
