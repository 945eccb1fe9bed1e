"""Where a trained Burgers PINN errs: share of the squared test error near the front, the front's
zero crossing against the reference, and the PDE residual on a fine grid (docs/pinn.md).

    ml2bench run --problem pinn_burgers ... --save-model net.pt --out OUT
    python tools/burgers_front.py net.pt [KEY=VALUE ...]   # the run's problem.KEY values
"""

import sys

import numpy as np
import torch
import yaml

from ml2bench.problems import PROBLEMS

hp = dict(constraints="hard", width=20, depth=4, n_interior=2000)
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    hp[k] = yaml.safe_load(v)
cls = PROBLEMS.get("pinn_burgers")
prob = cls(cls.params.validate(hp, "pinn_burgers"), seed=0, device=torch.device("cpu"), dtype=torch.float32)
net = prob.build_model(0)
net.load_state_dict(torch.load(sys.argv[1]))


def u_of(p: torch.Tensor) -> torch.Tensor:
    g, ell = prob.lifting(p)
    return g + ell * net(p).reshape(-1)


X, U = prob.reference_grid()
U = U.reshape(-1)
u = u_of(torch.tensor(X, dtype=torch.float32)).detach().double().numpy()
err = u - U
x, t = X[:, 0], X[:, 1]
print(f"rel. L2 {np.linalg.norm(err) / np.linalg.norm(U):.4f}")
front = (t >= 0.3) & (abs(x) < 0.1)
print(f"share of the squared error in |x| < 0.1, t >= 0.3: {np.sum(err[front] ** 2) / np.sum(err**2):.2f}")
for tt in (0.5, 0.75, 1.0):
    m = abs(t - tt) < 0.006
    o = np.argsort(x[m])
    xs, us, Us = x[m][o], u[m][o], U[m][o]
    k = np.argmin(abs(xs))
    print(f"t = {tt}: u near x = 0 {np.round(us[k - 3 : k + 4], 3)}, reference {np.round(Us[k - 3 : k + 4], 3)}")
pf = torch.cartesian_prod(torch.linspace(-1, 1, 801), torch.linspace(0, 1, 201)).requires_grad_(True)
r = prob.pde_residual(u_of, pf, torch.zeros(len(pf))).detach()
print(f"mean squared PDE residual on an 801 x 201 grid: {float(r.square().mean()):.3g}")
