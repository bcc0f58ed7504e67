"""The bench's options, declared once for both front doors.

``add_options(add, prefix)`` declares them through pytest's ``addoption``
(``--attnkata-bench-<name>``) or argparse's ``add_argument`` (``attnkata bench --<name>``);
both store them under the same ``attnkata_bench_*`` names, which
:meth:`BenchOptions.from_namespace` reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .cases import KINDS, QUICK_BUDGET_S, Case

CAUSAL_MODES = {"both": (False, True), "no": (False,), "yes": (True,)}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in str(text).replace(" ", "").split(",") if x)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x for x in str(text).replace(" ", "").split(",") if x)


# (option suffix, argparse keywords): ``--attnkata-bench-<suffix>`` in pytest, ``--<suffix>`` in the CLI.
OPTIONS: tuple[tuple[str, dict], ...] = (
    ("sizes", dict(dest="attnkata_bench_sizes", default="512,1024,2048,4096,8192,16384", metavar="N,N,…",
                   help="sequence lengths N of the GPU sweep")),
    ("head-dims", dict(dest="attnkata_bench_head_dims", default="64,128", metavar="D,D",
                       help="head dims d of the GPU sweep")),
    ("dtypes", dict(dest="attnkata_bench_dtypes", default="fp16,bf16", metavar="fp16,bf16",
                    help="dtypes of the GPU sweep")),
    ("causal", dict(dest="attnkata_bench_causal", default="both", choices=sorted(CAUSAL_MODES),
                    help="causal masking in the flash sweep")),
    ("kinds", dict(dest="attnkata_bench_kinds", default=",".join(KINDS), metavar="KIND,…",
                   help=f"kernels to time, from {', '.join(KINDS)}")),
    ("tokens", dict(dest="attnkata_bench_tokens", type=int, default=16384, metavar="T",
                    help="tokens per flash call: batch B = T / N (FlashAttention papers' convention)")),
    ("model-width", dict(dest="attnkata_bench_width", type=int, default=2048, metavar="W",
                   help="model width of the flash sweep: heads H = W / d")),
    ("gqa", dict(dest="attnkata_bench_gqa", type=int, default=1, metavar="G",
                 help="query heads per KV head in the flash sweep (1: no GQA; SDPA then needs enable_gqa)")),
    ("decode-batch", dict(dest="attnkata_bench_decode_batch", type=int, default=32, metavar="S",
                          help="sequences per paged-decode call (32 query heads over 8 KV heads)")),
    ("quick", dict(dest="attnkata_bench_quick", action="store_true", default=False,
                   help="one run of at most 5 minutes on one GPU: bf16, d 128, the forward (causal and "
                        "not) and paged decode at 1k and 4k tokens, one forward+backward at 4k; the "
                        "H100 targets table, JSON and a PNG plot (needs CUDA: without it, says so, "
                        "times the CPU kata as `attnkata bench` does, and exits 3)")),
    ("warm-l2", dict(dest="attnkata_bench_warm_l2", action="store_true", default=False,
                     help="keep L2 warm between calls (default: flush it, as inside a model)")),
    ("rep-ms", dict(dest="attnkata_bench_rep_ms", type=float, default=100.0, metavar="MS",
                    help="time budget of the timed repetitions per kernel and shape")),
    ("warmup-ms", dict(dest="attnkata_bench_warmup_ms", type=float, default=25.0, metavar="MS",
                       help="time budget of the warm-up calls (after compilation)")),
    ("out", dict(dest="attnkata_bench_out", default=None, metavar="DIR",
                 help="folder for the JSON and plots (default: <state dir>/bench)")),
    ("no-plot", dict(dest="attnkata_bench_no_plot", action="store_true", default=False,
                     help="do not draw the PNG plot")),
    ("cpu-sizes", dict(dest="attnkata_bench_cpu_sizes", default="256,512,1024,2048", metavar="N,N,…",
                       help="sequence lengths of the CPU bench (no GPU)")),
    ("cpu-repeat", dict(dest="attnkata_bench_cpu_repeat", type=int, default=5, metavar="R",
                        help="repetitions per size of the CPU bench")),
)


def add_options(add: Callable[..., Any], prefix: str) -> None:
    """Declare the bench options through ``add`` (pytest's ``addoption`` or argparse's ``add_argument``)."""
    for suffix, kwargs in OPTIONS:
        add(prefix + suffix, **kwargs)


@dataclass(frozen=True)
class BenchOptions:
    sizes: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384)
    head_dims: tuple[int, ...] = (64, 128)
    dtypes: tuple[str, ...] = ("fp16", "bf16")
    causal: tuple[bool, ...] = (False, True)
    kinds: tuple[str, ...] = KINDS
    tokens: int = 16384
    width: int = 2048
    gqa: int = 1
    decode_batch: int = 32
    cold_l2: bool = True
    rep_ms: float = 100.0
    warmup_ms: float = 25.0
    seed: int = 0
    out: Path | None = None
    plot: bool = True
    cpu_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    cpu_repeat: int = 5
    quick: bool = False
    budget_s: float | None = None   # shapes not started within this many seconds are skipped

    @classmethod
    def from_namespace(cls, ns: Any, seed: int = 0) -> "BenchOptions":
        """From parsed options (pytest's ``config.option`` or the CLI's namespace)."""
        def get(name: str) -> Any:
            return getattr(ns, f"attnkata_bench_{name}")

        quick = get("quick")
        kinds = _names(get("kinds"))
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown bench kind(s) {unknown}; choose from {KINDS}")
        return cls(sizes=(1024, 4096) if quick else _ints(get("sizes")),
                   head_dims=(128,) if quick else _ints(get("head_dims")),
                   dtypes=("bf16",) if quick else _names(get("dtypes")),
                   causal=CAUSAL_MODES[get("causal")], kinds=kinds, tokens=get("tokens"), width=get("width"),
                   gqa=get("gqa"), decode_batch=get("decode_batch"), cold_l2=not get("warm_l2"),
                   rep_ms=get("rep_ms"), warmup_ms=get("warmup_ms"), seed=seed,
                   out=Path(get("out")) if get("out") else None, plot=not get("no_plot"),
                   cpu_sizes=_ints(get("cpu_sizes")), cpu_repeat=get("cpu_repeat"), quick=bool(quick),
                   budget_s=QUICK_BUDGET_S if quick else None)

    def cases(self) -> list[Case]:
        from .cases import quick_cases, sweep

        if self.quick:
            return quick_cases(self.kinds, tokens=self.tokens, width=self.width, decode_batch=self.decode_batch)
        return sweep(self.kinds, self.sizes, self.head_dims, self.dtypes, self.causal, tokens=self.tokens,
                     width=self.width, gqa=self.gqa, decode_batch=self.decode_batch)
