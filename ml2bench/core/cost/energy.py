"""Energy counters: RAPL (CPU package, DRAM) and NVML (GPU), read where the hardware has them.

Counters are cumulative hardware readings; a meter reports the energy used since it started.
Where a counter is absent or unreadable the value is NaN and the source says so: ml2bench never
estimates energy and presents it as measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

POWERCAP = Path("/sys/class/powercap")
NAN = float("nan")


@dataclass
class RaplZone:
    """One RAPL zone (``energy_uj`` in micro-joules, wrapping at ``max_energy_range_uj``)."""

    path: Path
    kind: str  # "cpu" or "dram"
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = 0

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def start(self) -> None:
        self.last_uj = self.read_uj()
        self.total_uj = 0

    def update(self) -> float:
        now = self.read_uj()
        delta = now - self.last_uj
        if delta < 0:  # the counter wrapped around
            delta += self.max_range_uj
        self.total_uj += delta
        self.last_uj = now
        return self.total_uj * 1e-6


def find_rapl_zones(root: Path | str | None = None) -> list[RaplZone]:
    """Readable package and DRAM zones under ``root`` (default :data:`POWERCAP`; empty when none
    or not permitted). Sub-zones such as ``core``/``uncore`` are part of their package and
    ``psys`` spans the platform, so only ``package-*`` and ``dram`` are counted (no double counting).
    """
    root = Path(POWERCAP if root is None else root)
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
        try:
            name = (zone / "name").read_text().strip()
            kind = "dram" if name == "dram" else "cpu" if name.startswith("package") else None
            if kind is None:
                continue
            rz = RaplZone(zone, kind, int((zone / "max_energy_range_uj").read_text()))
            rz.read_uj()
            zones.append(rz)
        except (OSError, ValueError):
            continue
    return zones


@dataclass
class NvmlCounter:
    """Total GPU energy through NVML; ``read_mj`` returns milli-joules as NVML does."""

    read_mj: Callable[[], int]
    start_mj: int = 0

    def start(self) -> None:
        self.start_mj = self.read_mj()

    def joules(self) -> float:
        return (self.read_mj() - self.start_mj) * 1e-3


def _nvml_handle(pynvml, index: int):
    """NVML handle of torch's CUDA device ``index``.

    NVML numbers all GPUs of the node while torch numbers the visible ones (CUDA_VISIBLE_DEVICES,
    set by SLURM), so the device is matched by UUID; the index is only the fallback.
    """
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        if not uuid.startswith(("GPU-", "MIG-")):
            uuid = "GPU-" + uuid
        return pynvml.nvmlDeviceGetHandleByUUID(uuid)
    except Exception:
        return pynvml.nvmlDeviceGetHandleByIndex(index)


def find_nvml(device: torch.device) -> NvmlCounter | None:
    if device.type != "cuda":
        return None
    try:
        import pynvml  # from nvidia-ml-py

        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        handle = _nvml_handle(pynvml, index)
        counter = NvmlCounter(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        counter.read_mj()
        return counter
    except Exception:  # library missing, no driver, or a GPU without the energy counter
        return None


@dataclass
class EnergyMeter:
    """Energy since :meth:`start`, in joules, from whatever counters are readable."""

    rapl: list[RaplZone] = field(default_factory=list)
    nvml: NvmlCounter | None = None

    @classmethod
    def for_device(cls, device: torch.device, powercap_root: Path | str | None = None) -> EnergyMeter:
        """Counters for ``device``: RAPL zones (under ``powercap_root``) and, on CUDA, NVML."""
        return cls(find_rapl_zones(powercap_root), find_nvml(torch.device(device)))

    @property
    def source(self) -> str:
        parts = (["rapl"] if self.rapl else []) + (["nvml"] if self.nvml else [])
        return "+".join(parts) or "none"

    def start(self) -> None:
        for zone in self.rapl:
            zone.start()
        if self.nvml:
            self.nvml.start()

    def read(self) -> dict[str, float]:
        cpu = [z.update() for z in self.rapl if z.kind == "cpu"]
        dram = [z.update() for z in self.rapl if z.kind == "dram"]
        out: dict[str, Any] = {
            "energy_cpu_j": sum(cpu) if cpu else NAN,
            "energy_dram_j": sum(dram) if dram else NAN,
            "energy_gpu_j": self.nvml.joules() if self.nvml else NAN,
        }
        present = [v for v in out.values() if not math.isnan(v)]
        out["energy_j"] = sum(present) if present else NAN
        return out
