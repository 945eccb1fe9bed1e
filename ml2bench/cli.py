"""Command line: ``ml2bench list`` and ``ml2bench run`` (see ``ml2bench --help``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from ml2bench.core.params import ConfigError
from ml2bench.core.records import OutputError
from ml2bench.core.registry import load_plugins

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1

# Subcommands implemented by their own module's main(argv) (each has --help of its own).
TOOLS = {
    "compare": ("ml2bench.analysis.compare", "diff two result tables: what got slower or worse"),
    "aggregate": ("ml2bench.analysis.aggregate", "collect run folders into results/tables (the pipeline does this)"),
    "tables": ("ml2bench.analysis.tables", "comparison tables (median/IQR, time to target) from aggregated tables"),
    "figures": ("ml2bench.analysis.figures", "convergence figures and performance profiles from aggregated tables"),
    "report": ("ml2bench.analysis.report", "results/report.md from tables and figures"),
    "verify": ("ml2bench.sweep.verify", "list missing, corrupt and mismatched runs of a results folder"),
    "claims": ("ml2bench.analysis.claims", "claims verdicts of a sweep from its tables"),
    "targets": ("ml2bench.sweep.targets", "classification targets by the stated rule; sweep-time estimates"),
    "quality": ("ml2bench.sweep.quality", "re-run the quality sweep and compare it with its reference"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml2bench",
        description="Benchmark multilevel and domain-decomposition training of neural networks.",
        epilog="Examples:\n"
        "  ml2bench list\n"
        "  ml2bench run --problem mlp --method adam --seed 0 --out results/runs/demo\n"
        "  ml2bench run --problem mlp --method sgd --set method.lr=0.1 --set budget.epochs=5 --out out/\n"
        "  ml2bench run --plugin mine.py --problem mlp --method mine --out out/\n"
        "  ml2bench compare old/results/tables new/results/tables --fail-on-regression\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plugin = {
        "dest": "plugins",
        "action": "append",
        "default": [],
        "metavar": "FILE.py",
        "help": "a Python file that registers methods or problems (repeatable)",
    }
    p_list = sub.add_parser("list", help="list problems and methods with their hyper-parameters")
    p_list.add_argument("what", nargs="?", choices=("problems", "methods"), help="only this registry")
    p_list.add_argument("--plugin", **plugin)

    p_run = sub.add_parser(
        "run",
        help="train one (problem, method, seed) and write its history and summary tables",
        description="Train one (problem, method, seed) under a budget and write history.parquet and "
        "summary.parquet atomically into --out.",
        epilog="--set keys: run options (seed, device, dtype, batch_size, eval_interval, threads) or "
        "problem.KEY, method.KEY, budget.KEY (epochs, grad_evals, work_units, time_s, iterations), "
        "target.KEY (quantity, value, direction: stop where first reached). "
        "Values are YAML scalars. Exit status: 0 finished (ok, budget_exhausted, target_reached or diverged), "
        "1 failed, 2 bad input. --set checkpoint_every=K writes OUT/checkpoint.pt every K iterations; "
        "the same command resumes from it.",
    )
    p_run.add_argument(
        "--config",
        type=Path,
        help="YAML run config (keys as in --set, sections problem_params, method_params, budget, target)",
    )
    p_run.add_argument("--plugin", **plugin)
    p_run.add_argument("--problem", help="problem name (see 'ml2bench list problems')")
    p_run.add_argument("--method", help="method name (see 'ml2bench list methods')")
    p_run.add_argument("--seed", type=int, help="run seed (default 0)")
    p_run.add_argument("--device", choices=("cpu", "cuda", "auto"), help="torch device (default cpu)")
    p_run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. method.lr=0.01 (repeatable)",
    )
    p_run.add_argument(
        "--out",
        required=True,
        help="output directory of this run (refused when it holds another run, or aggregated tables)",
    )
    p_run.add_argument(
        "--force", action="store_true", help="replace the records of another run that --out holds (on purpose)"
    )
    p_run.add_argument(
        "--save-model", type=Path, metavar="PATH", help="save the trained network's state_dict here (torch.save)"
    )
    p_run.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, (_, help_text) in TOOLS.items():  # listed for --help; main() hands them their argv
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _cmd_list(what: str | None) -> int:
    from ml2bench.methods import METHODS
    from ml2bench.problems import PROBLEMS

    for title, registry in (("problems", PROBLEMS), ("methods", METHODS)):
        if what and what != title:
            continue
        print(f"{title}:")
        for name, cls in registry.items():
            print(f"  {name:<24} {cls.description}")
            for p in cls.params:
                print(f"      {p.name:<20} = {p.default!r:<14} {p.doc}  [{p.describe_allowed()}]")
        print()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ml2bench.core import checkpoint as ckpt
    from ml2bench.core import config as cfg
    from ml2bench.core.records import check_output_dir, claim_output, write_run
    from ml2bench.core.runner import run

    raw = cfg.load_yaml(args.config) if args.config else {}
    for key in ("problem", "method", "seed", "device"):
        value = getattr(args, key)
        if value is not None:
            raw[key] = value
    raw = cfg.apply_overrides(raw, args.overrides)
    config = cfg.RunConfig.from_dict(raw)
    progress = not args.quiet and sys.stderr.isatty()
    if config.checkpoint_every and "RANK" in os.environ:
        raise ConfigError("checkpoint_every: not supported under torchrun (only rank 0 keeps files); allowed: null")
    if os.environ.get("RANK", "0") != "0":  # under torchrun every rank runs; rank 0 keeps the records
        result = run(config, progress=progress)
        return 0 if result.status != "failed" else EXIT_RUN_FAILED
    identity = {"problem": config.problem, "method": config.method, "seed": config.seed, "config_hash": config.hash()}
    with claim_output(args.out, identity, force=args.force):  # where the records go is checked before training
        checkpoint = Path(args.out) / ckpt.NAME if config.checkpoint_every else None
        if args.save_model is not None:
            check_output_dir(args.save_model.parent)
        result = run(config, progress=progress, checkpoint=checkpoint, save_model=args.save_model)
        try:
            out = write_run(result.history, result.summary, args.out)
        except OSError as err:  # full disk, quota, lost mount: the run happened but has no record
            print(
                f"error: {config.problem}/{config.method}/seed {config.seed}: the records could not be written to "
                f"{args.out!r}: {err.strerror or err} — free space and re-run",
                file=sys.stderr,
            )
            return EXIT_RUN_FAILED
        if checkpoint is not None and result.status != "failed":
            checkpoint.unlink(missing_ok=True)  # finished: a rerun starts afresh
    s = result.summary.iloc[0]
    print(
        f"{config.problem}/{config.method}/seed {config.seed}: status={s['status']} "
        f"train_loss={s['final_train_loss']:.4g} {s['metric_name']}={s['final_test_metric']:.4g} "
        f"work_units={s['work_units']:.1f} time={s['train_time_s']:.2f}s -> {out}"
    )
    if s["status"] == "failed":
        print(f"error: run failed: {s['error']}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"] and os.environ.get("ML2BENCH_SERVER"):  # a sweep's warm process (sweep/forkserver.py)
        from ml2bench.sweep.forkclient import delegate

        status = delegate(argv, os.environ["ML2BENCH_SERVER"])
        if status is not None:
            return status
        print(
            f"note: no ml2bench fork server at {os.environ['ML2BENCH_SERVER']}; running in this process",
            file=sys.stderr,
        )
    if argv and argv[0] in TOOLS:
        return importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        load_plugins(args.plugins)
        if args.command == "list":
            return _cmd_list(args.what)
        return _cmd_run(args)
    except (ConfigError, FileNotFoundError, OutputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as err:  # DataError and friends: bad input, named in the message
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
