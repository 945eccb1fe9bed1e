"""Provenance names ml2bench's own commit, never that of a repository the package was copied into."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ml2bench.core.cost import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _repo(root: Path, project: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[build-system]\nrequires = []\n\n[project]\nname = "{project}"\n')
    pkg = root / "ml2bench"
    shutil.copytree(provenance.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=root, check=True)
    return pkg


def _head(root: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_copy_inside_another_repository_records_no_commit(tmp_path):
    pkg = _repo(tmp_path / "other", "someone-elses-project")
    assert provenance.git_commit(pkg) == "none"
    # ... but its source is identified: the same files give the same hash as the original
    assert provenance.source_hash(pkg) == provenance.source_hash(provenance.PACKAGE_DIR)


def test_own_repository_records_its_commit(tmp_path):
    root = tmp_path / "clone"
    pkg = _repo(root, "ml2bench")
    assert provenance.git_commit(pkg) == _head(root)
    (pkg / "core" / "objective.py").write_text("# changed\n")
    provenance.git_commit.cache_clear()
    assert provenance.git_commit(pkg) == _head(root) + "-dirty"


def test_outside_any_repository(tmp_path):
    pkg = tmp_path / "site-packages" / "ml2bench"
    shutil.copytree(provenance.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    assert provenance.git_commit(pkg) == "none"


def test_source_hash_changes_with_any_source_file(tmp_path):
    pkg = tmp_path / "ml2bench"
    shutil.copytree(provenance.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = provenance.source_hash(pkg)
    ref = pkg / "problems" / "pinn" / "reference" / "burgers.py"
    ref.write_text(ref.read_text() + "\n# edit\n")
    provenance.source_hash.cache_clear()
    assert provenance.source_hash(pkg) != before


@pytest.mark.parametrize(
    "text,expected",
    [
        ('[project]\nname = "ml2bench"\nversion = "1"\n', True),
        ('[project]\nname = "ml2bench-fork"\n', False),
        ('[tool.x]\nname = "ml2bench"\n[project]\nname = "other"\n', False),
        ("not toml [", False),
    ],
)
def test_names_ml2bench(tmp_path, text, expected):
    (tmp_path / "pyproject.toml").write_text(text)
    assert provenance.names_ml2bench(tmp_path / "pyproject.toml") is expected
    assert provenance.names_ml2bench(tmp_path / "missing.toml") is False
