"""The runnable examples under ``examples/`` run (small sizes) and do what they say; SPQN under
torchrun on 2 CPU processes keeps the replicas identical, and ranks that disagree on f(x0) raise
instead of hanging."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


def test_resnet_classifier_with_rmtr_in_a_plain_loop():
    proc = _run([sys.executable, "examples/resnet_rmtr.py", "--steps", "3", "--depth", "4", "--width", "8",
                 "--n-train", "300"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    losses = [float(v) for v in re.findall(r"loss (\S+)", proc.stdout)]
    accuracy = float(re.search(r"final test accuracy (\S+)", proc.stdout).group(1))
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0] and accuracy > 0.5  # 10 classes: chance is 0.1


def test_pinn_with_spqn_under_torchrun_on_two_processes():
    proc = _run(_torchrun("examples/pinn_spqn_torchrun.py", "--steps", "4", "--points", "64", "--width", "8"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    number = r"(-?\d+\.\d+(?:e[-+]\d+)?)"  # the ranks share stdout: lines may run into each other
    ranks = dict(re.findall(rf"rank (\d): final loss \S+ +rel. L2 error \S+ +checksum {number}", proc.stdout))
    assert set(ranks) == {"0", "1"} and ranks["0"] == ranks["1"]  # replicas bit-identical
    losses = [float(v) for v in re.findall(rf"step +\d+ +loss {number}", proc.stdout)]
    assert len(losses) == 4 and losses[-1] < losses[0]


DISAGREE = textwrap.dedent(
    """
    import torch, torch.distributed as dist
    from torch import nn
    from ml2bench.dd.parallel import ParallelError
    from ml2bench.nn import ResidualStack
    from ml2bench.optim import APTS

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), ResidualStack([nn.Linear(4, 4) for _ in range(2)]), nn.Linear(4, 1))
    x = torch.rand(32, 2, generator=torch.Generator().manual_seed(rank))  # rank-dependent data: a bug
    group = dist.new_group([0, 1])
    opt = APTS(model.double(), process_group=group, local_steps=2, timeout_s=60.0)
    try:
        opt.step(lambda m: m(x.double()).square().mean())
    except ParallelError as err:
        print(f"rank {rank} raised: {err}", flush=True)
    dist.destroy_process_group()
    """
)


def test_ranks_that_disagree_on_f_x0_raise_instead_of_hanging(tmp_path):
    script = tmp_path / "disagree.py"
    script.write_text(DISAGREE)
    t0 = time.monotonic()
    proc = _run(_torchrun(str(script)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - t0 < 60  # no collective timed out
    for rank in (0, 1):
        assert re.search(rf"rank {rank} raised: ranks disagree on f\(x0\) \(rank 0: \S+, rank 1: \S+\)", proc.stdout)
