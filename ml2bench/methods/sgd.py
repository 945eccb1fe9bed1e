"""Stochastic gradient descent with (Nesterov) momentum: the default deep-learning baseline."""

from __future__ import annotations

from torch import Tensor

from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.methods.base import SmokeRun, register
from ml2bench.methods.torch_optim import ElementwiseMethod


@register
class SGD(ElementwiseMethod):
    name = "sgd"
    description = "SGD with momentum (the update of torch.optim.SGD), mini-batch"
    full_batch = False
    state_attrs = ("buf",)
    # lr 0.1, 16 epochs: test accuracy 0.84-0.86 on mlp, 0.87-0.91 on resnet (the quality reference)
    smoke = (
        SmokeRun("mlp", {"epochs": 16}, {"lr": 0.1, "momentum": 0.9}),
        SmokeRun("resnet", {"epochs": 16}, {"lr": 0.1, "momentum": 0.9}),
    )
    smoke_variants = {
        "nesterov": {"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 1e-3},
        "plain": {"lr": 0.1, "momentum": 0.0},
    }
    params = spec(
        Param("lr", float, 0.05, "learning rate", low=0.0, low_inclusive=False),
        Param("momentum", float, 0.9, "heavy-ball momentum", low=0.0, high=1.0),
        Param("nesterov", bool, False, "Nesterov momentum"),
        Param("weight_decay", float, 0.0, "L2 penalty", low=0.0),
    )

    def __init__(self, hierarchy, x0, hp) -> None:
        if hp["nesterov"] and hp["momentum"] == 0:
            raise ConfigError("method 'sgd': nesterov=true needs momentum > 0")
        super().__init__(hierarchy, x0, hp)
        self.buf: Tensor | None = None

    def update(self, grad: Tensor) -> None:
        """torch.optim.SGD's ``_single_tensor_sgd`` (dampening 0) on the flat vector."""
        hp = self.hp
        if hp["weight_decay"] != 0:
            grad = grad.add(self.x, alpha=hp["weight_decay"])
        if hp["momentum"] != 0:
            if self.buf is None:
                self.buf = grad.detach().clone()
            else:
                self.buf.mul_(hp["momentum"]).add_(grad, alpha=1)
            grad = grad.add(self.buf, alpha=hp["momentum"]) if hp["nesterov"] else self.buf
        self.x.add_(grad, alpha=-hp["lr"])

    def torch_equivalent(self):
        import torch

        hp = self.hp
        return torch.optim.SGD, {
            "lr": hp["lr"],
            "momentum": hp["momentum"],
            "nesterov": hp["nesterov"],
            "weight_decay": hp["weight_decay"],
        }
