"""The CPU bench states a measured tiled/naive ratio only on a quiet machine with steady
timings (QA F10): the load average and core count travel with the claim, a busy machine or
a wide p80/p20 gives a note saying "not measured" instead. Timings and load are faked."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from attnkata_plugins.bench import cpu  # noqa: E402
from attnkata_plugins.bench.cpu_path import cpu_claims  # noqa: E402

ENV = {"created": "2026-11-29T07:00:00Z", "cpu": "test CPU", "numpy": "2.0", "torch": "2.13", "gpu": "none",
       "seed": 0, "target": "solutions"}


def result(load: float, cores: int = 2, tiled=(1.0, 1.1), naive=(2.0, 2.2)) -> dict:
    row = {"n": 512, "d": 64, "dtype": "float32", "block_q": 64, "repeat": 5, "status": "ok",
           "tiled_median_s": sum(tiled) / 2, "tiled_p20_s": tiled[0], "tiled_p80_s": tiled[1],
           "naive_median_s": sum(naive) / 2, "naive_p20_s": naive[0], "naive_p80_s": naive[1],
           "tiled_peak_bytes": 1000, "naive_peak_bytes": 8000, "tiled_impl": "x", "tiled_file": "y"}
    return {"environment": {"cpu_count": cores, "load_average": [load, load, load],
                            "load_average_after": [load, load, load]}, "rows": [row]}


def test_a_quiet_steady_run_claims_with_load_and_cores_recorded():
    notes: list[str] = []
    [claim] = cpu_claims(result(load=0.5), ENV, notes)
    assert notes == []
    assert claim.scope == "measured" and "0.5x naive attention's time" in claim.text
    env = claim.environment
    assert env["cpu_count"] == 2 and env["load_average"][0] == 0.5
    assert env["p80_over_p20"] == pytest.approx(1.1) and env["repeat"] == 5


def test_a_busy_machine_says_not_measured():
    notes: list[str] = []
    assert cpu_claims(result(load=12.0), ENV, notes) == []
    assert notes == ["tiled vs naive time: not measured: machine busy (load 12.0 on 2 cores); "
                     "rerun on an idle machine"]


def test_wide_spread_says_not_measured():
    notes: list[str] = []
    assert cpu_claims(result(load=0.1, naive=(0.2, 80.0)), ENV, notes) == []
    assert "not measured" in notes[0] and "p80/p20 = 400.00" in notes[0]


def test_the_bench_records_load_and_naive_spread(monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (3.0, 2.0, 1.0))
    out = cpu.run_cpu_bench(sizes=(32,), d=16, repeat=3)
    assert out["environment"]["load_average"] == [3.0, 2.0, 1.0]
    assert out["environment"]["cpu_count"]
    row = out["rows"][0]
    assert row["status"] == "ok", row["message"]
    assert row["naive_p20_s"] <= row["naive_median_s"] <= row["naive_p80_s"]
    assert cpu.spread([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx((2.0, 5.0))
