"""Mutation check: break core lines on purpose and confirm that the test suite notices.

A test suite that passes proves little unless it would fail on a wrong implementation. This
script copies the repository (package, tests, workflow; no results, no .git) to a temporary
directory per mutation, applies one textual mutation to a core line, runs the tests relevant to
that line there with ``PYTHONPATH`` pointing at the copy, and reports which tests fail ("catch"
the mutation). Before any mutation the same tests run on an unmodified copy: they must pass,
otherwise a "catch" would mean nothing.

    python tools/mutation_check.py                 # all mutations
    python tools/mutation_check.py --only tr_accept_rejected_step --markdown

Exit status 0 when every mutation is caught by at least one test; 1 when a mutation survives or
the baseline fails; 2 when a mutation no longer applies (its line changed: update MUTATIONS).
Not part of ``pytest``: it runs the selected tests once per mutation (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPY_IGNORE = shutil.ignore_patterns(
    ".git", "results", "figures", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache", ".benchmarks*", "tools"
)


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the bug it plants, in words
    path: str  # file relative to the repository root
    old: str  # exact text that must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments (files or node ids) relevant to the line


MUTATIONS = (
    Mutation(
        "work_counter_drops_gradient_charge",
        "Objective.loss_grad no longer charges its evaluation to the work counter",
        "ml2bench/core/objective.py",
        '"""f(x) and ∇f(x) on ``batch`` (charged as one evaluation)."""\n        self._charge(batch)\n',
        '"""f(x) and ∇f(x) on ``batch`` (charged as one evaluation)."""\n',
        ("tests/test_grid_transfer.py", "tests/test_depth_transfer.py", "tests/test_runner.py"),
    ),
    Mutation(
        "work_units_ignore_level_cost",
        "coarse evaluations are charged at the fine level's cost (cost ratio dropped)",
        "ml2bench/core/objective.py",
        "work = batch_fraction * cost_ratio",
        "work = batch_fraction",
        ("tests/test_grid_transfer.py", "tests/test_depth_transfer.py", "tests/test_runner.py"),
    ),
    Mutation(
        "work_budget_not_enforced",
        "the work counter charges evaluations past the run's budget (a step may overshoot it)",
        "ml2bench/core/objective.py",
        "        if self.limits:\n            self._check(",
        "        if False:\n            self._check(",
        ("tests/test_equal_work.py",),
    ),
    Mutation(
        "best_point_chosen_on_test_metric",
        "a method's best grid point is chosen on the final test metric instead of the validation metric",
        "ml2bench/analysis/tables.py",
        'final = float(r["final_selection_median"])',
        'final = float(r["final_metric_median"])',
        ("tests/test_tables.py",),
    ),
    Mutation(
        "coherence_restricts_gradient_with_R_x",
        "the coherent coarse model restricts the fine gradient with R_x instead of R_g = Pᵀ",
        "ml2bench/multilevel/coarse.py",
        "g_restricted = transfer.restrict_grad(g)",
        "g_restricted = transfer.restrict(g)",
        ("tests/test_depth_transfer.py", "tests/test_rmtr.py", "tests/test_mgopt.py"),
    ),
    Mutation(
        "mgopt_skips_coarse_correction",
        "MG/OPT never computes or applies the coarse-level correction (smoother only)",
        "ml2bench/methods/mgopt.py",
        'if hp["coarse_correction"] and float(g.norm()) > 0:',
        "if False:",
        ("tests/test_mgopt.py", "tests/test_multilevel_convergence.py"),
    ),
    Mutation(
        "rmtr_skips_coarse_correction",
        "RMTR never tries a coarse step (plain trust region on the fine level)",
        "ml2bench/methods/rmtr.py",
        'if gr >= hp["kappa_g"] * gn and gr > self.eps_g and bound_H > 0:',
        "if False:",
        ("tests/test_rmtr.py", "tests/test_multilevel_convergence.py"),
    ),
    Mutation(
        "tr_accepts_rejected_steps",
        "the trust-region acceptance test is flipped: steps with ρ ≤ η₀ are taken, good ones refused",
        "ml2bench/numerics/trust_region.py",
        "    if rho > cfg.eta0:\n",
        "    if not rho > cfg.eta0:\n",
        ("tests/test_trust_region.py", "tests/test_rmtr.py"),
    ),
    Mutation(
        "pinn_drops_condition_terms",
        "the PINN loss drops its boundary/initial terms (weight multiplied by 0)",
        "ml2bench/problems/pinn/base.py",
        "total = total + self.hp[self.condition_weights[name]] * value",
        "total = total + 0.0 * value",
        ("tests/test_pinn.py",),
    ),
    Mutation(
        "figures_plot_upper_quartile_as_median",
        "convergence figures draw the 75 % quantile where the median over seeds belongs",
        "ml2bench/analysis/figures.py",
        "for q in (0.5, 0.25, 0.75))",
        "for q in (0.75, 0.25, 0.75))",
        ("tests/test_figures.py",),
    ),
)

FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def make_copy(dest: Path) -> Path:
    root = dest / "repo"
    shutil.copytree(REPO, root, ignore=COPY_IGNORE)
    return root


def apply(root: Path, m: Mutation) -> None:
    path = root / m.path
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        raise LookupError(
            f"{m.name}: the text to mutate occurs {count} times in {m.path} (expected once); "
            f"the line changed: update tools/mutation_check.py"
        )
    path.write_text(text.replace(m.old, m.new))


def run_tests(root: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, list[str], str]:
    """Run pytest in ``root`` on the copy's package; returns (exit code, failed test ids, output tail)."""
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    probe = subprocess.run(
        [sys.executable, "-c", "import ml2bench; print(ml2bench.__file__)"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    if not probe.stdout.strip().startswith(str(root)):
        raise RuntimeError(f"PYTHONPATH={root} does not take precedence: ml2bench imported from {probe.stdout!r}")
    cmd = [sys.executable, "-m", "pytest", "-q", "--tb=no", "-rfE", "-p", "no:cacheprovider", *tests]
    try:
        res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, ["(timeout)"], f"timed out after {timeout:.0f}s"
    out = res.stdout + res.stderr
    return res.returncode, sorted(set(FAILED.findall(out))), out[-2000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/mutation_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="mutation name (repeatable); default: all")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--markdown", action="store_true", help="print the result as a Markdown table")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
    args = parser.parse_args(argv)
    selected = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list or not selected:
        for m in MUTATIONS:
            print(f"{m.name}: {m.what} ({m.path}; tests {' '.join(m.tests)})")
        return 0 if args.list else 2
    results: list[tuple[Mutation, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="ml2bench-mutation-") as tmp:
        base = make_copy(Path(tmp) / "baseline")
        tests = tuple(dict.fromkeys(t for m in selected for t in m.tests))
        t0 = time.perf_counter()
        code, failed, tail = run_tests(base, tests, args.timeout)
        print(f"baseline ({len(tests)} test files, {time.perf_counter() - t0:.0f}s): exit {code}", file=sys.stderr)
        if code != 0:
            print(
                f"the unmutated tests do not pass ({', '.join(failed)}): no mutation result would mean anything\n"
                f"{tail}",
                file=sys.stderr,
            )
            return 1
        shutil.rmtree(base.parent)
        for m in selected:
            root = make_copy(Path(tmp) / m.name)
            try:
                apply(root, m)
            except LookupError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            t0 = time.perf_counter()
            code, failed, tail = run_tests(root, m.tests, args.timeout)
            if code not in (0, 1):  # collection errors, crashes: the mutation is caught, but say how
                failed = failed or [f"(pytest exit {code})"]
            print(f"{m.name}: {len(failed)} failing ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
            results.append((m, failed))
            shutil.rmtree(root.parent)
    survived = [m.name for m, failed in results if not failed]
    if args.markdown:
        print("| mutation | file | caught by |\n|---|---|---|")
        for m, failed in results:
            print(f"| {m.what} | `{m.path}` | {', '.join(f'`{t}`' for t in failed) or '**not caught**'} |")
    else:
        for m, failed in results:
            print(f"{m.name} ({m.path}): {m.what}")
            for t in failed or ["NOT CAUGHT"]:
                print(f"    {t}")
    if survived:
        print(f"survived: {', '.join(survived)}", file=sys.stderr)
        return 1
    print(f"all {len(results)} mutations caught", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
