"""The bench's targets, environment, peak table, spread and ``--quick``, with no GPU and no clock.

Every figure comes from fake timings (fixed milliseconds per candidate) and fake device
information, so each has one right value.  The CUDA-graph timer's statistics are unit
tested with fake events; the one test that times a real kernel runs only with CUDA.
"""

from __future__ import annotations

import json
import os
import subprocess
from types import SimpleNamespace

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from attnkata import Pack  # noqa: E402
from attnkata.manager import Registry  # noqa: E402
from attnkata.render import render  # noqa: E402
from attnkata.target import TargetSpec  # noqa: E402
from attnkata_plugins.bench import oracle, timing  # noqa: E402
from attnkata_plugins.bench import results as res  # noqa: E402
from attnkata_plugins.bench import targets as tg  # noqa: E402
from attnkata_plugins.bench.cases import (DENSE_LABEL, GATHER_LABEL, SDPA_NAMES, Candidate, Case,  # noqa: E402
                                          Prepared, contiguous_kv, quick_cases)
from attnkata_plugins.bench.env import (PEAK_TABLE, DeviceInfo, clocks, form_factor, lookup_peak,  # noqa: E402
                                        sdpa_info)
from attnkata_plugins.bench.options import BenchOptions  # noqa: E402
from attnkata_plugins.bench.run import base_row, run_bench, run_sweep  # noqa: E402
from attnkata_plugins.bench.timing import CudaEventTimer, Timing, per_call, spread, spread_warning  # noqa: E402


# -- the peak table ------------------------------------------------------------------------

@pytest.mark.parametrize("name, memory, peak, bf16, gbps", [
    ("NVIDIA GH200 480GB", 94.5, "GH200 96GB HBM3", 989.4, 4000),       # not H200's 4.8 TB/s
    ("NVIDIA GH200 144G HBM3e", 139.5, "GH200 144GB HBM3e", 989.4, 4900),
    ("NVIDIA GH200", 139.5, "GH200 144GB HBM3e", 989.4, 4900),          # told apart by memory
    ("NVIDIA H200", 139.8, "H200 SXM", 989.4, 4800),
    ("NVIDIA H200 NVL", 139.8, "H200 NVL", 835, 4800),
    ("NVIDIA H800 PCIe", 79.6, "H800 PCIe", 756, 2000),                 # H100 PCIe figures, not SXM
    ("NVIDIA H800", 79.6, "H800 SXM", 989.4, 3350),
    ("NVIDIA H100 PCIe", 79.6, "H100 PCIe", 756, 2000),
    ("NVIDIA GB200", 184.0, "GB200 (per GPU)", 2500, 8000),             # not B200's 2250
    ("NVIDIA B200", 178.4, "B200 (HGX)", 2250, 8000),
    ("NVIDIA A800-SXM4-80GB", 79.3, "A800 SXM 80GB", 312, 2039),
    ("NVIDIA A800 80GB PCIe", 79.3, "A800 PCIe 80GB", 312, 1935),
    ("NVIDIA A800 40GB Active", 39.4, "A800 40GB", 312, 1555),
])
def test_the_peak_table_tells_the_variants_apart(name, memory, peak, bf16, gbps):
    found = lookup_peak(name, memory)
    assert found is not None and found.name == peak
    assert found.tflops["bf16"] == bf16 and found.hbm_gbps == gbps


def test_every_datacenter_row_has_fp32_and_tf32_peaks_and_a_source():
    for pattern, _, peak in PEAK_TABLE:
        assert peak.source and peak.hbm_gbps > 0, pattern
        assert peak.tflops["fp32"] < peak.tflops["fp16"], pattern   # CUDA cores under tensor cores
        if peak.name.split()[0] in ("H100", "H200", "H800", "GH200", "GB200", "B200", "A100", "A800", "L40S", "L4"):
            # dense TF32 is half of dense bf16 (B200: 1.1 PF, as NVIDIA rounds it)
            assert peak.tflops["tf32"] == pytest.approx(peak.tflops["bf16"] / 2, rel=0.03), pattern
    # the rows whose figures are assumed say so
    uncertain = {p.name for _, _, p in PEAK_TABLE if p.uncertain}
    assert {"H800 PCIe", "H800 SXM", "GB200 (per GPU)", "B200 (HGX)"} <= uncertain
    assert lookup_peak("NVIDIA GH200") is None  # memory unknown: which GH200 is not guessed
    assert form_factor("NVIDIA GH200 480GB") == "superchip" and form_factor("NVIDIA GB200") == "superchip"


def test_fp32_rows_are_held_to_the_fp32_peak():
    rows = [{"kind": "flash_fwd", "candidate": "reference", "dtype": "fp32", "status": "ok", "flops": 10**12,
             "bytes": 0, "ms": {"median_ms": 100.0}, "shape": dict(B=1, H_q=1, H_kv=1, N=1, d=1, causal=False)}]
    peak = lookup_peak("NVIDIA H100 80GB HBM3")
    res.add_metrics(rows, {"fp32": peak.tflops["fp32"]}, peak.hbm_gbps)
    assert rows[0]["pct_peak"] == pytest.approx(100 * 10 / 66.9) and "FP32 (CUDA cores" in rows[0]["peak_basis"]


# -- clocks and SDPA -------------------------------------------------------------------------

def _smi(outputs):
    """A fake ``subprocess.run`` answering nvidia-smi queries from ``outputs`` (field list -> text)."""
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        query = next(a for a in cmd if a.startswith("--query-gpu=")).split("=", 1)[1]
        text = outputs.get(query)
        return subprocess.CompletedProcess(cmd, 0 if text is not None else 6, text or "", "")

    return run, calls


def test_clocks_from_nvidia_smi():
    fields = ",".join(("clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem", "clocks.applications.graphics",
                       "clocks.applications.memory", "power.limit"))
    run, calls = _smi({fields: "1980, 2619, 1980, 2619, [N/A], 2619, 700.00\n",
                       "clocks_throttle_reasons.active": "0x0000000000000004\n"})
    found = clocks("00000000:19:00.0", run=run, nvml=None)
    assert found["source"] == "nvidia-smi"
    assert found["sampled"] == {"sm_mhz": 1980, "mem_mhz": 2619, "reasons": "0x0000000000000004"}
    assert found["pinned"] == {"max_sm_mhz": 1980, "max_mem_mhz": 2619, "app_mem_mhz": 2619, "power_limit_w": 700}
    assert all("--id=00000000:19:00.0" in c for c in calls)  # the device asked about is this one
    # the renamed field is tried first; the old name answered here
    assert [c[2] for c in calls[1:]] == ["--query-gpu=clocks_event_reasons.active",
                                        "--query-gpu=clocks_throttle_reasons.active"]


def test_clocks_unknown_when_nothing_answers():
    run, _ = _smi({})
    assert clocks("0", run=run, nvml=None) == {"source": "unknown", "pinned": {}, "sampled": {}}


def test_clocks_from_pynvml():
    nvml = SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: ("handle", i),
        nvmlDeviceGetClockInfo=lambda h, c: {1: 1755, 2: 2619}[c],
        nvmlDeviceGetMaxClockInfo=lambda h, c: {1: 1980, 2: 2619}[c],
        nvmlDeviceGetApplicationsClock=lambda h, c: {1: 1755, 2: 2619}[c],
        nvmlDeviceGetPowerManagementLimit=lambda h: 700000,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0)
    found = clocks("0", nvml=nvml, run=None)
    assert found["source"] == "pynvml" and found["sampled"] == {"sm_mhz": 1755, "mem_mhz": 2619, "reasons": "0x0"}
    assert found["pinned"] == {"max_sm_mhz": 1980, "max_mem_mhz": 2619, "app_sm_mhz": 1755, "app_mem_mhz": 2619,
                               "power_limit_w": 700}


def test_sdpa_info_records_the_flash_implementation_and_the_backends_that_run():
    info = sdpa_info(probe=lambda backend: "runs" if backend != "CUDNN_ATTENTION" else "does not run: no cuDNN")
    for key in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "cudnn_sdp_enabled", "math_sdp_enabled"):
        assert isinstance(info[key], bool)
    assert info["flash_impl"]  # "built-in FlashAttention-2 (...)" unless FA3/FA4 was activated
    assert info["runs"] == {"FLASH_ATTENTION": "runs", "EFFICIENT_ATTENTION": "runs",
                            "CUDNN_ATTENTION": "does not run: no cuDNN", "MATH": "runs"}
    if not torch.cuda.is_available():
        assert sdpa_info()["runs"] == "not probed (no CUDA)"


# -- spread and the short-call timer ---------------------------------------------------------

def test_spread_and_its_warning():
    assert spread(1.0, 1.05) == pytest.approx(1.05) and spread(0.0, 1.0) == float("inf")
    assert spread_warning({"p20_ms": 1.0, "p80_ms": 1.05}) is None          # at the limit: fine
    warning = spread_warning({"p20_ms": 1.0, "p80_ms": 1.06})
    assert warning and "p80/p20 = 1.060 > 1.05" in warning
    assert spread_warning(None) is None and spread_warning({"median_ms": 1}) is None
    assert Timing.from_samples([1.0, 1.0, 1.0, 2.0, 2.0]).spread == pytest.approx(2.0)  # p20 1, p80 2


def test_per_call_subtracts_the_paired_flush_and_drops_noise():
    assert per_call([10.0, 12.0], None, 4) == [2.5, 3.0]
    assert per_call([10.0, 12.0, 5.0], [6.0, 8.0, 6.0], 4) == [1.0, 1.0]  # the third pair: flush > total
    with pytest.raises(ValueError):
        per_call([1.0], [1.0, 2.0], 1)


class FakeGpu:
    """A fake GPU clock: kernels add their cost when launched; events read the clock."""

    def __init__(self):
        self.now = 0.0

    def event_class(self):
        gpu = self

        class Event:
            def __init__(self, enable_timing=False):
                self.t = None

            def record(self):
                self.t = gpu.now

            def elapsed_time(self, end):
                return end.t - self.t

        return Event


def _fake_cuda(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "Event", gpu.event_class())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)


class FakeFlush:
    def __init__(self, gpu, ms):
        self.gpu, self.ms = gpu, ms

    def zero_(self):
        self.gpu.now += self.ms


def test_short_calls_fall_back_to_launches_between_two_events(monkeypatch):
    gpu = FakeGpu()
    _fake_cuda(monkeypatch, gpu)
    monkeypatch.setattr(torch, "empty", lambda *a, **k: FakeFlush(gpu, 0.05))  # the L2 flush: 50 us

    def kernel():
        gpu.now += 0.02  # 20 us

    timer = CudaEventTimer(rep_ms=10, warmup_ms=1, graph_ms=1.0, device="cpu")
    t = timer(kernel, None, {})
    # no CUDA here: capture fails, so inner launches back to back, the flush-only loop subtracted
    assert t.method["how"] == "launches between two events" and "capture failed" in t.method["why"]
    assert t.median_ms == pytest.approx(0.02) and t.p20_ms == pytest.approx(0.02)
    assert t.method["inner"] == 50 and t.method["flush_ms_per_call"] == pytest.approx(0.05)
    assert t.method["l2"].startswith("cold")
    assert t.as_dict()["method"]["how"] == "launches between two events"


def test_short_calls_are_replayed_in_cuda_graphs(monkeypatch):
    gpu = FakeGpu()
    _fake_cuda(monkeypatch, gpu)
    captured = []

    class Graph:  # replaying it runs its steps on the fake GPU, with no host in the loop
        def __init__(self, steps, inner):
            self.steps, self.inner = steps, inner

        def replay(self):
            for _ in range(self.inner):
                for step in self.steps:
                    step()

    def capture(steps, inner):
        captured.append(len(steps))
        return Graph(steps, inner)

    monkeypatch.setattr(timing, "_capture", capture)
    costs = iter([0.010, 0.012] * 10_000)

    def kernel():
        gpu.now += next(costs)

    timer = CudaEventTimer(rep_ms=10, warmup_ms=1, graph_ms=0.5, cold_l2=False, device="cpu")
    t = timer(kernel, None, {})
    assert t.method["how"] == "cuda-graph" and t.method["l2"] == "warm" and captured == [1]
    assert t.method["inner"] == timer.plan(t.method["estimate_ms"])[0] >= 40
    assert t.median_ms == pytest.approx(0.011, abs=1e-6)  # the mean of the calls in one replay
    # a setup step between calls cannot be captured: launches, and the row says why
    t = CudaEventTimer(rep_ms=10, warmup_ms=1, cold_l2=False, device="cpu")(kernel, lambda: None, {})
    assert t.method["how"] == "launches between two events" and "setup step" in t.method["why"]


def test_long_calls_keep_one_pair_of_events_per_call(monkeypatch):
    gpu = FakeGpu()
    _fake_cuda(monkeypatch, gpu)
    t = CudaEventTimer(rep_ms=50, warmup_ms=5, cold_l2=False, device="cpu")(
        lambda: setattr(gpu, "now", gpu.now + 2.0), None, {})
    assert t.method["how"] == "per-call events" and t.median_ms == 2.0 and t.n == 25


def test_timer_plan():
    timer = CudaEventTimer(graph_ms=2.0, rep_ms=100, min_reps=10, max_inner=1000)
    assert timer.plan(0.01) == (200, 50)
    assert timer.plan(0.0001) == (1000, 1000)   # capped
    assert timer.plan(0.9) == (3, 38)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="captures a CUDA graph: needs CUDA")
def test_real_cuda_graph_timing_of_a_short_kernel():
    x = torch.randn(1 << 20, device="cuda")
    t = CudaEventTimer(rep_ms=20, warmup_ms=5, cold_l2=False)(lambda: x.mul_(1.0), None, {})
    assert t.method["how"] == "cuda-graph", t.method
    assert t.n >= 10 and 0 < t.p20_ms <= t.median_ms <= t.p80_ms
    t = CudaEventTimer(rep_ms=20, warmup_ms=5)(lambda: x.mul_(1.0), None, {})  # cold: flush subtracted
    assert t.method["how"] == "cuda-graph" and t.method["flush_ms_per_call"] > 0 and t.n >= 1


# -- targets from fake rows ---------------------------------------------------------------

H200 = DeviceInfo("NVIDIA H200", "SXM", "9.0", 132, 139.8, 60 * 2**20, "570.86.15",
                  lookup_peak("NVIDIA H200", 139.8))
ENV = {"gpu": "NVIDIA H200", "form_factor": "SXM", "driver": "570.86.15", "cuda": "12.8", "torch": "2.13",
       "triton": "3.9", "cudnn": "91000", "dtype": "bf16", "shapes": "quick", "seed": 0,
       "peak": H200.as_dict()["peak"], "clocks": {"max_sm_mhz": 1980}, "sdpa": {"flash_impl": "FA2"},
       "created": "2026-11-29T06:00:00+00:00"}


def _row(case, candidate, ms, status="ok", spread_ms=None):
    cand = Candidate(candidate, candidate, lambda c, x: None)
    row = base_row(case, cand)
    row["status"] = status
    if status == "ok":
        lo, hi = spread_ms or (0.99 * ms, 1.01 * ms)
        row["ms"] = {"median_ms": ms, "p20_ms": lo, "p80_ms": hi, "n": 50}
    else:
        row["message"] = "no kernel for this shape"
    return row


FWD = Case("flash_fwd", "bf16", 4, 16, 16, 4096, 128, False)
CAUSAL = Case("flash_fwd", "bf16", 4, 16, 16, 4096, 128, True)
BOTH = Case("flash_fwdbwd", "bf16", 4, 16, 16, 4096, 128, False)
DEC1K = Case("paged_decode", "bf16", 32, 32, 8, 1024, 128, False, 16)
DEC4K = Case("paged_decode", "bf16", 32, 32, 8, 4096, 128, False, 16)


def _rows(fwd_ms=0.90, causal_ms=0.75, both_ms=3.0, dec_ms=0.140):
    rows = [_row(FWD, "reference", fwd_ms), _row(FWD, "sdpa_flash", 0.945), _row(FWD, "sdpa_efficient", 1.35),
            _row(FWD, "sdpa_cudnn", 0.81), _row(FWD, "sdpa_math", 0, "unsupported"),
            _row(CAUSAL, "reference", causal_ms, spread_ms=(0.72, 0.82)), _row(CAUSAL, "sdpa_flash", 0.6),
            _row(BOTH, "reference", both_ms), _row(BOTH, "sdpa_flash", 2.1),
            _row(DEC4K, "reference", dec_ms), _row(DEC4K, "sdpa_flash", 0.12), _row(DEC4K, "sdpa_gather", 0.40),
            _row(DEC1K, "reference", 0.05)]
    res.add_metrics(rows, {"bf16": 989.4}, 4800.0)
    return rows


def test_targets_are_judged_on_the_reference_rows():
    results = {r["id"]: r for r in tg.evaluate(_rows(), ENV)}
    fwd = results["fwd"]
    assert fwd["value"] == pytest.approx(1.05) and fwd["verdict"] == "met"
    assert fwd["versus"]["sdpa_efficient"] == pytest.approx(1.5)
    assert fwd["versus"]["sdpa_math"].startswith("unsupported")            # every backend, or why not
    assert fwd["moonshot_value"] == pytest.approx(0.9) and fwd["moonshot_verdict"] == "met"
    assert fwd["pct_peak"] == pytest.approx(100 * FWD.flops / 0.9e-3 / 1e12 / 989.4)
    causal = results["fwd-causal"]
    assert causal["value"] == pytest.approx(CAUSAL.flops / 0.75e-3 / 1e12) and causal["verdict"] == "met"
    assert 350 < causal["value"] < 370 and causal["versus"]["sdpa_flash"] == pytest.approx(0.8)
    assert any("p80/p20 = 1.139" in w for w in causal["warnings"])         # 0.82 / 0.72
    both = results["fwdbwd"]
    assert both["value"] == pytest.approx(0.7) and both["verdict"] == "NOT met"
    assert BOTH.flops == int(3.5 * FWD.flops)
    decode = results["decode"]
    gbps = DEC4K.kv_bytes / 0.14e-3 / 1e9
    assert decode["value"] == pytest.approx(100 * gbps / 4800) and decode["gbps"] == pytest.approx(gbps)
    assert decode["verdict"] == "met" and decode["moonshot_verdict"] == "not met"   # ~80%
    assert decode["versus"]["sdpa_gather"] == pytest.approx(0.40 / 0.14)
    assert "dense upper bound, no paging" in decode["baseline_note"]
    assert decode["shapes_judged"] == 1                                     # 1k tokens does not count
    assert not any("targets are set for" in w for w in fwd["warnings"])     # an H200 SXM


def test_a_target_without_its_rows_or_baseline_stays_unmeasured():
    rows = [r for r in _rows() if not (r["kind"] == "flash_fwdbwd" and r["candidate"] == "sdpa_flash")]
    rows = [r for r in rows if r["kind"] != "paged_decode" or r["shape"]["N"] < 4096]
    results = {r["id"]: r for r in tg.evaluate(rows, ENV)}
    assert results["fwdbwd"]["verdict"] == "unmeasured" and "no sdpa_flash row" in results["fwdbwd"]["why"]
    assert results["decode"]["verdict"] == "unmeasured" and "no paged_decode rows" in results["decode"]["why"]
    rows = _rows()
    res.add_metrics(rows, {"bf16": None}, None)                              # a device without a peak
    for r in rows:
        r["pct_peak"] = None if r["kind"] == "paged_decode" else r.get("pct_peak")
    decode = next(r for r in tg.evaluate(rows, {**ENV, "peak": "unknown peak", "gpu": "Some GPU"})
                  if r["id"] == "decode")
    assert decode["verdict"] == "unmeasured" and "unknown peak" in decode["why"]
    assert all(r["verdict"] == "unmeasured" and r["why"] == "no GPU" for r in tg.unmeasured("no GPU"))


def test_other_devices_and_uncertain_peaks_are_said():
    gb200 = lookup_peak("NVIDIA GB200")
    env = {**ENV, "gpu": "NVIDIA GB200", "peak": DeviceInfo("NVIDIA GB200", peak=gb200).as_dict()["peak"]}
    fwd = tg.evaluate(_rows(), env)[0]
    assert any("set for an H100/H200 SXM" in w for w in fwd["warnings"])
    assert any(w.startswith("peak uncertain") for w in fwd["warnings"])


def test_target_claims_carry_the_environment_or_are_refused():
    results = tg.evaluate(_rows(), ENV)
    claims = {c.id: c for c in tg.target_claims(results, ENV)}
    assert set(claims) == {"bench-goal-fwd", "bench-goal-fwd-causal", "bench-goal-fwdbwd",
                           "bench-goal-decode"}
    fwd = claims["bench-goal-fwd"]
    assert fwd.scope == "measured" and fwd.source == "dao-2023"
    assert fwd.environment["clocks"] == {"max_sm_mhz": 1980} and fwd.environment["sdpa"]["flash_impl"] == "FA2"
    assert fwd.environment["gpu"] == "NVIDIA H200" and fwd.environment["driver"] == "570.86.15"
    assert "1.05x sdpa_flash" in fwd.text and "target >= 1x sdpa_flash: met" in fwd.text
    assert "NOT met" in claims["bench-goal-fwdbwd"].text
    assert claims["bench-goal-decode"].source == "kwon-2023-paged"
    # about the reference kernels: they join any ladder, not only the ladder of the code timed
    from attnkata_plugins.bench.saved import applies

    assert all(applies(c, "solutions", "katas") for c in claims.values())
    with pytest.raises(res.MeasuredClaimRefused, match="clocks"):
        tg.target_claims(results, {k: v for k, v in ENV.items() if k != "clocks"})


def test_targets_table_fits_80_columns():
    data = {"mode": "cuda", "environment": {**ENV, "l2_mib": 60.0, "sm_count": 132, "capability": "9.0",
                                            "memory_gib": 139.8, "timer": "cuda-events", "l2": "cold"},
            "targets": tg.evaluate(_rows(), ENV)}
    text = render(tg.targets_table(data, 80), color=False, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(text.split())
    assert "NOT met" in flat and "unmeasured" not in flat and "SDPA flash implementation: FA2" in flat
    assert "…" not in text  # wrapped, never cropped


def test_budget_skips_what_has_not_started_in_time():
    # one tick per look at the clock: the start; case 1, its two candidates; case 2, its two; case 3
    ticks = iter([0.0, 0.0, 0.0, 0.0, 100.0, 100.0, 400.0, 400.0])
    cases = [Case("flash_fwd", "fp32", 1, 1, 1, 8, 4), Case("flash_fwd", "fp32", 1, 1, 1, 16, 4),
             Case("flash_fwd", "fp32", 1, 1, 1, 32, 4)]

    def prepare(case, x):
        return Prepared(lambda: oracle.attention(x["q"], x["k"], x["v"], case.causal, dtype=torch.float64))

    cand = Candidate("reference", "oracle", prepare)
    other = Candidate("sdpa_math", "oracle", prepare)
    lines = []
    rows = run_sweep(cases, {"flash_fwd": [cand, other]}, timer=lambda fn, s, i: Timing(1.0, 1.0, 1.0, 3),
                     device="cpu", seed=0, echo=lines.append, budget_s=225, clock=lambda: next(ticks))
    # case 1: both run; case 2: started in time, its second candidate not; case 3: not started
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "skipped", "skipped", "skipped"]
    assert rows[3]["message"].endswith("before this candidate") and rows[5]["message"].endswith("this shape")
    assert "time budget (225 s)" in rows[5]["message"] and "skipped" in lines[-1]


def test_quick_cases():
    cases = quick_cases()
    labels = [(c.kind, c.N, c.causal) for c in cases]
    assert labels[:4] == [("flash_fwd", 4096, False), ("flash_fwd", 4096, True), ("flash_fwdbwd", 4096, False),
                          ("paged_decode", 4096, False)]                      # the targets first
    assert sorted(labels) == sorted(labels[:4] + [("flash_fwd", 1024, False), ("flash_fwd", 1024, True),
                                                  ("paged_decode", 1024, False)])
    assert {(c.dtype, c.d) for c in cases} == {("bf16", 128)}
    opts = BenchOptions.from_namespace(_namespace(quick=True))
    assert opts.quick and opts.budget_s == 225 and opts.cases() == cases


def _namespace(**over):
    from attnkata_plugins.bench.options import OPTIONS

    ns = {kw["dest"]: kw.get("default", False) for _, kw in OPTIONS}
    ns.update({f"attnkata_bench_{k}": v for k, v in over.items()})
    return SimpleNamespace(**ns)


# -- --quick, end to end, with fakes -------------------------------------------------------------

QUICK_MS = {"reference": {"flash_fwd": 0.20, "flash_fwdbwd": 1.0, "paged_decode": 0.14},
            "sdpa_flash": 0.21, "sdpa_efficient": 0.3, "sdpa_cudnn": 0.18, "sdpa_math": 2.0, "sdpa_gather": 0.4}
# (quick_run's shapes are small -- B=1, H=1 -- so the causal forward misses 350 TFLOP/s)


class QuickTimer:
    def __call__(self, fn, setup, info):
        ms = QUICK_MS[info["candidate"]]
        ms = ms[info["case"].kind] if isinstance(ms, dict) else ms
        return Timing(ms, 0.99 * ms, 1.01 * ms, 20, {"how": "fake"})


def _exact(case, x):
    """The float32 truth of a case (its forward and backward, or its decode)."""
    if case.kind == "paged_decode":
        k, v = contiguous_kv(x)
        return (oracle.attention(x["q"].unsqueeze(2), k, v)[0].squeeze(2),)
    o, lse = oracle.attention(x["q"], x["k"], x["v"], case.causal)
    if case.kind == "flash_fwd":
        return o, lse
    return oracle.attention_backward(x["q"], x["k"], x["v"], o, lse, x["do"], case.causal)


_EXACT: dict = {}


def fast_truth(case, x):
    """The truth without the slow bf16 drift on a CPU: the fake candidates return it exactly."""
    _EXACT.clear()
    _EXACT[id(x["q"])] = exact = _exact(case, x)
    return exact, exact


def fake_baselines(kind):
    def prepare(case, x):
        out = _EXACT[id(x["q"])]
        return Prepared(lambda: out)

    names = ["reference", *SDPA_NAMES.values()] + (["sdpa_gather"] if kind == "paged_decode" else [])
    labels = {"sdpa_gather": GATHER_LABEL, **({n: DENSE_LABEL for n in SDPA_NAMES.values()}
                                               if kind == "paged_decode" else {})}
    backends = {v: k for k, v in SDPA_NAMES.items()}
    return [Candidate(n, f"fake {n}", prepare, sdpa_backend=backends.get(n), label=labels.get(n, ""))
            for n in names]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``--quick`` on the CUDA path, on CPU tensors: small batch and width, the quick shapes' N and d."""
    mp = pytest.MonkeyPatch()
    from attnkata_plugins.bench import cases

    mp.setattr(cases, "baseline_candidates", fake_baselines)
    mp.setattr(cases, "truth", fast_truth)  # the correctness path is test_bench's; this is --quick's plumbing
    root = tmp_path_factory.mktemp("quick")
    registry = Registry(packs={"t": Pack("t", (), root, root)}, katas=[])
    opts = BenchOptions(quick=True, budget_s=225, tokens=4096, width=128, decode_batch=1, out=root / "out",
                        dtypes=("bf16",), sizes=(1024, 4096), head_dims=(128,))
    lines = []
    try:
        run = run_bench(opts, registry=registry, target=TargetSpec("solutions", None), learner_root=root,
                        rootdir=root, echo=lines.append, gpu=H200, timer=QuickTimer(), device="cpu")
    finally:
        mp.undo()
    return run, lines


def test_quick_measures_every_target_and_writes_json_and_png(quick_run):
    run, lines = quick_run
    data = json.loads(run.json_path.read_text())
    assert res.validate_envelope(data) == [] and data["environment"]["quick"] is True
    assert [r["status"] for r in data["rows"]] == ["ok"] * len(data["rows"])
    verdicts = {t["id"]: t["verdict"] for t in data["targets"]}
    assert verdicts == {"fwd": "met", "fwd-causal": "NOT met", "fwdbwd": "NOT met", "decode": "NOT met"}
    decode_rows = [r for r in data["rows"] if r["kind"] == "paged_decode" and r["candidate"] == "sdpa_flash"]
    assert decode_rows and all(r["label"] == DENSE_LABEL for r in decode_rows)
    env = data["environment"]
    assert env["clocks"] == "not recorded" and env["sdpa"]["flash_impl"]
    assert env["sdpa"]["runs"]["FLASH_ATTENTION"] == "not probed (tensors on CPU)"
    [png] = data["files"]["plots"]
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    ids = {c.id for c in run.claims}
    assert {"bench-goal-fwd", "bench-goal-fwd-causal", "bench-goal-fwdbwd", "bench-goal-decode"} <= ids
    assert run.exit_code == 0


def test_quick_prints_the_targets_table_in_80_columns(quick_run):
    run, _ = quick_run
    from rich.console import Group

    text = render(Group(*run.renderables), color=False, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(text.split())
    assert "forward vs SDPA" in flat and "paged decode" in flat and "fwd+bwd vs SDPA" in flat
    assert "driver 570.86.15" in flat and "SDPA flash implementation" in flat


def test_quick_without_a_gpu_says_so_and_exits_3(monkeypatch, tmp_path, capsys):
    from attnkata import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path / "state"))
    code = cli.main(["--root", str(tmp_path), "bench", "--quick", "--cpu-sizes", "32", "--cpu-repeat", "1",
                     "--no-plot"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 3
    assert "attnkata bench --quick needs a CUDA GPU" in out and "times the CPU kata instead" in out
    saved = json.loads((tmp_path / "state" / "bench" / "last.json").read_text())
    assert saved["mode"] == "cpu" and res.validate_envelope(saved) == []
    assert {t["verdict"] for t in saved["targets"]} == {"unmeasured"}


def test_kata_bench_rows_are_never_the_targets():
    """A learner's kernel (candidate "target") never stands in for the reference in a target."""
    rows = [r | {"candidate": "target"} if r["candidate"] == "reference" else r for r in _rows()]
    assert {r["verdict"] for r in tg.evaluate(rows, ENV)} == {"unmeasured"}
