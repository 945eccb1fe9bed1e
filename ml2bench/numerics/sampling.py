"""Adaptive sample sizes: grow a mini-batch towards the full batch when its gradient is too noisy.

A hybrid stochastic–deterministic method (Kopaničáková & Krause, SISC 2022, for RMTR) starts on
small mini-batches, where a step is cheap, and grows the batch as the iterates approach a minimiser,
where the sampled gradient's noise would dominate its norm; on the full batch it is the
deterministic method. Two classical rules decide when and how much to grow (g_S = ∇f_S(x) the
mean gradient of the batch S, ∇f_i the gradient of sample i, Var_i the sample variance over S):

* **norm test** (Byrd, Chin, Nocedal & Wu, Math. Program. 2012):
  Var_i(∇f_i) / |S| ≤ θ² ‖g_S‖²; when it fails, the next batch has
  |S⁺| = ⌈Var_i(∇f_i) / (θ² ‖g_S‖²)⌉ samples (the size at which the test would hold).
* **inner-product test** (Bollapragada, Byrd & Nocedal, SIAM J. Optim. 2018): it only asks the
  sampled direction to be a descent direction with high probability,
  Var_i(∇f_iᵀ g_S) / |S| ≤ θ² ‖g_S‖⁴, together with their *orthogonality test*
  Var_i(∇f_i − (∇f_iᵀ g_S / ‖g_S‖²) g_S) / |S| ≤ ν² ‖g_S‖² (ν = tan 80° ≈ 5.84 in their
  experiments); the next size is the larger of the two sizes at which they would hold. It is looser
  than the norm test, so batches grow later.

The batch never shrinks and is capped at the full training set (n_train).

Variance from micro-batches. Per-sample gradients would cost one backward pass per sample; instead
S is drawn as m equal micro-batches S_1..S_m of b samples (m = ``groups``) and their mean gradients
g_j are evaluated (together exactly the work of one gradient on S, charged as such by the
objective). Each g_j has covariance Σ/b, so b · (1/(m−1)) Σ_j ‖g_j − g_S‖² is an unbiased estimate
of the per-sample variance trace Var_i(∇f_i) (likewise for the projected quantities). The estimate
is noisy for small m; m = 8 is the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ml2bench.core.params import ConfigError

RULES = ("none", "norm_test", "inner_product")
ORTHOGONALITY_NU = math.tan(math.radians(80.0))


@dataclass(frozen=True)
class VarianceEstimate:
    """Per-sample variance estimates from m micro-batch gradients (see module docstring)."""

    grad: Tensor  # g_S, mean over the micro-batches weighted by their sizes
    var_norm: float  # estimate of Var_i(∇f_i) (trace of the covariance)
    var_inner: float  # estimate of Var_i(∇f_iᵀ g_S)
    var_orth: float  # estimate of Var_i(∇f_i − projection onto g_S)


def estimate_variance(group_grads: Tensor, group_sizes: list[int]) -> VarianceEstimate:
    """Variance estimates from the rows of ``group_grads`` (m × n) over micro-batches of the given sizes."""
    m = group_grads.shape[0]
    if m < 2:
        raise ValueError(f"a variance estimate needs at least 2 micro-batches, got {m}")
    w = torch.tensor(group_sizes, dtype=group_grads.dtype, device=group_grads.device)
    g = (w[:, None] * group_grads).sum(0) / w.sum()
    d = group_grads - g
    gg = float(g.dot(g))
    inner = group_grads @ g - gg  # g_jᵀ g − ‖g‖² (mean zero)
    orth = d - (inner / gg)[:, None] * g if gg > 0 else d  # component of g_j − g orthogonal to g
    scale = 1.0 / (m - 1)
    return VarianceEstimate(
        grad=g,
        var_norm=float((w * d.square().sum(1)).sum()) * scale,
        var_inner=float((w * inner.square()).sum()) * scale,
        var_orth=float((w * orth.square().sum(1)).sum()) * scale,
    )


def required_size(rule: str, est: VarianceEstimate, theta: float, nu: float = ORTHOGONALITY_NU) -> float:
    """Smallest batch size at which ``rule``'s test holds with these estimates (inf if g_S = 0)."""
    gg = float(est.grad.dot(est.grad))
    if gg == 0.0:
        return math.inf
    if rule == "norm_test":
        return est.var_norm / (theta**2 * gg)
    if rule == "inner_product":
        return max(est.var_inner / (theta**2 * gg**2), est.var_orth / (nu**2 * gg))
    raise ValueError(f"unknown batch-growth rule {rule!r}; allowed: {', '.join(RULES[1:])}")


def next_batch_size(rule: str, size: int, est: VarianceEstimate, theta: float, n_train: int) -> int:
    """The next batch size: unchanged while the test holds (required ≤ |S|), else the required size;
    never smaller than ``size``, never above ``n_train``."""
    need = required_size(rule, est, theta)
    if need <= size:
        return size
    return n_train if not math.isfinite(need) else min(n_train, max(size + 1, math.ceil(need)))


def split_batch(batch: Any, parts: int) -> list[Any]:
    """Split a dataclass batch into ``parts`` near-equal consecutive pieces.

    Every field must be either ``size`` or a tensor with ``size`` rows (as
    :class:`~ml2bench.problems.classification.TensorBatch`); batches with other fields (PINN
    boundary sets) cannot be split sample by sample and raise ``TypeError``.
    """
    if not is_dataclass(batch):
        raise TypeError(f"cannot split a {type(batch).__name__} batch: not a dataclass")
    n = batch.size
    for f in fields(batch):
        v = getattr(batch, f.name)
        if f.name != "size" and not (isinstance(v, Tensor) and v.shape[:1] == (n,)):
            raise TypeError(
                f"cannot split a {type(batch).__name__} batch sample by sample: field {f.name!r} is "
                f"not a tensor with {n} rows (batch growth needs classification-style batches)"
            )
    bounds = [round(k * n / parts) for k in range(parts + 1)]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        if b > a:
            vals = {f.name: getattr(batch, f.name)[a:b] for f in fields(batch) if f.name != "size"}
            out.append(replace(batch, size=b - a, **vals))
    return out


class BatchSampler:
    """Mini-batches of a chosen size drawn from the problem's own sampler (``train_batches``).

    Within one size, batches come from an epoch's permutation without replacement; a new size (or
    the end of an epoch) starts a new permutation. ``samples`` counts every sample handed out.
    """

    def __init__(
        self,
        train_batches: Callable[[int | None, torch.Generator], Iterator[Any]],
        n_train: int,
        generator: torch.Generator,
    ) -> None:
        self.train_batches = train_batches
        self.n_train = n_train
        self.generator = generator
        self._size: int | None = None
        self._it: Iterator[Any] | None = None
        self._start: Tensor | None = None  # generator state when the current permutation was drawn
        self._drawn = 0  # batches taken from it
        self.samples = 0

    def _restart(self, size: int) -> None:
        self._start, self._drawn = self.generator.get_state(), 0
        self._size, self._it = size, iter(self.train_batches(None if size >= self.n_train else size, self.generator))

    def draw(self, size: int) -> Any:
        if size >= self.n_train:
            size = self.n_train
        if size != self._size or self._it is None:
            self._restart(size)
        batch = next(self._it, None)
        if batch is None or batch.size < size:  # epoch exhausted (or a short last batch): a new permutation
            self._restart(size)
            batch = next(self._it)
        self._drawn += 1
        self.samples += batch.size
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler is: re-drawing the current permutation from the saved generator state
        and skipping the batches taken continues exactly (the permutation is drawn at its start)."""
        return {"size": self._size, "start": self._start, "drawn": self._drawn, "samples": self.samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.samples = int(state["samples"])
        if state["size"] is None:
            return
        self.generator.set_state(state["start"])
        self._restart(int(state["size"]))
        for _ in range(int(state["drawn"])):
            next(self._it)
        self._drawn = int(state["drawn"])


class AdaptiveBatch:
    """The hybrid stochastic–deterministic batching of a method: draws its batch for each step from a
    :class:`BatchSampler`, evaluates the gradient as ``groups`` micro-batches (charged through the
    objective: b/n_train each), and sets the next batch size by ``rule``. Once the batch is the
    full training set it stays there, and the method runs in its deterministic mode.
    """

    def __init__(self, rule: str, initial: int, theta: float, groups: int, grad_tol: float = 0.0) -> None:
        if rule not in RULES[1:]:
            raise ValueError(f"unknown batch-growth rule {rule!r}; allowed: {', '.join(RULES[1:])}")
        self.rule, self.size, self.theta, self.groups, self.grad_tol = rule, initial, theta, groups, grad_tol
        self.sampler: BatchSampler | None = None
        self.last_required = math.nan

    def state_dict(self) -> dict[str, Any]:
        """The batch size reached (the sampler's position is its owner's: the runner's checkpoint)."""
        return {"size": self.size, "last_required": self.last_required}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.last_required = int(state["size"]), float(state["last_required"])

    def attach(self, sampler: BatchSampler) -> None:
        """Take ``sampler`` as the source of batches, after checking that its batches split sample by
        sample (a problem whose batches do not, e.g. a PINN's boundary sets, is bad input: a
        ConfigError before any work, not a failure at the first step). The check draws one batch of
        two samples with its own generator: the sampler's sequence is untouched."""
        probe = next(iter(sampler.train_batches(min(2, sampler.n_train), torch.Generator().manual_seed(0))))
        try:
            split_batch(probe, 2)
        except TypeError as err:
            raise ConfigError(f"batch growth {self.rule!r} is not possible here: {err}") from None
        self.sampler = sampler

    def draw(self, objective, x: Tensor) -> tuple[Any, tuple[float, Tensor] | None]:
        """The step's batch and, for a sub-full batch, (f_S(x), g_S(x)) from the micro-batches (None on the
        full batch: the caller evaluates or reuses its own)."""
        if self.sampler is None:
            raise RuntimeError("batch growth needs a sampler: the runner attaches one (Method.set_sampler)")
        n = self.sampler.n_train
        if self.size >= n:
            return self.sampler.draw(n), None
        batch = self.sampler.draw(self.size)
        parts = split_batch(batch, min(self.groups, batch.size))
        values, grads = zip(*(objective.loss_grad(x, p) for p in parts))
        sizes = [p.size for p in parts]
        est = estimate_variance(torch.stack(grads), sizes)
        f = sum(v * s for v, s in zip(values, sizes)) / sum(sizes)
        self.last_required = required_size(self.rule, est, self.theta)
        self.size = next_batch_size(self.rule, self.size, est, self.theta, n)
        if float(est.grad.norm()) <= self.grad_tol:  # a small *sampled* gradient is no convergence: go full batch
            self.size = n
            return self.sampler.draw(n), None
        return batch, (f, est.grad)
