"""Trust-region iteration with a limited-memory quasi-Newton or exact Hessian model (the TR method
and RMTR's smoother).

One iteration from x with f = f(x), g = ∇f(x), radius Δ and model B (L-SR1, L-BFGS, or ∇²f(x)
through Hessian-vector products, :class:`~ml2bench.numerics.quasi_newton.ExactHessian`; then
m(0) − m(s) comes from the CG recurrence, without one more product):

1. s ≈ argmin_{‖s‖ ≤ Δ'} m(s) = gᵀs + ½ sᵀBs by Steihaug–Toint truncated CG, Δ' = min(Δ, max_step)
   (``max_step`` lets RMTR keep coarse steps inside the fine trust region). CG stops at the
   boundary, on negative curvature (following the direction to the boundary) or when
   ‖r‖ ≤ min(cg_rtol, √‖g‖)·‖g‖. If CG's step predicts no decrease in floating point (a badly
   conditioned model), the Cauchy point (:func:`cauchy_point`) is taken instead; if x + s == x
   or not even the Cauchy point predicts a decrease, a quasi-Newton model is started afresh and
   the step recomputed, and with a fresh model the iteration returns *without evaluating*
   (``cg_status`` "roundoff" / "no_model_decrease"), so null steps are never charged.
2. f₊, g₊ = f(x + s) (one charged evaluation; the gradient is needed for the quasi-Newton pair
   and is the gradient of the next iterate if the step is accepted).
3. ρ = ared / (m(0) − m(s)), ared = f − f₊ (or −½(g + g₊)ᵀs when f − f₊ is at round-off level,
   see :func:`actual_reduction`). Accept if ρ > η₀.
4. Radius: ρ < η₁ → Δ = γ₁ min(Δ, ‖s‖); ρ > η₂ → Δ = min(Δ_max, max(Δ, γ₂‖s‖)) (so it grows
   only when the step reached the boundary, or nearly); otherwise unchanged.
5. The pair (s, g₊ − g) updates B whether or not the step was accepted (standard for SR1 trust
   regions; rejected steps still carry curvature information), except from a trial whose f has
   exploded (f₊ − f > 1e8 max(1, |f|), :data:`EXPLODED`): its curvature is not the region's (on
   Osborne 1, MGH 17, the L-SR1 scaling δ jumped to its cap on such a first trial and the iteration
   locked up: docs/methods/tr.md). The exact Hessian ignores the pair.

Defaults (:data:`TR_DEFAULTS`) follow the public utopia RMTR/TR code used by Kopaničáková & Krause
("Globally convergent multilevel training of deep residual networks", SIAM J. Sci. Comput. 2022):
η₀ = 0.005 (accept), η₁ = 0.05 (shrink below), η₂ = 0.9 (grow above), γ₁ = 0.25, γ₂ = 2.5,
Δ₀ = 1; but Δ_max = 1e10, not utopia's 100: an absolute cap made the iteration depend on the
units of x (the radius grows only in proportion to the steps taken, so it needs no tight cap).
Accepting at ρ > η₀ > 0 keeps the iteration monotone: accepted iterates never increase f.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ml2bench.core.objective import Batch

#: a trial whose f rises by more than this factor of max(1, |f|) has left the region the model
#: describes (an overflow in the making): the trust region stores no pair from it, and ``lbfgs``
#: cuts such a first trial step before its line search
EXPLODED = 1e8


def exploded(f: float, f_trial: float) -> bool:
    """f_trial is not finite or exceeds f + EXPLODED max(1, |f|) (see :data:`EXPLODED`)."""
    return not f_trial - f <= EXPLODED * max(1.0, abs(f))  # also True for NaN or inf


@dataclass
class TRConfig:
    eta0: float = 0.005
    eta1: float = 0.05
    eta2: float = 0.9
    gamma1: float = 0.25
    gamma2: float = 2.5
    radius0: float = 1.0
    radius_max: float = 1e10
    cg_rtol: float = 0.1
    cg_max_iter: int = 50

    @classmethod
    def from_hp(cls, hp: dict) -> TRConfig:
        return cls(**{k: hp[k] for k in cls.__dataclass_fields__ if k in hp})


TR_DEFAULTS = TRConfig()


@dataclass
class CGResult:
    s: Tensor
    pred: float  # m(0) − m(s) ≥ 0
    status: str  # "converged", "boundary", "negative_curvature", "max_iter", "zero_gradient", "cauchy"
    iterations: int


def _to_boundary(s: Tensor, d: Tensor, radius: float) -> float:
    """τ ≥ 0 with ‖s + τ d‖ = radius."""
    dd, sd, ss = float(d @ d), float(s @ d), float(s @ s)
    disc = max(sd * sd + dd * (radius * radius - ss), 0.0)
    return (-sd + math.sqrt(disc)) / dd


def steihaug_cg(
    g: Tensor,
    matvec: Callable[[Tensor], Tensor],
    radius: float,
    rtol: float = 0.1,
    max_iter: int = 50,
    pred_by_recurrence: bool = False,
) -> CGResult:
    """Steihaug–Toint truncated CG for min gᵀs + ½ sᵀBs, ‖s‖ ≤ radius.

    The predicted decrease m(0) − m(s) is computed with one more product Bs, or, with
    ``pred_by_recurrence`` (for expensive products, e.g. exact Hessian-vector products), from Bs
    accumulated along the iteration (Bs = r − g; no extra product)."""
    s = torch.zeros_like(g)
    Bs = torch.zeros_like(g)
    r = g.clone()
    gnorm = float(g.norm())
    if gnorm == 0.0 or not math.isfinite(gnorm):
        return CGResult(s, 0.0, "zero_gradient", 0)
    tol = min(rtol, math.sqrt(gnorm)) * gnorm
    d = -r
    rr = float(r @ r)
    status, k = "max_iter", 0
    for k in range(1, max_iter + 1):  # noqa: B007 (k is the iteration count returned)
        Bd = matvec(d)
        dBd = float(d @ Bd)
        if dBd <= 0:
            tau = _to_boundary(s, d, radius)
            s, Bs = s + tau * d, Bs + tau * Bd
            status = "negative_curvature"
            break
        alpha = rr / dBd
        s_next = s + alpha * d
        if float(s_next.norm()) >= radius:
            tau = _to_boundary(s, d, radius)
            s, Bs = s + tau * d, Bs + tau * Bd
            status = "boundary"
            break
        s = s_next
        Bs = Bs + alpha * Bd
        r = r + alpha * Bd
        rr_next = float(r @ r)
        if math.sqrt(rr_next) <= tol:
            status = "converged"
            break
        d = -r + (rr_next / rr) * d
        rr = rr_next
    pred = -(float(g @ s) + 0.5 * float(s @ (Bs if pred_by_recurrence else matvec(s))))
    return CGResult(s, pred, status, k)


@dataclass
class TRStep:
    x: Tensor
    f: float
    g: Tensor
    radius: float
    accepted: bool
    rho: float
    step_norm: float
    cg_status: str
    ared: float = 0.0  # actual reduction f − f₊ of an accepted step (0 when rejected)


def actual_reduction(f: float, f_trial: float, g: Tensor, g_trial: Tensor, s: Tensor) -> float:
    """f − f₊, or −½(g + g₊)ᵀs (exact on quadratics) when f − f₊ is at the round-off level of f
    (|f − f₊| < 100 ε_dtype max(|f|, |f₊|)): near a minimiser of an O(1) loss the decrease is
    O(‖g‖²) and the plain difference is noise, which would make ρ random and stall the method."""
    if not math.isfinite(f_trial):
        return -math.inf
    ared = f - f_trial
    if abs(ared) < 100 * torch.finfo(s.dtype).eps * max(abs(f), abs(f_trial)):
        return -0.5 * float((g + g_trial) @ s)
    return ared


def update_radius(radius: float, rho: float, step_norm: float, cfg: TRConfig) -> float:
    if not rho > cfg.eta1:  # also catches NaN
        return cfg.gamma1 * min(radius, step_norm)
    if rho > cfg.eta2:
        return min(cfg.radius_max, max(radius, cfg.gamma2 * step_norm))
    return radius


def cauchy_point(g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float) -> CGResult:
    """The minimiser of the model along −g inside the region (Nocedal & Wright, Alg. 4.2):
    s = −τ Δ g/‖g‖, τ = 1 if gᵀBg ≤ 0 else min(‖g‖³ / (Δ gᵀBg), 1). Its predicted decrease is
    positive in exact arithmetic for any B, so it is the fallback when CG's step predicts none.
    A radius that has underflowed to 0 (next to an exact minimiser) gives s = 0 and no predicted
    decrease, which the caller reports as ``no_model_decrease`` instead of dividing by zero."""
    gnorm = float(g.norm())
    if gnorm == 0.0 or not math.isfinite(gnorm):
        return CGResult(torch.zeros_like(g), 0.0, "zero_gradient", 0)
    Bg = matvec(g)
    gBg = float(g @ Bg)
    curvature = radius * gBg  # underflows to 0 with a radius of 0 or a subnormal one: τ = 1 then
    tau = 1.0 if not curvature > 0 else min(gnorm**3 / curvature, 1.0)
    alpha = tau * radius / gnorm
    s = -alpha * g
    pred = alpha * gnorm * gnorm - 0.5 * alpha * alpha * gBg
    return CGResult(s, pred if math.isfinite(pred) else 0.0, "cauchy", 1)


def tr_iteration(
    objective,
    batch: Batch,
    x: Tensor,
    f: float,
    g: Tensor,
    radius: float,
    qn,
    cfg: TRConfig,
    max_step: float = math.inf,
) -> TRStep:
    """One trust-region iteration on ``objective`` (anything with ``loss_grad``, and ``hvp`` for
    the exact-Hessian model); see module doc.

    Without an evaluation it returns ``cg_status`` "no_model_decrease" (neither CG nor the Cauchy
    point predicts a decrease in floating point: the gradient or radius is at round-off level)
    or "roundoff" (x + s == x: the step is below the resolution of x, so the trial would repeat
    the current point); the caller decides whether to stop."""
    region = min(radius, max_step)
    while True:
        matvec = qn.matvec_at(objective, x, batch) if hasattr(qn, "matvec_at") else qn.matvec
        cg = steihaug_cg(
            g, matvec, region, cfg.cg_rtol, cfg.cg_max_iter, pred_by_recurrence=getattr(qn, "expensive_matvec", False)
        )
        if not (cg.pred > 0 and float(cg.s.norm()) > 0) and cg.status != "zero_gradient":
            # the model is unreliable (e.g. a badly conditioned quasi-Newton matrix): the Cauchy
            # point still predicts a decrease, so the iteration goes on instead of claiming a stall
            cg = cauchy_point(g, matvec, region)
        x_trial = x + cg.s
        failed = (
            "no_model_decrease"
            if not (cg.pred > 0 and float(cg.s.norm()) > 0)
            else "roundoff"
            if torch.equal(x_trial, x)
            else ""
        )
        if not failed:
            break
        if len(qn) == 0:  # nothing left to blame but the radius or the gradient: round-off
            return TRStep(x, f, g, radius, False, 0.0, 0.0, failed)
        qn.reset()  # a quasi-Newton model whose step is null or predicts nothing: start it afresh
    # ρ and the quasi-Newton pair use the computed step s, not (x + s) − x: in float32 the latter
    # loses the small components, and measured it cost RMTR 14 % more work on the ResNet benchmark
    s = cg.s
    step_norm = float(s.norm())
    f_trial, g_trial = objective.loss_grad(x_trial, batch)
    ared = actual_reduction(f, f_trial, g, g_trial, s)
    rho = ared / cg.pred
    if not exploded(f, f_trial):
        qn.update(s, g_trial - g)
    new_radius = update_radius(radius, rho, step_norm, cfg)
    if rho > cfg.eta0:
        return TRStep(x_trial, f_trial, g_trial, new_radius, True, rho, step_norm, cg.status, ared)
    return TRStep(x, f, g, new_radius, False, rho, step_norm, cg.status)
