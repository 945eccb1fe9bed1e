"""Comparison tables and performance profiles from the aggregated sweep tables.

Definitions (kept simple and interpolation-free on purpose):

* **time to target** of one run: the cost columns (epochs, work units serial and parallel,
  gradient evaluations, training time, energy) at the *first evaluation point* where the target
  quantity is at or below (``direction: below``) or at or above (``direction: above``) the target
  value, among the points within the run's ``work_units`` budget (a target reached past the budget
  is no success). A run that never gets there has cost ``inf`` (energy: ``inf`` too; a run that
  gets there without an energy counter has energy ``NaN`` — not measured is never turned into a
  number). ``work_units_resolution`` of the hit: how much earlier the iterate may have reached it
  (the history column), ``test_metric_at_target``: the test metric there (reported beside).
* **nothing is chosen on the test set**: targets of classification problems are on the validation
  metric (``val_metric``; a test column as target is refused for a problem with a validation
  split, :mod:`ml2bench.sweep.jobs`), and a method's best grid point (:func:`select_points`) is
  chosen on the validation metric, or on the training loss for problems without a validation
  split (PINNs) — never on a test column. Test metrics are reported beside.
* **median / IQR over seeds** use linear quantiles, except that a quantile which touches an
  ``inf`` is ``inf`` (so "median = inf" reads "at most half the seeds reached the target").
  ``NaN`` values (not measured) are dropped; all-NaN gives NaN.
* **solver** (table rows): a method, or ``method[point]`` when that method ran with several
  hyper-parameter points on the problem. Performance profiles compare *methods*, each with its
  best point on each problem (:func:`select_points`) — say so when quoting them.
* **resolution** (``resolution_wu``, per solver): the largest ``work_units_resolution`` of any
  evaluation point of its runs: every work-to-target of the solver is exact to within it.
* **performance profile** (Dolan & Moré 2002): with ``t[p, s]`` the median cost of solver ``s`` on
  problem ``p`` and ``r[p, s] = t[p, s] / min_s t[p, s]``, ``rho_s(tau) = |{p : r[p, s] <= tau}| / n_p``.
  A problem nobody solved gives ``r = inf`` for everyone; a solver not run on a problem counts as
  not solving it.

    python -m ml2bench.analysis.tables --tables results/tables
writes comparison.{csv,md,tex}, time_to_target.csv and profiles.csv next to the inputs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ml2bench.analysis import catalog
from ml2bench.core.records import RUN_KEYS, TIME_TO_TARGET_COLUMNS, write_parquet_atomic

INF = math.inf
COSTS = TIME_TO_TARGET_COLUMNS  # history column -> time-to-target column
PROFILE_COSTS = {"work_units_to_target": "work units to target", "time_to_target_s": "wall time to target"}
TEST_QUANTITIES = ("test_loss", "test_metric")  # reported, never chosen on
TTT_EXTRA = ["work_units_resolution", "max_resolution_wu", "test_metric_at_target"]


# --- statistics --------------------------------------------------------------------------
def quantile(values: Iterable[float], q: float) -> float:
    """Linear quantile of the non-NaN ``values``; ``inf`` wherever the interpolation touches inf."""
    v = np.sort(np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float))
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan
    pos = (v.size - 1) * q
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    if v[hi] == INF:
        return INF
    if lo == hi or v[lo] == v[hi]:
        return float(v[lo])
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def median_iqr(values: Iterable[float]) -> tuple[float, float, float]:
    values = list(values)
    return quantile(values, 0.5), quantile(values, 0.25), quantile(values, 0.75)


# --- time to target ----------------------------------------------------------------------
def first_crossing(history: pd.DataFrame, quantity: str, value: float, direction: str) -> pd.Series | None:
    """The first row (in order of work units) where ``quantity`` reaches the target, or None."""
    if direction not in ("below", "above"):
        raise ValueError(f"target direction must be 'below' or 'above', got {direction!r}")
    h = history.sort_values(["work_units", "iteration"], kind="stable")
    q = pd.to_numeric(h[quantity], errors="coerce")
    hit = (q <= value) if direction == "below" else (q >= value)
    if not hit.any():
        return None
    return h.loc[hit.idxmax()]  # idxmax: label of the first True


def work_budgets(summary: pd.DataFrame) -> dict[tuple, float]:
    """Run key -> its ``work_units`` budget (from the summary's ``budget`` JSON; runs without one are left out)."""
    out = {}
    for row in summary.to_dict("records"):
        budget = json.loads(row["budget"]) if isinstance(row.get("budget"), str) else {}
        if budget.get("work_units") is not None:
            out[tuple(row[k] for k in RUN_KEYS)] = float(budget["work_units"])
    return out


def time_to_target(
    history: pd.DataFrame, targets: Mapping[str, Mapping], budgets: Mapping[tuple, float] | None = None
) -> pd.DataFrame:
    """One row per run: the target's quantity (``val_metric`` for classification), ``reached``, the
    cost columns of :data:`COSTS` (inf: not reached), the resolution and test metric at the hit,
    and ``max_resolution_wu`` of the run. ``budgets``:
    run key -> work-unit budget; evaluation points past it do not count."""
    rows = []
    budgets = budgets or {}
    for key, h in history.groupby(RUN_KEYS, sort=True):
        pid = key[0]
        if pid not in targets:
            raise ValueError(f"no target for problem {pid!r}; targets given for: {', '.join(sorted(targets))}")
        t = targets[pid]
        row = dict(zip(RUN_KEYS, key), target_quantity=t["quantity"])
        limit = budgets.get(tuple(key))
        within = h if limit is None else h[pd.to_numeric(h["work_units"]) <= limit * (1 + 1e-9)]
        hit = first_crossing(within, t["quantity"], float(t["value"]), t.get("direction", "below"))
        row["reached"] = hit is not None
        for src, dst in COSTS.items():
            measured = src in h and pd.to_numeric(h[src], errors="coerce").notna().any()
            if not measured:
                row[dst] = math.nan  # e.g. no energy counter: not measured, reached or not
            else:
                row[dst] = INF if hit is None else float(hit[src])
        resolution = h["work_units_resolution"] if "work_units_resolution" in h else None
        row["work_units_resolution"] = math.nan if hit is None or resolution is None else float(hit[resolution.name])
        row["max_resolution_wu"] = math.nan if resolution is None else float(resolution.max())
        row["test_metric_at_target"] = math.nan if hit is None else float(hit["test_metric"])
        rows.append(row)
    cols = RUN_KEYS + ["target_quantity", "reached"] + list(COSTS.values()) + TTT_EXTRA
    return pd.DataFrame(rows, columns=cols)


def solver_labels(frame: pd.DataFrame) -> pd.Series:
    """``method``, or ``method[point]`` where the method ran with several hyper-parameter points on
    the same problem (per ``problem_id`` when the frame has one)."""
    if not len(frame):
        return pd.Series([], dtype=str)
    keys = ["problem_id", "method"] if "problem_id" in frame else ["method"]
    npoints = frame.groupby(keys)["point"].transform("nunique")
    labels = (
        frame["method"]
        .astype(str)
        .where(npoints <= 1, frame["method"].astype(str) + "[" + frame["point"].astype(str) + "]")
    )
    return labels.astype(str)


# --- comparison table --------------------------------------------------------------------
def comparison_table(summary: pd.DataFrame, ttt: pd.DataFrame) -> pd.DataFrame:
    """Per problem and solver: runs, success rate, statuses, median/q25/q75 over seeds of the final
    test and validation metrics, the final train loss, the final value of the problem's selection
    quantity and the costs to reach the target; the resolution of its work-to-target values."""
    merged = summary.merge(ttt, on=RUN_KEYS, how="left", validate="one_to_one", indicator=True)
    no_history = merged.pop("_merge") == "left_only"
    merged["reached"] = merged["reached"].astype("boolean").fillna(False).astype(bool)
    for col in COSTS.values():
        merged.loc[no_history, col] = INF  # a run without evaluation points never reached the target
    merged["solver"] = solver_labels(merged)
    if "selection_quantity" not in merged:  # runs recorded before validation splits: the training loss
        merged["selection_quantity"] = "train_loss"
    merged["final_selection"] = [
        row.get(f"final_{row['selection_quantity']}", math.nan) for row in merged.to_dict("records")
    ]
    rows = []
    for (pid, solver), g in merged.groupby(["problem_id", "solver"], sort=True):
        quantity = str(g["selection_quantity"].iloc[0])
        row = {
            "problem_id": pid,
            "problem": g["problem"].iloc[0],
            "solver": solver,
            "method": g["method"].iloc[0],
            "point": g["point"].iloc[0],
            "metric_name": g["metric_name"].iloc[0],
            "selection_quantity": quantity,
            "selection_higher_is_better": quantity.endswith("_metric") and bool(g["metric_higher_is_better"].iloc[0]),
            "n_runs": len(g),
            "n_diverged": int((g["status"] == "diverged").sum()),
            "n_failed": int((g["status"] == "failed").sum()),
            "success_rate": float(g["reached"].mean()),
            "resolution_wu": float(g["max_resolution_wu"].max()) if g["max_resolution_wu"].notna().any() else math.nan,
        }
        for col, name in (
            ("final_test_metric", "final_metric"),
            ("final_val_metric", "final_val_metric"),
            ("final_train_loss", "final_train_loss"),
            ("final_selection", "final_selection"),
            *((c, c) for c in COSTS.values()),
        ):
            values = g[col].astype(float) if col in g else pd.Series([math.nan] * len(g))
            med, q25, q75 = median_iqr(values)
            row[f"{name}_median"], row[f"{name}_q25"], row[f"{name}_q75"] = med, q25, q75
        rows.append(row)
    return pd.DataFrame(rows)


def select_points(table: pd.DataFrame, targets: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """One row of the comparison ``table`` per (problem, method): the method's best
    hyper-parameter point, chosen without looking at a test column.

    Order: fewest median work units to the target — only where the target is not on a test
    column (classification: the validation metric) — then the best median final value of the
    problem's selection quantity (validation metric; training loss where there is no validation
    split, e.g. PINNs, whose targets are on the reported relative L2 error and so cannot choose),
    then the point's name. Adds ``n_points`` (points the method ran with)."""
    rows = []
    for (pid, _method), g in table.groupby(["problem_id", "method"], sort=False):
        quantity = (targets or {}).get(pid, {}).get("quantity", "test_metric")
        by_target = quantity not in TEST_QUANTITIES
        sign = -1.0 if bool(g["selection_higher_is_better"].iloc[0]) else 1.0

        def key(i: int, g=g, by_target=by_target, sign=sign) -> tuple:
            r = g.iloc[i]
            work = float(r["work_units_to_target_median"]) if by_target else 0.0
            final = float(r["final_selection_median"])
            return (INF if math.isnan(work) else work, INF if math.isnan(final) else sign * final, str(r["point"]))

        best = g.iloc[min(range(len(g)), key=key)].copy()
        best["n_points"] = g["point"].nunique()
        rows.append(best)
    return pd.DataFrame(rows)


# --- performance profiles ----------------------------------------------------------------
def cost_matrix(table: pd.DataFrame, cost: str, targets: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """problems x methods matrix of median ``cost`` (e.g. ``work_units_to_target``); missing = inf.

    A method run with several hyper-parameter points on a problem enters with its best point there
    (:func:`select_points`: chosen on validation or training quantities, never on the profile's
    own cost when that is measured on a test column); a table without a ``method`` column is taken
    per ``solver``.
    """
    col = f"{cost}_median"
    if "method" in table:
        table = select_points(table, targets)
    key = "method" if "method" in table else "solver"
    best = table.assign(_c=table[col].astype(float).fillna(INF)).groupby(["problem_id", key])["_c"].min()
    return best.unstack(key).astype(float).fillna(INF)


def performance_ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """r[p, s] = t[p, s] / min_s t[p, s]; inf where s failed or nobody solved p."""
    t = costs.to_numpy(dtype=float)
    t = np.where(np.isnan(t), INF, t)
    best = t.min(axis=1, keepdims=True) if t.size else np.zeros((t.shape[0], 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.isfinite(t), t / best, INF)
    r = np.where(np.isfinite(t) & (t == best), 1.0, r)  # the best (also when it costs 0)
    r = np.where(np.isnan(r), INF, r)
    return pd.DataFrame(r, index=costs.index, columns=costs.columns)


def rho(ratios: pd.DataFrame, taus: Iterable[float]) -> pd.DataFrame:
    """rho_s(tau): fraction of problems with ratio <= tau; rows tau, columns solvers."""
    taus = np.asarray(list(taus), dtype=float)
    r = ratios.to_numpy(dtype=float)
    data = (r[None, :, :] <= taus[:, None, None]).mean(axis=1) if r.size else np.zeros((len(taus), 0))
    return pd.DataFrame(data, index=pd.Index(taus, name="tau"), columns=ratios.columns)


def profile_taus(ratios: pd.DataFrame) -> np.ndarray:
    """Breakpoints of the step functions: 1, every finite ratio, and a little beyond the largest."""
    finite = ratios.to_numpy(dtype=float)
    finite = np.unique(finite[np.isfinite(finite)])
    tmax = max(2.0, float(finite.max()) * 1.25) if finite.size else 2.0
    return np.unique(np.concatenate([[1.0], finite, [tmax]]))


def profiles(table: pd.DataFrame, targets: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Long table (cost, tau, solver, rho) of the performance profiles of :data:`PROFILE_COSTS`."""
    out = []
    for cost in PROFILE_COSTS:
        ratios = performance_ratios(cost_matrix(table, cost, targets))
        r = rho(ratios, profile_taus(ratios))
        r.columns.name = None
        r = r.reset_index().melt(id_vars="tau", var_name="solver", value_name="rho")
        r.insert(0, "cost", cost)
        out.append(r)
    return pd.concat(out, ignore_index=True)


# --- renderings --------------------------------------------------------------------------
def _num(x: float, latex: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == INF:
        return r"$\infty$" if latex else "∞"
    ax = abs(x)
    if ax != 0 and (ax >= 1e4 or ax < 1e-3):
        s = f"{x:.2e}"
        if latex:
            mant, exp = s.split("e")
            return f"${mant}\\times 10^{{{int(exp)}}}$"
        return s
    return f"{x:.3g}"


def _cell(row: Mapping, name: str, latex: bool = False) -> str:
    med, q25, q75 = row[f"{name}_median"], row[f"{name}_q25"], row[f"{name}_q75"]
    if isinstance(med, float) and math.isnan(med):
        return "n/a"
    return f"{_num(med, latex)} [{_num(q25, latex)}, {_num(q75, latex)}]"


DISPLAY = [  # (header, column stem or callable)
    ("final val. metric", "final_val_metric"),
    ("final test metric", "final_metric"),
    ("final train loss", "final_train_loss"),
    ("work units to target", "work_units_to_target"),
    ("parallel WU to target", "work_units_parallel_to_target"),
    ("time to target (s)", "time_to_target_s"),
    ("energy to target (J)", "energy_to_target_j"),
]


def _display_rows(table: pd.DataFrame, latex: bool) -> tuple[list[str], dict[str, list[list[str]]]]:
    header = ["solver", "runs", "success"] + [h for h, _ in DISPLAY] + ["resolution (WU)"]
    per_problem: dict[str, list[list[str]]] = {}
    for _, row in table.iterrows():
        cells = [str(row["solver"]), str(row["n_runs"]), f"{100 * row['success_rate']:.0f}%"]
        cells += [_cell(row, stem, latex) for _, stem in DISPLAY]
        cells.append(_num(float(row["resolution_wu"]), latex) if "resolution_wu" in row else "n/a")
        per_problem.setdefault(str(row["problem_id"]), []).append(cells)
    return header, per_problem


def _target_text(pid: str, targets: Mapping | None) -> str:
    if not targets or pid not in targets:
        return ""
    t = targets[pid]
    op = "≤" if t.get("direction", "below") == "below" else "≥"
    return f"target: {t['quantity']} {op} {t['value']}"


def to_markdown(table: pd.DataFrame, targets: Mapping | None = None) -> str:
    """One markdown table per problem; cells are ``median [q25, q75]`` over seeds."""
    header, per_problem = _display_rows(table, latex=False)
    out = [
        "Cells: median [25%, 75%] over seeds. ∞: target not reached within the budget (by at least half "
        "the seeds for a median); n/a: not measured. success: fraction of seeds reaching the target. Targets "
        "and choices use the validation metric (PINNs: the training loss); the test metric is reported "
        "beside. parallel WU: additive Schwarz's local phase counted once per iteration. resolution: "
        "every work-to-target of the row is exact to within it.",
        "",
    ]
    for pid, rows in per_problem.items():
        metric = table.loc[table["problem_id"] == pid, "metric_name"].iloc[0]
        out.append(f"### {pid} (metric: {metric}; {_target_text(pid, targets)})")
        out.append("")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for cells in rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)


def _tex_escape(s: str) -> str:
    for a, b in (
        ("{", r"\{"),
        ("}", r"\}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("~", r"\textasciitilde{}"),
    ):
        s = s.replace(a, b)
    return s


def to_latex(table: pd.DataFrame, targets: Mapping | None = None) -> str:
    """One booktabs ``tabular`` per problem (needs ``\\usepackage{booktabs}``)."""
    header, per_problem = _display_rows(table, latex=True)
    out = [
        "% generated by ml2bench.analysis.tables; cells: median [25%, 75%] over seeds; $\\infty$: target not reached"
    ]
    for pid, rows in per_problem.items():
        metric = table.loc[table["problem_id"] == pid, "metric_name"].iloc[0]
        tt = _target_text(pid, targets).replace("≤", r"$\le$").replace("≥", r"$\ge$")
        out.append(f"% {pid}: metric {metric}; {tt}")
        out.append(r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
        out.append(r"\toprule")
        out.append(
            rf"\multicolumn{{{len(header)}}}{{l}}{{{_tex_escape(pid)} ({_tex_escape(metric)}; {_tex_escape(tt)})}}\\"
        )
        out.append(r"\midrule")
        out.append(" & ".join(_tex_escape(h) for h in header) + r" \\")
        out.append(r"\midrule")
        for cells in rows:
            cells = [_tex_escape(cells[0]), cells[1], cells[2].replace("%", r"\%")] + cells[3:]
            out.append(" & ".join(cells) + r" \\")
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
        out.append("")
    return "\n".join(out)


# --- driver ------------------------------------------------------------------------------
def build(tables_dir: str | Path, targets: Mapping | None = None, out: str | Path | None = None) -> dict[str, Path]:
    """Read history/summary/targets from ``tables_dir`` and write the comparison outputs."""
    tables_dir = Path(tables_dir)
    out = Path(out) if out else tables_dir
    history = pd.read_parquet(tables_dir / "history.parquet")
    summary = pd.read_parquet(tables_dir / "summary.parquet")
    if targets is None:
        targets = json.loads((tables_dir / "targets.json").read_text())
    ttt = time_to_target(history, targets, work_budgets(summary))
    table = comparison_table(summary, ttt)
    prof = profiles(table, targets)
    paths = {name: out / name for name in catalog.table_files()}
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(ttt, paths["time_to_target.csv"])
    write_parquet_atomic(table, paths["comparison.csv"])
    write_parquet_atomic(table, paths["comparison.parquet"])
    write_parquet_atomic(prof, paths["profiles.csv"])
    paths["comparison.md"].write_text(to_markdown(table, targets) + "\n")
    paths["comparison.tex"].write_text(to_latex(table, targets) + "\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml2bench.analysis.tables",
        description="Comparison table (median and IQR over seeds; time/work/energy to target; success "
        "rate) in CSV, markdown and LaTeX, plus performance-profile data.",
    )
    parser.add_argument(
        "--tables",
        type=Path,
        default=Path("results/tables"),
        help="folder with history.parquet, summary.parquet, targets.json (default: results/tables)",
    )
    parser.add_argument("--targets", type=Path, help="targets JSON (default: <tables>/targets.json)")
    parser.add_argument("--out", type=Path, help="output folder (default: --tables)")
    args = parser.parse_args(argv)
    try:
        targets = json.loads(args.targets.read_text()) if args.targets else None
        paths = build(args.tables, targets, args.out)
    except (ValueError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
