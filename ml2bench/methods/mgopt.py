"""``mgopt``: MG/OPT (Nash, Optim. Methods Softw. 2000), recursive V-cycle.

On level l with model m_l (m_0 = f_0; deeper down ψ from the level above) from x:

1. ``pre_smooth`` smoother iterations on m_l;
2. x_H = R_x x, v = ∇f_H(x_H) − R_g ∇m_l(x), ψ_H(y) = f_H(y) − vᵀy (so ∇ψ_H(x_H) = R_g ∇m_l(x):
   first-order coherence; :mod:`ml2bench.multilevel.coarse`);
3. approximately minimise ψ_H from x_H: recursively (a V-cycle on level l+1) or, on the coarsest
   level, smoother iterations until ‖∇ψ_H‖ ≤ ``coarse_rtol`` ‖∇ψ_H(x_H)‖, at most ``coarse_steps``
   (a fixed 5 steps made the gradient-descent smoother level dependent);
4. e = P(y − x_H); if e is a descent direction (∇m_lᵀe < 0), a backtracking Armijo line search on
   level l along e from α = 1 (sufficient decrease c₁ = ``c1``; the next trial is the minimiser
   of the quadratic interpolant, safeguarded into [0.1α, 0.5α]; at most ``ls_max`` trials);
   the step is taken only if Armijo holds (tested on the round-off-safe decrease, see
   :func:`armijo`), so the coarse correction never increases m_l beyond round-off (where
   |Δf| < 100 ε max|f| the decrease is estimated from the gradients, which may accept a change
   of f of that size);
5. ``post_smooth`` smoother iterations.

A coarse problem cannot run away. ψ_H is f_H minus a linear term, so it may be unbounded below:
measured on the deep peaks ResNet (seed 0, L-BFGS smoother), the coarsest iterate's norm grew from
29 to 5e12 while ψ_H fell from 0.28 to −9e10 and the coarse network's own loss f_H rose from 0.44
to 1e11, and the level above accepted the prolongated correction (docs/methods/mgopt.md). Every
coarse level therefore checks its iterate after each smoother iteration and accepted correction
(:func:`runaway`): a non-finite iterate or value, or a ψ_H or f_H that has moved from its value
at the coarse problem's start by more than :data:`~ml2bench.numerics.trust_region.EXPLODED` ·
max(1, |start value|) (the trust region's ``exploded`` notion, in either direction) stops the
coarse solve at once; its correction is rejected without a line search, at the cost already
spent (counted as ``coarse_runaway``).

Stopping: ``converged`` with stop_reason "grad_tol" when ‖g‖ ≤ ``grad_tol`` or ‖g‖ ≤
``grad_rtol`` ‖g₀‖ (with ``batching="minibatch"`` only on the full batch: a small sampled
gradient is no convergence); "stalled" (not converged) after ``stall_cycles`` V-cycles in a row
on the full batch that leave the iterate unchanged (a cycle rejected on a mini-batch never counts).

Arguments: ``ml2bench list methods`` prints every one with its default and range. The default
smoother ``tr`` (one L-BFGS trust-region iteration per smoothing step) and ``coarse_steps=50`` were
chosen by measurement; level (in)dependence on the grid problems, the ResNet benchmark and the
smoother comparison are in docs/methods/mgopt.md.

Smoothers (``smoother``): ``gd`` (fixed step ``lr`` · ``lr_level_factor``^l; the factor lets the
step follow the level's curvature scale, e.g. 2 for 1-D h-weighted energies whose Hessian scales
like 1/h; 1 for 2-D h²-weighted energies and for networks), ``gd_ls`` (gradient descent with
Armijo backtracking from twice the last accepted step), ``lbfgs`` (two-loop direction + Armijo
from α = 1; memory per level), ``tr`` (one trust-region iteration with the ``qn`` model; radius
per level). Every evaluation is a loss+gradient evaluation so the gradient at the accepted point
is reused. Batches: as in ``rmtr`` — one ``step(batch)`` = ``cycles_per_step`` V-cycles on that
batch, coarse models on the same batch.

Stochastic MG/OPT (von Planta, Kopaničáková & Krause 2021): ``batching="minibatch"`` makes the
run's default batching the problem's mini-batches (as SGD's; a run's ``batch_size`` sets the size),
so each step is a V-cycle on one mini-batch: smoothing, the τ-corrected coarse models and the line
search all on that batch, every evaluation charged at batch size / n_train through the objectives;
the fine f, ∇f at the iterate are evaluated once per new batch. ``smoother="gd"`` with ``lr`` is
their SGD smoother. ``batching="full"`` (default) is Nash's deterministic MG/OPT.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch
from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.core.stop import StopReason
from ml2bench.methods.base import CycleMonitor, Method, SmokeRun, StepResult, register, vcycle_params
from ml2bench.methods.tr import check_radius_hp
from ml2bench.multilevel.coarse import coherent_model
from ml2bench.numerics.quasi_newton import LBFGS, QN_TYPES, make_qn
from ml2bench.numerics.trust_region import EXPLODED, TRConfig, actual_reduction, tr_iteration

SMOOTHERS = ("gd", "gd_ls", "lbfgs", "tr")
BATCHING = ("full", "minibatch")


class CoarseRunaway(Exception):
    """A coarse problem's iterate or value ran away (see module docstring): its correction is rejected."""


def _moved(start: float, value: float) -> bool:
    return not abs(value - start) <= EXPLODED * max(1.0, abs(start))  # also True for NaN or inf


def runaway(model, start: tuple[Tensor, float], x: Tensor, f: float) -> bool:
    """Has the coarse problem ``model`` (ψ_H = f_H + ⟨shift, ·⟩, a
    :class:`~ml2bench.multilevel.coarse.ShiftedObjective`) run away from its start (y₀, ψ_H(y₀)) to
    (x, f = ψ_H(x))? True when x or f is not finite, or ψ_H or the coarse network's own loss f_H
    moved by more than EXPLODED · max(1, |its start value|)."""
    y0, f0 = start
    if not bool(torch.isfinite(x).all()) or _moved(f0, f):
        return True
    shift = getattr(model, "shift", None)
    return shift is not None and _moved(f0 - float(shift @ y0), f - float(shift @ x))


def armijo(
    model, batch: Batch, x: Tensor, f: float, g: Tensor, d: Tensor, alpha: float, c1: float, max_trials: int
) -> tuple[Tensor, float, Tensor, float] | None:
    """Backtracking Armijo search along ``d`` (needs gᵀd < 0); returns (x, f, g, α) or None (also
    when a step rounds to x: evaluating x again would charge a known point).

    Sufficient decrease is tested on the decrease itself, computed round-off-safe by
    :func:`~ml2bench.numerics.trust_region.actual_reduction` (f − f₊, or −½(g + g₊)ᵀs when
    f − f₊ is at the round-off level of f): near a minimiser the required decrease c₁α|gᵀd| is
    far below the round-off of f, and comparing raw values accepts or rejects on noise (measured
    before: ‖g‖/‖g₀‖ stuck at 2.4e-8 for 400 cycles on a 127² problem)."""
    slope = float(g @ d)
    if not slope < 0:
        return None
    for _ in range(max_trials):
        s = alpha * d
        if torch.equal(x + s, x):  # the step rounds away: x is known, and a shorter step rounds away too
            return None
        f_t, g_t = model.loss_grad(x + s, batch)
        ared = actual_reduction(f, f_t, g, g_t, s)
        if ared >= -c1 * alpha * slope:
            return x + s, f_t, g_t, alpha
        if math.isfinite(ared):
            denom = 2.0 * (-ared - slope * alpha)
            a_new = -slope * alpha * alpha / denom if denom > 0 else 0.5 * alpha
            alpha = min(max(a_new, 0.1 * alpha), 0.5 * alpha)
        else:
            alpha *= 0.1
    return None


@register
class MGOpt(Method):
    name = "mgopt"
    description = "MG/OPT (Nash 2000) V-cycle with tau-corrected coarse models and a fine line search"
    #: the default batching; with ``batching="minibatch"`` the problem's mini-batches (:meth:`uses_full_batch`)
    full_batch = True
    state_attrs = ("qn", "radius", "alpha", "monitor", "stats")
    smoke = (SmokeRun("resnet", {"iterations": 8}), SmokeRun("pinn_poisson", {"iterations": 5}, seeds=(0,)))
    smoke_variants = {
        "lbfgs": {"smoother": "lbfgs"},
        "minibatch": {"batching": "minibatch", "smoother": "gd", "lr": 0.5, "coarse_steps": 5},
        "minibatch_lbfgs": {"batching": "minibatch", "smoother": "lbfgs", "coarse_steps": 5},
    }
    params = spec(
        *vcycle_params(pre_smooth=2, post_smooth=2, smoother="smoother", coarse_steps=50, coarse_rtol=0.1),
        Param("smoother", str, "tr", "smoother", choices=SMOOTHERS),
        Param("lr", float, 0.1, "gd: fixed step; gd_ls: first trial step", low=0.0, low_inclusive=False),
        Param("lr_level_factor", float, 1.0, "gd: step on level l is lr * factor**l", low=0.0, low_inclusive=False),
        Param("memory", int, 5, "lbfgs/tr smoother: stored curvature pairs", low=0),
        Param("qn", str, "lbfgs", "tr smoother: quasi-Newton model (as the tr method's default)", choices=QN_TYPES),
        Param("radius0", float, 1.0, "tr smoother: initial trust radius", low=0.0, low_inclusive=False),
        Param(
            "radius_max",
            float,
            1e10,
            "tr smoother: largest trust radius (a cap of 100 made the smoother depend on the units of x)",
            low=0.0,
            low_inclusive=False,
        ),
        Param("c1", float, 1e-4, "Armijo sufficient-decrease constant", low=0.0, high=0.5, low_inclusive=False),
        Param("ls_max", int, 10, "line-search trials per search", low=1),
        Param(
            "coarse_correction",
            bool,
            True,
            "use the coarse levels (false: the smoother alone, pre_smooth + post_smooth iterations per cycle: "
            "MG/OPT's single-level counterpart)",
        ),
        Param(
            "batching",
            str,
            "full",
            "full: V-cycles on the full batch (Nash 2000); minibatch: one V-cycle per mini-batch, coarse models "
            "and line search on the same batch (stochastic MG/OPT, von Planta, Kopaničáková & Krause 2021)",
            choices=BATCHING,
        ),
    )

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any]) -> None:
        super().__init__(hierarchy, x0, hp)
        if hierarchy.levels < hp["levels"]:
            raise ConfigError(f"method 'mgopt': levels={hp['levels']} but the hierarchy has {hierarchy.levels}")
        self.L = hp["levels"]
        check_radius_hp(hp, self.name)
        self.cfg = TRConfig(radius0=hp["radius0"], radius_max=hp["radius_max"])
        smoother = hp["smoother"]
        self.qn = [
            LBFGS(hp["memory"]) if smoother == "lbfgs" else make_qn(hp["qn"], hp["memory"]) for _ in range(self.L)
        ]
        self.radius = [hp["radius0"]] * self.L
        self.alpha = [hp["lr"]] * self.L
        self.monitor = CycleMonitor(hp)
        self.stats = {"coarse_accepted": 0, "coarse_tried": 0, "coarse_runaway": 0, "alpha": math.nan}

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        return int(hp.get("levels", 3))

    @classmethod
    def uses_full_batch(cls, hp: dict[str, Any]) -> bool:
        return hp.get("batching", "full") == "full"

    # --- smoothers --------------------------------------------------------------------------------
    def _smooth(
        self,
        l: int,
        model,
        batch: Batch,
        x: Tensor,
        f: float,
        g: Tensor,
        steps: int,
        gtol: float = 0.0,
        start: tuple[Tensor, float] | None = None,
    ) -> tuple[Tensor, float, Tensor]:
        """Up to ``steps`` smoother iterations on level l (fewer once ‖∇m‖ <= gtol). On a coarse level
        (l > 0) raises :class:`CoarseRunaway` at the first iterate that ran away from the coarse
        problem's ``start`` (y₀, ψ_H(y₀)) (:func:`runaway`)."""
        hp = self.hp
        kind = hp["smoother"]
        for _ in range(steps):
            if float(g.norm()) <= gtol or float(g.norm()) == 0.0:
                break
            if kind == "gd":
                x = x - hp["lr"] * hp["lr_level_factor"] ** l * g
                f, g = model.loss_grad(x, batch)
            elif kind == "gd_ls":
                out = armijo(model, batch, x, f, g, -g, 2.0 * self.alpha[l], hp["c1"], hp["ls_max"])
                if out is None:
                    self.alpha[l] *= 0.01
                    continue
                x, f, g, self.alpha[l] = out
            elif kind == "lbfgs":
                qn = self.qn[l]
                d = -qn.solve(g) if len(qn) else -g * min(1.0, hp["lr"] / float(g.norm()))
                out = armijo(model, batch, x, f, g, d, 1.0, hp["c1"], hp["ls_max"])
                if out is None:
                    qn.reset()
                    continue
                x_new, f_new, g_new, _ = out
                qn.update(x_new - x, g_new - g)
                x, f, g = x_new, f_new, g_new
            else:  # tr
                res = tr_iteration(model, batch, x, f, g, self.radius[l], self.qn[l], self.cfg)
                x, f, g, self.radius[l] = res.x, res.f, res.g, res.radius
            if l == 0:
                self.checkpoint(x, f, g)
            elif runaway(model, start, x, f):
                raise CoarseRunaway
        return x, f, g

    # --- V-cycle -----------------------------------------------------------------------------------
    def _cycle(self, l: int, model, batch: Batch, x: Tensor, f: float, g: Tensor) -> tuple[Tensor, float, Tensor]:
        """One V-cycle on level l from x; on a coarse level raises :class:`CoarseRunaway` when the
        iterate runs away from this coarse problem's start value f (see module docstring)."""
        hp = self.hp
        start = (x, f)
        if l == self.L - 1:
            gtol = hp["coarse_rtol"] * float(g.norm()) if l > 0 else 0.0
            return self._smooth(l, model, batch, x, f, g, hp["coarse_steps"], gtol, start)
        x, f, g = self._smooth(l, model, batch, x, f, g, hp["pre_smooth"], start=start)
        if hp["coarse_correction"] and float(g.norm()) > 0:
            if l == 0:
                self.checkpoint(x, f, g, coarse_next=True)
            transfer = self.hierarchy.transfers[l]
            model_H, y0, psi0, gpsi0 = coherent_model(self.hierarchy.objectives[l + 1], transfer, x, g, batch)
            self.stats["coarse_tried"] += l == 0
            try:
                y, _, _ = self._cycle(l + 1, model_H, batch, y0, psi0, gpsi0)
            except CoarseRunaway:  # rejected at the cost already spent, without a line search
                self.stats["coarse_runaway"] += l == 0
                out = None
            else:
                e = transfer.prolongate(y - y0)
                out = armijo(model, batch, x, f, g, e, 1.0, hp["c1"], hp["ls_max"])
            if out is not None:
                x, f, g, alpha = out
                if l == 0:
                    self.stats["coarse_accepted"] += 1
                    self.stats["alpha"] = alpha
                elif runaway(model, start, x, f):  # the accepted correction carried this level away too
                    raise CoarseRunaway
            if l == 0:
                self.checkpoint(x, f, g)
        return self._smooth(l, model, batch, x, f, g, hp["post_smooth"], start=start)

    def step(self, batch: Batch) -> StepResult:
        fine = self.hierarchy.fine
        self.fine_fg_at_iterate(batch)
        loss0 = self._f
        if not self.iterate_is_finite():
            return StepResult(loss0, False, {"grad_norm": float(self._g.norm())}, StopReason.NONFINITE)
        self.monitor.start(float(self._g.norm()))
        acc0, tried0, runaway0 = self.stats["coarse_accepted"], self.stats["coarse_tried"], self.stats["coarse_runaway"]
        self.stats["alpha"] = math.nan

        def one_cycle() -> bool:
            x_before = self.x
            self.x, self._f, self._g = self._cycle(0, fine, batch, self.x, self._f, self._g)
            return not torch.equal(self.x, x_before)

        stop = self.monitor.run_cycles(
            self.hp["cycles_per_step"], one_cycle, lambda: float(self._g.norm()), batch.size >= fine.n_train
        )
        gnorm = float(self._g.norm())
        info = {
            "grad_norm": gnorm,
            "coarse_tried": float(self.stats["coarse_tried"] - tried0),
            "coarse_accepted": float(self.stats["coarse_accepted"] - acc0),
            "coarse_runaway": float(self.stats["coarse_runaway"] - runaway0),
            "alpha": self.stats["alpha"],
        }
        return StepResult(loss0, stop == StopReason.GRAD_TOL, info, stop)
