"""Transfer operators between ODE-form residual networks of depth L (fine) and L/2 (coarse).

Block parameters are interpolated in "time" (depth) with a matrix M ∈ R^{L×L/2}; parameters
outside ``blocks`` (opening and closing layers) are shared and copied.

- ``prolongate`` (P): fine block i = Σ_k M[i, k] · coarse block k.
- ``restrict_grad`` (R_g = Pᵀ): the coarse block with step 2h stands for two fine blocks with step
  h, so the coarse loss approximates f_h(P y) and its gradient is Pᵀ ∇f_h (variational scaling).
- ``restrict`` (R_x = (MᵀM)⁻¹Mᵀ on blocks): the left inverse of P, so R_x P = I exactly. For
  piecewise-constant M it is the average of the two fine blocks, i.e. R_x = ½ Pᵀ on blocks.

``kind="constant"``: fine blocks 2k and 2k+1 copy coarse block k. ``kind="linear"``: linear
interpolation between block midpoints t_i = (i + ½) h, constant beyond the first/last coarse
midpoint.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

KINDS = ("constant", "linear")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def interpolation_matrix(fine_depth: int, kind: str) -> Tensor:
    """M (fine_depth × fine_depth/2) in float64."""
    if fine_depth % 2:
        raise ValueError(f"depth {fine_depth} cannot be halved")
    if kind not in KINDS:
        raise ValueError(f"unknown interpolation {kind!r}; allowed: {', '.join(KINDS)}")
    coarse_depth = fine_depth // 2
    M = torch.zeros(fine_depth, coarse_depth, dtype=torch.float64)
    for i in range(fine_depth):
        if kind == "constant":
            M[i, i // 2] = 1.0
            continue
        s = i / 2 - 0.25  # fine midpoint in coarse-index units
        if s <= 0:
            M[i, 0] = 1.0
        elif s >= coarse_depth - 1:
            M[i, coarse_depth - 1] = 1.0
        else:
            k = int(s)
            w = s - k
            M[i, k], M[i, k + 1] = 1 - w, w
    return M


def _layout(model: nn.Module) -> tuple[Tensor, Tensor, int]:
    """Flat indices of shared parameters, and of block parameters as a (depth, block numel) array."""
    offset = 0
    shared: list[Tensor] = []
    blocks: dict[int, list[Tensor]] = {}
    for name, p in model.named_parameters():
        idx = torch.arange(offset, offset + p.numel())
        offset += p.numel()
        m = _BLOCK.match(name)
        if m:
            blocks.setdefault(int(m.group(1)), []).append(idx)
        else:
            shared.append(idx)
    depth = len(blocks)
    block_idx = torch.stack([torch.cat(blocks[i]) for i in range(depth)]) if depth else torch.empty(0, 0)
    return (torch.cat(shared) if shared else torch.empty(0, dtype=torch.long)), block_idx.long(), offset


class DepthTransfer:
    """P, R_x and R_g between two ODE-form residual networks (see module docstring)."""

    def __init__(self, fine: nn.Module, coarse: nn.Module, kind: str = "constant") -> None:
        self.shared_f, self.blocks_f, self.n_fine = _layout(fine)
        self.shared_c, self.blocks_c, self.n_coarse = _layout(coarse)
        if self.blocks_f.shape[0] != 2 * self.blocks_c.shape[0] or self.shared_f.numel() != self.shared_c.numel():
            raise ValueError("coarse network must have half the blocks of the fine one and the same shared layers")
        if self.blocks_f.shape[1] != self.blocks_c.shape[1]:
            raise ValueError("fine and coarse blocks must have the same size")
        M = interpolation_matrix(self.blocks_f.shape[0], kind)
        self.kind = kind
        self.M = M
        self.R = torch.linalg.solve(M.T @ M, M.T)  # left inverse of M
        self.MT = M.T.contiguous()
        self._cache: dict[tuple, Tensor] = {}

    def _on(self, t: Tensor, like: Tensor) -> Tensor:
        """``t`` on ``like``'s device (and dtype for floats), cached: no host copies per call."""
        dtype = like.dtype if t.is_floating_point() else t.dtype
        key = (id(t), like.device, dtype)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = t.to(device=like.device, dtype=dtype)
        return cached

    def _apply(
        self,
        x: Tensor,
        n_out: int,
        shared_in: Tensor,
        shared_out: Tensor,
        blocks_in: Tensor,
        blocks_out: Tensor,
        A: Tensor,
    ) -> Tensor:
        out = x.new_empty(n_out)
        out[self._on(shared_out, x)] = x[self._on(shared_in, x)]
        out[self._on(blocks_out, x)] = self._on(A, x) @ x[self._on(blocks_in, x)]
        return out

    def prolongate(self, x_coarse: Tensor) -> Tensor:
        return self._apply(x_coarse, self.n_fine, self.shared_c, self.shared_f, self.blocks_c, self.blocks_f, self.M)

    def restrict(self, x_fine: Tensor) -> Tensor:
        return self._apply(x_fine, self.n_coarse, self.shared_f, self.shared_c, self.blocks_f, self.blocks_c, self.R)

    def restrict_grad(self, g_fine: Tensor) -> Tensor:
        return self._apply(g_fine, self.n_coarse, self.shared_f, self.shared_c, self.blocks_f, self.blocks_c, self.MT)
