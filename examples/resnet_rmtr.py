"""Train a small residual classifier with RMTR in a plain PyTorch loop.

    python examples/resnet_rmtr.py [--depth 8] [--width 16] [--steps 20] [--n-train 500]

The network is ordinary PyTorch; the only ml2bench piece in it is ``ResidualStack``, which marks the
residual part x <- x + h f_k(x) so that RMTR can build its coarse levels (every other branch,
step h doubled). The closure takes the model it is given: RMTR evaluates the fine and the coarse
networks with it. ``opt.work`` counts the evaluations as the benchmark does (one unit = one
gradient of the full training set on the finest network; coarse evaluations weighted by their
FLOP ratio).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from ml2bench.nn import ResidualStack
from ml2bench.optim import RMTR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8, help="residual branches (divisible by 4 for 3 levels)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="RMTR steps (one V-cycle each)")
    parser.add_argument("--n-train", type=int, default=500)
    args = parser.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float64) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    (x_train, y_train), (x_test, y_test) = [(x[i], y[i]) for i in (perm[: args.n_train], perm[args.n_train :])]

    torch.manual_seed(0)
    w = args.width
    model = nn.Sequential(
        nn.Linear(64, w),
        nn.Tanh(),
        ResidualStack([nn.Sequential(nn.Linear(w, w), nn.Tanh()) for _ in range(args.depth)], T=1.0),
        nn.Linear(w, 10),
    ).double()

    opt = RMTR(model, levels=3)

    def closure(m: nn.Module) -> torch.Tensor:  # the loss of the model it is given; no backward
        return F.cross_entropy(m(x_train), y_train)

    for step in range(args.steps):
        loss = opt.step(closure)
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).double().mean()
        work = opt.work.work_units
        print(f"step {step:3d}  loss {float(loss):.4f}  test accuracy {float(accuracy):.3f}  work {work:.1f}")
        if opt.converged or opt.stop_reason:
            print(f"stopped: {opt.stop_reason}")
            break
    print(f"final test accuracy {float(accuracy):.3f} after {opt.work.grad_evals:.0f} gradient evaluations")


if __name__ == "__main__":
    main()
