#!/usr/bin/env python3
"""Run the sweep on SLURM with this profile, and fail instead of hanging when Snakemake loses its jobs.

    python workflow/profiles/slurm/run_sweep.py --configfile workflow/config/paper.yaml [other snakemake args]
    python workflow/profiles/slurm/run_sweep.py --stall-s 900 --poll-s 60 --configfile ...   # watchdog settings

Why a wrapper: when every attempt of one status check fails (slurmctld unreachable or overloaded,
squeue/sacct timing out), snakemake-executor-plugin-slurm (2.8) neither re-queues nor fails the
jobs of that check: it drops them, and Snakemake then waits forever for jobs it no longer watches
("No active jobs; skipping status query.", SIGTERM ignored). No plugin setting changes that
(status attempts are retried back to back, there is no custom status command and no error path).

The watchdog asks SLURM itself (squeue --name <SLURM run ID>, every --poll-s seconds) whether any
job of this run is still pending or running. Snakemake is stalled while none is (or squeue fails)
and Snakemake runs no local job (no child process but SLURM query tools). A healthy Snakemake ends
such a stall within the plugin's longest status-check interval (180 s) plus the profile's
latency-wait (60 s), by submitting the next jobs or exiting; so after --stall-s seconds (default
600) the watchdog stops Snakemake's process group (TERM, KILL after --grace-s), cancels the run's
SLURM jobs (scancel --name) and exits 3 with what to do next. Otherwise it exits with Snakemake's status.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

PROFILE = Path(__file__).resolve().parent
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
EXIT_STALLED = 3
# children of Snakemake that are its own SLURM queries, not a local job
QUERY_TOOLS = {"squeue", "sacct", "sbatch", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare"}


def log(msg: str) -> None:
    print(f"slurm-sweep: {msg}", file=sys.stderr, flush=True)


def live_jobs(run_id: str, timeout_s: float) -> int | None:
    """Jobs of the run that SLURM lists as pending/running (squeue's default states); None when the
    query fails or times out (controller unreachable)."""
    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--format=%i", "--name", run_id], capture_output=True, text=True, timeout=timeout_s
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    if out.returncode != 0:
        return None
    return len(out.stdout.split())


def runs_local_job(pid: int) -> bool:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return False
    names = []
    for child in children:
        try:
            names.append(child.name())
        except psutil.Error:
            continue
    return any(name not in QUERY_TOOLS for name in names)


class Watchdog:
    """Follows Snakemake's output (for the SLURM run ID) and SLURM's view of the run."""

    def __init__(self, proc: subprocess.Popen, stall_s: float, poll_s: float):
        self.proc, self.stall_s, self.poll_s = proc, stall_s, poll_s
        self.run_id: str | None = None
        self.longest_stall_s = 0.0
        self.reason = ""

    def pump_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if self.run_id is None and (m := RUN_ID.search(line)):
                self.run_id = m.group(1)

    def watch(self) -> bool:
        """Until Snakemake exits: False. True once it has been stalled for stall_s seconds."""
        stalled_since: float | None = None
        last_failure = ""
        while self.proc.poll() is None:
            time.sleep(self.poll_s)
            if self.run_id is None or self.proc.poll() is not None:
                continue
            n = live_jobs(self.run_id, timeout_s=min(60.0, self.stall_s))
            busy = (n is not None and n > 0) or runs_local_job(self.proc.pid)
            now = time.monotonic()
            if busy:
                stalled_since = None
                continue
            last_failure = (
                "squeue fails (controller unreachable?)"
                if n is None
                else "no job of the run is pending or running in SLURM"
            )
            stalled_since = stalled_since or now
            self.longest_stall_s = max(self.longest_stall_s, now - stalled_since)
            if now - stalled_since >= self.stall_s:
                self.reason = (
                    f"for {now - stalled_since:.0f} s {last_failure}, and Snakemake neither submitted "
                    f"a job nor exited (limit --stall-s {self.stall_s:g})"
                )
                return True
        return False


def stop_group(proc: subprocess.Popen, grace_s: float) -> str:
    """TERM Snakemake's process group; KILL it after grace_s (a stalled Snakemake ignores TERM)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return "it had already exited"
    try:
        proc.wait(timeout=grace_s)
        return "stopped by SIGTERM"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"ignored SIGTERM for {grace_s:g} s: killed (SIGKILL)"


def cancel_run(run_id: str) -> str:
    try:
        res = subprocess.run(["scancel", "--name", run_id], capture_output=True, text=True, timeout=30)
    except (subprocess.TimeoutExpired, OSError) as e:
        res = None
        err = str(e)
    if res is not None and res.returncode == 0:
        return f"any of its SLURM jobs still queued or running were cancelled (scancel --name {run_id})"
    err = res.stderr.strip() if res is not None else err
    return f"cancelling its SLURM jobs failed ({err}): run `scancel --name {run_id}` once the controller answers"


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        epilog=f"All other arguments go to snakemake (after --executor slurm --workflow-profile {PROFILE}).",
    )
    ap.add_argument(
        "--stall-s",
        type=float,
        default=600.0,
        help="seconds without a pending/running job of the run before Snakemake is stopped "
        "(default 600; keep it above 180 s + latency-wait)",
    )
    ap.add_argument("--poll-s", type=float, default=30.0, help="seconds between squeue checks (default 30)")
    ap.add_argument("--grace-s", type=float, default=20.0, help="seconds between SIGTERM and SIGKILL (default 20)")
    opts, rest = ap.parse_known_args(argv)
    for name in ("stall_s", "poll_s", "grace_s"):
        if getattr(opts, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(opts, name):g}")
    if shutil.which("squeue") is None:
        ap.error("squeue not found on the PATH (is this a SLURM login node?)")
    return opts, rest


def main(argv: list[str] | None = None) -> int:
    opts, snakemake_args = parse(sys.argv[1:] if argv is None else argv)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--executor",
        "slurm",
        "--workflow-profile",
        str(PROFILE),
        *snakemake_args,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True
    )  # own process group: stopped as a whole

    def forward(signum, _frame):  # Ctrl-C / TERM on the wrapper: Snakemake cancels its jobs itself
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    dog = Watchdog(proc, opts.stall_s, opts.poll_s)
    pump = threading.Thread(target=dog.pump_output, daemon=True)
    pump.start()
    stalled = dog.watch()
    if not stalled:
        rc = proc.wait()
        pump.join(timeout=10)
        log(
            f"snakemake exited with {rc}; longest stall seen {dog.longest_stall_s:.0f} s "
            f"(limit {opts.stall_s:g} s, squeue every {opts.poll_s:g} s)"
        )
        return rc
    how = stop_group(proc, opts.grace_s)
    pump.join(timeout=10)
    cancelled = cancel_run(dog.run_id) if dog.run_id else "no SLURM run ID was seen"
    again = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    log(
        f"FAILED: Snakemake stalled: {dog.reason}. Most likely it lost track of its SLURM jobs (the plugin "
        f"drops them when a status check fails on every attempt). Snakemake {how}; {cancelled}.\n"
        "  Next: check the controller (`scontrol ping`, `squeue`); remove the lock the killed Snakemake left "
        f"(snakemake --unlock: `{again} --unlock`); then rerun the same command without --unlock: the "
        "profile sets --rerun-incomplete, so outputs of the interrupted jobs are redone."
    )
    return EXIT_STALLED


if __name__ == "__main__":
    sys.exit(main())
