"""Run configuration: one (problem, method, seed, hyper-parameters, budget) as validated data.

Configs come from YAML files, ``--set key=value`` overrides and the Snakemake sweep. They are
validated completely before any data is loaded, so a bad value fails fast with one message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml2bench.core.params import ConfigError, Param, spec

SEED_MAX = 2**63 - 1  # the seed column of the result tables is int64

BUDGET = spec(
    Param("epochs", float, None, "passes over the training data", low=0.0, low_inclusive=False, nullable=True),
    Param("grad_evals", float, None, "full-batch gradient evaluations", low=0.0, low_inclusive=False, nullable=True),
    Param("work_units", float, None, "fine-level-equivalent evaluations", low=0.0, low_inclusive=False, nullable=True),
    Param("time_s", float, None, "training wall time in seconds", low=0.0, low_inclusive=False, nullable=True),
    Param("iterations", int, None, "method steps", low=1, nullable=True),
)

#: quantities a run can stop on (history columns; the sweep's target quantities)
TARGET_QUANTITIES = ("train_loss", "val_loss", "val_metric", "test_loss", "test_metric")

#: the ``target`` section: stop the run at the first evaluation point where ``quantity`` reaches
#: ``value`` (time-to-target runs, as MLCommons AlgoPerf stops at its targets); empty: run to the budget
TARGET = spec(
    Param("quantity", str, None, "history column to stop on", choices=TARGET_QUANTITIES, nullable=True),
    Param("value", float, None, "the target value", nullable=True),
    Param(
        "direction",
        str,
        None,
        "below: reached when quantity <= value; above: when >= value; null: below for losses, the metric's "
        "better side for metrics",
        choices=("below", "above"),
        nullable=True,
    ),
)

RUN = spec(
    Param("problem", str, None, "registered problem name", nullable=True),
    Param("method", str, None, "registered method name", nullable=True),
    Param(
        "seed",
        int,
        0,
        "run seed; init and data-order seeds are derived from it (the tables store it as int64)",
        low=0,
        high=SEED_MAX,
    ),
    Param("device", str, "cpu", "torch device", choices=("cpu", "cuda", "auto")),
    Param("dtype", str, "float32", "floating point type", choices=("float32", "float64")),
    Param(
        "batch_size",
        int,
        None,
        "mini-batch size; null: the method's default (full batch or the problem's default)",
        low=1,
        nullable=True,
    ),
    Param(
        "eval_interval",
        float,
        None,
        "evaluate every this many work units; null: the problem's default",
        low=0.0,
        low_inclusive=False,
        nullable=True,
    ),
    Param(
        "threads", int, None, "torch intra-op threads; null: torch's default", low=1, high=2**31 - 1, nullable=True
    ),  # torch takes an int32
    Param(
        "cuda_graphs",
        bool,
        None,
        "capture loss+gradient evaluations as CUDA graphs and replay them; null: on for device cuda",
        nullable=True,
        hashed_at_default=False,
    ),
    Param(
        "checkpoint_every",
        int,
        None,
        "write <out>/checkpoint.pt every this many iterations; a run that finds one resumes from it; null: none",
        low=1,
        nullable=True,
    ),
)

SECTIONS = ("problem_params", "method_params", "budget", "target")


@dataclass
class RunConfig:
    """A fully specified run. Hyper-parameter dicts are validated by the registries' specs."""

    problem: str
    method: str
    seed: int = 0
    problem_params: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)  # empty: no stop at a target
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int | None = None
    eval_interval: float | None = None
    threads: int | None = None
    cuda_graphs: bool | None = None
    checkpoint_every: int | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Validate a raw mapping (YAML content) and resolve defaults of problem and method."""
        from ml2bench.methods import METHODS
        from ml2bench.problems import PROBLEMS

        if not isinstance(raw, Mapping):
            raise ConfigError(f"run config must be a mapping, got {type(raw).__name__}")
        raw = dict(raw)
        sections = {}
        for key in SECTIONS:
            value = raw.pop(key, None) or {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"run config: '{key}' must be a mapping, got {value!r}")
            sections[key] = dict(value)
        top = RUN.validate(raw, "run config")
        for key in ("problem", "method"):
            if top[key] is None:
                raise ConfigError(f"run config: '{key}' is required")
        problem_cls = PROBLEMS.get(top["problem"])
        method_cls = METHODS.get(top["method"])
        budget = BUDGET.validate(sections["budget"], "budget")
        if not any(v is not None for v in budget.values()):
            budget["epochs"] = problem_cls.default_epochs
        return cls(
            problem=top["problem"],
            method=top["method"],
            seed=top["seed"],
            problem_params=problem_cls.params.validate(sections["problem_params"], f"problem {top['problem']!r}"),
            method_params=method_cls.params.validate(sections["method_params"], f"method {top['method']!r}"),
            budget=budget,
            target=resolve_target(sections["target"], problem_cls),
            device=top["device"],
            dtype=top["dtype"],
            batch_size=top["batch_size"],
            eval_interval=top["eval_interval"] or problem_cls.default_eval_interval,
            threads=top["threads"],
            cuda_graphs=top["cuda_graphs"],
            checkpoint_every=top["checkpoint_every"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """Stable short hash of the resolved config (provenance and result de-duplication)."""
        from ml2bench.methods import METHODS
        from ml2bench.problems import PROBLEMS

        resolved = _hashed(self.to_dict(), RUN)  # options added later stay out at their defaults
        resolved.pop("checkpoint_every", None)  # checkpoints do not change a run's results
        if not resolved.get("target"):  # no stop at a target: hashes of configs from before the option stay
            resolved.pop("target", None)
        resolved["problem_params"] = _hashed(resolved["problem_params"], PROBLEMS.get(self.problem).params)
        resolved["method_params"] = _hashed(resolved["method_params"], METHODS.get(self.method).params)
        blob = json.dumps(resolved, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _hashed(values: dict[str, Any], params: Any) -> dict[str, Any]:
    """``values`` without the parameters of ``params`` (a ParamSpec) that are at their default and
    declared ``hashed_at_default=False``."""
    quiet = {p.name: p.default for p in params if not p.hashed_at_default}
    return {k: v for k, v in values.items() if not (k in quiet and v == quiet[k])}


def resolve_target(given: Mapping[str, Any], problem_cls: Any) -> dict[str, Any]:
    """The validated ``target`` section: {} (none) or {quantity, value, direction}, the direction
    resolved as the sweep resolves it (below for losses, the metric's better side for metrics)."""
    target = TARGET.validate(given, "target")
    if all(v is None for v in target.values()):
        return {}
    for key in ("quantity", "value"):
        if target[key] is None:
            raise ConfigError(
                f"target: parameter '{key}' is required when a target is given (quantity and value; "
                f"direction optional); allowed: {next(p for p in TARGET if p.name == key).describe_allowed()}"
            )
    if target["quantity"].startswith("val_") and not problem_cls.selection_quantity.startswith("val_"):
        raise ConfigError(
            f"target: quantity {target['quantity']!r} is never measured on problem {problem_cls.name!r} (no "
            f"validation split), so the run would never stop at it; allowed: train_loss, test_loss, test_metric"
        )
    if target["direction"] is None:
        metric = target["quantity"].endswith("_metric")
        target["direction"] = "above" if metric and problem_cls.metric_higher_is_better else "below"
    return target


def target_reached(target: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether an evaluation ``row`` (a history row) meets ``target`` (False for NaN and for no target)."""
    if not target:
        return False
    value = float(row[target["quantity"]])
    return value >= target["value"] if target["direction"] == "above" else value <= target["value"]


class YAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 numbers and no duplicate keys — the one loader for every
    config ml2bench reads (run configs, ``--set`` values, sweep configs, also under Snakemake).

    PyYAML implements YAML 1.1, where a float needs a dot and a signed exponent: ``5e-1``, ``2e1``
    and ``1.0e12`` would be strings, accepted where a parameter coerces strings and rejected by
    the schema elsewhere. A duplicate key is an error naming its line (PyYAML keeps the last).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: the base class names it
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first on line {first + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


_FLOAT_TAG = "tag:yaml.org,2002:float"
YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YAMLLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str | Path = "<string>") -> Any:
    """``text`` read with :class:`YAMLLoader`; bad YAML is a ConfigError ``SOURCE:LINE:COLUMN: …``."""
    try:
        return yaml.load(text, Loader=YAMLLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as err:
        raise ConfigError(yaml_error_message(source, err)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a ConfigError naming the path."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    data = parse_yaml(path.read_text(), path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at top level")
    return data


def yaml_error_message(path: str | Path, err: yaml.YAMLError) -> str:
    """One line ``FILE:LINE:COLUMN: not valid YAML: PROBLEM`` (editors jump to FILE:LINE)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = " ".join(filter(None, [getattr(err, "context", None), getattr(err, "problem", None)])) or str(err)
    return f"{where}: not valid YAML: {' '.join(problem.split())}"


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; ``problem.width=32`` sets ``problem_params.width`` etc.

    Values are parsed as YAML scalars (``1e-3``, ``true``, ``null``).
    """
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    alias = {"problem": "problem_params", "method": "method_params", "budget": "budget", "target": "target"}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. method.lr=0.01 or budget.epochs=5")
        key, text = item.split("=", 1)
        try:
            value = parse_yaml(text) if text else None
        except ConfigError:
            value = text
        parts = key.strip().split(".")
        if len(parts) == 1:
            raw[parts[0]] = value
        elif len(parts) == 2 and parts[0] in alias:
            raw.setdefault(alias[parts[0]], {})
            raw[alias[parts[0]]] = dict(raw[alias[parts[0]]] or {})
            raw[alias[parts[0]]][parts[1]] = value
        else:
            raise ConfigError(
                f"--set {item!r}: key must be a run option or problem.KEY, method.KEY, budget.KEY, target.KEY"
            )
    return raw
