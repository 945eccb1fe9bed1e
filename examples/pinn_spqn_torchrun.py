"""Train a PINN for -Δu = 2π² sin(πx) sin(πy) on [0, 1]², u = 0 on the boundary, with SPQN on
several processes (one replica of the network per rank; the parameter subdomains are solved on
different ranks and combined by one all-reduce per step):

    torchrun --standalone --nproc_per_node 2 examples/pinn_spqn_torchrun.py [--steps 20]

Every rank builds the same network and the same collocation points (seeded), as the ranks must
agree on f(x0) (SPQN checks it at the first step and raises if they do not). The optimizer joins
the process group torchrun launched (gloo on CPU); ``process_group=`` would name another one.
The closure takes the model and differentiates it w.r.t. its inputs (the PDE residual); it does
not call backward: the optimizer does.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.distributed as dist
from torch import nn

from ml2bench.nn import ResidualStack
from ml2bench.optim import SPQN


def laplacian(u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(u.sum(), p, create_graph=True)
    return sum(torch.autograd.grad(g[:, i].sum(), p, create_graph=True)[0][:, i] for i in range(2))


def main() -> None:
    parser = argparse.ArgumentParser(description="PINN (2-D Poisson) trained with SPQN under torchrun")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--points", type=int, default=256, help="interior collocation points")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per rank

    gen = torch.Generator().manual_seed(0)  # the same points on every rank
    interior = torch.rand(args.points, 2, generator=gen, dtype=torch.float64)
    s = torch.rand(args.points // 4, 1, generator=gen, dtype=torch.float64)
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    boundary = torch.cat([torch.cat(side, 1) for side in ((zero, s), (one, s), (s, zero), (s, one))])
    forcing = 2 * math.pi**2 * torch.sin(math.pi * interior[:, 0]) * torch.sin(math.pi * interior[:, 1])

    torch.manual_seed(0)  # the same initial network on every rank
    w = args.width
    model = nn.Sequential(
        nn.Linear(2, w),
        nn.Tanh(),
        ResidualStack([nn.Sequential(nn.Linear(w, w), nn.Tanh()) for _ in range(args.depth)], T=1.0),
        nn.Linear(w, 1),
    ).double()

    def closure(m: nn.Module) -> torch.Tensor:
        p = interior.clone().requires_grad_(True)
        residual = -laplacian(m(p).squeeze(1), p) - forcing
        return residual.square().mean() + m(boundary).square().mean()

    opt = SPQN(model, subdomains=2, local_steps=5)  # under torchrun: subdomain k on rank k mod world
    rank = dist.get_rank() if dist.is_initialized() else 0
    for step in range(args.steps):
        loss = float(opt.step(closure))
        if rank == 0:
            print(f"step {step:3d}  loss {loss:.3e}  work {opt.work.grad_evals:.0f}", flush=True)
        if opt.converged or opt.stop_reason:
            break

    grid = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, 41, dtype=torch.float64)] * 2, indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    exact = torch.sin(math.pi * grid[:, 0]) * torch.sin(math.pi * grid[:, 1])
    with torch.no_grad():
        rel_l2 = float((model(grid).squeeze(1) - exact).norm() / exact.norm())
    checksum = float(torch.nn.utils.parameters_to_vector(model.parameters()).detach().sum())
    final = float(closure(model).detach())
    print(f"rank {rank}: final loss {final:.3e}  rel. L2 error {rel_l2:.3f}  checksum {checksum!r}", flush=True)
    opt.close()  # drops the process group the optimizer created


if __name__ == "__main__":
    main()
