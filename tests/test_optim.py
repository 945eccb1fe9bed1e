"""``ml2bench.optim``: the benchmark's methods as ``torch.optim`` optimizers, one implementation.

For every method and both calling styles, 10 steps through the optimizer on the harness's own
problems (a depth-16 dense ResNet on 3 levels, a Poisson PINN) give iterates and work counters
identical (``torch.equal``, float64, CPU) to ``Method.step`` on the hierarchy the harness builds."""

from __future__ import annotations

import functools

import pytest
import torch

from ml2bench.core.objective import WorkCounter
from ml2bench.methods import METHODS
from ml2bench.nn import ResidualStack
from ml2bench.optim import APTS, LBFGS, RMTR, SPQN, MGOpt, TrustRegion
from ml2bench.problems import PROBLEMS

D = torch.float64
STEPS = 10
PROBLEM_HP = {
    "resnet": {"n_train": 96, "n_test": 16, "width": 6, "depth": 16},
    "pinn_poisson": {"width": 6, "depth": 4, "n_interior": 48, "n_boundary": 12, "n_test": 5},
}
#: optimizer class -> (registered method, hyper-parameters fixed by the class)
OPTIMIZERS = {
    RMTR: ("rmtr", {}),
    MGOpt: ("mgopt", {}),
    TrustRegion: ("tr", {}),
    LBFGS: ("lbfgs", {}),
    SPQN: ("schwarz", {"globalization": "lbfgs"}),
    APTS: ("schwarz", {"globalization": "tr"}),
}
HP = {"local_steps": 3, "coarse_steps": 5}  # short local and coarsest-level solves keep the test quick


def _problem(name):
    return PROBLEMS.get(name)(PROBLEM_HP[name], seed=0, device=torch.device("cpu"), dtype=D)


def _full_batch(problem):
    return next(iter(problem.train_batches(None, torch.Generator())))


def _hp(opt_cls):
    name, fixed = OPTIMIZERS[opt_cls]
    return {k: v for k, v in HP.items() if k in opt_cls.hp_spec().names()}, name, fixed


@functools.cache
def harness_run(problem_name, opt_cls, steps=STEPS):
    """The benchmark's path: Problem.hierarchy + Method.step on the full batch."""
    hp, name, fixed = _hp(opt_cls)
    problem = _problem(problem_name)
    cls = METHODS.get(name)
    hp = cls.params.validate({**hp, **fixed}, name)
    torch.manual_seed(1)
    hierarchy = problem.hierarchy(cls.levels_required(hp), WorkCounter())
    method = cls(hierarchy, hierarchy.fine.initial_x(), hp)
    batch = _full_batch(problem)
    xs = []
    for _ in range(steps):
        method.step(batch)
        xs.append(method.x.clone())
    return xs, hierarchy.counter, [o.cost_ratio for o in hierarchy.objectives]


def optim_run(problem_name, opt_cls, style, steps=STEPS, cost_ratios=None):
    """The library's path: the problem's network and loss in a user loop."""
    hp, _, _ = _hp(opt_cls)
    problem = _problem(problem_name)
    torch.manual_seed(1)
    model = problem.build_model(0).to(D)
    opt = opt_cls(model, loss_fn=problem.loss, n_train=problem.n_train, cost_ratios=cost_ratios, **hp)
    batch = _full_batch(problem)

    def closure(m):
        return problem.loss(m, batch)

    xs = []
    for _ in range(steps):
        if style == "batch":
            opt.step(batch=batch)
        else:
            opt.step(closure)
        xs.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone())
    return xs, opt


@pytest.mark.parametrize("problem_name", list(PROBLEM_HP))
@pytest.mark.parametrize("style", ["batch", "closure"])
@pytest.mark.parametrize("opt_cls", list(OPTIMIZERS), ids=lambda c: c.__name__)
def test_optimizer_steps_equal_the_harness_method(problem_name, style, opt_cls):
    ref_xs, ref_counter, ratios = harness_run(problem_name, opt_cls)
    # the ResNet's level costs are measured by the optimizer itself (on its first batch); the PINN's
    # depend on the mix of interior and boundary points of the probe batch, so they are handed over
    given = ratios if problem_name == "pinn_poisson" else None
    xs, opt = optim_run(problem_name, opt_cls, style, cost_ratios=given)
    assert [o.cost_ratio for o in opt.hierarchy.objectives] == ratios
    for k, (a, b) in enumerate(zip(ref_xs, xs)):
        assert torch.equal(a, b), f"iterate {k + 1} differs"
    assert not torch.equal(ref_xs[-1], ref_xs[0]) or opt.stop_reason  # it trained
    assert opt.work.grad_evals == ref_counter.grad_evals
    assert opt.work.work_units == ref_counter.work_units
    assert opt.work.by_level == ref_counter.by_level


# --- a user's own ResidualStack network is the harness's ODE-ResNet -------------------------------
class UserResNet(torch.nn.Module):
    """DenseODEResNet as a user writes it: their own layer names, the residual part a ResidualStack."""

    def __init__(self, n_in: int, width: int, n_out: int, depth: int, T: float = 1.0) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(n_in, width)
        branches = [torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.Tanh()) for _ in range(depth)]
        self.res = ResidualStack(branches, T=T)
        self.out = torch.nn.Linear(width, n_out)

    def forward(self, x):
        return self.out(self.res(torch.tanh(self.inp(x.flatten(1)))))


def test_a_residual_stack_network_is_the_harness_resnet_on_every_level():
    """Same losses and gradients on every level (at the restricted iterates) and the same RMTR
    iterates and work as the harness's DenseODEResNet hierarchy."""
    problem = _problem("resnet")
    torch.manual_seed(1)
    harness = problem.hierarchy(3, WorkCounter())
    x0 = harness.fine.initial_x()
    user = UserResNet(64, 6, 10, 16).to(D)
    torch.nn.utils.vector_to_parameters(x0, user.parameters())
    opt = RMTR(user, loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=5)
    ours = opt.hierarchy
    batch = _full_batch(problem)
    x = x0 + 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=D)
    for level in range(3):
        f_h, g_h = harness.objectives[level].loss_grad(x, batch)
        f_u, g_u = ours.objectives[level].loss_grad(x, batch)
        assert f_h == f_u and torch.equal(g_h, g_u), f"level {level}"
        if level < 2:
            y = torch.randn(ours.objectives[level + 1].n, generator=torch.Generator().manual_seed(level), dtype=D)
            for op, arg in (("prolongate", y), ("restrict", x), ("restrict_grad", g_h)):
                assert torch.equal(getattr(harness.transfers[level], op)(arg), getattr(ours.transfers[level], op)(arg))
            x = harness.transfers[level].restrict(x)
    # the same RMTR iterates and work as the harness's method on the harness's network
    ref_xs, ref_counter, ratios = harness_run("resnet", RMTR)
    torch.nn.utils.vector_to_parameters(x0, user.parameters())
    opt = RMTR(user, loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=5)
    for k in range(STEPS):
        opt.step(batch=batch)
        assert torch.equal(torch.nn.utils.parameters_to_vector(user.parameters()), ref_xs[k]), f"iterate {k + 1}"
    assert [o.cost_ratio for o in opt.hierarchy.objectives] == ratios
    assert opt.work.grad_evals == ref_counter.grad_evals and opt.work.work_units == ref_counter.work_units
