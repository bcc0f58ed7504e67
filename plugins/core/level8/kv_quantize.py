"""Level 8 · kv_quantize — int8 keys per channel, int8 values per token, scales counted."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.compare import compare, describe_value
from attnkata.strategies import FLOAT_DTYPES, batch_dims, seeds, sizes

QMAX = 127

# ---------------------------------------------------------------------------
# Inputs: caches with outlier channels, zero slices and a spread of magnitudes
# ---------------------------------------------------------------------------


def cache_like(shape, dtype, seed, *, outliers=0, zero_channel=False, zero_token=False, scale=1.0):
    """Standard-normal ``[..., T, d]`` times ``scale``; ``outliers`` channels ×20 for every
    token (the keys' pattern that KIVI reports); optionally one all-zero channel / token."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    d = shape[-1]
    if outliers:
        x[..., rng.choice(d, size=min(outliers, d), replace=False)] *= 20
    if zero_channel:
        x[..., int(rng.integers(d))] = 0
    if zero_token:
        x[..., int(rng.integers(shape[-2])), :] = 0
    return x.astype(dtype)


@st.composite
def _caches(draw):
    shape = draw(batch_dims(2, 3)) + (draw(sizes(1, 33)), draw(sizes(1, 17)))
    return cache_like(shape, draw(st.sampled_from(FLOAT_DTYPES)), draw(seeds()),
                      outliers=draw(st.sampled_from((0, 0, 1, 3))),
                      zero_channel=draw(st.booleans()), zero_token=draw(st.booleans()),
                      scale=draw(st.sampled_from((1.0, 1.0, 1e-3, 50.0))))


def _scale_shape(name, x):
    return x.shape[:-2] + ((1, x.shape[-1]) if name == "quantize_keys" else (x.shape[-2], 1))


# ---------------------------------------------------------------------------
# Comparing quantised outputs: a rounding tie may flip one level, nothing more
# ---------------------------------------------------------------------------


# Scales are relative quantities: compare them relatively (a scale of 1e-5 is no smaller
# an error source than one of 1), with room for max/127 computed as max·(1/127).
SCALE_TOL = {"float64": (1e-9, 0.0), "float32": (1e-5, 0.0)}


def quant_problem(got, want) -> str | None:
    """Why ``got`` is not ``want`` for a ``(q, scale)`` pair, or None.

    Scales compare within the dtype's tolerance; the int8 numbers exactly, except that
    at most 1 % of them may differ by one level (a value within rounding error of a
    tie, computed as x · (127 / max) instead of x / (max / 127), say)."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a tuple (x_q, scale), got {describe_value(got)}"
    (q, s), (wq, ws) = got, want
    if not isinstance(q, np.ndarray) or q.dtype != np.int8:
        return f"x_q must be a numpy int8 array, got {describe_value(q)}"
    if q.shape != wq.shape:
        return f"x_q has shape {list(q.shape)}, expected {list(wq.shape)}"
    problem = compare(s, ws, tol=SCALE_TOL.get(str(ws.dtype), SCALE_TOL["float32"]))
    if problem is not None:
        return "scale: " + problem.summary + "".join(f"\n  {d}" for d in problem.details)
    diff = np.abs(q.astype(np.int16) - wq.astype(np.int16))
    off = int((diff > 0).sum())
    if diff.max(initial=0) > 1 or off > max(1, wq.size // 100):
        at = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
        return (f"x_q differs in {off} of {wq.size} entries; at {list(at)} expected "
                f"{int(wq[at])}, got {int(q[at])}")
    return None


def expect_quant(ctx, name: str, x: np.ndarray):
    """The learner's ``name(x)`` against the reference's; names the misconception that fits."""
    got = ctx.call(name, x)
    want = ctx.reference(name, x)
    problem = quant_problem(got, want)
    if problem is None:
        return got
    ctx.fail(f"{name}(x {list(x.shape)} {x.dtype}): {problem}", misconception=which(ctx, name, x, got),
             diagnose=True, entries=(name,))


def which(ctx, name: str, x: np.ndarray, got) -> str | None:
    """The first misconception whose ``name(x)`` reproduces ``got``."""
    for m in ctx.kata.misconceptions:
        if name in m.impls and quant_problem(got, m.impls[name](x.copy())) is None:
            return m.id
    return None


@check("quantize_keys matches the reference: int8, one scale per channel (outlier channels, "
       "zero channels, tiny and huge magnitudes)")
def keys_match_reference(ctx):
    @ctx.given(x=_caches())
    def prop(x):
        expect_quant(ctx, "quantize_keys", x)

    prop()


@check("quantize_values matches the reference: int8, one scale per token")
def values_match_reference(ctx):
    @ctx.given(x=_caches())
    def prop(x):
        expect_quant(ctx, "quantize_values", x)

    prop()


@check("round to nearest: every dequantised number is within half a step (s/2) of the original")
def half_step_error(ctx):
    @ctx.given(x=_caches())
    def prop(x):
        for name in ("quantize_keys", "quantize_values"):
            got = expect_quant(ctx, name, x)
            q, s = got
            err = np.abs(q.astype(np.float64) * s.astype(np.float64) - x.astype(np.float64))
            bound = s.astype(np.float64) / 2 * (1 + 1e-4) + np.finfo(x.dtype).tiny
            if (err > bound).any():
                at = tuple(int(i) for i in np.argwhere(err > bound)[0])
                ctx.fail(f"{name}: |x − s·q| at {list(at)} is {err[at]:.4g}, more than half a "
                         f"step (s/2 = {float(np.broadcast_to(s, x.shape)[at]) / 2:.4g})",
                         misconception=which(ctx, name, x, got), diagnose=True, entries=(name,))

    prop()


@check("dequantize is q · scale in the scale's dtype, for any broadcastable scale")
def dequantize_matches(ctx):
    @ctx.given(x=_caches(), keys=st.booleans())
    def prop(x, keys):
        q, s = ctx.reference("quantize_keys" if keys else "quantize_values", x)
        ctx.expect("dequantize", q, s)

    prop()


@check("int8_kv_bytes matches the reference, partial last key group included")
def bytes_match_reference(ctx):
    @ctx.given(tokens=st.integers(1, 10**6), heads=st.integers(1, 64),
               head_dim=st.sampled_from((1, 16, 64, 80, 128, 256)), group=st.integers(1, 256),
               scale_bytes=st.sampled_from((2, 4)))
    def prop(tokens, heads, head_dim, group, scale_bytes):
        ctx.expect("int8_kv_bytes", tokens, heads, head_dim, group, scale_bytes)

    prop()
    ctx.expect("int8_kv_bytes", 100, 2, 8, 32)  # default scale_bytes, a partial group of 4


RATIO_CASES = ((4096, 8, 128, 32, 2), (32768, 8, 64, 64, 2), (8192, 1, 128, 128, 4))


@check("int8 K and V with their scales take exactly 1/2 + b/(4G) + b/(4d) of the fp16 cache")
def memory_ratio_exact(ctx):
    seen = []
    for tokens, heads, d, group, b in RATIO_CASES:
        got = ctx.call("int8_kv_bytes", tokens, heads, d, group, b)
        fp16 = 2 * tokens * heads * d * 2
        want = 0.5 + b / (4 * group) + b / (4 * d)
        if not isinstance(got, (int, np.integer)) or got / fp16 != want:
            ctx.match(got, ctx.reference("int8_kv_bytes", tokens, heads, d, group, b),
                      f"int8_kv_bytes({tokens}, {heads}, {d}, {group}, {b})",
                      rerun=lambda ns, a=(tokens, heads, d, group, b): ns.int8_kv_bytes(*a),
                      entries=("int8_kv_bytes",))
        seen.append(f"d={d}, G={group}, b={b}: {got / fp16:.6f}")
    ctx.record("int8/fp16 bytes: " + "; ".join(seen))


def attend(q, k, v):
    """Softmax attention in float64: q [H, 1, d] over k, v [H, T, d]."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


ERROR_CASE = dict(heads=4, tokens=256, d=64, outliers=3, seed=2024)
ERROR_BOUND = 0.05


def error_case():
    """The fixed inputs of the error claim: keys with 3 outlier channels (×20)."""
    h, t, d, seed = (ERROR_CASE[k] for k in ("heads", "tokens", "d", "seed"))
    q = cache_like((h, 1, d), np.float32, seed)
    k = cache_like((h, t, d), np.float32, seed + 1, outliers=ERROR_CASE["outliers"])
    v = cache_like((h, t, d), np.float32, seed + 2)
    return q, k, v


def _per_token_error(q, k, v, ref) -> float:
    kq, ks = _per_token_keys(k)
    return float(np.abs(attend(q, ref.dequantize(kq, ks), ref.dequantize(*ref.quantize_values(v)))
                        - attend(q, k, v)).max())


@check(f"toy: decoding over your int8 cache (4 heads, 256 tokens, d = 64, keys with 3 outlier "
       f"channels) stays within {ERROR_BOUND} of fp32 attention")
def attention_error_toy(ctx):
    q, k, v = error_case()
    k_q, k_s = expect_quant(ctx, "quantize_keys", k)
    v_q, v_s = expect_quant(ctx, "quantize_values", v)
    k_hat = ctx.call("dequantize", k_q, k_s)
    v_hat = ctx.call("dequantize", v_q, v_s)
    ctx.match(k_hat, ctx.reference("dequantize", k_q, k_s), "dequantize(k_q, k_scale)",
              rerun=lambda ns: ns.dequantize(k_q, k_s), entries=("dequantize",))
    exact = attend(q, k, v)
    err = float(np.abs(attend(q, k_hat, v_hat) - exact).max())
    ctx.record(f"max |Δo| = {err:.4f} (int8, keys per channel) vs "
               f"{_per_token_error(q, k, v, ctx.ref):.4f} (keys per token), on outputs up to "
               f"{float(np.abs(exact).max()):.2f}; numpy, float32 inputs, seed {ERROR_CASE['seed']}")
    if not err <= ERROR_BOUND:
        ctx.fail(f"attention over your dequantised cache differs from fp32 attention by {err:.4f} "
                 f"(at most {ERROR_BOUND} expected on these inputs)")


# ---------------------------------------------------------------------------
# Misconceptions (each a real way learners go wrong; the source notes say where)
# ---------------------------------------------------------------------------


def _sym(x, axis, qmax=QMAX, lo=-QMAX, rounding=np.rint):
    scale = np.abs(x).max(axis=axis, keepdims=True) / np.asarray(qmax, dtype=x.dtype)
    safe = np.where(scale == 0, np.ones_like(scale), scale)
    return np.clip(rounding(x / safe), lo, QMAX).astype(np.int8), scale.astype(x.dtype, copy=False)


# Source note: the usual per-token quantiser of activations, applied to keys; KIVI (§3)
# shows keys need per-channel scales because of fixed outlier channels.
def _per_token_keys(k):
    return _sym(k, -1)


# Source note: symmetry over-applied — "keys per channel, so values too"; KIVI quantises
# values per token, since attention's output mixes whole value rows.
def _per_channel_values(v):
    return _sym(v, -2)


# Source note: int8 spans −128 … 127, and dividing by 128 "uses the whole range"; then the
# largest |x| maps to 128, which is clipped to 127 (and the range is lopsided).
def _range_128_keys(k):
    return _sym(k, -2, qmax=128, lo=-128)


def _range_128_values(v):
    return _sym(v, -1, qmax=128, lo=-128)


# Source note: `(x / s).astype(np.int8)` truncates toward zero: errors up to a whole step,
# biased toward 0 — the most common cast bug in hand-written quantisers.
def _truncating_keys(k):
    return _sym(k, -2, rounding=np.trunc)


def _truncating_values(v):
    return _sym(v, -1, rounding=np.trunc)


# Source note: memory estimates that count only the int8 payload ("int8 halves the cache")
# leave the scales out; with small groups they are several percent.
def _no_scale_bytes(tokens, kv_heads, head_dim, group, scale_bytes=2):
    return 2 * tokens * kv_heads * head_dim


# Source note: ⌊T/G⌋ key groups, as if the cache never held a partly filled group.
def _floor_groups(tokens, kv_heads, head_dim, group, scale_bytes=2):
    return (2 * tokens * kv_heads * head_dim + (tokens // group) * kv_heads * head_dim * scale_bytes
            + tokens * kv_heads * scale_bytes)



def _quant_layout_cases(ctx):
    yield (ctx.rng.standard_normal((2, 7, 8)) * 3,), {}
    yield (ctx.rng.standard_normal((5, 4)).astype(np.float32),), {}


keys_strided_inputs = layout_check(
    "quantize_keys", _quant_layout_cases, "keys as transposed, sliced and Fortran-ordered views",
    id="keys_strided_inputs", layouts=("transposed", "sliced", "fortran"))
values_strided_inputs = layout_check(
    "quantize_values", _quant_layout_cases,
    "values as transposed, sliced and Fortran-ordered views", id="values_strided_inputs",
    layouts=("transposed", "sliced", "fortran"))


KV_QUANTIZE = Kata(
    id="kv_quantize", level=8, title="An int8 KV cache: keys per channel, values per token",
    path="level8/kv_quantize.py",
    entries=("quantize_keys", "quantize_values", "dequantize", "int8_kv_bytes"),
    checks=(keys_match_reference, values_match_reference, half_step_error, dequantize_matches,
            bytes_match_reference, memory_ratio_exact, attention_error_toy,
            keys_strided_inputs, values_strided_inputs),
    predictions=(
        Prediction("ratio_d64_g64", "int8 K and V with 2-byte scales, d = 64, key groups of G = 64: "
                   "bytes as a fraction of the fp16 cache", 0.515625, rel_tol=0.002,
                   why="1/2 for the int8 numbers, b/(4G) = 2/256 for the key scales and "
                       "b/(4d) = 2/256 for the value scales: 0.5 + 0.0078 + 0.0078."),
        Prediction("rounding_error_bound", "round to nearest with scale s: the largest |x − s·q| "
                   "as a multiple of s", 0.5, rel_tol=1e-9,
                   why="The nearest level is at most half a step away; truncation can be a "
                       "whole step off."),
        Prediction("small_channel_per_token", "the worked example's K per token: what does "
                   "K[0, 0] = 0.03 dequantise to?", 0.0, rel_tol=1e-9,
                   why="Token 0's scale is 12.7/127 = 0.1 (set by the outlier channel); "
                       "0.03/0.1 = 0.3 rounds to 0. The small channel is erased."),
    ),
    misconceptions=(
        Misconception("per_token_keys", "quantised keys per token (one scale per row) instead of "
                      "per channel", {"quantize_keys": _per_token_keys},
                      "Keys have outlier channels: a row's scale is set by its outlier, and its "
                      "ordinary channels round to a few levels or to 0. Reduce |k| over the "
                      "tokens axis (-2): one scale per channel, shape [..., 1, d]."),
        Misconception("per_channel_values", "quantised values per channel instead of per token",
                      {"quantize_values": _per_channel_values},
                      "Values are quantised per token: reduce |v| over the channels axis (-1), "
                      "scale shape [..., T, 1]."),
        Misconception("range_128", "used 128 for the symmetric range (scale = max/128, levels "
                      "−128 … 127)", {"quantize_keys": _range_128_keys,
                                       "quantize_values": _range_128_values},
                      "A symmetric range is −127 … 127: scale = max|x| / 127, so the largest "
                      "value lands on 127 and −x quantises to −q."),
        Misconception("truncates", "truncated x / s toward zero instead of rounding "
                      "(astype(int8) without rint)", {"quantize_keys": _truncating_keys,
                                                      "quantize_values": _truncating_values},
                      "astype(np.int8) drops the fraction: errors up to a whole step, all pulled "
                      "toward 0. Round first (np.rint), then cast."),
        Misconception("no_scale_bytes", "int8_kv_bytes counts the int8 numbers but not the "
                      "scales", {"int8_kv_bytes": _no_scale_bytes},
                      "The scales live in the cache too: ⌈T/G⌉·H·d key scales and T·H value "
                      "scales, scale_bytes each."),
        Misconception("floor_groups", "int8_kv_bytes counts ⌊T/G⌋ key groups (the last, partly "
                      "filled group has scales too)", {"int8_kv_bytes": _floor_groups},
                      "A partly filled group still needs its own per-channel scales: ⌈T/G⌉."),
    ),
    claims=(
        Claim("int8-kv-memory-ratio", "An int8 KV cache with per-channel key scales (groups of G "
              "tokens) and per-token value scales takes exactly 1/2 + b/(4G) + b/(4d) of the fp16 "
              "cache (b bytes per scale): 0.5195 at d = 128, G = 32, b = 2.", scope="exact",
              source="liu-2024-kivi", evidence=("bytes_match_reference", "memory_ratio_exact"),
              not_claimed="KIVI's 2-bit scheme, zero points and its full-precision residual of "
                          "recent tokens are not modelled; memory only, no speed."),
        Claim("int8-kv-attention-error", "On the kata's fixed inputs (4 heads, 256 tokens, d = 64, "
              "3 outlier key channels), decoding over the int8 cache stays within 0.05 of fp32 "
              "attention (measured 0.017 on outputs up to 2.3), while per-token key scales "
              "give 0.083.",
              scope="toy", source="liu-2024-kivi",
              evidence=("attention_error_toy", "half_step_error"),
              not_claimed="One seeded input, not a bound for real models or tasks; no perplexity "
                          "or accuracy claim."),
    ),
    hints=(
        "Both quantisers are the same three lines with a different reduction axis: scale = "
        "max|x| / 127 along that axis (keepdims=True), q = round(x / scale), cast to int8.",
        "Keys: reduce over axis -2 (tokens), giving [..., 1, d]; values: over axis -1 (channels), "
        "giving [..., T, 1]. Where the scale is 0, divide by 1 instead (q is then 0).",
        "np.clip(np.rint(x / safe_scale), -127, 127).astype(np.int8); dequantize is "
        "x_q.astype(scale.dtype) * scale; bytes = 2·T·H·d + ⌈T/G⌉·H·d·b + T·H·b.",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): the shape of the scales says which axis was reduced;
# a row with known x/s tells rounding from truncation; a scale 127/128 of the right one
# is the ±128 range; byte counts at partial groups tell what was counted.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds, close  # noqa: E402

_R8 = np.random.default_rng(808)
_K1 = _R8.standard_normal((4, 3)) * 2
_K2 = cache_like((2, 5, 3), np.float32, 809, outliers=1)
_TIES = np.array([[1.27, 0.019, -0.019, 0.0135, -0.0135, 0.0049]])   # x / s = 127, ±1.9, ±1.35, 0.49
_TIES2 = np.array([[2.54, 0.052, -0.014], [-1.27, 0.015, 0.008]])    # x / s as in the probe's name


def _scale_shape_is(per):
    """The scale has one entry per ``per`` ("token": [..., T, 1]; "channel": [..., 1, d])."""
    def holds(g, w):
        x_shape = w[0].shape
        want = x_shape[:-2] + ((x_shape[-2], 1) if per == "token" else (1, x_shape[-1]))
        scale = np.asarray(g[1])
        return scale.shape != np.asarray(w[1]).shape and np.squeeze(scale).shape == \
            np.squeeze(np.zeros(want)).shape
    return _holds(holds)


def _toward_zero(g, w):
    q, wq = np.asarray(g[0], dtype=np.int64), np.asarray(w[0], dtype=np.int64)
    return (q.shape == wq.shape and bool((np.abs(q) <= np.abs(wq)).all())
            and bool((np.abs(q) < np.abs(wq)).any()) and bool((np.sign(q) * np.sign(wq) >= 0).all()))


def _scale_ratio(r):
    return _holds(lambda g, w: close(np.asarray(g[1], np.float64), np.asarray(w[1], np.float64) * r,
                                     (1e-6, 0.0)))


def _payload(t, h, d):
    return 2 * t * h * d


KV_QUANTIZE = attach(KV_QUANTIZE, probes={
    # source: liu-2024-kivi §3 (keys have fixed outlier channels: per-token key scales erase
    # the ordinary channels) — the per-token quantiser of activations reused for keys
    "per_token_keys": (
        Probe.of("keys [4 tokens, 3 channels]", "quantize_keys", _K1,
                 holds=_scale_shape_is("token")),
        Probe.of("keys [2, 5, 3] with an outlier channel", "quantize_keys", _K2,
                 holds=_scale_shape_is("token")),
    ),
    # source: liu-2024-kivi (values per token); symmetry over-applied from keys
    "per_channel_values": (
        Probe.of("values [4 tokens, 3 channels]", "quantize_values", _K1,
                 holds=_scale_shape_is("channel")),
        Probe.of("values [2, 5, 3]", "quantize_values", _K2,
                 holds=_scale_shape_is("channel")),
    ),
    # source: pytorch/pytorch quantization docs (qint8 spans −128 … 127; symmetric schemes
    # restrict to ±127): dividing by 128 to "use the whole range"
    "range_128": (
        Probe.of("keys [4, 3]: the scales", "quantize_keys", _K1, holds=_scale_ratio(127 / 128)),
        Probe.of("values [4, 3]: the scales", "quantize_values", _K1, holds=_scale_ratio(127 / 128)),
        # a second input per entry, so a mistake in one of the two quantisers is named alone
        Probe.of("keys [2, 5, 3]: the scales", "quantize_keys", _K2, holds=_scale_ratio(127 / 128)),
        Probe.of("values [2, 5, 3]: the scales", "quantize_values", _K2,
                 holds=_scale_ratio(127 / 128)),
    ),
    # source: numpy's astype(int8) truncates toward zero (the cast bug of hand-written
    # quantisers; torch.Tensor.to(torch.int8) likewise)
    "truncates": (
        Probe.of("one value row whose x / s are 127, ±1.9, ±1.35, 0.49", "quantize_values", _TIES,
                 holds=_holds(_toward_zero)),
        Probe.of("the same numbers as one key channel", "quantize_keys", _TIES.T.copy(),
                 holds=_holds(_toward_zero)),
        Probe.of("two value rows whose x / s are 127, 2.6, −0.7 and −127, 1.5, 0.8",
                 "quantize_values", _TIES2, holds=_holds(_toward_zero)),
        Probe.of("the same numbers as two key channels", "quantize_keys", _TIES2.T.copy(),
                 holds=_holds(_toward_zero)),
    ),
    # source: no thread found; a teaching note — "int8 halves the KV cache" leaves the
    # scales out (liu-2024-kivi counts them)
    "no_scale_bytes": (
        Probe.of("int8_kv_bytes(100, 2, 8, 32)", "int8_kv_bytes", 100, 2, 8, 32,
                 holds=_holds(lambda g, w: g == _payload(100, 2, 8))),
        Probe.of("int8_kv_bytes(4096, 8, 128, 32, 2)", "int8_kv_bytes", 4096, 8, 128, 32, 2,
                 holds=_holds(lambda g, w: g == _payload(4096, 8, 128))),
    ),
    # source: no thread on scales found; the boundary slip of pegainfer-project/pegainfer#291
    # (a partly filled last page miscounted), here ⌊T/G⌋ groups leaving the last without scales
    "floor_groups": (
        Probe.of("int8_kv_bytes(100, 2, 8, 32): a partial last group of 4 tokens",
                 "int8_kv_bytes", 100, 2, 8, 32,
                 holds=_holds(lambda g, w: g == w - 2 * 8 * 2)),
        Probe.of("int8_kv_bytes(10, 1, 16, 32, 4): fewer tokens than a group",
                 "int8_kv_bytes", 10, 1, 16, 32, 4,
                 holds=_holds(lambda g, w: g == w - 16 * 4)),
    ),
}, diagnostics=(
    Probe.of("keys [4, 3]: (int8 numbers, scales)", "quantize_keys", _K1, axes=("token", "channel")),
))


def _reciprocal_scale(x, axis):
    """Correct, other way: x · (127 / max) rounded with np.round (a tie may flip one level,
    which the comparison allows)."""
    m = np.abs(x).max(axis=axis, keepdims=True)
    inv = np.where(m == 0, 0, 127 / np.where(m == 0, 1, m))
    return (np.clip(np.round(x * inv), -127, 127).astype(np.int8),
            (m / np.asarray(127, dtype=x.dtype)).astype(x.dtype, copy=False))


from attnkata import Fake  # noqa: E402

KV_QUANTIZE = attach(KV_QUANTIZE, variants=(Fake("reciprocal_scale", {
    "quantize_keys": lambda k: _reciprocal_scale(k, -2),
    "quantize_values": lambda v: _reciprocal_scale(v, -1)}),))
