"""The optimizers of :mod:`ml2bench.optim`: each one the registered method of the benchmark behind
:class:`~ml2bench.optim.base.MethodOptimizer` (hyper-parameters, defaults and checks are the
method's; the list in each docstring is generated from its ``Param`` declarations)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.params import UnsupportedModelError
from ml2bench.dd.parallel import Comm
from ml2bench.methods.base import Method
from ml2bench.methods.lbfgs import LBFGS as _LBFGS
from ml2bench.methods.mgopt import MGOpt as _MGOpt
from ml2bench.methods.rmtr import RMTR as _RMTR
from ml2bench.methods.schwarz import Schwarz as _Schwarz
from ml2bench.methods.tr import TrustRegion as _TrustRegion
from ml2bench.optim.base import MethodOptimizer


class RMTR(MethodOptimizer):
    """Recursive multilevel trust region (Gratton, Sartenaer & Toint 2008; Kopaničáková & Krause 2022),
    V-cycles over the model's coarsened residual stacks (:mod:`ml2bench.methods.rmtr`).

    ``RMTR(model, levels=3)`` finds the :class:`~ml2bench.nn.ResidualStack` modules and builds the
    coarse models from every other branch (h doubled); closures must take the model."""

    method_cls = _RMTR
    multilevel = True


class MGOpt(MethodOptimizer):
    """MG/OPT (Nash 2000): V-cycles with τ-corrected coarse models and a fine line search
    (:mod:`ml2bench.methods.mgopt`); coarse levels as for :class:`RMTR`."""

    method_cls = _MGOpt
    multilevel = True


class TrustRegion(MethodOptimizer):
    """Trust region with an L-BFGS/L-SR1 model (or exact Hessian-vector products) and Steihaug–Toint
    CG (:mod:`ml2bench.methods.tr`); takes torch's zero-argument closure too."""

    method_cls = _TrustRegion


class LBFGS(MethodOptimizer):
    """L-BFGS with torch's strong-Wolfe line search that never evaluates a point twice
    (:mod:`ml2bench.methods.lbfgs`); takes torch's zero-argument closure too."""

    method_cls = _LBFGS


class _SchwarzOptimizer(MethodOptimizer):
    """Nonlinear Schwarz preconditioning over parameter subdomains (or data shards, batch style).

    Distributed: one replica per rank, the subdomains solved on different ranks and combined by
    one all-reduce (:mod:`ml2bench.dd.parallel`). ``process_group=`` names the group; without it a
    ``torchrun`` launch joins (or initialises) the default group, and a plain process runs
    sequentially. Ranks that disagree on f(x₀) raise instead of hanging."""

    method_cls = _Schwarz
    hidden = ("parallel", "processes", "threads_per_process")

    def __init__(self, model: nn.Module | None = None, /, *, process_group: Any = None, **kwargs: Any) -> None:
        self._process_group = process_group
        super().__init__(model, **kwargs)

    def _make_method(self, hierarchy: Hierarchy, x0: Tensor) -> Method:
        hp = dict(self.hp, parallel=False)  # no spawned workers: the ranks are the user's
        if self._process_group is None:  # torchrun: the method joins the launched group itself
            return _Schwarz(hierarchy, x0, hp)
        if not torch.distributed.is_initialized():
            raise UnsupportedModelError(
                f"{type(self).__name__}: process_group= given but torch.distributed is not initialised"
            )
        comm = Comm.of(self._process_group)
        if comm.world > 1 and hp["variant"] != "additive":
            raise UnsupportedModelError(
                f"{type(self).__name__}: variant='multiplicative' is sequential; on {comm.world} ranks use "
                f"variant='additive'"
            )
        return _Schwarz(hierarchy, x0, hp, _comm=comm)


class SPQN(_SchwarzOptimizer):
    """SPQN (Kopaničáková, Kothari, Karniadakis & Krause 2024): additive or multiplicative Schwarz
    corrections globalised by a strong-Wolfe line search and L-BFGS steps
    (:mod:`ml2bench.methods.schwarz`, ``globalization='lbfgs'``). Distributed with ``torchrun`` or
    ``process_group=`` as described for the Schwarz optimizers (:class:`_SchwarzOptimizer`)."""

    fixed = {"globalization": "lbfgs"}


class APTS(_SchwarzOptimizer):
    """APTS (Trotti, Cruz, Kopaničáková & Krause): Schwarz corrections accepted by a global trust
    region (:mod:`ml2bench.methods.schwarz`, ``globalization='tr'``). Distributed as :class:`SPQN`."""

    fixed = {"globalization": "tr"}
