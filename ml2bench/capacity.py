"""Will the network fit? Count its parameters before allocating anything.

A width of 10**9 must fail as bad input with one line, not as an out-of-memory traceback (or a
swapping machine) after minutes. The finest level's network is built on PyTorch's ``meta``
device — shapes without storage — so the count is exact for every problem without a per-problem
formula, and costs no memory.
"""
from __future__ import annotations

import os

import torch

from .params import ConfigError

# The flat parameter vector lives in several copies at once: the model's weights, the iterate x,
# its gradient and at least one vector of method state (momentum, a trial point, ...).
COPIES = 4


def count_parameters(problem, level: int = 0) -> int:
    """Exact parameter count of ``problem.build_model(level)``, built on the meta device."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # the real build draws the same init later
        model = problem.build_model(level)
    return sum(p.numel() for p in model.parameters())


def memory_bytes(device: torch.device) -> int:
    """Memory a run on ``device`` can use at most: the GPU's total memory or the machine's RAM."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check_model_fits(problem, device: torch.device, dtype: torch.dtype, memory: int | None = None) -> int:
    """The parameter count, or ConfigError when ``COPIES`` parameter vectors exceed the memory."""
    n = count_parameters(problem)
    need = n * COPIES * torch.empty((), dtype=dtype, device="meta").element_size()
    have = memory_bytes(device) if memory is None else memory
    if need > have:
        hp = ", ".join(f"{k}={v}" for k, v in sorted(problem.hp.items()) if isinstance(v, int) and not isinstance(v, bool))
        raise ConfigError(
            f"problem {problem.name!r} ({hp}) has {n:.3g} parameters: {COPIES} copies at {dtype} need "
            f"{_size(need)}, more than the {_size(have)} of memory on {device.type}; allowed: networks whose "
            f"parameters fit (reduce width or depth)")
    return n
