"""Adam (Kingma & Ba 2015): the default adaptive baseline, also the usual PINN warm-up."""
from __future__ import annotations

import torch

from ..params import Param, spec
from . import register
from .torch_optim import TorchOptimMethod


@register
class Adam(TorchOptimMethod):
    name = "adam"
    description = "Adam (torch.optim.Adam), mini-batch"
    full_batch = False
    params = spec(
        Param("lr", float, 1e-3, "learning rate", low=0.0, low_inclusive=False),
        Param("beta1", float, 0.9, "first-moment decay", low=0.0, high=1.0),
        Param("beta2", float, 0.999, "second-moment decay", low=0.0, high=1.0),
        Param("eps", float, 1e-8, "denominator regulariser", low=0.0, low_inclusive=False),
        Param("weight_decay", float, 0.0, "L2 penalty", low=0.0),
    )

    def make_optimizer(self, params):
        hp = self.hp
        return torch.optim.Adam(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                                weight_decay=hp["weight_decay"])
