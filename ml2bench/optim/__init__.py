"""ml2bench's methods as PyTorch optimizers for any model and training loop.

``RMTR``, ``MGOpt``, ``TrustRegion``, ``LBFGS``, ``SPQN`` and ``APTS`` are ``torch.optim.Optimizer``
subclasses that run the benchmark's own implementations (:mod:`ml2bench.methods`) on a user's
model, with the benchmark's work counter (``opt.work``) and stop semantics (``opt.converged``,
``opt.stop_reason``); see :mod:`ml2bench.optim.base` and ``docs/optim.md``.
"""

from ml2bench.core.params import UnsupportedModelError
from ml2bench.optim.base import MethodOptimizer
from ml2bench.optim.optimizers import APTS, LBFGS, RMTR, SPQN, MGOpt, TrustRegion

__all__ = ["APTS", "LBFGS", "RMTR", "SPQN", "MGOpt", "MethodOptimizer", "TrustRegion", "UnsupportedModelError"]
