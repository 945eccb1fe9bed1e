"""Sweep enumeration for the ml2bench Snakemake workflow (imported by workflow/rules/common.smk).

A sweep config (workflow/config/*.yaml, schema in ml2bench/sweep/config.schema.yaml) is turned
into one job per (problem instance, method, hyper-parameter point, seed). This is the
``snakemake.utils.Paramspace`` pattern generalised to per-method parameter spaces: every
hyper-parameter point gets a directory name built like Paramspace's ``filename_params``
(``key~value`` joined by ``_``, ``default`` for the method's defaults), and the job table is a
pandas DataFrame whose rows give the wildcards of ``results/runs/{problem}/{method}/{point}/seed{seed}``.

Checks, all before any job runs: problem and method names against the live registries (a typo
names the bad value and the allowed ones), then every resolved run config through
``ml2bench.core.config.RunConfig.from_dict`` (bad hyper-parameters, budgets or run options).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml2bench.core.config import TARGET_QUANTITIES as QUANTITIES  # a sweep target is a run target

SCHEMA = Path(__file__).resolve().parent / "config.schema.yaml"  # package data
# the workflow's default sweep, for configs without 'sweeps' (found in a source checkout only)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "workflow" / "config" / "default.yaml"
RUN_DEFAULTS = {"threads": 1}  # one torch thread per job: two jobs share two cores fairly
NAME_MAX = 255  # bytes of one file name (ext4, xfs, btrfs, tmpfs, NFS): a point is a folder name


class SweepError(ValueError):
    """A sweep config names something unknown or resolves to an invalid run."""


@dataclass
class Job:
    problem_id: str  # sweep entry id (directory name; one "problem" of the comparison)
    problem: str  # registered problem name
    method: str
    point: str  # hyper-parameter point name
    seed: int
    problem_params: dict[str, Any]
    method_params: dict[str, Any]  # only the values set by the config (defaults resolved by ml2bench)
    budget: dict[str, Any]
    run: dict[str, Any]
    target: dict[str, Any] = field(default_factory=dict)  # the run's stop at a target (entry stop_at_target)
    resolved: dict[str, Any] = field(default_factory=dict)  # RunConfig.to_dict()
    plugins: tuple[str, ...] = ()  # plugin files (absolute paths) the run loads: the config's 'plugins'

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.problem_id, self.method, self.point, self.seed)

    @property
    def outdir(self) -> str:
        return run_dir(self.problem_id, self.method, self.point, self.seed)

    @property
    def device(self) -> str:
        return self.run.get("device", "cpu")

    def identity(self) -> dict[str, Any]:
        """What the run's summary must record (compared by aggregation and ``ml2bench verify``)."""
        from ml2bench.core.config import RunConfig

        return {
            "problem": self.problem,
            "method": self.method,
            "seed": self.seed,
            "config_hash": RunConfig(**self.resolved).hash(),
        }

    def cli_args(self) -> str:
        """Arguments of ``ml2bench run`` (without --out/--quiet), shell-quoted."""
        args = [a for p in self.plugins for a in ("--plugin", p)]
        args += ["--problem", self.problem, "--method", self.method, "--seed", str(self.seed)]
        sets = [f"{k}={_yaml_scalar(v)}" for k, v in sorted(self.run.items())]
        sets += [f"problem.{k}={_yaml_scalar(v)}" for k, v in sorted(self.problem_params.items())]
        sets += [f"method.{k}={_yaml_scalar(v)}" for k, v in sorted(self.method_params.items())]
        sets += [f"budget.{k}={_yaml_scalar(v)}" for k, v in sorted(self.budget.items())]
        sets += [f"target.{k}={_yaml_scalar(v)}" for k, v in sorted(self.target.items())]
        for s in sets:
            args += ["--set", s]
        return " ".join(shlex.quote(a) for a in args)


def check_finite(value: Any, where: str = "config") -> None:
    """Reject NaN and ±inf anywhere in the config: every comparison with NaN is False, so they
    slip through range checks (YAML reads ``.nan``/``.inf``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SweepError(f"{where} = {value!r} is not a finite number; allowed: finite numbers")
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f"{where}[{i}]")


def validate_schema(config: Mapping[str, Any], schema_path: str | Path = SCHEMA) -> None:
    """The first schema violation as one line naming the offending key (never the whole schema)."""
    import jsonschema

    from ml2bench.core.config import load_yaml

    schema = load_yaml(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = "config" + error.json_path[1:]
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted((error.schema.get("properties") or {}).keys())
        unknown = sorted(k for k in error.instance if k not in allowed and not str(k).startswith("_"))
        raise SweepError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed) or '(none)'}"
        )
    message = " ".join(error.message.split())
    raise SweepError(f"{where}: {message[:300]}")


def load_config(configfile: str | Path | None) -> dict[str, Any]:
    """A sweep config as the workflow reads it: ``default.yaml`` when the file has no 'sweeps'."""
    return workflow_config([configfile] if configfile is not None else [])


def _deep_update(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    """Merge ``over`` into ``base`` recursively (Snakemake's ``update_config`` for config files)."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)


def _yaml_values(value: Any) -> Any:
    """Text values of ``--config KEY=VALUE`` read as YAML scalars, as ``ml2bench run --set`` reads
    them (Snakemake leaves ``false`` or ``1e-3`` as strings)."""
    from ml2bench.core.config import parse_yaml
    from ml2bench.core.params import ConfigError

    if isinstance(value, Mapping):
        return {k: _yaml_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml_values(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = parse_yaml(value)
        except ConfigError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float, str)) else value
    return value


def workflow_config(configfiles: list[str | Path], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The sweep config from ``--configfile`` files and ``--config`` overrides, read the way
    ml2bench reads every YAML file (:class:`ml2bench.core.config.YAMLLoader`: YAML 1.2 numbers,
    duplicate keys rejected with FILE:LINE), not with Snakemake's loader. Files are merged in
    order as Snakemake merges them; ``default.yaml`` is the base when none has 'sweeps'."""
    from ml2bench.core.config import load_yaml
    from ml2bench.core.params import ConfigError

    given: dict[str, Any] = {}
    try:
        for path in configfiles:
            _deep_update(given, load_yaml(path))
    except ConfigError as err:
        raise SweepError(str(err)) from None
    _deep_update(given, _yaml_values(dict(overrides or {})))
    if "sweeps" in given:
        return given
    if not DEFAULT_CONFIG.is_file():
        raise SweepError(
            f"config {', '.join(map(str, configfiles)) or '(none)'} has no 'sweeps' and the default sweep "
            f"({DEFAULT_CONFIG}) is not here (an installed package has no workflow/); allowed: a config with 'sweeps'"
        )
    config = load_yaml(DEFAULT_CONFIG)
    config.update(given)
    return config


def load_jobs(configfile: str | Path | None) -> list[Job]:
    """Every job of a sweep config file, after all the checks the workflow makes (its claims included)."""
    from ml2bench.core.params import ConfigError
    from ml2bench.sweep.claimspec import check_config as check_claims

    config = load_config(configfile)
    validate_schema(config)
    jobs = expand(config)
    try:
        check_claims(config, jobs)
    except ConfigError as err:
        raise SweepError(str(err)) from None
    return jobs


def run_dir(problem_id: str, method: str, point: str, seed: int | str) -> str:
    return f"results/runs/{problem_id}/{method}/{point}/seed{seed}"


def _yaml_scalar(value: Any) -> str:
    """JSON text is a YAML scalar that ``ml2bench run --set`` parses back to the same value."""
    return json.dumps(value)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else f"{value:g}"
    return str(value)


def point_name(varying: Mapping[str, Any]) -> str:
    """Directory name of a hyper-parameter point: ``lr~0.1_momentum~0.9`` or ``default``."""
    if not varying:
        return "default"
    name = "_".join(f"{k}~{_fmt(v)}" for k, v in sorted(varying.items()))
    return re.sub(r"[^A-Za-z0-9._~+-]", "-", name)


def method_points(spec: Mapping[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name, params) of every point of a method spec: params x (points or [{}]) x grid.

    The name shows only what varies between the points (fixed ``params`` are left out).
    """
    spec = spec or {}
    fixed = dict(spec.get("params") or {})
    points = [dict(p) for p in spec.get("points") or [{}]]
    grid = dict(spec.get("grid") or {})
    keys = sorted(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))] or [{}]
    out, seen = [], {}
    for p in points:
        for g in combos:
            varying = {**p, **g}
            name = point_name(varying)
            if name in seen:
                raise SweepError(
                    f"hyper-parameter points {seen[name]} and {varying} are the same point {name!r} (duplicate "
                    f"runs); allowed: distinct values"
                )
            if len(name.encode()) > NAME_MAX:
                raise SweepError(
                    f"hyper-parameter point {varying} names a folder of {len(name.encode())} bytes, above the "
                    f"{NAME_MAX} a file system allows; allowed: fewer parameters per point (the fixed ones "
                    f"under 'params' are not part of the name)"
                )
            seen[name] = varying
            out.append((name, {**fixed, **varying}))
    return out


def _merge_spec(base: Mapping[str, Any] | None, over: Mapping[str, Any] | None) -> dict[str, Any]:
    """A sweep's method spec over the catalogue's: params/budget/run merged, grid/points replaced."""
    out = copy.deepcopy(dict(base or {}))
    for key, value in (over or {}).items():
        if key in ("params", "budget", "run"):
            out[key] = {**(out.get(key) or {}), **(value or {})}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_name(kind: str, name: str, allowed: list[str], where: str) -> None:
    if name not in allowed:
        raise SweepError(f"config: unknown {kind} {name!r} in {where}; allowed: {', '.join(allowed) or '(none)'}")


def sweep_methods(config: Mapping[str, Any], entry: Mapping[str, Any], where: str) -> dict[str, dict]:
    catalogue = config.get("methods") or {}
    given = entry.get("methods")
    if given is None:
        if not catalogue:
            raise SweepError(f"config: {where} names no methods and the 'methods' catalogue is empty")
        return {m: _merge_spec(catalogue[m], None) for m in catalogue}
    if isinstance(given, list):
        return {m: _merge_spec(catalogue.get(m), None) for m in given}
    return {m: _merge_spec(catalogue.get(m), spec) for m, spec in given.items()}


def check_target(entry: Mapping[str, Any], where: str) -> None:
    """A target never chooses on the test set: on a problem with a validation split (its
    ``selection_quantity`` is a validation column) a test column is refused; problems without one
    (PINNs) keep their reported metric (relative L2 against the reference) as target."""
    from ml2bench.problems import PROBLEMS

    quantity = (entry.get("target") or {}).get("quantity")
    if quantity is None or entry["problem"] not in PROBLEMS.names():
        return
    selection = PROBLEMS.get(entry["problem"]).selection_quantity
    if quantity.startswith("test_") and selection.startswith("val_"):
        allowed = [q for q in QUANTITIES if not q.startswith("test_")]
        raise SweepError(
            f"config: {where}: target quantity {quantity!r} is a test column, and problem {entry['problem']!r} "
            f"holds out a validation split to choose on; allowed: {', '.join(allowed)}"
        )


def entry_id(entry: Mapping[str, Any]) -> str:
    return entry.get("id") or entry["problem"]


def expand(
    config: Mapping[str, Any],
    problems: list[str] | None = None,
    methods: list[str] | None = None,
    validate_runs: bool = True,
) -> list[Job]:
    """All jobs of a (schema-validated) sweep config, checked against the registries.

    ``problems``/``methods`` are the allowed names (default: the live registries, after the
    config's ``plugins`` are loaded: paths relative to the working directory, as the results are).
    """
    check_finite(config)
    plugins = load_config_plugins(config)
    if problems is None or methods is None:
        from ml2bench.methods import METHODS
        from ml2bench.problems import PROBLEMS

        problems = PROBLEMS.names() if problems is None else problems
        methods = METHODS.names() if methods is None else methods
    for name in config.get("methods") or {}:
        _check_name("method", name, methods, "the 'methods' catalogue")
    jobs: list[Job] = []
    ids: set[str] = set()
    for i, entry in enumerate(config["sweeps"]):
        pid = entry_id(entry)
        where = f"sweep {pid!r} (sweeps[{i}])"
        _check_name("problem", entry["problem"], problems, where)
        if pid in ids:
            raise SweepError(f"config: two sweep entries have the id {pid!r}; give them distinct 'id's")
        ids.add(pid)
        for m in entry.get("methods") or []:
            _check_name("method", m, methods, where)
        check_target(entry, where)
        seeds = entry.get("seeds") or config.get("seeds") or [0, 1, 2]
        target = entry_target(entry) if entry.get("stop_at_target") else {}
        for method, spec in sweep_methods(config, entry, where).items():
            try:
                points = method_points(spec)
            except SweepError as err:
                raise SweepError(f"config: {where} method {method!r}: {err}") from None
            if entry.get("stop_at_target") and len(points) > 1:
                raise SweepError(
                    f"config: {where} method {method!r}: stop_at_target with {len(points)} hyper-parameter points; "
                    f"a method's best point is chosen on its final loss or validation metric, which a stop at the "
                    f"target would bias towards points that never reach it; allowed: one point per method"
                )
            for point, params in points:
                run = {
                    **RUN_DEFAULTS,
                    **(config.get("run") or {}),
                    **(entry.get("run") or {}),
                    **(spec.get("run") or {}),
                }
                budget = {**(entry.get("budget") or {}), **(spec.get("budget") or {})}
                for seed in seeds:
                    jobs.append(
                        Job(
                            pid,
                            entry["problem"],
                            method,
                            point,
                            int(seed),
                            dict(entry.get("params") or {}),
                            params,
                            budget,
                            run,
                            target=target,
                            plugins=plugins,
                        )
                    )
    if validate_runs:
        validate_jobs(jobs)
    return jobs


def load_config_plugins(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Import the config's ``plugins`` files (they register methods and problems); their resolved
    paths, which every job hands to ``ml2bench run --plugin``. A bad file is a SweepError naming it."""
    from ml2bench.core.params import ConfigError
    from ml2bench.core.registry import load_plugins

    paths = tuple(str(Path(p).expanduser().resolve()) for p in config.get("plugins") or ())
    try:
        load_plugins(paths)
    except ConfigError as err:
        raise SweepError(f"config: plugins: {err}") from None
    return paths


def validate_jobs(jobs: list[Job]) -> None:
    """Resolve every job through RunConfig.from_dict; the first bad one raises SweepError."""
    from ml2bench.core.config import RunConfig
    from ml2bench.core.params import ConfigError

    same: dict[tuple[str, str, str], str] = {}  # (problem id, method, config hash) -> run folder
    for job in jobs:
        raw = {
            "problem": job.problem,
            "method": job.method,
            "seed": job.seed,
            **job.run,
            "problem_params": job.problem_params,
            "method_params": job.method_params,
            "budget": job.budget,
            "target": job.target,
        }
        try:
            resolved = RunConfig.from_dict(raw)
        except ConfigError as err:
            raise SweepError(f"config: run {job.outdir} is invalid: {err}") from None
        job.resolved = resolved.to_dict()
        first = same.setdefault((job.problem_id, job.method, resolved.hash()), job.outdir)
        if first != job.outdir:
            raise SweepError(
                f"config: runs {first} and {job.outdir} are the same run (identical hyper-parameters once "
                f"defaults are filled in); allowed: distinct hyper-parameter points"
            )


def targets(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Target per problem id: {quantity, value, direction} (direction resolved when absent)."""
    return {entry_id(entry): entry_target(entry) for entry in config["sweeps"]}


def entry_target(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's target {quantity, value, direction}, the direction resolved as a run resolves it
    (:func:`ml2bench.core.config.resolve_target`: below for losses, the metric's better side)."""
    from ml2bench.core.config import resolve_target
    from ml2bench.problems import PROBLEMS

    return resolve_target(entry["target"], PROBLEMS.get(entry["problem"]))


def jobs_frame(jobs: list[Job]):
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "problem_id": j.problem_id,
                "problem": j.problem,
                "method": j.method,
                "point": j.point,
                "seed": j.seed,
                "device": j.device,
                "outdir": j.outdir,
            }
            for j in jobs
        ]
    )
