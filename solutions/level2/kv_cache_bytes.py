"""Reference · kv_cache_bytes: Mem_KV = B · N_layers · T · H_kv · d_head · 2 · bytes."""

PREDICTIONS = {
    "kv_lab_gb": 68.7,
    "kv_lab_mqa_gb": 2.15,
    "llama70b_kib_per_token": 320,
}


def kv_cache_bytes(batch: int, layers: int, tokens: int, kv_heads: int, head_dim: int,
                   bytes_per_elem: int = 2) -> int:
    # 2: every cached token stores one key vector and one value vector per KV head.
    return int(batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem)
