"""The machine a benchmark ran on: the device, its datasheet peaks, and the software stack.

A measured figure means nothing without its environment, so every bench result carries
one (GPU and form factor, driver, CUDA, torch, triton, cuDNN, dtype, shapes, seed).
Peaks come from a small datasheet table looked up by device name (dense tensor-core
fp16/bf16 with fp32 accumulation, no sparsity; HBM bandwidth); a device the table does
not know gets ``None`` and the report says "unknown peak" rather than guessing.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any


@dataclass(frozen=True)
class Peak:
    """Datasheet peaks of one device: dense TFLOP/s per dtype, HBM GB/s."""

    name: str
    tflops: dict[str, float]   # "fp16" / "bf16" -> dense tensor-core TFLOP/s
    hbm_gbps: float
    source: str = "vendor datasheet (dense, no sparsity)"


def _peak(name: str, fp16: float, bf16: float | None, gbps: float, source: str = "") -> Peak:
    tflops = {"fp16": fp16, **({"bf16": bf16} if bf16 else {})}
    return Peak(name, tflops, gbps, source or "NVIDIA datasheet (dense, no sparsity)")


# (name pattern on the upper-cased device name, memory GiB range or None, Peak).  First match wins,
# so the more specific patterns (PCIe, NVL, 40 GB) come before the general ones.
PEAK_TABLE: tuple[tuple[str, tuple[float, float] | None, Peak], ...] = (
    (r"H100.*(PCIE)", None, _peak("H100 PCIe", 756.0, 756.0, 2000.0)),
    (r"H100.*NVL", None, _peak("H100 NVL", 835.0, 835.0, 3900.0)),
    (r"H(100|800)", None, _peak("H100 SXM", 989.4, 989.4, 3350.0)),
    (r"H200.*NVL", None, _peak("H200 NVL", 835.0, 835.0, 4800.0)),
    (r"H200", None, _peak("H200 SXM", 989.4, 989.4, 4800.0)),
    (r"B200", None, _peak("B200", 2250.0, 2250.0, 8000.0)),
    (r"A100.*PCIE", (60, 100), _peak("A100 PCIe 80GB", 312.0, 312.0, 1935.0)),
    (r"A100.*PCIE", None, _peak("A100 PCIe 40GB", 312.0, 312.0, 1555.0)),
    (r"A100", (60, 100), _peak("A100 SXM 80GB", 312.0, 312.0, 2039.0)),
    (r"A100", None, _peak("A100 SXM 40GB", 312.0, 312.0, 1555.0)),
    (r"L40S", None, _peak("L40S", 362.0, 362.0, 864.0)),
    (r"\bL4\b", None, _peak("L4", 121.0, 121.0, 300.0)),
    (r"A10G", None, _peak("A10G", 70.0, 70.0, 600.0)),
    (r"\bA10\b", None, _peak("A10", 125.0, 125.0, 600.0)),
    (r"RTX 4090", None, _peak("RTX 4090", 165.2, 165.2, 1008.0,
                              "NVIDIA Ada whitepaper (fp32 accumulate, dense)")),
    (r"RTX 3090", None, _peak("RTX 3090", 71.0, 71.0, 936.0,
                              "NVIDIA Ampere GA102 whitepaper (fp32 accumulate, dense)")),
    (r"V100", None, _peak("V100", 125.0, None, 900.0)),
)


def lookup_peak(name: str, memory_gib: float | None = None) -> Peak | None:
    """The datasheet peak for a device name (``torch.cuda.get_device_name``), or None."""
    upper = name.upper()
    for pattern, mem_range, peak in PEAK_TABLE:
        if not re.search(pattern, upper):
            continue
        if mem_range and (memory_gib is None or not mem_range[0] <= memory_gib <= mem_range[1]):
            continue
        return peak
    return None


def form_factor(name: str) -> str:
    """SXM, PCIe, NVL or "unknown", from the device name (H100/H200 without a suffix are SXM)."""
    upper = name.upper()
    if "PCIE" in upper:
        return "PCIe"
    if "NVL" in upper:
        return "NVL"
    if "SXM" in upper or re.search(r"\b(H100|H200|H800|B200)\b", upper):
        return "SXM"
    if re.search(r"RTX|GEFORCE|\bL4\b|L40|\bA10G?\b", upper):
        return "PCIe"
    return "unknown"


@dataclass(frozen=True)
class DeviceInfo:
    """What the bench needs to know about one device (a fake one in the tests)."""

    name: str
    form_factor: str = "unknown"
    capability: str = ""
    sm_count: int = 0
    memory_gib: float = 0.0
    l2_bytes: int = 0
    driver: str = "unknown"
    peak: Peak | None = None

    def peak_tflops(self, dtype: str) -> float | None:
        return self.peak.tflops.get(dtype) if self.peak else None

    def peak_gbps(self) -> float | None:
        return self.peak.hbm_gbps if self.peak else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak"] = asdict(self.peak) if self.peak else "unknown peak"
        return data


def describe_device(index: int = 0) -> DeviceInfo:
    """The CUDA device ``index`` as torch sees it, with its driver and datasheet peak."""
    import torch

    props = torch.cuda.get_device_properties(index)
    memory_gib = props.total_memory / 2**30
    return DeviceInfo(name=props.name, form_factor=form_factor(props.name),
                      capability=f"{props.major}.{props.minor}",
                      sm_count=props.multi_processor_count, memory_gib=round(memory_gib, 1),
                      l2_bytes=int(getattr(props, "L2_cache_size", 0) or 0),
                      driver=driver_version(), peak=lookup_peak(props.name, memory_gib))


def driver_version() -> str:
    """The NVIDIA driver version: pynvml if installed, else /proc, else nvidia-smi."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        found = pynvml.nvmlSystemGetDriverVersion()
        return found.decode() if isinstance(found, bytes) else str(found)
    except Exception:
        pass
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", fh.read())
            if match:
                return match.group(1)
    except OSError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=False)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return "unknown"


def _ver(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def software() -> dict[str, Any]:
    """Versions that change kernel speed: CUDA, torch, triton, cuDNN (and the Python around them)."""
    import torch

    cudnn = None
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "torch": torch.__version__, "cuda": torch.version.cuda or "none",
            "triton": _ver("triton"), "cudnn": str(cudnn) if cudnn else "none",
            "numpy": _ver("numpy"), "attnkata": _ver("attnkata"),
            "triton_interpret": os.environ.get("TRITON_INTERPRET", "0")}


def cpu_name() -> str:
    """A readable CPU model name (for the CPU-only bench's environment)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: DeviceInfo | None, **extra: Any) -> dict[str, Any]:
    """The environment block of a bench result: device, software, and the run's settings."""
    env: dict[str, Any] = dict(software())
    if device is not None:
        env.update(gpu=device.name, form_factor=device.form_factor, driver=device.driver,
                   capability=device.capability, sm_count=device.sm_count,
                   memory_gib=device.memory_gib, l2_mib=round(device.l2_bytes / 2**20, 1),
                   peak=device.as_dict()["peak"])
    else:
        env.update(gpu="none", cpu=cpu_name(), cpu_count=os.cpu_count())
    env.update(extra)
    return env
