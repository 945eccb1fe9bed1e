"""Energy counters: units (NVML mJ, RAPL µJ), RAPL wrap-around, absent counters -> NaN/"none"."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch

from ml2bench.core.cost import energy
from ml2bench.core.cost.energy import EnergyMeter, NvmlCounter, find_nvml, find_rapl_zones


def _zone(root: Path, name: str, label: str, uj: int, max_uj: int = 262_143_328_850) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def _set(zone: Path, uj: int) -> None:
    (zone / "energy_uj").write_text(f"{uj}\n")


class FakeCounter:
    """Stands in for nvmlDeviceGetTotalEnergyConsumption: a cumulative value in milli-joules."""

    def __init__(self, mj: int) -> None:
        self.mj = mj

    def __call__(self) -> int:
        return self.mj


def test_rapl_zones_found_and_filtered(tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    _zone(tmp_path, "intel-rapl:0:0", "core", 0)  # part of the package: not counted twice
    _zone(tmp_path, "intel-rapl:0:1", "dram", 0)
    _zone(tmp_path, "intel-rapl:1", "package-1", 0)
    _zone(tmp_path, "intel-rapl:2", "psys", 0)  # whole platform: not counted
    bad = _zone(tmp_path, "intel-rapl:3", "package-3", 0)
    (bad / "energy_uj").unlink()
    (bad / "energy_uj").mkdir()  # unreadable counter: skipped
    zones = find_rapl_zones(tmp_path)
    assert [(z.path.name, z.kind) for z in zones] == [
        ("intel-rapl:0", "cpu"),
        ("intel-rapl:0:1", "dram"),
        ("intel-rapl:1", "cpu"),
    ]


def test_rapl_microjoules_to_joules_and_sum(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    p1 = _zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000)
    d = _zone(tmp_path, "intel-rapl:0:0", "dram", 0)
    meter = EnergyMeter(find_rapl_zones(tmp_path), None)
    assert meter.source == "rapl"
    meter.start()
    _set(p0, 3_500_000)  # +2.5 J
    _set(p1, 6_000_000)  # +1.0 J
    _set(d, 250_000)  # +0.25 J
    r = meter.read()
    assert r["energy_cpu_j"] == pytest.approx(3.5)
    assert r["energy_dram_j"] == pytest.approx(0.25)
    assert math.isnan(r["energy_gpu_j"])
    assert r["energy_j"] == pytest.approx(3.75)
    _set(p0, 4_500_000)  # readings are cumulative since start
    assert meter.read()["energy_cpu_j"] == pytest.approx(4.5)
    meter.start()  # restart: counts from zero again
    assert meter.read()["energy_cpu_j"] == pytest.approx(0.0)


def test_rapl_wrap_around(tmp_path):
    max_uj = 1_000_000
    z = _zone(tmp_path, "intel-rapl:0", "package-0", 900_000, max_uj)
    meter = EnergyMeter(find_rapl_zones(tmp_path), None)
    meter.start()
    _set(z, 950_000)  # +0.05 J
    assert meter.read()["energy_cpu_j"] == pytest.approx(0.05)
    _set(z, 100_000)  # wrapped: +50_000 to the top, +100_000 after it
    assert meter.read()["energy_cpu_j"] == pytest.approx(0.2)


def test_nvml_millijoules(tmp_path):
    fake = FakeCounter(10_000)
    meter = EnergyMeter([], NvmlCounter(fake))
    assert meter.source == "nvml"
    meter.start()
    fake.mj = 12_500  # +2500 mJ
    r = meter.read()
    assert r["energy_gpu_j"] == pytest.approx(2.5)
    assert r["energy_j"] == pytest.approx(2.5)
    assert math.isnan(r["energy_cpu_j"]) and math.isnan(r["energy_dram_j"])


def test_rapl_plus_nvml(tmp_path):
    z = _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    fake = FakeCounter(0)
    meter = EnergyMeter(find_rapl_zones(tmp_path), NvmlCounter(fake))
    assert meter.source == "rapl+nvml"
    meter.start()
    _set(z, 2_000_000)
    fake.mj = 3_000
    assert meter.read()["energy_j"] == pytest.approx(5.0)


def test_find_nvml_with_fake_library(monkeypatch):
    state = {"mj": 7_000}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: ("handle", i),
        nvmlDeviceGetTotalEnergyConsumption=lambda h: state["mj"],
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    counter = find_nvml(torch.device("cuda", 0))
    assert counter is not None
    counter.start()
    state["mj"] = 9_000
    assert counter.joules() == pytest.approx(2.0)
    assert find_nvml(torch.device("cpu")) is None


def test_nvml_without_energy_counter(monkeypatch):
    def unsupported(handle):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetTotalEnergyConsumption=unsupported
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert find_nvml(torch.device("cuda", 0)) is None


def test_absent_counters_nan_and_none(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "no-powercap")
    for meter in (
        EnergyMeter.for_device(torch.device("cpu")),
        EnergyMeter.for_device(torch.device("cpu"), powercap_root=tmp_path),
        EnergyMeter(),
    ):
        assert meter.source == "none"
        meter.start()
        r = meter.read()
        assert set(r) == {"energy_cpu_j", "energy_dram_j", "energy_gpu_j", "energy_j"}
        assert all(math.isnan(v) for v in r.values())


def test_nvml_device_matched_by_uuid(monkeypatch):
    """With CUDA_VISIBLE_DEVICES=3 torch's cuda:0 is NVML's GPU 3: match by UUID, not index."""
    counters = {"GPU-aaaa": 1_000, "GPU-dddd": 50_000}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: "GPU-aaaa",
        nvmlDeviceGetHandleByUUID=lambda uuid: uuid,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: counters[h],
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid="dddd"))
    counter = find_nvml(torch.device("cuda", 0))
    counter.start()
    counters["GPU-dddd"] += 1_500
    assert counter.joules() == pytest.approx(1.5)
