"""Robustness and speed-up claims (ml2bench.analysis.claims, kinds ``robustness`` and ``speedup``) on
synthetic tables with known answers, their checks at config load, and the speed-up measurement."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml2bench.analysis import stats
from ml2bench.analysis.claims import amdahl_ceiling, check_config, evaluate_claims, load_claims, to_markdown
from ml2bench.core.params import ConfigError

INF = math.inf
SEEDS = range(10)
GRID = {"m": ("radius0", [0.1, 0.3, 1.0, 3.0, 10.0]), "b": ("lr", [0.0001, 0.0003, 0.001, 0.003, 0.01])}


def _grid_runs(reached: dict[str, list[int]], status: dict[str, str] | None = None) -> pd.DataFrame:
    """Runs of a 5-point grid per method and seed: ``reached[method][seed]`` of the points (the first
    ones) reach the target (cost 10), the others never do (+inf); ``status``: every run's status."""
    rows = []
    for method, per_seed in reached.items():
        parameter, values = GRID[method]
        for seed, k in zip(SEEDS, per_seed):
            for i, v in enumerate(values):
                rows.append(
                    {
                        "problem_id": "p",
                        "method": method,
                        "point": f"{parameter}~{v:g}",
                        "seed": seed,
                        "status": (status or {}).get(method, "budget_exhausted"),
                        "work_units_to_target": 10.0 if i < k else INF,
                    }
                )
    return pd.DataFrame(rows)


def _robust_claim(**over):
    d = {
        "id": "robust",
        "kind": "robustness",
        "statement": "m needs no tuning",
        "source": "abstract",
        "problems": ["p"],
        "method": "m",
        "baselines": ["b"],
        "parameters": {"m": "radius0", "b": "lr"},
    }
    return {**d, **over}


def _robust(reached, status=None):
    (claim,) = load_claims({"claims": [_robust_claim()]})
    return evaluate_claims(_grid_runs(reached, status), [claim]).iloc[0]


# --- robustness: the verdicts with known answers ------------------------------------------------
def test_a_grid_that_always_reaches_against_one_that_rarely_does_is_reproduced():
    row = _robust({"m": [5] * 10, "b": [1] * 10})
    assert row["verdict"] == "reproduced" and row["claim_verdict"] == "reproduced"
    assert row["method_fraction"] == 1.0 and row["baseline_fraction"] == pytest.approx(0.2)
    assert row["difference"] == pytest.approx(0.8)
    assert (row["difference_lo"], row["difference_hi"]) == pytest.approx((0.8, 0.8))  # no spread: no width
    assert row["n_informative"] == 10


def test_the_reverse_and_a_tie_are_not_reproduced():
    assert _robust({"m": [1] * 10, "b": [5] * 10})["verdict"] == "not reproduced"
    tie = _robust({"m": [3] * 10, "b": [3] * 10})  # no advantage: the interval [0, 0] touches 0
    assert tie["verdict"] == "not reproduced" and tie["difference"] == 0.0


def test_neither_grid_reaching_the_target_on_most_seeds_is_not_tested():
    row = _robust({"m": [0] * 6 + [5] * 4, "b": [0] * 6 + [1] * 4})
    assert row["verdict"] == "not tested" and row["n_both_censored"] == 6
    assert "on 6 of 10 seeds neither grid reached the target" in row["reason"]


def test_both_grids_reaching_the_target_everywhere_on_most_seeds_is_not_tested():
    """A fraction cannot exceed 1: where both whole grids reach the target, the measure is censored at the
    ceiling on both sides, so "a larger fraction" is untested there, not refuted (as a tie inside the range
    is, above); the other seeds still decide when they are most."""
    row = _robust({"m": [5] * 10, "b": [5] * 10})
    assert row["verdict"] == "not tested" and row["n_both_censored"] == 10 and row["difference"] != row["difference"]
    mixed = _robust({"m": [5] * 4 + [5] * 6, "b": [5] * 4 + [1] * 6})  # ceiling on 4 seeds, 1.0 vs 0.2 on 6
    assert mixed["verdict"] == "reproduced" and mixed["n_both_censored"] == 4 and mixed["n_informative"] == 6


def test_a_difference_that_goes_both_ways_is_inconclusive():
    row = _robust({"m": [4, 2] * 5, "b": [3] * 10})  # +0.2 / −0.2 alternately
    assert row["verdict"] == "inconclusive"


def test_a_failed_run_never_reached_the_target():
    runs = _grid_runs({"m": [5] * 10, "b": [5] * 10}, status={"m": "failed"})
    runs.loc[runs["method"] == "m", "work_units_to_target"] = np.nan  # failed before any evaluation
    (claim,) = load_claims({"claims": [_robust_claim()]})
    row = evaluate_claims(runs, [claim]).iloc[0]
    assert row["method_fraction"] == 0.0 and row["verdict"] == "not reproduced"


def test_the_fraction_is_the_mean_over_seeds_with_a_bootstrap_interval():
    per_seed = [5, 5, 5, 5, 5, 4, 4, 4, 3, 3]  # fractions 1 ×5, 0.8 ×3, 0.6 ×2: mean 0.86
    row = _robust({"m": per_seed, "b": [0] * 5 + [1] * 5})
    assert row["method_fraction"] == pytest.approx(0.86)
    assert 0.6 <= row["method_fraction_lo"] < 0.86 < row["method_fraction_hi"] <= 1.0
    assert stats.mean_interval([0.4] * 7, seed=1) == pytest.approx((0.4, 0.4, 0.4))
    assert "0.86 [" in to_markdown(
        evaluate_claims(_grid_runs({"m": per_seed, "b": [1] * 10}), load_claims({"claims": [_robust_claim()]}))
    )


# --- robustness: checked when the config is loaded ---------------------------------------------
def _jobs(grids: dict[str, tuple[str, list[float]]]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(problem_id="p", method=m, point=f"{par}~{v:g}", seed=0)
        for m, (par, values) in grids.items()
        for v in values
    ]


def test_a_robustness_grid_must_vary_its_parameter_over_two_decades_around_the_default():
    claim = _robust_claim(method="tr", baselines=["adam"], parameters={"tr": "radius0", "adam": "lr"})
    two_decades = {"tr": ("radius0", [0.1, 0.3, 1.0, 3.0, 10.0]), "adam": ("lr", [0.0001, 0.001, 0.01])}
    check_config({"claims": [claim]}, _jobs(two_decades))
    one_decade = {**two_decades, "adam": ("lr", [0.0003, 0.001, 0.003])}
    with pytest.raises(ConfigError, match=r"adam.lr is \[0.0003, 0.001, 0.003\] \(default 0.001\).*2 decades"):
        check_config({"claims": [claim]}, _jobs(one_decade))
    off_default = {**two_decades, "tr": ("radius0", [10.0, 100.0, 1000.0])}
    with pytest.raises(ConfigError, match=r"tr.radius0 .*\(default 1.0\)"):
        check_config({"claims": [claim]}, _jobs(off_default))
    other_parameter = {**two_decades, "tr": ("memory", [1, 10, 100])}
    with pytest.raises(ConfigError, match=r"tr\[memory~1\] is not a value of 'radius0' alone"):
        check_config({"claims": [claim]}, _jobs(other_parameter))


def test_a_robustness_claim_names_whole_methods_and_a_parameter_for_each():
    with pytest.raises(ConfigError, match="one entry per method"):
        load_claims({"claims": [_robust_claim(parameters={"m": "radius0"})]})
    with pytest.raises(ConfigError, match="names a point"):
        load_claims({"claims": [_robust_claim(method="m[radius0~1]")]})
    with pytest.raises(ConfigError, match=r"unknown keys \['direction'\] for a robustness claim"):
        load_claims({"claims": [_robust_claim(direction="lower")]})
    with pytest.raises(ConfigError, match="metric = 'final_test_metric'; allowed for a robustness claim"):
        load_claims({"claims": [_robust_claim(metric="final_test_metric")]})
    with pytest.raises(ConfigError, match="kind = 'robust'; allowed: compare, robustness, speedup"):
        load_claims({"claims": [_robust_claim(kind="robust")]})


# --- speed-up ----------------------------------------------------------------------------------
def test_the_amdahl_ceiling_of_a_known_split():
    assert amdahl_ceiling(0.84, 2) == pytest.approx(1 / (0.16 + 0.42))  # 22 of 24-27 evaluations local: ~1.7×
    assert amdahl_ceiling(0.0, 8) == 1.0 and amdahl_ceiling(1.0, 8) == pytest.approx(8.0)
    assert amdahl_ceiling(0.5, 1) == 1.0
    with pytest.raises(ValueError):
        amdahl_ceiling(1.5, 2)


def _speedup_table(speedups, idle, cores=2, processes=2, share=0.84) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem_id": "w128",
            "method": "schwarz",
            "point": f"processes~{processes}",
            "seed": 0,
            "repeat": range(len(speedups)),
            "speedup": speedups,
            "train_time_seq_s": 10.0,
            "train_time_par_s": [10.0 / s for s in speedups],
            "local_work_share": share,
            "local_time_share": share,
            "idle_cores": idle,
            "cores": cores,
            "processes": processes,
        }
    )


def _speedup_row(table, threshold=1.0):
    claim = {"id": "sp", "kind": "speedup", "statement": "parallel", "source": "SPQN", "problems": ["w128"]}
    (parsed,) = load_claims({"claims": [{**claim, "threshold": threshold}]})
    out = evaluate_claims({"speedup": table}, [parsed])
    return out.iloc[0], to_markdown(out)


def test_a_speedup_on_an_idle_machine_is_judged_and_printed_beside_its_amdahl_ceiling():
    row, md = _speedup_row(_speedup_table([1.5, 1.55, 1.6, 1.45, 1.5, 1.52, 1.48, 1.58], idle=[1.9] * 8))
    assert row["verdict"] == "reproduced" and row["speedup"] == pytest.approx(
        math.sqrt(1.5 * 1.52)
    )  # median on the log scale
    assert row["amdahl_ceiling"] == pytest.approx(1 / (0.16 + 0.42))
    assert "0.84 → 1.72× (P = 2)" in md
    assert _speedup_row(_speedup_table([0.7] * 8, idle=[2.0] * 8))[0]["verdict"] == "not reproduced"
    assert _speedup_row(_speedup_table([1.5] * 8, idle=[2.0] * 8), threshold=2.0)[0]["verdict"] == "not reproduced"


def test_a_loaded_or_too_small_machine_gives_not_tested_at_this_size():
    loaded = _speedup_table([1.6] * 8, idle=[1.9] * 7 + [1.2])  # one timed run shared its cores
    row, md = _speedup_row(loaded)
    assert row["verdict"] == "not tested at this size" == row["claim_verdict"]
    assert "1.2 idle during the timed runs < 2 processes" in row["reason"] and "not tested at this size" in md
    small = _speedup_table([1.6] * 8, idle=[1.0] * 8, cores=1)
    assert _speedup_row(small)[0]["verdict"] == "not tested at this size"


def test_speedup_claims_are_checked_against_the_claims_speedup_entries():
    entry = {
        "id": "w128",
        "problem": "pinn_poisson",
        "params": {"width": 128, "depth": 4, "n_interior": 100, "n_boundary": 20, "n_test": 11},
        "method_params": {"decomposition": "layers", "subdomains": 2},
    }
    claim = {"id": "sp", "kind": "speedup", "statement": "s", "source": "x", "problems": ["w128"]}
    check_config({"claims_speedup": [entry], "claims": [claim]}, [])
    with pytest.raises(ConfigError, match="problem 'w12' is not in the speedup of this sweep; allowed: w128"):
        check_config({"claims_speedup": [entry], "claims": [{**claim, "problems": ["w12"]}]}, [])
    with pytest.raises(ConfigError, match="claims_speedup 'w128'.*subdomains"):
        check_config({"claims_speedup": [{**entry, "method_params": {"subdomains": 0}}], "claims": [claim]}, [])


def test_the_load_probe_sees_other_processes_on_our_cores():
    from ml2bench.sweep.speedup import LoadProbe, cores

    cpus = cores()
    burn = "import time\nt = time.time()\nwhile time.time() - t < 30: pass"
    procs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in cpus]
    try:
        with LoadProbe(cpus) as probe:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(1.5)"], check=True)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert probe.idle < 1.0, probe.idle  # every core busy with a process that is not ours


def test_the_speedup_table_measures_the_local_share_of_a_real_run():
    from ml2bench.sweep.speedup import local_split, run_configs

    entry = {
        "id": "tiny",
        "problem": "pinn_poisson",
        "params": {"width": 16, "depth": 4, "n_interior": 100, "n_boundary": 20, "n_test": 11},
        "method_params": {"decomposition": "layers", "subdomains": 2, "globalization": "lbfgs"},
        "iterations": 2,
    }
    seq, par = run_configs(entry)
    assert par["method_params"]["processes"] == 2 and seq["method_params"]["parallel"] is False
    work_share, time_share = local_split(seq)
    # SPQN: the local L-BFGS steps of both subdomains are most of an iteration, the global line search
    # and L-BFGS step the rest
    assert 0.5 < work_share < 1.0 and 0.0 < time_share < 1.0
