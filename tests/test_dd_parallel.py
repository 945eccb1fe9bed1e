"""Parallel additive Schwarz on a real engine: torch.distributed (gloo) over loopback, 2 processes."""

from __future__ import annotations

import time

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.runner import run
from ml2bench.dd.parallel import FAULT_ENV
from ml2bench.dd.testing import mlp_hierarchy
from ml2bench.methods import METHODS

Schwarz = METHODS.get("schwarz")


def iterates(parallel: bool, steps: int = 2, **hp):
    h, x0, batch = mlp_hierarchy(seed=3, n=48)
    m = Schwarz(h, x0, Schwarz.params.validate(dict(hp, parallel=parallel, processes=2, timeout_s=30.0), "schwarz"))
    xs = []
    try:
        for _ in range(steps):
            m.step(batch)
            xs.append(m.x.clone())
    finally:
        m.close()
    return xs, h.counter.grad_evals


@pytest.mark.parametrize(
    "hp",
    [
        {"globalization": "lbfgs", "decomposition": "layers", "subdomains": 3, "local_steps": 3},
        {
            "globalization": "tr",
            "decomposition": "data",
            "subdomains": 2,
            "local_steps": 3,
            "local_solver": "adam",
            "local_lr": 0.05,
        },
    ],
    ids=["spqn-layers", "apts-data"],
)
def test_two_gloo_processes_give_the_sequential_iterates(hp):
    seq, work_seq = iterates(False, **hp)
    par, work_par = iterates(True, **hp)
    for k, (a, b) in enumerate(zip(seq, par)):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=0, msg=f"iterate {k}")
    assert not torch.allclose(seq[-1], seq[0])
    assert work_par == pytest.approx(work_seq)  # work of both ranks summed into the counter
    assert not torch.distributed.is_initialized()  # the method tore its group down


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_crashing_worker_fails_the_run_clearly_and_quickly(monkeypatch, how):
    monkeypatch.setenv(FAULT_ENV, "1" if how == "raise" else "1:exit")
    cfg = RunConfig.from_dict(
        {
            "problem": "mlp",
            "method": "schwarz",
            "problem_params": {"n_train": 100, "n_test": 50, "width": 8},
            "method_params": {"parallel": True, "processes": 2, "local_steps": 2, "timeout_s": 20.0},
            "budget": {"iterations": 3},
        }
    )
    t0 = time.monotonic()
    result = run(cfg)
    elapsed = time.monotonic() - t0
    s = result.summary.iloc[0]
    assert s["status"] == "failed"
    assert "ParallelError" in s["error"] and "worker rank 1" in s["error"]
    assert ("injected fault" in s["error"]) if how == "raise" else ("exited with code 3" in s["error"])
    assert elapsed < 20.0 + 15.0  # never hangs past the collective timeout
    assert not torch.distributed.is_initialized()
