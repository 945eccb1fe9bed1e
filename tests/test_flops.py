"""The analytic FLOP count (ml2bench.core.cost.flops) equals torch's FlopCounterMode, without its imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ml2bench.core.cost import flops
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.problems import PROBLEMS

CASES = [
    ("mlp", {"width": 16, "depth": 2, "n_train": 128, "n_test": 32}),
    ("resnet", {"width": 8, "depth": 4, "n_train": 128, "n_test": 32}),
    ("resnet", {"arch": "conv", "width": 3, "depth": 2, "n_train": 64, "n_test": 16}),
    ("pinn_poisson", {"width": 8, "depth": 4, "n_interior": 64}),  # loss uses 2nd derivatives only
    ("pinn_burgers", {"width": 8, "depth": 4, "n_interior": 64}),
    ("pinn_allen_cahn", {"width": 8, "depth": 2, "n_interior": 64}),  # periodic input features
    ("pinn_klein_gordon", {"width": 8, "depth": 2, "n_interior": 64}),
]


def _counted_by_torch(problem, model) -> int:
    probe = Objective(model, problem.loss, WorkCounter(), problem.n_train)
    batch = next(iter(problem.train_batches(min(64, problem.n_train), torch.Generator().manual_seed(0))))
    with FlopCounterMode(display=False) as counter:
        probe.loss_grad(probe.initial_x(), batch)
    return counter.get_total_flops()


@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{h.get('arch', '')}" for n, h in CASES])
def test_equals_torch_flop_counter_on_every_level(name, hp):
    cls = PROBLEMS.get(name)
    problem = cls(cls.params.validate(hp, name), seed=0, device=torch.device("cpu"), dtype=torch.float32)
    for level in range(problem.max_levels()):
        torch.manual_seed(0)
        model = problem.build_model(level)
        assert problem._flops(model) == _counted_by_torch(problem, model), (name, level)


@pytest.mark.parametrize("dims", [1, 2])
def test_conv_resnet_on_signals_and_images_equals_torch_flop_counter(dims):
    from ml2bench.nn import ConvODEResNet
    from ml2bench.problems.classification import TensorBatch

    torch.manual_seed(0)
    model = ConvODEResNet(2, 3, 5, depth=4, dims=dims)
    data = torch.randn((6, 2, 11) if dims == 1 else (6, 2, 7, 5))
    labels = torch.arange(6) % 5

    def loss_fn(m, batch):
        return torch.nn.functional.cross_entropy(m(batch.x), batch.y)

    batch = TensorBatch(data, labels, 6)
    probe = Objective(model, loss_fn, WorkCounter(), n_train=6)
    with FlopCounterMode(display=False) as counter:
        probe.loss_grad(probe.initial_x(), batch)
    assert flops.loss_flops(model, loss_fn, batch) == counter.get_total_flops() > 0


def test_linear_formula_by_hand():
    """A classifier's first layer has no input gradient: 2 passes; the second layer 3."""
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    obj = Objective(model, lambda f, b: f(b).square().sum(), WorkCounter(), 4)
    data = torch.randn(4, 5)
    total = flops.forward_backward_flops(model, lambda xr: obj.loss_fn(obj.fmodel(xr), data), obj.initial_x())
    assert total == 2 * 4 * 5 * 7 * 2 + 2 * 4 * 7 * 3 * 3


def test_unsupported_product_raises():
    model = torch.nn.Linear(3, 3)
    obj = Objective(model, lambda f, b: torch.bmm(f(b)[None], f(b)[None].transpose(1, 2)).sum(), WorkCounter(), 4)
    with pytest.raises(NotImplementedError, match="BmmBackward0"):
        flops.forward_backward_flops(model, lambda xr: obj.loss_fn(obj.fmodel(xr), torch.randn(4, 3)), obj.initial_x())


def test_hierarchy_does_not_import_the_compiler_stack():
    code = (
        "import sys, torch\n"
        "from ml2bench.problems import PROBLEMS\n"
        "from ml2bench.core.objective import WorkCounter\n"
        "p = PROBLEMS.get('pinn_burgers')({'width': 8, 'depth': 4, 'n_interior': 64}, seed=0, "
        "device=torch.device('cpu'))\n"
        "h = p.hierarchy(3, WorkCounter())\n"
        "assert 0 < h.objectives[2].cost_ratio < h.objectives[1].cost_ratio < 1\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
