"""Runs one after another in this process: the one loop behind the quality sweep
(:mod:`ml2bench.sweep.quality`), the classification targets and sweep-time estimates
(:mod:`ml2bench.sweep.targets`) and the method benchmarks (:mod:`ml2bench.bench`).

A Snakemake sweep runs one process per job instead (``ml2bench run``, through the fork server);
these callers need many small runs and their summaries in one table, where the start-up of a
process per run would cost more than the runs. Each run goes through
:func:`ml2bench.core.runner.run` (budgets, accounting and records exactly as in a sweep).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.runner import RunResult, run


@dataclass
class Outcome:
    """One run: its raw config, the result (None when the config was refused), the wall time of
    :func:`~ml2bench.core.runner.run` (set-up included) and the refusal's first line."""

    raw: Mapping[str, Any]
    result: RunResult | None
    wall_s: float
    error: str = ""

    @property
    def summary(self) -> Any:
        """The summary row (a pandas Series) of a run that happened."""
        assert self.result is not None, self.error
        return self.result.summary.iloc[0]


def run_many(
    configs: Iterable[Mapping[str, Any]],
    *,
    threads: int | None = None,
    keep_going: bool = False,
    log: TextIO | None = None,
) -> Iterator[Outcome]:
    """Run each raw config (validated by :meth:`RunConfig.from_dict`) in turn.

    ``threads``: torch's intra-op threads for the whole loop (restored afterwards; a config's own
    ``threads`` still applies inside its run). ``keep_going``: a run refused before training (a
    ConfigError such as levels the problem lacks, or another ValueError such as missing data)
    becomes an :class:`Outcome` without result instead of raising; failures during training are
    recorded by the runner either way (status ``failed``).
    ``log``: one line per run (``problem/method/seed: status loss metric wall``)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for raw in configs:
            t0 = time.perf_counter()
            try:
                result = run(RunConfig.from_dict(raw))
            except ValueError as err:  # ConfigError, DataError: refused before training
                if not keep_going:
                    raise
                outcome = Outcome(raw, None, time.perf_counter() - t0, str(err).splitlines()[0])
            else:
                outcome = Outcome(raw, result, time.perf_counter() - t0)
            if log is not None:
                print(_line(outcome), file=log, flush=True)
            yield outcome
    finally:
        torch.set_num_threads(before)


def _line(o: Outcome) -> str:
    name = f"{o.raw.get('problem')}/{o.raw.get('method')}/seed {o.raw.get('seed', 0)}"
    if o.result is None:
        return f"  {name}: config_error {o.error}"
    s = o.summary
    return (
        f"  {name}: {s['status']:<16} loss={s['final_train_loss']:.6g} "
        f"{s['metric_name']}={s['final_test_metric']:.4g} ({o.wall_s:.2f}s)"
    )


def stderr_if(verbose: bool) -> TextIO | None:
    return sys.stderr if verbose else None
