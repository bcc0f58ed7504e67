"""The compile gate: every reference kernel, every autotune config, built for sm_90 and sm_80.

No GPU is needed: Triton compiles to PTX and runs the ``ptxas`` shipped in its wheel. The
gate fails on a compile error, on shared memory over the target's limit, or on any
register spill (see ``attnkata.compilegate``). The reference kernels' matrix is split into
``SHARDS`` child processes so ``pytest -n auto`` spreads it over the cores; each shard
prints its table (``pytest -rP`` shows it). A second group of tests proves the gate can
fail: a module with a spilling config, a kernel that does not compile, a kernel with no
case, and shared memory over the limit.
"""

import os
import textwrap

import pytest

pytest.importorskip("triton")

from attnkata import compilegate  # noqa: E402

SHARDS = 4


def _rendered(rows):
    import io

    from rich.console import Console
    out = io.StringIO()
    Console(file=out, width=100, force_terminal=False).print(compilegate.table(rows))
    return out.getvalue()


@pytest.mark.parametrize("shard", range(SHARDS), ids=lambda i: f"shard{i + 1}of{SHARDS}")
def test_reference_kernels_compile_without_spills(shard):
    result = compilegate.run_gate(compilegate.DEFAULT_MODULES, compilegate.TARGETS,
                                  shard, SHARDS)
    print(_rendered(result.rows))
    print(f"{len(result.rows)} of {result.total_jobs} compiles in {result.seconds:.0f} s")
    assert result.total_jobs >= 300  # the whole matrix, not a silently empty plan
    assert len(result.rows) in (result.total_jobs // SHARDS, -(-result.total_jobs // SHARDS))
    assert not result.problems(), "\n".join(result.problems())
    hopper = [r for r in result.rows if r.target == "sm_90" and r.kernel in
              ("_attn_fwd", "_attn_bwd")]
    # the attention kernels' tl.dot must reach Hopper's warpgroup MMA, and their tiles TMA
    assert hopper and all(r.wgmma and r.tma for r in hopper), \
        [f"{r.kernel} {r.config} {r.case}" for r in hopper if not (r.wgmma and r.tma)]


BAD_MODULE = '''
import torch
import triton
import triton.language as tl

GATE_HELPERS = ("_inlined",)


@triton.jit
def _inlined(x):
    return x + 1


@triton.autotune(configs=[triton.Config({"BLOCK": 64}, num_warps=4),
                          triton.Config({"BLOCK": 8192}, num_warps=1)], key=["n"])
@triton.jit
def big_rows(X, Out, n, BLOCK: tl.constexpr):
    # one warp holding 8192 floats and their running sums (512 values a thread): spills
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n)
    y = tl.cumsum(x, 0)
    tl.store(Out + offs, _inlined(y) * x, mask=offs < n)


@triton.jit
def broken(X):
    tl.static_assert(False, "this kernel never compiles")


@triton.jit
def forgotten(X):
    tl.store(X, 1.0)


def gate_cases(arch):
    x = torch.empty(4096, 4096, dtype=torch.float32, device="meta")
    return [{"kernel": big_rows, "label": "f32", "args": {"X": x, "Out": x, "n": 4096}},
            {"kernel": broken, "label": "any", "args": {"X": x}}]
'''


def test_gate_fails_on_spills_errors_and_uncovered_kernels(tmp_path, monkeypatch):
    (tmp_path / "gate_bad_kernels.py").write_text(textwrap.dedent(BAD_MODULE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = compilegate.run_gate(["gate_bad_kernels"], ["sm_90"])
    problems = "\n".join(result.problems())
    rows = {(r.kernel, r.config): r for r in result.rows}
    assert result.total_jobs == 3 and len(result.rows) == 3
    assert not rows[("big_rows", "64 w4 s3")].problems()  # the small config is clean
    assert rows[("big_rows", "8192 w1 s3")].spill_bytes > 0
    assert "big_rows [8192 w1 s3] sm_90 f32: spills" in problems
    assert "broken [fixed] sm_90 any: does not compile" in problems
    assert "gate_bad_kernels.forgotten: a @triton.jit kernel with no gate case" in problems
    assert "_inlined" not in problems  # named in GATE_HELPERS


def test_shared_memory_limit_per_target():
    row = compilegate.Row("m", "k", "128x128 w8 s3", "sm_80", "case", registers=200,
                          shared=192 * 1024)
    assert "needs 196608 bytes of shared memory, over the 166912" in row.problems()[0]
    row.target = "sm_90"  # Hopper's 227 KB holds it
    assert row.problems() == []
    row.shared = 228 * 1024
    assert "over the 232448" in row.problems()[0]


def test_summary_takes_the_worst_case():
    rows = [compilegate.Row("m", "k", "c", "sm_90", "a", registers=100, shared=1024,
                            wgmma=True, tma=True),
            compilegate.Row("m", "k", "c", "sm_90", "b", registers=180, spill_bytes=8,
                            shared=4096, wgmma=False)]
    (line,) = compilegate.summary(rows)
    assert (line["registers"], line["spill_bytes"], line["shared_kb"]) == (180, 8, 4.0)
    assert line["wgmma"] == "some" and line["tma"] == "yes" and line["cases"] == 2


def test_a_file_path_becomes_its_module_name_and_a_wrong_one_is_one_line(tmp_path, capsys):
    (tmp_path / "kern").mkdir()
    (tmp_path / "kern" / "mine.py").write_text("")
    names, wrong = compilegate.module_names(["kern/mine.py", "kern.mine"], cwd=str(tmp_path))
    assert names == ["kern.mine", "kern.mine"] and wrong == []
    names, wrong = compilegate.module_names(["kern/none.py", "no_such_mod.x"], cwd=str(tmp_path))
    assert names == [] and len(wrong) == 2
    assert "kern/none.py" in wrong[0] and "module name like" in wrong[1]

    from attnkata import cli
    assert cli.main(["--width", "80", "compile-gate", "kernels/no_such_kernel.py"]) == 2
    out = capsys.readouterr().out
    assert "not a kernel file" in out and "Traceback" not in out
