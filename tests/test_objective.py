"""``Objective.hvp``: Hessian-vector products by double backward, against finite differences of the
gradient, against the explicit matrices of the grid problems, and their work accounting."""

from dataclasses import dataclass

import torch
from torch import nn

from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.multilevel.coarse import ShiftedObjective
from ml2bench.problems.grid.testproblems import GAMMA, grid_hierarchy, laplacian_2d

D = torch.float64


@dataclass
class XY:
    x: torch.Tensor
    y: torch.Tensor
    size: int


def test_hvp_matches_finite_differences_of_the_gradient_on_a_network():
    torch.manual_seed(0)
    counter = WorkCounter()
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    obj = Objective(net, lambda f, b: torch.nn.functional.cross_entropy(f(b.x), b.y), counter, n_train=20)
    batch = XY(torch.randn(10, 3, dtype=D), torch.randint(0, 2, (10,)), 10)
    x = obj.initial_x()
    v = torch.randn(obj.n, dtype=D)
    obj.measure_hvp_cost(batch)  # its cost, measured beforehand (uncharged), as the runner does
    hv = obj.hvp(x, v, batch)
    assert counter.grad_evals == 0.5  # one evaluation on half the training set
    eps = 1e-5
    fd = (obj.loss_grad(x + eps * v, batch)[1] - obj.loss_grad(x - eps * v, batch)[1]) / (2 * eps)
    assert torch.allclose(hv, fd, rtol=1e-6, atol=1e-9), float((hv - fd).abs().max())
    # symmetric: uᵀ(Hv) = vᵀ(Hu)
    u = torch.randn(obj.n, dtype=D)
    assert abs(float(u @ hv) - float(v @ obj.hvp(x, u, batch))) < 1e-10
    # a linear loss has a zero Hessian (the gradient does not depend on x)
    lin = Objective(nn.Linear(3, 1, bias=False).double(), lambda f, b: f(b.x).sum(), counter, n_train=10)
    lin.measure_hvp_cost(batch)
    assert torch.equal(lin.hvp(lin.initial_x(), torch.ones(3, dtype=D), batch), torch.zeros(3, dtype=D))


def test_hvp_reproduces_the_poisson_matrices():
    H1, batch = grid_hierarchy("poisson", 15, 1, levels=1)
    n, h = 15, 1 / 16
    A1 = (
        2 * torch.eye(n, dtype=D)
        - torch.diag(torch.ones(n - 1, dtype=D), 1)
        - torch.diag(torch.ones(n - 1, dtype=D), -1)
    ) / h
    x = torch.randn(n, dtype=D)
    cols = torch.stack([H1.fine.hvp(x, e, batch) for e in torch.eye(n, dtype=D)], dim=1)
    assert torch.allclose(cols, A1, atol=1e-12)
    H2, batch = grid_hierarchy("poisson", 7, 2, levels=2)
    H2.measure_hvp_costs(batch)  # uncharged, before: each level's product is then charged once
    A2 = torch.tensor(laplacian_2d(7).toarray(), dtype=D)
    v = torch.randn(49, dtype=D)
    assert torch.allclose(H2.fine.hvp(torch.zeros(49, dtype=D), v, batch), A2 @ v, atol=1e-12)
    # the coarse model h_H = f_H + ⟨shift, ·⟩ has the coarse Hessian
    shifted = ShiftedObjective(H2.objectives[1], torch.randn(9, dtype=D))
    A2c = torch.tensor(laplacian_2d(3).toarray(), dtype=D)
    w = torch.randn(9, dtype=D)
    assert torch.allclose(shifted.hvp(torch.randn(9, dtype=D), w, batch), A2c @ w, atol=1e-12)
    assert H2.counter.by_level == {0: 1.0, 1: 1.0}


def test_hvp_on_the_nonlinear_fas_problem():
    """Hessian of ½|∇u|² + h² Σ γ (u − 1) eᵘ − f u is the 5-point stencil + diag(h² γ (1 + u) eᵘ)."""
    H, batch = grid_hierarchy("fas", 7, 2, levels=1)
    u = 0.3 * torch.randn(49, dtype=D)
    v = torch.randn(49, dtype=D)
    h = 1 / 8
    A = torch.tensor(laplacian_2d(7).toarray(), dtype=D) + torch.diag(h * h * GAMMA * (1 + u) * torch.exp(u))
    assert torch.allclose(H.fine.hvp(u, v, batch), A @ v, atol=1e-12)


def _cross_entropy(f, b):  # module level: picklable
    return torch.nn.functional.cross_entropy(f(b.x), b.y)


def test_a_copied_objective_that_has_evaluated_still_evaluates_correctly():
    """Pickle (Schwarz workers) and deepcopy do not keep the module's parameters as views of the
    flat buffer: a copy must rebind, not load x into a buffer the module no longer reads (before
    the fix: 'autograd replaced a parameter's .grad' on the copy's first loss_grad)."""
    import copy
    import pickle

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    obj = Objective(net, _cross_entropy, WorkCounter(), n_train=10)
    batch = XY(torch.randn(10, 3, dtype=D), torch.randint(0, 2, (10,)), 10)
    x = obj.initial_x()
    obj.loss_grad(x, batch)  # binds the flat buffers
    x2 = x + 0.1 * torch.randn_like(x)
    f, g = obj.loss_grad(x2, batch)
    for clone in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
        fc, gc = clone.loss_grad(x2, batch)
        assert fc == f and torch.equal(gc, g)


class Tied(nn.Module):
    """``b.weight = a.weight``: one parameter used by two layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight
        self.c = nn.Linear(4, 3)

    def forward(self, x):
        return self.c(torch.tanh(self.b(torch.tanh(self.a(x)))))


def test_tied_weights_stay_tied_and_give_functional_calls_f_and_gradient():
    """The flat vector holds a tied parameter once (as named_parameters lists it); f and ∇f at a new
    x are those of torch.func.functional_call(..., tie_weights=True), before and after the binding,
    and training keeps a.weight is b.weight (before binding in place: the tie was cut, f off by 6 %)."""
    torch.manual_seed(0)
    model = Tied().double()
    obj = Objective(model, _cross_entropy, WorkCounter(), n_train=10)
    batch = XY(torch.randn(10, 4, dtype=D), torch.randint(0, 3, (10,)), 10)
    assert obj.names == ["a.weight", "b.bias", "c.weight", "c.bias"]
    x0 = obj.initial_x()
    for step in range(3):
        x = x0 + 0.3 * (step + 1) * torch.randn(obj.n, generator=torch.Generator().manual_seed(step), dtype=D)
        leaf = x.clone().requires_grad_(True)
        ref = _cross_entropy(lambda inp: torch.func.functional_call(model, obj.unflatten(leaf), (inp,)), batch)
        (g_ref,) = torch.autograd.grad(ref, leaf)
        f, g = obj.loss_grad(x, batch)
        assert abs(f - ref.item()) <= 1e-14 * abs(ref.item()) and torch.allclose(g, g_ref, rtol=1e-12, atol=1e-14)
        assert model.a.weight is model.b.weight and model.a.weight.data_ptr() == obj._flat.data_ptr()
        assert float(obj.loss(x, batch)) == f and float(_cross_entropy(obj.fmodel(x), batch)) == f


def test_parameters_keep_their_identity_and_an_earlier_optimizer_still_trains_them():
    """A torch.optim.SGD created before the objective moves the tensors the objective evaluates
    (before binding in place: it held the replaced Parameters and the loss never moved)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    ids = [id(p) for p in net.parameters()]
    sgd = torch.optim.SGD(net.parameters(), lr=0.5)
    obj = Objective(net, _cross_entropy, WorkCounter(), n_train=10)
    batch = XY(torch.randn(10, 3, dtype=D), torch.randint(0, 2, (10,)), 10)
    f0, _ = obj.loss_grad(obj.initial_x(), batch)  # binds
    assert [id(p) for p in net.parameters()] == ids
    for _ in range(5):
        sgd.zero_grad()  # drops the .grad views; the next evaluation re-attaches them
        _cross_entropy(net, batch).backward()
        sgd.step()
    x = obj.initial_x()
    assert torch.equal(x, torch.nn.utils.parameters_to_vector(net.parameters()))
    f1, g1 = obj.loss_grad(x, batch)
    assert f1 < f0
    assert all(p.grad.data_ptr() == g.data_ptr() for p, g in zip(net.parameters(), obj._grads))
