"""``resnet``: residual network in ODE form, x_{k+1} = x_k + h σ(K_k x_k + b_k), h = T / depth.

The suite's multilevel-in-depth problem. Because the network is a forward-Euler discretisation of
an ODE on [0, T], halving the number of residual blocks while keeping T (so h doubles) gives a
coarser discretisation of the *same* model; level l has depth L / 2^l and the levels are linked
by :class:`~ml2bench.multilevel.depth.DepthTransfer` (Kopaničáková & Krause, SISC 2022; Haber &
Ruthotto 2017). ``arch="dense"`` flattens the input (vector data, small images); ``arch="conv"``
uses 3×3 convolutions for images (digits, MNIST, CIFAR-10) and width-3 1-D convolutions for
signals (MNIST-1D), as the papers train convolutional ResNets on image data. The residual blocks
dominate the cost, so each coarse level costs about half the level above (measured in
docs/resnet.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.multilevel.depth import KINDS, DepthTransfer, coarsen
from ml2bench.nn import ACTIVATIONS, ConvODEResNet, DenseODEResNet, depth_levels
from ml2bench.problems.base import register
from ml2bench.problems.classification import DATA_PARAMS, ClassificationProblem

ARCHS = ("dense", "conv")


@register
class ODEResNet(ClassificationProblem):
    """Classification with an ODE-form residual network; depth is the multilevel dimension."""

    name = "resnet"
    description = (
        "residual network in ODE form x_{k+1} = x_k + h*act(K_k x_k + b_k), h = T/depth; "
        "levels halve the depth (default data: scikit-learn digits, 8x8)"
    )
    default_epochs = 10.0
    default_batch_size: ClassVar[int | None] = 64
    smoke_params = dict(n_train=256, n_test=128, width=8, depth=4)
    params = spec(
        *DATA_PARAMS,
        Param(
            "arch",
            str,
            "dense",
            "dense (flattened input) or conv (3x3 convolutions on images, width-3 on 1-D signals)",
            choices=ARCHS,
        ),
        Param("width", int, 32, "width of the residual state (dense) or number of channels (conv)", low=1),
        Param("depth", int, 8, "residual blocks on the finest level; levels = 1 + times it can be halved", low=1),
        Param("T", float, 1.0, "final time of the ODE; step h = T / depth", low=0.0, low_inclusive=False),
        Param(
            "activation", str, "tanh", "activation σ (also applied after the opening layer)", choices=tuple(ACTIVATIONS)
        ),
        Param(
            "interpolation",
            str,
            "constant",
            "depth transfer: constant (fine blocks 2k, 2k+1 copy "
            "coarse block k) or linear (interpolation in depth-time)",
            choices=KINDS,
        ),
    )

    def __init__(self, hp: dict[str, Any], *, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        hp = self.params.validate(hp, f"problem {self.name!r}")  # direct construction is validated too
        super().__init__(hp, seed=seed, device=device, dtype=dtype)
        if hp["arch"] == "conv" and len(self.data.input_shape) not in (2, 3):
            raise ConfigError(
                f"problem {self.name!r}: parameter 'arch' = 'conv' needs image data (C, H, W) or signals "
                f"(C, L); data set {hp['dataset']!r} has shape {self.data.input_shape}; allowed: arch 'dense'"
            )

    def level_depth(self, level: int) -> int:
        """Number of residual blocks on ``level`` (depth / 2^level)."""
        if not 0 <= level < self.max_levels():
            raise ConfigError(
                f"problem {self.name!r}: level {level} does not exist; depth={self.hp['depth']} "
                f"allows levels 0..{self.max_levels() - 1}"
            )
        return self.hp["depth"] >> level

    def build_model(self, level: int = 0) -> nn.Module:
        """Depth L/2^level with the same T, so each coarsening doubles the step h: the fine network
        with every other residual branch, ``level`` times (:func:`~ml2bench.multilevel.depth.coarsen`)."""
        hp, data = self.hp, self.data
        self.level_depth(level)  # a level that does not exist is bad input
        if hp["arch"] == "conv":
            shape = data.input_shape
            net = ConvODEResNet(
                shape[0], hp["width"], data.num_classes, hp["depth"], hp["T"], hp["activation"], dims=len(shape) - 1
            )
        else:
            n_in = 1
            for s in data.input_shape:
                n_in *= s
            net = DenseODEResNet(n_in, hp["width"], data.num_classes, hp["depth"], hp["T"], hp["activation"])
        return coarsen(net, level) if level else net

    def max_levels(self) -> int:
        return depth_levels(self.hp["depth"])

    def transfer(self, fine: nn.Module, coarse: nn.Module, level: int) -> DepthTransfer:
        return DepthTransfer(fine, coarse, self.hp["interpolation"])
