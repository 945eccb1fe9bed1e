"""Flat parameter/gradient buffers, static-buffer (CUDA graph) evaluations, flat SGD/Adam."""

from __future__ import annotations

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.core.params import ConfigError
from ml2bench.core.runner import run
from ml2bench.problems import PROBLEMS

SIZES = {
    "mlp": {"width": 16, "n_train": 128, "n_test": 32},
    "resnet": {"width": 8, "depth": 4, "n_train": 128, "n_test": 32},
    "pinn_burgers": {"width": 8, "depth": 4, "n_interior": 64, "n_initial": 16, "n_boundary": 16},
    "pinn_allen_cahn": {"width": 8, "depth": 2, "n_interior": 64, "n_initial": 16},
}


def _problem(name, device="cpu", dtype=torch.float32):
    cls = PROBLEMS.get(name)
    return cls(cls.params.validate(SIZES[name], name), seed=0, device=torch.device(device), dtype=dtype)


def _reference_loss_grad(objective, x, batch):
    """The old path: parameters as views of a leaf x, gradient by autograd.grad w.r.t. x."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        value = objective.loss_fn(objective.fmodel(xr), batch)
        (grad,) = torch.autograd.grad(value, xr)
    return float(value.detach()), grad


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("mode", ["off", "static"])
def test_flat_buffer_gradient_equals_autograd_wrt_x(name, mode):
    problem = _problem(name)
    torch.manual_seed(0)
    obj = problem.hierarchy(1, WorkCounter()).fine
    obj.graphs = mode
    x = obj.initial_x()
    gen = torch.Generator().manual_seed(1)
    batches = list(problem.train_batches(32 if not name.startswith("pinn") else None, gen))[:3]
    for k, batch in enumerate(batches * 2):  # the same shapes again: replays a cached evaluation
        xk = x + 0.01 * k
        value, grad = obj.loss_grad(xk, batch)
        ref_value, ref_grad = _reference_loss_grad(obj, xk, batch)
        assert value == ref_value
        assert torch.equal(grad, ref_grad)
    if mode == "static":
        assert len(obj._static) >= 1
    # the module's parameters are views of the flat buffer, their gradients of the flat gradient
    assert obj._params[0].data_ptr() == obj._flat.data_ptr()
    assert obj._params[0].grad.data_ptr() == obj._flat_grad.data_ptr()


def _reference_loss_hvp(objective, x, v, batch):
    """Independent of the flat buffer: loss and double backward with x as the autograd leaf."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        value = objective.loss_fn(objective.fmodel(xr), batch)
        (grad,) = torch.autograd.grad(value, xr, create_graph=True)
        (hv,) = torch.autograd.grad(grad, xr, grad_outputs=v)
    return float(value.detach()), hv.detach()


def _loss_hvp_sequence(name, mode, device="cpu"):
    """loss, hvp and loss_grad at a few points and batches (shapes repeat: cached evaluations
    replay) in graph mode ``mode``."""
    problem = _problem(name, device)
    torch.manual_seed(0)
    obj = problem.hierarchy(1, WorkCounter()).fine
    obj.graphs = mode
    x = obj.initial_x()
    batches = list(
        problem.train_batches(32 if not name.startswith("pinn") else None, torch.Generator().manual_seed(1))
    )[:2]
    v = torch.randn(obj.n, generator=torch.Generator().manual_seed(2)).to(x)
    out = [
        (obj.loss(x + 0.01 * k, batch), obj.hvp(x + 0.01 * k, v, batch), obj.loss_grad(x + 0.01 * k, batch)[0])
        for k, batch in enumerate(batches * 2)
    ]
    reference = [_reference_loss_hvp(obj, x + 0.01 * k, v, batch) for k, batch in enumerate(batches * 2)]
    return out, obj, reference


@pytest.mark.parametrize("name", list(SIZES))
def test_static_loss_and_hvp_equal_the_eager_path(name):
    """The loss and Hessian-vector product (double backward through the module's flat-buffer
    parameters), eager and on static buffers (what a CUDA graph replays), equal a functional call
    with x as the autograd leaf bit for bit on CPU, batch after batch."""
    eager, _, reference = _loss_hvp_sequence(name, "off")
    static, obj, _ = _loss_hvp_sequence(name, "static")
    kinds = {key[0] for key in obj._static}
    assert kinds == {"loss", "hvp", "loss_grad"}, kinds
    for (f_e, hv_e, fg_e), (f_s, hv_s, fg_s), (f_r, hv_r) in zip(eager, static, reference):
        assert f_e == f_s == f_r and fg_e == fg_s
        assert torch.equal(hv_e, hv_r) and torch.equal(hv_s, hv_r)  # later evaluations overwrote no product


def test_static_cache_keeps_the_most_recent_shapes_only():
    from ml2bench.core.cost.graphs import MAX_CACHED

    problem = _problem("mlp")
    torch.manual_seed(0)
    obj = problem.hierarchy(1, WorkCounter()).fine
    obj.graphs = "static"
    x = obj.initial_x()
    full = next(iter(problem.train_batches(None, torch.Generator())))
    sizes = list(range(2, 2 + MAX_CACHED + 3))
    for size in sizes:  # one new batch shape each
        batch = type(full)(**{**vars(full), "x": full.x[:size], "y": full.y[:size], "size": size})
        obj.loss_grad(x, batch)
    assert len(obj._static) == MAX_CACHED
    kept = sorted(ev.batch.size for ev in obj._static.values())  # batch sizes still cached
    assert kept == sizes[-MAX_CACHED:], kept


def test_another_objective_on_the_same_model_does_not_break_the_first():
    problem = _problem("mlp")
    torch.manual_seed(0)
    obj = problem.hierarchy(1, WorkCounter()).fine
    batch = (
        problem.full_batch()
        if hasattr(problem, "full_batch")
        else next(iter(problem.train_batches(None, torch.Generator())))
    )
    x = obj.initial_x()
    first = obj.loss_grad(x, batch)
    other = Objective(obj.model, obj.loss_fn, WorkCounter(), obj.n_train)
    other.loss_grad(x + 1.0, batch)  # rebinds the module's parameters to its own buffer
    again = obj.loss_grad(x, batch)
    assert first[0] == again[0] and torch.equal(first[1], again[1])


def test_returned_gradient_is_not_overwritten_by_the_next_evaluation():
    problem = _problem("mlp")
    torch.manual_seed(0)
    obj = problem.hierarchy(1, WorkCounter()).fine
    batch = next(iter(problem.train_batches(None, torch.Generator())))
    x = obj.initial_x()
    _, g1 = obj.loss_grad(x, batch)
    kept = g1.clone()
    obj.loss_grad(x + 1.0, batch)
    assert torch.equal(g1, kept)


def test_cuda_graphs_option():
    base = {"problem": "mlp", "method": "sgd", "problem_params": SIZES["mlp"], "budget": {"iterations": 2}}
    assert RunConfig.from_dict(base).cuda_graphs is None
    assert RunConfig.from_dict({**base, "cuda_graphs": False}).cuda_graphs is False
    assert RunConfig.from_dict(base).hash() == RunConfig.from_dict({**base, "cuda_graphs": None}).hash()
    with pytest.raises(ConfigError, match="cuda_graphs=true needs device cuda"):
        run(RunConfig.from_dict({**base, "cuda_graphs": True}))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["adam", "lbfgs"])
def test_cuda_graph_iterates_equal_eager(method):
    """Burgers PINN on the GPU: replayed CUDA graphs vs eager, same iterates to float32 round-off."""
    results = {}
    for graphs in (False, True):
        cfg = RunConfig.from_dict(
            {
                "problem": "pinn_burgers",
                "method": method,
                "device": "cuda",
                "cuda_graphs": graphs,
                "problem_params": SIZES["pinn_burgers"],
                "budget": {"iterations": 20},
                "eval_interval": 1e9,
            }
        )
        results[graphs] = run(cfg).history
    eager, graphed = results[False], results[True]
    assert list(eager["grad_evals"]) == list(graphed["grad_evals"])
    torch.testing.assert_close(
        torch.tensor(graphed["train_loss"].to_numpy()),
        torch.tensor(eager["train_loss"].to_numpy()),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["mlp", "pinn_burgers"])
def test_cuda_graph_loss_and_hvp_equal_eager(name):
    """Captured loss and Hessian-vector product (double backward; for a PINN a third derivative)
    replayed on new points and batches equal the eager ones to float32 round-off."""
    eager, _, _ = _loss_hvp_sequence(name, "off", "cuda")
    graphed, obj, _ = _loss_hvp_sequence(name, "cuda", "cuda")
    assert all(ev.graph is not None for ev in obj._static.values())
    for (f_e, hv_e, fg_e), (f_g, hv_g, fg_g) in zip(eager, graphed):
        assert abs(f_e - f_g) <= 1e-5 * max(1.0, abs(f_e)) and abs(fg_e - fg_g) <= 1e-5 * max(1.0, abs(fg_e))
        torch.testing.assert_close(hv_g, hv_e, rtol=1e-4, atol=1e-5)
