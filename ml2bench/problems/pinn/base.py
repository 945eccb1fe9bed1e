"""Shared machinery of the physics-informed (PINN) problems ``pinn_*``.

A PINN problem trains u_θ(x, t) (or u_θ(x, y)) so that the PDE residual vanishes at interior
collocation points and the boundary/initial data hold. Two formulations (problem parameter
``constraints``):

- ``soft`` (Raissi et al. 2019): u_θ = NN_θ and the data enter the loss as penalty terms at points
  on the boundary,  loss = mean_i r(u_θ)(p_i)²  +  Σ_c w_c · mean_j (B_c u_θ(q_j) - g_c(q_j))²;
- ``hard`` (Lagaris et al. 1998; the SPQN authors' ``apply_bc``): u_θ = g + ℓ · NN_θ, where g
  matches the boundary/initial data and ℓ vanishes on the constrained part of the boundary (to
  second order at t = t0 where a velocity u_t is prescribed), so u_θ satisfies the data exactly
  for every θ and the loss is the PDE residual alone,  loss = mean_i r(u_θ)(p_i)².
  Each problem defines g and ℓ (:meth:`PINNProblem.lifting`) from its data and its domain; ℓ is a
  product of the normalised factors 4s(1-s) and τ (s, τ ∈ [0, 1] the box coordinates), so max ℓ = 1.

Derivatives are taken by ``torch.autograd.grad(..., create_graph=True)`` w.r.t. the *inputs*
(the objective differentiates the result once more w.r.t. the parameters).

Design choices, shared by all four problems:

- Network: :class:`PINNNet`, a :class:`~ml2bench.nn.odenet.DenseODEResNet` with a
  parameter-free input map in front (affine map of the domain to [-1, 1]², as in Raissi et al.
  2019; optionally (cos πx̃, sin πx̃, t̃) features for problems periodic in x). The map adds no
  parameters, so :class:`~ml2bench.multilevel.depth.DepthTransfer` sees exactly the layout of a
  plain ``DenseODEResNet`` and depth coarsening (L → L/2, same T: every other branch of its
  residual stack) works unchanged.
- Collocation points are drawn once, deterministically from the problem seed (a
  ``torch.Generator``), in float64 and then cast, so float32 and float64 runs train on the same
  points: i.i.d. uniform, scrambled Sobol, or the tensor grid of cell midpoints (``sampling: grid``,
  n_interior = m² points, the papers' 100 × 100). Every point set, and the test grid, lies in the
  problem's ``domain``. ``n_train`` is the number of interior points.
- Mini-batches (``batch_size`` given) are slices of a permutation of the interior points; each
  boundary/initial set is permuted too and split into as many near-equal slices as there are
  batches (a *proportional share*). Every point of every set is used once per epoch, every term of
  a mini-batch loss is an unbiased estimate of the same term of the full-batch loss, and the cost
  of a batch scales with its size, as the work counter (batch.size / n_train) assumes.
- The test metric is the relative L2 error on a fixed grid from :mod:`ml2bench.problems.pinn.reference`, computed
  in float64 (so the zero network gives exactly 1); the grid and reference values are computed
  once per problem instance (and cached per process in the modules, for sweeps).
"""

from __future__ import annotations

import functools
import math
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ml2bench.core.cost.cache import cached_arrays
from ml2bench.core.objective import FModel
from ml2bench.core.params import ConfigError, Param
from ml2bench.multilevel.depth import KINDS, DepthTransfer, coarsen
from ml2bench.nn.odenet import DenseODEResNet, depth_levels
from ml2bench.problems.base import Problem

Grid = tuple[NDArray[np.float64], NDArray[np.float64]]


def _frozen(pts: NDArray[np.float64], ref: NDArray[np.float64]) -> Grid:
    pts.setflags(write=False)
    ref.setflags(write=False)
    return pts, ref


@functools.lru_cache(maxsize=8)
def tabulated_grid(reference_grid: Callable[[int, int], tuple], nx: int, nt: int) -> Grid:
    """Test points (x, t) and values of a reference solver's ``reference_grid(nx, nt)`` (U[k, j] =
    u(x_j, t_k)), flattened; cached per process and on disk (:mod:`ml2bench.core.cost.cache`, keyed by the
    solver's source and arguments) because the solvers take up to a second per run."""
    x, t, U = cached_arrays(reference_grid, int(nx), int(nt))
    tt, xx = np.meshgrid(t, x, indexing="ij")
    return _frozen(np.stack([xx.ravel(), tt.ravel()], axis=1), np.ascontiguousarray(U.ravel()))


Box = tuple[tuple[float, float], tuple[float, float]]


@functools.lru_cache(maxsize=8)
def exact_grid(exact: Callable[[Any, Any], Any], n: int, domain: Box) -> Grid:
    """n × n tensor grid of the box ``domain`` including its boundary, and an exact solution there."""
    (a0, a1), (b0, b1) = domain
    a, b = np.meshgrid(np.linspace(a0, a1, n), np.linspace(b0, b1, n), indexing="ij")
    pts = np.stack([a.ravel(), b.ravel()], axis=1)
    return _frozen(pts, exact(pts[:, 0], pts[:, 1]))


# ReLU is excluded on purpose: its second derivative vanishes, so u_xx terms would be zero.
PINN_ACTIVATIONS = ("tanh", "silu", "gelu")
SAMPLINGS = ("uniform", "sobol", "grid")
CONSTRAINTS = ("soft", "hard")
EVAL_CHUNK = 1 << 16  # test points per forward pass in evaluate (bounds memory)


def network_params(width: int = 32, depth: int = 8) -> tuple[Param, ...]:
    """Hyper-parameters of the depth-coarsenable network, shared by all PINN problems."""
    return (
        Param("width", int, width, "hidden units of the residual blocks", low=1),
        Param("depth", int, depth, "residual blocks (levels: times depth can be halved, +1)", low=1),
        Param("T", float, 1.0, "ODE time horizon; step h = T / depth on every level", low=0.0, low_inclusive=False),
        Param(
            "activation",
            str,
            "tanh",
            "activation (no relu: PINN losses need 2nd derivatives)",
            choices=PINN_ACTIVATIONS,
        ),
        Param(
            "adaptive_slope",
            float,
            0.0,
            "layer-wise adaptive activation σ(n·a_k·z) in each residual block with this scale n (Jagtap et al. "
            "2020; the SPQN authors use n = 10); 0 = fixed σ",
            low=0.0,
            hashed_at_default=False,  # off: PINN runs from before the option keep their config hashes
        ),
        Param("interpolation", str, "constant", "depth transfer between levels", choices=KINDS),
    )


def sampling_param() -> Param:
    return Param(
        "sampling",
        str,
        "uniform",
        "collocation points: i.i.d. uniform, scrambled Sobol, or the grid of cell midpoints (n must be m² for the "
        "interior)",
        choices=SAMPLINGS,
    )


def constraints_param() -> Param:
    return Param(
        "constraints",
        str,
        "soft",
        "boundary/initial data: soft = weighted penalty terms in the loss; hard = exact by the lifting "
        "u = g + ℓ·NN, loss = PDE residual only (the n_*/w_* of the data terms are then unused)",
        choices=CONSTRAINTS,
    )


def initial_boundary_params(source: str) -> tuple[Param, ...]:
    """Point counts and data weights of a problem on [x0, x1] × [t0, t1] with initial data and
    Dirichlet data on x = x0, x1 (Burgers, Dirichlet Allen–Cahn); ``source`` names the weights' origin."""
    return (
        Param("n_interior", int, 2000, "interior collocation points (= n_train)", low=1),
        Param("n_initial", int, 200, "points on t = 0", low=1),
        Param("n_boundary", int, 200, "points on x = ±1 (half on each side)", low=2),
        Param("w_initial", float, 1.0, f"weight of the initial term ({source}: 1)", low=0.0),
        Param("w_boundary", float, 1.0, f"weight of the boundary term ({source}: 1)", low=0.0),
        sampling_param(),
        constraints_param(),
    )


@dataclass(frozen=True)
class PointSet:
    """Points of one boundary/initial loss term and the data the network must match there."""

    x: Tensor  # (m, 2) inputs
    target: Tensor  # (m,) data g_c

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: Tensor) -> PointSet:
        return PointSet(self.x[idx], self.target[idx])


@dataclass
class PINNBatch:
    """Interior collocation points (with forcing values) and a share of each boundary/initial set.

    ``size`` is the number of interior points: the unit the work counter and epochs count in.
    """

    interior: Tensor  # (n, 2)
    forcing: Tensor  # (n,) right-hand side of the PDE at the interior points
    conditions: dict[str, PointSet]
    size: int


class PINNNet(DenseODEResNet):
    """``DenseODEResNet`` on normalised inputs: the box ``domain`` is mapped affinely to [-1, 1]².

    With ``periodic_x`` the first coordinate enters as (cos πx̃, sin πx̃) (x̃ ∈ [-1, 1] is the
    normalised x), so u and all its x-derivatives are exactly periodic with the box's x-period;
    the network then has ``in_features = 3``. The map holds no parameters or buffers (the depth
    transfers see exactly a ``DenseODEResNet``); its scale and shift are cast to the points' device
    and dtype once and kept, so a forward makes no host→device copy and can be captured in a CUDA
    graph (the earlier ``p.new_tensor(list)`` copied and synchronised on every forward).
    """

    def __init__(
        self,
        domain: Box,
        width: int,
        depth: int,
        T: float = 1.0,
        activation: str = "tanh",
        periodic_x: bool = False,
        adaptive_slope: float = 0.0,
    ) -> None:
        super().__init__(3 if periodic_x else 2, width, 1, depth, T, activation, adaptive_slope)
        self.domain = tuple(tuple(float(v) for v in side) for side in domain)
        self.periodic_x = periodic_x
        (x0, x1), (t0, t1) = self.domain
        # float64 master copies; features() keeps one cast copy per (device, dtype), made on first use
        self._map64 = torch.tensor(
            [[2.0 / (x1 - x0), 2.0 / (t1 - t0)], [-1.0 - 2.0 * x0 / (x1 - x0), -1.0 - 2.0 * t0 / (t1 - t0)]],
            dtype=torch.float64,
        )
        self._map: Tensor = self._map64

    def features(self, p: Tensor) -> Tensor:
        """The network's actual input for points ``p`` of shape (n, 2)."""
        if self._map.device != p.device or self._map.dtype != p.dtype:
            self._map = self._map64.to(device=p.device, dtype=p.dtype)
        z = p * self._map[0] + self._map[1]
        if not self.periodic_x:
            return z
        a = math.pi * z[:, :1]
        return torch.cat([torch.cos(a), torch.sin(a), z[:, 1:]], dim=1)

    def forward(self, p: Tensor) -> Tensor:
        return super().forward(self.features(p))


def input_points(points: Tensor) -> Tensor:
    """A differentiable copy of ``points`` to differentiate the network w.r.t.

    The copy is a *non-leaf* tensor (clone of a detached leaf): ``torch.autograd.grad`` w.r.t. a
    leaf that is a module input fails under module backward hooks such as the ones
    ``FlopCounterMode`` installs (torch 2.13: "A leaf node was passed to
    _will_engine_execute_node ..."), and the base class measures level costs with it.
    """
    return points.detach().requires_grad_(True).clone()


def d(y: Tensor, p: Tensor) -> Tensor:
    """∂y/∂p per point, (n, 2): valid because the network acts on each row independently."""
    (g,) = torch.autograd.grad(y.sum(), p, create_graph=True)
    return g


class PINNProblem(Problem):
    """Base class of the PINN problems; subclasses define the PDE, the data and the reference."""

    metric_name = "rel_l2"
    metric_higher_is_better = False
    default_batch_size: ClassVar[int | None] = None  # PINNs are trained full batch by default
    default_epochs: ClassVar[float] = 1000.0  # full batch: one epoch = one Adam step
    default_eval_interval: ClassVar[float] = 20.0  # evaluating costs ~1-6 steps here
    domain: ClassVar[Box]
    periodic_x: ClassVar[bool] = False
    #: boundary/initial loss term name -> hyper-parameter holding its weight
    condition_weights: ClassVar[dict[str, str]]

    def __init__(
        self, hp: dict[str, Any], *, seed: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        # Validating again is idempotent for configs from RunConfig and lets tests pass partial dicts.
        hp = self.params.validate(hp, f"problem {self.name!r}")
        super().__init__(hp, seed=seed, device=torch.device(device), dtype=dtype)
        n, m = hp["n_interior"], math.isqrt(hp["n_interior"])
        if hp["sampling"] == "grid" and m * m != n:  # fail before any work
            raise ConfigError(
                f"problem {self.name!r}: sampling 'grid' puts n_interior = m² points on an m × m grid; "
                f"parameter 'n_interior' = {n} is not a square (e.g. {m * m} or {(m + 1) ** 2})"
            )
        gen = torch.Generator().manual_seed(int(seed))
        interior = self.sample_box(gen, hp["n_interior"], self.domain)
        # hard constraints: the data hold by construction, no condition points (drawn after the
        # interior, so both formulations train on the same interior points)
        conditions = self.sample_conditions(gen) if self.soft else {}
        self.interior = self._cast(interior)
        self.forcing = self._cast(self.forcing_at(interior))
        self.conditions = {k: PointSet(self._cast(v.x), self._cast(v.target)) for k, v in conditions.items()}
        if self.soft and set(self.conditions) != set(self.condition_weights):
            raise RuntimeError(f"{self.name}: conditions {sorted(self.conditions)} have no weights")
        self._test: tuple[Tensor, Tensor] | None = None

    @property
    def soft(self) -> bool:
        """Whether the data enter the loss as penalty terms (else: the hard-constraint lifting)."""
        return self.hp["constraints"] == "soft"

    # --- helpers for subclasses -------------------------------------------------------
    def _cast(self, t: Tensor) -> Tensor:
        return t.to(device=self.device, dtype=self.dtype)

    def unit_samples(self, gen: torch.Generator, n: int, dim: int) -> Tensor:
        """n points in [0, 1]^dim (float64): i.i.d. uniform or scrambled Sobol, seeded by ``gen``, or the
        m^dim grid of cell midpoints (n = m^dim; ``gen`` is not used)."""
        sampling = self.hp["sampling"]
        if sampling == "grid":
            m = round(n ** (1.0 / dim))
            if m**dim != n:
                raise ValueError(f"{n} points are no {dim}-D grid")  # n_interior is checked in __init__
            s = (torch.arange(m, dtype=torch.float64) + 0.5) / m
            return torch.cartesian_prod(*([s] * dim)).reshape(n, dim)
        if sampling == "sobol":
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            return torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed).draw(n, dtype=torch.float64)
        return torch.rand(n, dim, generator=gen, dtype=torch.float64)

    def sample_box(self, gen: torch.Generator, n: int, box: Box) -> Tensor:
        """n points in the box ((a0, b0), (a1, b1)); a degenerate side (a == b) fixes that coordinate."""
        lo = torch.tensor([box[0][0], box[1][0]], dtype=torch.float64)
        hi = torch.tensor([box[0][1], box[1][1]], dtype=torch.float64)
        if self.hp["sampling"] == "grid":  # a grid over the free coordinates only (a side is a 1-D grid)
            free = [k for k in range(2) if box[k][0] != box[k][1]]
            u = torch.zeros(n, 2, dtype=torch.float64)
            u[:, free] = self.unit_samples(gen, n, len(free))
        else:
            u = self.unit_samples(gen, n, 2)
        return lo + (hi - lo) * u

    def box_coordinates(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """(s, τ) ∈ [0, 1]²: the points' coordinates relative to the domain (differentiable)."""
        (x0, x1), (t0, t1) = self.domain
        return (p[:, 0] - x0) / (x1 - x0), (p[:, 1] - t0) / (t1 - t0)

    def sample_initial(self, gen: torch.Generator, n: int) -> Tensor:
        """n points on t = t0 across the spatial interval (space-time problems)."""
        (x0, x1), (t0, _) = self.domain
        return self.sample_box(gen, n, ((x0, x1), (t0, t0)))

    def sample_sides(self, gen: torch.Generator, n: int) -> Tensor:
        """n points on the spatial boundary over time: the first half on x = x0, the rest on x = x1."""
        (x0, x1), (t0, t1) = self.domain
        if self.hp["sampling"] == "grid":  # a grid on each side (one grid cut in two would cover half of each)
            left = self.sample_box(gen, n // 2, ((x0, x0), (t0, t1)))
            return torch.cat([left, self.sample_box(gen, n - n // 2, ((x1, x1), (t0, t1)))])
        points = self.sample_box(gen, n, ((x0, x0), (t0, t1)))
        points[n // 2 :, 0] = x1
        return points

    # --- the PDE (subclasses) ---------------------------------------------------------
    @abstractmethod
    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        """Boundary/initial point sets in float64 (drawn after the interior points)."""

    def forcing_at(self, p: Tensor) -> Tensor:
        """Right-hand side f of the PDE at points p (float64); zero unless overridden."""
        return torch.zeros(p.shape[0], dtype=p.dtype)

    @abstractmethod
    def pde_residual(self, f: FModel, p: Tensor, forcing: Tensor) -> Tensor:
        """Residual r(u)(p) per point, shape (n,), of the trial solution ``f`` (:meth:`solution`);
        ``p`` already requires grad."""

    def condition_residual(self, f: FModel, name: str, points: PointSet) -> Tensor:
        """Residual of one boundary/initial term of the trial solution ``f``; Dirichlet-type
        u(q) - g(q) unless overridden."""
        return f(points.x).reshape(-1) - points.target

    @abstractmethod
    def lifting(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """(g, ℓ) at points p, each of shape (n,), differentiable in p: g matches the boundary/initial
        data, ℓ vanishes on the constrained boundary (hard constraints: u = g + ℓ · NN)."""

    def solution(self, f: FModel) -> Callable[[Tensor], Tensor]:
        """The trial solution u(p), flat (n,), of the network ``f``: NN itself (soft constraints)
        or the lifted g + ℓ · NN (hard constraints)."""
        if self.soft:
            return lambda p: f(p).reshape(-1)

        def lifted(p: Tensor) -> Tensor:
            g, ell = self.lifting(p)
            return g + ell * f(p).reshape(-1)

        return lifted

    @abstractmethod
    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Test points (N, 2) and reference values (N,), float64 numpy (cached by the subclass)."""

    # --- Problem interface ------------------------------------------------------------
    @property
    def n_train(self) -> int:
        return self.interior.shape[0]

    def full_batch(self) -> PINNBatch:
        return PINNBatch(self.interior, self.forcing, dict(self.conditions), self.n_train)

    def train_batches(self, batch_size: int | None, generator: torch.Generator) -> Iterator[PINNBatch]:
        n = self.n_train
        if batch_size is None or batch_size >= n:
            yield self.full_batch()
            return
        n_batches = -(-n // batch_size)
        perm = torch.randperm(n, generator=generator).to(self.device)
        shares = {name: _split(len(ps), n_batches, generator) for name, ps in self.conditions.items()}
        for k in range(n_batches):
            idx = perm[k * batch_size : (k + 1) * batch_size]
            conditions = {name: ps.take(shares[name][k].to(self.device)) for name, ps in self.conditions.items()}
            yield PINNBatch(self.interior[idx], self.forcing[idx], conditions, idx.numel())

    def residual(self, f: FModel, batch: PINNBatch) -> Tensor:
        """PDE residual of the network ``f``'s trial solution at the batch's interior points
        (differentiable copy: see :func:`input_points`)."""
        p = input_points(batch.interior)
        return self.pde_residual(self.solution(f), p, batch.forcing)

    def loss_terms(self, f: FModel, batch: PINNBatch) -> dict[str, Tensor]:
        """Unweighted mean squared residuals: ``pde`` and one entry per boundary/initial term
        (none with hard constraints)."""
        terms = {"pde": self.residual(f, batch).square().mean()}
        u = self.solution(f)
        for name, ps in batch.conditions.items():
            terms[name] = self.condition_residual(u, name, ps).square().mean()
        return terms

    def loss(self, f: FModel, batch: PINNBatch) -> Tensor:
        terms = self.loss_terms(f, batch)
        total = terms.pop("pde")
        for name, value in terms.items():
            total = total + self.hp[self.condition_weights[name]] * value
        return total

    def test_data(self) -> tuple[Tensor, Tensor]:
        """Test points (in the problem's dtype) and float64 reference values; built once."""
        if self._test is None:
            pts, ref = self.reference_grid()
            self._test = (self._cast(torch.tensor(pts)), torch.tensor(ref, dtype=torch.float64, device=self.device))
        return self._test

    def predict(self, f: FModel, points: Tensor) -> Tensor:
        """The trial solution u_θ of the network ``f`` at ``points``, flat float64 (no graph; chunked)."""
        u = self.solution(f)
        with torch.no_grad():
            out = [u(points[i : i + EVAL_CHUNK]) for i in range(0, points.shape[0], EVAL_CHUNK)]
        return torch.cat(out).to(torch.float64)

    def evaluate(self, f: FModel) -> dict[str, float]:
        pts, ref = self.test_data()
        err = self.predict(f, pts) - ref
        return {
            "test_loss": float(err.square().mean()),
            "test_metric": float(torch.linalg.vector_norm(err) / torch.linalg.vector_norm(ref)),
        }

    # --- levels -----------------------------------------------------------------------
    def max_levels(self) -> int:
        return depth_levels(self.hp["depth"])

    def build_model(self, level: int = 0) -> PINNNet:
        if not 0 <= level < self.max_levels():
            raise ConfigError(
                f"problem {self.name!r}: level {level} does not exist for depth="
                f"{self.hp['depth']}; allowed: 0..{self.max_levels() - 1}"
            )
        hp = self.hp
        net = PINNNet(
            self.domain,
            hp["width"],
            hp["depth"],
            hp["T"],
            hp["activation"],
            periodic_x=self.periodic_x,
            adaptive_slope=hp["adaptive_slope"],
        )
        return coarsen(net, level) if level else net

    def transfer(self, fine: torch.nn.Module, coarse: torch.nn.Module, level: int) -> DepthTransfer:
        return DepthTransfer(fine, coarse, self.hp["interpolation"])


def _split(m: int, n_batches: int, generator: torch.Generator) -> list[Tensor]:
    """Indices of a set of m points for each of n_batches batches: near-equal slices of a permutation.

    When m < n_batches each batch still gets one point (cycling), so no loss term is ever empty.
    """
    perm = torch.randperm(m, generator=generator)
    if m >= n_batches:
        return list(torch.tensor_split(perm, n_batches))
    return [perm[k % m : k % m + 1] for k in range(n_batches)]
