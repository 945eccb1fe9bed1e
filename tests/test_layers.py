"""The package's layers, enforced on its import graph (read from the source with ``ast``: no module
is imported, so no import side effect can hide or add an edge).

Every ``import`` counts, also one inside a function (it runs when the function does); only
``if TYPE_CHECKING:`` blocks do not. The layers, bottom to top (docs/ARCHITECTURE.md shows the same
table): a module may import modules of lower layers and of its own unit; units that share a layer
are independent of each other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ml2bench"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("ml2bench.core.params", "ml2bench.core.stop"),  # ConfigError, Param/spec; the stop reasons
    ("ml2bench.core.registry", "ml2bench.core.records", "ml2bench.core.checkpoint"),  # names, plugins; results; saves
    ("ml2bench.core.cost",),  # measurement: op counts, energy, capacity, provenance, cache, CUDA graphs
    ("ml2bench.core.objective",),  # f(x) on a batch, charged to the WorkCounter
    ("ml2bench.core.hierarchy", "ml2bench.core.cost.flops"),  # levels and transfers; FLOPs (probes an Objective)
    ("ml2bench.methods.base", "ml2bench.problems.base"),  # the two interfaces (and registries): core only
    ("ml2bench.numerics", "ml2bench.nn"),  # single-level kernels (quasi-Newton, trust region, batch growth); networks
    ("ml2bench.multilevel",),  # transfers and coarse models
    ("ml2bench.dd", "ml2bench.data"),  # Schwarz decompositions and local solvers; data sets
    ("ml2bench.problems",),  # the registered problems
    ("ml2bench.methods",),  # the registered methods
    ("ml2bench.core.config", "ml2bench.optim"),  # RunConfig (both registries); torch.optim adapters of the methods
    ("ml2bench.core.runner",),  # the training loop of one run
    ("ml2bench.sweep",),  # config -> jobs, claims spec, in-process runs, grid cycles, quality, targets, verify
    ("ml2bench.analysis",),  # tables, figures, report, claims: never torch, the runner or the methods
    ("ml2bench.bench",),  # method benchmarks
    ("ml2bench.cli", "ml2bench.api", "ml2bench.quality", "ml2bench.targets", "ml2bench"),  # entry points
    ("ml2bench.sweep.forkserver", "ml2bench.__main__"),  # run the CLI (the server forks it per job)
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ``name`` (a module, or an attribute of one): its longest known prefix."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST):
    """All nodes except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out |= {r for n in names if n.split(".")[0] == "ml2bench" and (r := _resolve(n)) is not None}
    out.discard(module)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def unit_of(module: str) -> tuple[int, str]:
    """(layer index, unit) of a module: the longest unit prefix that contains it."""
    best = None
    for i, layer in enumerate(LAYERS):
        for unit in layer:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (i, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py: add it to LAYERS")
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for importer, imported in sorted(graph.items()):
        layer, unit = unit_of(importer)
        for target in sorted(imported):
            t_layer, t_unit = unit_of(target)
            if t_layer > layer or (t_layer == layer and t_unit != unit):
                out.append(f"{importer} (layer {layer}, {unit}) imports {target} (layer {t_layer}, {t_unit})")
    return out


def test_the_graph_is_read():
    assert "ml2bench.core.objective" in GRAPH["ml2bench.methods.base"]
    assert "ml2bench.sweep.forkclient" in GRAPH["ml2bench.cli"]  # an import inside a function counts


def test_no_import_cycles():
    assert not cycles(GRAPH), cycles(GRAPH)


def test_every_module_respects_the_layers():
    assert not violations(GRAPH), "\n".join(violations(GRAPH))


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {**GRAPH, "ml2bench.core.objective": GRAPH["ml2bench.core.objective"] | {"ml2bench.methods.base"}}
    assert any({"ml2bench.core.objective", "ml2bench.methods.base"} <= set(c) for c in cycles(graph))
    assert any(v.startswith("ml2bench.core.objective (layer 3") for v in violations(graph))
    sideways = {**GRAPH, "ml2bench.nn.odenet": {"ml2bench.data.dataset"}}
    assert any("ml2bench.nn.odenet" in v for v in violations(sideways))


ANALYSIS = sorted(m for m in MODULES if m == "ml2bench.analysis" or m.startswith("ml2bench.analysis."))
FORBIDDEN = ("ml2bench.core.runner", "ml2bench.methods", "ml2bench.problems")


def test_analysis_imports_no_torch_runner_or_methods():
    """Importing the analysis (tables, figures, report, claims) loads none of torch, the runner, the
    methods or the problems: it reads tables, so it runs where only pandas and matplotlib are. One
    fresh interpreter imports each analysis module in turn and reports what each one added."""
    code = (
        "import importlib, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        f"    out[name] = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith({FORBIDDEN!r}))\n"
        "print(json.dumps(out))\n"
    )
    argv = [sys.executable, "-c", code, *ANALYSIS]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert set(loaded) == set(ANALYSIS) and len(ANALYSIS) >= 7
    assert not any(loaded.values()), {m: v[:5] for m, v in loaded.items() if v}


def test_the_documented_table_is_this_one():
    """docs/ARCHITECTURE.md shows LAYERS: row i names the units of layer i."""
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    rows = {
        int(r.split("|")[1]): r.split("|")[2]
        for r in doc.splitlines()
        if r.startswith("| ") and r[2:4].strip().isdigit()
    }
    assert sorted(rows) == list(range(len(LAYERS)))
    for i, layer in enumerate(LAYERS):
        named = {u.strip().strip("`") for u in rows[i].replace("·", ",").split(",")}
        assert named == {u.removeprefix("ml2bench.") for u in layer}, (i, named)
