"""Adam (Kingma & Ba 2015): the default adaptive baseline, also the usual PINN warm-up."""

from __future__ import annotations

import torch
from torch import Tensor

from ml2bench.core.params import Param, spec
from ml2bench.methods.base import SmokeRun, register
from ml2bench.methods.torch_optim import ElementwiseMethod


@register
class Adam(ElementwiseMethod):
    name = "adam"
    description = "Adam (the update of torch.optim.Adam), mini-batch"
    full_batch = False
    state_attrs = ("steps", "exp_avg", "exp_avg_sq")
    smoke = (
        SmokeRun("mlp", {"epochs": 8}, {"lr": 3e-2}),
        SmokeRun("resnet", {"epochs": 8}, {"lr": 3e-2}),
        SmokeRun("pinn_poisson", {"iterations": 60}, {"lr": 3e-2}),
    )
    smoke_variants = {"weight_decay": {"lr": 0.003, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-2}}
    params = spec(
        Param("lr", float, 1e-3, "learning rate", low=0.0, low_inclusive=False),
        Param("beta1", float, 0.9, "first-moment decay", low=0.0, high=1.0),
        Param("beta2", float, 0.999, "second-moment decay", low=0.0, high=1.0),
        Param("eps", float, 1e-8, "denominator regulariser", low=0.0, low_inclusive=False),
        Param("weight_decay", float, 0.0, "L2 penalty", low=0.0),
    )

    def __init__(self, hierarchy, x0, hp) -> None:
        super().__init__(hierarchy, x0, hp)
        self.steps = 0
        self.exp_avg = torch.zeros_like(self.x)
        self.exp_avg_sq = torch.zeros_like(self.x)

    def update(self, grad: Tensor) -> None:
        """torch.optim.Adam's ``_single_tensor_adam`` (not amsgrad, not capturable) on the flat vector."""
        hp = self.hp
        beta1, beta2 = hp["beta1"], hp["beta2"]
        self.steps += 1
        if hp["weight_decay"] != 0:
            grad = grad.add(self.x, alpha=hp["weight_decay"])
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = float(self.steps)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = hp["lr"] / bias_correction1
        denom = (self.exp_avg_sq.sqrt() / bias_correction2**0.5).add_(hp["eps"])
        self.x.addcdiv_(self.exp_avg, denom, value=-step_size)

    def torch_equivalent(self):
        hp = self.hp
        return torch.optim.Adam, {
            "lr": hp["lr"],
            "betas": (hp["beta1"], hp["beta2"]),
            "eps": hp["eps"],
            "weight_decay": hp["weight_decay"],
        }
