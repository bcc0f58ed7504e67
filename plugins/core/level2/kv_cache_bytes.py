"""Level 2 — kv_cache_bytes: the size of the KV cache, B · N_layers · T · H_kv · d_head · 2 · bytes."""

from __future__ import annotations

from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata_plugins.kvlab import kv_cache_bytes as lab_bytes

KiB = 2**10

# ---------------------------------------------------------------------------
# kv_cache_bytes
# ---------------------------------------------------------------------------


@st.composite
def _settings(draw):
    return (draw(st.integers(1, 64)), draw(st.integers(1, 128)), draw(st.integers(1, 10**6)),
            draw(st.integers(1, 64)), draw(st.sampled_from((1, 3, 64, 80, 128, 256))),
            draw(st.sampled_from((1, 2, 4))))


@check("matches B·layers·T·H_kv·d·2·bytes on random settings")
def bytes_matches_reference(ctx):
    @ctx.given(setting=_settings())
    def prop(setting):
        ctx.expect("kv_cache_bytes", *setting)

    prop()


@check("the seed's KV lab: B=4, T=32,768, 32 layers, 32 KV heads, d=128, fp16 → 68,719,476,736 bytes")
def bytes_seed_lab(ctx):
    ctx.expect("kv_cache_bytes", 4, 32, 32768, 32, 128, 2)
    ctx.expect("kv_cache_bytes", 4, 32, 32768, 1, 128)  # MQA, default bytes_per_elem=2


@check("doubling T doubles the cache; zero tokens take zero bytes")
def bytes_linear_in_tokens(ctx):
    one = ctx.call("kv_cache_bytes", 2, 80, 4096, 8, 128, 2)
    two = ctx.call("kv_cache_bytes", 2, 80, 8192, 8, 128, 2)
    ctx.expect("kv_cache_bytes", 2, 80, 4096, 8, 128, 2)
    if two != 2 * one:
        ctx.fail(f"kv_cache_bytes: T = 4096 gave {one!r} and T = 8192 gave {two!r}; the cache "
                 f"is linear in T, so doubling T must double it")
    ctx.expect("kv_cache_bytes", 3, 2, 0, 4, 16, 2)


def _no_pair(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    return batch * layers * tokens * kv_heads * head_dim * bytes_per_elem


def _bits(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    return batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem * 8


def _in_gb(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    return batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem / 1e9


def _no_batch(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    return layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem


def _elements(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    return batch * layers * tokens * kv_heads * head_dim * 2


KV_CACHE_BYTES = Kata(
    id="kv_cache_bytes", level=2, title="How many bytes the KV cache holds",
    path="level2/kv_cache_bytes.py", entries=("kv_cache_bytes",),
    checks=(bytes_matches_reference, bytes_seed_lab, bytes_linear_in_tokens),
    predictions=(
        Prediction("kv_lab_gb", "B=4, T=32,768, 32 layers, 32 KV heads, d=128, fp16: the KV "
                   "cache in GB (10^9 bytes)", lab_bytes(4, 32, 32768, 32, 128) / 1e9,
                   rel_tol=0.03, why="4·32·32768·32·128·2·2 = 68,719,476,736 bytes = 68.7 GB "
                   "(= 64 GiB: mind the unit)."),
        Prediction("kv_lab_mqa_gb", "the same lab with MQA (1 KV head): the cache in GB",
                   lab_bytes(4, 32, 32768, 1, 128) / 1e9, rel_tol=0.03,
                   why="One KV head instead of 32: 68.7 / 32 = 2.1 GB (2 GiB)."),
        Prediction("llama70b_kib_per_token", "a Llama-3-70B-like model (80 layers, 8 KV heads, "
                   "d=128, fp16): KV bytes per token, in KiB (1024 bytes)",
                   lab_bytes(1, 80, 1, 8, 128) / KiB, rel_tol=0.01,
                   why="80·8·128·2·2 = 327,680 bytes = 320 KiB (327.7 kB)."),
    ),
    misconceptions=(
        Misconception("forgot_k_and_v", "forgot the ×2: counted keys but not values",
                      {"kv_cache_bytes": _no_pair},
                      "Every token stores a key AND a value vector per KV head: the factor 2."),
        Misconception("bits_not_bytes", "counted bits, not bytes (×8)", {"kv_cache_bytes": _bits},
                      "bytes_per_elem is already in bytes: fp16 is 2 bytes, not 16 bits."),
        Misconception("returned_gb", "returned gigabytes as a float instead of bytes",
                      {"kv_cache_bytes": _in_gb},
                      "Return the exact byte count as an int; convert units only when printing."),
        Misconception("forgot_batch", "left out the batch: one sequence's cache",
                      {"kv_cache_bytes": _no_batch},
                      "Every sequence in the batch has its own cache: multiply by B."),
        Misconception("counted_elements", "counted numbers, not bytes (ignored bytes_per_elem)",
                      {"kv_cache_bytes": _elements},
                      "Multiply the element count by bytes_per_elem (2 for fp16/bf16)."),
    ),
    claims=(
        Claim("kv-cache-linear-in-t", "The KV cache is B·N_layers·T·H_kv·d_head·2·bytes: linear in "
              "the context T.", scope="exact", source="shazeer-2019-mqa",
              not_claimed="Formula only: no allocator, paging, metadata or fragmentation overhead, "
                          "no serving measurement."),
    ),
    hints=(
        "Count numbers first: per token, per layer, per KV head the cache holds one key and one "
        "value vector of d_head numbers each.",
        "Multiply by every independent axis: batch, layers, tokens, KV heads, head_dim, 2 (K and "
        "V), then by bytes per number.",
        "return batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem — an int.",
    ),
    generic_fakes=("zeros", "echo", "constant", "random"),  # integer inputs: nothing to mutate
)


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): each mistake is off by its own factor (2, 8, B, layers,
# bytes per element, 10⁹, 2³⁰), so two settings whose factors all differ tell them apart.
# Where learners go wrong — a source note per misconception:
# - forgot_k_and_v: rohitg00/ai-engineering-from-scratch#57 (review: the per-token
#   figures drop factors of the formula; K and V are two tensors).
# - bits_not_bytes: bytes_per_elem read as a bit width.
# - returned_gb / returned_gib: jranaraki/vllm-fit#14 (a KV estimate returned in GB,
#   with 1024³ in the divisor) and this kata's lab (68.7 GB = 64 GiB).
# - forgot_batch: every sequence of the batch has its own cache.
# - counted_elements: KolosalAI/model-memory-calculator#2 (the estimate ignores the
#   widths that set the byte count).
# - forgot_layers: note at its implementation below.

import math  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, check as holds  # noqa: E402


def _no_layers(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    # source: rohitg00/ai-engineering-from-scratch#57 (a per-layer figure reported as the
    # model's: "512 bytes is per head, not per layer", and the layer count left out)
    return batch * tokens * kv_heads * head_dim * 2 * bytes_per_elem


def _in_gib(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    # source: jranaraki/vllm-fit#14 (the estimate divides by 1024³: GiB, not bytes)
    return batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem / 2**30


_SET_A = (3, 7, 1000, 5, 64, 4)       # batch 3, 7 layers, fp32
_SET_B = (5, 11, 777, 2, 128, 4)      # batch 5, 11 layers, fp32
_SET_1 = (2, 3, 50, 4, 16, 1)         # one byte per element


def _times(factor):
    """The answer is the learner's number times ``factor`` (an exact integer relation)."""
    return holds(lambda g, w: not isinstance(g, bool) and g != w and g * factor == w)


def _by(setting, pred, what):
    return Probe.of(f"{what}: kv_cache_bytes{setting}", "kv_cache_bytes", *setting, holds=pred)


def _close_float(div):
    return holds(lambda g, w: isinstance(g, float) and abs(g - w / div) <= 1e-9 * w / div)


KV_CACHE_BYTES = attach(
    KV_CACHE_BYTES,
    add=(
        Misconception("forgot_layers", "left out the layers: one layer's cache",
                      {"kv_cache_bytes": _no_layers},
                      "Every layer keeps its own K and V for every token: multiply by N_layers."),
        Misconception("returned_gib", "returned gibibytes (÷ 2³⁰) instead of bytes",
                      {"kv_cache_bytes": _in_gib},
                      "Return the exact byte count as an int; 1 GiB = 2³⁰ bytes is a unit for "
                      "printing, and it is not 1 GB = 10⁹ bytes either."),
    ),
    probes={
        "forgot_k_and_v": (_by(_SET_A, _times(2), "fp32"), _by(_SET_B, _times(2), "fp32")),
        "bits_not_bytes": (
            _by(_SET_A, holds(lambda g, w: g == 8 * w), "fp32"),
            _by(_SET_1, holds(lambda g, w: g == 8 * w), "1 byte per element")),
        "returned_gb": (_by(_SET_A, _close_float(1e9), "fp32"), _by(_SET_B, _close_float(1e9), "fp32")),
        "returned_gib": (_by(_SET_A, _close_float(2**30), "fp32"),
                         _by(_SET_B, _close_float(2**30), "fp32")),
        "forgot_batch": (_by(_SET_A, _times(3), "batch 3"), _by(_SET_B, _times(5), "batch 5")),
        "forgot_layers": (_by(_SET_A, _times(7), "7 layers"), _by(_SET_B, _times(11), "11 layers")),
        "counted_elements": (
            _by(_SET_A, _times(4), "fp32 (4 bytes)"),
            Probe("1 byte per element (right), then 4",
                  lambda ns: (ns.kv_cache_bytes(*_SET_1), ns.kv_cache_bytes(*_SET_B)),
                  holds(lambda g, w: g[0] == w[0] and g[1] * 4 == w[1]))),
    },
    variants=(
        Fake("math_prod", {"kv_cache_bytes": lambda batch, layers, tokens, kv_heads, head_dim,
                           bytes_per_elem=2: math.prod((batch, layers, tokens, kv_heads, head_dim, 2,
                                                        bytes_per_elem))}),
        Fake("per_token_first", {"kv_cache_bytes": lambda batch, layers, tokens, kv_heads, head_dim,
                                 bytes_per_elem=2: (2 * layers * kv_heads * head_dim
                                                    * bytes_per_elem) * tokens * batch}),
    ),
)
# == end of diagnosis by behaviour, levels 0-2 ==
