"""The claims verdict rule (ml2bench.analysis.claims) on synthetic run tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml2bench.analysis.claims import (
    Claim,
    bootstrap_ratio,
    combine,
    evaluate_claims,
    load_claims,
    ratio_of_medians,
    to_markdown,
    verdict,
)
from ml2bench.core.params import ConfigError


def _runs(values: dict[str, list[float]], metric="work_units_to_target", problem="p") -> pd.DataFrame:
    rows = [
        {"problem_id": problem, "method": m, "point": "default", "seed": s, metric: v}
        for m, vals in values.items()
        for s, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


CLAIM = Claim(
    id="ml_wins",
    statement="rmtr needs less work than tr",
    source="paper",
    problems=("p",),
    method="rmtr",
    baselines=("tr",),
    metric="work_units_to_target",
    direction="lower",
)


def _verdict(values, claim=CLAIM):
    table = evaluate_claims(_runs(values, claim.metric), [claim])
    return table[table["baseline"] != "all"].iloc[0], table[table["baseline"] == "all"].iloc[0]["verdict"]


def test_clear_win_is_reproduced():
    row, overall = _verdict({"rmtr": [10, 11, 12, 10.5, 11.5], "tr": [20, 22, 21, 19, 23]})
    assert row["verdict"] == overall == "reproduced"
    assert row["ratio"] == pytest.approx(11 / 21)
    assert row["ratio_hi"] < 1


def test_clear_loss_is_not_reproduced():
    row, overall = _verdict({"rmtr": [30, 31, 32, 29, 33], "tr": [20, 22, 21, 19, 23]})
    assert row["verdict"] == overall == "not reproduced"
    assert row["ratio_lo"] >= 1


def test_overlapping_is_inconclusive():
    row, overall = _verdict({"rmtr": [10, 30, 20, 12, 28], "tr": [20, 11, 29, 13, 27]})
    assert row["verdict"] == overall == "inconclusive"
    assert row["ratio_lo"] < 1 < row["ratio_hi"]


def test_too_few_seeds_is_inconclusive_even_for_a_clear_win():
    row, _ = _verdict({"rmtr": [10, 11], "tr": [20, 22]})
    assert row["verdict"] == "inconclusive"


def test_higher_is_better_and_unreached_targets():
    acc = Claim(
        id="acc",
        statement="",
        source="",
        problems=("p",),
        method="a",
        baselines=("b",),
        metric="final_test_metric",
        direction="higher",
    )
    row, _ = _verdict({"a": [0.9, 0.91, 0.92, 0.9, 0.93], "b": [0.5, 0.52, 0.51, 0.49, 0.5]}, acc)
    assert row["verdict"] == "reproduced"
    # the method reaches the target, the baseline never does (inf): a win; neither does: a tie, not reproduced
    inf = math.inf
    row, _ = _verdict({"rmtr": [10, 11, 12, 10, 11], "tr": [inf] * 5})
    assert row["ratio"] == 0.0 and row["verdict"] == "reproduced"
    row, _ = _verdict({"rmtr": [inf] * 5, "tr": [inf] * 5})
    assert row["ratio"] == 1.0 and row["verdict"] == "not reproduced"
    assert ratio_of_medians(inf, 3.0) == inf and ratio_of_medians(0.0, 0.0) == 1.0


def test_bootstrap_is_deterministic_and_brackets_the_ratio():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    r1, r2 = bootstrap_ratio(a, b, seed=7), bootstrap_ratio(a, b, seed=7)
    assert r1 == r2
    assert r1[0] == 0.5 and r1[1] <= 0.5 <= r1[2]
    # the seed matters (the interval is a resampling estimate): visible with 9 irregular seeds
    x, y = np.random.default_rng(0).lognormal(size=9), np.random.default_rng(1).lognormal(size=9)
    assert bootstrap_ratio(x, y, seed=1)[1:] != bootstrap_ratio(x, y, seed=2)[1:]


def test_combine_and_rule_edges():
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "not reproduced"]) == "not reproduced"
    assert combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert verdict(0.5, 0.99, "lower", 5, 5) == "reproduced"
    assert verdict(1.0, 1.5, "lower", 5, 5) == "not reproduced"  # touching 1 from above
    assert verdict(0.9, 1.1, "lower", 5, 5) == "inconclusive"
    assert verdict(1.01, 2.0, "higher", 5, 5) == "reproduced"


def test_multi_pair_claim_and_markdown():
    claim = Claim(
        id="c",
        statement="s",
        source="src",
        problems=("p",),
        method="rmtr",
        baselines=("tr", "adam"),
        metric="work_units_to_target",
        direction="lower",
    )
    runs = _runs({"rmtr": [10, 11, 12, 10.5, 11.5], "tr": [20, 22, 21, 19, 23], "adam": [5, 6, 5, 6, 5]})
    table = evaluate_claims(runs, [claim])
    assert table.set_index("baseline").loc["all", "verdict"] == "not reproduced"
    md = to_markdown(table)
    assert "| **c**: s" in md and "not reproduced" in md and "Verdict rule" in md


def test_config_errors():
    with pytest.raises(ConfigError, match="direction"):
        load_claims(
            {
                "claims": [
                    {
                        "id": "x",
                        "statement": "",
                        "source": "",
                        "problems": ["p"],
                        "method": "a",
                        "baselines": ["b"],
                        "metric": "m",
                        "direction": "down",
                    }
                ]
            }
        )
    with pytest.raises(ConfigError, match="unknown keys"):
        load_claims({"claims": [{"id": "x", "oops": 1}]})


def test_point_selection_and_threshold():
    # level independence: cycles on the fine grid vs the coarse grid, claimed below t = 1.5
    runs = pd.DataFrame(
        [
            {"problem_id": "g", "method": "mgopt", "point": f"n~{n}", "seed": s, "cycles": c}
            for s in range(5)
            for n, c in ((31, 9.0), (127, 9.0 + (s % 2)))
        ]
    )
    claim = Claim(
        id="li",
        statement="",
        source="",
        problems=("g",),
        method="mgopt[n~127]",
        baselines=("mgopt[n~31]",),
        metric="cycles",
        direction="lower",
        threshold=1.5,
        table="grid_cycles",
    )
    table = evaluate_claims({"grid_cycles": runs}, [claim])
    row = table.iloc[0]
    assert row["point"] == "n~127" and row["baseline_point"] == "n~31"
    assert row["ratio"] == 1.0 and row["verdict"] == "reproduced"  # interval [1, 10/9] < 1.5
    # cycles growing 4x with the grid (plain gradient descent): not reproduced
    grow = runs.assign(cycles=runs["cycles"] * runs["point"].map({"n~31": 1.0, "n~127": 16.0}))
    assert evaluate_claims({"grid_cycles": grow}, [claim]).iloc[0]["verdict"] == "not reproduced"
    with pytest.raises(ConfigError, match="grid_cycles"):
        evaluate_claims(runs, [claim])


def test_grid_cycles_counts_vcycles_per_size_and_seed():
    from ml2bench.sweep.grid_cycles import grid_cycles

    # 2-D Poisson, MG/OPT with 2 GD smoothing steps (lr 0.2): measured 10 cycles on 7², 9 on 15² (seeds 0, 1)
    spec = {
        "id": "p2",
        "kind": "poisson",
        "dim": 2,
        "sizes": [7, 15],
        "method": "mgopt",
        "params": {"smoother": "gd", "lr": 0.2},
        "max_cycles": 40,
    }
    t = grid_cycles(spec, [0, 1])
    assert list(t["point"]) == ["n~7", "n~7", "n~15", "n~15"] and list(t["seed"]) == [0, 1, 0, 1]
    assert t["cycles"].between(5, 15).all()
    # a step size too large for the 1-D smoother: no convergence within max_cycles, recorded as inf
    bad = grid_cycles(
        {
            "id": "p1",
            "kind": "poisson",
            "dim": 1,
            "sizes": [31],
            "method": "mgopt",
            "params": {"smoother": "gd", "lr": 1 / 48, "lr_level_factor": 2.0},
            "max_cycles": 10,
        },
        [0],
    )
    assert bad["cycles"].iloc[0] == np.inf
