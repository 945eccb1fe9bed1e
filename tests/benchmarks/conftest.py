"""Speed benchmarks (pytest-benchmark): not part of the default ``pytest`` run.

They are collected only when asked for, so ``python -m pytest`` from the repo root stays fast:

* ``--benchmark-only`` on the command line, or
* an explicit path inside ``tests/benchmarks`` (``pytest tests/benchmarks``), or
* ``ML2BENCH_BENCHMARKS=1`` in the environment.

Run them with ``tests/benchmarks/run.sh`` (saves/compares against the committed baseline in
``.benchmarks-baseline/``); see ``tests/benchmarks/README.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def _enabled(config: pytest.Config) -> bool:
    if os.environ.get("ML2BENCH_BENCHMARKS", "") not in ("", "0"):
        return True
    if config.getoption("benchmark_only", default=False):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config):
    if HERE in collection_path.parents and not _enabled(config):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.benchmark_suite)


@pytest.fixture(autouse=True)
def _bench_one_thread():
    """Benchmarks run on one intra-op thread: stable on shared 2-core machines, comparable across them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
