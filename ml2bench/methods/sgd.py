"""Stochastic gradient descent with (Nesterov) momentum: the default deep-learning baseline."""
from __future__ import annotations

import torch

from ..params import Param, spec
from . import register
from .torch_optim import TorchOptimMethod


@register
class SGD(TorchOptimMethod):
    name = "sgd"
    description = "SGD with momentum (torch.optim.SGD), mini-batch"
    full_batch = False
    params = spec(
        Param("lr", float, 0.05, "learning rate", low=0.0, low_inclusive=False),
        Param("momentum", float, 0.9, "heavy-ball momentum", low=0.0, high=1.0),
        Param("nesterov", bool, False, "Nesterov momentum"),
        Param("weight_decay", float, 0.0, "L2 penalty", low=0.0),
    )

    def make_optimizer(self, params):
        hp = self.hp
        if hp["nesterov"] and hp["momentum"] == 0:
            from ..params import ConfigError
            raise ConfigError("method 'sgd': nesterov=true needs momentum > 0")
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], nesterov=hp["nesterov"],
                               weight_decay=hp["weight_decay"])
