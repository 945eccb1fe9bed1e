"""Network architectures whose structure the multilevel methods exploit."""

from ml2bench.nn.odenet import ACTIVATIONS, ConvODEResNet, DenseODEResNet, depth_levels
from ml2bench.nn.stack import ResidualStack, residual_stacks

__all__ = ["ACTIVATIONS", "ConvODEResNet", "DenseODEResNet", "ResidualStack", "depth_levels", "residual_stacks"]
