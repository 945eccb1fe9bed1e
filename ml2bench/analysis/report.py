"""``results/report.md``: the comparison tables and links to the figures of a sweep.

python -m ml2bench.analysis.report --tables results/tables --figures figures --out results/report.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ml2bench.analysis import catalog
from ml2bench.analysis import tables as tb


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def build_report(
    tables_dir: str | Path, figures_dir: str | Path, out: str | Path, title: str = "", claims: str | Path | None = None
) -> Path:
    """``claims``: the claims table (claims.md of :mod:`ml2bench.analysis.claims`) for a "Claims" section, when
    the sweep's config lists claims."""
    tables_dir, figures_dir, out = Path(tables_dir), Path(figures_dir), Path(out)
    summary = pd.read_parquet(tables_dir / "summary.parquet")
    table = pd.read_csv(tables_dir / "comparison.csv")
    targets = json.loads((tables_dir / "targets.json").read_text()) if (tables_dir / "targets.json").is_file() else {}
    base = out.parent
    lines = [f"# ml2bench report{': ' + title if title else ''}", ""]
    n = len(summary)
    status = summary["status"].value_counts().to_dict()
    lines += [
        f"{n} runs on {summary['problem_id'].nunique()} problem(s) × {summary['method'].nunique()} "
        f"method(s); status: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())) + ".",
        "",
    ]
    prov = []
    for col in ("device", "cpu_model", "gpu_model", "torch_version", "git_commit", "ml2bench_version"):
        if col in summary:
            prov.append(f"{col}: {', '.join(sorted(set(summary[col].astype(str))))}")
    if prov:
        lines += ["Provenance — " + "; ".join(prov) + ".", ""]
    energy_sources = sorted(set(summary.get("energy_source", pd.Series(["none"])).astype(str)))
    if energy_sources == ["none"]:
        lines += [
            "**Energy:** not measured (no readable RAPL/NVML counter on the machines that ran the "
            "jobs); energy columns are n/a and the energy figures only say so.",
            "",
        ]
    else:
        lines += [f"**Energy:** measured with {', '.join(energy_sources)}.", ""]
    if "bench_s" in summary and summary["bench_s"].notna().any():
        lines += [
            f"Job resources (Snakemake benchmark): total {summary['bench_s'].sum():.0f} s of job time, "
            f"max RSS {np.nanmax(summary['bench_max_rss_mb']):.0f} MB.",
            "",
        ]

    if claims is not None:
        lines += [
            "## Claims",
            "",
            "Each claim of the seed papers against this sweep, runs paired by seed: measured median [IQR] over "
            "seeds, failed runs, the median per-seed ratio (claimed method / baseline) with its 95 % paired "
            "bootstrap interval, the Wilcoxon signed-rank p-value, the smallest ratio detectable with 80 % power, "
            "and the verdict (rule: docs/statistics.md; "
            f"[{_rel(Path(claims).with_suffix('.csv'), base)}]({_rel(Path(claims).with_suffix('.csv'), base)})).",
            "",
            Path(claims).read_text().strip(),
            "",
        ]
    lines += [
        "## Comparison",
        "",
        (tables_dir / "comparison.md").read_text().strip()
        if (tables_dir / "comparison.md").is_file()
        else tb.to_markdown(table, targets),
        "",
    ]
    lines += [
        f"Also as LaTeX: [{_rel(tables_dir / 'comparison.tex', base)}]({_rel(tables_dir / 'comparison.tex', base)}), "
        f"CSV: [{_rel(tables_dir / 'comparison.csv', base)}]({_rel(tables_dir / 'comparison.csv', base)}).",
        "",
    ]

    lines += ["## Performance profiles", ""]
    for fig in catalog.sweep_figures():
        png = figures_dir / f"{fig.name}.png"
        lines += [
            f"![{fig.name.replace('_', ' ')}]({_rel(png, base)}) ([PDF]({_rel(png.with_suffix('.pdf'), base)}))",
            "",
        ]
    lines += [
        "ρ_s(τ): fraction of problems on which solver s reaches the target within τ times the cost "
        "of the best solver (median over seeds).",
        "",
    ]

    lines += ["## Figures per problem", ""]
    for pid in sorted(summary["problem_id"].unique()):
        lines += [f"### {pid}", ""]
        if pid in targets:
            lines += [tb._target_text(pid, targets), ""]
        for fig in catalog.problem_figures():
            png, caption = figures_dir / pid / f"{fig.name}.png", fig.caption
            if fig.requires == "energy" and energy_sources == ["none"]:
                lines += [f"- {caption}: not measured (note: [{_rel(png, base)}]({_rel(png, base)}))"]
                continue
            lines += [
                f"- {caption}: ![{pid} {caption}]({_rel(png, base)}) ([PDF]({_rel(png.with_suffix('.pdf'), base)}))"
            ]
        lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml2bench.analysis.report",
        description="Write the markdown report of a sweep (tables + figure links).",
    )
    parser.add_argument("--tables", type=Path, default=Path("results/tables"))
    parser.add_argument("--figures", type=Path, default=Path("figures"))
    parser.add_argument("--out", type=Path, default=Path("results/report.md"))
    parser.add_argument("--title", default="")
    parser.add_argument(
        "--claims", type=Path, default=None, help="claims.md of ml2bench.analysis.claims: adds a Claims section"
    )
    args = parser.parse_args(argv)
    try:
        path = build_report(args.tables, args.figures, args.out, args.title, args.claims)
    except (ValueError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
