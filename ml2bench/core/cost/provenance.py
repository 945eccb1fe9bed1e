"""Where and with what a result was produced: versions, threads, hardware, source identity.

The source is identified by a git commit only when the repository around the package is
ml2bench's own (its ``pyproject.toml`` names ml2bench): a copy of the package inside another
repository (an unpacked sdist, a vendored copy) would otherwise record *that* repository's
commit. Everywhere else the summary records ``git_commit = "none"`` and the package version
plus ``source_hash``, a SHA-256 over the package's ``.py`` files (paths and contents).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import torch


@functools.cache
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


PACKAGE_DIR = Path(__file__).resolve().parents[2]  # the ml2bench package


def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True).stdout.strip()


def names_ml2bench(pyproject: Path) -> bool:
    """True when ``pyproject`` is a file whose ``[project]`` table has ``name = "ml2bench"``."""
    try:
        text = pyproject.read_text()
    except OSError:
        return False
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the [project] name line is enough
        section = re.search(r"^\[project\][^\[]*", text, flags=re.M)
        return bool(section and re.search(r'^name\s*=\s*["\']ml2bench["\']\s*$', section.group(0), flags=re.M))
    try:
        return tomllib.loads(text).get("project", {}).get("name") == "ml2bench"
    except tomllib.TOMLDecodeError:
        return False


@functools.lru_cache(maxsize=4)
def git_commit(package_dir: Path = PACKAGE_DIR) -> str:
    """Commit of ml2bench's own checkout (with ``-dirty``); ``none`` when the package does not sit
    in ml2bench's repository (see module docstring), ``unknown`` when git cannot tell. Read once
    per process: the code a process runs is the code it imported (a fork server's children
    inherit the server's reading, taken when it loaded the package)."""
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], package_dir))
    except (OSError, subprocess.SubprocessError):
        return "none"  # not in a repository (or no git): nothing to name
    if not names_ml2bench(top / "pyproject.toml"):
        return "none"
    try:
        commit = _git(["rev-parse", "HEAD"], package_dir)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], package_dir)
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=4)
def source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 (first 16 hex digits) over the package's ``.py`` files, relative paths included."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def warm() -> None:
    """Read everything that does not change within a process (the fork server calls this)."""
    for package in ("ml2bench", "numpy", "pandas"):
        _version(package)
    cpu_model()
    git_commit()
    source_hash()


def collect(device: torch.device) -> dict[str, str | int]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return {
        "ml2bench_version": _version("ml2bench"),
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "numpy_version": _version("numpy"),
        "pandas_version": _version("pandas"),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "cpu_model": cpu_model(),
        "gpu_model": gpu,
        "hostname": socket.gethostname(),
        "git_commit": git_commit(),
        "source_hash": source_hash(),
    }
