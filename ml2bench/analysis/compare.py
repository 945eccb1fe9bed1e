"""Diff two result tables: what got slower, faster, worse or better between two sweeps.

Inputs are summary tables (one row per run, see :mod:`ml2bench.core.records`): a ``summary.parquet``
or ``summary.csv`` file, a folder holding one (e.g. ``results/tables`` written by
:mod:`ml2bench.analysis.aggregate`, or one run directory), or a runs root whose ``*/.../summary.parquet``
files are concatenated. Rows are grouped by (problem, method) — ``problem_id`` instead of
``problem`` and ``point`` as well when both tables carry them — and each group reports the
median over seeds of

* ``train_time_s`` (training wall time; larger = slower),
* ``work_units`` (fine-level-equivalent evaluations; larger = slower),
* ``final_test_metric`` (its direction from ``metric_higher_is_better``: accuracy higher is
  better, rel_l2 lower is better),

in OLD and NEW with the relative change ``(new - old) / |old|``. The ``flag`` column lists, comma
separated, ``worse`` / ``slower`` (regressions) and ``better`` / ``faster`` (improvements) for
changes beyond the thresholds; more unfinished runs (``failed``/``diverged``) in NEW than in OLD
also count as ``worse``. Groups present on one side only are listed with a ``note``.

    python -m ml2bench.analysis.compare OLD NEW [--time-threshold 0.1] [--work-threshold 0.1]
                                       [--metric-threshold 0.01] [--fail-on-regression]

Exit status: 0, or 1 with ``--fail-on-regression`` when a group got slower or worse **or when
the comparison cannot be trusted** — the gate fails closed and lists each reason on stderr:
``missing:`` NEW is incomplete (empty, a group, a seed or a gated column of OLD missing, fewer
runs, NaN where OLD has a value); ``invalid:`` ±inf in NEW where OLD is finite, a seed listed twice
in a group, a metric direction (``metric_higher_is_better``) that is absent, unreadable or
differs between OLD and NEW, a value that is not a number, a row without a group key (e.g. an
empty ``point``). 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

UNFINISHED = ("failed", "diverged")
REGRESSIONS = ("worse", "slower")
FLAG_ORDER = ("worse", "slower", "better", "faster")


@dataclass(frozen=True)
class Thresholds:
    """Relative changes (fractions, 0.1 = 10 %) beyond which a change is flagged."""

    time: float = 0.10  # train_time_s: wall time on shared machines is noisy
    work: float = 0.10  # work_units: deterministic for a fixed config, any change is real
    metric: float = 0.01  # final_test_metric, relative, in the metric's "better" direction


def read_table(path: str | Path) -> pd.DataFrame:
    """A summary table from a parquet/CSV file, a folder holding one, or a runs root."""
    path = Path(path)
    if path.is_file():
        try:
            return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        except (ValueError, OSError) as err:  # truncated/garbage parquet: name the file, not a buffer
            raise ValueError(
                f"{str(path)!r} is not a readable table ({' '.join(str(err).split())[:160]}); "
                f"regenerate it (e.g. re-run the sweep or ml2bench aggregate)"
            ) from None
    if path.is_dir():
        for name in ("summary.parquet", "summary.csv"):
            if (path / name).is_file():
                return read_table(path / name)
        files = sorted(p for p in path.rglob("summary.parquet") if "failed" not in p.parent.parts[len(path.parts) :])
        if files:
            return pd.concat([read_table(f) for f in files], ignore_index=True)
        raise FileNotFoundError(f"{str(path)!r} holds no summary.parquet or summary.csv")
    raise FileNotFoundError(f"{str(path)!r} not found (expected a summary parquet/CSV file or a folder)")


def group_keys(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """(problem_id | problem, method[, point]) — the finest grouping both tables support."""
    both = set(old.columns) & set(new.columns)
    keys = ["problem_id" if "problem_id" in both else "problem", "method"]
    if "point" in both:
        keys.append("point")
    missing = [k for k in keys if k not in both]
    if missing:
        raise ValueError(f"result tables need the columns {keys}; missing in one of them: {missing}")
    return keys


GATED_COLUMNS = ("train_time_s", "work_units", "final_test_metric")
_NAN_TEXT = {"", "nan", "none", "null", "na", "<na>"}
_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _prepare(df: pd.DataFrame, keys: list[str], side: str) -> tuple[pd.DataFrame, list[str]]:
    """Group keys as text (an empty key becomes ``""``) and gated columns as floats, with an
    ``invalid:`` line for every row that had no key and every value that is not a number."""
    df = df.copy()
    problems = []
    for k in keys:
        text = df[k].astype(str).str.strip()
        empty = df[k].isna() | text.str.lower().isin(_NAN_TEXT)
        if empty.any():
            problems.append(f"invalid: {side} has {int(empty.sum())} row(s) with no {k}")
        df[k] = text.where(~empty, "")
    for col in GATED_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        unparsed = raw.notna() & num.isna() & ~raw.astype(str).str.strip().str.lower().isin(_NAN_TEXT)
        if unparsed.any():
            bad = ", ".join(repr(v) for v in raw[unparsed].unique()[:3])
            problems.append(f"invalid: {side} {col} holds {int(unparsed.sum())} value(s) that are not numbers ({bad})")
        df[col] = num.astype(float)
    if "metric_higher_is_better" not in df.columns:
        df["metric_higher_is_better"] = np.nan
    return df, problems


def _medians(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    status = df["status"].astype(str) if "status" in df.columns else pd.Series("ok", index=df.index)
    df = df.assign(_unfinished=status.isin(UNFINISHED).astype(int))
    agg = df.groupby(keys, dropna=False, sort=True).agg(
        runs=("method", "size"),
        unfinished=("_unfinished", "sum"),
        train_time_s=("train_time_s", "median"),
        work_units=("work_units", "median"),
        final_test_metric=("final_test_metric", "median"),
        higher=("metric_higher_is_better", "first"),
    )
    if "metric_name" in df.columns:
        agg["metric_name"] = df.groupby(keys, dropna=False, sort=True)["metric_name"].first()
    else:
        agg["metric_name"] = ""
    return agg


def _rel(old: float, new: float) -> float:
    if not (math.isfinite(old) and math.isfinite(new)):
        return math.nan
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


def _as_bool(value) -> bool | None:
    """True/False from a bool, 0/1 or the words true/false/yes/no; None for anything else
    (absent, NaN, another word): an unknown direction is never guessed."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _WORDS.get(value.strip().lower())
    return None


def compare(old_df: pd.DataFrame, new_df: pd.DataFrame, thresholds: Thresholds | None = None) -> pd.DataFrame:
    """One row per group: medians old/new, relative changes and the ``flag`` column."""
    t = thresholds or Thresholds()
    keys = group_keys(old_df, new_df)
    old, new = (_medians(_prepare(df, keys, side)[0], keys) for df, side in ((old_df, "OLD"), (new_df, "NEW")))
    index = old.index.union(new.index)
    rows = []
    for key in index:
        key_t = key if isinstance(key, tuple) else (key,)
        row: dict = dict(zip(keys, key_t))
        o = old.loc[key] if key in old.index else None
        n = new.loc[key] if key in new.index else None
        ref = n if n is not None else o
        row["metric"] = ref["metric_name"]
        row["runs_old"] = int(o["runs"]) if o is not None else 0
        row["runs_new"] = int(n["runs"]) if n is not None else 0
        flags: set[str] = set()
        for col, short in (("train_time_s", "time"), ("work_units", "work"), ("final_test_metric", "metric")):
            ov = float(o[col]) if o is not None else math.nan
            nv = float(n[col]) if n is not None else math.nan
            rel = _rel(ov, nv)
            row[f"{short}_old"], row[f"{short}_new"], row[f"{short}_rel"] = ov, nv, rel
            if math.isnan(rel):
                continue
            if short in ("time", "work"):
                limit = t.time if short == "time" else t.work
                if rel > limit:
                    flags.add("slower")
                elif rel < -limit:
                    flags.add("faster")
            else:
                higher = _as_bool(ref["higher"])
                if higher is None:
                    continue
                gain = rel if higher else -rel
                if gain < -t.metric:
                    flags.add("worse")
                elif gain > t.metric:
                    flags.add("better")
        if o is not None and n is not None:
            frac_old = o["unfinished"] / max(o["runs"], 1)
            frac_new = n["unfinished"] / max(n["runs"], 1)
            if frac_new > frac_old:
                flags.add("worse")
        row["unfinished_old"] = int(o["unfinished"]) if o is not None else 0
        row["unfinished_new"] = int(n["unfinished"]) if n is not None else 0
        if "slower" in flags and "faster" in flags:  # cannot both hold; time and work disagree
            flags.discard("faster")
        row["flag"] = ",".join(f for f in FLAG_ORDER if f in flags)
        row["note"] = "only in old" if n is None else ("only in new" if o is None else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _name(row: pd.Series | dict, keys: list[str]) -> str:
    return "/".join(str(row[k]) for k in keys)


def _describe(value: float) -> str:
    return "empty (NaN)" if math.isnan(value) else ("+inf" if value > 0 else "-inf")


def _seed_failures(old: pd.DataFrame, new: pd.DataFrame, keys: list[str]) -> list[str]:
    """Per (group, seed): seeds listed twice, seeds of OLD absent from NEW, and gated values
    that are NaN or ±inf in NEW where the same seed's OLD value is finite."""
    out = []
    for side, df in (("OLD", old), ("NEW", new)):
        counts = df.groupby([*keys, "seed"], dropna=False).size()
        for key, n in counts[counts > 1].items():
            out.append(f"invalid: group {'/'.join(map(str, key[:-1]))}: seed {key[-1]} appears {n} times in {side}")
    new_seeds = new.groupby(keys, dropna=False)["seed"].agg(set)
    for key, seeds in old.groupby(keys, dropna=False)["seed"].agg(set).items():
        name = "/".join(map(str, key if isinstance(key, tuple) else (key,)))
        if key not in new_seeds.index:
            continue  # the whole group is missing: reported once, by group
        lost = sorted(seeds - new_seeds[key], key=str)
        if lost:
            out.append(f"missing: group {name}: seed(s) {', '.join(map(str, lost))} missing in NEW")
    both = old.drop_duplicates([*keys, "seed"]).merge(
        new.drop_duplicates([*keys, "seed"]), on=[*keys, "seed"], suffixes=("_old", "_new")
    )
    for col in GATED_COLUMNS:
        bad: dict[tuple[str, str], list[str]] = {}
        for _, r in both[np.isfinite(both[f"{col}_old"]) & ~np.isfinite(both[f"{col}_new"])].iterrows():
            bad.setdefault((_name(r, keys), _describe(r[f"{col}_new"])), []).append(str(r["seed"]))
        for (name, what), seeds in bad.items():
            kind = "missing" if what.startswith("empty") else "invalid"
            out.append(f"{kind}: group {name}: {col} is {what} in NEW (seed {', '.join(seeds)}) where OLD is finite")
    return out


def gate_failures(old_df: pd.DataFrame, new_df: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Every reason the regression gate cannot pass although nothing was flagged — it fails
    closed. Each line starts with ``missing:`` (NEW lacks what OLD has) or ``invalid:`` (a value
    or a key that makes the comparison meaningless); see the module docstring."""
    if len(new_df) == 0:
        return ["missing: NEW holds no runs (empty table)"]
    out = ["missing: OLD holds no runs (empty reference)"] if len(old_df) == 0 else []
    for side, df in (("OLD", old_df), ("NEW", new_df)):
        out += [f"missing: column {c!r} missing in {side}" for c in GATED_COLUMNS if c not in df.columns]
    keys = group_keys(old_df, new_df)
    (old, old_bad), (new, new_bad) = (_prepare(df, keys, side) for df, side in ((old_df, "OLD"), (new_df, "NEW")))
    out += old_bad + new_bad
    per_seed = "seed" in old.columns and "seed" in new.columns
    for _, r in table.iterrows():
        name = _name(r, keys)
        if r["runs_new"] == 0:
            out.append(f"missing: group {name} missing in NEW ({r['runs_old']} runs in OLD)")
            continue
        if r["runs_new"] < r["runs_old"]:
            out.append(f"missing: group {name} has {r['runs_new']} runs in NEW, {r['runs_old']} in OLD")
        if not per_seed:
            for short, col in (("time", "train_time_s"), ("work", "work_units"), ("metric", "final_test_metric")):
                if col in new_df.columns and math.isfinite(r[f"{short}_old"]) and not math.isfinite(r[f"{short}_new"]):
                    kind = "missing" if math.isnan(r[f"{short}_new"]) else "invalid"
                    out.append(f"{kind}: group {name}: {col} is {_describe(r[f'{short}_new'])} in NEW")
        if r["runs_old"] and math.isfinite(r["metric_old"]):  # the metric is gated: its direction must be known
            directions = {}
            for side, df in (("OLD", old), ("NEW", new)):
                rows = df[(df[keys].astype(str) == [str(r[k]) for k in keys]).all(axis=1)]
                found = {_as_bool(v) for v in rows["metric_higher_is_better"]}
                directions[side] = found.pop() if len(found) == 1 else None
            if None in directions.values():
                out.append(
                    f"invalid: group {name}: direction of final_test_metric unknown (metric_higher_is_better "
                    f"absent, not true/false or mixed in {'OLD' if directions['OLD'] is None else 'NEW'})"
                )
            elif directions["OLD"] != directions["NEW"]:
                out.append(f"invalid: group {name}: metric_higher_is_better differs between OLD and NEW")
    if per_seed:
        out += _seed_failures(old, new, keys)
    return out


def has_regression(table: pd.DataFrame) -> bool:
    return any(f in str(flag).split(",") for flag in table["flag"] for f in REGRESSIONS)


def _fmt(value, col: str) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "—"
        if col.endswith("_rel"):
            return "inf" if math.isinf(value) else f"{100 * value:+.1f}%"
        if col.startswith("time_"):
            return f"{value:.3g}s"
        return f"{value:.4g}"
    return str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown (no dependency on ``tabulate``)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], c) for c in cols) + " |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ml2bench compare",
        description="Diff two result tables (summary parquet/CSV files or results/tables folders): median "
        "over seeds of train time, work units and final test metric per (problem, method), "
        "relative change and a flag (slower/worse/faster/better).",
    )
    p.add_argument("old", type=Path, help="reference summary table or folder")
    p.add_argument("new", type=Path, help="summary table or folder to check")
    p.add_argument(
        "--time-threshold",
        type=float,
        default=Thresholds.time,
        help="relative change of train_time_s flagged slower/faster (default %(default)s)",
    )
    p.add_argument(
        "--work-threshold",
        type=float,
        default=Thresholds.work,
        help="relative change of work_units flagged slower/faster (default %(default)s)",
    )
    p.add_argument(
        "--metric-threshold",
        type=float,
        default=Thresholds.metric,
        help="relative change of the final test metric flagged worse/better (default %(default)s)",
    )
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a group got slower or worse beyond the thresholds",
    )
    p.add_argument("--only-flagged", action="store_true", help="print only rows with a flag or a note")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in ("time_threshold", "work_threshold", "metric_threshold"):
        if not getattr(args, name) >= 0:  # NaN fails every comparison: "< 0" would let it through
            print(
                f"error: --{name.replace('_', '-')} must be a number >= 0, got {getattr(args, name)}", file=sys.stderr
            )
            return EXIT_BAD_INPUT
    try:
        old, new = read_table(args.old), read_table(args.new)
        table = compare(old, new, Thresholds(args.time_threshold, args.work_threshold, args.metric_threshold))
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    shown = table[(table["flag"] != "") | (table["note"] != "")] if args.only_flagged else table
    print(to_markdown(shown))
    regressed = has_regression(table)
    n_reg = int(sum(any(f in str(x).split(",") for f in REGRESSIONS) for x in table["flag"]))
    failures = gate_failures(old, new, table)
    n_missing = sum(line.startswith("missing:") for line in failures)
    print(
        f"\n{len(table)} groups, {n_reg} regressed (slower/worse), {n_missing} missing in NEW, "
        f"{len(failures) - n_missing} invalid"
    )
    for line in failures:
        print(line, file=sys.stderr)
    return EXIT_REGRESSION if ((regressed or failures) and args.fail_on_regression) else 0


if __name__ == "__main__":
    sys.exit(main())
