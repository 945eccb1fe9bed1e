"""Claims of the multilevel / domain-decomposition training papers, checked against a sweep.

A claim (``claims:`` in a sweep config, e.g. workflow/config/claims.yaml) says that ``method`` does
better than each of ``baselines`` on ``problems`` in one ``metric`` (a column of the run tables:
a summary measure of ``ml2bench.core.records.SUMMARY_MEASURES``, a time-to-target cost of
``ml2bench.analysis.tables.COSTS`` or a Snakemake benchmark column), where ``direction`` says which
way is better (``lower`` or ``higher``) and ``threshold`` t (default 1) the claimed ratio. The
metric column is also the accounting convention: a claim on ``work_units_to_target`` counts every
evaluation; a claim on another cost column counts what that column counts. ``name[point]`` picks
one hyper-parameter point of a method (e.g. ``schwarz[parallel~true]``); without it a method run
with several points enters with its best point, chosen as the comparison tables choose it (never on a
test column: :func:`selection_key`). ``table: grid_cycles`` reads V-cycle
counts on the grid test problems (:mod:`ml2bench.sweep.grid_cycles`, point ``n~<size>``).

Two more kinds (``kind:``; spec in :mod:`ml2bench.sweep.claimspec`, rules in docs/statistics.md):
``robustness`` compares, per seed, the fraction of each method's hyper-parameter grid that reaches the
target (:func:`robustness_rows`), and ``speedup`` the train times of parallel and sequential additive
Schwarz with the Amdahl ceiling of the measured local work share beside them — "not tested at this
size" where the machine had fewer idle cores than processes (:func:`speedup_rows`).

Claims are checked when the config is loaded (:func:`check_config`: Snakemake parse time and
``ml2bench verify --configfile``): the metric is a known column, every problem is in the sweep and
every method and point is run there.

For each (problem, baseline) pair the runs are paired by seed (same seed: same data and the same
initial network for every method) and compared per seed, on the log scale
(:mod:`ml2bench.analysis.stats` has the statistics and says why):

* a **failed or diverged** run (status ``failed``/``diverged`` or a NaN value) is the worst value in
  the claim's direction — worse than a run that did not reach a target — and is counted as failed.
  A cost *to a target* that a run reached before it failed is kept (what it did after the target
  does not change what it took to get there);
* a seed where **neither** method reached the target (both +inf) or both failed carries no
  evidence either way and is left out of the comparison (counted); the other seeds give
  ``d = log(method / baseline)``, ±inf where one side never reached the target or failed;
* estimate: the median per-seed ratio, its 95 % paired bootstrap interval, the one-sided
  Wilcoxon signed-rank p-value, and the smallest ratio the rule detects with 80 % power at the
  measured spread of ``d``.

The verdict rule, stated once (docs/statistics.md repeats it):

    **not tested** when neither method reached the target on more than half of the paired seeds
    (the budget censors both sides); **inconclusive** when fewer than ``min_seeds`` (5) seeds are
    informative; **reproduced** when the 95 % interval of the median per-seed ratio lies strictly on
    the claimed side of t (below t for ``lower``, above for ``higher``) *and* the one-sided
    Wilcoxon p ≤ 0.025; **not reproduced** when the interval lies on the other side of t or touches t
    from there; **inconclusive** otherwise. A claim over several (problem, baseline) pairs is not
    reproduced when any pair is not, reproduced when every pair is, not tested when every pair that
    is not reproduced is not tested, and inconclusive otherwise.

    python -m ml2bench.analysis.claims --tables results/tables --config workflow/config/claims.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml2bench.analysis import stats
from ml2bench.analysis.tables import RUN_KEYS, TEST_QUANTITIES, median_iqr
from ml2bench.core.params import ConfigError
from ml2bench.sweep.claimspec import (  # noqa: F401  (the claims' spec; re-exported for the workflow and tests)
    DIRECTIONS,
    METRICS,
    TABLES,
    TO_TARGET,
    Claim,
    check_claims,
    check_config,
    load_claims,
    parse_solver,
    sweep_points,
)

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not tested", "not tested at this size")
MIN_SEEDS = 5
FAILED = ("failed", "diverged")  # summary statuses of a run that did not finish its budget normally
BUDGET_COST = "work_units_to_target"  # what a "not tested" pair's needed budget is read from
# a speed-up is tested only where every process had a core: others' measured load may take at most this
# much of a core (the workflow's own bookkeeping, daemons) before a core no longer counts as idle
IDLE_SLACK = 0.25


# --- per-seed values ----------------------------------------------------------------------------
def worst(direction: str) -> float:
    return math.inf if direction == "lower" else -math.inf


def outcomes(rows: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Per seed: ``value`` (a failed run's is the worst in ``direction``), ``failed``, ``censored``
    (+inf to a target: not reached within the budget), ``measured`` (the value is not NaN)."""
    values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)
    status = rows["status"].astype(str).to_numpy() if "status" in rows else np.full(len(rows), "ok")
    bad = np.isin(status, FAILED)
    if metric in TO_TARGET:  # a target reached before the failure keeps its cost
        bad &= ~np.isfinite(values)
    failed = np.isnan(values) | bad
    w = worst(direction)
    censored = ~failed & (values == w)
    measured = ~np.isnan(values)
    values = np.where(failed, w, values)
    return pd.DataFrame(
        {"seed": rows["seed"].to_numpy(), "value": values, "failed": failed, "censored": censored, "measured": measured}
    ).set_index("seed")


def selection_key(rows: pd.DataFrame) -> tuple[float, float]:
    """How a method's hyper-parameter points rank on a problem, never on a test column (the rule of
    :func:`ml2bench.analysis.tables.select_points`, on runs): median work units to the target where
    the target is not on a test quantity, then the median final value of the runs' selection
    quantity (validation metric; training loss where there is no validation split). Smaller is better."""
    quantity = str(rows["target_quantity"].iloc[0]) if "target_quantity" in rows and len(rows) else ""
    work = math.inf
    if quantity and quantity not in TEST_QUANTITIES and "work_units_to_target" in rows:
        work = float(stats.median(pd.to_numeric(rows["work_units_to_target"], errors="coerce").fillna(math.inf)))
    selection = str(rows["selection_quantity"].iloc[0]) if "selection_quantity" in rows and len(rows) else "train_loss"
    higher = selection.endswith("_metric") and bool(rows.get("metric_higher_is_better", pd.Series([True])).iloc[0])
    column = f"final_{selection}"
    final = pd.to_numeric(rows[column], errors="coerce") if column in rows else pd.Series([math.nan] * len(rows))
    final = final.fillna(-math.inf if higher else math.inf)  # a failed run is the worst
    value = float(stats.median(final.to_numpy(float)))
    return work, (-value if higher else value)


def select(
    groups: Mapping[tuple[str, str], pd.DataFrame], problem: str, name: str, metric: str, direction: str
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(point, its runs, per-seed outcomes) of ``name`` (``method`` or ``method[point]``) on ``problem``;
    ``groups``: the run table grouped by (problem_id, method). Without a point, the method's best
    point by :func:`selection_key` — the same choice as the comparison tables, never made on the
    claim's metric (which may be a test column)."""
    method, point = parse_solver(name)
    rows = groups.get((problem, method), pd.DataFrame(columns=[*RUN_KEYS, metric]))
    points = rows["point"].astype(str)
    if point is None and len(rows):
        point = min(sorted(set(points)), key=lambda c: (*selection_key(rows[points == c]), c))
    rows = rows[points == point]
    return (point if len(rows) else ""), rows, outcomes(rows, metric, direction)


def log_ratios(a: pd.DataFrame, b: pd.DataFrame, direction: str) -> tuple[np.ndarray, dict[str, int]]:
    """Per-seed ``log(a / b)`` on the seeds both have, without the uninformative ones, and the counts.

    A column with no value in any run of the pair (energy without counters) is not measured: no
    seed is informative and none failed."""
    pair = a.merge(b, how="inner", left_index=True, right_index=True, suffixes=("_a", "_b"))
    measured = bool(pair["measured_a"].any() or pair["measured_b"].any())
    fa, fb = (pair[f"failed_{k}"].to_numpy(bool) & measured for k in "ab")
    ca, cb = (pair[f"censored_{k}"].to_numpy(bool) for k in "ab")
    va, vb = (pair[f"value_{k}"].to_numpy(float) for k in "ab")
    values = np.concatenate([va[~fa & ~ca], vb[~fb & ~cb]])
    if measured and (values < 0).any():
        raise ConfigError(f"a ratio needs values >= 0; got {values.min():g}")
    w = worst(direction)
    with np.errstate(divide="ignore", invalid="ignore"):
        la = np.where(ca, w, np.log(np.where(fa | ca, 1.0, va)))
        lb = np.where(cb, w, np.log(np.where(fb | cb, 1.0, vb)))
        d = np.where(la == lb, 0.0, la - lb)  # equal values, also both 0 (log -inf): a tie
    d = np.where(fa, w, np.where(fb, -w, d))  # failed: the worst for its side
    both_failed, both_censored = fa & fb, ca & cb
    keep = ~(both_failed | both_censored) & measured
    counts = {
        "n_pairs": int(len(pair)),
        "n_method_failed": int(fa.sum()),
        "n_baseline_failed": int(fb.sum()),
        "n_both_censored": int(both_censored.sum()),
        "n_both_failed": int(both_failed.sum()),
        "n_not_measured": 0 if measured else int(len(pair)),
        "n_informative": int(keep.sum()),
    }
    return d[keep], counts


def verdict(
    result: stats.PairedResult,
    counts: Mapping[str, int],
    direction: str,
    threshold: float = 1.0,
    min_seeds: int = MIN_SEEDS,
) -> tuple[str, str]:
    """(verdict, reason) of one (problem, baseline) pair by the rule of the module docstring."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    n, censored = counts["n_pairs"], counts["n_both_censored"]
    if n == 0:
        return "inconclusive", "no seed with runs of both"
    if counts["n_not_measured"] == n:
        return "inconclusive", "metric not measured"
    if censored > n / 2:
        return "not tested", f"neither reached the target on {censored} of {n} seeds"
    if result.n < min_seeds:
        return "inconclusive", f"{result.n} informative seeds < {min_seeds}"
    side, null = ("below" if direction == "lower" else "above"), math.log(threshold)
    if stats.supports(result.lo, result.hi, result.p, null, side):
        return "reproduced", "interval on the claimed side, Wilcoxon p ≤ 0.025"
    if stats.excludes(result.lo, result.hi, null, side):
        return "not reproduced", "interval on the other side of t"
    if stats.on_side(result.lo, result.hi, null, side):
        return "inconclusive", f"Wilcoxon p = {result.p:.3g} > 0.025"
    return "inconclusive", "interval contains t"


def combine(verdicts: Sequence[str]) -> str:
    """A claim over several pairs: any not reproduced → not reproduced; all reproduced → reproduced;
    all the rest not tested → not tested; else inconclusive."""
    if not verdicts:
        return "inconclusive"
    if "not reproduced" in verdicts:
        return "not reproduced"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if all(v == "reproduced" or v.startswith("not tested") for v in verdicts):
        return "not tested at this size" if "not tested at this size" in verdicts else "not tested"
    return "inconclusive"


# --- robustness and speed-up claims -------------------------------------------------------------
def _claim_columns(claim: Claim) -> dict[str, Any]:
    return {
        "claim": claim.id,
        "kind": claim.kind,
        "statement": claim.statement,
        "source": claim.source,
        "metric": claim.metric,
        "direction": claim.direction,
        "threshold": claim.threshold,
    }


def grid_fractions(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Per seed, the fraction of a method's hyper-parameter points whose run reached the target (a
    finite cost ``metric``, also one reached before a run failed, as :func:`outcomes` reads it); only seeds
    run at every point."""
    if rows.empty:
        return pd.Series(dtype=float)
    reached = {
        pt: np.isfinite(outcomes(g, metric, "lower")["value"]) for pt, g in rows.groupby(rows["point"].astype(str))
    }
    table = pd.DataFrame(reached)  # seeds x points; NaN where a point lacks the seed
    return table.dropna().astype(float).mean(axis=1).sort_index()


def robustness_pair(fa: pd.Series, fb: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """Per-seed differences of grid fractions, method − baseline, on the seeds both have. A seed where
    neither grid reached the target at any point, or both at every point, carries no evidence: the
    measure is censored on both sides (at 0 by the budget, at 1 by a grid too narrow or a problem too
    easy to separate them), as a seed where neither method reached a target is."""
    pair = pd.concat([fa.rename("a"), fb.rename("b")], axis=1, join="inner")
    censored = ((pair["a"] == 0) & (pair["b"] == 0)) | ((pair["a"] == 1) & (pair["b"] == 1))
    counts = {
        "n_pairs": int(len(pair)),
        "n_method_failed": 0,
        "n_baseline_failed": 0,
        "n_both_censored": int(censored.sum()),
        "n_both_failed": 0,
        "n_not_measured": 0,
        "n_informative": int((~censored).sum()),
    }
    return (pair["a"] - pair["b"])[~censored].to_numpy(float), counts


def _fraction_text(f: pd.Series, seed: int) -> tuple[float, float, float, str]:
    mean, lo, hi = stats.mean_interval(f.to_numpy(float), seed)
    return mean, lo, hi, f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]"


def robustness_rows(
    claim: Claim, groups: Mapping[tuple[str, str], pd.DataFrame], min_seeds: int = MIN_SEEDS
) -> list[dict[str, Any]]:
    """Rows of a robustness claim: per (problem, baseline) the two methods' grid fractions (mean over
    seeds, 95 % bootstrap interval), the paired per-seed difference (median, 95 % paired bootstrap
    interval, one-sided Wilcoxon p) and the verdict: the rule of the compare claims on differences
    (null 0, the claimed side above)."""
    parameter = dict(claim.parameters)
    rows = []
    for problem in claim.problems:
        fraction = {
            m: grid_fractions(groups.get((problem, m), pd.DataFrame(columns=RUN_KEYS)), claim.metric)
            for m in (claim.method, *claim.baselines)
        }
        for base in claim.baselines:
            d, counts = robustness_pair(fraction[claim.method], fraction[base])
            seed = zlib.crc32(f"{claim.id}|{problem}|{base}".encode())
            res = stats.paired_test(d, 0.0, "above", seed)
            v, reason = verdict(res, counts, "higher", 1.0, min_seeds)
            if v == "not tested":
                reason = (
                    f"on {counts['n_both_censored']} of {counts['n_pairs']} seeds neither grid reached the target, "
                    f"or both grids at every point"
                )
            a_mean, a_lo, a_hi, a_text = _fraction_text(fraction[claim.method], seed)
            b_mean, b_lo, b_hi, b_text = _fraction_text(fraction[base], seed + 1)
            rows.append(
                {
                    "problem_id": problem,
                    "method": claim.method,
                    "point": f"{parameter[claim.method]} grid",
                    "baseline": base,
                    "baseline_point": f"{parameter[base]} grid",
                    "n_method": int(len(fraction[claim.method])),
                    "n_baseline": int(len(fraction[base])),
                    **counts,
                    "method_measured": a_text,
                    "baseline_measured": b_text,
                    "method_fraction": a_mean,
                    "method_fraction_lo": a_lo,
                    "method_fraction_hi": a_hi,
                    "baseline_fraction": b_mean,
                    "baseline_fraction_lo": b_lo,
                    "baseline_fraction_hi": b_hi,
                    "difference": res.estimate,
                    "difference_lo": res.lo,
                    "difference_hi": res.hi,
                    "wilcoxon_p": res.p,
                    "log_ratio_spread": res.spread,
                    "verdict": v,
                    "reason": reason,
                }
            )
    return rows


def amdahl_ceiling(local_share: float, processes: int) -> float:
    """Amdahl's bound on the speed-up of ``processes`` processes when a share ``local_share`` of the
    work runs in parallel and the rest is repeated by every process: 1 / ((1 − p) + p / P)."""
    if not 0.0 <= local_share <= 1.0 or processes < 1:
        raise ValueError(f"need 0 <= local_share <= 1 and processes >= 1, got {local_share}, {processes}")
    return 1.0 / ((1.0 - local_share) + local_share / processes)


def speedup_rows(
    claim: Claim, groups: Mapping[tuple[str, str], pd.DataFrame], min_seeds: int = MIN_SEEDS
) -> list[dict[str, Any]]:
    """Rows of a speed-up claim, one per ``claims_speedup`` entry: the measured speed-up per repeat
    (median, 95 % bootstrap interval of the median log speed-up, one-sided Wilcoxon p against the
    claimed t), the local work share and its Amdahl ceiling. **not tested at this size** when the
    machine had fewer cores than processes, or fewer than ``processes − IDLE_SLACK`` idle cores
    during any timed run: a ratio measured on shared cores is the machine's load, never the method's
    speed-up."""
    rows = []
    for problem in claim.problems:
        runs = groups.get((problem, claim.method), pd.DataFrame(columns=[*RUN_KEYS, *METRICS["speedup"]]))
        speed = pd.to_numeric(runs["speedup"], errors="coerce").to_numpy(float)
        processes = int(runs["processes"].max()) if len(runs) else 0
        share = float(stats.median(runs["local_work_share"].to_numpy(float))) if len(runs) else math.nan
        ceiling = amdahl_ceiling(share, processes) if len(runs) else math.nan
        idle = float(runs["idle_cores"].min()) if len(runs) else math.nan
        n_cores = int(runs["cores"].min()) if len(runs) else 0
        d = np.log(speed[np.isfinite(speed) & (speed > 0)])
        counts = {"n_pairs": int(len(runs)), "n_both_censored": 0, "n_not_measured": int(len(runs) - d.size)}
        seed = zlib.crc32(f"{claim.id}|{problem}".encode())
        res = stats.paired_test(d, math.log(claim.threshold), "above", seed)
        if len(runs) and (n_cores < processes or idle < processes - IDLE_SLACK):
            v = "not tested at this size"
            reason = (
                f"{n_cores} cores, {idle:.2g} idle during the timed runs < {processes} processes: "
                "the ratio measures the machine's load"
            )
        else:
            v, reason = verdict(res, counts, "higher", claim.threshold, min_seeds)
        rows.append(
            {
                "problem_id": problem,
                "method": f"{claim.method}[{processes} processes]",
                "point": f"processes~{processes}",
                "baseline": f"{claim.method}[1 process]",
                "baseline_point": "processes~1",
                "n_method": int(len(runs)),
                "n_baseline": int(len(runs)),
                **counts,
                "n_informative": int(d.size),
                "method_measured": _measured(runs["train_time_par_s"]) if len(runs) else "no runs",
                "baseline_measured": _measured(runs["train_time_seq_s"]) if len(runs) else "no runs",
                "speedup": math.exp(res.estimate) if res.n else math.nan,
                "speedup_lo": math.exp(res.lo),
                "speedup_hi": math.exp(res.hi),
                "local_work_share": share,
                "amdahl_ceiling": ceiling,
                "idle_cores": idle,
                "processes": processes,
                "wilcoxon_p": res.p,
                "log_ratio_spread": res.spread,
                "verdict": v,
                "reason": reason,
            }
        )
    return rows


# --- tables -------------------------------------------------------------------------------------
def run_table(tables_dir: str | Path) -> pd.DataFrame:
    """One row per run: the summary merged with its time-to-target costs (inf: target not reached;
    a run without evaluation points never reached it, as in the comparison table)."""
    tables_dir = Path(tables_dir)
    summary = pd.read_parquet(tables_dir / "summary.parquet")
    ttt_path = tables_dir / "time_to_target.csv"
    if ttt_path.is_file():
        ttt = pd.read_csv(ttt_path)
        ttt = ttt.drop(columns=[c for c in ttt.columns if c in summary and c not in RUN_KEYS])
        summary = summary.merge(ttt, on=RUN_KEYS, how="left", indicator=True)
        no_history = summary.pop("_merge") == "left_only"
        for col in set(TO_TARGET) & set(summary.columns):
            summary.loc[no_history, col] = math.inf
    return summary


def budget_needed(
    reference: pd.DataFrame | None, problem: str, method: str, baseline: str, point: str, baseline_point: str
) -> float | None:
    """Work units by which at least half the seeds of a longer run (``reference``) have either method at
    the target, so that neither reaching it no longer censors a majority: the ⌈n/2⌉-th smallest per-seed
    minimum (the lower median, no interpolation); inf when not even there, None when the reference
    lacks these runs."""
    if reference is None or BUDGET_COST not in reference:
        return None
    per_seed = []
    for name, pt in ((method, point), (baseline, baseline_point)):
        m = parse_solver(name)[0]
        rows = reference[
            (reference["problem_id"] == problem) & (reference["method"] == m) & (reference["point"].astype(str) == pt)
        ]
        if rows.empty:
            return None
        per_seed.append(pd.to_numeric(rows.set_index("seed")[BUDGET_COST], errors="coerce").fillna(math.inf))
    first = pd.concat(per_seed, axis=1, join="inner").min(axis=1).to_numpy(float)
    return float(np.quantile(first, 0.5, method="lower")) if first.size else None


def _budget_text(rows: pd.DataFrame) -> str:
    if "budget" not in rows or rows.empty:
        return "the budget"
    try:
        budget = json.loads(str(rows["budget"].iloc[0]))
    except ValueError:
        return "the budget"
    units = {"work_units": "work units", "time_s": "s", "grad_evals": "gradient evaluations"}
    limits = [  # the limits the runs had (unset ones are None in the summary's budget)
        f"{v:g} {units.get(k, k)}" for k, v in budget.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return ", ".join(limits) or "the budget"


def evaluate_claims(
    runs: pd.DataFrame | Mapping[str, pd.DataFrame],
    claims: Sequence[Claim],
    min_seeds: int = MIN_SEEDS,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (claim, problem, baseline) with the pair's comparison, its verdict and the claim's
    (``claim_verdict``). ``runs``: the run table, or a mapping table name (:data:`TABLES`) → table;
    ``reference``: the run table of a longer run (names the budget a "not tested" pair needs)."""
    tables = {"runs": runs} if isinstance(runs, pd.DataFrame) else dict(runs)
    rows: list[dict[str, Any]] = []
    for claim in claims:
        if claim.table not in tables:
            raise ConfigError(f"claim {claim.id!r}: table {claim.table!r} was not computed; have {sorted(tables)}")
        table = tables[claim.table]
        if claim.metric not in table:
            raise ConfigError(
                f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the {claim.table} table here; "
                f"allowed: {', '.join(c for c in METRICS[claim.table] if c in table)}"
            )
        first = len(rows)
        side = "below" if claim.direction == "lower" else "above"
        groups = dict(tuple(table.groupby(["problem_id", "method"], sort=False)))
        if claim.kind != "compare":
            kind_rows = robustness_rows if claim.kind == "robustness" else speedup_rows
            rows += [{**_claim_columns(claim), **r} for r in kind_rows(claim, groups, min_seeds)]
        for problem in claim.problems if claim.kind == "compare" else ():
            point, a_rows, a = select(groups, problem, claim.method, claim.metric, claim.direction)
            for base in claim.baselines:
                bpoint, b_rows, b = select(groups, problem, base, claim.metric, claim.direction)
                try:
                    d, counts = log_ratios(a, b, claim.direction)
                except ConfigError as err:
                    raise ConfigError(f"claim {claim.id!r}, {problem}, {claim.metric}: {err}") from None
                seed = zlib.crc32(f"{claim.id}|{problem}|{base}".encode())
                res = stats.paired_test(d, math.log(claim.threshold), side, seed)
                v, reason = verdict(res, counts, claim.direction, claim.threshold, min_seeds)
                needed = math.nan
                if v == "not tested":
                    known = budget_needed(reference, problem, claim.method, base, point, bpoint)
                    if known is None:
                        reason += f"; budget needed: unknown (more than {_budget_text(a_rows)})"
                    elif math.isinf(known):
                        needed, reason = known, reason + "; budget needed: more than the longer run's"
                    else:
                        needed, reason = known, reason + f"; budget needed: {known:g} work units (longer run)"
                sgn = 1.0 if claim.direction == "higher" else -1.0
                rows.append(
                    {
                        **_claim_columns(claim),
                        "problem_id": problem,
                        "method": claim.method,
                        "point": point,
                        "baseline": base,
                        "baseline_point": bpoint,
                        "n_method": int(len(a)),
                        "n_baseline": int(len(b)),
                        **counts,
                        "method_measured": _measured(a["value"]),
                        "baseline_measured": _measured(b["value"]),
                        "ratio": math.exp(res.estimate) if res.n else math.nan,
                        "ratio_lo": math.exp(res.lo),
                        "ratio_hi": math.exp(res.hi),
                        "wilcoxon_p": res.p,
                        "log_ratio_spread": res.spread,
                        "detectable_ratio": claim.threshold * math.exp(sgn * res.detectable),
                        "verdict": v,
                        "reason": reason,
                        "budget_needed": needed,
                    }
                )
        claim_verdict = combine([r["verdict"] for r in rows[first:]])
        for r in rows[first:]:
            r["claim_verdict"] = claim_verdict
    return pd.DataFrame(rows)


# --- report -------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if math.isnan(x):
        return "n/a"
    return f"{x:.3g}"


def _measured(values: pd.Series) -> str:
    if values.empty:
        return "no runs"
    med, q25, q75 = median_iqr(values.astype(float))
    return f"{_fmt(med)} [{_fmt(q25)}, {_fmt(q75)}]"


RULE_TEXT = (
    "Verdict rule (docs/statistics.md): runs are paired by seed (same data, same initial network) and "
    "compared by the per-seed ratio method / baseline; a failed or diverged run is the worst value for its side, "
    "a seed where neither reached the target carries no evidence. *not tested*: neither reached the target on "
    "more than half the seeds (the budget censors both); *reproduced*: ≥ {min_seeds} informative seeds, the 95 % "
    "paired bootstrap interval of the median per-seed ratio strictly on the claimed side of t (1 unless stated) "
    "and the one-sided Wilcoxon signed-rank p ≤ 0.025; *not reproduced*: the interval on the other side of t "
    "or touching it from there; *inconclusive* otherwise. A claim is not reproduced when any pair is, "
    "reproduced when all are. *detectable*: the true median ratio the rule detects with 80 % power at the "
    "measured per-seed spread (none: too few seeds; n/a: half the per-seed ratios or more are 0 or ∞)."
)


def _verdict_text(row: pd.Series) -> str:
    v = row["verdict"]
    return v if v in ("reproduced", "not reproduced") else f"{v}: {row['reason']}"


def _section(table: pd.DataFrame, header: str, what, cells) -> list[str]:
    """A claims table: ``header`` (its cells: claim, source, problem, ..., verdict), per claim a head row
    (``what(first row)`` beside the statement, the claim's verdict) and per pair ``cells(row)`` between
    the problem and the pair's verdict."""
    n = header.count("|") - 1
    lines = [header, "|" + "---|" * n]
    for claim_id, g in table.groupby("claim", sort=False):
        head = g.iloc[0]
        lines.append(
            f"| **{claim_id}**: {head['statement']} ({what(head)}) | {head['source']} | all |"
            + " |" * (n - 4)
            + f" **{head['claim_verdict']}** |"
        )
        for _, row in g.iterrows():
            lines.append(f"| | | {row['problem_id']} | " + " | ".join(cells(row)) + f" | {_verdict_text(row)} |")
    return lines


def _compare_cells(row: pd.Series) -> list[str]:
    m = f"{row['method']} {row['method_measured']} vs {row['baseline']} {row['baseline_measured']}"
    n = f"{int(row['n_pairs'])}, {int(row['n_method_failed'])} / {int(row['n_baseline_failed'])}, "
    ci = f"{_fmt(row['ratio'])} [{_fmt(row['ratio_lo'])}, {_fmt(row['ratio_hi'])}]"
    det = row["detectable_ratio"]
    op = "≤" if row["direction"] == "lower" else "≥"
    det_text = "n/a" if math.isnan(det) else "none" if det in (0.0, math.inf) else f"{op} {_fmt(det)}"
    return [m, n + f"{int(row['n_both_censored'])}", ci, _fmt(row["wilcoxon_p"]), det_text]


def _robustness_cells(row: pd.Series) -> list[str]:
    m = (
        f"{row['method']} ({row['point']}) {row['method_measured']} vs {row['baseline']} "
        f"({row['baseline_point']}) {row['baseline_measured']}"
    )
    diff = f"{_fmt(row['difference'])} [{_fmt(row['difference_lo'])}, {_fmt(row['difference_hi'])}]"
    return [m, f"{int(row['n_pairs'])}, {int(row['n_both_censored'])}", diff, _fmt(row["wilcoxon_p"])]


def _speedup_cells(row: pd.Series) -> list[str]:
    sp = f"{_fmt(row['speedup'])} [{_fmt(row['speedup_lo'])}, {_fmt(row['speedup_hi'])}]"
    ceiling = f"{_fmt(row['amdahl_ceiling'])}× (P = {int(row['processes'])})"
    return [
        f"{row['method_measured']} vs {row['baseline_measured']}",
        str(int(row["n_pairs"])),
        sp,
        f"{_fmt(row['local_work_share'])} → {ceiling}",
        _fmt(row["idle_cores"]),
    ]


ROBUSTNESS_TEXT = (
    "Robustness (docs/statistics.md): per seed, the fraction of a method's hyper-parameter grid (two decades "
    "around its default) that reaches the target; the claim: a larger fraction than the baseline's. Fractions: "
    "mean over seeds [95 % bootstrap CI]; the per-seed difference method − baseline is judged by the rule above "
    "(null 0; a seed where neither grid reaches the target carries no evidence)."
)
SPEEDUP_TEXT = (
    "Speed-up (docs/statistics.md): the same additive Schwarz iterations with P processes (1 thread each) vs 1 "
    "process (1 thread), repeated adjacent in time; judged by the rule above on the log speed-up against the "
    "claimed t. Amdahl ceiling 1 / ((1 − p) + p / P) from the measured share p of the work in the local phase. "
    "*not tested at this size*: the machine had fewer idle cores than processes during a timed run."
)


KIND_TABLES = {  # kind -> (rule text, header, what beside a statement, cells of a pair)
    "robustness": (
        ROBUSTNESS_TEXT,
        "| claim | source | problem | fraction of the grid reaching the target: method vs baseline | seeds: "
        "paired, neither grid reached | difference: median [95 % CI] | Wilcoxon p | verdict |",
        lambda head: f"grid fraction reaching the target, {head['metric']}",
        _robustness_cells,
    ),
    "speedup": (
        SPEEDUP_TEXT,
        "| claim | source | problem | train time: P processes vs 1 (median [IQR] s) | repeats | speed-up: "
        "median [95 % CI] | local work share → Amdahl ceiling | idle cores (min) | verdict |",
        lambda head: f"speed-up > {head['threshold']:g}",
        _speedup_cells,
    ),
}


def to_markdown(table: pd.DataFrame, min_seeds: int = MIN_SEEDS) -> str:
    """The report's "Claims" section body: the compare claims' table, then the robustness and
    speed-up claims' tables (when there are such claims)."""
    kind = table["kind"] if "kind" in table else pd.Series("compare", index=table.index)
    lines = [RULE_TEXT.format(min_seeds=min_seeds), ""]
    lines += _section(
        table[kind == "compare"],
        "| claim | source | problem | measured: method vs baseline (median [IQR]) | seeds: paired, failed "
        "(method / baseline), neither reached | per-seed ratio: median [95 % CI] | Wilcoxon p | detectable "
        "| verdict |",
        lambda head: (
            f"{head['metric']}, {head['direction']} is better"
            + ("" if head["threshold"] == 1.0 else f", threshold t = {head['threshold']:g}")
        ),
        _compare_cells,
    )
    for k, (text, header, what, cells) in KIND_TABLES.items():
        if (kind == k).any():
            lines += ["", text, "", *_section(table[kind == k], header, what, cells)]
    return "\n".join(lines) + "\n"


def build(
    tables_dir: str | Path,
    claims: Sequence[Claim],
    min_seeds: int = MIN_SEEDS,
    reference: str | Path | None = None,
) -> dict[str, Path]:
    """Write ``claims.csv`` and ``claims.md`` into ``tables_dir`` (reads ``grid_cycles.csv`` there
    when a claim uses it; ``reference``: the tables folder of a longer run, for "not tested" pairs)."""
    tables_dir = Path(tables_dir)
    tables = {"runs": run_table(tables_dir)}
    for name in ("grid_cycles", "speedup"):
        if any(c.table == name for c in claims):
            tables[name] = pd.read_csv(tables_dir / f"{name}.csv")
    ref = run_table(reference) if reference else None
    table = evaluate_claims(tables, claims, min_seeds, ref)
    out = {"csv": tables_dir / "claims.csv", "md": tables_dir / "claims.md"}
    table.to_csv(out["csv"], index=False)
    out["md"].write_text(to_markdown(table, min_seeds))
    return out


def main(argv: list[str] | None = None) -> int:
    from ml2bench.core.config import load_yaml

    ap = argparse.ArgumentParser(prog="python -m ml2bench.analysis.claims", description="Claims verdicts of a sweep.")
    ap.add_argument("--tables", type=Path, default=Path("results/tables"))
    ap.add_argument("--config", type=Path, required=True, help="sweep config with a 'claims:' list")
    ap.add_argument("--min-seeds", type=int, default=MIN_SEEDS)
    ap.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="tables folder of a longer run of the sweep (default: the config's claims_reference): names "
        "the budget a 'not tested' pair needs",
    )
    args = ap.parse_args(argv)
    try:
        config = load_yaml(args.config)
        claims = load_claims(config)
        out = build(args.tables, claims, args.min_seeds, args.reference or config.get("claims_reference"))
    except (ConfigError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: str(v) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
