"""Reference · serving_latency: a prefill-first toy server, then TTFT, TPOT, E2E and SLOs."""

import numpy as np

PREDICTIONS = {
    "p50_of_four": 25.0,
    "p99_of_five": 961.6,
    "e2e_from_ttft_tpot": 2200.0,
    "prefill_hurts": "TPOT",
}


def serve_trace(arrival_ms, prompt_lens, output_lens, prefill_ms_per_token: float,
                decode_ms_base: float, decode_ms_per_seq: float):
    arrival = np.asarray(arrival_ms, dtype=np.float64)
    prompts = np.asarray(prompt_lens, dtype=np.int64)
    outputs = np.asarray(output_lens, dtype=np.int64)
    n = arrival.size
    if not (prompts.shape == outputs.shape == arrival.shape) or (outputs < 1).any():
        raise ValueError("one arrival, prompt length and output length (>= 1) per request")
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    made = np.zeros(n, dtype=np.int64)          # tokens emitted so far
    order = np.argsort(arrival, kind="stable")  # the queue: by arrival, ties by request index
    nxt = 0                                     # next request in `order` not yet queued
    waiting, running = [], []
    t = 0.0
    while nxt < n or waiting or running:
        while nxt < n and arrival[order[nxt]] <= t:
            waiting.append(int(order[nxt]))
            nxt += 1
        if waiting:                              # prefill every waiting prompt in one step
            t += prefill_ms_per_token * float(prompts[waiting].sum())
            for i in waiting:
                first[i] = t
                made[i] = 1
                if outputs[i] == 1:
                    finish[i] = t
                else:
                    running.append(i)
            waiting = []
        elif running:                            # one decode step for the whole batch
            t += decode_ms_base + decode_ms_per_seq * len(running)
            still = []
            for i in running:
                made[i] += 1
                if made[i] == outputs[i]:
                    finish[i] = t
                else:
                    still.append(i)
            running = still
        else:                                    # idle: wait for the next arrival
            t = max(t, float(arrival[order[nxt]]))
    return first, finish


def latency_metrics(arrival_ms, output_lens, first_token_ms, finish_ms, ttft_slo_ms: float,
                    tpot_slo_ms: float) -> dict:
    arrival = np.asarray(arrival_ms, dtype=np.float64)
    outputs = np.asarray(output_lens, dtype=np.int64)
    first = np.asarray(first_token_ms, dtype=np.float64)
    finish = np.asarray(finish_ms, dtype=np.float64)
    ttft = first - arrival
    gaps = np.maximum(outputs - 1, 1)
    tpot = np.where(outputs > 1, (finish - first) / gaps, 0.0)
    ok = (ttft <= ttft_slo_ms) & (tpot <= tpot_slo_ms)
    return {
        "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": finish - arrival, "slo_ok": ok,
        "p50_ttft_ms": float(np.percentile(ttft, 50)), "p99_ttft_ms": float(np.percentile(ttft, 99)),
        "p50_tpot_ms": float(np.percentile(tpot, 50)), "p99_tpot_ms": float(np.percentile(tpot, 99)),
        "slo_attainment": float(ok.mean()),
    }
