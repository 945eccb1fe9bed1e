"""The code stays as its formatters and linters leave it: ruff for Python (settings in
pyproject.toml: line length 120), snakefmt for the workflow (same line length) and Snakemake's own
linter (``snakemake --lint``: a log and a conda environment per rule, short run blocks, rules and
functions in separate files). Each check is skipped, with the reason, when its tool is missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff")
SNAKEFMT = shutil.which("snakefmt")
WORKFLOW = ["Snakefile", "workflow/rules"]


@pytest.mark.skipif(RUFF is None, reason="ruff not installed: pip install -e '.[test]'")
@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(args):
    done = subprocess.run([RUFF, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(SNAKEFMT is None, reason="snakefmt not installed: pip install -e '.[test]'")
def test_snakefmt():
    done = subprocess.run([SNAKEFMT, "--check", *WORKFLOW], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")
@pytest.mark.parametrize("config", ["default", "claims"])
def test_snakemake_lint(config, tmp_path):
    """``snakemake --lint`` finds nothing (exit 1 on any lint) for the default sweep and for a config
    with claims (which adds the claims rules)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--lint"]
    cmd += ["--configfile", str(REPO / "workflow" / "config" / f"{config}.yaml")]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
