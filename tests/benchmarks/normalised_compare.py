"""Compare a pytest-benchmark JSON run against the baseline, normalised by the reference workload.

Shared machines are noisy and CPUs differ, so absolute times are not compared. Every benchmark's
``min`` (the least noise-affected statistic) is divided by the ``min`` of
``test_reference_workload`` *of the same run*; a benchmark regresses when that normalised time
grew by more than ``--fail`` (default 0.25 = 25 %) over the baseline's normalised time. Benchmarks
missing on one side are listed, not failed. Exit 1 on a regression.

    python tests/benchmarks/normalised_compare.py BASELINE.json NEW.json [--fail 0.25]
"""

from __future__ import annotations

import argparse
import json
import sys

REFERENCE = "test_reference_workload"


def _load(path: str) -> dict[str, float]:
    with open(path) as fh:
        data = json.load(fh)
    return {b["fullname"].split("::", 1)[-1]: float(b["stats"]["min"]) for b in data["benchmarks"]}


def compare(base: dict[str, float], new: dict[str, float], fail: float) -> tuple[list[str], bool]:
    if REFERENCE not in base or REFERENCE not in new:
        return [f"no {REFERENCE} in one of the runs: cannot normalise"], True
    rb, rn = base[REFERENCE], new[REFERENCE]
    lines = [
        f"reference workload: baseline {rb * 1e3:.3f} ms, now {rn * 1e3:.3f} ms (machine speed x{rb / rn:.2f})",
        "",
        "| benchmark | baseline (norm.) | now (norm.) | change | |",
        "|---|---|---|---|---|",
    ]
    regressed = False
    for name in sorted(set(base) | set(new)):
        if name == REFERENCE:
            continue
        if name not in base or name not in new:
            lines.append(
                f"| {name} | {'—' if name not in base else f'{base[name] / rb:.3f}'} | "
                f"{'—' if name not in new else f'{new[name] / rn:.3f}'} | | "
                f"only in {'new' if name not in base else 'baseline'} |"
            )
            continue
        b, n = base[name] / rb, new[name] / rn
        change = n / b - 1
        flag = "SLOWER" if change > fail else ("faster" if change < -fail else "")
        regressed |= flag == "SLOWER"
        lines.append(f"| {name} | {b:.3f} | {n:.3f} | {100 * change:+.1f}% | {flag} |")
    return lines, regressed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("baseline")
    p.add_argument("new")
    p.add_argument("--fail", type=float, default=0.25, help="relative slow-down that fails (default %(default)s)")
    args = p.parse_args(argv)
    lines, regressed = compare(_load(args.baseline), _load(args.new), args.fail)
    print("\n".join(lines))
    print(
        f"\n{'REGRESSION' if regressed else 'ok'}: threshold +{100 * args.fail:.0f}% on min time / reference workload"
    )
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main())
