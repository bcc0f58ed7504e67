"""The bench plugin: arithmetic, envelope, claims and both paths, with no GPU and no clock.

The CUDA path runs here on CPU tensors with a fake device (an H100 SXM) and a fake timer
that hands out fixed milliseconds per candidate, so every figure it reports -- TFLOP/s,
GB/s, % of peak, speed-ups, geometric means -- has one right value to check.  The
reference kernels run on Triton's interpreter at tiny shapes.  Nothing here reads a clock.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from attnkata import Check, Kata, Pack  # noqa: E402
from attnkata.ladder import Ladder  # noqa: E402
from attnkata.manager import Registry  # noqa: E402
from attnkata.target import TargetSpec  # noqa: E402
from attnkata_plugins.bench import oracle  # noqa: E402
from attnkata_plugins.bench import results as res  # noqa: E402
from attnkata_plugins.bench.cases import DENSE_LABEL, GATHER_LABEL, Case, flash_flops, sweep  # noqa: E402
from attnkata_plugins.bench.env import DeviceInfo, form_factor, lookup_peak  # noqa: E402
from attnkata_plugins.bench.options import BenchOptions  # noqa: E402
from attnkata_plugins.bench.run import bench_specs, run_bench  # noqa: E402
from attnkata_plugins.bench.saved import ladder_claims, report_sections  # noqa: E402
from attnkata_plugins.bench.timing import CudaEventTimer, Timing  # noqa: E402

H100 = DeviceInfo("NVIDIA H100 80GB HBM3", "SXM", "9.0", 132, 79.6, 50 * 2**20, "550.54.15",
                  lookup_peak("NVIDIA H100 80GB HBM3"))
FAKE_MS = {"target": 2.0, "reference": 1.0, "sdpa_flash": 4.0, "sdpa_math": 8.0}

FLASH_TARGET = '''
import math
import torch

def flash_attention_forward(q, k, v, causal=False, sm_scale=None):
    s = (q.float() @ k.float().transpose(-1, -2)) * (sm_scale or 1.0 / math.sqrt(q.shape[-1]))
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ v.float()).to(q.dtype), s.logsumexp(-1)
'''
WRONG_PAGED_TARGET = '''
import torch

def paged_attention_decode_triton(q, k_pages, v_pages, block_tables, seq_lens):
    return torch.zeros_like(q)  # wrong on purpose: must be caught, never timed
'''


class FakeTimer:
    """Fixed milliseconds per candidate; remembers what it was asked to time."""

    def __init__(self):
        self.calls = []

    def __call__(self, fn, setup, info):
        self.calls.append((info["case"].kind, info["candidate"]))
        ms = FAKE_MS.get(info["candidate"], 16.0)
        return Timing(ms, 0.9 * ms, 1.1 * ms, 7)


def _kata(kata_id, path, entry, bench):
    return Kata(id=kata_id, level=5, title=kata_id, path=path, entries=(entry,),
                checks=(Check("c", "unused", lambda ctx: None),), bench=bench, pack="t")


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """One run of the CUDA path on CPU: a correct flash target, a wrong paged one."""
    root = tmp_path_factory.mktemp("target")
    (root / "level5").mkdir()
    (root / "level6").mkdir()
    (root / "level5" / "flash_attention_forward.py").write_text(FLASH_TARGET)
    (root / "level6" / "paged_attention_decode_triton.py").write_text(WRONG_PAGED_TARGET)
    katas = [_kata("flash_attention_forward", "level5/flash_attention_forward.py", "flash_attention_forward",
                   {"kind": "flash_fwd", "entry": "flash_attention_forward"}),
             _kata("paged_attention_decode_triton", "level6/paged_attention_decode_triton.py",
                   "paged_attention_decode_triton", {"kind": "paged_decode", "entry": "paged_attention_decode_triton"})]
    references = tmp_path_factory.mktemp("references")  # protected from the target's worker
    registry = Registry(packs={"t": Pack("t", tuple(katas), root, references)}, katas=katas)
    out = tmp_path_factory.mktemp("bench")
    opts = BenchOptions(sizes=(24,), head_dims=(16,), dtypes=("fp16",),
                        kinds=("flash_fwd", "flash_bwd", "flash_fwdbwd", "paged_decode"),
                        tokens=24, width=32, decode_batch=2, out=out)
    timer = FakeTimer()
    lines = []
    run = run_bench(opts, registry=registry, target=TargetSpec(str(root), root), learner_root=root, rootdir=root,
                    echo=lines.append, gpu=H100, timer=timer, device="cpu")
    return run, timer, out, lines


def _rows(run, kind, candidate):
    return [r for r in run.data["rows"] if r["kind"] == kind and r["candidate"] == candidate]


# -- arithmetic ------------------------------------------------------------------

def test_flop_counts():
    assert flash_flops(2, 3, 5, 8) == 4 * 2 * 3 * 25 * 8
    assert flash_flops(2, 3, 5, 8, causal=True) == 4 * 2 * 3 * 25 * 8 // 2
    fwd = Case("flash_fwd", "bf16", 4, 32, 8, 4096, 128, True)
    bwd = Case("flash_bwd", "bf16", 4, 32, 8, 4096, 128, True)
    assert fwd.flops == 2 * 4 * 32 * 4096**2 * 128  # H is the query heads, causal halves
    assert bwd.flops == int(2.5 * fwd.flops)
    decode = Case("paged_decode", "fp16", 32, 32, 8, 4096, 128, False, 16)
    assert decode.kv_bytes == 2 * 32 * 4096 * 8 * 128 * 2  # K and V of every KV head, fp16


def test_sweep_follows_the_papers_convention():
    cases = sweep(kinds=("flash_fwd", "paged_decode"), sizes=(512, 16384), head_dims=(64, 128))
    flash = [c for c in cases if c.kind == "flash_fwd"]
    assert len(flash) == 2 * 2 * 2 * 2  # dtypes x d x causal x N
    assert {c.B * c.N for c in flash} == {16384} and {c.H_q * c.d for c in flash} == {2048}
    assert all(c.H_q == c.H_kv for c in flash)  # no GQA: every SDPA backend computes the same
    decode = [c for c in cases if c.kind == "paged_decode"]
    assert len(decode) == 2 * 2 * 2 and not any(c.causal for c in decode)
    assert {(c.H_q, c.H_kv) for c in sweep(kinds=("flash_fwd",), sizes=(512,), gqa=4)} == {(32, 8), (16, 4)}


@pytest.mark.parametrize("name, memory, peak, tflops, gbps", [
    ("NVIDIA H100 80GB HBM3", 79.6, "H100 SXM", 989.4, 3350),
    ("NVIDIA H100 PCIe", 79.6, "H100 PCIe", 756, 2000),
    ("NVIDIA H200", 140.0, "H200 SXM", 989.4, 4800),
    ("NVIDIA A100-SXM4-80GB", 79.2, "A100 SXM 80GB", 312, 2039),
    ("NVIDIA A100-SXM4-40GB", 39.4, "A100 SXM 40GB", 312, 1555),
    ("NVIDIA A100 80GB PCIe", 79.2, "A100 PCIe 80GB", 312, 1935),
    ("NVIDIA L4", 22.0, "L4", 121, 300),
    ("NVIDIA GeForce RTX 4090", 23.6, "RTX 4090", 165.2, 1008),
])
def test_peak_table_lookup(name, memory, peak, tflops, gbps):
    found = lookup_peak(name, memory)
    assert found is not None and found.name == peak
    assert found.tflops["bf16"] == tflops and found.hbm_gbps == gbps


def test_unknown_device_has_unknown_peak():
    assert lookup_peak("Some Future Accelerator 9000") is None
    unknown = DeviceInfo("Some Future Accelerator 9000")
    assert unknown.peak_tflops("bf16") is None and unknown.as_dict()["peak"] == "unknown peak"
    rows = [{"kind": "flash_fwd", "candidate": "reference", "dtype": "bf16", "status": "ok", "flops": 10**12,
             "bytes": 0, "ms": {"median_ms": 1.0}, "shape": dict(B=1, H_q=1, H_kv=1, N=1, d=1, causal=False)}]
    res.add_metrics(rows, {"bf16": None}, None)
    assert rows[0]["tflops"] == pytest.approx(1000) and rows[0]["pct_peak"] is None
    assert rows[0]["peak_basis"] == "unknown peak"


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", "SXM"), ("NVIDIA H100 PCIe", "PCIe"), ("NVIDIA H100 NVL", "NVL"),
    ("NVIDIA A100-SXM4-40GB", "SXM"), ("NVIDIA A100-PCIE-40GB", "PCIe"), ("NVIDIA H200", "SXM"),
    ("Some Future Accelerator", "unknown"),
])
def test_form_factor(name, expected):
    assert form_factor(name) == expected


def test_timing_percentiles_and_geomean():
    t = Timing.from_samples([float(x) for x in range(10, 0, -1)])
    assert (t.median_ms, t.p20_ms, t.p80_ms, t.n) == (5.5, pytest.approx(2.8), pytest.approx(8.2), 10)
    assert res.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert res.geomean([2.0, None, 8.0]) == pytest.approx(4.0)
    assert res.geomean([]) is None


def test_cuda_event_timer_adapts_its_repetitions(monkeypatch):
    class Event:  # every call "takes" 0.5 ms on the fake stream
        def __init__(self, enable_timing=False):
            assert enable_timing

        def record(self):
            pass

        def elapsed_time(self, end):
            return 0.5

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    calls = {"fn": 0, "setup": 0}
    timer = CudaEventTimer(warmup_ms=25, rep_ms=100, min_flush_bytes=4096, device="cpu", graph_below_ms=0)
    timing = timer(lambda: calls.__setitem__("fn", calls["fn"] + 1),
                   lambda: calls.__setitem__("setup", calls["setup"] + 1), {})
    assert timing == Timing(0.5, 0.5, 0.5, 200)  # 100 ms of 0.5 ms calls
    assert calls == {"fn": 1 + 5 + 50 + 200, "setup": 1 + 5 + 50 + 200}  # compile, estimate, warm-up, timed
    assert CudaEventTimer(rep_ms=1, cold_l2=False, device="cpu", graph_below_ms=0)(lambda: None, None, {}).n == 10


# -- the CUDA path, faked --------------------------------------------------------

def test_fake_run_checks_before_it_times(fake_run):
    run, timer, _, lines = fake_run
    wrong = _rows(run, "paged_decode", "target")
    assert wrong and all(r["status"] == "incorrect" for r in wrong)
    assert "max error" in wrong[0]["message"] and "not timed" in wrong[0]["message"]
    assert not any(r.get("ms") for r in wrong)  # a wrong kernel is never timed
    assert not any(c == "target" for _, c in timer.calls)  # the target is timed in its worker, not here
    assert run.exit_code == 1  # the target gave a wrong answer
    assert any("flash_fwd" in line and "target " in line and " ms" in line for line in lines)


def test_fake_run_times_the_targets_code_in_its_worker(fake_run):
    run, _, _, _ = fake_run
    rows = _rows(run, "flash_fwd", "target")
    assert rows and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert "_attnkata_target_" in row["impl"] and "level5/flash_attention_forward.py" in row["impl"]
        check = row["ms"]["cross_check"]
        assert check["clock"] == "time.perf_counter" and check["n"] == row["ms"]["n"] >= 5
        assert abs(check["worker_ms"] - check["parent_ms"]) <= 0.1 * check["parent_ms"]
    assert "in the target's worker" in run.data["environment"]["target_timer"]


def test_fake_run_figures(fake_run):
    run, _, _, _ = fake_run
    for row in _rows(run, "flash_fwd", "target"):  # timed for real (its worker's clock): arithmetic on it
        ms = row["ms"]["median_ms"]
        assert row["status"] == "ok" and row["ms"]["p20_ms"] <= ms <= row["ms"]["p80_ms"]
        assert row["tflops"] == pytest.approx(row["flops"] / (ms * 1e-3) / 1e12)
        assert row["pct_peak"] == pytest.approx(100 * row["tflops"] / 989.4)
        assert row["speedup"]["reference"] == pytest.approx(1.0 / ms)
        assert row["speedup"]["sdpa_flash"] == pytest.approx(4.0 / ms)
        assert row["speedup"]["sdpa_math"] == pytest.approx(8.0 / ms)
        assert "sdpa_efficient" not in row["speedup"]  # not runnable on CPU: no speed-up against it
    for row in _rows(run, "flash_fwd", "reference"):  # the fake timer's fixed figures
        assert row["ms"] == {"median_ms": 1.0, "p20_ms": 0.9, "p80_ms": 1.1, "n": 7}
    for row in _rows(run, "paged_decode", "reference"):
        assert row["gbps"] == pytest.approx(row["bytes"] / 1e-3 / 1e9)
        assert row["pct_peak"] == pytest.approx(100 * row["gbps"] / 3350)
    bwd = _rows(run, "flash_bwd", "reference")
    assert bwd and all(r["status"] == "ok" and r["flops"] == int(2.5 * flash_flops(1, 2, 24, 16, r["shape"]["causal"]))
                       for r in bwd)
    assert all(r["autotune"] for r in bwd)  # the reference's chosen configs are recorded
    both = _rows(run, "flash_fwdbwd", "reference")  # the reference forward, then its backward: one call
    assert both and all(r["status"] == "ok" and r["flops"] == int(3.5 * flash_flops(1, 2, 24, 16, r["shape"]["causal"]))
                        for r in both)
    assert all(r["status"] == "ok" for r in _rows(run, "flash_fwdbwd", "sdpa_math"))  # SDPA forward + autograd
    for name in ("sdpa_flash", "sdpa_math", "sdpa_gather"):  # decode's SDPA rows say what they stand for
        rows = _rows(run, "paged_decode", name)
        assert rows and all(r["label"] == (GATHER_LABEL if name == "sdpa_gather" else DENSE_LABEL) for r in rows)
    assert all(r["status"] == "ok" for r in _rows(run, "paged_decode", "sdpa_gather"))
    summary = {(s["kind"], s["candidate"]): s for s in run.data["summary"]}
    target = summary[("flash_fwd", "target")]
    assert target["shapes_ok"] == 2 and target["speedup"]["reference"]["geomean"] == pytest.approx(
        res.geomean(r["speedup"]["reference"] for r in _rows(run, "flash_fwd", "target")))
    assert target["geomean"] == pytest.approx(res.geomean(r["tflops"] for r in _rows(run, "flash_fwd", "target")))
    for name in ("sdpa_efficient", "sdpa_cudnn"):
        rows = _rows(run, "flash_fwd", name)
        assert all(r["status"] == "unsupported" and r["sdpa_backend"] for r in rows)


def test_fake_run_writes_a_valid_envelope_and_plots(fake_run):
    run, _, out, _ = fake_run
    saved = json.loads(run.json_path.read_text())
    assert json.loads((out / "last.json").read_text()) == saved
    assert saved["schema"] == "attnkata.bench/1" and saved["mode"] == "cuda"
    assert res.validate_envelope(saved) == []
    env = saved["environment"]
    assert env["gpu"] == H100.name and env["form_factor"] == "SXM" and env["driver"] == "550.54.15"
    assert env["peak"]["name"] == "H100 SXM" and env["seed"] == 0 and env["dtype"] == "fp16"
    backends = {r["sdpa_backend"] for r in saved["rows"] if r["candidate"].startswith("sdpa")}
    assert backends >= {"FLASH_ATTENTION", "MATH"}
    plots = saved["files"]["plots"]
    assert all(Path(p).exists() for p in plots) and len(plots) == 5  # the targets, and one per kind
    assert plots[0].endswith("-targets.png")


def test_fake_run_measured_claims_carry_the_environment(fake_run):
    run, _, _, _ = fake_run
    claims = {c.id: c for c in run.claims}
    mine = claims["bench-flash_fwd-target-fp16"]
    assert mine.scope == "measured" and mine.kata == "flash_attention_forward" and mine.source == "dao-2023"
    assert mine.environment["gpu"] == H100.name and mine.environment["driver"] == "550.54.15"
    assert mine.environment["dtype"] == "fp16" and "N 24-24" in mine.environment["shapes"]
    assert "x reference" in mine.text and "% of peak" in mine.text
    assert "bench-paged_decode-target-fp16" not in claims  # wrong everywhere: nothing measured
    assert "bench-paged_decode-reference-fp16" in claims  # the reference stands in


def test_saved_bench_joins_the_claims_report(fake_run):
    run, _, out, _ = fake_run
    ladder = Ladder(target=run.data["environment"]["target"], levels={}, rows=[])
    claims = ladder_claims(ladder, out)
    ids = [c.id for c in claims]
    assert "bench-flash_fwd-target-fp16" in ids and all(c.environment for c in claims)
    ladder.claims.extend(claims)
    sections = report_sections(ladder, out)
    assert "Benchmark: last run" in str(sections[0])
    # fp16 at toy shapes: no target's rows (bf16, d=128, N=4096), so each says unmeasured
    assert "Targets of the reference kernels: forward vs SDPA unmeasured" in str(sections[0])
    other = Ladder(target="someone-else", levels={}, rows=[])
    assert not any("-target-" in c.id for c in ladder_claims(other, out))  # a target's figures stay with it


def test_measured_claim_without_environment_is_refused():
    with pytest.raises(res.MeasuredClaimRefused, match="no environment"):
        res.measured_claim("x", "fast", "dao-2023", None)
    with pytest.raises(res.MeasuredClaimRefused, match="lacks"):
        res.measured_claim("x", "fast", "dao-2023", {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.5"})
    claims, problems = res.claims_from({"claims": [{"id": "x", "text": "fast", "source": "s", "scope": "measured"}]})
    assert claims == [] and "refused" in problems[0]


def test_validate_envelope_names_what_is_missing():
    assert "schema" in res.validate_envelope({"schema": "other"})[0]
    bad_row = {"kind": "flash_fwd", "candidate": "sdpa_flash", "impl": "x", "dtype": "fp16", "shape": {},
               "status": "ok"}
    env = {k: "x" for k in res.GPU_ENV_KEYS}
    problems = res.validate_envelope({"schema": res.BENCH_SCHEMA, "mode": "cuda", "environment": env,
                                      "rows": [bad_row]})
    assert len(problems) == 1 and "ms" in problems[0] and "sdpa_backend" in problems[0]


# -- correctness before timing ---------------------------------------------------------

def test_oracle_matches_autograd_with_gqa_and_causal():
    torch.manual_seed(0)
    q = torch.randn(1, 4, 19, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 19, 8, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 19, 8, dtype=torch.float64, requires_grad=True)
    s = q @ k.repeat_interleave(2, 1).transpose(-1, -2) / math.sqrt(8)
    s = s.masked_fill(torch.ones(19, 19, dtype=torch.bool).triu(1), float("-inf"))
    o = s.softmax(-1) @ v.repeat_interleave(2, 1)
    do = torch.randn_like(o)
    o.backward(do)
    o2, lse = oracle.attention(q.detach(), k.detach(), v.detach(), True, dtype=torch.float64, budget_bytes=600)
    assert torch.allclose(o2, o) and torch.allclose(lse.double(), s.logsumexp(-1), atol=1e-6)
    grads = oracle.attention_backward(q.detach(), k.detach(), v.detach(), o.detach(), s.logsumexp(-1).detach(),
                                      do, True, dtype=torch.float64, budget_bytes=600)
    for got, leaf in zip(grads, (q, k, v)):
        assert torch.allclose(got.double(), leaf.grad, atol=1e-5)


def test_compare_rejects_wrong_shapes_nan_and_drift():
    truth = torch.linspace(-1, 1, 12).view(3, 4)
    drift = truth + 1e-3
    assert oracle.compare([truth + 1e-4], [truth], [drift], ["o"]).ok
    assert "max error" in oracle.compare([truth + 0.1], [truth], [drift], ["o"]).message
    assert "shape" in oracle.compare([truth.T], [truth], [drift], ["o"]).message
    assert "NaN" in oracle.compare([truth * float("nan")], [truth], [drift], ["o"]).message


def test_bench_declarations_are_read_tolerantly():
    def kata(bench, entries=("flash_attention_forward",), kata_id="k"):
        return Kata(id=kata_id, level=5, title="t", path="x.py", entries=entries,
                    checks=(Check("c", "d", lambda ctx: None),), bench=bench)

    assert bench_specs(kata({"kind": "flash_fwd", "entry": "flash_attention_forward"})) == [
        ("flash_fwd", "flash_attention_forward")]
    assert bench_specs(kata({"entry": "flash_attention_backward"})) == [("flash_bwd", "flash_attention_backward")]
    assert bench_specs(kata(True, ("paged_attention_decode", "paged_attention_decode_triton"),
                            "paged_attention_decode_triton")) == [("paged_decode", "paged_attention_decode_triton")]
    assert bench_specs(kata({"kind": "softmax", "entry": "triton_softmax"}, ("triton_softmax",), "triton_softmax")) == [
        ("softmax", "triton_softmax")]  # reported as a kind this bench does not time
    assert bench_specs(kata(None)) == []


# -- without a GPU, and the command lines -------------------------------------------------

def test_attnkata_bench_without_gpu_explains_and_writes_json(monkeypatch, tmp_path, capsys):
    from attnkata import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path / "state"))
    code = cli.main(["--root", str(tmp_path), "bench", "--cpu-sizes", "32", "--cpu-repeat", "1", "--no-plot"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no GPU: correctness only" in out
    saved = json.loads((tmp_path / "state" / "bench" / "last.json").read_text())
    assert saved["mode"] == "cpu" and saved["message"] == "no GPU: correctness only"
    assert res.validate_envelope(saved) == []
    for claim in saved["claims"]:
        assert claim["scope"] == "measured" and claim["environment"]["cpu"]


def test_attnkata_bench_refuses_unknown_kinds(capsys):
    from attnkata import cli

    assert cli.main(["bench", "--kinds", "flash_fwd,nope"]) == 2
    assert "unknown bench kind" in capsys.readouterr().err


def test_pytest_help_lists_the_bench_options(pytester):
    pytester.makepyprojecttoml("[tool.attnkata]\n")  # a course: the plugin is active
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--attnkata-bench *", "*--attnkata-bench-sizes*", "*--attnkata-bench-warm-l2*"])


def test_pytest_bench_is_opt_in(pytester, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path))
    pytester.makepyprojecttoml("[tool.attnkata]\n")  # a course: the plugin is active
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    plain = pytester.runpytest("-p", "no:randomly")
    assert "attnkata bench" not in plain.stdout.str() and not (tmp_path / "bench").exists()
    result = pytester.runpytest("-p", "no:randomly", "--attnkata-bench", "--attnkata-bench-cpu-sizes=32",
                                "--attnkata-bench-cpu-repeat=1", "--attnkata-bench-no-plot")
    result.stdout.fnmatch_lines(["*attnkata bench*", "*no GPU: correctness only*"])
    assert result.ret == 0 and (tmp_path / "bench" / "last.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="times real kernels: needs CUDA")
def test_real_gpu_bench_smoke(tmp_path):
    from attnkata.manager import load_registry

    _, registry = load_registry()
    opts = BenchOptions(sizes=(256,), head_dims=(64,), dtypes=("fp16",), causal=(True,), rep_ms=5, warmup_ms=2,
                        out=tmp_path)
    run = run_bench(opts, registry=registry, target=TargetSpec("solutions", None), learner_root=tmp_path,
                    rootdir=tmp_path, echo=print)
    assert res.validate_envelope(run.data) == []
    reference = [r for r in run.data["rows"] if r["candidate"] == "reference"]
    assert reference and all(r["status"] == "ok" and r["ms"]["n"] >= 10 for r in reference)
    assert run.exit_code == 0
