"""``tr``: single-level trust region with a limited-memory quasi-Newton model (L-SR1 or L-BFGS),
or (``model="hessian"``) the exact Hessian through Hessian-vector products.

One runner step = ``iters_per_step`` trust-region iterations (see
:mod:`ml2bench.numerics.trust_region` for the algorithm and the ρ/radius rules, and
:mod:`ml2bench.numerics.quasi_newton` for the models). Every iteration costs one loss+gradient
evaluation at the trial point (plus, with ``model="hessian"``, one Hessian-vector product per CG
iteration, charged at its measured cost relative to a gradient); the gradient at the current
iterate is kept from the iteration that produced it and re-evaluated only when the batch changes
(mini-batch use).

Stopping (``StepResult.stop_reason``): ``grad_tol`` (‖g‖ ≤ ``grad_tol``) is the only convergence
criterion. ``roundoff`` ends the run without claiming convergence when no trial point can be
evaluated: x + s == x in floating point, or not even the Cauchy point predicts a decrease, after
a failing quasi-Newton model has been started afresh (the radius or the gradient is at round-off
level). Such a null step is never charged, so a run cannot spend its budget on no-op iterations.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch
from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.core.stop import StopReason
from ml2bench.methods.base import Method, SmokeRun, StepResult, register
from ml2bench.numerics.quasi_newton import MODELS, QN_TYPES, make_model
from ml2bench.numerics.trust_region import TRConfig, tr_iteration

TR_PARAMS = (
    Param(
        "model",
        str,
        "qn",
        "trust-region model: 'qn' (the quasi-Newton type below), 'hessian' (exact "
        "Hessian-vector products, each charged at its measured cost ratio to a gradient) or 'first_order' "
        "(m(s) = gᵀs: the step is the Cauchy point -Δ g/‖g‖)",
        choices=MODELS,
    ),
    # default L-BFGS: on the ResNet benchmark it reached the target with 36 (tr) / 54 (rmtr) work
    # units against 102 / 184 for L-SR1 (python -m ml2bench.bench multilevel, 2026-11-25)
    Param("qn", str, "lbfgs", "quasi-Newton model of the Hessian (model='qn')", choices=QN_TYPES),
    Param("memory", int, 5, "stored curvature pairs", low=0),
    Param("radius0", float, 1.0, "initial trust radius Δ₀", low=0.0, low_inclusive=False),
    # Δ_max only guards against overflow: the radius grows in proportion to the steps taken
    # (Δ ← max(Δ, γ₂‖s‖)), so the cap is not needed to keep it sane, and an absolute cap of 100
    # (utopia's) made the methods depend on the units of x: with the solution of a grid problem
    # scaled by 1e4, RMTR had not converged after 100 V-cycles (‖g‖/‖g₀‖ = 0.7)
    Param("radius_max", float, 1e10, "largest trust radius Δ_max", low=0.0, low_inclusive=False),
    Param("eta0", float, 0.005, "accept a step when ρ > eta0", low=0.0, high=1.0),
    Param("eta1", float, 0.05, "shrink the radius when ρ < eta1", low=0.0, high=1.0),
    Param("eta2", float, 0.9, "grow the radius when ρ > eta2", low=0.0, high=1.0),
    Param("gamma1", float, 0.25, "shrink factor (Δ ← γ₁ min(Δ, ‖s‖))", low=0.0, high=1.0, low_inclusive=False),
    Param("gamma2", float, 2.5, "growth factor (Δ ← max(Δ, γ₂ ‖s‖))", low=1.0),
    Param(
        "cg_rtol", float, 0.1, "Steihaug CG relative residual tolerance (capped by √‖g‖)", low=0.0, low_inclusive=False
    ),
    Param(
        "cg_max_iter",
        int,
        50,
        "Steihaug CG iterations (with model='hessian' each costs one "
        "Hessian-vector product; 2-5 make the TR step a smoother for rmtr)",
        low=1,
    ),
)
#: tr_iteration's no-evaluation outcomes → the stop reason they give the run
STOPS = {"roundoff": StopReason.ROUNDOFF, "no_model_decrease": StopReason.ROUNDOFF}
GRAD_TOL = Param("grad_tol", float, 0.0, "report convergence when ‖g‖ ≤ grad_tol", low=0.0)


def check_radius_hp(hp: dict[str, Any], owner: str) -> None:
    if hp["radius0"] > hp["radius_max"]:
        raise ConfigError(f"method {owner!r}: radius0={hp['radius0']} exceeds radius_max={hp['radius_max']}")


def check_tr_hp(hp: dict[str, Any], owner: str) -> None:
    if not hp["eta0"] <= hp["eta1"] < hp["eta2"]:
        raise ConfigError(
            f"method {owner!r}: need eta0 <= eta1 < eta2, got eta0={hp['eta0']}, eta1={hp['eta1']}, eta2={hp['eta2']}"
        )
    check_radius_hp(hp, owner)


@register
class TrustRegion(Method):
    name = "tr"
    description = "trust region with L-SR1/L-BFGS (or exact Hessian) model and Steihaug-Toint CG, full batch"
    full_batch = True
    state_attrs = ("radius", "qn")
    # pinn_poisson: the fewest iterations of 3, 8, 20, 40 that clear the rel. L2 floor with a margin
    smoke = (SmokeRun("resnet", {"iterations": 8}), SmokeRun("pinn_poisson", {"iterations": 40}, seeds=(0,)))
    smoke_variants = {
        "lsr1": {"qn": "lsr1"},
        "hessian": {"model": "hessian", "cg_max_iter": 3},
        "first_order": {"model": "first_order"},
    }
    params = spec(
        *TR_PARAMS,
        Param("iters_per_step", int, 1, "trust-region iterations per runner step", low=1),
        GRAD_TOL,
    )

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any]) -> None:
        check_tr_hp(hp, self.name)
        super().__init__(hierarchy, x0, hp)
        self.cfg = TRConfig.from_hp(hp)
        self.radius = hp["radius0"]
        self.qn = make_model(hp["model"], hp["qn"], hp["memory"])

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        return 1

    @classmethod
    def uses_hvp(cls, hp: dict[str, Any]) -> bool:
        return hp.get("model") == "hessian"

    def step(self, batch: Batch) -> StepResult:
        objective = self.hierarchy.fine
        self.fine_fg_at_iterate(batch)
        loss0 = self._f
        gnorm = float(self._g.norm())
        if not self.iterate_is_finite():
            return StepResult(loss0, False, {"trust_radius": self.radius, "grad_norm": gnorm}, StopReason.NONFINITE)
        if gnorm <= self.hp["grad_tol"]:
            return StepResult(loss0, True, {"trust_radius": self.radius, "grad_norm": gnorm}, StopReason.GRAD_TOL)
        accepted = 0
        rho = 0.0
        reason = ""
        for _ in range(self.hp["iters_per_step"]):
            res = tr_iteration(objective, batch, self.x, self._f, self._g, self.radius, self.qn, self.cfg)
            self.x, self._f, self._g, self.radius = res.x, res.f, res.g, res.radius
            accepted += res.accepted
            rho = res.rho
            # no trial point was evaluated and none ever will be at this iterate: x + s == x, or
            # not even the Cauchy point predicts a decrease in floating point (radius or gradient
            # at round-off level); stop instead of charging (or spinning through) no-op iterations
            if res.cg_status in STOPS:
                reason = STOPS[res.cg_status]
                break
        gnorm = float(self._g.norm())
        info = {"trust_radius": self.radius, "accepted": float(accepted), "rho": rho, "grad_norm": gnorm}
        if gnorm <= self.hp["grad_tol"]:
            return StepResult(loss0, True, info, StopReason.GRAD_TOL)
        return StepResult(loss0, False, info, reason)
