"""The figures and tables a sweep produces: one entry each.

Read by the workflow (``workflow/rules/common.smk``: the outputs of the figure and table rules),
the figures command (``ml2bench figures``: what it draws), the report (``results/report.md``: the
captions) and the tests. Adding a figure is one entry here plus its drawing function in
:mod:`ml2bench.analysis.figures` (named by ``draw``); nothing else lists figures. No heavy imports:
Snakemake reads this module when it parses the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """A figure, written as ``<name>.pdf`` and ``<name>.png``.

    ``per_problem``: one per sweep entry, under ``figures/<problem_id>/``; else one for the sweep,
    under ``figures/``. ``draw``: the function of :mod:`ml2bench.analysis.figures` that draws it,
    called as ``draw(tables, stem, **options)`` (``tables``: :class:`~ml2bench.analysis.figures.ProblemTables`
    for a per-problem figure, the tables folder otherwise). ``requires``: a measurement without
    which the figure only holds a note (the report says "not measured")."""

    name: str
    caption: str
    draw: str
    options: dict[str, Any] = field(default_factory=dict)
    per_problem: bool = True
    requires: str | None = None


@dataclass(frozen=True)
class Table:
    """A table of ``results/tables/`` (written by ``ml2bench tables``), in one or more formats."""

    name: str
    caption: str
    files: tuple[str, ...]


FIGURES: tuple[Figure, ...] = (
    Figure("convergence_epochs", "train loss and test metric vs epochs", "convergence", {"axis": "epochs"}),
    Figure("convergence_work_units", "vs work units", "convergence", {"axis": "work_units"}),
    Figure("convergence_time", "vs training wall time", "convergence", {"axis": "time"}),
    Figure("convergence_energy", "vs energy", "convergence", {"axis": "energy"}, requires="energy"),
    Figure("time_to_target", "time to target", "time_to_target"),
    Figure(
        "performance_profiles",
        "performance profiles: the fraction of problems each solver solves within τ times the best cost",
        "profiles",
        per_problem=False,
    ),
)

TABLES: tuple[Table, ...] = (
    Table(
        "comparison",
        "median [IQR] over seeds of the final metric, work and time to target, per problem and solver",
        ("comparison.md", "comparison.tex", "comparison.csv", "comparison.parquet"),
    ),
    Table("time_to_target", "per run: whether and when the target was reached", ("time_to_target.csv",)),
    Table("profiles", "Dolan–Moré performance profiles (τ, ρ) per cost and solver", ("profiles.csv",)),
)


def problem_figures() -> list[Figure]:
    return [f for f in FIGURES if f.per_problem]


def sweep_figures() -> list[Figure]:
    return [f for f in FIGURES if not f.per_problem]


def figure(name: str) -> Figure:
    for f in FIGURES:
        if f.name == name:
            return f
    raise KeyError(f"no figure {name!r}; figures: {', '.join(f.name for f in FIGURES)}")


def table_files() -> list[str]:
    """Every file of :data:`TABLES` (names under ``results/tables/``)."""
    return [name for t in TABLES for name in t.files]
