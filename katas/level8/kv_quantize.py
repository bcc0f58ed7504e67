"""Level 8 · kv_quantize — an int8 KV cache: a scale per key channel, a scale per value token.

Intuition
---------
At serving time the KV cache, not the weights, decides how many requests fit on a
GPU (level 2 measured it). Storing each cached number in one byte instead of two
halves that memory. The simplest scheme is *symmetric* quantisation: a group of
numbers shares one scale s, and each number is kept as the integer q nearest to x / s,
so that x ≈ s · q. With int8 and a symmetric range, q runs from −127 to 127 and s is
chosen so that the largest |x| of the group lands exactly on 127.

The whole art is choosing which numbers share a scale. A scale is set by the largest
member of its group, so one big number makes every small number in the group round
to 0. Keys are known to have *outlier channels*: a few of the d channels are large for
every token (KIVI measured this on real models). A scale per token would then be set by
the outlier channel, and the ordinary channels of that token would collapse to a few
levels, or to zero. A scale per *channel* (shared by the T tokens of a group) isolates
each outlier channel with its own large scale. Values show no such channels, and
attention mixes whole value rows, so their error is best controlled per token: one
scale per token. Reading the cache *dequantises*: x̂ = s · q, then ordinary attention.

The math
--------
Keys K [T, d] of one head (a group of T tokens), values V [T, d]:

    s_j = max_t |K[t, j]| / 127              one key scale per channel j
    Q_K[t, j] = round(K[t, j] / s_j)         an int8 in −127 … 127
    r_t = max_j |V[t, j]| / 127              one value scale per token t
    Q_V[t, j] = round(V[t, j] / r_t)
    K̂ = Q_K · s (broadcast over t),   V̂ = Q_V · r (broadcast over j)

- T      : tokens in the group;  d : head_dim;  t, j : token and channel indices
- s, r   : scales, kept in the cache's float dtype next to the int8 numbers
- round  : to the nearest integer (numpy's rint); a slice that is all zeros has
           scale 0 and quantises to 0 (never divide by it)
- 127    : the symmetric range's end. int8 also has −128, but using it would make the
           range lopsided (−x would not quantise to −q)

Memory for one layer, T tokens, H_kv heads, keys quantised in groups of G tokens
(KIVI quantises keys per channel one group at a time as the cache grows), b bytes per
scale:

    bytes = 2·T·H_kv·d  +  ⌈T/G⌉·H_kv·d·b  +  T·H_kv·b
            int8 K and V   key scales          value scales

against 2·T·H_kv·d·2 for fp16: the ratio is 1/2 + b/(4G) + b/(4d) when G divides T.

Worked example
--------------
Two tokens of one head, d = 2; channel 1 is an outlier channel:
    K = [[0.03, 12.7], [-0.02, -8.0]]
Per channel: s = [0.03/127, 12.7/127] = [0.000236, 0.1]
    Q_K = [[127, 127], [round(-84.67), round(-80.0)]] = [[127, 127], [-85, -80]]
    K̂[1, 0] = -85 · 0.000236 = -0.020079   (error 0.00008)
Memory, T = 4096, H_kv = 8, d = 128, G = 32, b = 2:
    int8 K, V 8,388,608 B + key scales 262,144 B + value scales 65,536 B
    = 8,716,288 B, against 16,777,216 B in fp16: a ratio of 0.5195.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # int8 K and V with 2-byte scales, head_dim d = 64, key groups of G = 64 tokens
    # (G divides T): the cache's bytes as a fraction of the fp16 cache's? (a number)
    "ratio_d64_g64": ...,
    # A number x inside its group's range, scale s, rounded to the nearest q: the
    # largest possible |x − s·q|, as a multiple of s? (a number)
    "rounding_error_bound": ...,
    # The worked example's K quantised per TOKEN instead (r_t = max_j |K[t, j]| / 127):
    # what does K[0, 0] = 0.03 dequantise to? (a number)
    "small_channel_per_token": ...,
}


def quantize_keys(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8 quantisation of keys.

    k: [..., T, d] float32 or float64. Returns (k_q, k_scale): k_q int8 [..., T, d],
    k_scale [..., 1, d] in k's dtype with k_scale = max over the T tokens of |k| / 127.
    """
    raise NotImplementedError("kata kv_quantize: one scale per channel (reduce over tokens), "
                              "round(k / scale) to int8")


def quantize_values(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token symmetric int8 quantisation of values.

    v: [..., T, d] float. Returns (v_q, v_scale): v_q int8 [..., T, d], v_scale
    [..., T, 1] in v's dtype with v_scale = max over the d channels of |v| / 127.
    """
    raise NotImplementedError("kata kv_quantize: one scale per token (reduce over channels)")


def dequantize(x_q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Read the cache back: x_q (int8) times its broadcastable scale, in the scale's dtype."""
    raise NotImplementedError("kata kv_quantize: q · scale, in the scale's float dtype")


def int8_kv_bytes(tokens: int, kv_heads: int, head_dim: int, group: int,
                  scale_bytes: int = 2) -> int:
    """Bytes of one layer's int8 KV cache: int8 K and V, key scales per channel for each
    group of `group` tokens (the last group may be partial), one value scale per token
    and head; each scale takes `scale_bytes` bytes. An int."""
    raise NotImplementedError("kata kv_quantize: int8 data + key scales + value scales")
