"""Residual networks in ODE form, x_{k+1} = x_k + h σ(K_k x_k + b_k), h = T / depth.

The forward-Euler view (Haber & Ruthotto; Kopaničáková & Krause, SISC 2022) is what makes
depth a discretisation parameter: a network with half the blocks and twice the step is a coarser
discretisation of the same ODE, which is the hierarchy used by RMTR and MG/OPT here. The
residual part is a :class:`~ml2bench.nn.stack.ResidualStack` ``self.blocks`` whose branches are
σ(K_k x + b_k); everything else (``opening``, ``closing``) is shared by all levels.
:mod:`ml2bench.multilevel.depth` finds the stack, as it does in any network built with one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ml2bench.nn.stack import ResidualStack

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


class AdaptiveActivation(nn.Module):
    """σ(n·a·z) with a trainable slope a, initialised to 1/n so that training starts from σ(z).

    The layer-wise adaptive activation of Jagtap, Kawaguchi & Karniadakis (J. Comput. Phys. 2020),
    as the SPQN authors use it in their PINN ResNets (cruzas/ML_APTS, ``ResNetBlock``: n = 10, one
    slope per block): the scale n multiplies the slope's gradient by n, so steep solutions (Burgers'
    front) are reached in fewer steps. The slope is a parameter of the block it follows, so depth
    transfers interpolate it as they do the block's weights.
    """

    def __init__(self, activation: nn.Module, scale: float) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"AdaptiveActivation: scale must be > 0, got {scale!r}")
        self.activation = activation
        self.scale = float(scale)
        self.slope = nn.Parameter(torch.tensor(1.0 / self.scale))

    def forward(self, z: Tensor) -> Tensor:
        return self.activation(self.scale * self.slope * z)

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


class _ODEResNet(nn.Module):
    """Depth, horizon and step of the residual stack ``self.blocks``."""

    blocks: ResidualStack

    @property
    def depth(self) -> int:
        return self.blocks.depth

    @property
    def T(self) -> float:  # noqa: N802 (the ODE's final time)
        return self.blocks.T

    @property
    def h(self) -> float:
        return self.blocks.h


class DenseODEResNet(_ODEResNet):
    """Dense residual network: opening layer, ``depth`` residual blocks of width ``width``, closing layer.

    ``adaptive_slope`` = n > 0 gives every block its own :class:`AdaptiveActivation` σ(n·a_k·z)
    (the opening layer keeps σ, as in the SPQN authors' networks); 0 keeps σ everywhere.
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        out_features: int,
        depth: int,
        T: float = 1.0,
        activation: str = "tanh",
        adaptive_slope: float = 0.0,
    ) -> None:
        super().__init__()
        if adaptive_slope < 0:
            raise ValueError(f"DenseODEResNet: adaptive_slope must be >= 0 (0 = off), got {adaptive_slope!r}")
        self.act = ACTIVATIONS[activation]()

        def branch_activation() -> nn.Module:
            return AdaptiveActivation(ACTIVATIONS[activation](), adaptive_slope) if adaptive_slope else self.act

        self.opening = nn.Linear(in_features, width)
        self.blocks = ResidualStack(
            (nn.Sequential(nn.Linear(width, width), branch_activation()) for _ in range(depth)), T
        )
        self.closing = nn.Linear(width, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.closing(self.blocks(self.act(self.opening(x.flatten(1)))))


class ConvODEResNet(_ODEResNet):
    """Convolutional residual network for signals (``dims=1``, input (C, L)) or images (``dims=2``,
    input (C, H, W)): width-3 convolutions in the residual blocks, global average pooling and a
    linear classifier as the closing layer."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_classes: int,
        depth: int,
        T: float = 1.0,
        activation: str = "relu",
        dims: int = 2,
    ) -> None:
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"ConvODEResNet: dims must be 1 (signals) or 2 (images), got {dims}")
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.pool_dims = tuple(range(2, 2 + dims))
        self.act = ACTIVATIONS[activation]()
        self.opening = conv(in_channels, channels, 3, padding=1)
        self.blocks = ResidualStack(
            (nn.Sequential(conv(channels, channels, 3, padding=1), self.act) for _ in range(depth)), T
        )
        self.closing = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.closing(self.blocks(self.act(self.opening(x))).mean(dim=self.pool_dims))
