"""The full Moré–Garbow–Hillstrom (1981) unconstrained test set as residual functions in torch
(float64): f(x) = Σ_i r_i(x)², standard starting points x₀, and the minimum values f* of the
literature (MGH 1981; each was matched to all printed digits by a tight Levenberg–Marquardt solve
in an outside review). ``python -m ml2bench.bench mgh --all [--scale 10]`` runs the methods on
all of them against scipy's L-BFGS-B; :data:`ml2bench.bench.mgh.PROBLEMS` keeps the five badly
scaled ones of the table in docs/methods/mgh.md.

Where a standard start leads solvers to a known non-global local minimum (:data:`LOCAL`), a
method that stops there with its gradient test satisfied is not a false convergence.
"""

from __future__ import annotations

import math

import torch

T = torch.float64


def _t(v):
    return torch.tensor(v, dtype=T)


# 1 Rosenbrock
def r_rosen(x):
    return torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


# 2 Freudenstein-Roth
def r_froth(x):
    return torch.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1], -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])


# 3 Powell badly scaled
def r_pbs(x):
    return torch.stack([1e4 * x[0] * x[1] - 1, torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001])


# 4 Brown badly scaled
def r_bbs(x):
    return torch.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


# 5 Beale
def r_beale(x):
    y = _t([1.5, 2.25, 2.625])
    i = _t([1.0, 2.0, 3.0])
    return y - x[0] * (1 - x[1] ** i)


# 6 Jennrich-Sampson (m=10)
def r_js(x):
    i = torch.arange(1, 11, dtype=T)
    return 2 + 2 * i - (torch.exp(i * x[0]) + torch.exp(i * x[1]))


# 7 Helical valley
def r_helical(x):
    # MGH: theta = atan(x2/x1)/(2 pi) (x1 > 0), + 0.5 (x1 < 0), 0.25 sign(x2) (x1 = 0); via atan2, finite at x1 = 0
    a = torch.atan2(x[1], x[0]) / (2 * math.pi)
    theta = torch.where(a < -0.25, a + 1, a)
    return torch.stack([10 * (x[2] - 10 * theta), 10 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]])


# 8 Bard
_BARD_Y = _t([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39])


def r_bard(x):
    u = torch.arange(1, 16, dtype=T)
    v = 16 - u
    w = torch.minimum(u, v)
    return _BARD_Y - (x[0] + u / (v * x[1] + w * x[2]))


# 9 Gaussian
_GAUSS_Y = _t(
    [
        0.0009,
        0.0044,
        0.0175,
        0.0540,
        0.1295,
        0.2420,
        0.3521,
        0.3989,
        0.3521,
        0.2420,
        0.1295,
        0.0540,
        0.0175,
        0.0044,
        0.0009,
    ]
)


def r_gauss(x):
    t = (8 - torch.arange(1, 16, dtype=T)) / 2
    return x[0] * torch.exp(-x[1] * (t - x[2]) ** 2 / 2) - _GAUSS_Y


# 10 Meyer
_MEYER_Y = _t([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427, 3820, 3307, 2872])


def r_meyer(x):
    t = 45 + 5 * torch.arange(1, 17, dtype=T)
    return x[0] * torch.exp(x[1] / (t + x[2])) - _MEYER_Y


# 11 Gulf research and development (m = 99)
def r_gulf(x, m=99):
    t = torch.arange(1, m + 1, dtype=T) / 100
    y = 25 + (-50 * torch.log(t)) ** (2.0 / 3.0)
    return torch.exp(-(torch.abs(y - x[1]) ** x[2]) / x[0]) - t


# 12 Box 3-D (m = 10)
def r_box(x, m=10):
    t = 0.1 * torch.arange(1, m + 1, dtype=T)
    return torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10 * t))


# 13 Powell singular / 22 extended Powell singular
def r_powell(x):
    x = x.view(-1, 4)
    a, b, c, d = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return torch.stack([a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2], 1).reshape(
        -1
    )


# 14 Wood
def r_wood(x):
    return torch.stack(
        [
            10 * (x[1] - x[0] ** 2),
            1 - x[0],
            math.sqrt(90) * (x[3] - x[2] ** 2),
            1 - x[2],
            math.sqrt(10) * (x[1] + x[3] - 2),
            (x[1] - x[3]) / math.sqrt(10),
        ]
    )


# 15 Kowalik-Osborne
_KO_Y = _t([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246])
_KO_U = _t([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def r_ko(x):
    u = _KO_U
    return _KO_Y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


# 16 Brown-Dennis (m = 20)
def r_bd(x):
    t = torch.arange(1, 21, dtype=T) / 5
    return (x[0] + t * x[1] - torch.exp(t)) ** 2 + (x[2] + x[3] * torch.sin(t) - torch.cos(t)) ** 2


# 17 Osborne 1
_OS1_Y = _t(
    [
        0.844,
        0.908,
        0.932,
        0.936,
        0.925,
        0.908,
        0.881,
        0.850,
        0.818,
        0.784,
        0.751,
        0.718,
        0.685,
        0.658,
        0.628,
        0.603,
        0.580,
        0.558,
        0.538,
        0.522,
        0.506,
        0.490,
        0.478,
        0.467,
        0.457,
        0.448,
        0.438,
        0.431,
        0.424,
        0.420,
        0.414,
        0.411,
        0.406,
    ]
)


def r_os1(x):
    t = 10 * torch.arange(0, 33, dtype=T)
    return _OS1_Y - (x[0] + x[1] * torch.exp(-t * x[3]) + x[2] * torch.exp(-t * x[4]))


# 18 Biggs EXP6 (m = 13)
def r_biggs(x):
    t = 0.1 * torch.arange(1, 14, dtype=T)
    y = torch.exp(-t) - 5 * torch.exp(-10 * t) + 3 * torch.exp(-4 * t)
    return x[2] * torch.exp(-t * x[0]) - x[3] * torch.exp(-t * x[1]) + x[5] * torch.exp(-t * x[4]) - y


# 19 Osborne 2
_OS2_Y = _t(
    [
        1.366,
        1.191,
        1.112,
        1.013,
        0.991,
        0.885,
        0.831,
        0.847,
        0.786,
        0.725,
        0.746,
        0.679,
        0.608,
        0.655,
        0.616,
        0.606,
        0.602,
        0.626,
        0.651,
        0.724,
        0.649,
        0.649,
        0.694,
        0.644,
        0.624,
        0.661,
        0.612,
        0.558,
        0.533,
        0.495,
        0.500,
        0.423,
        0.395,
        0.375,
        0.372,
        0.391,
        0.396,
        0.405,
        0.428,
        0.429,
        0.523,
        0.562,
        0.607,
        0.653,
        0.672,
        0.708,
        0.633,
        0.668,
        0.645,
        0.632,
        0.591,
        0.559,
        0.597,
        0.625,
        0.739,
        0.710,
        0.729,
        0.720,
        0.636,
        0.581,
        0.428,
        0.292,
        0.162,
        0.098,
        0.054,
    ]
)


def r_os2(x):
    t = torch.arange(0, 65, dtype=T) / 10
    return _OS2_Y - (
        x[0] * torch.exp(-t * x[4])
        + x[1] * torch.exp(-((t - x[8]) ** 2) * x[5])
        + x[2] * torch.exp(-((t - x[9]) ** 2) * x[6])
        + x[3] * torch.exp(-((t - x[10]) ** 2) * x[7])
    )


# 20 Watson
def r_watson(x):
    n = x.numel()
    t = torch.arange(1, 30, dtype=T) / 29
    j = torch.arange(n, dtype=T)
    P = t[:, None] ** j[None, :]  # t^(j-1), j = 1..n
    s1 = (P[:, :-1] * (j[1:] * x[1:])[None, :]).sum(1)  # sum_{j=2}^n (j-1) x_j t^(j-2)
    s2 = (P * x[None, :]).sum(1)
    return torch.cat([s1 - s2**2 - 1, x[0:1], (x[1] - x[0] ** 2 - 1).reshape(1)])


# 21 Extended Rosenbrock
def r_xrosen(x):
    x = x.view(-1, 2)
    return torch.stack([10 * (x[:, 1] - x[:, 0] ** 2), 1 - x[:, 0]], 1).reshape(-1)


# 23 Penalty I
def r_pen1(x):
    return torch.cat([math.sqrt(1e-5) * (x - 1), ((x * x).sum() - 0.25).reshape(1)])


# 24 Penalty II
def r_pen2(x):
    n = x.numel()
    a = math.sqrt(1e-5)
    i = torch.arange(2, n + 1, dtype=T)
    y = torch.exp(i / 10) + torch.exp((i - 1) / 10)
    f2 = a * (torch.exp(x[1:] / 10) + torch.exp(x[:-1] / 10) - y)
    f3 = a * (torch.exp(x[1:] / 10) - math.exp(-0.1))
    w = torch.arange(n, 0, -1, dtype=T)
    return torch.cat([(x[0] - 0.2).reshape(1), f2, f3, ((w * x * x).sum() - 1).reshape(1)])


# 25 Variably dimensioned
def r_vardim(x):
    n = x.numel()
    j = torch.arange(1, n + 1, dtype=T)
    s = (j * (x - 1)).sum()
    return torch.cat([x - 1, s.reshape(1), (s**2).reshape(1)])


# 26 Trigonometric
def r_trig(x):
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=T)
    return n - torch.cos(x).sum() + i * (1 - torch.cos(x)) - torch.sin(x)


# 27 Brown almost-linear
def r_bal(x):
    n = x.numel()
    return torch.cat([x[:-1] + x.sum() - (n + 1), (torch.prod(x) - 1).reshape(1)])


# 28 Discrete boundary value
def r_dbv(x):
    n = x.numel()
    h = 1.0 / (n + 1)
    t = torch.arange(1, n + 1, dtype=T) * h
    z = torch.zeros(1, dtype=T)
    xm = torch.cat([z, x[:-1]])
    xp = torch.cat([x[1:], z])
    return 2 * x - xm - xp + h * h * (x + t + 1) ** 3 / 2


# 29 Discrete integral equation
def r_die(x):
    n = x.numel()
    h = 1.0 / (n + 1)
    t = torch.arange(1, n + 1, dtype=T) * h
    c = (x + t + 1) ** 3
    a = torch.cumsum(t * c, 0)  # sum_{j<=i} t_j c_j
    b_all = torch.cumsum(((1 - t) * c).flip(0), 0).flip(0)  # sum_{j>=i}
    b = torch.cat([b_all[1:], torch.zeros(1, dtype=T)])  # sum_{j>i}
    return x + h * ((1 - t) * a + t * b) / 2


# 30 Broyden tridiagonal
def r_btri(x):
    z = torch.zeros(1, dtype=T)
    xm = torch.cat([z, x[:-1]])
    xp = torch.cat([x[1:], z])
    return (3 - 2 * x) * x - xm - 2 * xp + 1


# 31 Broyden banded (ml = 5, mu = 1)
def r_bband(x):
    n = x.numel()
    idx = torch.arange(n)
    J = (
        (idx[None, :] >= (idx[:, None] - 5)) & (idx[None, :] <= (idx[:, None] + 1)) & (idx[None, :] != idx[:, None])
    ).to(T)
    return x * (2 + 5 * x * x) + 1 - J @ (x * (1 + x))


# 32 Linear full rank (m = 2n)
def r_lfr(x, m=None):
    n = x.numel()
    m = m or 2 * n
    s = x.sum()
    return torch.cat([x - 2 * s / m - 1, (-2 * s / m - 1).expand(m - n)])


# 33 Linear rank 1 (m = 2n)
def r_lr1(x, m=None):
    n = x.numel()
    m = m or 2 * n
    j = torch.arange(1, n + 1, dtype=T)
    i = torch.arange(1, m + 1, dtype=T)
    return i * (j * x).sum() - 1


# 34 Linear rank 1 with zero columns and rows (m = 2n)
def r_lr1z(x, m=None):
    n = x.numel()
    m = m or 2 * n
    j = torch.arange(2, n, dtype=T)
    s = (j * x[1 : n - 1]).sum()
    i = torch.arange(2, m, dtype=T)
    one = torch.ones(1, dtype=T)
    return torch.cat([-one, (i - 1) * s - 1, -one])


# 35 Chebyquad (m = n)
def r_cheb(x):
    n = x.numel()
    m = n
    y = 2 * x - 1
    T0, T1 = torch.ones_like(y), y
    vals = [T1]
    for _ in range(2, m + 1):
        T0, T1 = T1, 2 * y * T1 - T0
        vals.append(T1)
    Tm = torch.stack(vals)  # m x n, T_i(x_j) shifted
    i = torch.arange(1, m + 1, dtype=T)
    target = torch.where(i % 2 == 0, -1 / (i * i - 1), torch.zeros_like(i))
    return Tm.mean(1) - target


#: (name, MGH number, standard x₀, f* of the literature, residuals)
TABLE = [
    ("rosenbrock", 1, (-1.2, 1.0), 0.0, r_rosen),
    ("freudenstein_roth", 2, (0.5, -2.0), 0.0, r_froth),
    ("powell_badly_scaled", 3, (0.0, 1.0), 0.0, r_pbs),
    ("brown_badly_scaled", 4, (1.0, 1.0), 0.0, r_bbs),
    ("beale", 5, (1.0, 1.0), 0.0, r_beale),
    ("jennrich_sampson", 6, (0.3, 0.4), 124.362182355, r_js),
    ("helical_valley", 7, (-1.0, 0.0, 0.0), 0.0, r_helical),
    ("bard", 8, (1.0, 1.0, 1.0), 8.21487e-3, r_bard),
    ("gaussian", 9, (0.4, 1.0, 0.0), 1.12793e-8, r_gauss),
    ("meyer", 10, (0.02, 4000.0, 250.0), 87.9458, r_meyer),
    ("gulf", 11, (5.0, 2.5, 0.15), 0.0, r_gulf),
    ("box3d", 12, (0.0, 10.0, 20.0), 0.0, r_box),
    ("powell_singular", 13, (3.0, -1.0, 0.0, 1.0), 0.0, r_powell),
    ("wood", 14, (-3.0, -1.0, -3.0, -1.0), 0.0, r_wood),
    ("kowalik_osborne", 15, (0.25, 0.39, 0.415, 0.39), 3.07505e-4, r_ko),
    ("brown_dennis", 16, (25.0, 5.0, -5.0, -1.0), 85822.2, r_bd),
    ("osborne1", 17, (0.5, 1.5, -1.0, 0.01, 0.02), 5.46489e-5, r_os1),
    ("biggs_exp6", 18, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 0.0, r_biggs),
    ("osborne2", 19, (1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5), 4.01377e-2, r_os2),
    ("watson_n6", 20, (0.0,) * 6, 2.28767e-3, r_watson),
    ("watson_n9", 20, (0.0,) * 9, 1.39976e-6, r_watson),
    ("ext_rosenbrock_n10", 21, (-1.2, 1.0) * 5, 0.0, r_xrosen),
    ("ext_rosenbrock_n100", 21, (-1.2, 1.0) * 50, 0.0, r_xrosen),
    ("ext_powell_n12", 22, (3.0, -1.0, 0.0, 1.0) * 3, 0.0, r_powell),
    ("penalty1_n10", 23, tuple(float(j) for j in range(1, 11)), 7.08765e-5, r_pen1),
    ("penalty2_n10", 24, (0.5,) * 10, 2.93660e-4, r_pen2),
    ("var_dim_n10", 25, tuple(1 - j / 10 for j in range(1, 11)), 0.0, r_vardim),
    ("trigonometric_n10", 26, (0.1,) * 10, 0.0, r_trig),
    ("brown_almost_linear_n10", 27, (0.5,) * 10, 0.0, r_bal),
    ("discrete_bv_n10", 28, tuple((j / 11) * (j / 11 - 1) for j in range(1, 11)), 0.0, r_dbv),
    ("discrete_int_n10", 29, tuple((j / 11) * (j / 11 - 1) for j in range(1, 11)), 0.0, r_die),
    ("broyden_tridiag_n10", 30, (-1.0,) * 10, 0.0, r_btri),
    ("broyden_banded_n10", 31, (-1.0,) * 10, 0.0, r_bband),
    ("linear_full_rank_n10", 32, (1.0,) * 10, 10.0, r_lfr),
    ("linear_rank1_n10", 33, (1.0,) * 10, 20 * 19 / (2 * 41), r_lr1),
    ("linear_rank1_zero_n10", 34, (1.0,) * 10, (400 + 60 - 6) / (2 * 37), r_lr1z),
    ("chebyquad_n8", 35, tuple(j / 9 for j in range(1, 9)), 3.51687e-3, r_cheb),
]

#: known non-global local minima that standard starts lead to (literature values)
LOCAL = {
    "freudenstein_roth": 48.9842,
    "biggs_exp6": 5.65565e-3,
    "trigonometric_n10": 2.79506e-5,
    "brown_almost_linear_n10": 1.0,
}
