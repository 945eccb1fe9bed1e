"""The on-disk cache of PDE references: hit, key, atomicity, corruption, opt-out."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch

from ml2bench.cli import main as cli_main
from ml2bench.core.cost import cache
from ml2bench.data.digits import load_digits
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


def test_full_cache_is_a_warning_and_leaves_no_partial_file(disk, monkeypatch, capsys):
    def full_savez(fh, **arrays):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_savez)
    x, _ = cache.cached_arrays(_solver, 3, 1.0)
    assert x.tolist() == [0.0, 1.0, 2.0]
    cache.cached_arrays(_solver, 3, 1.0)  # not written again, not warned again: computed
    assert len(CALLS) == 2 and not list((disk / "arrays").iterdir())
    (line,) = capsys.readouterr().err.splitlines()
    assert "cannot be written (No space left on device); running without it" in line


def test_read_only_cache_is_a_warning(disk, monkeypatch, capsys):
    def read_only(*args, **kwargs):  # as root, chmod does not stop a write: the call fails as a read-only mount
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(cache.tempfile, "mkstemp", read_only)
    assert cache.cached_arrays(_solver, 3, 2.0)[0].tolist() == [0.0, 2.0, 4.0]
    assert "cannot be written (Read-only file system)" in capsys.readouterr().err


def test_cache_under_a_regular_file_does_not_stop_a_run(tmp_path, monkeypatch, capsys):
    """Defect 5: ML2BENCH_CACHE under a regular file killed every digits run with a traceback."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(cache.ENV, str(tmp_path / "file" / "cache"))
    out = tmp_path / "run"
    args = ["run", "--problem", "mlp", "--method", "sgd", "--set", "problem.n_train=100", "--set", "problem.n_test=50"]
    assert cli_main([*args, "--set", "budget.iterations=1", "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if "warning: cache" in line]) == 1, err
    assert (out / "summary.parquet").is_file()


def test_truncated_cache_entry_is_recomputed_and_replaced(tmp_path, monkeypatch):
    """Defect 6: ``truncate -s 100`` of the digits split raised BadZipFile on every later run."""
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    first = load_digits(0)
    (entry,) = (tmp_path / "arrays").glob("_split-*.npz")
    size = entry.stat().st_size
    os.truncate(entry, 100)
    again = load_digits(0)
    torch.testing.assert_close(again.x_train, first.x_train, rtol=0, atol=0)
    assert entry.stat().st_size == size  # replaced by a whole entry
    with np.load(entry) as data:
        assert len(data.files) == 4


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
