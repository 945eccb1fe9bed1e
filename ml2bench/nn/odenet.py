"""Residual networks in ODE form, x_{k+1} = x_k + h σ(K_k x_k + b_k), h = T / depth.

The forward-Euler view (Haber & Ruthotto; Kopaničáková & Krause, SISC 2022) is what makes
depth a discretisation parameter: a network with half the blocks and twice the step is a coarser
discretisation of the same ODE, which is the hierarchy used by RMTR and MG/OPT here. The
residual blocks are held in ``self.blocks`` (a ModuleList of identical blocks); everything else
(``opening``, ``closing``) is shared by all levels. :mod:`ml2bench.multilevel.depth` relies on
these names.
"""

from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def depth_levels(depth: int) -> int:
    """Number of levels obtained by halving ``depth`` while it stays an integer ≥ 1."""
    if depth < 1:  # 0 would halve forever (0 % 2 == 0)
        raise ValueError(f"depth must be >= 1, got {depth}")
    levels = 1
    while depth % 2 == 0:
        depth //= 2
        levels += 1
    return levels


class DenseODEResNet(nn.Module):
    """Dense residual network: opening layer, ``depth`` residual blocks of width ``width``, closing layer."""

    def __init__(
        self, in_features: int, width: int, out_features: int, depth: int, T: float = 1.0, activation: str = "tanh"
    ) -> None:
        super().__init__()
        self.depth, self.T, self.h = depth, T, T / depth
        self.act = ACTIVATIONS[activation]()
        self.opening = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.closing = nn.Linear(width, out_features)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.opening(x.flatten(1)))
        for block in self.blocks:
            x = x + self.h * self.act(block(x))
        return self.closing(x)


class ConvODEResNet(nn.Module):
    """Convolutional residual network for images: 3×3 convolutions in the residual blocks,
    global average pooling and a linear classifier as the closing layer."""

    def __init__(
        self, in_channels: int, channels: int, num_classes: int, depth: int, T: float = 1.0, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.depth, self.T, self.h = depth, T, T / depth
        self.act = ACTIVATIONS[activation]()
        self.opening = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth))
        self.closing = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.opening(x))
        for block in self.blocks:
            x = x + self.h * self.act(block(x))
        return self.closing(x.mean(dim=(2, 3)))
