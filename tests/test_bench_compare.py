"""attnkata bench --compare: saved results compared only with their environments pinned (no GPU)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from attnkata import cli
from attnkata_plugins.bench.compare import FIELDS, run_compare

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CUDA = json.loads((FIXTURES / "bench_cuda.json").read_text())   # a CUDA-path run (fake H100 timer)
CPU = json.loads((FIXTURES / "bench_cpu.json").read_text())     # a CPU-path run (level-4 tiled)


def save(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def twin(data: dict, change=None) -> dict:
    """A second run in the same environment, 20% faster, optionally changed by ``change``."""
    other = copy.deepcopy(data)
    for row in other.get("rows", []):
        if "ms" in row:
            row["ms"]["median_ms"] *= 0.8
    for row in (other.get("cpu") or {}).get("rows", []):
        if "tiled_median_s" in row:
            row["tiled_median_s"] *= 0.8
    if change:
        change(other)
    return other


def compare(tmp_path, a: dict, b: dict, *allow: str) -> tuple[int, str]:
    return run_compare(save(tmp_path, "A.json", a), save(tmp_path, "B.json", b), allow, width=80)


def test_matching_environments_are_compared_with_both_environments(tmp_path):
    code, out = compare(tmp_path, CUDA, twin(CUDA))
    assert code == 0, out
    assert "Cases timed in both" in out and "1.25x" in out
    assert "Refused" not in out
    assert "A environment: gpu=NVIDIA H100 80GB HBM3" in out and "B environment: gpu=NVIDIA H100" in out
    assert "[measured] bench-flash_fwd-target-fp16" in out           # the saved claim, from A and B
    assert out.count("driver=550.54.15") >= 4                          # each claim carries both envs
    assert max(map(len, out.splitlines())) <= 80


def _set_env(key, value):
    return lambda d: d["environment"].__setitem__(key, value)


def _shapes(d):
    for row in d["rows"]:
        row["shape"]["N"] += 8


def _not_causal(d):
    d["rows"] = [r for r in d["rows"] if not r["shape"]["causal"]]


MISMATCHES = {
    "device": _set_env("gpu", "NVIDIA A100-SXM4-80GB"),
    "driver": _set_env("driver", "560.35.03"),
    "torch": _set_env("torch", "2.6.0+cu126"),
    "triton": _set_env("triton", "3.2.0"),
    "cuda": _set_env("cuda", "12.6"),
    "dtype": _set_env("dtype", "bf16"),
    "shapes": _shapes,
    "causal": _not_causal,
    "timing": _set_env("l2", "warm"),
    "clocks": _set_env("clocks", {"sm_mhz": 1980, "mem_mhz": 2619}),
    "sdpa": _set_env("sdpa", {"flash_impl": "FA3", "runs": {"FLASH_ATTENTION": "runs"}}),
}


@pytest.mark.parametrize("field", sorted(MISMATCHES))
def test_a_pinned_field_that_differs_refuses_the_comparison(tmp_path, field):
    code, out = compare(tmp_path, CUDA, twin(CUDA, MISMATCHES[field]))
    assert code == 1, out
    flat = " ".join(out.split())
    assert "Refused: 1 pinned field(s)" in flat and f"{field} ({'missing' if field in ('clocks', 'sdpa') else 'differs'})" in flat
    assert "Cases timed in both" not in out and "[measured]" not in out
    assert max(map(len, out.splitlines())) <= 80


def test_allow_overrides_one_field_at_a_time_and_says_so(tmp_path):
    b = twin(CUDA, MISMATCHES["driver"])
    code, out = compare(tmp_path, CUDA, b, "driver")
    assert code == 0, out
    flat = " ".join(out.split())
    assert "--allow driver: driver differs (A: 550.54.15; B: 560.35.03); compared anyway" in flat
    assert "(driver differs, allowed)" in flat                          # in the comparison's claim
    both = twin(CUDA, lambda d: (MISMATCHES["driver"](d), MISMATCHES["torch"](d)))
    code, out = compare(tmp_path, CUDA, both, "driver")
    flat = " ".join(out.split())
    assert code == 1 and "torch (differs)" in flat and "driver (differs)" not in flat
    code, out = compare(tmp_path, CUDA, both, "driver", "torch")
    assert code == 0
    code, out = compare(tmp_path, CUDA, twin(CUDA), "torch")
    assert code == 0 and "--allow torch: torch matches; nothing overridden" in " ".join(out.split())


def test_clocks_count_once_recorded_and_a_missing_field_refuses(tmp_path):
    clocked = twin(CUDA, MISMATCHES["clocks"])
    assert compare(tmp_path, clocked, twin(clocked))[0] == 0              # recorded alike in both
    gone = twin(CUDA, lambda d: d["environment"].pop("driver"))
    code, out = compare(tmp_path, CUDA, gone)
    assert code == 1 and "driver (missing)" in " ".join(out.split())


def test_cpu_results_compare_and_the_toy_measured_boundary_holds(tmp_path):
    code, out = compare(tmp_path, CPU, twin(CPU))
    assert code == 0 and "tiled_attention N=256" in out and "1.25x" in out
    assert "bench-cpu-target-tiled-vs-naive" in out
    code, out = compare(tmp_path, CPU, twin(CPU, _set_env("numpy", "1.26.4")))
    assert code == 1 and "numpy (differs)" in " ".join(out.split())
    code, out = compare(tmp_path, CPU, CUDA)
    flat = " ".join(out.split())
    assert code == 1 and "mode (differs)" in flat and "device (differs)" in flat


def test_through_the_command_line(tmp_path, capsys):
    a = save(tmp_path, "A.json", CUDA)
    b = save(tmp_path, "B.json", twin(CUDA, MISMATCHES["triton"]))
    assert cli.main(["bench", "--compare", a, b]) == 1
    assert "triton (differs)" in " ".join(capsys.readouterr().out.split())
    assert cli.main(["bench", "--compare", a, b, "--allow", "triton"]) == 0
    assert "--allow triton" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["bench", "--compare", a, b, "--allow", "not-a-field"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "attnkata.ladder/1"}')
    assert cli.main(["bench", "--compare", a, str(bad)]) == 2
    assert "not a saved bench result" in " ".join(capsys.readouterr().err.split())
    assert set(FIELDS) >= set(MISMATCHES)


def test_a_different_flash_implementation_refuses(tmp_path):
    fa2 = twin(CUDA, _set_env("sdpa", {"flash_impl": "built-in FlashAttention-2", "cudnn_version": 91000}))
    fa3 = twin(CUDA, _set_env("sdpa", {"flash_impl": "FA3", "cudnn_version": 91000}))
    assert compare(tmp_path, fa2, twin(fa2))[0] == 0
    code, out = compare(tmp_path, fa2, fa3)
    assert code == 1 and "sdpa (differs)" in " ".join(out.split())
    assert compare(tmp_path, fa2, fa3, "sdpa")[0] == 0
