"""Run checkpoints: a run interrupted after a checkpoint continues from it as if never stopped.

With ``checkpoint_every = k`` (a run option) the runner writes, every k iterations, everything the
rest of the run depends on: the method's state (:meth:`~ml2bench.methods.base.Method.state_dict`:
iterate, held f and ∇f, radii, quasi-Newton memories, monitors), the work counter, the loop's
position (iteration, samples, the data-order generator at the start of the epoch and the batches
of the epoch already used, RMTR's own batch sampler), the history rows so far, the training time
and energy so far, and torch's global RNG. ``ml2bench run`` keeps it as ``<out>/checkpoint.pt``
and resumes from it when it finds one written for the same configuration (``RunConfig.hash``);
it is removed once the run's records are written. Iterates, work and history (all but the time
and energy columns) then equal those of an uninterrupted run. Written atomically (temporary file
and rename): an interruption while writing leaves the previous checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ml2bench.core.params import ConfigError

NAME = "checkpoint.pt"


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, config_hash: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None if there is none); one of another configuration is bad input."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 (a truncated or foreign file: say which)
        raise ConfigError(f"checkpoint {str(path)!r} cannot be read ({err}); remove it to start afresh") from None
    if payload.get("config_hash") != config_hash:
        raise ConfigError(
            f"checkpoint {str(path)!r} was written by another configuration (hash {payload.get('config_hash')!r}, "
            f"this run {config_hash!r}); allowed: resume with the same configuration, or remove the checkpoint"
        )
    return payload


def snapshot(method: Any, counter: Any, sampler: Any, loop: dict[str, Any]) -> dict[str, Any]:
    """Everything a resumed run needs (see module docstring); ``loop`` is the runner's own state."""
    return {
        "method": method.state_dict(),
        "work": counter.state_dict(),
        "sampler": sampler.state_dict() if sampler is not None else None,
        "rng": torch.get_rng_state(),
        **loop,
    }


def restore(payload: dict[str, Any], method: Any, counter: Any, sampler: Any) -> dict[str, Any]:
    """Load the method, counter, sampler and RNG of ``payload``; returns it for the runner's own state."""
    method.load_state_dict(payload["method"])
    counter.load_state_dict(payload["work"])
    if sampler is not None and payload["sampler"] is not None:
        sampler.load_state_dict(payload["sampler"])
    torch.set_rng_state(payload["rng"])
    return payload
