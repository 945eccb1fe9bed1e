"""Where and with what a result was produced: versions, threads, hardware, git commit."""
from __future__ import annotations

import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import torch


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """Commit of the ml2bench checkout (with ``-dirty``), or ``unknown`` outside a repository."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
    }
