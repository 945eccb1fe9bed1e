"""Operator norms of prolongations, needed to keep coarse steps inside fine trust regions."""

from __future__ import annotations

import torch
from torch import Tensor

from ml2bench.core.hierarchy import Transfer


def prolongation_T(transfer: Transfer, w: Tensor, n_coarse: int) -> Tensor:
    """Pᵀ w by reverse-mode differentiation of the (linear) prolongation."""
    z = torch.zeros(n_coarse, dtype=w.dtype, device=w.device)
    _, vjp = torch.func.vjp(transfer.prolongate, z)
    (out,) = vjp(w)
    return out


def prolongation_norm(
    transfer: Transfer,
    n_coarse: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    iters: int = 100,
    seed: int = 0,
) -> float:
    """‖P‖₂ by power iteration on PᵀP (inflated by 5 % so that
    bounds derived from it stay safe when the iteration has not fully converged)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(n_coarse, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        w = prolongation_T(transfer, transfer.prolongate(v), n_coarse)
        lam = float(w.norm())
        if lam == 0.0:
            return 0.0
        v = w / lam
    return float(lam**0.5) * 1.05
