"""``ml2bench.optim`` as a PyTorch user meets it: checkpoints, torch's closures, hierarchies from the
user's model, and the models it refuses before the first evaluation."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from ml2bench.core.objective import WorkCounter
from ml2bench.core.params import ConfigError, UnsupportedModelError
from ml2bench.methods import METHODS
from ml2bench.nn import DenseODEResNet, ResidualStack
from ml2bench.numerics.sampling import BatchSampler
from ml2bench.optim import APTS, LBFGS, RMTR, SPQN, MGOpt, TrustRegion
from ml2bench.problems import PROBLEMS
from ml2bench.problems.grid.testproblems import grid_hierarchy

D = torch.float64
ALL = [RMTR, MGOpt, TrustRegion, LBFGS, SPQN, APTS]
FAST = {"coarse_steps": 3, "local_steps": 3}  # hyper-parameters that keep steps short, where the method has them


def fast(cls, **hp):
    return {**{k: v for k, v in FAST.items() if k in cls.hp_spec().names()}, **hp}


def vec(model):
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def small_problem():
    return PROBLEMS.get("resnet")(
        {"n_train": 64, "n_test": 16, "width": 4, "depth": 8}, seed=0, device=torch.device("cpu"), dtype=D
    )


def net(seed=1):
    torch.manual_seed(seed)
    return DenseODEResNet(64, 4, 10, 8).to(D)


@pytest.fixture(scope="module")
def data():
    problem = small_problem()
    return problem, next(iter(problem.train_batches(None, torch.Generator())))


# --- checkpoints ----------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["batch", "closure"])
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_k_steps_save_load_m_steps_equals_k_plus_m_steps(data, cls, style):
    """Saved with torch.save, loaded into a new optimizer on a freshly initialised network: the
    iterates and work of k + m uninterrupted steps. A closure hides its data, so after a load the
    first step evaluates f, ∇f at the iterate once more (one evaluation); a batch is recognised by
    its content."""
    problem, batch = data

    def closure(m):
        return problem.loss(m, batch)

    def steps(opt, n):
        for _ in range(n):
            opt.step(batch=batch) if style == "batch" else opt.step(closure)

    def make(model):
        return cls(model, loss_fn=problem.loss, n_train=problem.n_train, **fast(cls))

    ref_model = net()
    ref = make(ref_model)
    steps(ref, 5)
    model = net()
    opt = make(model)
    assert opt.state, "state filled at construction"
    steps(opt, 2)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    model2 = net(seed=7)  # other initial values: the optimizer's state carries the iterate
    opt2 = make(model2)
    opt2.load_state_dict(torch.load(buf))
    assert torch.equal(vec(model2), vec(model))
    steps(opt2, 3)
    assert torch.equal(vec(model2), vec(ref_model))
    extra = 0.0 if style == "batch" else 1.0
    assert opt2.work.grad_evals == ref.work.grad_evals + extra
    assert opt2.work.by_level[0] == ref.work.by_level[0] + extra


def test_torch_distributed_checkpoint_round_trip(data, monkeypatch):
    """torch.distributed.checkpoint's optimizer state dict (keyed by parameter names) saves and
    loads the method's state; the state is there from construction, so it never calls step(None)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    problem, batch = data
    ref_model, model = net(), net()
    ref = RMTR(ref_model, loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=3)
    opt = RMTR(model, loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=3)
    for _ in range(2):
        ref.step(batch=batch)
        opt.step(batch=batch)
    model2 = net(seed=5)
    opt2 = RMTR(model2, loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=3)
    monkeypatch.setattr(RMTR, "step", lambda *a, **k: pytest.fail("step called by the checkpointer"))
    osd = get_optimizer_state_dict(model, opt)
    assert set(osd["state"]) == {n for n, _ in model.named_parameters()}
    set_optimizer_state_dict(model2, opt2, osd)
    monkeypatch.undo()
    for _ in range(2):
        ref.step(batch=batch)
        opt2.step(batch=batch)
    assert torch.equal(vec(model2), vec(ref_model)) and opt2.work.grad_evals == ref.work.grad_evals


def test_load_refuses_other_hyper_parameters(data):
    problem, _ = data
    saved = TrustRegion(net(), radius0=0.5).state_dict()
    with pytest.raises(ConfigError, match=r"radius0=0.5 \(here 1.0\)"):
        TrustRegion(net()).load_state_dict(saved)


# --- calling styles ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [TrustRegion, LBFGS, SPQN, APTS], ids=lambda c: c.__name__)
def test_torch_zero_argument_closure_and_a_parameter_list(data, cls):
    """torch's closure (zero_grad, forward, backward, return the loss) on ``model.parameters()``,
    as Lightning and PINA construct optimizers, gives the iterates of closure(model)."""
    problem, batch = data
    ref_model, model = net(), net()
    # a parameter list has no layer names (each tensor is a "layer"): split the parameters at random
    hp = fast(cls, decomposition="random") if cls in (SPQN, APTS) else fast(cls)
    ref = cls(ref_model, **hp)
    opt = cls(model.parameters(), **hp)

    def torch_closure():
        opt.zero_grad()  # drops the .grad views: the objective re-attaches them
        loss = problem.loss(model, batch)
        loss.backward()
        return loss

    def closure(m):
        return problem.loss(m, batch)

    for _ in range(3):
        ref.step(closure)
        opt.step(torch_closure)
        assert torch.equal(vec(model), vec(ref_model))
    assert opt.work.grad_evals == ref.work.grad_evals
    grads = [torch.cat([p.grad.reshape(-1) for p in m.parameters()]) for m in (model, ref_model)]
    assert torch.equal(*grads)  # .grad holds ∇f at the iterate after a step


def test_a_closure_that_ignores_its_model_is_detected(data):
    problem, batch = data
    model = net()
    opt = RMTR(model, coarse_steps=3)
    with pytest.raises(UnsupportedModelError, match="did not use the model it was given"):
        opt.step(lambda m: problem.loss(model, batch))  # evaluates the captured fine model


def test_parameters_changed_between_steps_are_the_new_iterate(data):
    """A model reset from outside (``model.load_state_dict``) is where the next step starts: it
    evaluates f, ∇f there again and reports that point's loss."""
    problem, batch = data
    model = net()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = TrustRegion(model)

    def closure(m):
        return problem.loss(m, batch)

    f0 = float(opt.step(closure))
    assert not torch.equal(vec(model), vec(net()))
    before = opt.work.grad_evals
    model.load_state_dict(start)
    assert float(opt.step(closure)) == f0
    assert opt.work.grad_evals == before + 2  # f, ∇f at the reset point, then the trial point


def test_user_facing_errors(data):
    problem, batch = data
    with pytest.raises(ConfigError, match=r"RMTR: unknown parameter\(s\) 'lr'; allowed: levels, "):
        RMTR(net(), lr=0.1)
    with pytest.raises(ConfigError, match=r"RMTR: parameter 'radius0' = -1.0 is out of range; allowed: float > 0.0"):
        RMTR(net(), radius0=-1.0)
    with pytest.raises(ConfigError, match="unknown parameter\\(s\\) 'globalization'"):
        SPQN(net(), globalization="tr")  # SPQN is the L-BFGS globalisation
    opt = TrustRegion(net())
    with pytest.raises(ValueError, match="give a closure"):
        opt.step()
    with pytest.raises(ValueError, match="needs loss_fn= and n_train="):
        opt.step(batch=batch)
    with pytest.raises(UnsupportedModelError, match="one parameter group"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(1))]})
    assert opt.work.grad_evals == 0
    assert "radius0 = 1.0: initial trust radius" in TrustRegion.__doc__  # generated from the Param specs
    opt.param_groups[0]["radius0"] = 2.0  # e.g. a scheduler: the method would not see it
    with pytest.raises(ConfigError, match="param_groups changed {'radius0': 2.0}"):
        opt.step(lambda m: problem.loss(m, batch))


def test_work_and_stop_semantics(data):
    problem, batch = data
    opt = TrustRegion(net(), grad_tol=1e3)  # any gradient is below this
    opt.step(lambda m: problem.loss(m, batch))
    assert opt.converged and opt.stop_reason == "grad_tol" and opt.work.grad_evals == 1.0
    opt = RMTR(net(), loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=3)
    opt.step(batch=batch)
    assert not opt.converged and opt.stop_reason == ""
    assert set(opt.work.by_level) == {0, 1, 2} and opt.work.work_units < opt.work.grad_evals  # coarse work is cheaper


# --- hierarchies ------------------------------------------------------------------------------------
def test_coarse_model_factory_and_static_buffers_give_the_same_iterates(data):
    """``coarse_models=`` (the harness's Problem.build_model) and ``graphs='static'`` (the CPU path of
    the CUDA-graph code) change nothing against the coarsened stacks, eager."""
    problem, batch = data
    runs = []
    for kw in ({}, {"coarse_models": problem.build_model}, {"graphs": "static"}):
        model = net()
        opt = MGOpt(model, loss_fn=problem.loss, n_train=problem.n_train, coarse_steps=3, **kw)
        for _ in range(3):
            opt.step(batch=batch)
        runs.append((vec(model), opt.work.grad_evals))
    assert all(torch.equal(x, runs[0][0]) and w == runs[0][1] for x, w in runs)


def test_user_hierarchy_is_checked_and_diagnosed():
    """A ready Hierarchy (here the grid problems' own): transfers checked for R_x P = I before any
    evaluation; curvature_scaling (uncharged) tells a variational R_g from one four times too small."""
    H, batch = grid_hierarchy("poisson", 15, 2, levels=3)
    opt = RMTR(hierarchy=H)
    assert [round(d["ratio"], 1) for d in opt.curvature_scaling(batch=batch)] == [0.9, 0.9]
    H4, _ = grid_hierarchy("poisson", 15, 2, levels=3, grad_restriction="full_weighting")
    assert all(d["ratio"] < 0.3 for d in RMTR(hierarchy=H4).curvature_scaling(batch=batch))
    assert opt.work.grad_evals == 0
    opt.step(batch=batch)
    assert opt.work.grad_evals > 0
    H.transfers[0].restrict = lambda x: 2 * x[: H.objectives[1].n]  # not a left inverse of P
    with pytest.raises(UnsupportedModelError, match="R_x P != I"):
        RMTR(hierarchy=H)


def test_batch_growth_draws_from_the_given_sampler(data):
    """RMTR's hybrid mode through the optimizer: ``step()`` draws its own growing batches and gives
    the harness method's iterates with the same sampler."""
    problem, _ = data
    hp = {"batch_growth": "norm_test", "initial_batch": 16, "coarse_steps": 3}

    def sampler():
        return BatchSampler(problem.train_batches, problem.n_train, torch.Generator().manual_seed(3))

    model = net()
    opt = RMTR(model, loss_fn=problem.loss, n_train=problem.n_train, sampler=sampler(), **hp)
    cls = METHODS.get("rmtr")
    torch.manual_seed(1)
    H = problem.hierarchy(3, WorkCounter())
    ref = cls(H, vec(model), cls.params.validate(hp, "rmtr"))
    ref.set_sampler(sampler())
    for _ in range(4):
        opt.step()
        ref.step(None)
        assert torch.equal(vec(model), ref.x)
    assert opt.last.info["batch_size"] > hp["initial_batch"]  # it grew


# --- refused before the first evaluation ------------------------------------------------------------
class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return torch.tanh(self.lin(x)) + x  # a skip connection of its own


def _stack_net(branches, depth_div=True):
    return nn.Sequential(nn.Linear(3, 4), ResidualStack(branches), nn.Linear(4, 2)).to(D)


def _tied():
    model = _stack_net([nn.Linear(4, 4) for _ in range(4)])
    model[1].branches[1].weight = model[1].branches[0].weight
    return model


def _mixed_dtype():
    model = _stack_net([nn.Linear(4, 4) for _ in range(4)])
    model[0].float()
    return model


def _wrapped(how):
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    model = _stack_net([nn.Linear(4, 4) for _ in range(4)])
    if how == "ddp":
        return nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    return fully_shard(model)


UNSUPPORTED = {
    "no residual stack": (
        lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(D),
        "no ml2bench.nn.ResidualStack and no coarse_models=",
    ),
    "depth not divisible": (lambda: _stack_net([nn.Linear(4, 4) for _ in range(6)]), "cannot be halved 2 times"),
    "branch shapes differ": (
        lambda: _stack_net([nn.Linear(4, 4, bias=k != 1) for k in range(4)]),
        "branch 1 of the ResidualStack",
    ),
    "own skip connection": (lambda: _stack_net([Skip() for _ in range(4)]), "adds its own input"),
    "tie across a stack": (_tied, "is tied to"),
    "mixed dtypes": (_mixed_dtype, "torch.float32, torch.float64"),
    "bf16": (lambda: _stack_net([nn.Linear(4, 4) for _ in range(4)]).bfloat16(), "allow_low_precision=True"),
    "training-mode dropout": (
        lambda: _stack_net([nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)) for _ in range(4)]),
        "dropout in training mode",
    ),
    "frozen parameter": (
        lambda: _stack_net([nn.Linear(4, 4) for _ in range(4)]).requires_grad_(False),
        "requires_grad",
    ),
    "DDP-wrapped": (lambda: _wrapped("ddp"), "DistributedDataParallel wraps the model .* pass the plain module"),
    "FSDP-wrapped": (lambda: _wrapped("fsdp"), "FSDPSequential wraps the model .* pass the plain module"),
    "nested stacks": (
        lambda: _stack_net([nn.Sequential(ResidualStack([nn.Linear(4, 4)]), nn.Tanh()) for _ in range(4)]),
        "a ResidualStack inside another one",
    ),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_models_fail_before_any_evaluation(case):
    make, fragment = UNSUPPORTED[case]
    model = make()
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        return m(batch.x).sum()

    try:
        with pytest.raises(UnsupportedModelError, match=fragment):
            RMTR(model, levels=3, loss_fn=loss_fn, n_train=1)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert not calls
    assert issubclass(UnsupportedModelError, ConfigError)


def test_low_precision_with_opt_in_and_eval_mode_dropout_are_accepted():
    RMTR(_stack_net([nn.Linear(4, 4) for _ in range(4)]).bfloat16(), levels=3, allow_low_precision=True)
    RMTR(UNSUPPORTED["training-mode dropout"][0]().eval(), levels=3)


@pytest.mark.parametrize("cls", [RMTR, MGOpt], ids=lambda c: c.__name__)
def test_zero_argument_closure_to_a_multilevel_method_fails_before_evaluating(cls):
    calls = []
    opt = cls(net())
    with pytest.raises(UnsupportedModelError, match="write it as closure\\(model\\) -> loss"):
        opt.step(lambda: calls.append(1))
    assert not calls and opt.work.grad_evals == 0


def test_closures_that_cannot_give_what_the_method_needs_fail_before_evaluating(data):
    problem, batch = data
    calls = []
    for opt, fragment in (
        (TrustRegion(net(), model="hessian"), "needs Hessian-vector products"),
        (SPQN(net(), decomposition="data"), "shards the batch"),
    ):
        with pytest.raises(UnsupportedModelError, match=fragment):
            opt.step(lambda: calls.append(1))
        assert opt.work.grad_evals == 0
    assert not calls
