"""``ResidualStack``: the part of a network that is a forward-Euler discretisation in depth.

``ResidualStack(branches, T)`` computes x ← x + h f_k(x) for k = 0..L−1 with h = T / L: L explicit
Euler steps of x' = f(t, x) on [0, T] (Haber & Ruthotto 2017). Marking the residual part of a
network this way is all the depth-multilevel methods need: a network with every other branch and
the same T (so h doubles) is a coarser discretisation of the same ODE, and
:class:`~ml2bench.multilevel.depth.DepthTransfer` interpolates the branches' parameters in depth
between the two. The branch f_k is any module without a skip connection of its own (the stack
adds x); all branches of a stack have the same parameter shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch import Tensor, nn


class ResidualStack(nn.Module):
    """x ← x + h f_k(x), k = 0..L−1, h = T / L (see module docstring)."""

    def __init__(self, branches: Iterable[nn.Module], T: float = 1.0) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        if len(self.branches) == 0:
            raise ValueError("ResidualStack needs at least one branch")
        if not T > 0:
            raise ValueError(f"ResidualStack: T must be > 0, got {T!r}")
        self.T = float(T)

    @property
    def depth(self) -> int:
        return len(self.branches)

    @property
    def h(self) -> float:
        """The step T / L."""
        return self.T / len(self.branches)

    def forward(self, x: Tensor) -> Tensor:
        h = self.h
        for branch in self.branches:
            x = x + h * branch(x)
        return x

    def __len__(self) -> int:
        return len(self.branches)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.branches)

    def __getitem__(self, k: int) -> nn.Module:
        return self.branches[k]

    def extra_repr(self) -> str:
        return f"depth={self.depth}, T={self.T:g}, h={self.h:g}"


def residual_stacks(model: nn.Module) -> list[tuple[str, ResidualStack]]:
    """The stacks of ``model`` with their qualified names, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ResidualStack)]
