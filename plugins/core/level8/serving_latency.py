"""Level 8 · serving_latency — TTFT, TPOT, E2E and SLO attainment on a toy prefill-first server."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check

# ---------------------------------------------------------------------------
# The judge's own model of the server and the metrics, with switches for the mistakes
# ---------------------------------------------------------------------------


def simulate(arrival, prompts, outputs, prefill, base, per_seq, *, batch_cost=True):
    arrival = np.asarray(arrival, dtype=np.float64)
    prompts = np.asarray(prompts, dtype=np.int64)
    outputs = np.asarray(outputs, dtype=np.int64)
    n = arrival.size
    first, finish = np.full(n, np.nan), np.full(n, np.nan)
    made = np.zeros(n, dtype=np.int64)
    order = list(np.argsort(arrival, kind="stable"))
    waiting, running, t = [], [], 0.0
    while order or waiting or running:
        while order and arrival[order[0]] <= t:
            waiting.append(int(order.pop(0)))
        if waiting:
            t += prefill * float(prompts[waiting].sum())
            for i in waiting:
                first[i], made[i] = t, 1
                if outputs[i] == 1:
                    finish[i] = t
                else:
                    running.append(i)
            waiting = []
        elif running:
            t += base + per_seq * (len(running) if batch_cost else 1)
            for i in running:
                made[i] += 1
                if made[i] == outputs[i]:
                    finish[i] = t
            running = [i for i in running if made[i] < outputs[i]]
        else:
            t = float(arrival[order[0]])
    return first, finish


def _isolated(arrival_ms, prompt_lens, output_lens, prefill_ms_per_token, decode_ms_base,
              decode_ms_per_seq):
    """Every request alone on its own server: no queue, batch of one."""
    arrival = np.asarray(arrival_ms, dtype=np.float64)
    first = arrival + prefill_ms_per_token * np.asarray(prompt_lens, dtype=np.float64)
    steps = np.asarray(output_lens, dtype=np.float64) - 1
    return first, first + steps * (decode_ms_base + decode_ms_per_seq)


def _batch_free_decode(arrival_ms, prompt_lens, output_lens, prefill_ms_per_token, decode_ms_base,
                       decode_ms_per_seq):
    return simulate(arrival_ms, prompt_lens, output_lens, prefill_ms_per_token, decode_ms_base,
                    decode_ms_per_seq, batch_cost=False)


def metrics(arrival_ms, output_lens, first_token_ms, finish_ms, ttft_slo_ms, tpot_slo_ms, *,
            tpot="gaps", pct="linear"):
    arrival = np.asarray(arrival_ms, dtype=np.float64)
    n = np.asarray(output_lens, dtype=np.int64)
    first = np.asarray(first_token_ms, dtype=np.float64)
    finish = np.asarray(finish_ms, dtype=np.float64)
    ttft = first - arrival
    if tpot == "gaps":
        per = np.where(n > 1, (finish - first) / np.maximum(n - 1, 1), 0.0)
    elif tpot == "tokens":
        per = (finish - first) / n
    else:  # "e2e"
        per = (finish - arrival) / n
    ok = (ttft <= ttft_slo_ms) & (per <= tpot_slo_ms)

    def p(x, q):
        if pct == "linear":
            return float(np.percentile(x, q))
        s = np.sort(x)
        return float(s[max(math.ceil(q / 100 * s.size) - 1, 0)])

    return {"ttft_ms": ttft, "tpot_ms": per, "e2e_ms": finish - arrival, "slo_ok": ok,
            "p50_ttft_ms": p(ttft, 50), "p99_ttft_ms": p(ttft, 99),
            "p50_tpot_ms": p(per, 50), "p99_tpot_ms": p(per, 99),
            "slo_attainment": float(ok.mean())}


def _tpot_over_all_tokens(*args):
    return metrics(*args, tpot="tokens")


def _tpot_includes_waiting(*args):
    return metrics(*args, tpot="e2e")


def _nearest_rank(*args):
    return metrics(*args, pct="nearest_rank")


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

COSTS = ((0.5, 10.0, 2.0), (0.25, 8.0, 0.5), (1.0, 5.0, 5.0), (0.1, 20.0, 0.0))
EXAMPLE = (np.array([0.0, 20.0]), np.array([100, 40]), np.array([3, 2]))


@st.composite
def traces(draw, max_requests=9):
    n = draw(st.integers(1, max_requests))
    arrival = np.array(draw(st.lists(st.integers(0, 300), min_size=n, max_size=n)), dtype=np.float64)
    prompts = np.array(draw(st.lists(st.integers(1, 400), min_size=n, max_size=n)), dtype=np.int64)
    outputs = np.array(draw(st.lists(st.integers(1, 7), min_size=n, max_size=n)), dtype=np.int64)
    cost = draw(st.sampled_from(COSTS))
    slo = (draw(st.sampled_from((40.0, 100.0, 250.0))), draw(st.sampled_from((8.0, 15.0, 30.0))))
    return arrival, prompts, outputs, cost, slo


def bursty_trace(n=64, seed=8):
    """Poisson arrivals (mean gap 300 ms), long-tailed prompts and outputs."""
    rng = np.random.default_rng(seed)
    arrival = np.round(np.cumsum(rng.exponential(300.0, n)), 1)
    prompts = np.clip(np.round(rng.lognormal(np.log(300), 0.9, n)), 8, 4000).astype(np.int64)
    outputs = np.clip(np.round(rng.lognormal(np.log(60), 0.8, n)), 1, 400).astype(np.int64)
    return arrival, prompts, outputs


BURSTY_COST = (0.2, 15.0, 0.5)

# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


@check("the worked example: two requests, 0.5 ms/token prefill, 10 + 2·b ms decode steps")
def latency_worked_example(ctx):
    arrival, prompts, outputs = EXAMPLE
    first, finish = ctx.expect("serve_trace", arrival, prompts, outputs, 0.5, 10.0, 2.0)
    ctx.expect("latency_metrics", arrival, outputs, *simulate(arrival, prompts, outputs, 0.5, 10.0, 2.0),
               60.0, 20.0)


@check("serve_trace matches the reference on random traces (ties, idle gaps, any order, "
       "one-token answers)")
def latency_trace_matches(ctx):
    @ctx.given(trace=traces())
    def prop(trace):
        arrival, prompts, outputs, cost, _ = trace
        ctx.expect("serve_trace", arrival, prompts, outputs, *cost)

    prop()


@check("latency_metrics matches the reference on random traces (TTFT, TPOT, E2E, SLO, "
       "np.percentile's p50/p99)")
def latency_metrics_match(ctx):
    @ctx.given(trace=traces(max_requests=12))
    def prop(trace):
        arrival, prompts, outputs, cost, slo = trace
        first, finish = simulate(arrival, prompts, outputs, *cost)
        ctx.expect("latency_metrics", arrival, outputs, first, finish, *slo)

    prop()


@check("properties: E2E = TTFT + (n − 1)·TPOT, nobody's first token comes before its own "
       "prefill, and nobody decodes faster than alone")
def latency_properties(ctx):
    @ctx.given(trace=traces())
    def prop(trace):
        arrival, prompts, outputs, cost, slo = trace
        first, finish = _times(ctx, ctx.call("serve_trace", arrival, prompts, outputs, *cost),
                               arrival.size)
        alone_first, alone_finish = _isolated(arrival, prompts, outputs, *cost)
        early = np.flatnonzero(first < alone_first - 1e-9)
        if early.size:
            i = int(early[0])
            ctx.fail(f"request {i} (arrival {arrival[i]:g} ms, prompt {prompts[i]}) got its first "
                     f"token at {first[i]:g} ms, before its own prefill could end "
                     f"({alone_first[i]:g} ms).")
        fast = np.flatnonzero(finish - first < alone_finish - alone_first - 1e-9)
        if fast.size:
            i = int(fast[0])
            ctx.fail(f"request {i} decoded its {outputs[i] - 1} later tokens in "
                     f"{finish[i] - first[i]:g} ms: faster than a batch of one allows "
                     f"({alone_finish[i] - alone_first[i]:g} ms).")
        m = ctx.call("latency_metrics", arrival, outputs, first, finish, *slo)
        ttft, tpot, e2e = (_column(ctx, m, key, arrival.size) for key in ("ttft_ms", "tpot_ms", "e2e_ms"))
        if not np.allclose(ttft + (outputs - 1) * tpot, e2e, rtol=1e-6, atol=1e-6):
            ctx.fail("latency_metrics: E2E differs from TTFT + (n − 1)·TPOT; TPOT averages the "
                     "n − 1 gaps after the first token.")

    prop()


def _times(ctx, out, n):
    """``(first_token_ms, finish_ms)`` as float arrays of ``n``, or a failure saying what came back."""
    try:
        first, finish = (np.asarray(x, dtype=np.float64) for x in out)
        if first.shape == finish.shape == (n,):
            return first, finish
    except (TypeError, ValueError):
        pass
    ctx.fail(f"serve_trace returned {out!r:.80}: expected (first_token_ms, finish_ms), two "
             f"arrays of {n} times.")


def _column(ctx, m, key, n):
    try:
        col = np.asarray(m[key], dtype=np.float64)
        if col.shape == (n,):
            return col
    except (TypeError, ValueError, KeyError, IndexError):
        pass
    ctx.fail(f"latency_metrics returned {m!r:.80}: expected a dict whose {key!r} is an array "
             f"of {n} values.")


@check("a bursty trace of 64 requests: queueing and prefill stalls make p99 far worse than "
       "p50 (figures recorded)")
def latency_bursty(ctx):
    arrival, prompts, outputs = bursty_trace()
    first, finish = ctx.expect("serve_trace", arrival, prompts, outputs, *BURSTY_COST)
    m = ctx.expect("latency_metrics", arrival, outputs, first, finish, 400.0, 25.0)
    alone = metrics(arrival, outputs, *_isolated(arrival, prompts, outputs, *BURSTY_COST), 400.0, 25.0)
    ctx.record(f"bursty trace (64 Poisson arrivals, mean gap 300 ms; toy cost 0.2 ms/token prefill, "
               f"15 + 0.5·b ms decode): "
               f"TTFT p50 {m['p50_ttft_ms']:.0f} / p99 {m['p99_ttft_ms']:.0f} ms, TPOT p50 "
               f"{m['p50_tpot_ms']:.1f} / p99 {m['p99_tpot_ms']:.1f} ms, SLO (TTFT ≤ 400, TPOT ≤ 25) "
               f"attainment {m['slo_attainment']:.2f}; each request alone: TPOT "
               f"{alone['p99_tpot_ms']:.1f} ms, attainment {alone['slo_attainment']:.2f}")


@check("percentiles follow np.percentile's default (linear interpolation), not nearest rank")
def latency_percentiles(ctx):
    arrival = np.zeros(5)
    outputs = np.array([2, 2, 2, 2, 2])
    first = np.array([10.0, 20.0, 30.0, 40.0, 1000.0])
    ctx.expect("latency_metrics", arrival, outputs, first, first + 5.0, 100.0, 10.0)
    arrival = np.arange(10.0)
    outputs = np.arange(1, 11)
    first = arrival + np.array([3.0, 9.0, 4.0, 12.0, 5.0, 7.0, 30.0, 6.0, 8.0, 11.0])
    ctx.expect("latency_metrics", arrival, outputs, first, first + 4.0 * (outputs - 1), 10.0, 4.0)


# ---------------------------------------------------------------------------
# The kata
# ---------------------------------------------------------------------------


latency_strided_inputs = layout_check(
    "serve_trace", lambda ctx: [((*EXAMPLE, 0.5, 10.0, 2.0), {}),
                                ((np.array([0.0, 3.0, 3.0, 40.0]), np.array([10, 50, 5, 20]),
                                  np.array([4, 1, 6, 2]), *BURSTY_COST), {})],
    "arrival times as every other entry of a longer buffer", id="latency_strided_inputs",
    layouts=("sliced",))


SERVING_LATENCY = Kata(
    id="serving_latency", level=8, title="Serving latency: TTFT, TPOT, SLOs and p99 on a toy server",
    path="level8/serving_latency.py", entries=("serve_trace", "latency_metrics"),
    checks=(latency_worked_example, latency_trace_matches, latency_metrics_match, latency_properties,
            latency_percentiles, latency_bursty,
            latency_strided_inputs),
    predictions=(
        Prediction("p50_of_four", "np.percentile default: the p50 of TTFTs [10, 20, 30, 40] ms",
                   25.0, why="Position 0.5·(4 − 1) = 1.5: halfway between 20 and 30."),
        Prediction("p99_of_five", "…and the p99 of [10, 20, 30, 40, 1000] ms", 961.6,
                   why="Position 0.99·(5 − 1) = 3.96: 40 + 0.96·(1000 − 40) = 961.6. Nearest rank "
                       "would say 1000; with five requests p99 is mostly the worst one."),
        Prediction("e2e_from_ttft_tpot", "TTFT 200 ms, TPOT 20 ms, 101 output tokens: E2E in ms",
                   2200.0, why="200 + (101 − 1)·20 = 2200: TPOT covers the 100 gaps after the "
                               "first token."),
        Prediction("prefill_hurts", "a long prompt arrives while others decode; prefill-first "
                   "scheduling mostly inflates the running requests' (TTFT, TPOT, neither)", "TPOT",
                   kind="choice", choices=("TTFT", "TPOT", "neither"),
                   why="The running requests already have their first token; while the server "
                       "prefills the newcomer they emit nothing, so the gap — TPOT — grows."),
    ),
    misconceptions=(
        # Source note: back-of-envelope latency estimates (and many first simulators) price each
        # request from the cost model alone, as if it had the server to itself.
        Misconception("latency_without_contention", "priced each request alone: no queue, "
                      "a batch of one", {"serve_trace": _isolated},
                      "A request waits for the step in progress and for other prompts' prefill, and "
                      "every decode step is shared and priced at the batch size b. Simulate the "
                      "server's steps in time order."),
        # Source note: "decode is memory-bound, so batch size is free" is a half-truth learners
        # turn into a constant step cost; the cost model here charges per sequence.
        Misconception("decode_cost_ignores_batch", "charged every decode step as a batch of one",
                      {"serve_trace": _batch_free_decode},
                      "A decode step over b sequences costs decode_ms_base + decode_ms_per_seq · b."),
        # Source note: TPOT is often computed as decode time / output tokens; the first token
        # belongs to TTFT (vLLM's benchmark_serving and DistServe define it over n − 1 gaps).
        Misconception("tpot_over_all_tokens", "divided the decode time by n instead of n − 1",
                      {"latency_metrics": _tpot_over_all_tokens},
                      "After the first token there are n − 1 more, so n − 1 gaps: "
                      "TPOT = (finish − first) / (n − 1)."),
        # Source note: "latency per token" (E2E / n) is reported by many dashboards and gets
        # mistaken for TPOT; it mixes queueing and prefill into the stream's rhythm.
        Misconception("tpot_includes_waiting", "used E2E / n (queue and prefill included) as TPOT",
                      {"latency_metrics": _tpot_includes_waiting},
                      "TPOT starts at the first token: the wait and the prefill belong to TTFT."),
        # Source note: statistics courses teach the nearest-rank percentile; numpy's default
        # interpolates, and the two differ most in the tail with few requests.
        Misconception("nearest_rank_percentile", "took percentiles by nearest rank, not numpy's "
                      "linear interpolation", {"latency_metrics": _nearest_rank},
                      "Use np.percentile(x, q): position (q/100)·(n − 1), interpolated."),
    ),
    claims=(
        Claim("latency-accounting", "Per request, E2E = TTFT + (n − 1)·TPOT, and SLO attainment is "
              "the fraction meeting both bounds.", scope="exact", source="zhong-2024-distserve",
              evidence=("latency_worked_example", "latency_metrics_match", "latency_properties"),
              not_claimed="Definitions only; no statement about any real server's latencies."),
        Claim("prefill-stalls-decode", "Under prefill-first scheduling, queueing and prefill "
              "stalls make tail TTFT and TPOT far worse than a request alone would see (figures "
              "recorded on a synthetic bursty trace).", scope="toy", source="agrawal-2024-sarathi",
              evidence=("latency_bursty", "latency_trace_matches"),
              not_claimed="A linear toy cost model and one synthetic trace: no measured GPU "
                          "latencies, no chunked prefill, no memory limit (see continuous_batching)."),
    ),
    hints=(
        "serve_trace: keep the current time t, a waiting list and a running list; loop until "
        "every request has finished. Sort request indices by arrival to know who joins next.",
        "Each turn: move arrivals ≤ t to waiting; if waiting, t += prefill·Σprompt and each "
        "gets its first token; elif running, t += base + per_seq·len(running) and each gets one "
        "more; else t = next arrival.",
        "latency_metrics: ttft = first − arrival; tpot = (finish − first)/(n − 1), 0 where n = 1 "
        "(np.where with np.maximum(n − 1, 1) avoids dividing by 0); percentiles with "
        "float(np.percentile(x, q)).",
    ),
    requires=("numpy", "hypothesis"),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): tiny traces where each mistake's timings or metrics
# have a closed form — each request priced as if alone; decode steps priced at a batch of
# one; TPOT over n tokens or over E2E; percentiles by nearest rank.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, attempt, check as _holds, close  # noqa: E402

_COST = (0.5, 10.0, 2.0)


def _serve(arrival, prompts, outputs, cost=_COST):
    a, p, o = (np.array(x, dtype=np.float64 if i == 0 else np.int64)
               for i, x in enumerate((arrival, prompts, outputs)))
    return lambda ns: tuple(np.asarray(x, dtype=np.float64) for x in ns.serve_trace(a, p, o, *cost))


def _pair(a, b):
    return lambda ns: (attempt(lambda: a(ns)), attempt(lambda: b(ns)))


def _alone(prompts, arrival, cost=_COST):
    return np.asarray(arrival, np.float64) + cost[0] * np.asarray(prompts, np.float64)


def _batch_of_one(outputs, cost=_COST):
    """First tokens right; each later token one step of base + per_seq (a batch of one)."""
    def holds(g, w):
        first, finish = g
        steps = np.asarray(outputs, np.float64) - 1
        return (close(first, w[0]) and not close(finish, w[1])
                and close(finish, first + steps * (cost[1] + cost[2])))
    return _holds(holds)


_A = np.array([0.0, 5.0, 5.0, 40.0])
_N = np.array([3, 5, 1, 2])
_F1 = np.array([10.0, 30.0, 12.0, 50.0])
_E1 = np.array([30.0, 90.0, 12.0, 70.0])


def _metrics(arrival, outputs, first, finish, slo=(100.0, 10.0)):
    return lambda ns: ns.latency_metrics(arrival, outputs, first, finish, *slo)


def _tpot_is(fn):
    return _holds(lambda g, w: close(np.asarray(g["tpot_ms"], np.float64), fn)
                  and not close(np.asarray(w["tpot_ms"], np.float64), fn))


def _ranked(values):
    s = np.sort(np.asarray(values, np.float64))
    return lambda q: float(s[max(int(np.ceil(q / 100 * s.size)) - 1, 0)])


_TT = np.arange(1.0, 11.0)          # TTFTs 1 … 10 ms
_TT2 = np.array([3.0, 40.0, 7.0, 12.0, 5.0, 9.0])


def _percentiles(ttft):
    n = ttft.size
    return _metrics(np.zeros(n), np.full(n, 2), ttft, ttft + 4.0)


def _nearest(ttft):
    r = _ranked(ttft)
    return _holds(lambda g, w: close(g["p99_ttft_ms"], r(99)) and close(g["p50_ttft_ms"], r(50))
                  and not close(w["p50_ttft_ms"], r(50)))


SERVING_LATENCY = attach(SERVING_LATENCY, probes={
    # source: zhong-2024-distserve (TTFT under load includes queueing and other prompts'
    # prefill); a per-request estimate from the cost model leaves them out
    "latency_without_contention": (
        Probe("one request alone, then two arriving together (1 token each)",
              _pair(_serve([0.0], [100], [1]), _serve([0.0, 0.0], [100, 40], [1, 1])),
              _holds(lambda g, w: close(g[0], w[0]) and not close(g[1], w[1]))),
        Probe("two requests arriving together: first tokens as if each had the server alone",
              _serve([0.0, 0.0], [100, 40], [2, 2]),
              _holds(lambda g, w: close(g[0], _alone([100, 40], [0.0, 0.0])) and not close(g[0], w[0]))),
    ),
    # source: agrawal-2024-sarathi (a decode iteration's time grows with the batch it
    # carries; "decode is memory-bound, so batching is free" is the half-truth)
    "decode_cost_ignores_batch": (
        Probe("two requests together (10 + 10 tokens of prompt, 3 tokens each)",
              _serve([0.0, 0.0], [10, 10], [3, 3]), _batch_of_one([3, 3])),
        Probe("three requests together (4 tokens of prompt, 2 tokens each)",
              _serve([0.0, 0.0, 0.0], [4, 4, 4], [2, 2, 2]), _batch_of_one([2, 2, 2])),
    ),
    # source: zhong-2024-distserve (TPOT over the n − 1 tokens after the first)
    "tpot_over_all_tokens": (
        Probe("latency_metrics on four requests (3, 5, 1, 2 tokens)", _metrics(_A, _N, _F1, _E1),
              _tpot_is((_E1 - _F1) / _N)),
        Probe("latency_metrics on two requests (4 and 6 tokens)",
              _metrics(np.array([0.0, 0.0]), np.array([4, 6]), np.array([5.0, 8.0]), np.array([35.0, 58.0])),
              _tpot_is(np.array([30.0 / 4, 50.0 / 6]))),
    ),
    # source: dashboards' "latency per token" (E2E / n) mistaken for TPOT (a teaching note;
    # zhong-2024-distserve separates TTFT from TPOT)
    "tpot_includes_waiting": (
        Probe("latency_metrics on four requests (3, 5, 1, 2 tokens)", _metrics(_A, _N, _F1, _E1),
              _tpot_is((_E1 - _A) / _N)),
        Probe("latency_metrics on two requests (4 and 6 tokens)",
              _metrics(np.array([0.0, 0.0]), np.array([4, 6]), np.array([5.0, 8.0]), np.array([35.0, 58.0])),
              _tpot_is(np.array([35.0 / 4, 58.0 / 6]))),
    ),
    # source: numpy.percentile's default is linear interpolation (numpy/numpy "method"
    # parameter docs); nearest rank is the textbook definition
    "nearest_rank_percentile": (
        Probe("TTFTs 1 … 10 ms: p50 and p99", _percentiles(_TT), _nearest(_TT)),
        Probe("TTFTs 3, 40, 7, 12, 5, 9 ms: p50 and p99", _percentiles(_TT2), _nearest(_TT2)),
    ),
}, diagnostics=(
    Probe("four requests (arrivals 0, 5, 5, 40 ms; 3, 5, 1, 2 tokens): first-token and finish "
          "times", _serve(_A, [20, 8, 8, 30], _N), axes=("request",)),
))


def _metrics_divide_where(arrival_ms, output_lens, first_token_ms, finish_ms, ttft_slo_ms, tpot_slo_ms):
    """Correct, other way: TPOT by np.divide(..., where=n > 1)."""
    out = metrics(arrival_ms, output_lens, first_token_ms, finish_ms, ttft_slo_ms, tpot_slo_ms)
    n = np.asarray(output_lens, np.float64)
    gap = np.asarray(finish_ms, np.float64) - np.asarray(first_token_ms, np.float64)
    out["tpot_ms"] = np.divide(gap, n - 1, out=np.zeros_like(gap), where=n > 1)
    return out


from attnkata import Fake  # noqa: E402

SERVING_LATENCY = attach(SERVING_LATENCY, variants=(
    Fake("divide_where", {"latency_metrics": _metrics_divide_where}),))
