"""Small deterministic objectives for the Schwarz tests (importable by spawned worker processes).

:func:`quadratic_hierarchy` builds a :class:`~ml2bench.core.hierarchy.Hierarchy` whose "network" is a
list of parameter blocks (one "layer" per block, names ``blocks.0``, ``blocks.1``, …) and whose loss
is f(z) = ½ zᵀAz − bᵀz of the concatenated blocks z: the linear-algebra limit of Schwarz methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Objective, WorkCounter


@dataclass
class UnitBatch:
    size: int = 1


class BlockVector(nn.Module):
    def __init__(self, sizes: Sequence[int], dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.blocks = nn.ParameterList([nn.Parameter(torch.zeros(s, dtype=dtype)) for s in sizes])

    def forward(self, inp: Tensor | None = None) -> Tensor:
        return torch.cat(list(self.blocks))


class QuadraticLoss:
    """½ zᵀAz − bᵀz of the network output z (picklable)."""

    def __init__(self, A: Tensor, b: Tensor) -> None:
        self.A, self.b = A, b

    def __call__(self, f, batch) -> Tensor:
        z = f(None)
        return 0.5 * z @ (self.A @ z) - self.b @ z


def quadratic_hierarchy(
    A: Tensor, b: Tensor, sizes: Sequence[int], x0: Tensor | None = None, loss=None
) -> tuple[Hierarchy, Tensor]:
    model = BlockVector(sizes, A.dtype)
    obj = Objective(model, loss or QuadraticLoss(A, b), WorkCounter(), n_train=1)
    x = torch.zeros(sum(sizes), dtype=A.dtype) if x0 is None else x0.clone()
    return Hierarchy([obj], [], obj.counter), x


def spd_matrix(n: int, seed: int = 0, cond: float = 10.0, dtype=torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=dtype))
    eig = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=dtype)
    return (q * eig) @ q.T


@dataclass
class RegressionBatch:
    x: Tensor
    y: Tensor
    size: int


class MSELoss:
    """Mean squared error of the network on the batch (picklable)."""

    def __call__(self, f, batch: RegressionBatch) -> Tensor:
        return ((f(batch.x) - batch.y) ** 2).mean()


def mlp_hierarchy(
    seed: int = 0, n: int = 64, width: int = 8, dtype: torch.dtype = torch.float64, loss=None
) -> tuple[Hierarchy, Tensor, RegressionBatch]:
    """A small tanh network fitting a smooth function: nonlinear, non-convex, fast."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=dtype) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * torch.cos(2 * x[:, 1:])
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)).to(
        dtype
    )
    obj = Objective(model, loss or MSELoss(), WorkCounter(), n_train=n)
    return Hierarchy([obj], [], obj.counter), obj.initial_x(), RegressionBatch(x, y, n)
