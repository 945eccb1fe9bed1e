"""Running additive Schwarz subdomain solves in parallel with ``torch.distributed``.

Two ways to get a process group (both SPMD: every rank holds a full replica of the method and runs
the same step; only the local solves are split, subdomain k on rank k mod W, and one all-reduce
combines the corrections – see :mod:`ml2bench.dd.core`):

1. **torchrun** (or any launcher that sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``):
   every rank runs the whole ``ml2bench run`` with the same config; the method finds the
   initialised default group (or initialises it from the environment) and uses it. Backend: NCCL
   when the iterate lives on CUDA, gloo on CPU. Only rank 0's records should be kept.

       torchrun --standalone --nproc_per_node 2 -m ml2bench run ... --set method.parallel=true

2. **spawned by the method** (``parallel: true`` with no group present, e.g. from
   :func:`ml2bench.core.runner.run`): the runner process becomes rank 0 and starts ``processes - 1``
   worker processes with ``torch.multiprocessing`` (spawn context), connected over gloo on
   127.0.0.1 and a port the OS picks for rank 0's rendezvous store. Each worker receives a pickled
   copy of the hierarchy, x0 and the hyper-parameters, builds the same method, and then executes
   one step per batch that rank 0 broadcasts (the same full batch is sent once and then referred to by a token).

Failure handling: every collective has the group's ``timeout`` (``timeout_s``, default 60 s), so a
dead or stuck peer makes the collective raise instead of hanging. A worker that raises sends its
traceback to rank 0 through a queue and exits; rank 0 turns the failed collective into a
:class:`ParallelError` naming the rank and its error (the runner records the run as ``failed``).
For tests, the environment variable ``ML2BENCH_DD_INJECT_FAULT=<rank>`` (or ``<rank>:exit``) makes
that worker raise (or hard-exit) at its first step.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

FAULT_ENV = "ML2BENCH_DD_INJECT_FAULT"
_SAME_BATCH = "__same_batch__"
_STOP = "__stop__"


class ParallelError(RuntimeError):
    """A peer process of a parallel Schwarz run failed (raised on rank 0)."""


@dataclass
class Comm:
    """The collectives the Schwarz core needs, on ``group`` (None: the default process group);
    ``rank`` and ``world`` are within the group."""

    rank: int
    world: int
    backend: str
    group: Any = None

    @classmethod
    def of(cls, group: Any) -> Comm:
        """The collectives of an existing process group (``torch.distributed.new_group``, or
        ``group.WORLD``)."""
        return cls(dist.get_rank(group), dist.get_world_size(group), str(dist.get_backend(group)), group)

    def _stage(self, t: Tensor) -> Tensor:
        return t.cpu() if self.backend == "gloo" else t

    def all_reduce_sum(self, *tensors: Tensor) -> list[Tensor]:
        """Sum each tensor over all ranks (one flat all-reduce); returns new tensors."""
        device = tensors[0].device
        flat = self._stage(torch.cat([t.reshape(-1).to(torch.float64) for t in tensors]))
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        flat = flat.to(device)
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset : offset + t.numel()].view(t.shape).to(t.dtype))
            offset += t.numel()
        return out

    def broadcast_(self, t: Tensor, src: int = 0) -> None:
        """Overwrite ``t`` on every rank with the value of the group's rank ``src``."""
        staged = self._stage(t).clone() if self.backend == "gloo" else t
        root = src if self.group is None else dist.get_global_rank(self.group, src)
        dist.broadcast(staged, src=root, group=self.group)
        if staged is not t:
            t.copy_(staged.to(t.device))

    def check_agree(self, value: float, what: str) -> None:
        """Raise :class:`ParallelError` on every rank unless all ranks hold the same ``value``.

        SPMD replicas that disagree (different data, initial parameters or seeds on one rank) take
        different paths through their line searches and trust regions, so one of them ends up
        waiting in a collective the others never enter: raised here, before that."""
        mine = torch.tensor([value], dtype=torch.float64)
        gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(self.world)]
        dist.all_gather(gathered, mine, group=self.group)
        values = [float(v) for v in gathered]
        if len({repr(v) for v in values}) > 1:
            listed = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            raise ParallelError(
                f"ranks disagree on {what} ({listed}): every rank must hold the same model, iterate and "
                f"data (one replica per rank; seed the initialisation and the data the same way on all ranks)"
            )


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when absent)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched_distributed() -> bool:
    """True inside an initialised group or a torchrun-style launch with more than one rank."""
    return dist.is_available() and (
        dist.is_initialized() or (env_world_size() > 1 and "MASTER_ADDR" in os.environ and "RANK" in os.environ)
    )


def pick_backend(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    return "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"


def join_launched_group(backend: str, device: torch.device, timeout_s: float) -> tuple[Comm, bool]:
    """Use (or initialise from the environment) the default group; returns (comm, owned)."""
    owned = False
    if not dist.is_initialized():
        backend = pick_backend(backend, device)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
        owned = True
    return Comm(dist.get_rank(), dist.get_world_size(), dist.get_backend()), owned


def _inject_fault(rank: int) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    target, _, how = spec.partition(":")
    if target.strip() == str(rank):
        if how == "exit":
            os._exit(3)
        raise RuntimeError(f"injected fault on rank {rank} ({FAULT_ENV}={spec})")


def _worker_main(rank: int, world: int, port: int, payload: bytes, errors: Any, timeout_s: float, threads: int) -> None:
    """Entry point of a spawned worker: join the group, replicate the method, follow rank 0."""
    try:
        torch.set_num_threads(threads)
        hierarchy, x0, hp, cls_path = pickle.loads(payload)
        store = dist.TCPStore("127.0.0.1", port, world, is_master=False, timeout=timedelta(seconds=timeout_s))
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
        module, _, name = cls_path.rpartition(".")
        cls = getattr(__import__(module, fromlist=[name]), name)
        method = cls(hierarchy, x0, hp, _comm=Comm(rank, world, "gloo"))
        batch = None
        first = True
        while True:
            box: list[Any] = [None]
            dist.broadcast_object_list(box, src=0)
            cmd = box[0]
            if isinstance(cmd, str) and cmd == _STOP:
                break
            if not (isinstance(cmd, str) and cmd == _SAME_BATCH):
                batch = cmd
            if first:
                _inject_fault(rank)
                _warm_up(hierarchy, x0, batch)
                first = False
            method.step(batch)
        dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - report everything, then die so peers fail fast
        try:
            errors.put((rank, traceback.format_exc()))
        finally:
            os._exit(1)


@contextlib.contextmanager
def _main_not_reimported():
    """Workers need nothing from ``__main__``: hide its path while starting them, so a calling
    script without an ``if __name__ == "__main__"`` guard is not re-executed by the spawn context."""
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
    try:
        for k in saved:
            if k == "__file__":
                delattr(main, k)
            else:
                setattr(main, k, None)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _warm_up(hierarchy: Any, x0: Tensor, batch: Any) -> None:
    """One uncharged evaluation in a fresh worker (lazy initialisation of autograd kernels), the
    counterpart of the FLOP probe rank 0 ran when the problem built its hierarchy."""
    from ml2bench.core.objective import Objective, WorkCounter

    fine = hierarchy.fine
    Objective(fine.model, fine.loss_fn, WorkCounter(), fine.n_train).loss_grad(x0, batch)


class SpawnedGroup:
    """Rank 0's handle on the worker processes it started (spawn context, gloo, loopback)."""

    def __init__(
        self, hierarchy: Any, x0: Tensor, hp: dict[str, Any], cls_path: str, world: int, timeout_s: float, threads: int
    ) -> None:
        import torch.multiprocessing as mp

        if dist.is_initialized():
            raise RuntimeError("a default process group already exists; cannot spawn Schwarz workers")
        self.world = world
        self.timeout_s = timeout_s
        self.healthy = False
        self.closed = False
        self.last_batch: Any = None
        self.saved_threads = torch.get_num_threads()
        try:
            payload = pickle.dumps((hierarchy, x0, hp, cls_path))
        except Exception as exc:  # noqa: BLE001
            raise ParallelError(
                f"schwarz parallel: cannot send the problem to worker processes (pickling failed: {exc})"
            ) from exc
        ctx = mp.get_context("spawn")
        self.errors = ctx.SimpleQueue()
        # rank 0 binds the rendezvous store to a port the OS picks *before* the workers start:
        # no window in which another process can take a port we only looked up
        self.store = dist.TCPStore(
            "127.0.0.1", 0, world, is_master=True, timeout=timedelta(seconds=timeout_s), wait_for_workers=False
        )
        port = self.store.port
        self.procs = [
            ctx.Process(
                target=_worker_main,
                args=(r, world, port, payload, self.errors, timeout_s, threads),
                daemon=True,
                name=f"ml2bench-schwarz-rank{r}",
            )
            for r in range(1, world)
        ]
        with _main_not_reimported():
            for p in self.procs:
                p.start()
        torch.set_num_threads(threads)
        try:
            dist.init_process_group(
                "gloo", store=self.store, rank=0, world_size=world, timeout=timedelta(seconds=timeout_s)
            )
        except Exception as exc:  # noqa: BLE001
            self.abort()
            raise self.explain(exc) from exc
        self.healthy = True
        self.comm = Comm(0, world, "gloo")

    def send_batch(self, batch: Any) -> None:
        from ml2bench.core.objective import same_batch

        msg = _SAME_BATCH if self.last_batch is not None and same_batch(self.last_batch, batch) else batch
        dist.broadcast_object_list([msg], src=0)
        self.last_batch = batch

    def explain(self, exc: BaseException) -> ParallelError:
        """A clear error from the workers' reports (waits briefly for them to arrive)."""
        reports: dict[int, str] = {}
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            while not self.errors.empty():
                rank, tb = self.errors.get()
                reports[rank] = tb
            if reports or all(not p.is_alive() for p in self.procs):
                while not self.errors.empty():
                    rank, tb = self.errors.get()
                    reports[rank] = tb
                break
            time.sleep(0.05)
        lines = [f"schwarz parallel run ({self.world} processes, gloo on 127.0.0.1) failed:"]
        for rank, tb in sorted(reports.items()):
            last = tb.strip().splitlines()[-1]
            lines.append(f"worker rank {rank} raised: {last}")
        for r, p in enumerate(self.procs, start=1):
            if r not in reports and p.exitcode is not None and p.exitcode != 0:
                lines.append(f"worker rank {r} exited with code {p.exitcode} without a report")
        if len(lines) == 1:
            lines.append(
                f"collective failed or timed out (timeout_s={self.timeout_s:g}): "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
        err = ParallelError(lines[0] + " " + "; ".join(lines[1:]))
        if reports:
            err.worker_tracebacks = reports  # type: ignore[attr-defined]
        return err

    def abort(self) -> None:
        """Tear down after a failure: kill workers, drop the group. Never blocks for long."""
        self.healthy = False
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        self._destroy()

    def _destroy(self) -> None:
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001
                pass
        torch.set_num_threads(self.saved_threads)

    def close(self) -> None:
        """Stop the workers cleanly (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self.healthy:
            try:
                dist.broadcast_object_list([_STOP], src=0)
            except Exception:  # noqa: BLE001
                pass
            for p in self.procs:
                p.join(timeout=10)
        self.abort()
