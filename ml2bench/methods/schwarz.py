"""Nonlinear Schwarz preconditioning for training: SPQN (L-BFGS) and APTS (trust region).

One runner step (one outer iteration) on the full batch:

1. **Schwarz phase.** The flat parameter vector is decomposed (:mod:`ml2bench.dd.decomposition`:
   contiguous groups of layers with optional overlap, a seeded random split, or data shards). Each
   subdomain minimises the loss over its own variables with the others frozen, ``local_steps``
   iterations of ``local_solver`` (L-BFGS with strong Wolfe, SGD or Adam; fresh state each
   iteration).
   *additive*: all subdomains start from the same iterate, the corrections are summed and divided
   by the overlap count of each variable (mean over shards for ``data``); with ``parallel`` the
   subdomains are solved on different processes and combined by an all-reduce
   (:mod:`ml2bench.dd.parallel`). *multiplicative*: subdomains one after another, each seeing the
   latest values (sequential only).
2. **Globalisation** of the combined correction ``s``:
   * ``lbfgs`` – SPQN (Kopaničáková, Kothari, Karniadakis & Krause, SISC 2024): strong-Wolfe line
     search along ``s`` (skipped when ``s`` is not a descent direction), then ``global_steps``
     L-BFGS steps with strong-Wolfe line search. The curvature pairs of both the Schwarz step and
     the L-BFGS steps enter one L-BFGS memory (``history_size``).
   * ``tr`` – APTS (Trotti, Cruz, Kopaničáková & Krause): global trust region of radius Δ. Each
     local correction is clipped to the local radius Δ_loc = Δ (bounded by the global one); the
     model decrease is the sum of the local decreases, pred = Σ_k w_k (f_k(start) − f_k(end))
     (w_k = 1 for parameter subdomains, the shard fraction for data shards); ρ = (f(x) − f(x+s)) /
     pred. The step is accepted iff ρ > 0.005 (which implies f decreased), Δ ← 0.25 Δ if
     ρ < 0.05, Δ ← min(2.5 Δ, radius_max) if ρ > 0.9 (defaults of utopia's TR). Then
     ``global_steps`` first-order TR steps on the whole network (s = −Δ g/‖g‖, pred = Δ‖g‖, same
     test and update). f never increases.
   * ``none`` – x ← x + s (unit step, no global evaluation): for the linear-algebra limits
     (additive = block Jacobi, multiplicative = block Gauss–Seidel) and for studying the
     preconditioner alone.

Stopping: converged (stop_reason "grad_tol") only when max|∇f| ≤ ``tolerance_grad``. APTS whose
radius falls below ``radius_min`` stops as "radius_collapse" (the model predicted no decrease it
could deliver: a stall, not a convergence), and without globalisation a zero correction stops the
run as "zero_correction" (a fixed point of the local solvers, which also return nothing when their
line search fails); both end the run as ``stopped``, never ``ok``.

Work accounting (honest by construction): every local evaluation is a full
``Objective.loss_grad`` – for a *parameter* subdomain a local gradient needs the full forward pass
and the backward pass down to the subdomain's first layer, and we charge the whole
forward/backward (1 work unit for the full batch), i.e. no credit for the truncated backward; for
a *data* shard the charge is the shard's share (batch.size/n_train) automatically. Line-search and
trust-region trial evaluations are charged the same way. In parallel runs the work of all ranks is
all-reduced into every rank's counter, so a parallel run reports the same work as a sequential one
(the redundant global evaluations each rank repeats are counted once, as in a sequential run).
Two counts are recorded (docs/protocol.md): ``work_units``, the serial count of every evaluation,
and ``work_units_parallel``, the critical path with the additive local phase charged once per outer
iteration (its slowest subdomain; the SPQN authors' code charges ``num_local_steps`` per epoch).
Multiplicative Schwarz is sequential: both counts agree. The work budget is enforced by the
counter (:class:`~ml2bench.core.objective.BudgetExhausted`): an outer iteration it cuts short
leaves the iterate where the previous one ended (a partial additive correction is no iterate).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch, BudgetExhausted
from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.core.stop import StopReason
from ml2bench.dd import decomposition as ddec
from ml2bench.dd import parallel as ddpar
from ml2bench.dd.core import SchwarzCore
from ml2bench.methods.base import Method, SmokeRun, StepResult, holds_batch, register

TR_ACCEPT, TR_SHRINK_BELOW, TR_GROW_ABOVE, TR_SHRINK, TR_GROW = 0.005, 0.05, 0.9, 0.25, 2.5


class _LBFGSMemory:
    """Curvature pairs and the two-loop recursion (H0 = sᵀy / yᵀy)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.s: list[Tensor] = []
        self.y: list[Tensor] = []

    def state_dict(self) -> dict[str, Any]:
        return {"s": [v.clone() for v in self.s], "y": [v.clone() for v in self.y]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.s, self.y = [v.clone() for v in state["s"]], [v.clone() for v in state["y"]]

    def add(self, s: Tensor, y: Tensor) -> bool:
        sy = float(s @ y)
        if sy <= 1e-10 * float(y @ y) or not math.isfinite(sy):
            return False
        self.s.append(s.clone())
        self.y.append(y.clone())
        if len(self.s) > self.size:
            self.s.pop(0)
            self.y.pop(0)
        return True

    def direction(self, g: Tensor) -> Tensor:
        q = -g.clone()
        if not self.s:
            return q
        alphas = []
        rhos = [1.0 / float(s @ y) for s, y in zip(self.s, self.y)]
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(rhos)):
            a = rho * float(s @ q)
            q.add_(y, alpha=-a)
            alphas.append(a)
        gamma = float(self.s[-1] @ self.y[-1]) / float(self.y[-1] @ self.y[-1])
        q.mul_(gamma)
        for (s, y, rho), a in zip(zip(self.s, self.y, rhos), reversed(alphas)):
            b = rho * float(y @ q)
            q.add_(s, alpha=a - b)
        return q


@register
class Schwarz(Method):
    name = "schwarz"
    description = "nonlinear additive/multiplicative Schwarz preconditioning (SPQN with L-BFGS, APTS with TR)"
    full_batch = True
    state_attrs = ("radius", "memory")
    smoke = (SmokeRun("resnet", {"iterations": 8}), SmokeRun("pinn_poisson", {"iterations": 3}, seeds=(0,)))
    smoke_variants = {"apts": {"globalization": "tr"}, "multiplicative": {"variant": "multiplicative"}}
    params = spec(
        Param(
            "variant",
            str,
            "additive",
            "additive (parallel subdomains) or multiplicative (sequential)",
            choices=("additive", "multiplicative"),
        ),
        Param(
            "globalization",
            str,
            "lbfgs",
            "lbfgs: SPQN line search + global L-BFGS; tr: APTS trust region; none: unit step",
            choices=("lbfgs", "tr", "none"),
        ),
        Param(
            "decomposition",
            str,
            "layers",
            "layers: contiguous layer groups; random: random split of the "
            "parameters; data: batch shards, all parameters",
            choices=("layers", "random", "data"),
        ),
        Param("subdomains", int, 2, "number of subdomains", low=1),
        Param("overlap", int, 0, "layers shared with each neighbouring subdomain (layers only)", low=0),
        Param("local_steps", int, 10, "local solver iterations per subdomain and outer iteration", low=1),
        Param("local_solver", str, "lbfgs", "local solver", choices=("lbfgs", "sgd", "adam")),
        Param(
            "local_lr",
            float,
            None,
            "local step length / learning rate (null: lbfgs 1, sgd 0.01, adam 1e-3)",
            low=0.0,
            low_inclusive=False,
            nullable=True,
        ),
        Param("global_steps", int, 1, "global L-BFGS (lbfgs) or TR (tr) steps after each Schwarz step", low=0),
        Param("history_size", int, 10, "L-BFGS memory (local and global)", low=1),
        Param("radius", float, 1.0, "initial trust-region radius (tr)", low=0.0, low_inclusive=False),
        Param("radius_max", float, 10.0, "largest trust-region radius (tr)", low=0.0, low_inclusive=False),
        Param(
            "radius_min",
            float,
            1e-10,
            "stop (stop_reason 'radius_collapse', not converged) when the radius falls below (tr)",
            low=0.0,
        ),
        Param("max_ls", int, 25, "max evaluations per strong-Wolfe line search", low=1),
        Param(
            "tolerance_grad",
            float,
            1e-9,
            "converged when max|g| falls below (also the local L-BFGS tolerance)",
            low=0.0,
        ),
        Param("tolerance_change", float, 1e-12, "local L-BFGS stops when steps or loss changes fall below", low=0.0),
        Param("seed", int, 0, "seed of the random decomposition", low=0),
        Param(
            "parallel",
            bool,
            False,
            "additive subdomain solves on several processes (torch.distributed); "
            "uses the torchrun group if present, else spawns workers on 127.0.0.1",
        ),
        Param("processes", int, 2, "world size when spawning workers (parallel, no torchrun)", low=1),
        Param("threads_per_process", int, 1, "torch threads per process when spawning workers", low=1),
        Param(
            "backend",
            str,
            "auto",
            "process-group backend under torchrun (auto: nccl on CUDA, else gloo)",
            choices=("auto", "gloo", "nccl"),
        ),
        Param(
            "timeout_s", float, 60.0, "timeout of collectives and rendezvous in seconds", low=0.0, low_inclusive=False
        ),
    )

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any], _comm: Any = None) -> None:
        super().__init__(hierarchy, x0, hp)
        obj = hierarchy.fine
        self.dec = ddec.build(hp["decomposition"], obj.names, obj.numels, hp["subdomains"], hp["overlap"], hp["seed"])
        self.radius = hp["radius"]
        self.memory = _LBFGSMemory(hp["history_size"])
        self._cache: tuple[Any, float, Tensor] | None = None  # (batch, f(x), g(x))
        self._spawned: ddpar.SpawnedGroup | None = None
        self._owned_group = False
        self.comm = _comm
        self._ranks_agree = False  # checked at the first step (Comm.check_agree)
        wants_parallel = hp["parallel"] or ddpar.launched_distributed()
        if wants_parallel and hp["variant"] != "additive" and _comm is None:
            raise ConfigError(
                "method 'schwarz': parallel execution needs variant='additive' (multiplicative Schwarz is sequential)"
            )
        if _comm is None and wants_parallel:
            if ddpar.launched_distributed():
                self.comm, self._owned_group = ddpar.join_launched_group(hp["backend"], x0.device, hp["timeout_s"])
            elif hp["processes"] > 1:
                self._spawned = ddpar.SpawnedGroup(
                    hierarchy,
                    x0,
                    dict(hp, parallel=False),
                    f"{__name__}.Schwarz",
                    hp["processes"],
                    hp["timeout_s"],
                    hp["threads_per_process"],
                )
                self.comm = self._spawned.comm
                self._finalizer = weakref.finalize(self, self._spawned.close)
        solver_kw = dict(
            solver=hp["local_solver"],
            steps=hp["local_steps"],
            lr=hp["local_lr"],
            history_size=hp["history_size"],
            tolerance_grad=hp["tolerance_grad"],
            tolerance_change=hp["tolerance_change"],
        )
        self.core = SchwarzCore(obj, self.dec, solver_kw, self.comm)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop spawned workers / drop a group this method created (idempotent)."""
        if self._spawned is not None:
            self._spawned.close()
        if self._owned_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self._owned_group = False

    # -- helpers -------------------------------------------------------------------------
    def _f_g(self, batch: Batch) -> tuple[float, Tensor]:
        if self._cache is not None and holds_batch(self._cache[0], batch):
            self._cache = (batch, self._cache[1], self._cache[2])
            return self._cache[1], self._cache[2]
        return self.hierarchy.fine.loss_grad(self.x, batch)

    def _held(self) -> tuple[Any, float, Tensor | None]:  # the held f, ∇f live in _cache
        return self._cache if self._cache is not None else (None, math.nan, None)

    def _hold(self, batch: Any, f: float, g: Tensor | None) -> None:
        self._cache = None if g is None else (batch, f, g)

    def _line_search(self, batch: Batch, f: float, g: Tensor, d: Tensor, t: float):
        obj = self.hierarchy.fine
        x = self.x

        def obj_func(_x, step, direction):
            return obj.loss_grad(x + step * direction, batch)

        gtd = float(g @ d)
        f_new, g_new, t, _ = _strong_wolfe(obj_func, x, t, d, f, g, gtd, max_ls=self.hp["max_ls"])
        return float(f_new), g_new, float(t)

    def _tr_update(self, rho: float) -> None:
        if rho < TR_SHRINK_BELOW:
            self.radius *= TR_SHRINK
        elif rho > TR_GROW_ABOVE:
            self.radius = min(self.radius * TR_GROW, self.hp["radius_max"])

    # -- one outer iteration ---------------------------------------------------------------
    def step(self, batch: Batch) -> StepResult:
        if self._spawned is None:
            return self._step(batch)
        try:
            self._spawned.send_batch(batch)
            return self._step(batch)
        except BudgetExhausted:  # the run ends mid-step: the workers wait at a collective that never comes
            self._spawned.abort()
            self._spawned.closed = True
            raise
        except ConfigError:
            raise
        except Exception as exc:  # a peer died or timed out: say which and why, then tear down
            err = self._spawned.explain(exc)
            self._spawned.abort()
            self._spawned.closed = True
            raise err from exc

    def _step(self, batch: Batch) -> StepResult:
        hp = self.hp
        glob = hp["globalization"]
        variant = self.core.additive if hp["variant"] == "additive" else self.core.multiplicative
        info: dict[str, float] = {}
        if glob == "none":
            corr = variant(self.x, batch)
            f0 = corr.f_start
            if not math.isfinite(f0):
                f0 = self.hierarchy.fine.loss(self.x, batch)
            self._check_ranks_agree(f0)
            self.x = self.x + corr.s
            self._cache = None
            # a zero correction is a fixed point of the local solvers, not a stated criterion: they
            # also return nothing when their line search fails; no global gradient is evaluated here
            stop = StopReason.ZERO_CORRECTION if bool(torch.all(corr.s == 0)) else ""
            return StepResult(f0, info={"local_evals": corr.local_evals}, stop_reason=stop)

        f0, g0 = self._f_g(batch)
        self._check_ranks_agree(f0)
        if float(g0.abs().max()) <= hp["tolerance_grad"]:
            return StepResult(f0, converged=True, stop_reason=StopReason.GRAD_TOL)
        if glob == "lbfgs":
            f, g = self._spqn(batch, f0, g0, info)
        else:
            f, g = self._apts(batch, f0, g0, info)
            if self.radius < hp["radius_min"]:  # the model failed to predict any decrease: a stall,
                self._cache = (batch, f, g)  # not a convergence (the gradient decides that)
                self._sync()
                converged = float(g.abs().max()) <= hp["tolerance_grad"]
                return StepResult(
                    f0,
                    converged=converged,
                    info=info,
                    stop_reason=StopReason.GRAD_TOL if converged else StopReason.RADIUS_COLLAPSE,
                )
        self._cache = (batch, f, g)
        self._sync()
        return StepResult(f0, info=info)

    def _check_ranks_agree(self, f0: float) -> None:
        """Once, at the first step: all ranks see the same f(x0) (see :meth:`Comm.check_agree`)."""
        if self.comm is not None and self.comm.world > 1 and not self._ranks_agree:
            self.comm.check_agree(f0, "f(x0)")
            self._ranks_agree = True

    def _sync(self) -> None:
        """Keep replicas bit-identical: rank 0's iterate (and cached f, g) wins."""
        if self.comm is None or self.comm.world == 1:
            return
        n = self.x.numel()
        if self._cache is not None:
            batch, f, g = self._cache
            state = torch.cat([self.x, g, torch.tensor([f], dtype=self.x.dtype, device=self.x.device)])
            self.comm.broadcast_(state)
            self.x = state[:n].clone()
            self._cache = (batch, float(state[-1]), state[n : 2 * n].clone())
        else:
            x = self.x.clone()
            self.comm.broadcast_(x)
            self.x = x

    def _spqn(self, batch: Batch, f: float, g: Tensor, info: dict[str, float]) -> tuple[float, Tensor]:
        corr = (self.core.additive if self.hp["variant"] == "additive" else self.core.multiplicative)(
            self.x, batch, known=(f, g)
        )
        info["local_evals"] = corr.local_evals
        d = corr.s
        if float(g @ d) < 0:
            f_new, g_new, t = self._line_search(batch, f, g, d, 1.0)
            if f_new <= f:
                self.memory.add(t * d, g_new - g)
                self.x = self.x + t * d
                f, g = f_new, g_new
            info["schwarz_step"] = t
        else:
            info["schwarz_step"] = 0.0  # not a descent direction: skipped
        for _ in range(self.hp["global_steps"]):
            if float(g.abs().max()) <= self.hp["tolerance_grad"]:
                break
            d = self.memory.direction(g)
            if float(g @ d) >= 0:  # lost positive definiteness: restart
                self.memory = _LBFGSMemory(self.hp["history_size"])
                d = -g
            t0 = 1.0 if self.memory.s else min(1.0, 1.0 / float(g.abs().sum()))
            f_new, g_new, t = self._line_search(batch, f, g, d, t0)
            if not f_new <= f:
                break
            self.memory.add(t * d, g_new - g)
            self.x = self.x + t * d
            f, g = f_new, g_new
            info["lbfgs_step"] = t
        return f, g

    def _apts(self, batch: Batch, f: float, g: Tensor, info: dict[str, float]) -> tuple[float, Tensor]:
        obj = self.hierarchy.fine
        variant = self.core.additive if self.hp["variant"] == "additive" else self.core.multiplicative
        corr = variant(self.x, batch, radius=self.radius, need_f_end=True, known=(f, g))
        info["local_evals"] = corr.local_evals
        accepted = 0
        if corr.predicted > 0 and bool(torch.any(corr.s != 0)):
            f_try, g_try = obj.loss_grad(self.x + corr.s, batch)
            rho = (f - f_try) / corr.predicted if math.isfinite(f_try) else -math.inf
            info["rho"] = rho
            if rho > TR_ACCEPT and f_try < f:
                self.x, f, g = self.x + corr.s, f_try, g_try
                accepted += 1
            self._tr_update(rho)
        else:
            self.radius *= TR_SHRINK
        for _ in range(self.hp["global_steps"]):
            gnorm = float(torch.linalg.vector_norm(g))
            if gnorm == 0 or self.radius < self.hp["radius_min"]:
                break
            s = -(self.radius / gnorm) * g
            f_try, g_try = obj.loss_grad(self.x + s, batch)
            rho = (f - f_try) / (self.radius * gnorm) if math.isfinite(f_try) else -math.inf
            if rho > TR_ACCEPT and f_try < f:
                self.x, f, g = self.x + s, f_try, g_try
                accepted += 1
            self._tr_update(rho)
        info["radius"] = self.radius
        info["accepted"] = accepted
        return f, g
