"""On-disk cache of deterministic, expensive arrays (PDE reference solutions), shared by runs.

Why: a sweep starts one process per run, and an in-process ``lru_cache`` is empty in each; the
Allen–Cahn ETDRK4 reference alone took ~0.7 s per run. Entries are keyed by the producing
function, its arguments and a hash of the source of the module that defines it, so editing a
solver invalidates its entries. Writes are atomic (temporary file in the same directory, then
``os.replace``), so concurrent jobs never read a half-written file.

The cache is an optimisation and never stops a run: an entry that cannot be read (truncated,
garbage, unreadable) is recomputed and replaced; a cache that cannot be written (read-only, full,
under a regular file) is used no further by this process, which says so in one warning line on
stderr and computes everything it needs.

Location: ``$ML2BENCH_CACHE`` if set, else the user cache directory (``platformdirs``:
``~/.cache/ml2bench`` on Linux). ``ML2BENCH_CACHE=off`` disables the disk cache.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ENV = "ML2BENCH_CACHE"


def cache_dir() -> Path | None:
    """The cache directory (created on first write), or None when disabled."""
    value = os.environ.get(ENV, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value)
    import platformdirs

    return Path(platformdirs.user_cache_dir("ml2bench"))


@functools.cache
def _source_hash(module_name: str) -> str:
    source = inspect.getsource(sys.modules[module_name])
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def key_of(fn: Callable[..., Any], args: tuple) -> str:
    ident = {
        "fn": f"{fn.__module__}.{fn.__qualname__}",
        "args": [repr(a) for a in args],
        "source": _source_hash(fn.__module__),
        "numpy": np.__version__.split(".")[0],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


_unusable: set[Path] = set()  # cache folders this process could not write (warned once each)


def cached_arrays(fn: Callable[..., tuple[np.ndarray, ...]], *args: Any) -> tuple[np.ndarray, ...]:
    """``fn(*args)`` (a tuple of arrays), read from the disk cache when present, else computed and
    stored. Arguments must have a stable ``repr`` (numbers, strings)."""
    root = cache_dir()
    if root is None or root in _unusable:
        return fn(*args)
    path = root / "arrays" / f"{fn.__name__}-{key_of(fn, args)}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return tuple(data[f"a{i}"] for i in range(len(data.files)))
    except Exception:  # absent, truncated (BadZipFile), garbage, unreadable: compute and replace
        pass
    result = fn(*args)
    try:
        _atomic_save(path, result)
    except OSError as err:
        _unusable.add(root)
        print(
            f"ml2bench: warning: cache {str(root)!r} cannot be written ({err.strerror or err}); running without "
            f"it (set {ENV} to a writable folder, or to 'off')",
            file=sys.stderr,
        )
    return result


def _atomic_save(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{f"a{i}": np.asarray(a) for i, a in enumerate(arrays)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
