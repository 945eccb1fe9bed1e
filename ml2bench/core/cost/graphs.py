"""Static-buffer evaluations of an objective, captured once as CUDA graphs and replayed.

Why: on a GPU the small networks of this suite are launch-bound (docs/performance.md says what was
measured and how to measure it). An evaluation of :class:`~ml2bench.core.objective.
Objective` on a batch of fixed shapes always runs the same kernels on the same addresses once its
inputs live in fixed buffers: the parameters in the objective's flat buffer, the gradient in its
flat gradient buffer, and the batch in a static copy made here. So every method — single-level,
multilevel, Schwarz — gets the speed-up through ``Objective.loss_grad`` without code of its own.

* One :class:`StaticEvaluation` per (objective, kind, batch structure and shapes); a new batch of
  the same shapes is copied into the static one (device-to-device, no host round trip). Kinds
  (:data:`KINDS`): ``loss_grad`` (value, gradient into the flat gradient buffer), ``loss``
  (value only) and ``hvp`` (∇²f v by double backward; v is copied into a static buffer and the
  product comes back in a static output).
* ``objective.graphs == "cuda"``: warm-up on a side stream, capture, then replay.
  ``"static"``: exactly the same buffers and copies, run eagerly — the CPU path of this code.
* What a capture needs from the model: no host→device copies or host syncs in the forward
  (e.g. :class:`~ml2bench.problems.pinn.base.PINNNet` keeps its input map in registered buffers).
* Only the float loss value is read back (one sync per evaluation, as the methods need it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

WARMUP = 3  # eager iterations on a side stream before capture (cuDNN/cuBLAS workspaces, autograd state)
KINDS = ("loss_grad", "loss", "hvp")
#: evaluations kept per objective, least recently used dropped first: a method that changes batch
#: shapes (growing batches, a last partial batch) must not pile up captured graphs and their memory
MAX_CACHED = 8


def _leaves(obj: Any) -> list[Tensor]:
    """The tensors of a batch (dataclasses, dicts, tuples/lists of them), in a fixed order."""
    if isinstance(obj, Tensor):
        return [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in _leaves(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [t for k in sorted(obj) for t in _leaves(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _leaves(v)]
    return []


def _signature(obj: Any) -> tuple:
    """Structure + shapes + dtypes + devices + non-tensor values: batches with equal signatures
    can share one captured graph."""
    if isinstance(obj, Tensor):
        return ("T", tuple(obj.shape), obj.dtype, str(obj.device))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj).__name__,) + tuple(
            (f.name, _signature(getattr(obj, f.name))) for f in dataclasses.fields(obj)
        )
    if isinstance(obj, dict):
        return ("dict",) + tuple((k, _signature(obj[k])) for k in sorted(obj))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__,) + tuple(_signature(v) for v in obj)
    return ("V", obj)


def _static_copy(obj: Any) -> Any:
    """The same batch with every tensor replaced by a fresh copy (the static buffers)."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: _static_copy(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
        )
    if isinstance(obj, dict):
        return {k: _static_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_static_copy(v) for v in obj)
    return obj


class StaticEvaluation:
    """One kind of evaluation (:data:`KINDS`) of one objective on static batch buffers; captured
    when ``graphs == "cuda"``."""

    def __init__(self, objective: Any, batch: Any, kind: str = "loss_grad") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown evaluation kind {kind!r}; allowed: {', '.join(KINDS)}")
        self.objective = objective
        self.kind = kind
        self.batch = _static_copy(batch)
        self.inputs = _leaves(self.batch)
        self.v = torch.zeros_like(objective._flat) if kind == "hvp" else None  # static direction
        self.graph: Any = None
        self.value: Tensor | None = None
        if objective.graphs == "cuda":
            self._capture()

    @classmethod
    def for_batch(cls, objective: Any, batch: Any, kind: str = "loss_grad") -> StaticEvaluation:
        key = (kind, _signature(batch))
        evaluation = objective._static.pop(key, None)
        if evaluation is None:
            evaluation = cls(objective, batch, kind)
        objective._static[key] = evaluation  # (re)inserted last: the dict's order is the LRU order
        while len(objective._static) > MAX_CACHED:
            del objective._static[next(iter(objective._static))]
        return evaluation

    def _evaluate(self) -> Tensor:
        obj = self.objective
        if self.kind == "loss_grad":
            return obj._value_and_grad_in_place(self.batch)
        if self.kind == "loss":
            return obj._value_in_place(self.batch)
        return obj._hvp_in_place(self.batch, self.v)

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                self._evaluate()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.value = self._evaluate()

    def run(self, batch: Any, v: Tensor | None = None) -> Tensor:
        """At the objective's loaded parameters on ``batch``: the loss (``loss_grad``: gradient in
        the flat gradient buffer; ``loss``) or ∇²f v (``hvp``, a static tensor: copy it)."""
        with torch.no_grad():
            if batch is not self.batch:
                for dst, src in zip(self.inputs, _leaves(batch)):
                    if dst.data_ptr() != src.data_ptr():
                        dst.copy_(src, non_blocking=True)
            if self.v is not None:
                if v is None:
                    raise ValueError("an hvp evaluation needs the direction v")
                self.v.copy_(v.detach())
        if self.graph is None:
            value = self._evaluate()
            if self.kind == "loss_grad":
                self.objective._check_grads_in_place()
            return value
        self.graph.replay()
        assert self.value is not None
        return self.value
