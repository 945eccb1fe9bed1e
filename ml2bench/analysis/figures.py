"""Figures of a sweep (matplotlib, one style, PDF + PNG), sized for a paper column (3.5 in).

Per problem (sweep entry id) into ``<out>/<problem_id>/``:

* ``convergence_{epochs,work_units,time,energy}``: train loss (top) and test metric (bottom)
  against that cost; the median over seeds as a line and the 25–75 % band. Seeds are compared on
  a common grid by carrying each run's last evaluation forward (no interpolation); a grid point
  counts where at least half the seeds have data, and a finished run keeps its final value
  (so the median never jumps because a faster seed stopped). Without any energy counter the energy figure is
  a note saying so (no invented numbers).
* ``time_to_target``: median work units and wall time to the target, IQR as error bars,
  "not reached" marked.

Across problems, ``<out>/performance_profiles``: Dolan–Moré profiles for work units and wall time
to target (see :mod:`ml2bench.analysis.tables`).

    python -m ml2bench.analysis.figures --tables results/tables --out figures
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ml2bench.analysis import catalog  # noqa: E402
from ml2bench.analysis import tables as tb  # noqa: E402

COLUMN_WIDTH_IN = 3.5
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.3,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "figure.dpi": 100,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "legend.frameon": False,
}
METHOD_ORDER = ("sgd", "adam", "lbfgs", "tr", "rmtr", "mgopt", "schwarz")
PALETTE = plt.get_cmap("tab10").colors  # the built-in methods, in METHOD_ORDER


def _distinct(colors: Iterable[tuple], taken: list[tuple], min_distance: float = 0.25) -> list[tuple]:
    """Colours at RGB distance > ``min_distance`` from every taken one and from each other, not
    too light to see on white (luminance < 0.75)."""
    out = []
    for c in colors:
        rgb = np.array(c[:3])
        if float(rgb @ (0.299, 0.587, 0.114)) >= 0.75:
            continue
        if all(np.linalg.norm(rgb - np.array(t[:3])) > min_distance for t in taken + out):
            out.append(tuple(c[:3]))
    return out


#: colours for methods outside METHOD_ORDER (plugins, new methods): none close to a built-in one
OTHER_COLORS = _distinct(
    [*PALETTE[len(METHOD_ORDER) :], *(c for n in ("Dark2", "Set1", "tab20b") for c in plt.get_cmap(n).colors)],
    list(PALETTE[: len(METHOD_ORDER)]),
)
LINESTYLES = ("-", "--", ":", "-.")

AXES = {  # name -> (history column, axis label)
    "epochs": ("epoch", "epochs"),
    "work_units": ("work_units", "work units (fine-level gradient evaluations)"),
    "time": ("train_time_s", "training wall time (s)"),
    "energy": ("energy_j", "energy (J)"),
}
FIGURE_NAMES = [f.name for f in catalog.problem_figures()]  # per problem (ml2bench.analysis.catalog)


def method_color(method: str) -> tuple:
    """The built-in methods' fixed colours; any other name a colour of :data:`OTHER_COLORS` chosen by
    a hash of the name (the same in every figure and every run, never a built-in method's)."""
    if method in METHOD_ORDER:
        return PALETTE[METHOD_ORDER.index(method)]
    digest = int.from_bytes(hashlib.sha256(method.encode()).digest()[:8], "big")
    return OTHER_COLORS[digest % len(OTHER_COLORS)]


def _solver_style(frame: pd.DataFrame) -> dict[str, dict]:
    """solver label -> plot kwargs: colour by method, line style by hyper-parameter point."""
    styles = {}
    for method, g in frame.groupby("method", sort=False):
        for i, solver in enumerate(sorted(g["solver"].unique())):
            styles[solver] = {"color": method_color(str(method)), "linestyle": LINESTYLES[i % len(LINESTYLES)]}
    return styles


def _ordered(solvers: Iterable[str]) -> list[str]:
    def key(s: str):
        m = s.split("[")[0]
        return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), s)

    return sorted(set(solvers), key=key)


def save(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


# --- seed statistics on a common grid ----------------------------------------------------
def step_values(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of the last evaluation at or before each grid point (NaN before the run's first point;
    after its last point a finished run keeps its final value)."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    idx = np.searchsorted(x, grid, side="right") - 1
    out = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
    out[grid < x[0]] = np.nan
    return out


def seed_band(runs: list[tuple[np.ndarray, np.ndarray]], max_points: int = 400):
    """(grid, median, q25, q75) over runs [(x, y), ...]; NaN where fewer than half have started."""
    runs = [(x[np.isfinite(x)], y[np.isfinite(x)]) for x, y in runs if np.isfinite(x).any()]
    if not runs:
        return (np.array([]),) * 4
    grid = np.unique(np.concatenate([x for x, _ in runs]))
    if grid.size > max_points:
        grid = np.unique(np.quantile(grid, np.linspace(0, 1, max_points)))
    values = np.vstack([step_values(x, y, grid) for x, y in runs])
    count = np.isfinite(values).sum(axis=0)
    enough = count >= max(1, math.ceil(len(runs) / 2))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med, q25, q75 = (np.nanquantile(values, q, axis=0) for q in (0.5, 0.25, 0.75))
    for a in (med, q25, q75):
        a[~enough] = np.nan
    return grid, med, q25, q75


def _with_solver(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["solver"] = tb.solver_labels(frame)
    return frame


def _positive(values) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool((v > 0).all())


# --- figures -----------------------------------------------------------------------------
def note_figure(text: str, stem: str | Path, title: str = "") -> list[Path]:
    """A figure holding only a note (e.g. why there is no energy plot)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 1.2))
        ax.axis("off")
        if title:
            ax.set_title(title)
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
        return save(fig, stem)


def convergence_figure(
    history: pd.DataFrame,
    axis: str,
    stem: str | Path,
    title: str = "",
    metric_name: str = "test metric",
    metric_higher: bool = True,
) -> list[Path]:
    """Train loss and test metric vs ``axis`` (epochs, work_units, time, energy) for one problem."""
    xcol, xlabel = AXES[axis]
    h = _with_solver(history)
    if axis == "energy" and not np.isfinite(pd.to_numeric(h[xcol], errors="coerce")).any():
        return note_figure(
            "Energy was not measured: no readable RAPL or NVML counter on the machine(s) "
            "that ran these jobs.\nNo energy figure is drawn.",
            stem,
            title,
        )
    styles = _solver_style(h)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 1, figsize=(COLUMN_WIDTH_IN, 3.9), sharex=True)
        panels = (("train_loss", "train loss"), ("test_metric", metric_name))
        for ax, (ycol, ylabel) in zip(axes, panels):
            for solver in _ordered(h["solver"]):
                g = h[h["solver"] == solver]
                runs = [(r[xcol].to_numpy(float), r[ycol].to_numpy(float)) for _, r in g.groupby("seed")]
                runs = [(x, np.where(np.isfinite(y), y, np.nan)) for x, y in runs]
                grid, med, q25, q75 = seed_band(runs)
                if not grid.size:
                    continue
                ax.plot(grid, med, drawstyle="steps-post", label=solver, **styles[solver])
                ax.fill_between(grid, q25, q75, step="post", alpha=0.2, color=styles[solver]["color"], lw=0)
            ax.set_ylabel(ylabel)
            use_log = _positive(h[ycol]) and (ycol != "test_metric" or not metric_higher)
            if use_log:
                ax.set_yscale("log")
        axes[-1].set_xlabel(xlabel)
        if title:
            axes[0].set_title(title)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, -0.02),
            ncol=min(4, max(1, len(labels))),
            handlelength=2.2,
        )
        fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labels) - 1) // 4), 1, 1))
        return save(fig, stem)


def time_to_target_figure(ttt: pd.DataFrame, stem: str | Path, title: str = "", target_text: str = "") -> list[Path]:
    """Horizontal bars: median work units and wall time to target, IQR whiskers, 'not reached'."""
    t = _with_solver(ttt)
    solvers = _ordered(t["solver"])
    styles = _solver_style(t)
    costs = (("work_units_to_target", "work units to target"), ("time_to_target_s", "wall time to target (s)"))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH_IN, 0.5 + 0.28 * len(solvers) + 0.6), sharey=True)
        y = np.arange(len(solvers))
        for ax, (col, label) in zip(axes, costs):
            stats = [tb.median_iqr(t.loc[t["solver"] == s, col].astype(float)) for s in solvers]
            finite = [v for st in stats for v in st if np.isfinite(v)]
            top = max(finite) if finite and max(finite) > 0 else 1.0
            xmax = top * 1.4  # room for the labels right of the whiskers
            for i, (s, (med, q25, q75)) in enumerate(zip(solvers, stats)):
                n = int((t["solver"] == s).sum())
                reached = int(t.loc[t["solver"] == s, "reached"].sum())
                if np.isfinite(med):
                    ax.barh(i, med, color=styles[s]["color"], alpha=0.85, height=0.6)
                    hi = q75 if np.isfinite(q75) else top * 1.1
                    ax.errorbar(
                        med, i, xerr=[[med - q25], [hi - med]], fmt="none", ecolor="black", elinewidth=0.8, capsize=2
                    )
                    if not np.isfinite(q75):  # the upper quartile did not reach the target
                        ax.plot([hi], [i], marker=">", color="black", markersize=3)
                    if reached < n:
                        ax.text(hi + 0.03 * top, i, f"{reached}/{n}", va="center", ha="left", fontsize=6)
                else:
                    ax.text(
                        0.02 * xmax,
                        i,
                        f"not reached ({reached}/{n})",
                        va="center",
                        ha="left",
                        fontsize=6,
                        color=styles[s]["color"],
                    )
            ax.set_xlim(0, xmax)
            ax.set_xlabel(label)
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(y, solvers)
        axes[0].set_ylim(len(solvers) - 0.4, -0.6)  # first solver on top, room below the last
        if title or target_text:
            fig.suptitle(" — ".join(x for x in (title, target_text) if x), fontsize=8)
        fig.text(
            0.5,
            -0.02,
            "bar: median over seeds; whisker: 25–75 % (▸: not reached); k/n: seeds reaching it",
            ha="center",
            fontsize=6,
        )
        fig.tight_layout()
        return save(fig, stem)


def profile_figure(prof: pd.DataFrame, stem: str | Path, n_problems: int | None = None) -> list[Path]:
    """Dolan–Moré performance profiles: one panel per cost of :data:`ml2bench.analysis.tables.PROFILE_COSTS`."""
    solvers = _ordered(prof["solver"])
    methods = pd.DataFrame({"solver": solvers, "method": [s.split("[")[0] for s in solvers]})
    styles = _solver_style(methods)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH_IN, 2.3), sharey=True)
        for ax, (cost, label) in zip(axes, tb.PROFILE_COSTS.items()):
            p = prof[prof["cost"] == cost]
            for s in solvers:
                g = p[p["solver"] == s].sort_values("tau")
                if len(g):
                    ax.step(g["tau"], g["rho"], where="post", label=s, **styles[s])
            ax.set_xscale("log", base=2)
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(label)
            ax.set_xlabel("τ (ratio to the best)")
        axes[0].set_ylabel("ρ(τ): fraction of problems")
        title = "Performance profiles" + (f" ({n_problems} problems)" if n_problems else "")
        fig.suptitle(title, fontsize=8)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=min(4, max(1, len(labels))))
        fig.tight_layout(rect=(0, 0.1 + 0.06 * ((len(labels) - 1) // 4), 1, 1))
        return save(fig, stem)


# --- driver: the figures of ml2bench.analysis.catalog ------------------------------------
@dataclass
class ProblemTables:
    """What the per-problem figures read: one sweep entry's rows of the aggregated tables."""

    problem_id: str
    history: pd.DataFrame
    summary: pd.DataFrame
    ttt: pd.DataFrame
    targets: dict

    @classmethod
    def read(cls, tables_dir: str | Path, problem_id: str) -> ProblemTables:
        tables_dir = Path(tables_dir)
        history = pd.read_parquet(tables_dir / "history.parquet")
        summary = pd.read_parquet(tables_dir / "summary.parquet")
        ttt = pd.read_csv(tables_dir / "time_to_target.csv")
        path = tables_dir / "targets.json"
        targets = json.loads(path.read_text()) if path.is_file() else {}
        h = history[history["problem_id"] == problem_id]
        if h.empty:
            raise ValueError(
                f"no runs of problem {problem_id!r}; have: {', '.join(sorted(history['problem_id'].unique()))}"
            )
        s = summary[summary["problem_id"] == problem_id]
        return cls(problem_id, h, s, ttt[ttt["problem_id"] == problem_id], targets)


def convergence(t: ProblemTables, stem: str | Path, axis: str) -> list[Path]:
    """The catalog's ``convergence_*`` figures: :func:`convergence_figure` of one sweep entry."""
    metric = str(t.summary["metric_name"].iloc[0]) if len(t.summary) else "test metric"
    higher = bool(t.summary["metric_higher_is_better"].iloc[0]) if len(t.summary) else True
    title = t.problem_id
    if axis == "energy":
        src = sorted(set(t.summary["energy_source"].astype(str))) if "energy_source" in t.summary else []
        title += f" (energy source: {', '.join(src)})" if src else ""
    return convergence_figure(t.history, axis, stem, title, metric, higher)


def time_to_target(t: ProblemTables, stem: str | Path) -> list[Path]:
    """The catalog's ``time_to_target`` figure of one sweep entry."""
    return time_to_target_figure(t.ttt, stem, t.problem_id, tb._target_text(t.problem_id, t.targets))


def profiles(tables_dir: Path, stem: str | Path) -> list[Path]:
    """The catalog's ``performance_profiles`` figure (all sweep entries)."""
    prof = pd.read_csv(tables_dir / "profiles.csv")
    n = pd.read_csv(tables_dir / "comparison.csv")["problem_id"].nunique()
    return profile_figure(prof, stem, n)


def draw(fig: catalog.Figure, tables: ProblemTables | Path, stem: str | Path) -> list[Path]:
    """Draw one catalog figure with its function (``fig.draw``) of this module."""
    return globals()[fig.draw](tables, stem, **fig.options)


def problem_figures(
    tables_dir: str | Path, problem_id: str, out: str | Path, names: Iterable[str] | None = None
) -> list[Path]:
    """The per-problem figures of the catalog (or only ``names``) into ``<out>/<problem_id>/``."""
    tables = ProblemTables.read(tables_dir, problem_id)
    figures = [f for f in catalog.problem_figures() if names is None or f.name in names]
    return [p for f in figures for p in draw(f, tables, Path(out) / problem_id / f.name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml2bench.analysis.figures",
        description="The figures of ml2bench.analysis.catalog (PDF + PNG) from the tables written by "
        "ml2bench.analysis.aggregate and ml2bench.analysis.tables.",
    )
    parser.add_argument("--tables", type=Path, default=Path("results/tables"), help="default: results/tables")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="default: figures")
    parser.add_argument(
        "--problem",
        action="append",
        default=None,
        help="problem id (repeatable; default: all). Writes <out>/<id>/*.{pdf,png}",
    )
    parser.add_argument(
        "--figure",
        action="append",
        choices=[f.name for f in catalog.problem_figures()],
        help="only this per-problem figure (repeatable; default: all of the catalog)",
    )
    parser.add_argument(
        "--profiles", action="store_true", help="only the figures of the whole sweep (<out>/performance_profiles...)"
    )
    args = parser.parse_args(argv)
    try:
        written: list[Path] = []
        if args.profiles:
            for fig in catalog.sweep_figures():
                written += draw(fig, args.tables, args.out / fig.name)
        else:
            ids = args.problem or sorted(
                pd.read_parquet(args.tables / "summary.parquet", columns=["problem_id"])["problem_id"].unique()
            )
            for pid in ids:
                written += problem_figures(args.tables, pid, args.out, args.figure)
    except (ValueError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
