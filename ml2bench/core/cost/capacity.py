"""Will the network fit? Count its parameters before allocating anything.

A width of 10**9 must fail as bad input with one line, not as an out-of-memory traceback (or a
swapping machine) after minutes. The finest level's network is built on PyTorch's ``meta``
device — shapes without storage — so the count is exact for every problem without a per-problem
formula, and costs no memory.
"""

from __future__ import annotations

import os

import torch

from ml2bench.core.params import ConfigError

# The flat parameter vector lives in several copies at once: the model's weights, the iterate x,
# its gradient and at least one vector of method state (momentum, a trial point, ...).
COPIES = 4


class _TooLarge(Exception):
    pass


def count_parameters(problem, level: int = 0, limit: int | None = None) -> int:
    """Exact parameter count of ``problem.build_model(level)``, built on the meta device.

    With ``limit``, the build is abandoned as soon as the parameters registered so far exceed
    it (returns a count > limit): a depth of 10**5 blocks need not be built to be refused.
    """
    registered = [0]

    def tally(module, name, param):
        if param is not None:
            registered[0] += param.numel()
            if limit is not None and registered[0] > limit:
                raise _TooLarge

    hook = torch.nn.modules.module.register_module_parameter_registration_hook(tally)
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):  # the real build draws the init later
            model = problem.build_model(level)
    except _TooLarge:
        return registered[0]
    finally:
        hook.remove()
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
    itemsize = torch.empty((), dtype=dtype, device="meta").element_size()
    have = memory_bytes(device) if memory is None else memory
    limit = have // (COPIES * itemsize)
    n = count_parameters(problem, limit=limit)
    need = n * COPIES * itemsize
    if need > have:
        over = "over " if n > limit else ""
        hp = ", ".join(
            f"{k}={v}" for k, v in sorted(problem.hp.items()) if isinstance(v, int) and not isinstance(v, bool)
        )
        raise ConfigError(
            f"problem {problem.name!r} ({hp}) has {over}{n:.3g} parameters: {COPIES} copies at {dtype} need "
            f"{over}{_size(need)}, more than the {_size(have)} of memory on {device.type}; allowed: networks whose "
            f"parameters fit (reduce width or depth)"
        )
    return n
