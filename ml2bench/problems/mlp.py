"""``mlp``: a fully connected classifier, the smallest problem of the suite (single level)."""

from __future__ import annotations

from torch import nn

from ml2bench.core.params import Param, spec
from ml2bench.problems.base import register
from ml2bench.problems.classification import DATA_PARAMS, ClassificationProblem

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


@register
class MLP(ClassificationProblem):
    name = "mlp"
    description = "fully connected classifier (default data: scikit-learn digits, 8x8)"
    default_epochs = 20.0
    smoke_params = dict(n_train=256, n_test=128, width=32)
    params = spec(
        *DATA_PARAMS,
        Param("width", int, 64, "hidden units per layer", low=1),
        Param("depth", int, 2, "hidden layers", low=1),
        Param("activation", str, "relu", "hidden activation", choices=tuple(ACTIVATIONS)),
    )

    def build_model(self, level: int = 0) -> nn.Module:
        hp, data = self.hp, self.data
        n_in = 1
        for s in data.input_shape:
            n_in *= s
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(hp["depth"]):
            layers += [nn.Linear(n_in if i == 0 else hp["width"], hp["width"]), ACTIVATIONS[hp["activation"]]()]
        layers.append(nn.Linear(hp["width"], data.num_classes))
        return nn.Sequential(*layers)
