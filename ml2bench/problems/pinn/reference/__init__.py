"""Reference solutions (numpy, float64) for the PINN benchmark problems.

Each module documents the accuracy it was verified to (``tests/test_pde_reference.py``):
``poisson`` and ``klein_gordon`` are closed-form/manufactured, ``burgers`` is the exact
Cole–Hopf solution by Gauss–Hermite quadrature, ``allen_cahn`` is a Fourier/ETDRK4 solve (periodic),
``allen_cahn_dirichlet`` a Chebyshev/Radau solve (the SPQN authors' Dirichlet variant).
"""

from ml2bench.problems.pinn.reference import allen_cahn, allen_cahn_dirichlet, burgers, klein_gordon, poisson

__all__ = ["allen_cahn", "allen_cahn_dirichlet", "burgers", "klein_gordon", "poisson"]
