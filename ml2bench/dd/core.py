"""The nonlinear Schwarz corrections: additive (parallel) and multiplicative (sequential).

Additive: every subdomain k starts from the same iterate x and solves its local problem, giving a
local correction c_k (supported on I_k); the combined correction is

    s = Σ_k E_k c_k / counts,      counts[i] = number of subdomains owning variable i,

(for a data decomposition every subdomain owns everything, so s is the mean of the corrections).
Multiplicative: subdomains are visited in order k = 0..K-1, each local problem seeing the latest
values (block Gauss–Seidel in the linear limit); s = x_K - x.

In parallel (a :class:`~ml2bench.dd.parallel.Comm` with world size W), subdomain k is solved on rank
k mod W. Each rank writes its corrections into the rows of a (K, n) buffer, zeros elsewhere, and
one all-reduce (sum) combines them: adding zeros is exact, so every rank then holds exactly the
corrections the sequential loop computes and sums them in the same order – parallel and sequential
runs agree to round-off of the local solves themselves. The work each rank charged during the
local phase is all-reduced too and added to every rank's counter, so the counter holds the total
work of all ranks (identical to a sequential run). The counter's parallel count
(``work_units_parallel``) adds only the slowest subdomain of an additive phase: its critical path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ml2bench.core.objective import Objective
from ml2bench.dd import local
from ml2bench.dd.decomposition import Decomposition, shard_batch

# (k, x, batch) -> local result for subdomain k starting from x; the default uses the objective
LocalSolveFn = Callable[[int, Tensor], "local.LocalResult"]


def combine(n: int, index_sets: list[Tensor], corrections: list[Tensor], counts: Tensor | None = None) -> Tensor:
    """Σ_k E_k c_k / counts (the additive combination), summed in subdomain order."""
    dtype = corrections[0].dtype if corrections else torch.float64
    device = corrections[0].device if corrections else None
    s = torch.zeros(n, dtype=dtype, device=device)
    for idx, c in zip(index_sets, corrections):
        s.index_add_(0, idx.to(s.device), c)
    if counts is None:
        counts = torch.zeros(n, dtype=torch.long)
        for idx in index_sets:
            counts[idx] += 1
    return s / counts.to(device=s.device, dtype=s.dtype)


@dataclass
class Correction:
    """The result of one Schwarz phase."""

    s: Tensor  # combined correction (additive) or x_K - x (multiplicative)
    f_start: float  # f(x) on the batch, from the local evaluations (nan when not available)
    predicted: float  # Σ_k w_k (f_k(start_k) - f_k(end_k)): the APTS model decrease
    local_evals: int  # local evaluations on all ranks
    info: dict[str, float] = field(default_factory=dict)


Known = tuple[float, Tensor] | None  # (f(x), ∇f(x)) at the iterate, when the caller holds them


class SchwarzCore:
    """Local problems of one decomposition of one objective, and their combination."""

    def __init__(
        self, objective: Objective, decomposition: Decomposition, solver_kw: dict[str, Any], comm: Any = None
    ) -> None:
        self.objective = objective
        self.dec = decomposition
        self.solver_kw = solver_kw
        self.comm = comm
        self.counts = decomposition.counts.to(objective.initial_x().device)
        #: (z, f(z), ∇f(z)) of the latest evaluation of a parameter subdomain: the next subdomain of a
        #: multiplicative pass starts where the previous one ended, often at that very point
        self.last: tuple[Tensor, float, Tensor] | None = None
        #: work units (all ranks) and this rank's wall seconds spent in additive local phases so far: the
        #: parallel part of an iteration, what bounds its speed-up (Amdahl; ml2bench.sweep.speedup reads it)
        self.local_phase_work = 0.0
        self.local_phase_time_s = 0.0

    # -- local problems ---------------------------------------------------------------
    def weight(self, k: int, batch: Any) -> float:
        """Weight of subdomain k's local decrease in the model decrease (shard fraction for data)."""
        if self.dec.kind == "data":
            return shard_batch(batch, k, self.dec.size).size / batch.size
        return 1.0

    def local_fun(self, k: int, x: Tensor, batch: Any, known: Known = None):
        """y ↦ (f, g) of subdomain k around x, and y0.

        ``known`` = (f(x), ∇f(x)) on ``batch``, when the caller already holds them: a parameter
        subdomain's local problem at y0 = x[idx] is the global one, so its first evaluation is
        answered from ``known`` instead of being charged a second time."""
        obj = self.objective
        if self.dec.kind == "data":
            shard = shard_batch(batch, k, self.dec.size)
            return (lambda y: obj.loss_grad(y, shard)), x.clone()
        idx = self.dec.index_sets[k].to(x.device)
        y0 = x[idx].clone()
        pending = [known]

        def fun(y: Tensor) -> tuple[float, Tensor]:
            start, pending[0] = pending[0], None
            if start is not None and torch.equal(y, y0):
                fun.answered += 1  # type: ignore[attr-defined]
                return start[0], start[1][idx].clone()
            z = x.clone()
            z[idx] = y
            f, g = obj.loss_grad(z, batch)
            self.last = (z, f, g)
            return f, g[idx]

        fun.answered = 0  # type: ignore[attr-defined]  # calls answered from ``known`` (not evaluated)
        return fun, y0

    def solve(
        self, k: int, x: Tensor, batch: Any, radius: float | None, need_f_end: bool, known: Known = None
    ) -> local.LocalResult:
        fun, y0 = self.local_fun(k, x, batch, known)
        res = local.solve(fun, y0, radius=radius, need_f_end=need_f_end, **self.solver_kw)
        # ``evals`` counts evaluations made: a call answered from ``known`` was none
        return replace(res, evals=res.evals - getattr(fun, "answered", 0))

    # -- the two variants --------------------------------------------------------------
    def additive(
        self, x: Tensor, batch: Any, radius: float | None = None, need_f_end: bool = False, known: Known = None
    ) -> Correction:
        K, n = self.dec.size, x.numel()
        rank, world = (self.comm.rank, self.comm.world) if self.comm is not None else (0, 1)
        counter = self.objective.counter
        before = (counter.grad_evals, counter.work_units)
        parallel_start = counter.work_units_parallel
        t0 = time.perf_counter()
        rows = torch.zeros(K, n, dtype=torch.float64, device=x.device)
        stats = torch.zeros(4, K, dtype=torch.float64, device=x.device)  # f_start, f_end, evals, work units
        # several ranks: each holds only its own subdomains' work until the all-reduce, so the
        # budget is checked on the total afterwards (at the next evaluation), the same on every rank
        with counter.unlimited() if world > 1 else contextlib.nullcontext():
            for k in range(K):
                if k % world != rank:
                    continue
                work0 = counter.work_units
                res = self.solve(k, x, batch, radius, need_f_end, known)
                idx = self.dec.index_sets[k].to(x.device)
                rows[k, idx] = (res.y - x[idx]).to(torch.float64)
                stats[:, k] = torch.tensor(
                    [res.f_start, res.f_end, res.evals, counter.work_units - work0], dtype=torch.float64
                )
        if world > 1:
            work = torch.tensor(
                [counter.grad_evals - before[0], counter.work_units - before[1]], dtype=torch.float64, device=x.device
            )
            local_work = work.clone()
            rows, stats, work = self.comm.all_reduce_sum(rows, stats, work)
            counter.add_remote(self.objective.level, float(work[0] - local_work[0]), float(work[1] - local_work[1]))
        # the subdomains run concurrently: the critical path holds the slowest one (the count of
        # the SPQN authors' code, which charges the additive local phase once per iteration)
        counter.concurrent_phase(parallel_start, stats[3].tolist())
        self.local_phase_work += float(stats[3].sum())
        self.local_phase_time_s += time.perf_counter() - t0
        corrections = [rows[k, self.dec.index_sets[k].to(x.device)].to(x.dtype) for k in range(K)]
        s = combine(n, [i.to(x.device) for i in self.dec.index_sets], corrections, self.counts)
        weights = [self.weight(k, batch) for k in range(K)]
        f_start_k, f_end_k = stats[0].tolist(), stats[1].tolist()
        predicted = sum(w * (a - b) for w, a, b in zip(weights, f_start_k, f_end_k))
        if self.dec.kind == "data":
            f_start = sum(w * a for w, a in zip(weights, f_start_k))
        else:
            f_start = f_start_k[0]
        return Correction(
            s,
            float(f_start),
            float(predicted),
            int(stats[2].sum()),
            {"local_f_start": f_start_k, "local_f_end": f_end_k},
        )

    def multiplicative(
        self, x: Tensor, batch: Any, radius: float | None = None, need_f_end: bool = False, known: Known = None
    ) -> Correction:
        if self.comm is not None and self.comm.world > 1:
            raise RuntimeError("multiplicative Schwarz is sequential; run it without a process group")
        cur = x.clone()
        predicted, evals, f_start = 0.0, 0, float("nan")
        self.last = None
        for k in range(self.dec.size):
            if k > 0:  # f and ∇f where subdomain k-1 ended, when its last evaluation was there (never twice)
                known = self.last[1:] if self.last is not None and torch.equal(self.last[0], cur) else None
            res = self.solve(k, cur, batch, radius, need_f_end, known)
            if k == 0 and self.dec.kind != "data":
                f_start = res.f_start
            predicted += self.weight(k, batch) * (res.f_start - res.f_end)
            evals += res.evals
            if self.dec.kind == "data":
                cur = res.y
            else:
                cur[self.dec.index_sets[k].to(x.device)] = res.y
        return Correction(cur - x, f_start, float(predicted), evals)
