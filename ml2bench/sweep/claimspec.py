"""What a claim is, checked when a sweep config is loaded (``claims:`` in the config; the workflow,
``ml2bench verify --configfile`` and :func:`ml2bench.sweep.jobs.load_jobs` check it before any job):
its keys, direction, threshold, table and metric, and that its problems, methods and points are
runs of the sweep or ``claims_grid`` / ``claims_speedup`` entries. The verdicts are
:mod:`ml2bench.analysis.claims`'s.

Three kinds (``kind:``, default ``compare``):

* ``compare``: ``method`` beats each of ``baselines`` in ``metric`` (per-seed ratios).
* ``robustness``: ``method`` reaches the target on a larger fraction of a hyper-parameter grid than
  each baseline. ``parameters`` names, per method, the one parameter its points vary (the one a
  user would otherwise tune); the points must span at least two decades around the method's
  default, so that "needs no tuning" is measured over the range a user would try.
* ``speedup``: additive Schwarz with ``processes`` processes is faster than with one
  (``claims_speedup`` entries, :mod:`ml2bench.sweep.speedup`); ``threshold`` is the claimed speed-up.

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
from ml2bench.sweep.speedup import MEASURES as SPEEDUP_MEASURES
from ml2bench.sweep.speedup import speedup_points

DIRECTIONS = ("lower", "higher")
KINDS = ("compare", "robustness", "speedup")
TO_TARGET = tuple(TIME_TO_TARGET_COLUMNS.values())  # costs to a target: +inf = not reached
METRICS = {  # table -> the columns a claim may name as its metric
    "runs": (*SUMMARY_MEASURES, *TO_TARGET, *BENCH_COLUMNS.values()),
    "grid_cycles": GRID_MEASURES,
    "speedup": SPEEDUP_MEASURES,
}
TABLES = tuple(METRICS)
DECADES = 2.0  # a robustness grid spans at least this many decades of its parameter
COMMON_KEYS = {"id", "statement", "source", "problems", "kind", "notes"}
KEYS = {  # kind -> (required, optional) keys besides COMMON_KEYS
    "compare": ({"method", "baselines", "metric", "direction"}, {"threshold", "table"}),
    "robustness": ({"method", "baselines", "parameters"}, {"metric"}),
    "speedup": (set(), {"threshold"}),
}


@dataclass(frozen=True)
class Claim:
    """One claim of a paper: ``method`` beats every baseline on every problem in ``metric``
    (``kind`` compare), or on the fraction of its ``parameters`` grid that reaches the target
    (robustness), or parallel Schwarz beats one process by ``threshold`` (speedup)."""

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
    kind: str = "compare"
    parameters: tuple[tuple[str, str], ...] = ()  # robustness: (method, the parameter its grid varies)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        where = f"claim {d.get('id', '?')!r}"
        kind = d.get("kind", "compare")
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind = {kind!r}; allowed: {', '.join(KINDS)}")
        required, optional = KEYS[kind]
        allowed = COMMON_KEYS | required | optional
        unknown = set(d) - allowed
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {sorted(unknown)} for a {kind} claim; allowed: {', '.join(sorted(allowed))}"
            )
        missing = ({"id", "statement", "source", "problems"} | required) - set(d)
        if missing:
            raise ConfigError(f"{where}: missing keys {sorted(missing)}")
        problems = d["problems"]
        if isinstance(problems, str) or not problems:
            raise ConfigError(f"{where}: problems must be a non-empty list")
        threshold = float(d.get("threshold", 1.0))
        if not (threshold > 0 and math.isfinite(threshold)):
            raise ConfigError(f"{where}: threshold = {threshold}; allowed: a finite number > 0")
        common = {
            "id": str(d["id"]),
            "statement": str(d["statement"]),
            "source": str(d["source"]),
            "problems": tuple(problems),
            "threshold": threshold,
            "notes": str(d.get("notes", "")),
            "kind": kind,
        }
        if kind == "speedup":  # parallel vs one process: the speed-up t_seq / t_par, higher is better
            return cls(method="schwarz", baselines=(), metric="speedup", direction="higher", table="speedup", **common)
        baselines = d["baselines"]
        if isinstance(baselines, str) or not baselines:
            raise ConfigError(f"{where}: baselines must be a non-empty list")
        if kind == "robustness":
            return cls._robustness(d, where, baselines, common)
        if d["direction"] not in DIRECTIONS:
            raise ConfigError(f"{where}: direction = {d['direction']!r}; allowed: {', '.join(DIRECTIONS)}")
        table = d.get("table", "runs")
        if table not in TABLES or table == "speedup":
            allowed_tables = ", ".join(t for t in TABLES if t != "speedup")
            raise ConfigError(f"{where}: table = {table!r}; allowed: {allowed_tables} (speedup: kind speedup)")
        if d["metric"] not in METRICS[table]:
            raise ConfigError(
                f"{where}: metric = {d['metric']!r} is not a column of the {table} table; "
                f"allowed: {', '.join(METRICS[table])}"
            )
        for name in (d["method"], *baselines):
            parse_solver(str(name), where)
        return cls(
            method=str(d["method"]),
            baselines=tuple(str(b) for b in baselines),
            metric=str(d["metric"]),
            direction=str(d["direction"]),
            table=str(table),
            **common,
        )

    @classmethod
    def _robustness(cls, d: Mapping[str, Any], where: str, baselines: Sequence[Any], common: dict) -> Claim:
        metric = d.get("metric", "work_units_to_target")
        if metric not in TO_TARGET:
            raise ConfigError(
                f"{where}: metric = {metric!r}; allowed for a robustness claim (a cost to the target): "
                f"{', '.join(TO_TARGET)}"
            )
        names = [str(d["method"]), *(str(b) for b in baselines)]
        for name in names:
            if parse_solver(name, where)[1] is not None:
                raise ConfigError(f"{where}: {name!r} names a point; allowed: a method name (its whole grid counts)")
        parameters = d["parameters"]
        if not isinstance(parameters, Mapping) or set(parameters) != set(names):
            got = sorted(parameters) if isinstance(parameters, Mapping) else parameters
            raise ConfigError(f"{where}: parameters = {got!r}; allowed: a mapping with one entry per method {names}")
        return cls(
            method=names[0],
            baselines=tuple(names[1:]),
            metric=str(metric),
            direction="higher",  # a larger fraction of the grid reaching the target
            parameters=tuple((m, str(parameters[m])) for m in names),
            **common,
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
    """Every claim's problems, methods and points exist: ``available[table][problem][method]`` = points;
    a robustness claim's grids vary its parameters over two decades around the defaults."""
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
            for method, parameter in claim.parameters:
                grid_values(methods[method], method, parameter, f"{where}, {problem}")


def grid_values(points: Iterable[str], method: str, parameter: str, where: str = "claim") -> dict[str, float]:
    """{point: value} of a robustness grid: every point of ``method`` varies ``parameter`` alone
    (point names ``parameter~value``), at least 3 values > 0 spanning :data:`DECADES` decades with the
    method's registered default inside (the range a user would otherwise search)."""
    from ml2bench.methods import METHODS  # the defaults: registered methods (plugins included)

    values = {}
    for p in sorted(points):
        key, sep, text = p.partition("~")
        try:
            value = float(text) if key == parameter and sep and "_" not in text else math.nan
        except ValueError:
            value = math.nan
        if not value > 0:
            raise ConfigError(
                f"{where}: point {method}[{p}] is not a value of {parameter!r} alone; allowed: a grid over "
                f"{parameter} only (points named {parameter}~<value > 0>, other parameters fixed under params)"
            )
        values[p] = value
    default = {q.name: q.default for q in METHODS.get(method).params}.get(parameter)
    lo, hi = min(values.values()), max(values.values())
    if (
        len(values) < 3
        or hi / lo < 10**DECADES * (1 - 1e-9)
        or not (isinstance(default, (int, float)) and lo <= default <= hi)
    ):
        raise ConfigError(
            f"{where}: the grid of {method}.{parameter} is {sorted(values.values())} (default {default}); allowed: "
            f">= 3 values spanning >= {DECADES:g} decades (max/min >= {10**DECADES:g}) around the default"
        )
    return values


def check_config(config: Mapping[str, Any], jobs: Iterable[Any]) -> list[Claim]:
    """The config's claims, checked against its sweep (``jobs``), ``claims_grid`` and ``claims_speedup``; ConfigError
    naming the bad value and what is allowed. ``claims_reference`` must hold a longer run's tables."""
    claims = load_claims(config)
    available = {"runs": sweep_points(jobs), "grid_cycles": grid_points(config), "speedup": speedup_points(config)}
    check_claims(claims, available)
    ref = config.get("claims_reference")
    if claims and ref and not (Path(ref) / "summary.parquet").is_file():
        raise ConfigError(
            f"claims_reference = {ref!r} holds no summary.parquet; allowed: the results/tables folder of a "
            f"longer run of this sweep"
        )
    return claims
