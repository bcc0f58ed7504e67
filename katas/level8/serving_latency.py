"""Level 8 · serving_latency — what a user of a language-model server waits for.

Intuition
---------
A user typing into a chat box feels two delays. First the pause before anything
appears: the server must read the whole prompt (the *prefill*) before it can emit
the first token. Then the rhythm of the stream: one token per *decode* step, each
step shared by every request the server is currently answering. Serving papers name
these two delays TTFT (time to first token) and TPOT (time per output token), and
judge a server by how many requests meet a target for both — a service-level
objective, or SLO.

Neither number is a property of the model alone. TTFT includes the time a request
spent queued behind others; TPOT grows when the batch grows (a decode step over 64
sequences costs more than over 1), and it depends on what else the server does
between two of your tokens. This kata builds a tiny, fully specified server and
measures it.

The toy server (simulate it exactly)
------------------------------------
Time t starts at 0 ms. The server repeats, until every request has finished:

1. Every request with arrival ≤ t that has not started joins the *waiting* queue.
2. If anything is waiting: ONE prefill step for all of them together, costing
       prefill_ms_per_token · (sum of their prompt lengths)   milliseconds.
   At its end each of them emits its first token. A request that wants only one
   output token is finished then; the others join the *running* batch.
3. Else, if anything is running: ONE decode step, costing
       decode_ms_base + decode_ms_per_seq · b   milliseconds,   b = batch size
   (every running request, whenever it arrived). At its end each of them emits one
   more token; a request that has emitted its output length is finished.
4. Else (nothing to do): t jumps to the next arrival.

Prefill goes first whenever someone waits (as vLLM's first scheduler did). Requests
are given in any order; answer in the order given.

The metrics
-----------
    TTFT_i = first_i − arrival_i
    TPOT_i = (finish_i − first_i) / (n_i − 1)        (0 when n_i = 1)
    E2E_i  = finish_i − arrival_i  = TTFT_i + (n_i − 1) · TPOT_i
    ok_i   = (TTFT_i ≤ ttft_slo_ms) and (TPOT_i ≤ tpot_slo_ms)

- arrival_i : when request i reaches the server (ms)
- first_i   : when its first output token is emitted (end of its prefill step)
- finish_i  : when its last output token is emitted
- n_i       : its output length in tokens (≥ 1); n_i − 1 gaps follow the first token,
              so TPOT averages those gaps. A one-token answer has no gaps: TPOT = 0.
- ok_i      : whether request i meets both SLOs (the bounds themselves pass)

Percentiles summarise the tail: p50 is the median, p99 the latency that 99 % of
requests beat. Use numpy's default definition, np.percentile(x, q) ("linear"): sort
the n values, go to position (q/100)·(n − 1) counting from 0, and interpolate between
the two neighbours. With few requests p99 lies between the two largest values.

Worked example
--------------
prefill 0.5 ms/token; decode 10 ms + 2 ms per sequence. Two requests:
A arrives at 0 ms (prompt 100, output 3), B at 20 ms (prompt 40, output 2).

    t =  0: waiting {A}   prefill 100·0.5 = 50 ms  → t = 50, A's first token
    t = 50: waiting {B}   prefill  40·0.5 = 20 ms  → t = 70, B's first token
    t = 70: running {A,B} decode 10 + 2·2 = 14 ms  → t = 84, A 2 tokens, B done
    t = 84: running {A}   decode 10 + 2·1 = 12 ms  → t = 96, A done

    A: TTFT 50, TPOT (96 − 50)/2 = 23, E2E 96      B: TTFT 50, TPOT 14, E2E 64
With SLOs TTFT ≤ 60 ms and TPOT ≤ 20 ms, A fails and B passes: attainment 0.5.
The TPOTs sorted are [14, 23]: p50 = 18.5, p99 = 14 + 0.99·(23 − 14) = 22.91.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # np.percentile default: the p50 of TTFTs [10, 20, 30, 40] ms? (a number)
    "p50_of_four": ...,
    # ...and the p99 of [10, 20, 30, 40, 1000] ms? (a number)
    "p99_of_five": ...,
    # A request with TTFT 200 ms, TPOT 20 ms and 101 output tokens: its end-to-end
    # latency in ms? (a number)
    "e2e_from_ttft_tpot": ...,
    # A long prompt arrives while others are decoding. Prefill-first scheduling
    # mostly inflates the running requests'... Choose one: "TTFT", "TPOT", "neither".
    "prefill_hurts": ...,
}


def serve_trace(arrival_ms, prompt_lens, output_lens, prefill_ms_per_token: float,
                decode_ms_base: float, decode_ms_per_seq: float):
    """Simulate the toy server above on a trace of requests.

    ``arrival_ms`` (floats), ``prompt_lens`` and ``output_lens`` (ints ≥ 1): one entry
    per request, lists or 1-D arrays, in any order. Returns ``(first_token_ms,
    finish_ms)``: two float64 arrays of absolute times, one entry per request, in the
    order given.
    """
    raise NotImplementedError("kata serving_latency: simulate prefill-first steps, "
                              "return (first_token_ms, finish_ms)")


def latency_metrics(arrival_ms, output_lens, first_token_ms, finish_ms, ttft_slo_ms: float,
                    tpot_slo_ms: float) -> dict:
    """Per-request latencies, SLO pass/fail, and their percentiles.

    Returns a dict with float64 arrays ``"ttft_ms"``, ``"tpot_ms"``, ``"e2e_ms"``, a
    bool array ``"slo_ok"``, and Python floats ``"p50_ttft_ms"``, ``"p99_ttft_ms"``,
    ``"p50_tpot_ms"``, ``"p99_tpot_ms"`` (np.percentile's default) and
    ``"slo_attainment"`` (the fraction of requests with ``slo_ok``).
    """
    raise NotImplementedError("kata serving_latency: TTFT, TPOT, E2E, SLO and percentiles")
