"""Reference · kv_head_for: consecutive query heads share one KV head."""

PREDICTIONS = {
    "head_13_of_32_to_8": 3,
    "gqa_over_mha": 0.25,
    "llama70b_no_gqa_gib": 320,
}


def kv_head_for(q_head: int, n_q_heads: int, n_kv_heads: int) -> int:
    if n_kv_heads < 1 or n_q_heads % n_kv_heads != 0:
        raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_q_heads={n_q_heads}")
    group = n_q_heads // n_kv_heads  # query heads per KV head
    return q_head // group
