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
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any


@dataclass(frozen=True)
class Peak:
    """Datasheet peaks of one device: dense TFLOP/s per dtype, HBM GB/s.

    ``tflops`` keys: ``fp16`` / ``bf16`` (dense tensor-core, fp32 accumulation), ``tf32``
    (dense tensor-core), ``fp32`` (plain FP32 on the CUDA cores: what a kernel whose
    ``tl.dot`` runs in IEEE fp32 can reach).  ``uncertain`` names what the sources do not
    settle; the report prints it next to every % of peak computed from this row.
    """

    name: str
    tflops: dict[str, float]   # "fp16" / "bf16" / "tf32" / "fp32" -> dense TFLOP/s
    hbm_gbps: float
    source: str = "vendor datasheet (dense, no sparsity)"
    uncertain: str = ""


def _peak(name: str, fp16: float, bf16: float | None, gbps: float, source: str = "", *,
          tf32: float | None = None, fp32: float | None = None, uncertain: str = "") -> Peak:
    tflops = {"fp16": fp16, **({"bf16": bf16} if bf16 else {}), **({"tf32": tf32} if tf32 else {}),
              **({"fp32": fp32} if fp32 else {})}
    return Peak(name, tflops, gbps, source or "NVIDIA datasheet (dense, no sparsity)", uncertain)


# Where the figures come from (datasheet tables give sparse tensor figures; dense = half).
_H100 = "NVIDIA H100 Tensor Core GPU datasheet (SXM5 / PCIe / NVL columns), dense = sparse / 2"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (SXM / NVL columns), dense = sparse / 2"
_GH200 = ("NVIDIA GH200 Grace Hopper Superchip datasheet: the Hopper GPU has H100 SXM compute; "
          "96 GB HBM3 at 4 TB/s, or 144 GB HBM3e at 4.9 TB/s")
_A100 = "NVIDIA A100 datasheet (SXM4 / PCIe, 40 and 80 GB), dense = sparse / 2"
_A800 = ("NVIDIA A800 datasheets (China market): A100 compute, NVLink cut to 400 GB/s; "
         "SXM 80 GB 2039 GB/s, PCIe 80 GB 1935 GB/s, PCIe 40 GB 1555 GB/s")
_H800 = ("NVIDIA H800 (China market): the H100 die with NVLink cut to 400 GB/s and FP64 cut; "
         "tensor and HBM figures as the H100 of the same form factor")
_BLACKWELL = ("NVIDIA HGX B200 / DGX B200 datasheets (per GPU, 1000 W); GB200 NVL72 datasheet "
              "(per superchip of 2 GPUs, 1200 W per GPU), dense = sparse / 2")

# (name pattern on the upper-cased device name, memory GiB range or None, Peak).  First match wins,
# so the more specific patterns (PCIe, NVL, memory size) come before the general ones.  ``(?<!G)``
# keeps GH200 out of the H200 rows and GB200 out of the B200 ones: different parts, different peaks.
PEAK_TABLE: tuple[tuple[str, tuple[float, float] | None, Peak], ...] = (
    (r"GH200.*(HBM3E|144G)", None, _peak("GH200 144GB HBM3e", 989.4, 989.4, 4900.0, _GH200,
                                         tf32=494.7, fp32=66.9)),
    (r"GH200", (110, 200), _peak("GH200 144GB HBM3e", 989.4, 989.4, 4900.0, _GH200, tf32=494.7, fp32=66.9)),
    (r"GH200", (0, 110), _peak("GH200 96GB HBM3", 989.4, 989.4, 4000.0, _GH200, tf32=494.7, fp32=66.9)),
    (r"H100.*PCIE", None, _peak("H100 PCIe", 756.0, 756.0, 2000.0, _H100, tf32=378.0, fp32=51.2)),
    (r"H100.*NVL", None, _peak("H100 NVL", 835.0, 835.0, 3900.0, _H100 + " (NVL: 94 GB, 2024 sheet)",
                               tf32=417.5, fp32=60.0)),
    (r"H100", None, _peak("H100 SXM", 989.4, 989.4, 3350.0, _H100, tf32=494.7, fp32=66.9)),
    (r"H800.*PCIE", None, _peak("H800 PCIe", 756.0, 756.0, 2000.0, _H800, tf32=378.0, fp32=51.2,
                                uncertain="no NVIDIA H800 PCIe datasheet re-checked here: H100 PCIe "
                                          "figures assumed")),
    (r"H800", None, _peak("H800 SXM", 989.4, 989.4, 3350.0, _H800, tf32=494.7, fp32=66.9,
                          uncertain="no NVIDIA H800 SXM datasheet re-checked here: H100 SXM figures assumed")),
    (r"(?<!G)H200.*NVL", None, _peak("H200 NVL", 835.0, 835.0, 4800.0, _H200, tf32=417.5, fp32=60.0)),
    (r"(?<!G)H200", None, _peak("H200 SXM", 989.4, 989.4, 4800.0, _H200, tf32=494.7, fp32=66.9)),
    (r"GB200", None, _peak("GB200 (per GPU)", 2500.0, 2500.0, 8000.0, _BLACKWELL, tf32=1250.0, fp32=80.0,
                           uncertain="per-GPU halves of superchip figures; FP32 is quoted as 75, 80 "
                                     "and 90 TFLOP/s in different sources; later NVIDIA tables give "
                                     "7.7 TB/s per GPU")),
    (r"(?<!G)B200", None, _peak("B200 (HGX)", 2250.0, 2250.0, 8000.0, _BLACKWELL, tf32=1100.0, fp32=75.0,
                                uncertain="FP32 quoted as 75 and 80 TFLOP/s; later NVIDIA tables give "
                                          "7.7 TB/s")),
    (r"A100.*PCIE", (60, 100), _peak("A100 PCIe 80GB", 312.0, 312.0, 1935.0, _A100, tf32=156.0, fp32=19.5)),
    (r"A100.*PCIE", None, _peak("A100 PCIe 40GB", 312.0, 312.0, 1555.0, _A100, tf32=156.0, fp32=19.5)),
    (r"A100", (60, 100), _peak("A100 SXM 80GB", 312.0, 312.0, 2039.0, _A100, tf32=156.0, fp32=19.5)),
    (r"A100", None, _peak("A100 SXM 40GB", 312.0, 312.0, 1555.0, _A100, tf32=156.0, fp32=19.5)),
    (r"A800.*PCIE", (60, 100), _peak("A800 PCIe 80GB", 312.0, 312.0, 1935.0, _A800, tf32=156.0, fp32=19.5)),
    (r"A800.*SXM", (60, 100), _peak("A800 SXM 80GB", 312.0, 312.0, 2039.0, _A800, tf32=156.0, fp32=19.5)),
    (r"A800", (0, 60), _peak("A800 40GB", 312.0, 312.0, 1555.0, _A800, tf32=156.0, fp32=19.5,
                             uncertain="the A800 40GB Active workstation card is listed at 1.5 TB/s")),
    (r"L40S", None, _peak("L40S", 362.0, 362.0, 864.0, "NVIDIA L40S datasheet, dense = sparse / 2",
                          tf32=183.0, fp32=91.6)),
    (r"\bL4\b", None, _peak("L4", 121.0, 121.0, 300.0, "NVIDIA L4 datasheet, dense = sparse / 2",
                            tf32=60.0, fp32=30.3)),
    (r"A10G", None, _peak("A10G", 70.0, 70.0, 600.0, "AWS (A10G is not on an NVIDIA datasheet)", fp32=31.2,
                          uncertain="no NVIDIA datasheet for the A10G; tensor figure as AWS and third "
                                    "parties report it")),
    (r"\bA10\b", None, _peak("A10", 125.0, 125.0, 600.0, "NVIDIA A10 datasheet, dense = sparse / 2",
                             tf32=62.5, fp32=31.2)),
    (r"RTX 4090", None, _peak("RTX 4090", 165.2, 165.2, 1008.0,
                              "NVIDIA Ada whitepaper (fp32 accumulate, dense)", tf32=82.6, fp32=82.6)),
    (r"RTX 3090", None, _peak("RTX 3090", 71.0, 71.0, 936.0,
                              "NVIDIA Ampere GA102 whitepaper (fp32 accumulate, dense)", tf32=35.6, fp32=35.6)),
    (r"V100", None, _peak("V100", 125.0, None, 900.0, "NVIDIA V100 datasheet (SXM2)", fp32=15.7)),
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
    if re.search(r"\bG[HB]200\b", upper):
        return "superchip"
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
    clocks: dict = field(default_factory=dict)   # :func:`clocks`: pinned (max/application) clocks
    smi_id: str = "0"                            # how nvidia-smi / NVML name it (PCI bus id)

    def peak_tflops(self, dtype: str) -> float | None:
        return self.peak.tflops.get(dtype) if self.peak else None

    def peak_gbps(self) -> float | None:
        return self.peak.hbm_gbps if self.peak else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak"] = asdict(self.peak) if self.peak else "unknown peak"
        data.pop("smi_id", None)
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
                      driver=driver_version(), peak=lookup_peak(props.name, memory_gib),
                      clocks=clocks(_smi_id(props, index)).get("pinned", {}), smi_id=_smi_id(props, index))


def _smi_id(props: Any, index: int) -> str:
    """The device as nvidia-smi names it: its PCI bus id when torch knows it (CUDA's order and
    nvidia-smi's differ under CUDA_VISIBLE_DEVICES), else the index."""
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        domain = int(getattr(props, "pci_domain_id", 0) or 0)
        device = int(getattr(props, "pci_device_id", 0) or 0)
        return f"{domain:08X}:{int(bus):02X}:{device:02X}.0"
    return str(index)


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


# -- clocks ----------------------------------------------------------------------------

# nvidia-smi fields: what the clocks are now (they move with load, power and heat: sampled, not
# pinned), and what they may reach (max / application clocks, power limit: pinned by --compare).
SMI_SAMPLED = ("clocks.sm", "clocks.mem")
SMI_PINNED = ("clocks.max.sm", "clocks.max.mem", "clocks.applications.graphics",
              "clocks.applications.memory", "power.limit")
SMI_NAMES = {"clocks.sm": "sm_mhz", "clocks.mem": "mem_mhz", "clocks.max.sm": "max_sm_mhz",
             "clocks.max.mem": "max_mem_mhz", "clocks.applications.graphics": "app_sm_mhz",
             "clocks.applications.memory": "app_mem_mhz", "power.limit": "power_limit_w"}
# renamed in newer drivers: an unknown field fails the whole query, so each is asked alone
SMI_REASONS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")


def _number(text: str) -> float | None:
    try:
        value = float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None  # "[N/A]", "[Not Supported]"
    return int(value) if value.is_integer() else value


def _smi(fields: tuple[str, ...], gpu: str, run: Any) -> list[str] | None:
    try:
        out = run(["nvidia-smi", f"--id={gpu}", f"--query-gpu={','.join(fields)}",
                   "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    return values if len(values) == len(fields) else None


def _nvml_clocks(gpu: str, nvml: Any) -> dict[str, Any] | None:
    try:
        nvml.nvmlInit()
        handle = (nvml.nvmlDeviceGetHandleByPciBusId(gpu) if ":" in gpu
                  else nvml.nvmlDeviceGetHandleByIndex(int(gpu)))
        sm, mem = nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM
        sampled = {"sm_mhz": nvml.nvmlDeviceGetClockInfo(handle, sm),
                   "mem_mhz": nvml.nvmlDeviceGetClockInfo(handle, mem)}
        pinned: dict[str, Any] = {"max_sm_mhz": nvml.nvmlDeviceGetMaxClockInfo(handle, sm),
                                  "max_mem_mhz": nvml.nvmlDeviceGetMaxClockInfo(handle, mem)}
        for key, call in (("app_sm_mhz", lambda: nvml.nvmlDeviceGetApplicationsClock(handle, sm)),
                          ("app_mem_mhz", lambda: nvml.nvmlDeviceGetApplicationsClock(handle, mem)),
                          ("power_limit_w", lambda: nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000)):
            try:
                pinned[key] = call()
            except Exception:
                pass
        try:
            sampled["reasons"] = hex(nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
        except Exception:
            pass
        return {"pinned": pinned, "sampled": sampled, "source": "pynvml"}
    except Exception:
        return None


def clocks(gpu: str = "0", *, run: Any = subprocess.run, nvml: Any = None) -> dict[str, Any]:
    """The device's clocks: ``pinned`` (max and application SM/memory clocks, power limit) and
    ``sampled`` (SM and memory clock now, and why they are held back, if the driver says).

    From pynvml when it is importable, else ``nvidia-smi --query-gpu``; ``{"source":
    "unknown"}`` when neither answers.  ``run`` and ``nvml`` are injectable (tests)."""
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[import-not-found, no-redef]
        except ImportError:
            nvml = None
    if nvml is not None:
        found = _nvml_clocks(gpu, nvml)
        if found is not None:
            return found
    if run is subprocess.run and not shutil.which("nvidia-smi"):
        return {"source": "unknown", "pinned": {}, "sampled": {}}
    values = _smi(SMI_SAMPLED + SMI_PINNED, gpu, run)
    if values is None:
        return {"source": "unknown", "pinned": {}, "sampled": {}}
    named = {SMI_NAMES[f]: _number(v) for f, v in zip(SMI_SAMPLED + SMI_PINNED, values)}
    sampled: dict[str, Any] = {SMI_NAMES[f]: named[SMI_NAMES[f]] for f in SMI_SAMPLED}
    pinned = {SMI_NAMES[f]: named[SMI_NAMES[f]] for f in SMI_PINNED if named[SMI_NAMES[f]] is not None}
    for field_name in SMI_REASONS:
        reason = _smi((field_name,), gpu, run)
        if reason is not None:
            sampled["reasons"] = reason[0]
            break
    return {"pinned": pinned, "sampled": sampled, "source": "nvidia-smi"}


# -- torch's SDPA ------------------------------------------------------------------------

def _sdpa_probe(backend: str) -> str:
    """Run one small bf16 call (d = 128) with only ``backend`` allowed: "runs" or why not."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 4, 256, 128, device="cuda", dtype=torch.bfloat16)
    try:
        with sdpa_kernel([getattr(SDPBackend, backend)]):
            F.scaled_dot_product_attention(q, q, q, is_causal=True)
        torch.cuda.synchronize()
        return "runs"
    except Exception as exc:  # no kernel for this device / build
        return f"does not run: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__}"


def sdpa_info(probe: Any = None) -> dict[str, Any]:
    """Which attention torch's SDPA would use here: the backend switches, the flash
    implementation (torch's built-in FlashAttention-2 unless another one, e.g. FA3, was
    activated), cuDNN, and -- on CUDA -- which pinned backends run a bf16, d = 128 call."""
    import torch

    cuda = torch.backends.cuda
    info: dict[str, Any] = {}
    for name in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "cudnn_sdp_enabled", "math_sdp_enabled",
                 "is_flash_attention_available"):
        fn = getattr(cuda, name, None)
        try:
            info[name] = bool(fn()) if fn is not None else "unknown (older torch)"
        except Exception as exc:
            info[name] = f"unknown ({type(exc).__name__})"
    try:
        import torch.nn.attention as attention

        current = getattr(attention, "current_flash_attention_impl", None)
        active = current() if current is not None else None
        tag = attention._get_flash_version() if hasattr(attention, "_get_flash_version") else "?"
        info["flash_impl"] = active or f"built-in FlashAttention-2 (torch's tag {tag})"
        info["flash_impls_registered"] = (attention.list_flash_attention_impls()
                                          if hasattr(attention, "list_flash_attention_impls") else [])
    except Exception as exc:  # a torch without these
        info["flash_impl"] = f"unknown ({type(exc).__name__})"
    try:
        info["cudnn_available"] = bool(torch.backends.cudnn.is_available())
        info["cudnn_version"] = torch.backends.cudnn.version() or "none"
    except Exception:
        info["cudnn_available"] = False
    from .cases import SDPA_BACKENDS

    if probe is None and not torch.cuda.is_available():
        info["runs"] = "not probed (no CUDA)"
    else:
        probe = probe or _sdpa_probe
        info["runs"] = {b: probe(b) for b in SDPA_BACKENDS}
    return info


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
                   peak=device.as_dict()["peak"], clocks=device.clocks or "not recorded")
    else:
        env.update(gpu="none", cpu=cpu_name(), cpu_count=os.cpu_count())
    env.update(extra)
    return env
