"""Fault injection on a whole sweep: after the documented recovery, the tables are those of an
uninterrupted sweep (apart from the columns that measure time).

Faults, in one working folder, one after the other (docs/reliability.md says how to recover):

1. a corrupt cache entry: every ``arrays/*.npz`` of the cache truncated to 100 bytes;
2. a full disk at a random write: ``os.fsync`` (every durable write of ml2bench ends with one)
   fails with ENOSPC from its k-th call on, k drawn from the writes an uninterrupted sweep makes;
   the sweep must fail without leaving a half-written run (``verify``: only missing runs);
   recovery: free space, run ``snakemake`` again;
3. kill -9 of Snakemake, its jobs and the fork server at a random moment of that re-run;
   recovery: ``snakemake --unlock``, then ``snakemake --rerun-incomplete``;
4. deleted ``results/tables/`` and ``figures/``; recovery: ``snakemake``.

The sweeps run with a ``TMPDIR`` of about 200 characters (the fork server must not care). The
disk-full fault is injected in every Python process of the sweep by a ``sitecustomize`` module
on ``PYTHONPATH`` (CI runs in containers where a small tmpfs cannot be mounted).

    python tools/fault_injection.py [--config workflow/config/ci.yaml] [--seed N] [--workdir DIR]

Exit 0 when every check holds; tests/test_fault_injection.py runs it on a four-run sweep.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TIME_WORDS = ("time", "energy", "started_at", "bench_")  # columns that measure time, not results
TABLES = ("history.parquet", "summary.parquet", "comparison.csv", "time_to_target.csv")

SITECUSTOMIZE = '''\
"""Written by tools/fault_injection.py: os.fsync fails with ENOSPC from its k-th call on."""
import errno
import fcntl
import importlib.machinery
import importlib.util
import os
import sys

_COUNTER = os.environ.get("ML2BENCH_FAULT_COUNTER")
if _COUNTER:
    _AT = int(os.environ.get("ML2BENCH_FAULT_ENOSPC_AT") or 0)
    _fsync = os.fsync

    def fsync(fd):
        with open(_COUNTER, "a+") as fh:  # one count over all processes of the sweep
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            n = int(fh.read() or 0) + 1
            fh.seek(0)
            fh.truncate()
            fh.write(str(n))
        if _AT and n >= _AT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _fsync(fd)

    os.fsync = fsync
_HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
)
if _SPEC is not None:  # the environment's own sitecustomize still runs
    _SPEC.loader.exec_module(importlib.util.module_from_spec(_SPEC))
'''


class Sweep:
    """Snakemake on one config in one folder, with the fault hooks in its environment."""

    def __init__(self, workdir: Path, config: Path, cache: Path, hooks: Path, tmpdir: Path) -> None:
        self.workdir, self.config = workdir, config
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(filter(None, [str(hooks), str(REPO), os.environ.get("PYTHONPATH")]))
        self.env = dict(os.environ, PYTHONPATH=path, ML2BENCH_CACHE=str(cache), TMPDIR=str(tmpdir))
        self.env.pop("ML2BENCH_SERVER", None)
        self.counter = workdir / ".fsync-count"

    def command(self, *args: str) -> list[str]:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(self.workdir)]
        return [*cmd, "--configfile", str(self.config), "--cores", "2", *args]

    def run(self, *args: str, enospc_at: int = 0, timeout: float = 900) -> subprocess.CompletedProcess:
        env = dict(self.env, ML2BENCH_FAULT_COUNTER=str(self.counter), ML2BENCH_FAULT_ENOSPC_AT=str(enospc_at))
        self.counter.unlink(missing_ok=True)
        return subprocess.run(
            self.command(*args), cwd=self.workdir, env=env, capture_output=True, text=True, timeout=timeout
        )

    def writes(self) -> int:
        """fsync calls counted by the last run."""
        return int(self.counter.read_text() or 0) if self.counter.is_file() else 0

    def killed_after(self, seconds: float) -> int | None:
        """Start a sweep and kill -9 its whole process group after ``seconds``; its exit status
        when it ended by itself before that, else None."""
        proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Snakemake, its jobs and the fork server's children: one group
        )
        try:
            return proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


def _check(ok: bool, message: str, proc: subprocess.CompletedProcess | None = None) -> None:
    if not ok:
        tail = f"\n--- stderr ---\n{proc.stderr[-4000:]}" if proc is not None else ""
        raise AssertionError(message + tail)


def tables(workdir: Path) -> dict[str, pd.DataFrame]:
    """The aggregated tables without the columns that measure time."""
    out = {}
    for name in TABLES:
        path = workdir / "results" / "tables" / name
        df = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
        out[name] = df.drop(columns=[c for c in df.columns if any(w in c for w in TIME_WORDS)])
    return out


def findings(workdir: Path, config: Path) -> list:
    from ml2bench.sweep.verify import verify

    return verify(workdir / "results", config)[1]


def scenario(config: Path, root: Path, seed: int, say: Callable[[str], None] = print) -> None:
    """Run the reference sweep and the faults above under ``root``; AssertionError on a failed check."""
    rng = random.Random(seed)
    say(f"fault injection: seed {seed}, config {config}, folder {root}")
    hooks, cache = root / "hooks", root / "cache"
    hooks.mkdir(parents=True)
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    long_tmp = root / "tmp" / ("t" * 90) / ("m" * 90)
    long_tmp.mkdir(parents=True)

    ref = Sweep(root / "reference", config, cache, hooks, Path(tempfile.gettempdir()))
    started = time.monotonic()
    proc = ref.run("tables", "results/tables/comparison.csv")  # what is compared; figures are only drawn
    duration = time.monotonic() - started
    _check(proc.returncode == 0, "the uninterrupted sweep failed", proc)
    total = ref.writes()
    _check(total > 0, "the sweep made no durable write (no os.fsync): nothing to fail")
    say(f"reference sweep: {duration:.0f} s, {total} durable writes (fsync)")

    entries = sorted((cache / "arrays").glob("*.npz"))
    _check(bool(entries), f"the sweep left no cache entry in {cache}")
    for entry in entries:
        os.truncate(entry, 100)
    say(f"1. cache: {len(entries)} entries truncated to 100 bytes")

    sweep = Sweep(root / "faulty", config, cache, hooks, long_tmp)
    at = rng.randint(1, total)
    proc = sweep.run(enospc_at=at)
    _check(proc.returncode != 0, f"a full disk from write {at} of {total} went unnoticed", proc)
    left = {f.kind for f in findings(sweep.workdir, config)}
    _check(left <= {"missing", "interrupted"}, f"a full disk left {sorted(left)} runs, not only missing ones")
    say(f"2. disk full from write {at} of {total}: sweep failed (exit {proc.returncode}), no half-written run")

    moment = rng.uniform(0.1, 0.9) * duration
    status = sweep.killed_after(moment)
    say(
        f"3. re-run killed with kill -9 after {moment:.1f} s" + ("" if status is None else f" (it had ended: {status})")
    )
    proc = sweep.run("--unlock")
    _check(proc.returncode == 0, "snakemake --unlock failed", proc)
    proc = sweep.run("--rerun-incomplete")
    _check(proc.returncode == 0, "the recovery (--unlock, --rerun-incomplete) failed", proc)

    drawn = sorted(p.relative_to(sweep.workdir) for p in (sweep.workdir / "figures").rglob("*.*"))
    _check(len(drawn) > 0, "the recovered sweep drew no figures")
    shutil.rmtree(sweep.workdir / "results" / "tables")
    shutil.rmtree(sweep.workdir / "figures")
    proc = sweep.run()
    _check(proc.returncode == 0, "the sweep after deleting results/tables and figures failed", proc)
    again = sorted(p.relative_to(sweep.workdir) for p in (sweep.workdir / "figures").rglob("*.*"))
    _check(again == drawn, f"figures not rebuilt: {len(again)} of {len(drawn)}")
    say("4. results/tables and figures deleted: rebuilt")

    a, b = tables(ref.workdir), tables(sweep.workdir)
    for name in TABLES:
        try:
            pd.testing.assert_frame_equal(a[name], b[name])
        except AssertionError as err:
            raise AssertionError(f"{name} differs from the uninterrupted sweep: {err}") from None
    left = findings(sweep.workdir, config)
    _check(not left, f"verify after recovery: {[str(f) for f in left]}")
    proc = sweep.run("-n")
    _check("Nothing to be done" in proc.stdout + proc.stderr, "a further snakemake still has work to do", proc)
    for entry in entries:
        with np.load(entry) as data:  # recomputed and replaced
            _check(len(data.files) > 0, f"cache entry {entry} still corrupt")
    debris = [p for p in sweep.workdir.glob("results/runs/*/*/*/seed*/.*") if p.name != ".ml2bench.lock"]
    _check(not debris, f"left in run folders: {debris}")
    ours = list(long_tmp.glob("ml2b*"))
    _check(not ours, f"the fork server left {ours} in TMPDIR")
    say(f"tables equal to the uninterrupted sweep apart from times ({', '.join(TABLES)}); verify clean")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "workflow" / "config" / "ci.yaml", help="sweep config")
    ap.add_argument("--seed", type=int, default=None, help="draws the write that fails and the kill moment")
    ap.add_argument("--workdir", type=Path, help="folder for the sweeps (default: a new temporary one)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))  # this tree's ml2bench, as the sweeps' PYTHONPATH says
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="ml2bench-faults-"))
    try:
        scenario(args.config.resolve(), root.resolve(), seed)
    except AssertionError as err:
        print(f"FAILED (seed {seed}): {err}", file=sys.stderr)
        return 1
    print(f"ok (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
