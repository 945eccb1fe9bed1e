"""What a claim is, checked when a sweep config is loaded (``claims:`` in the config; the workflow,
``ml2bench verify --configfile`` and :func:`ml2bench.sweep.jobs.load_jobs` check it before any job):
its keys, direction, threshold, table and metric, and that its problems, methods and points are
runs of the sweep or ``claims_grid`` entries. The verdicts are :mod:`ml2bench.analysis.claims`'s.

Kept in the sweep layer, next to the sweep config it validates: the analysis reads tables, the
sweep reads configs (docs/ARCHITECTURE.md, layers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml2bench.core.params import ConfigError
from ml2bench.core.records import BENCH_COLUMNS, SUMMARY_MEASURES, TIME_TO_TARGET_COLUMNS
from ml2bench.sweep.grid_cycles import MEASURES as GRID_MEASURES
from ml2bench.sweep.grid_cycles import grid_points

DIRECTIONS = ("lower", "higher")
TO_TARGET = tuple(TIME_TO_TARGET_COLUMNS.values())  # costs to a target: +inf = not reached
METRICS = {  # table -> the columns a claim may name as its metric
    "runs": (*SUMMARY_MEASURES, *TO_TARGET, *BENCH_COLUMNS.values()),
    "grid_cycles": GRID_MEASURES,
}
TABLES = tuple(METRICS)


@dataclass(frozen=True)
class Claim:
    """One claim of a paper: ``method`` beats every baseline on every problem in ``metric``."""

    id: str
    statement: str
    source: str
    problems: tuple[str, ...]
    method: str
    baselines: tuple[str, ...]
    metric: str
    direction: str
    threshold: float = 1.0
    table: str = "runs"
    notes: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        allowed = {
            "id",
            "statement",
            "source",
            "problems",
            "method",
            "baselines",
            "metric",
            "direction",
            "threshold",
            "table",
            "notes",
        }
        unknown = set(d) - allowed
        where = f"claim {d.get('id', '?')!r}"
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
        missing = {"id", "statement", "source", "problems", "method", "baselines", "metric", "direction"} - set(d)
        if missing:
            raise ConfigError(f"{where}: missing keys {sorted(missing)}")
        if d["direction"] not in DIRECTIONS:
            raise ConfigError(f"{where}: direction = {d['direction']!r}; allowed: {', '.join(DIRECTIONS)}")
        problems, baselines = d["problems"], d["baselines"]
        if isinstance(problems, str) or isinstance(baselines, str) or not problems or not baselines:
            raise ConfigError(f"{where}: problems and baselines must be non-empty lists")
        threshold = float(d.get("threshold", 1.0))
        if not (threshold > 0 and math.isfinite(threshold)):
            raise ConfigError(f"{where}: threshold = {threshold}; allowed: a finite number > 0")
        table = d.get("table", "runs")
        if table not in TABLES:
            raise ConfigError(f"{where}: table = {table!r}; allowed: {', '.join(TABLES)}")
        if d["metric"] not in METRICS[table]:
            raise ConfigError(
                f"{where}: metric = {d['metric']!r} is not a column of the {table} table; "
                f"allowed: {', '.join(METRICS[table])}"
            )
        for name in (d["method"], *baselines):
            parse_solver(str(name), where)
        return cls(
            id=str(d["id"]),
            statement=str(d["statement"]),
            source=str(d["source"]),
            problems=tuple(problems),
            method=str(d["method"]),
            baselines=tuple(str(b) for b in baselines),
            metric=str(d["metric"]),
            direction=str(d["direction"]),
            threshold=threshold,
            table=str(table),
            notes=str(d.get("notes", "")),
        )


def parse_solver(name: str, where: str = "claim") -> tuple[str, str | None]:
    """``method`` or ``method[point]`` -> (method, point or None)."""
    if "[" not in name and "]" not in name:
        return name, None
    method, sep, rest = name.partition("[")
    if not (method and sep and rest.endswith("]") and len(rest) > 1 and "[" not in rest[:-1]):
        raise ConfigError(f"{where}: {name!r} is not a method name; allowed: method or method[point]")
    return method, rest[:-1]


# --- config-time checks -------------------------------------------------------------------------
def load_claims(config: Mapping[str, Any]) -> list[Claim]:
    """The config's ``claims:`` parsed (each entry's keys, direction, threshold, table and metric)."""
    claims = config.get("claims") or []
    if not isinstance(claims, list):
        raise ConfigError("'claims' must be a list of claims")
    parsed = [Claim.from_dict(c) for c in claims]
    ids = [c.id for c in parsed]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"claim ids must be unique, got {ids}")
    return parsed


def sweep_points(jobs: Iterable[Any]) -> dict[str, dict[str, set[str]]]:
    """{problem id: {method: point names}} of a sweep's jobs (:func:`ml2bench.sweep.jobs.expand`)."""
    out: dict[str, dict[str, set[str]]] = {}
    for job in jobs:
        out.setdefault(job.problem_id, {}).setdefault(job.method, set()).add(job.point)
    return out


def check_claims(claims: Sequence[Claim], available: Mapping[str, Mapping[str, Mapping[str, set[str]]]]) -> None:
    """Every claim's problems, methods and points exist: ``available[table][problem][method]`` = points."""
    for claim in claims:
        where = f"claim {claim.id!r}"
        have = available.get(claim.table, {})
        for problem in claim.problems:
            if problem not in have:
                raise ConfigError(
                    f"{where}: problem {problem!r} is not in the {claim.table} of this sweep; "
                    f"allowed: {', '.join(sorted(have)) or '(none)'}"
                )
            methods = have[problem]
            for name in (claim.method, *claim.baselines):
                method, point = parse_solver(name, where)
                if method not in methods:
                    raise ConfigError(
                        f"{where}: method {method!r} is not run on {problem!r}; allowed: {', '.join(sorted(methods))}"
                    )
                if point is not None and point not in methods[method]:
                    raise ConfigError(
                        f"{where}: {name!r} is not run on {problem!r}; allowed: "
                        + ", ".join(f"{method}[{p}]" for p in sorted(methods[method]))
                    )


def check_config(config: Mapping[str, Any], jobs: Iterable[Any]) -> list[Claim]:
    """The config's claims, checked against its sweep (``jobs``) and ``claims_grid``; ConfigError
    naming the bad value and what is allowed. ``claims_reference`` must hold a longer run's tables."""
    claims = load_claims(config)
    check_claims(claims, {"runs": sweep_points(jobs), "grid_cycles": grid_points(config)})
    ref = config.get("claims_reference")
    if claims and ref and not (Path(ref) / "summary.parquet").is_file():
        raise ConfigError(
            f"claims_reference = {ref!r} holds no summary.parquet; allowed: the results/tables folder of a "
            f"longer run of this sweep"
        )
    return claims
