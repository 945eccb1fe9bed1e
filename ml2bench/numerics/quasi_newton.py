"""Limited-memory quasi-Newton models B ≈ ∇²f for trust-region steps (and L-BFGS directions).

Both use the compact representations (Byrd, Nocedal & Schnabel 1994) of the m most recent
accepted pairs (s_i, y_i), S = [s_i], Y = [y_i], SᵀY = L + D + U (L strictly lower, D diagonal):

- L-BFGS: B = δI − W M⁻¹ Wᵀ, W = [δS, Y], M = [[δSᵀS, L], [Lᵀ, −D]]. Positive definite; a pair
  is stored only if sᵀy > ε_curv ‖s‖ ‖y‖. δ = yᵀy / sᵀy of the newest pair.
  M is indefinite and, on badly scaled problems, condition 1e11–1e17, so it is never inverted:
  M⁻¹w is applied by block elimination with a Cholesky factor of the Schur complement
  C = δSᵀS + L D⁻¹ Lᵀ (positive definite); oldest pairs are dropped while the factorisation fails
  or its diagonal ratio² exceeds 1e12. :meth:`LBFGS.solve` applies H = B⁻¹ with the two-loop
  recursion (H₀ = I/δ).
- L-SR1: B = δI + Ψ M⁻¹ Ψᵀ, Ψ = Y − δS, M = D + L + Lᵀ − δSᵀS. May be indefinite (the trust
  region handles negative curvature); a pair is stored only if |sᵀ(y − Bs)| ≥ ε_sr1 ‖s‖ ‖y − Bs‖
  (the standard skipping rule). δ = max(sᵀy / sᵀs, δ_min) of the newest pair with sᵀy > 0 (the
  Rayleigh quotient of the averaged Hessian: smaller than yᵀy/sᵀy, which keeps B₀ from
  dominating and M from becoming singular). M is applied through its symmetric
  eigendecomposition; while it is numerically singular (|λ|_min ≤ 1e-10 |λ|_max), oldest pairs
  are dropped.

Both skip non-finite pairs, bound δ to [1/δ_max, δ_max] (:data:`DELTA_MAX`), and rebuild the
compact operator lazily, at the first product after an update (an L-BFGS used only through
``solve`` never builds it). Secant equations: L-SR1 satisfies B s_i = y_i for every stored pair
whenever SᵀY is symmetric (e.g. on a quadratic); L-BFGS satisfies B s = y for the newest pair.
Small matrices are kept in float64; vectors in the iterate's dtype.

:class:`FirstOrder` is the model without curvature, B = 0 (the step is the Cauchy point
−Δ g/‖g‖). :class:`ExactHessian` is the alternative model B = ∇²f(x) itself, applied matrix-free through the
objective's Hessian-vector product (:meth:`ml2bench.core.objective.Objective.hvp`, double backward;
each product is charged at its measured cost relative to a gradient). It keeps no state. Models
expose ``matvec_at(objective, x, batch)``: the operator v ↦ Bv at the iterate x (a quasi-Newton
model ignores the arguments and returns its own ``matvec``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

QN_TYPES = ("lsr1", "lbfgs")
#: trust-region models: the quasi-Newton type ``qn``, the exact Hessian, or the first-order model (B = 0)
MODELS = ("qn", "hessian", "first_order")
#: bound on the scaling δ of B₀ = δI (and 1/δ_max below): keeps B₀ and the compact matrices finite
#: and factorable in float64 on badly scaled problems
DELTA_MAX = 1e15


class HessianModel(Protocol):
    def matvec(self, v: Tensor) -> Tensor: ...

    def update(self, s: Tensor, y: Tensor, rescale: bool = True) -> bool: ...


class _LimitedMemory:
    """Pairs (s, y) and the compact operator, rebuilt lazily: an L-BFGS used only through
    :meth:`LBFGS.solve` (the ``lbfgs`` method, MG/OPT's smoother) never pays for it.

    ``update(s, y, rescale=False)`` stores a pair without resetting the scaling δ of B₀ = δI.
    RMTR stores its coarse corrections this way: their curvature is that of the smooth modes,
    far below the curvature of the oscillatory modes the smoothing steps act on (B₀ acts on
    everything outside the stored pairs), so a δ taken from them made every following smoothing
    step overshoot (ρ < 0 measured in every post-smoothing step on the minimal surface, the
    smoothing radius 1 → 1e-11, a stall at 1e-6 ‖g₀‖)."""

    def __init__(self, memory: int, delta0: float = 1.0) -> None:
        if memory < 0:
            raise ValueError("memory must be >= 0")
        self.memory = memory
        self.delta0 = delta0
        self.delta = delta0
        self.S: list[Tensor] = []
        self.Y: list[Tensor] = []
        self._W: Tensor | None = None
        self._stale = False

    def __len__(self) -> int:
        return len(self.S)

    def state_dict(self) -> dict[str, Any]:
        """The pairs and δ (the compact operator is rebuilt from them at the next product, as
        after an update: the same operator)."""
        return {"delta": self.delta, "S": [s.clone() for s in self.S], "Y": [y.clone() for y in self.Y]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta = float(state["delta"])
        self.S, self.Y = [s.clone() for s in state["S"]], [y.clone() for y in state["Y"]]
        self._W = None
        self._stale = bool(self.S)

    def reset(self) -> None:
        self.S, self.Y, self.delta = [], [], self.delta0
        self._W = None
        self._stale = False

    def _push(self, s: Tensor, y: Tensor) -> None:
        self.S.append(s.detach().clone())
        self.Y.append(y.detach().clone())
        while len(self.S) > self.memory:
            self.S.pop(0)
            self.Y.pop(0)
        self._stale = True

    def _drop_oldest(self) -> None:
        self.S.pop(0)
        self.Y.pop(0)

    def _mats(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        S = torch.stack(self.S, dim=1)
        Y = torch.stack(self.Y, dim=1)
        SY = (S.T @ Y).double()
        SS = (S.T @ S).double()
        return S, Y, SY, SS

    def matvec_at(self, objective, x: Tensor, batch) -> Callable[[Tensor], Tensor]:  # noqa: ARG002
        """The model's operator (independent of the iterate for a quasi-Newton model)."""
        return self.matvec

    def matvec(self, v: Tensor) -> Tensor:
        """B v."""
        if self._stale:
            self._rebuild()
            self._stale = False
        out = self.delta * v
        if self._W is None:
            return out
        w = (self._W.T @ v).double()
        return out + self._sign * (self._W @ self._middle(w).to(v.dtype))

    def _rebuild(self) -> None:
        raise NotImplementedError

    def _middle(self, w: Tensor) -> Tensor:
        raise NotImplementedError

    def dense(self, n: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """The full matrix B (tests only)."""
        eye = torch.eye(n, dtype=dtype)
        return torch.stack([self.matvec(eye[k]) for k in range(n)], dim=1)


class LSR1(_LimitedMemory):
    """Limited-memory SR1 (compact representation); see module docstring."""

    kind = "lsr1"
    _sign = 1.0

    def __init__(self, memory: int = 5, delta0: float = 1.0, eps_sr1: float = 1e-8, delta_min: float = 1e-8) -> None:
        super().__init__(memory, delta0)
        self.eps_sr1 = eps_sr1
        self.delta_min = delta_min

    def update(self, s: Tensor, y: Tensor, rescale: bool = True) -> bool:
        """Store (s, y) if the SR1 update is well defined; returns whether it was stored.
        ``rescale=False`` keeps δ (see :class:`_LimitedMemory`)."""
        if self.memory == 0 or not (torch.isfinite(s).all() and torch.isfinite(y).all()):
            return False
        r = y - self.matvec(s)
        sr, sn, rn = float(s @ r), float(s.norm()), float(r.norm())
        if not (rn > 0 and abs(sr) >= self.eps_sr1 * sn * rn) or not math.isfinite(sr):
            return False
        sy, ss = float(s @ y), float(s @ s)
        if rescale and sy > 0 and ss > 0:
            self.delta = min(max(sy / ss, self.delta_min), DELTA_MAX)
        self._push(s, y)
        return True

    def _rebuild(self) -> None:
        """M = D + L + Lᵀ − δSᵀS by its symmetric eigendecomposition; oldest pairs are dropped
        while M is numerically singular (|λ|_min ≤ 1e-10 |λ|_max)."""
        while self.S:
            S, Y, SY, SS = self._mats()
            Lo = torch.tril(SY, -1)
            M = torch.diag(torch.diag(SY)) + Lo + Lo.T - self.delta * SS
            lam, Q = torch.linalg.eigh(M)
            a = lam.abs()
            if bool(torch.isfinite(lam).all()) and float(a.min()) > 1e-10 * float(a.max()):
                self._W = Y - self.delta * S
                self._Q, self._lam = Q, lam
                return
            self._drop_oldest()
        self._W = None

    def _middle(self, w: Tensor) -> Tensor:
        return self._Q @ ((self._Q.T @ w) / self._lam)


class LBFGS(_LimitedMemory):
    """Limited-memory BFGS (compact representation for B, two-loop recursion for H = B⁻¹)."""

    kind = "lbfgs"
    _sign = -1.0

    def __init__(self, memory: int = 5, delta0: float = 1.0, eps_curv: float = 1e-8) -> None:
        super().__init__(memory, delta0)
        self.eps_curv = eps_curv

    def update(self, s: Tensor, y: Tensor, rescale: bool = True) -> bool:
        """Store (s, y) if sᵀy > ε ‖s‖ ‖y‖ (keeps B positive definite and cond(B) ≤ ~1/ε² per
        pair); δ = yᵀy / sᵀy, clipped to [1/δ_max, δ_max] (unless ``rescale=False``)."""
        if self.memory == 0 or not (torch.isfinite(s).all() and torch.isfinite(y).all()):
            return False
        sy = float(s @ y)
        if not (sy > self.eps_curv * float(s.norm()) * float(y.norm())) or not math.isfinite(sy):
            return False
        if rescale:
            self.delta = min(max(float(y @ y) / sy, 1.0 / DELTA_MAX), DELTA_MAX)
        self._push(s, y)
        return True

    def _rebuild(self) -> None:
        """Factor the middle matrix M = [[δSᵀS, L], [Lᵀ, −D]] through its Schur complement
        C = δSᵀS + L D⁻¹ Lᵀ (symmetric positive definite when S has full rank) by Cholesky, as
        Byrd, Nocedal & Schnabel (1994, §3) do, instead of inverting the indefinite M. Oldest
        pairs are dropped while the Cholesky factor fails or is ill conditioned
        (diag ratio² > 1e12: S nearly rank deficient)."""
        while self.S:
            S, Y, SY, SS = self._mats()
            Dv = torch.diag(SY)
            Lo = torch.tril(SY, -1)
            C = self.delta * SS + (Lo / Dv) @ Lo.T
            J, info = torch.linalg.cholesky_ex(C)
            dj = torch.diag(J).abs() if int(info) == 0 else None
            if dj is not None and bool(torch.isfinite(J).all()) and float(dj.min()) ** 2 > 1e-12 * float(dj.max()) ** 2:
                self._W = torch.cat([self.delta * S, Y], dim=1)
                self._J, self._L, self._D = J, Lo, Dv
                return
            self._drop_oldest()
        self._W = None

    def _middle(self, w: Tensor) -> Tensor:
        """M⁻¹ w by block elimination: p = C⁻¹(w₁ + L D⁻¹ w₂), q = D⁻¹(Lᵀp − w₂)."""
        m = self._D.numel()
        w1, w2 = w[:m], w[m:]
        p = torch.cholesky_solve((w1 + self._L @ (w2 / self._D)).unsqueeze(1), self._J).squeeze(1)
        q = (self._L.T @ p - w2) / self._D
        return torch.cat([p, q])

    def solve(self, g: Tensor) -> Tensor:
        """H g with the two-loop recursion (H₀ = I / δ)."""
        q = g.clone()
        alphas = []
        rhos = [1.0 / float(s @ y) for s, y in zip(self.S, self.Y)]
        for s, y, rho in zip(reversed(self.S), reversed(self.Y), reversed(rhos)):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * y
        r = q / self.delta
        for (s, y, rho), a in zip(zip(self.S, self.Y, rhos), reversed(alphas)):
            b = rho * float(y @ r)
            r += (a - b) * s
        return r


class _MemorylessModel:
    """A model that stores no curvature pairs: ``update`` keeps nothing, the state is empty."""

    memory = 0

    def __len__(self) -> int:
        return 0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def reset(self) -> None:
        pass

    def update(self, s: Tensor, y: Tensor, rescale: bool = True) -> bool:  # noqa: ARG002
        return False


class ExactHessian(_MemorylessModel):
    """B = ∇²f(x) by Hessian-vector products of the objective being minimised (see module doc).
    ``update`` stores nothing; the curvature is re-read at every iterate."""

    kind = "hessian"
    expensive_matvec = True  # every product is a charged evaluation (at its measured cost ratio)

    def matvec_at(self, objective: Any, x: Tensor, batch: Any) -> Callable[[Tensor], Tensor]:
        x = x.detach()
        return lambda v: objective.hvp(x, v, batch)


class FirstOrder(_MemorylessModel):
    """B = 0: the first-order model m(s) = gᵀs. Its trust-region step is the Cauchy point
    s = −Δ g/‖g‖ with predicted decrease Δ‖g‖ (Steihaug CG meets zero curvature at once and goes to
    the boundary), so the iteration is steepest descent whose step length the trust region
    controls: the first-order models of Kopaničáková & Krause's RMTR (SISC 2022), cheaper per step
    than a quasi-Newton model and free of its memory. ``update`` stores nothing."""

    kind = "first_order"

    def matvec(self, v: Tensor) -> Tensor:
        return torch.zeros_like(v)

    def matvec_at(self, objective: Any, x: Tensor, batch: Any) -> Callable[[Tensor], Tensor]:  # noqa: ARG002
        return self.matvec


def make_model(model: str, qn: str, memory: int, delta0: float = 1.0) -> LSR1 | LBFGS | ExactHessian | FirstOrder:
    """The trust-region model: ``model="qn"`` → :func:`make_qn` (``qn``, ``memory``);
    ``model="hessian"`` → :class:`ExactHessian`; ``model="first_order"`` → :class:`FirstOrder`."""
    if model == "hessian":
        return ExactHessian()
    if model == "first_order":
        return FirstOrder()
    if model == "qn":
        return make_qn(qn, memory, delta0)
    raise ValueError(f"unknown trust-region model {model!r}; allowed: {', '.join(MODELS)}")


def make_qn(kind: str, memory: int, delta0: float = 1.0) -> LSR1 | LBFGS:
    if kind == "lsr1":
        return LSR1(memory, delta0)
    if kind == "lbfgs":
        return LBFGS(memory, delta0)
    raise ValueError(f"unknown quasi-Newton type {kind!r}; allowed: {', '.join(QN_TYPES)}")
