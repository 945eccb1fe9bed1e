"""The on-disk cache of PDE references: hit, key, atomicity, corruption, opt-out."""

from __future__ import annotations

import numpy as np
import pytest

from ml2bench.core.cost import cache
from ml2bench.problems.pinn.base import tabulated_grid
from ml2bench.problems.pinn.reference import allen_cahn, burgers

CALLS = []


def _solver(n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    CALLS.append((n, scale))
    return np.arange(n, dtype=np.float64) * scale, np.ones((2, n))


@pytest.fixture
def disk(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    CALLS.clear()
    return tmp_path


def test_computed_once_then_read_from_disk(disk):
    a = cache.cached_arrays(_solver, 5, 2.0)
    b = cache.cached_arrays(_solver, 5, 2.0)
    assert CALLS == [(5, 2.0)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len(list((disk / "arrays").glob("*.npz"))) == 1
    assert not list((disk / "arrays").glob("*.tmp"))  # the temporary file was renamed


def test_key_depends_on_arguments_and_function(disk):
    cache.cached_arrays(_solver, 5, 2.0)
    cache.cached_arrays(_solver, 5, 3.0)
    cache.cached_arrays(_solver, 6, 2.0)
    assert len(CALLS) == 3
    assert cache.key_of(_solver, (5, 2.0)) != cache.key_of(burgers.reference_grid, (5, 2.0))


def test_corrupt_entry_is_recomputed(disk):
    cache.cached_arrays(_solver, 4, 1.0)
    (entry,) = (disk / "arrays").glob("*.npz")
    entry.write_bytes(b"not a zip file")
    x, _ = cache.cached_arrays(_solver, 4, 1.0)
    assert len(CALLS) == 2 and x.tolist() == [0.0, 1.0, 2.0, 3.0]
    x, _ = cache.cached_arrays(_solver, 4, 1.0)  # rewritten: read back now
    assert len(CALLS) == 2


def test_off_disables_disk(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, "off")
    CALLS.clear()
    cache.cached_arrays(_solver, 3, 1.0)
    cache.cached_arrays(_solver, 3, 1.0)
    assert len(CALLS) == 2


def test_failed_write_leaves_no_partial_file(disk, monkeypatch):
    def broken_savez(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        cache.cached_arrays(_solver, 3, 1.0)
    assert not list((disk / "arrays").iterdir())


def test_reference_from_disk_equals_fresh_solve(disk):
    tabulated_grid.cache_clear()
    pts, ref = tabulated_grid(allen_cahn.reference_grid, 16, 5)  # solved, stored
    tabulated_grid.cache_clear()
    allen_cahn._reference_grid_cached.cache_clear()
    allen_cahn._reference_coefficients.cache_clear()
    pts2, ref2 = tabulated_grid(allen_cahn.reference_grid, 16, 5)  # read from disk
    np.testing.assert_array_equal(ref, ref2)
    np.testing.assert_array_equal(pts, pts2)
    x, t, U = allen_cahn.reference_grid(16, 5)  # a fresh solve agrees bit for bit
    np.testing.assert_array_equal(ref2, U.ravel())
    assert allen_cahn._reference_coefficients.cache_info().misses == 1
