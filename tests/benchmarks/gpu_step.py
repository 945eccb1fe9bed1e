"""Per-step time of the Burgers PINN at the paper config's size, eager vs CUDA graphs (issue 14).

    python tests/benchmarks/gpu_step.py                      # cuda: eager and graphs, median of 5 x 50 steps
    python tests/benchmarks/gpu_step.py --device cpu --width 16 --depth 4 --points 500   # smoke test

Adam: ms per ``method.step`` (one loss+gradient evaluation and the update). L-BFGS: ms per
objective evaluation (``Objective.loss_grad``, what its closure calls). Hessian-vector product:
ms per ``Objective.hvp`` (RMTR/TR with ``model=hessian``; no goal in the issue). Goals on one H100:
Adam ≤ 2.5 ms/step, one L-BFGS function+gradient evaluation ≤ 3 ms. Prints the card and torch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ml2bench.core.objective import WorkCounter
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(device: torch.device, graphs: str, args) -> dict[str, float]:
    cls = PROBLEMS.get("pinn_burgers")
    hp = cls.params.validate(
        {"width": args.width, "depth": args.depth, "n_interior": args.points, "n_initial": 500, "n_boundary": 500},
        "pinn_burgers",
    )
    problem = cls(hp, seed=0, device=device, dtype=torch.float32)
    torch.manual_seed(0)
    hierarchy = problem.hierarchy(1, WorkCounter())
    hierarchy.fine.graphs = graphs
    batch = problem.full_batch()
    adam = METHODS.get("adam")(hierarchy, hierarchy.fine.initial_x(), METHODS.get("adam").params.validate({}, "adam"))
    out = {}
    v = torch.randn(hierarchy.fine.n, generator=torch.Generator().manual_seed(0)).to(device)
    for name, fn in (
        ("adam_step_ms", lambda: adam.step(batch)),
        ("loss_grad_ms", lambda: hierarchy.fine.loss_grad(adam.x, batch)),
        ("hvp_ms", lambda: hierarchy.fine.hvp(adam.x, v, batch)),
    ):
        for _ in range(5):  # warm-up (and capture)
            fn()
        times = []
        for _ in range(args.rounds):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            _sync(device)
            times.append((time.perf_counter() - t0) / args.steps * 1e3)
        out[name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (not the default)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{card}, torch {torch.__version__}, Burgers PINN width {args.width} depth {args.depth}, "
        f"{args.points} interior points, Adam full batch"
    )
    modes = ["off", "cuda"] if device.type == "cuda" else ["off", "static"]
    for mode in modes:
        r = measure(device, mode, args)
        print(
            f"graphs={mode:6s}  Adam {r['adam_step_ms']:.2f} ms/step   loss+grad {r['loss_grad_ms']:.2f} ms   "
            f"hvp {r['hvp_ms']:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
