"""Network architectures whose structure the multilevel methods exploit."""

from ml2bench.nn.odenet import ACTIVATIONS, ConvODEResNet, DenseODEResNet, depth_levels

__all__ = ["ACTIVATIONS", "ConvODEResNet", "DenseODEResNet", "depth_levels"]
