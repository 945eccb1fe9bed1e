"""Claims of the multilevel / domain-decomposition training papers, checked against a sweep.

A claim (``claims:`` in a sweep config, e.g. workflow/config/claims.yaml) says that ``method`` does
better than each of ``baselines`` on ``problems`` in one ``metric`` (a column of the run summary,
e.g. ``final_test_metric``, or of the time-to-target table, e.g. ``work_units_to_target``), where
``direction`` says which way is better (``lower`` or ``higher``). ``name[point]`` picks one
hyper-parameter point of a method (e.g. ``schwarz[parallel~True]`` against ``schwarz[parallel~False]``
for a parallel speed-up in ``train_time_s``). ``table: grid_cycles`` reads V-cycle counts on the grid
test problems instead of the sweep's runs (:func:`ml2bench.sweep.grid_cycles.grid_cycles`; point
``n~<size>``): the level-independence claim compares the finest grid against the coarsest with a
threshold t > 1. For each (problem, baseline) pair this module computes, over the seeds of the sweep:

* the measured median [q25, q75] of the metric per method (a method run with several
  hyper-parameter points enters with its best point by median);
* the ratio r = median(method) / median(baseline) and its 95 % bootstrap percentile interval
  (seeds resampled with replacement, independently per method, ``B`` = 2000 resamples, numpy
  generator seeded from the claim id, so the interval is reproducible). Runs that never reached a
  target count as +inf; where both medians are +inf the ratio is 1 (a tie: neither solved it).

The verdict rule, stated once (docs/claims.md repeats it):

    **reproduced** when every seed count is ≥ ``min_seeds`` (5) and the whole 95 % interval of r
    lies strictly on the claimed side of the threshold t (t = 1 unless the claim states another:
    below t for ``lower``, above t for ``higher``); **not reproduced** when the whole interval lies
    on the other side of t or touches t from there (≥ t for ``lower``, ≤ t for ``higher``);
    **inconclusive** otherwise (the interval contains t strictly inside, or too few seeds).
    A claim over several (problem, baseline) pairs is reproduced when every pair is, not
    reproduced when any pair is not, and inconclusive otherwise.

    python -m ml2bench.analysis.claims --tables results/tables --config workflow/config/claims.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml2bench.core.params import ConfigError

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
DIRECTIONS = ("lower", "higher")
MIN_SEEDS = 5
BOOTSTRAP_SAMPLES = 2000
RUN_KEYS = ["problem_id", "method", "point", "seed"]
TABLES = ("runs", "grid_cycles")  # the sweep's runs; V-cycle counts on the grid test problems (grid_cycles)


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
        if not threshold > 0:
            raise ConfigError(f"{where}: threshold = {threshold}; allowed: a number > 0")
        if d.get("table", "runs") not in TABLES:
            raise ConfigError(f"{where}: table = {d['table']!r}; allowed: {', '.join(TABLES)}")
        return cls(
            id=str(d["id"]),
            statement=str(d["statement"]),
            source=str(d["source"]),
            problems=tuple(problems),
            method=str(d["method"]),
            baselines=tuple(baselines),
            metric=str(d["metric"]),
            direction=str(d["direction"]),
            threshold=threshold,
            table=str(d.get("table", "runs")),
            notes=str(d.get("notes", "")),
        )


# --- statistics ---------------------------------------------------------------------------------
def ratio_of_medians(a: float, b: float) -> float:
    """a / b with the conventions for targets never reached (+inf): inf/inf = 1, inf/x = inf, x/inf = 0."""
    if math.isinf(a) and math.isinf(b):
        return 1.0
    if math.isinf(b):
        return 0.0
    if b == 0.0:
        return 1.0 if a == 0.0 else math.inf
    return a / b


def bootstrap_ratio(
    a: Sequence[float], b: Sequence[float], seed: int, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95
) -> tuple[float, float, float]:
    """Ratio of medians and its percentile bootstrap interval (seeds resampled per method)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (samples, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (samples, b.size))], axis=1)
    ratios = np.array([ratio_of_medians(x, y) for x, y in zip(ma, mb)])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(ratios, [alpha, 1 - alpha])
    return ratio_of_medians(float(np.median(a)), float(np.median(b))), float(lo), float(hi)


def verdict(
    lo: float,
    hi: float,
    direction: str,
    n_method: int,
    n_baseline: int,
    min_seeds: int = MIN_SEEDS,
    threshold: float = 1.0,
) -> str:
    """The rule of the module docstring for one (problem, baseline) pair (``threshold`` t, default 1)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if min(n_method, n_baseline) < min_seeds or math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    t = threshold
    if direction == "lower":
        return "reproduced" if hi < t else "not reproduced" if lo >= t else "inconclusive"
    return "reproduced" if lo > t else "not reproduced" if hi <= t else "inconclusive"


def combine(verdicts: Sequence[str]) -> str:
    """A claim over several pairs: all reproduced → reproduced; any not reproduced → not reproduced."""
    if not verdicts:
        return "inconclusive"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "inconclusive"


# --- tables -------------------------------------------------------------------------------------
def run_table(tables_dir: str | Path) -> pd.DataFrame:
    """One row per run: the summary merged with its time-to-target costs (inf: target not reached)."""
    tables_dir = Path(tables_dir)
    summary = pd.read_parquet(tables_dir / "summary.parquet")
    ttt_path = tables_dir / "time_to_target.csv"
    if ttt_path.is_file():
        ttt = pd.read_csv(ttt_path)
        summary = summary.merge(
            ttt.drop(columns=[c for c in ttt.columns if c in summary and c not in RUN_KEYS]), on=RUN_KEYS, how="left"
        )
    return summary


def _values(runs: pd.DataFrame, problem: str, method: str, metric: str, direction: str) -> tuple[str, np.ndarray]:
    """Per-seed values of ``metric`` for ``method`` on ``problem`` (its best point by median; ``name[point]``
    names one hyper-parameter point)."""
    point_wanted = None
    if method.endswith("]") and "[" in method:
        method, point_wanted = method[:-1].split("[", 1)
    rows = runs[(runs["problem_id"] == problem) & (runs["method"] == method)]
    if point_wanted is not None:
        rows = rows[rows["point"].astype(str) == point_wanted]
    if rows.empty:
        return "", np.array([])
    if metric not in rows:
        raise ConfigError(
            f"claim metric {metric!r} is not a column of the run tables; "
            f"e.g. final_test_metric, work_units_to_target, time_to_target_s"
        )
    best, best_med = "", math.nan
    for point, g in rows.groupby("point"):
        vals = pd.to_numeric(g[metric], errors="coerce").fillna(math.inf).to_numpy(float)
        med = float(np.median(vals))
        if not best or (med < best_med if direction == "lower" else med > best_med):
            best, best_med = str(point), med
    g = rows[rows["point"] == best]
    return best, pd.to_numeric(g[metric], errors="coerce").fillna(math.inf).to_numpy(float)


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if math.isnan(x):
        return "n/a"
    return f"{x:.3g}"


def _measured(vals: np.ndarray) -> str:
    if vals.size == 0:
        return "no runs"
    q25, q50, q75 = (
        np.quantile(vals, [0.25, 0.5, 0.75])
        if np.isfinite(vals).all()
        else (np.quantile(np.where(np.isinf(vals), np.inf, vals), [0.25, 0.5, 0.75], method="lower"))
    )
    return f"{_fmt(q50)} [{_fmt(q25)}, {_fmt(q75)}]"


def evaluate_claims(
    runs: pd.DataFrame | Mapping[str, pd.DataFrame], claims: Sequence[Claim], min_seeds: int = MIN_SEEDS
) -> pd.DataFrame:
    """One row per (claim, problem, baseline) and one summary row per claim (``baseline`` = "all").
    ``runs``: the run table, or a mapping table name (:data:`TABLES`) → table."""
    tables = {"runs": runs} if isinstance(runs, pd.DataFrame) else dict(runs)
    rows: list[dict[str, Any]] = []
    for claim in claims:
        if claim.table not in tables:
            raise ConfigError(f"claim {claim.id!r}: table {claim.table!r} was not computed; have {sorted(tables)}")
        runs = tables[claim.table]
        pair_verdicts = []
        for problem in claim.problems:
            point, a = _values(runs, problem, claim.method, claim.metric, claim.direction)
            for base in claim.baselines:
                bpoint, b = _values(runs, problem, base, claim.metric, claim.direction)
                seed = zlib.crc32(f"{claim.id}|{problem}|{base}".encode())
                r, lo, hi = bootstrap_ratio(a, b, seed)
                v = verdict(lo, hi, claim.direction, a.size, b.size, min_seeds, claim.threshold)
                pair_verdicts.append(v)
                rows.append(
                    {
                        "claim": claim.id,
                        "statement": claim.statement,
                        "source": claim.source,
                        "problem_id": problem,
                        "method": claim.method,
                        "point": point,
                        "baseline": base,
                        "baseline_point": bpoint,
                        "metric": claim.metric,
                        "direction": claim.direction,
                        "n_method": int(a.size),
                        "n_baseline": int(b.size),
                        "method_measured": _measured(a),
                        "baseline_measured": _measured(b),
                        "ratio": r,
                        "ratio_lo": lo,
                        "ratio_hi": hi,
                        "threshold": claim.threshold,
                        "verdict": v,
                    }
                )
        rows.append(
            {
                "claim": claim.id,
                "statement": claim.statement,
                "source": claim.source,
                "problem_id": "all",
                "method": claim.method,
                "baseline": "all",
                "metric": claim.metric,
                "threshold": claim.threshold,
                "direction": claim.direction,
                "verdict": combine(pair_verdicts),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, min_seeds: int = MIN_SEEDS) -> str:
    """The report's "Claims" section body."""
    lines = [
        "Verdict rule: *reproduced* when each method has ≥ "
        f"{min_seeds} seeds and the 95 % bootstrap interval of r = median(method) / median(baseline) lies "
        "strictly on the claimed side of the threshold t (1 unless stated); *not reproduced* when it lies on the "
        "other side (touching t included); *inconclusive* otherwise. A claim holds when all its pairs are "
        "reproduced. Targets never reached count as ∞ (∞/∞ = 1). See ml2bench/analysis/claims.py.",
        "",
    ]
    lines += [
        "| claim | source | problem | measured: method vs baseline (median [IQR]) | ratio [95 % CI] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for claim_id, g in table.groupby("claim", sort=False):
        head = g[g["baseline"] == "all"].iloc[0]
        t = "" if head["threshold"] == 1.0 else f", threshold t = {head['threshold']:g}"
        lines.append(
            f"| **{claim_id}**: {head['statement']} ({head['metric']}, {head['direction']} is better{t}) | "
            f"{head['source']} | all | | | **{head['verdict']}** |"
        )
        for _, row in g[g["baseline"] != "all"].iterrows():
            m = (
                f"{row['method']} {row['method_measured']} (n={int(row['n_method'])}) vs {row['baseline']} "
                f"{row['baseline_measured']} (n={int(row['n_baseline'])})"
            )
            ci = f"{_fmt(row['ratio'])} [{_fmt(row['ratio_lo'])}, {_fmt(row['ratio_hi'])}]"
            lines.append(f"| | | {row['problem_id']} | {m} | {ci} | {row['verdict']} |")
    return "\n".join(lines) + "\n"


def load_claims(config: Mapping[str, Any]) -> list[Claim]:
    claims = config.get("claims") or []
    if not isinstance(claims, list):
        raise ConfigError("'claims' must be a list of claims")
    parsed = [Claim.from_dict(c) for c in claims]
    ids = [c.id for c in parsed]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"claim ids must be unique, got {ids}")
    return parsed


def build(tables_dir: str | Path, claims: Sequence[Claim], min_seeds: int = MIN_SEEDS) -> dict[str, Path]:
    """Write ``claims.csv`` and ``claims.md`` into ``tables_dir`` (reads ``grid_cycles.csv`` there
    when a claim uses it)."""
    tables_dir = Path(tables_dir)
    tables = {"runs": run_table(tables_dir)}
    if any(c.table == "grid_cycles" for c in claims):
        tables["grid_cycles"] = pd.read_csv(tables_dir / "grid_cycles.csv")
    table = evaluate_claims(tables, claims, min_seeds)
    out = {"csv": tables_dir / "claims.csv", "md": tables_dir / "claims.md"}
    table.to_csv(out["csv"], index=False)
    out["md"].write_text(to_markdown(table, min_seeds))
    return out


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m ml2bench.analysis.claims", description="Claims verdicts of a sweep.")
    ap.add_argument("--tables", type=Path, default=Path("results/tables"))
    ap.add_argument("--config", type=Path, required=True, help="sweep config with a 'claims:' list")
    ap.add_argument("--min-seeds", type=int, default=MIN_SEEDS)
    args = ap.parse_args(argv)
    try:
        claims = load_claims(yaml.safe_load(args.config.read_text()))
        out = build(args.tables, claims, args.min_seeds)
    except (ConfigError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: str(v) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
