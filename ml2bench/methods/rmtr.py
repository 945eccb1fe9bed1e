"""``rmtr``: recursive multilevel trust region (Gratton, Sartenaer & Toint, SIAM J. Optim. 2008;
for residual networks Kopaničáková & Krause, SISC 2022), V-cycle form.

Level l (0 finest) minimises its model m_l (m_0 = f_0; deeper down the first-order coherent
model of :mod:`ml2bench.multilevel.coarse`, h_H(y) = f_H(y) + ⟨R_g g_l − ∇f_H(R_x x_l), y − R_x x_l⟩)
from x_{l,0} by

1. ``pre_smooth`` trust-region iterations (Steihaug–Toint CG on an L-SR1/L-BFGS model, or with
   ``model="hessian"`` on the exact second-order Taylor model via Hessian-vector products;
   :mod:`ml2bench.numerics.trust_region`);
2. a coarse correction, if l < levels−1 and ‖R_g g‖ ≥ κ_g ‖g‖ and ‖R_g g‖ > ε (ε = ``eps_g`` ‖g₀‖,
   relative to the run's first fine gradient so that the method does not depend on the units of f
   or x): recurse on level
   l+1 from y₀ = R_x x to get y*, prolongate s = P(y* − y₀), evaluate m_l(x + s) and accept it if
   ρ = (m_l(x) − m_l(x + s)) / (h_H(y₀) − h_H(y*)) > η₀; the radius Δ_l is updated with the same ρ
   rules as a TR step (:func:`~ml2bench.numerics.trust_region.update_radius`);
3. ``post_smooth`` trust-region iterations.
On the coarsest level: trust-region iterations until ‖∇h_H‖ ≤ ``coarse_rtol`` ‖∇h_H(y₀)‖, at most
``coarse_steps`` (a fixed 5 steps left large coarsest grids unsolved).

Trust regions across levels (2-norm variant). Level l+1 must keep its prolongated displacement
inside the level-l region: ‖P(y − y₀)‖ ≤ Δ_bound = min(Δ_l, what is left of level l's own bound).
Δ_l is the level's radius *at the start of the cycle* (as in Gratton–Sartenaer–Toint's analysis),
enlarged by successful smoothing steps but never cut by rejected ones: the smoothing steps run on
their own radius (with one shared radius, rejected smoothing steps on the stiff modes cut it and
it capped the coarse correction for hundreds of cycles). The coarse level starts with
Δ_H = min(coarse_radius_max, Δ_bound / ‖P‖), and each coarse TR step is limited to
(Δ_bound − ‖P(y − y₀)‖) / ‖P‖ (‖P‖₂ by power iteration once at start, inflated by 5 %), so the
prolongated step stays inside the fine region (should the estimate of ‖P‖ be too small, the final
coarse displacement is scaled back onto the bound, at the price of one more coarse evaluation);
the coarse iteration stops when ‖P(y − y₀)‖ ≥ (1 − ε_Δ) Δ_bound or ‖∇h_H‖ ≤ ε. The coarse radius
starts afresh in every cycle; Δ_0 and the quasi-Newton memories of all levels persist across steps
(the coarse models change by a linear term only, so their curvature pairs stay valid). A coarse
correction's pair (s, ∇m(x + s) − ∇m(x)) joins level l's memory without resetting the scaling δ of
B₀ = δI: δ stays the smoothing steps' (:class:`~ml2bench.numerics.quasi_newton._LimitedMemory`);
rescaled by the curvature of the smooth modes, the post-smoothing steps overshoot on the
oscillatory ones.

Predicted reduction of a coarse correction: h_H(y₀) − h_H(y*) is accumulated as the sum of the
actual reductions of the coarse level's accepted steps (each by
:func:`~ml2bench.numerics.trust_region.actual_reduction`): the same number in exact arithmetic,
but it survives near a minimiser, where the plain difference of two model values is round-off and
would make ρ random. A coarse correction with ρ > η₂ enlarges Δ_l like a TR step
(Δ_l ← max(Δ_l, γ₂‖s‖)).

Stopping: ``converged`` with stop_reason "grad_tol" when ‖g‖ ≤ ``grad_tol`` or ‖g‖ ≤
``grad_rtol`` ‖g₀‖ on the full batch; "stalled" (not converged) after ``stall_cycles`` V-cycles in
a row on the full batch that leave the iterate unchanged without cutting a trust radius above the
round-off scale ε_mach max(Δ₀, ‖x‖) (rejected trials that cut the radius are the trust-region
iteration at work: with one TR step per cycle, three rejections stopped a run that ``tr`` goes on
with; a step rejected on a mini-batch's loss says nothing about f: sampled cycles never count).

Arguments: ``ml2bench list methods`` prints every one with its default and range. The defaults
(L-BFGS model, ν1 = ν2 = 2, ``coarse_steps=50``) and the measurements that chose them, level
(in)dependence on the grid problems and the ResNet benchmark are in docs/methods/rmtr.md.
``eps_g`` is relative to ‖g₀‖ and the radii are capped at 1e10 only, so scaling f or x does not
change the iteration. A user-built hierarchy needs R_g scaled like its coarse energies
(:func:`~ml2bench.multilevel.coarse.curvature_scaling`).

Batches: one ``step(batch)`` = ``cycles_per_step`` V-cycles on that batch; the coarse models are
built and evaluated on the same batch. With mini-batches the fine gradient is re-evaluated when
the batch changes (one extra evaluation per step); with the full batch it is reused. With
``batch_growth`` the method draws its own growing mini-batches (:mod:`ml2bench.numerics.sampling`).
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
from ml2bench.methods.tr import TR_PARAMS, check_tr_hp
from ml2bench.multilevel.coarse import coherent_model
from ml2bench.multilevel.norms import prolongation_norm
from ml2bench.numerics.quasi_newton import make_model
from ml2bench.numerics.sampling import RULES as GROWTH_RULES
from ml2bench.numerics.sampling import AdaptiveBatch, BatchSampler
from ml2bench.numerics.trust_region import TRConfig, actual_reduction, tr_iteration, update_radius


@register
class RMTR(Method):
    name = "rmtr"
    description = "recursive multilevel trust region (RMTR, V-cycle) with L-BFGS/L-SR1 or exact-Hessian TR smoothing"
    full_batch = True
    state_attrs = ("radius", "smooth_radius", "qn", "monitor", "eps_g", "stats", "growth")
    # pinn_poisson: the fewest iterations of 3, 8, 20, 40 that clear the rel. L2 floor with a margin
    smoke = (SmokeRun("resnet", {"iterations": 8}), SmokeRun("pinn_poisson", {"iterations": 8}, seeds=(0,)))
    smoke_variants = {
        "hessian": {"model": "hessian", "cg_max_iter": 3},
        "batch_growth": {"batch_growth": "norm_test"},
        "first_order": {"model": "first_order"},
        "hybrid_lsr1": {"qn": "lsr1", "batch_growth": "norm_test", "initial_batch": 32},
    }
    params = spec(
        *vcycle_params(pre_smooth=2, post_smooth=2, smoother="TR", coarse_steps=50, coarse_rtol=0.1),
        *TR_PARAMS,
        Param("kappa_g", float, 0.125, "go coarse only if ‖R_g g‖ >= kappa_g ‖g‖", low=0.0),
        # relative, not absolute: an absolute 1e-12 also stopped the fine smoothing, so with the
        # energy scaled by 1e-6 RMTR "stalled" at ‖g‖/‖g₀‖ = 1e-6 instead of reaching grad_rtol
        Param(
            "eps_g",
            float,
            1e-12,
            "go coarse only if ‖R_g g‖ > eps_g ‖g0‖; every level stops smoothing at "
            "‖∇h‖ <= eps_g ‖g0‖ (g0: the first fine gradient of the run)",
            low=0.0,
        ),
        Param(
            "eps_delta",
            float,
            1e-3,
            "coarse iterations stop within (1 - eps_delta) of the fine radius",
            low=0.0,
            high=1.0,
        ),
        Param(
            "coarse_radius_max",
            float,
            1e10,
            "largest coarse trust radius Δ_H^max (the fine region bounds the coarse steps anyway)",
            low=0.0,
            low_inclusive=False,
        ),
        # hybrid stochastic–deterministic mode (Kopaničáková & Krause 2022): ml2bench.numerics.sampling
        Param(
            "batch_growth",
            str,
            "none",
            "none (the runner's batches) or a rule that grows the method's own "
            "mini-batch to the full batch: norm_test (Byrd et al. 2012), inner_product (Bollapragada et al. 2018)",
            choices=GROWTH_RULES,
        ),
        Param("initial_batch", int, 64, "first mini-batch size of the batch_growth mode", low=2),
        Param("growth_theta", float, 0.9, "θ of the batch-growth test", low=0.0, low_inclusive=False),
        Param("growth_groups", int, 8, "micro-batches for the gradient-variance estimate", low=2),
    )

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any]) -> None:
        check_tr_hp(hp, self.name)
        super().__init__(hierarchy, x0, hp)
        if hierarchy.levels < hp["levels"]:
            raise ConfigError(f"method 'rmtr': levels={hp['levels']} but the hierarchy has {hierarchy.levels}")
        self.L = hp["levels"]
        self.cfg = TRConfig.from_hp(hp)
        self.radius = hp["radius0"]  # Δ_0: the fine region of the coarse corrections (cycle radius)
        self.smooth_radius = hp["radius0"]  # the fine smoothing steps' own radius
        self.qn = [make_model(hp["model"], hp["qn"], hp["memory"]) for _ in range(self.L)]
        self.p_norm = [
            prolongation_norm(hierarchy.transfers[l], hierarchy.objectives[l + 1].n, dtype=x0.dtype, device=x0.device)
            for l in range(self.L - 1)
        ]
        self.monitor = CycleMonitor(hp)
        self.eps_g = 0.0  # eps_g ‖g₀‖, set by the first step
        self.stats = {"coarse_tried": 0, "coarse_accepted": 0}
        self.growth = (
            AdaptiveBatch(
                hp["batch_growth"], hp["initial_batch"], hp["growth_theta"], hp["growth_groups"], hp["grad_tol"]
            )
            if hp["batch_growth"] != "none"
            else None
        )

    def set_sampler(self, sampler: BatchSampler) -> None:
        """Called by the runner: the source of the hybrid mode's own mini-batches."""
        if self.growth is not None:
            self.growth.attach(sampler)

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        return int(hp.get("levels", 3))

    @classmethod
    def uses_hvp(cls, hp: dict[str, Any]) -> bool:
        return hp.get("model") == "hessian"

    # --- one level of the V-cycle -------------------------------------------------------------
    def _smooth(
        self,
        l: int,
        model,
        batch: Batch,
        x: Tensor,
        f: float,
        g: Tensor,
        radius: float,
        steps: int,
        x_start: Tensor,
        bound: float,
        gtol: float = 0.0,
    ) -> tuple[Tensor, float, Tensor, float, float]:
        """Up to ``steps`` TR iterations on level l (fewer once ‖∇m‖ <= max(gtol, eps_g ‖g₀‖) or the
        level's displacement reaches its bound); returns (x, m(x), ∇m(x), Δ, decrease of m)."""
        hp = self.hp
        decrease = 0.0
        for _ in range(steps):
            if float(g.norm()) <= max(self.eps_g, gtol) or radius <= 0:
                break
            max_step = math.inf
            if l > 0:
                used = float(self.hierarchy.transfers[l - 1].prolongate(x - x_start).norm())
                if used >= (1 - hp["eps_delta"]) * bound:
                    break
                max_step = (bound - used) / self.p_norm[l - 1]
            res = tr_iteration(model, batch, x, f, g, radius, self.qn[l], self.cfg, max_step=max_step)
            x, f, g, radius = res.x, res.f, res.g, min(res.radius, self.hp["coarse_radius_max"] if l else math.inf)
            decrease += res.ared
            if l == 0:
                self.checkpoint(x, f, g)
        return x, f, g, radius, decrease

    def _cycle(
        self, l: int, model, batch: Batch, x: Tensor, f: float, g: Tensor, radius: float, bound: float
    ) -> tuple[Tensor, float, Tensor, float, float]:
        """Approximately minimise ``model`` on level l from x; returns (x, m(x), ∇m(x), Δ_l, decrease
        m(x_in) − m(x)). ``radius`` is the level's radius at the start of the cycle: it bounds
        the coarse correction and is updated by the coarse correction's ρ only; the smoothing
        steps run on their own radius (see module doc). The decrease is the sum of the actual
        reductions of the accepted steps
        (:func:`~ml2bench.numerics.trust_region.actual_reduction`): equal to the difference of
        the end values, but not lost to round-off near a minimiser, where it is the coarse
        correction's predicted reduction one level up."""
        hp = self.hp
        x_start = x
        if l == self.L - 1:
            gtol = hp["coarse_rtol"] * float(g.norm()) if l > 0 else 0.0
            return self._smooth(l, model, batch, x, f, g, radius, hp["coarse_steps"], x_start, bound, gtol)
        r_smooth = self.smooth_radius if l == 0 else radius
        x, f, g, r_smooth, decrease = self._smooth(l, model, batch, x, f, g, r_smooth, hp["pre_smooth"], x_start, bound)
        radius = max(radius, r_smooth)  # successful smoothing may enlarge the region, rejections never shrink it

        transfer = self.hierarchy.transfers[l]
        g_restricted = transfer.restrict_grad(g)
        gr, gn = float(g_restricted.norm()), float(g.norm())
        bound_H = radius
        if l > 0:
            used = float(self.hierarchy.transfers[l - 1].prolongate(x - x_start).norm())
            bound_H = min(bound_H, (bound - used) / self.p_norm[l - 1])
        if gr >= hp["kappa_g"] * gn and gr > self.eps_g and bound_H > 0:
            self.stats["coarse_tried"] += l == 0
            if l == 0:
                self.checkpoint(x, f, g, coarse_next=True)
            model_H, y0, h0, gH0 = coherent_model(self.hierarchy.objectives[l + 1], transfer, x, g, batch)
            radius_H = min(hp["coarse_radius_max"], bound_H / self.p_norm[l])
            y, h, _, _, pred = self._cycle(l + 1, model_H, batch, y0, h0, gH0, radius_H, bound_H)
            s = transfer.prolongate(y - y0)
            if float(s.norm()) > bound_H:  # safeguard if ‖P‖ was underestimated: scale back onto the bound
                y = y0 + (y - y0) * (bound_H / float(s.norm()))
                h, gh = model_H.loss_grad(y, batch)
                pred = actual_reduction(h0, h, gH0, gh, y - y0)
                s = transfer.prolongate(y - y0)
            if pred > 0:
                f_t, g_t = model.loss_grad(x + s, batch)
                ared = actual_reduction(f, f_t, g, g_t, s)
                rho = ared / pred
                if math.isfinite(f_t):  # the pair is kept, the smoothers' scaling δ is not reset by it
                    self.qn[l].update(s, g_t - g, rescale=False)
                radius = update_radius(radius, rho, float(s.norm()), self.cfg)
                if l > 0:
                    radius = min(radius, hp["coarse_radius_max"])
                if rho > self.cfg.eta0:
                    x, f, g = x + s, f_t, g_t
                    decrease += ared
                    self.stats["coarse_accepted"] += l == 0
                if l == 0:
                    self.last_rho_coarse = rho
            if l == 0:
                self.checkpoint(x, f, g)

        x, f, g, r_smooth, post = self._smooth(l, model, batch, x, f, g, r_smooth, hp["post_smooth"], x_start, bound)
        if l == 0:
            self.smooth_radius = r_smooth
        return x, f, g, radius, decrease + post

    def step(self, batch: Batch) -> StepResult:
        fine = self.hierarchy.fine
        if self.growth is not None:  # hybrid mode: this step's batch (and its gradient) come from the growth rule
            batch, fg = self.growth.draw(fine, self.x)
            if fg is not None:
                self._batch, (self._f, self._g) = batch, fg
        self.fine_fg_at_iterate(batch)
        loss0 = self._f
        if not self.iterate_is_finite():
            return StepResult(loss0, False, {"grad_norm": float(self._g.norm())}, StopReason.NONFINITE)
        self.monitor.start(float(self._g.norm()))
        self.eps_g = self.hp["eps_g"] * self.monitor.g0
        tried0, acc0 = self.stats["coarse_tried"], self.stats["coarse_accepted"]
        self.last_rho_coarse = math.nan

        def one_cycle() -> bool:
            x_before, radii_before = self.x, (self.radius, self.smooth_radius)
            self.x, self._f, self._g, self.radius, _ = self._cycle(
                0, fine, batch, self.x, self._f, self._g, self.radius, math.inf
            )
            if self.L == 1:
                self.smooth_radius = self.radius
            # a rejected trial that cut a trust radius is the trust-region iteration at work (the
            # shorter step may be accepted, as in `tr`), not a stall, until the radius is at the
            # round-off scale of the steps
            roundoff = torch.finfo(self.x.dtype).eps * max(self.hp["radius0"], float(self.x.norm()))
            cut = any(roundoff < r < before for r, before in zip((self.radius, self.smooth_radius), radii_before))
            return cut or not torch.equal(self.x, x_before)

        stop = self.monitor.run_cycles(
            self.hp["cycles_per_step"], one_cycle, lambda: float(self._g.norm()), batch.size >= fine.n_train
        )
        gnorm = float(self._g.norm())
        info = {
            "trust_radius": self.radius,
            "smooth_radius": self.smooth_radius,
            "grad_norm": gnorm,
            "coarse_tried": float(self.stats["coarse_tried"] - tried0),
            "coarse_accepted": float(self.stats["coarse_accepted"] - acc0),
            "rho_coarse": self.last_rho_coarse,
        }
        if self.growth is not None:
            info.update(samples=float(batch.size), batch_size=float(self.growth.size))
        return StepResult(loss0, stop == StopReason.GRAD_TOL, info, stop)
