"""Level 4's CPU bench: pytest-benchmark timings of the forward passes (opt-in, marked
``benchmark``), and the schema of ``run_cpu_bench``'s JSON at tiny sizes.

Nothing here asserts on time. Run the timings with ``pytest tests/test_level4_bench.py``
(``-m benchmark`` for only them, ``--benchmark-disable`` to run each once).
"""

import importlib.util
import json
from io import StringIO

import numpy as np
import pytest
from rich.console import Console

from attnkata_plugins.bench.cpu import (FILENAME, SCHEMA, cpu_bench_table, naive_attention,
                                        reference_tiled, run_cpu_bench)

needs_pytest_benchmark = pytest.mark.skipif(importlib.util.find_spec("pytest_benchmark") is None,
                                            reason="pytest-benchmark is not installed (pip install -e \".[bench]\")")


def _qkv(n, d=64):
    rng = np.random.default_rng(n)
    return tuple(rng.standard_normal((n, d)).astype(np.float32) for _ in range(3))


@needs_pytest_benchmark
@pytest.mark.benchmark(group="level4 forward, CPU")
@pytest.mark.parametrize("n", [256, 1024])
def test_bench_tiled_forward(benchmark, n):
    tiled = reference_tiled()
    q, k, v = _qkv(n)
    o, lse = benchmark.pedantic(tiled, args=(q, k, v, 64, 64), rounds=3, iterations=1, warmup_rounds=1)
    assert o.shape == (n, 64) and lse.shape == (n,)


@needs_pytest_benchmark
@pytest.mark.benchmark(group="level4 forward, CPU")
@pytest.mark.parametrize("n", [256, 1024])
def test_bench_naive_forward(benchmark, n):
    q, k, v = _qkv(n)
    o, lse = benchmark.pedantic(naive_attention, args=(q, k, v), rounds=3, iterations=1, warmup_rounds=1)
    o_tiled, lse_tiled = reference_tiled()(q, k, v, 64, 64)
    np.testing.assert_allclose(o, o_tiled, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lse, lse_tiled, rtol=1e-5)


def test_run_cpu_bench_schema(tmp_path):
    result = run_cpu_bench(sizes=(16, 40), d=8, repeat=1, out_dir=tmp_path, block=8)
    assert set(result) == {"schema", "environment", "rows"}
    assert result["schema"] == SCHEMA
    for key in ("python", "numpy", "cpu", "cpu_count", "created"):
        assert key in result["environment"]
    assert [(row["n"], row["status"], row["message"]) for row in result["rows"]] == [(16, "ok", ""), (40, "ok", "")]
    for row in result["rows"]:
        assert row["d"] == 8 and row["dtype"] == "float32" and row["block_q"] == 8
        assert row["tiled_file"].endswith("solutions/level4/tiled_attention.py")  # the reference, by default
        for key in ("tiled_median_s", "tiled_p20_s", "tiled_p80_s", "naive_median_s", "naive_min_s"):
            assert row[key] >= 0
        assert row["tiled_peak_bytes"] > 0 and row["naive_peak_bytes"] > 0
        assert row["max_abs_diff"] < 1e-4          # both forwards compute the same attention
    saved = json.loads((tmp_path / FILENAME).read_text(encoding="utf-8"))
    assert saved["schema"] == SCHEMA and saved["rows"] == result["rows"]


def test_no_file_without_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_cpu_bench(sizes=(8,), d=4, repeat=1, block=4)
    assert list(tmp_path.iterdir()) == []


def test_naive_memory_grows_faster_than_tiled():
    """Sizes, not time: at N = 512 the naive forward holds the 512×512 scores, the tiled one a tile."""
    row = run_cpu_bench(sizes=(512,), d=16, repeat=1)["rows"][0]
    assert row["naive_peak_bytes"] > 512 * 512 * 4
    assert row["tiled_peak_bytes"] < row["naive_peak_bytes"] / 4


def test_cpu_bench_table_renders():
    result = {"schema": SCHEMA, "environment": {"cpu": "test cpu", "numpy": "2.x"},
              "rows": [{"n": 256, "d": 64, "tiled_median_s": 0.02, "naive_median_s": 0.004,
                        "tiled_peak_bytes": 100_000, "naive_peak_bytes": 800_000}]}
    out = StringIO()
    Console(file=out, width=160, no_color=True, color_system=None).print(cpu_bench_table(result))
    text = out.getvalue()
    assert "tiled (reference) vs naive" in text and "256" in text
    assert "20.00 ms" in text and "4.00 ms" in text and "5.00×" in text and "8.0×" in text
