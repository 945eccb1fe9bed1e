"""Depth transfer operators (:mod:`ml2bench.multilevel.depth`) checked against the mathematics.

- algebra: R_x P = I, R_g = Pᵀ, R_x = ½ Pᵀ on blocks (constant kind), shared layers copied;
- hierarchy of the ``resnet`` problem: depths, shapes and measured FLOP cost ratios per level;
- approximation: a prolongated smooth coarse network reproduces the coarse output to O(h), and a
  directly discretised fine network to O(h²);
- first-order coherence of the τ-corrected coarse model used by RMTR / MG/OPT.

Everything numerical runs in float64 so that "round-off" means ~1e-13.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.core.params import UnsupportedModelError
from ml2bench.multilevel.coarse import coherent_model
from ml2bench.multilevel.depth import KINDS, DepthTransfer, coarsen, interpolation_matrix
from ml2bench.nn import ConvODEResNet, DenseODEResNet, ResidualStack, depth_levels
from ml2bench.problems import PROBLEMS, Problem

F64 = torch.float64
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- helpers


def _flat(model: nn.Module) -> Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach()


def _load(model: nn.Module, x: Tensor) -> nn.Module:
    nn.utils.vector_to_parameters(x, model.parameters())
    return model


def _matrix(op, n_in: int) -> Tensor:
    """Dense matrix of a linear map on flat vectors, by applying it to the unit vectors."""
    eye = torch.eye(n_in, dtype=F64)
    return torch.stack([op(eye[j]) for j in range(n_in)], dim=1)


def _pair(arch: str, fine_depth: int, T: float = 1.0) -> tuple[nn.Module, nn.Module]:
    """A small fine network and its coarse partner (half the blocks, same T)."""
    if arch == "dense":
        make = lambda L: DenseODEResNet(3, 3, 2, L, T)  # noqa: E731
    elif arch == "adaptive":  # one trainable activation slope per block, a block parameter like its weights
        make = lambda L: DenseODEResNet(3, 3, 2, L, T, adaptive_slope=10.0)  # noqa: E731
    else:
        make = lambda L: ConvODEResNet(2, 2, 2, L, T)  # noqa: E731
    return make(fine_depth).to(F64), make(fine_depth // 2).to(F64)


def _block_mask(model: nn.Module) -> Tensor:
    """True for the flat coordinates that belong to a residual block."""
    return torch.cat(
        [torch.full((p.numel(),), n.startswith("blocks."), dtype=torch.bool) for n, p in model.named_parameters()]
    )


def _smooth_vector(names: list[str], shapes: list[torch.Size], depth: int, T: float) -> Tensor:
    """Parameters of a network whose blocks are a smooth function of depth-time t.

    Block k sits at its midpoint t_k = (k + ½) T / depth and gets K(t_k) = A cos t_k + B sin t_k
    (biases alike). A, B and the shared (opening/closing) layers are drawn from generators that
    depend only on the tensor's shape/name, so networks of different depth discretise *the same*
    ODE. Scaled by 1/√fan_in so the ODE is non-stiff and h ≤ 1/4 is already asymptotic.
    """
    parts = []
    for name, shape in zip(names, shapes):
        shape = tuple(shape)
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
        if name.startswith("blocks."):
            t = (int(name.split(".")[2]) + 0.5) * T / depth  # blocks.branches.<k>.0.weight
            g = torch.Generator().manual_seed(100 + len(shape))
            A = torch.randn(shape, generator=g, dtype=F64) / math.sqrt(fan_in)
            B = torch.randn(shape, generator=g, dtype=F64) / math.sqrt(fan_in)
            parts.append((A * math.cos(t) + B * math.sin(t)).reshape(-1))
        else:
            g = torch.Generator().manual_seed(200 + sum(map(ord, name)) + sum(shape))
            parts.append((torch.randn(shape, generator=g, dtype=F64) / math.sqrt(fan_in)).reshape(-1))
    return torch.cat(parts)


def _smooth_net(depth: int, T: float = 1.0) -> DenseODEResNet:
    net = DenseODEResNet(5, 8, 3, depth, T).to(F64)
    names, shapes = zip(*[(n, p.shape) for n, p in net.named_parameters()])
    return _load(net, _smooth_vector(list(names), list(shapes), depth, T))


def _orders(errors: list[float]) -> list[float]:
    """Observed convergence orders log2(e_H / e_{H/2}) for depths doubling each time."""
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


def _problem(**hp) -> Problem:
    base = {"n_train": 64, "n_test": 16}
    base.update(hp)
    return PROBLEMS.get("resnet")(base, seed=0, device=CPU, dtype=F64)


# ----------------------------------------------------------------------------- algebra


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fine_depth", [2, 4, 8, 16, 32])
def test_interpolation_matrix_left_inverse(kind: str, fine_depth: int) -> None:
    """M has full column rank, rows sum to 1 (constants are reproduced) and R = (MᵀM)⁻¹Mᵀ M = I."""
    M = interpolation_matrix(fine_depth, kind)
    assert M.shape == (fine_depth, fine_depth // 2)
    assert torch.allclose(M.sum(dim=1), torch.ones(fine_depth, dtype=F64), atol=1e-15)
    R = torch.linalg.solve(M.T @ M, M.T)
    assert (R @ M - torch.eye(fine_depth // 2, dtype=F64)).abs().max() < 1e-13


def test_linear_interpolation_reproduces_linear_functions_of_time() -> None:
    """Coarse values K_k = t^H_k = (k+½)·2h prolongate to K_i = t^h_i = (i+½)h at interior fine
    midpoints (those between the first and the last coarse midpoint); beyond them, constant."""
    L = 16
    h = 1.0 / L
    M = interpolation_matrix(L, "linear")
    coarse_t = (torch.arange(L // 2, dtype=F64) + 0.5) * 2 * h
    fine_t = (torch.arange(L, dtype=F64) + 0.5) * h
    got = M @ coarse_t
    interior = (fine_t >= coarse_t[0]) & (fine_t <= coarse_t[-1])
    assert interior.sum() == L - 2
    assert torch.allclose(got[interior], fine_t[interior], atol=1e-15)
    assert got[0] == coarse_t[0] and got[-1] == coarse_t[-1]


@pytest.mark.parametrize("arch", ["dense", "adaptive", "conv"])
@pytest.mark.parametrize("kind", KINDS)
def test_operator_matrices(arch: str, kind: str) -> None:
    """Dense matrices of P, R_x, R_g on a small network: R_x P = I, R_g = Pᵀ, shared layers copied
    and never mixed with blocks; for the constant kind R_x = ½ Pᵀ on block parameters."""
    fine, coarse = _pair(arch, 8)
    tr = DepthTransfer(fine, coarse, kind)
    n_f, n_c = _flat(fine).numel(), _flat(coarse).numel()
    P = _matrix(tr.prolongate, n_c)
    Rx = _matrix(tr.restrict, n_f)
    Rg = _matrix(tr.restrict_grad, n_f)
    assert P.shape == (n_f, n_c) and Rx.shape == Rg.shape == (n_c, n_f)

    assert (Rx @ P - torch.eye(n_c, dtype=F64)).abs().max() < 1e-13
    assert torch.equal(Rg, P.T)

    bf, bc = _block_mask(fine), _block_mask(coarse)
    sf, sc = ~bf, ~bc
    for A in (P, Rx.T, Rg.T):  # all in fine × coarse orientation
        assert torch.equal(A[sf][:, sc], torch.eye(int(sc.sum()), dtype=F64))  # copied, in order
        assert not A[sf][:, bc].any() and not A[bf][:, sc].any()
    if kind == "constant":
        assert torch.equal(Rx[bc][:, bf], 0.5 * P[bf][:, bc].T)
        assert set(P[bf][:, bc].unique().tolist()) == {0.0, 1.0}
        # every fine block coordinate copies exactly one coarse coordinate: pairs of equal blocks
        assert torch.equal(P[bf][:, bc].sum(dim=1), torch.ones(int(bf.sum()), dtype=F64))
    else:
        # for the linear kind R_x is the least-squares left inverse, no longer proportional to Pᵀ
        assert not torch.allclose(Rx[bc][:, bf], 0.5 * P[bf][:, bc].T)


@pytest.mark.parametrize("kind", KINDS)
def test_prolongated_blocks_and_round_trip(kind: str) -> None:
    """P of a concrete coarse network: fine block i = Σ_k M[i,k] coarse block k, and R_x P y = y."""
    fine, coarse = _pair("dense", 8)
    tr = DepthTransfer(fine, coarse, kind)
    y = torch.randn(_flat(coarse).numel(), dtype=F64, generator=torch.Generator().manual_seed(3))
    _load(coarse, y)
    _load(fine, tr.prolongate(y))
    M = interpolation_matrix(8, kind)
    for i, block in enumerate(fine.blocks):
        expect = sum(M[i, k] * coarse.blocks[k][0].weight for k in range(4))
        assert torch.allclose(block[0].weight, expect, atol=1e-15)
    assert torch.equal(fine.opening.weight, coarse.opening.weight)
    assert torch.equal(fine.closing.bias, coarse.closing.bias)
    assert (tr.restrict(tr.prolongate(y)) - y).abs().max() < 1e-13


def test_mismatched_networks_rejected() -> None:
    """Pairs that are not (L, L/2) discretisations of one architecture are refused up front."""
    fine, _ = _pair("dense", 8)
    with pytest.raises(ValueError, match="half the blocks"):
        DepthTransfer(fine, DenseODEResNet(3, 3, 2, 3).to(F64))
    other = DenseODEResNet(3, 3, 2, 4).to(F64)
    other.blocks = ResidualStack(nn.Linear(3, 4) for _ in range(4))  # same shared layers, bigger blocks
    with pytest.raises(ValueError, match="same size"):
        DepthTransfer(fine, other)
    # a network without a residual stack has no depth to coarsen: refused, not a "coarse" copy of itself
    plain = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2)).to(F64)
    with pytest.raises(UnsupportedModelError, match="Sequential has no ml2bench.nn.ResidualStack"):
        DepthTransfer(plain, plain)
    # branches of one stack must have the same parameter shapes
    mixed = nn.Sequential(
        ResidualStack([nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3, bias=False), nn.Linear(3, 3)])
    )
    with pytest.raises(UnsupportedModelError, match="branch 2 of the ResidualStack"):
        DepthTransfer(mixed, coarsen(mixed))
    with pytest.raises(ValueError, match="cannot be halved"):
        interpolation_matrix(7, "constant")
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolation_matrix(8, "cubic")


@pytest.mark.parametrize("depth, levels", [(1, 1), (2, 2), (3, 1), (6, 2), (8, 4), (12, 3), (64, 7)])
def test_depth_levels(depth: int, levels: int) -> None:
    assert depth_levels(depth) == levels


@pytest.mark.parametrize("depth", [0, -2])
def test_depth_levels_rejects_non_positive(depth: int) -> None:
    with pytest.raises(ValueError, match="depth"):  # 0 used to loop forever
        depth_levels(depth)


# ----------------------------------------------------------------------------- hierarchy


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_resnet_hierarchy_shapes_and_cost_ratios(arch: str) -> None:
    """4 levels of the default depth 8: depths 8, 4, 2, 1 with the same T (h doubles), operator
    shapes match the objectives, measured FLOP ratios strictly decrease inside (0, 1].

    The ratios have a closed form: per sample, forward+backward multiply-add FLOPs are 2·2·a for
    the opening (weight gradient only: the input needs no gradient), 3·2·b per block and 3·2·c for
    the closing layer, with a, b, c the layers' multiplications (dense: n_in·W, W², W·C; conv:
    9·C_in·W·pixels, 9·W²·pixels, W·C); torch's counter must reproduce them exactly.
    """
    problem = _problem(arch=arch, width=8)
    assert problem.max_levels() == 4
    hier = problem.hierarchy(4, WorkCounter())
    assert hier.levels == 4 and len(hier.transfers) == 3
    for level, obj in enumerate(hier.objectives):
        model = obj.model
        assert model.depth == len(model.blocks) == 8 >> level
        assert model.T == 1.0 and model.h == pytest.approx(2**level / 8)
        assert obj.n == _flat(model).numel()
        assert next(model.parameters()).dtype == F64
    for level, tr in enumerate(hier.transfers):
        n_f, n_c = hier.objectives[level].n, hier.objectives[level + 1].n
        x_c = hier.objectives[level + 1].initial_x()
        x_f = hier.objectives[level].initial_x()
        assert tr.prolongate(x_c).shape == (n_f,)
        assert tr.restrict(x_f).shape == tr.restrict_grad(x_f).shape == (n_c,)
        assert (tr.restrict(tr.prolongate(x_c)) - x_c).abs().max() < 1e-13

    ratios = [obj.cost_ratio for obj in hier.objectives]
    assert ratios[0] == 1.0
    assert all(0.0 < b < a <= 1.0 for a, b in zip(ratios, ratios[1:])), ratios
    W, C, L = 8, 10, [8 >> l for l in range(4)]
    if arch == "dense":  # per sample: opening n_in=64 → W, blocks W → W, closing W → C
        flops = [4 * 64 * W + 6 * d * W * W + 6 * W * C for d in L]
    else:  # 3×3 convolutions on 8×8 pixels, 1 input channel; pooling is not a matmul
        flops = [4 * 9 * 1 * W * 64 + 6 * d * 9 * W * W * 64 + 6 * W * C for d in L]
    assert ratios == pytest.approx([f / flops[0] for f in flops], rel=1e-12)


# ----------------------------------------------------------------------------- approximation

COARSE_DEPTHS = (4, 8, 16, 32)


def _output_errors(kind: str) -> tuple[list[float], list[float]]:
    """max |fine − coarse| and max |fine − direct fine| over random inputs, per coarse depth."""
    x = torch.randn(64, 5, dtype=F64, generator=torch.Generator().manual_seed(7))
    vs_coarse, vs_direct = [], []
    for L in COARSE_DEPTHS:
        coarse = _smooth_net(L)
        fine = DenseODEResNet(5, 8, 3, 2 * L).to(F64)
        _load(fine, DepthTransfer(fine, coarse, kind).prolongate(_flat(coarse)))
        direct = _smooth_net(2 * L)  # K(t_i) sampled at the fine midpoints
        with torch.no_grad():
            y_f = fine(x)
            vs_coarse.append(float((y_f - coarse(x)).abs().max()))
            vs_direct.append(float((y_f - direct(x)).abs().max()))
    return vs_coarse, vs_direct


def test_prolongated_network_matches_coarse_to_first_order() -> None:
    """A coarse network with smooth K(t) = A cos t + B sin t, prolongated (constant kind: pairs of
    equal blocks, step h = H/2), differs from the coarse network (step H) by O(h): two Euler steps
    of h vs one of 2h with frozen K differ by O(h²) per coarse step, O(h) over [0, T].

    Measured (float64, width 8, T = 1, coarse depths 4, 8, 16, 32): max output differences
    5.13e-2, 2.60e-2, 1.33e-2, 6.80e-3; observed orders 0.98, 0.97, 0.97.
    """
    errors, _ = _output_errors("constant")
    orders = _orders(errors)
    assert all(0.8 <= p <= 1.3 for p in orders), (errors, orders)
    assert errors[-1] < 0.05


def test_prolongation_matches_direct_fine_discretisation_to_second_order() -> None:
    """Prolongated fine network vs the fine network with K(t_i) sampled directly, t_i = (i+½)h.

    ``linear`` interpolates K at the fine midpoints to O(h²) except in the first and last fine
    block (constant extrapolation, an O(h) error on two blocks of weight h each): O(h²) overall.
    ``constant`` is also O(h²), *not* O(h): fine blocks 2k, 2k+1 both use K(t_k^H), which is off
    by −h/2 and +h/2 in time, so the first-order errors of each pair cancel (midpoint rule).

    Measured (float64, width 8, T = 1, coarse depths 4, 8, 16, 32):
      constant: 6.72e-3, 1.71e-3, 4.33e-4, 1.09e-4 (orders 1.97, 1.98, 1.99)
      linear:   1.68e-2, 4.58e-3, 1.19e-3, 3.03e-4 (orders 1.88, 1.95, 1.97)
    So both are better than O(h) and far closer to the direct discretisation than to the coarse
    net; ``linear`` is *not* at least as good as ``constant`` here: its constant end extrapolation
    makes it ~2.7× worse on these smooth weights, which is what is asserted.
    """
    vs_coarse_c, direct_c = _output_errors("constant")
    vs_coarse_l, direct_l = _output_errors("linear")
    for direct, vs_coarse in ((direct_c, vs_coarse_c), (direct_l, vs_coarse_l)):
        assert all(p >= 1.8 for p in _orders(direct)), direct
        assert all(d < 0.5 * c for d, c in zip(direct, vs_coarse))
    assert all(c <= l for c, l in zip(direct_c, direct_l)), (direct_c, direct_l)
    # the linear kind is still first-order consistent with the coarse network
    assert all(0.8 <= p <= 1.3 for p in _orders(vs_coarse_l)), vs_coarse_l


# ----------------------------------------------------------------------------- coherence


def _differentiable_loss(obj: Objective, y: Tensor, batch) -> Tensor:
    """f(y) as a differentiable torch scalar (Objective.loss_grad detaches; the τ-model needs graphs)."""
    return obj.loss_fn(obj.fmodel(y), batch)


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_tau_corrected_coarse_model_is_first_order_coherent(arch: str) -> None:
    """The package's own :func:`~ml2bench.multilevel.coarse.coherent_model` (used by RMTR and
    MG/OPT) at a random fine iterate: y0 = R_x x_h, ∇h_H(y0) = R_g ∇f_h(x_h) through autograd on
    the coarse network (not through the model's own bookkeeping), h_H − f_H is linear (its
    gradient difference is the same constant at another point), the returned value is h_H(y0),
    and building it costs one coarse gradient evaluation. R_x = ½ Pᵀ ≠ R_g = Pᵀ on the blocks, so
    restricting the gradient with R_x (or the iterate with R_g) fails the checks by a factor 2."""
    problem = _problem(arch=arch, width=4, depth=4)
    counter = WorkCounter()
    hier = problem.hierarchy(2, counter)
    fine, coarse = hier.objectives
    tr = hier.transfers[0]
    batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(0))))
    x_h = fine.initial_x() + 0.1 * torch.randn(fine.n, dtype=F64, generator=torch.Generator().manual_seed(1))
    _, g_h = fine.loss_grad(x_h, batch)
    P = _matrix(tr.prolongate, coarse.n)
    target = P.T @ g_h  # R_g = Pᵀ, built here from P alone
    y_expected = torch.linalg.solve(P.T @ P, P.T @ x_h)  # R_x = (PᵀP)⁻¹Pᵀ
    evals, work = counter.grad_evals, counter.work_units

    model, y0, value, grad0 = coherent_model(coarse, tr, x_h, g_h, batch)

    assert counter.grad_evals - evals == pytest.approx(1.0)
    assert counter.work_units - work == pytest.approx(coarse.cost_ratio, rel=1e-12)
    assert float((y0 - y_expected).norm() / y_expected.norm()) < 1e-12
    assert float((grad0 - target).norm() / target.norm()) < 1e-12
    y = y0.clone().requires_grad_(True)
    (g_fH,) = torch.autograd.grad(_differentiable_loss(coarse, y, batch), y)
    value_m, grad_m = model.loss_grad(y0, batch)
    assert float((grad_m - target).norm() / target.norm()) < 1e-12
    assert value_m == pytest.approx(value, rel=1e-13)
    shift = grad_m - g_fH  # the τ-correction: h_H − f_H is linear, same shift everywhere
    assert float(shift.norm()) > 1e-3 * float(target.norm())  # a non-trivial correction
    y1 = y0 + 0.3 * torch.randn(coarse.n, dtype=F64, generator=torch.Generator().manual_seed(2))
    y1g = y1.clone().requires_grad_(True)
    (g_fH1,) = torch.autograd.grad(_differentiable_loss(coarse, y1g, batch), y1g)
    _, grad_m1 = model.loss_grad(y1, batch)
    assert float((grad_m1 - g_fH1 - shift).norm() / shift.norm()) < 1e-10
    assert model.loss(y1, batch) - model.loss(y0, batch) == pytest.approx(
        coarse.loss(y1, batch) - coarse.loss(y0, batch) + float(shift @ (y1 - y0)), rel=1e-10
    )


def test_uncorrected_coarse_gradient_is_consistent() -> None:
    """The non-trivial part: without τ-correction, ∇f_H(R_x x_h) ≈ R_g ∇f_h(x_h) for x_h = P y
    (pairs of identical blocks) with smooth blocks, and the relative difference decreases like h
    (each coarse block of step 2h stands for two fine blocks of step h; R_g = Pᵀ sums their
    gradients).

    Measured (float64, resnet dense, width 8, 64 digits samples, coarse depths 4, 8, 16, 32):
    relative differences 3.92e-2, 1.88e-2, 9.24e-3, 4.59e-3 (orders 1.06, 1.03, 1.01).
    """
    rel = []
    for L in COARSE_DEPTHS:
        problem = _problem(width=8, depth=2 * L)
        hier = problem.hierarchy(2, WorkCounter())
        fine, coarse = hier.objectives
        tr = hier.transfers[0]
        batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(0))))
        y = _smooth_vector(coarse.names, coarse.shapes, L, 1.0)
        x_h = tr.prolongate(y)
        assert (tr.restrict(x_h) - y).abs().max() < 1e-14
        _, g_h = fine.loss_grad(x_h, batch)
        _, g_H = coarse.loss_grad(tr.restrict(x_h), batch)
        target = tr.restrict_grad(g_h)
        rel.append(float((g_H - target).norm() / target.norm()))
    orders = _orders(rel)
    assert all(b < a for a, b in zip(rel, rel[1:])), rel
    assert all(0.8 <= p <= 1.3 for p in orders), (rel, orders)
    assert rel[-1] < 1e-2
