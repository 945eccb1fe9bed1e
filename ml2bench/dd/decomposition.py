"""Decompositions for Schwarz training: subdomains of the flat parameter vector, or of the data.

A *parameter* decomposition is a list of index sets ``I_k`` into the flat vector ``x`` (layout of
``model.named_parameters()``, see :class:`~ml2bench.core.objective.Objective`). Subdomain ``k`` owns the
variables ``x[I_k]``; its local problem is ``y ↦ f(x with x[I_k] = y)`` with all other variables
frozen. Index sets may overlap; :attr:`Decomposition.counts` says how many subdomains own each
variable, and the additive combination divides by it.

A *data* decomposition gives every subdomain all parameters and one shard of the training batch;
its local problem is the loss on that shard.

Builders:

* :func:`layer_decomposition` – contiguous groups of layers ("layer" = the module that owns a
  parameter, i.e. the parameter name without its last component, so ``3.weight`` and ``3.bias``
  belong together; ``blocks.2.lin.weight`` and ``blocks.2.lin.bias`` too; a ``ParameterList`` entry
  such as ``blocks.0`` is a layer of its own). Layers are split into
  ``subdomains`` contiguous groups of (as nearly as possible) equal parameter count; ``overlap``
  extends every group by that many layers on each side.
* :func:`random_decomposition` – a seeded random partition of the individual scalar parameters
  into ``subdomains`` sets of equal size (a "width-wise" split that cuts across all layers).
* :func:`data_decomposition` – ``subdomains`` shards; :func:`shard_batch` cuts a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ml2bench.core.params import ConfigError


@dataclass
class Decomposition:
    """``kind`` is ``"parameters"`` (index sets) or ``"data"`` (shards, all parameters each)."""

    kind: str
    n: int
    index_sets: list[Tensor]  # parameters: long tensors into x; data: arange(n) for every shard
    labels: list[str]  # human-readable description per subdomain

    @property
    def size(self) -> int:
        return len(self.index_sets)

    @property
    def counts(self) -> Tensor:
        """How many subdomains own each variable (≥ 1 everywhere for a valid decomposition)."""
        counts = torch.zeros(self.n, dtype=torch.long)
        for idx in self.index_sets:
            counts[idx] += 1
        return counts

    def validate(self) -> None:
        if (self.counts == 0).any():
            raise ValueError("decomposition leaves some parameters without a subdomain")


def layer_groups(names: Sequence[str], numels: Sequence[int]) -> list[tuple[str, Tensor]]:
    """(layer name, indices into the flat vector) per layer, in parameter order."""
    groups: list[tuple[str, list[Tensor]]] = []
    offset = 0
    for name, numel in zip(names, numels):
        head, _, last = name.rpartition(".")
        layer = head if head and not last.isdigit() else name  # ParameterList entries: own layer
        idx = torch.arange(offset, offset + numel)
        offset += numel
        if groups and groups[-1][0] == layer:
            groups[-1][1].append(idx)
        else:
            groups.append((layer, [idx]))
    return [(layer, torch.cat(parts)) for layer, parts in groups]


def _balanced_cuts(sizes: Sequence[int], parts: int) -> list[int]:
    """Cut points 0 = c_0 < c_1 < … < c_parts = len(sizes): each c_j is the feasible cut whose
    prefix size is closest to j/parts of the total (≥ 1 item per group)."""
    n = len(sizes)
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    total = float(prefix[-1])
    cuts = [0]
    for j in range(1, parts):
        lo, hi = cuts[-1] + 1, n - (parts - j)  # leave ≥ 1 item for each remaining group
        target = total * j / parts
        cuts.append(min(range(lo, hi + 1), key=lambda c: (abs(prefix[c] - target), c)))
    cuts.append(n)
    return cuts


def layer_decomposition(
    names: Sequence[str], numels: Sequence[int], subdomains: int, overlap: int = 0
) -> Decomposition:
    """Contiguous groups of layers, balanced by parameter count, optionally overlapping."""
    groups = layer_groups(names, numels)
    if subdomains < 1 or subdomains > len(groups):
        raise ConfigError(
            f"decomposition 'layers': subdomains = {subdomains} but the model has "
            f"{len(groups)} layers ({', '.join(g for g, _ in groups)}); allowed: 1..{len(groups)}"
        )
    if overlap < 0:
        raise ConfigError(f"decomposition 'layers': overlap = {overlap}; allowed: int >= 0")
    cuts = _balanced_cuts([int(idx.numel()) for _, idx in groups], subdomains)
    n = int(sum(numels))
    index_sets, labels = [], []
    for k in range(subdomains):
        lo, hi = max(0, cuts[k] - overlap), min(len(groups), cuts[k + 1] + overlap)
        members = groups[lo:hi]
        index_sets.append(torch.cat([idx for _, idx in members]))
        labels.append("+".join(g for g, _ in members))
    dec = Decomposition("parameters", n, index_sets, labels)
    dec.validate()
    return dec


def random_decomposition(n: int, subdomains: int, seed: int = 0) -> Decomposition:
    """A seeded random partition of the ``n`` scalar parameters into equal-size sets."""
    if subdomains < 1 or subdomains > n:
        raise ConfigError(f"decomposition 'random': subdomains = {subdomains}; allowed: 1..{n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    index_sets = [torch.sort(part).values for part in torch.tensor_split(perm, subdomains)]
    dec = Decomposition("parameters", n, index_sets, [f"random[{k}]" for k in range(subdomains)])
    dec.validate()
    return dec


def data_decomposition(n: int, subdomains: int) -> Decomposition:
    """``subdomains`` data shards; every shard owns all ``n`` parameters."""
    if subdomains < 1:
        raise ConfigError(f"decomposition 'data': subdomains = {subdomains}; allowed: int >= 1")
    all_idx = torch.arange(n)
    return Decomposition("data", n, [all_idx] * subdomains, [f"shard[{k}]" for k in range(subdomains)])


def shard_batch(batch: Any, k: int, parts: int) -> Any:
    """Shard ``k`` of ``parts`` of ``batch``.

    A batch type may define ``shard(k, parts)``; otherwise the batch must be a dataclass: every
    tensor field with at least one dimension is cut into ``parts`` contiguous chunks along dim 0
    (``torch.tensor_split``, so each point set of a PINN batch – interior, boundary, initial – is
    sharded proportionally), other fields are copied, and ``size`` becomes the shard's share of
    ``batch.size``. Losses that are means over points then give unbiased shard losses.
    """
    if hasattr(batch, "shard"):
        return batch.shard(k, parts)
    if not dataclasses.is_dataclass(batch):
        raise ConfigError(
            f"decomposition 'data': cannot shard a batch of type {type(batch).__name__} "
            "(needs a shard(k, parts) method or to be a dataclass of tensors)"
        )
    if batch.size < parts:
        raise ConfigError(f"decomposition 'data': batch of {batch.size} samples cannot be cut into {parts} shards")
    fields = {}
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        if f.name == "size":
            value = int(torch.tensor_split(torch.arange(batch.size), parts)[k].numel())
        elif isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] >= parts:
            value = torch.tensor_split(value, parts)[k]
        fields[f.name] = value
    return dataclasses.replace(batch, **fields)


def build(
    kind: str, names: Sequence[str], numels: Sequence[int], subdomains: int, overlap: int, seed: int
) -> Decomposition:
    n = int(sum(numels))
    if kind == "layers":
        return layer_decomposition(names, numels, subdomains, overlap)
    if overlap:
        raise ConfigError(f"decomposition {kind!r}: overlap = {overlap} is only supported for 'layers'; allowed: 0")
    if kind == "random":
        return random_decomposition(n, subdomains, seed)
    if kind == "data":
        return data_decomposition(n, subdomains)
    raise ConfigError(f"unknown decomposition {kind!r}; allowed: 'layers', 'random', 'data'")
