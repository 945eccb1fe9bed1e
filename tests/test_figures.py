"""Figure functions on small synthetic tables: the plotted series, axis labels and texts are
checked on the matplotlib artists (captured when ``figures.save`` is called), and the files are
PDF + PNG. The energy figure is never drawn without an energy counter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ml2bench.analysis import figures as fg
from ml2bench.analysis import tables as tb
from ml2bench.analysis.report import build_report


def _history(with_energy: bool) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for method, rate in (("sgd", 0.5), ("adam", 0.8), ("rmtr", 1.2)):
        for seed in range(3):
            for i in range(8):
                wu = i * (1.0 + 0.1 * seed)
                loss = 2.0 * np.exp(-rate * wu) + 0.01
                rows.append(
                    {
                        "problem_id": "toy",
                        "problem": "mlp",
                        "method": method,
                        "point": "default",
                        "seed": seed,
                        "epoch": wu,
                        "iteration": i,
                        "grad_evals": wu,
                        "work_units": wu,
                        "train_time_s": wu * 0.1 * (1 + 0.05 * rng.random()),
                        "energy_cpu_j": wu * 3.0 if with_energy else np.nan,
                        "energy_dram_j": np.nan,
                        "energy_gpu_j": np.nan,
                        "energy_j": wu * 3.0 if with_energy else np.nan,
                        "train_loss": loss,
                        "step_loss": loss,
                        "test_loss": loss * 1.1,
                        "test_metric": 1.0 - loss / 2.5,
                    }
                )
    return pd.DataFrame(rows)


def _exists(paths):
    assert {p.suffix for p in paths} == {".pdf", ".png"}
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
        magic = p.read_bytes()[:8]
        assert magic.startswith(b"%PDF") if p.suffix == ".pdf" else magic == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """Every Figure handed to ``figures.save``, in order (the file is still written)."""
    figures: list[Figure] = []
    save = fg.save

    def capture(fig, stem):
        figures.append(fig)
        return save(fig, stem)

    monkeypatch.setattr(fg, "save", capture)
    return figures


def _lines(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (x, y) of the labelled lines of an axes."""
    return {
        ln.get_label(): (np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float))
        for ln in ax.get_lines()
        if not ln.get_label().startswith("_")
    }


def _median_over_seeds(history: pd.DataFrame, method: str, xcol: str, ycol: str, at: float) -> float:
    """Median over seeds of the last value at or before ``at`` (the figure's step convention)."""
    values = [
        g.loc[g[xcol] <= at, ycol].iloc[-1]
        for _, g in history[history["method"] == method].groupby("seed")
        if (g[xcol] <= at).any()
    ]
    return float(np.median(values))


def test_convergence_figure_with_energy(tmp_path, drawn):
    history = _history(True)
    _exists(fg.convergence_figure(history, "energy", tmp_path / "c_energy", "toy", "accuracy", True))
    (fig,) = drawn
    top, bottom = fig.axes[:2]
    assert top.get_ylabel() == "train loss" and bottom.get_ylabel() == "accuracy"
    assert bottom.get_xlabel() == "energy (J)" and top.get_title() == "toy"
    assert top.get_yscale() == "log" and bottom.get_yscale() == "linear"  # accuracy: higher is better
    for ax, ycol in ((top, "train_loss"), (bottom, "test_metric")):
        lines = _lines(ax)
        assert set(lines) == {"sgd", "adam", "rmtr"}
        for method, (x, y) in lines.items():
            # x is energy (3 J per work unit), y the median over seeds at that energy
            assert x.max() == pytest.approx(history.loc[history["method"] == method, "energy_j"].max())
            for xi, yi in list(zip(x, y))[:: max(1, len(x) // 6)]:
                assert yi == pytest.approx(_median_over_seeds(history, method, "energy_j", ycol, xi), rel=1e-12)
    # the fastest method has the lowest final loss (rates 0.5 < 0.8 < 1.2 in the synthetic data)
    final = {m: y[np.isfinite(y)][-1] for m, (_, y) in _lines(top).items()}
    assert final["rmtr"] < final["adam"] < final["sgd"]


def test_energy_absent_gives_a_note_not_numbers(tmp_path, drawn):
    paths = fg.convergence_figure(_history(False), "energy", tmp_path / "e", "toy")
    _exists(paths)
    (fig,) = drawn
    (ax,) = fig.axes
    assert not ax.axison and not ax.get_lines() and not ax.collections and not ax.patches
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 1 and texts[0].startswith("Energy was not measured")


def test_seed_band_step_values():
    grid, med, q25, q75 = fg.seed_band(
        [(np.array([0.0, 2.0]), np.array([1.0, 3.0])), (np.array([0.0, 1.0, 4.0]), np.array([2.0, 4.0, 5.0]))]
    )
    assert list(grid) == [0.0, 1.0, 2.0, 4.0]
    # x=1: run 1 carries 1.0 forward, run 2 has 4.0 -> 2.5; x=4: run 1 finished at 3.0 and keeps it
    assert med[1] == 2.5 and med[3] == 4.0
    assert np.isnan(fg.step_values(np.array([1.0, 2.0]), np.array([5.0, 6.0]), np.array([0.5, 9.0])))[0]


def test_time_to_target_and_profiles(tmp_path, drawn):
    history = _history(False)
    targets = {"toy": {"quantity": "train_loss", "value": 0.2, "direction": "below"}}
    ttt = tb.time_to_target(history, targets)
    ttt.loc[ttt["method"] == "sgd", ["reached"]] = False
    ttt.loc[ttt["method"] == "sgd", ["work_units_to_target", "time_to_target_s"]] = np.inf
    _exists(fg.time_to_target_figure(ttt, tmp_path / "ttt", "toy", "target: train_loss ≤ 0.2"))
    fig = drawn[-1]
    wu_ax, time_ax = fig.axes
    assert wu_ax.get_xlabel() == "work units to target" and time_ax.get_xlabel() == "wall time to target (s)"
    assert [t.get_text() for t in wu_ax.get_yticklabels()] == ["sgd", "adam", "rmtr"]
    for ax, col in ((wu_ax, "work_units_to_target"), (time_ax, "time_to_target_s")):
        # one bar per method that reached the target, as long as its median over seeds
        bars = {round(p.get_y() + p.get_height() / 2): p.get_width() for p in ax.patches}
        assert set(bars) == {1, 2}  # adam (row 1) and rmtr (row 2); sgd has none
        for row, method in ((1, "adam"), (2, "rmtr")):
            assert bars[row] == pytest.approx(float(ttt.loc[ttt["method"] == method, col].median()), rel=1e-12)
        assert any(t.get_text() == "not reached (0/3)" for t in ax.texts)
    # the rmtr data decay fastest: fewer work units to the target than adam
    assert (
        ttt.loc[ttt["method"] == "rmtr", "work_units_to_target"].median()
        < ttt.loc[ttt["method"] == "adam", "work_units_to_target"].median()
    )

    summary = (
        history.groupby(tb.RUN_KEYS)
        .tail(1)
        .assign(status="budget_exhausted", metric_name="accuracy", final_test_metric=0.9, final_train_loss=0.1)
    )
    table = tb.comparison_table(summary, ttt)
    prof = tb.profiles(table)
    _exists(fg.profile_figure(prof, tmp_path / "profiles", 1))
    fig = drawn[-1]
    assert fig.axes[0].get_ylabel() == "ρ(τ): fraction of problems"
    assert all(ax.get_xlabel() == "τ (ratio to the best)" for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == list(tb.PROFILE_COSTS.values())
    for ax, cost in zip(fig.axes, tb.PROFILE_COSTS):
        lines = _lines(ax)
        assert set(lines) == set(prof.loc[prof["cost"] == cost, "solver"])
        for solver, (x, y) in lines.items():
            g = prof[(prof["cost"] == cost) & (prof["solver"] == solver)].sort_values("tau")
            np.testing.assert_allclose(x, g["tau"].to_numpy(float))
            np.testing.assert_allclose(y, g["rho"].to_numpy(float))
        # one problem: the fastest method (rmtr) solves it at τ = 1, sgd never
        assert lines["rmtr[default]" if "rmtr[default]" in lines else "rmtr"][1][0] == 1.0


def test_problem_figures_and_report_from_tables_dir(tmp_path, drawn):
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    history = _history(False)
    summary = (
        history.groupby(tb.RUN_KEYS)
        .tail(1)
        .assign(
            status="budget_exhausted",
            metric_name="accuracy",
            metric_higher_is_better=True,
            final_test_metric=0.9,
            final_train_loss=0.1,
            energy_source="none",
        )
    )
    history.to_parquet(tables / "history.parquet")
    summary.to_parquet(tables / "summary.parquet")
    (tables / "targets.json").write_text(json.dumps({"toy": {"quantity": "train_loss", "value": 0.2}}))
    tb.build(tables)
    paths = fg.problem_figures(tables, "toy", tmp_path / "figures")
    assert len(paths) == 2 * len(fg.FIGURE_NAMES)
    _exists(paths)
    xlabels = [fig.axes[1].get_xlabel() for fig in drawn[:3]]
    assert xlabels == [label for _, label in list(fg.AXES.values())[:3]]  # epochs, work units, time
    assert [t.get_text() for t in drawn[3].axes[0].texts][0].startswith("Energy was not measured")
    assert len(drawn) == len(fg.FIGURE_NAMES)
    assert fg.main(["--tables", str(tables), "--out", str(tmp_path / "figures"), "--profiles"]) == 0
    report = build_report(tables, tmp_path / "figures", tmp_path / "results" / "report.md", "toy sweep")
    text = report.read_text()
    assert "../figures/toy/convergence_work_units.png" in text and "| rmtr |" in text
    assert "Energy:** not measured" in text


def test_the_catalog_is_what_is_drawn_reported_and_built(tmp_path):
    """One list of figures and tables (ml2bench.analysis.catalog): every figure has a drawing function,
    a caption and a unique name; the workflow's figure rules read the same list (common.smk)."""
    from pathlib import Path

    from ml2bench.analysis import catalog

    names = [f.name for f in catalog.FIGURES]
    assert len(set(names)) == len(names) and fg.FIGURE_NAMES == [f.name for f in catalog.problem_figures()]
    for fig in catalog.FIGURES:
        assert callable(getattr(fg, fig.draw)) and fig.caption, fig
    smk = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    assert "_catalog.problem_figures()" in smk and "convergence_epochs" not in smk  # no second list
    with pytest.raises(KeyError, match="no figure 'nope'"):
        catalog.figure("nope")


def test_method_colours_built_in_fixed_others_stable_and_distinct():
    """The built-in methods keep tab10's colours in METHOD_ORDER; any other name (a plugin, a new
    method) gets the same colour every time, never one within RGB distance 0.25 of a built-in's."""
    import numpy as np
    from matplotlib import colormaps

    assert [fg.method_color(m) for m in fg.METHOD_ORDER] == list(colormaps["tab10"].colors[:7])
    builtin = np.array([fg.method_color(m) for m in fg.METHOD_ORDER])
    others = [f"method_{i}" for i in range(200)] + ["rmsprop", "plain_gd"]
    for name in others:
        c = np.array(fg.method_color(name))
        assert fg.method_color(name) == tuple(c) and np.linalg.norm(builtin - c, axis=1).min() > 0.25, name
    assert len({fg.method_color(n) for n in others}) == len(fg.OTHER_COLORS) >= 8
