"""Level 7 · ring_overlap — when does the transfer hide under the compute? (a toy model)

Intuition
---------
At every ring step a rank does two things at once: it computes attention of its
queries against the K/V block it holds, and it sends that block on while the next one
arrives. If the arithmetic takes longer than the transfer, the next block is already
there when the rank needs it — communication is free. If not, the rank sits idle,
waiting on the wire.

Both sides grow with the block, but not alike. Compute pairs every query of the block
with every key: it grows with c². The transfer carries c tokens of K and V: it grows
with c. So there is a block size past which the transfer always hides. (Whether the
head dimension d moves it is the last prediction below: see how each side grows with d
in the math.) This kata turns that into four small functions: a model, not a
measurement.

The math
--------
    FLOPs(c, d)   = 4 · c² · d              (QKᵀ and PV: two c × c × d matmuls, 2 FLOPs per term)
    bytes(c, d)   = 2 · c · d · b           (one K block and one V block)
    T_compute     = FLOPs / F
    T_transfer    = bytes / B
    hidden        ⇔  T_compute ≥ T_transfer  ⇔  c ≥ F · b / (2 · B)

- c : block_tokens, the tokens in one rank's shard (one block)
- d : the head dimension (for several heads, d is their total width)
- b : dtype_bytes, bytes per element (2 for fp16/bf16, 4 for fp32)
- F : flops_per_s, the rank's sustained arithmetic rate
- B : bytes_per_s, the link's bandwidth towards the next rank
- equal times count as hidden: the next block arrives just as it is needed
- min_block_tokens(F, B, b) = ⌈F · b / (2B)⌉ (at least 1): the smallest hiding c

Worked example
--------------
c = 2048, d = 128, b = 2, F = 4·10¹⁴ FLOP/s, B = 2.5·10¹⁰ B/s:
    FLOPs = 4 · 2048² · 128 = 2.147·10⁹     T_compute  = 2.147·10⁹ / 4·10¹⁴ = 5.37 µs
    bytes = 2 · 2048 · 128 · 2 = 1 048 576   T_transfer = 1 048 576 / 2.5·10¹⁰ = 41.9 µs
The rank waits about 36 µs per step: not hidden. Threshold c ≥ 4·10¹⁴ · 2 / (2 · 2.5·10¹⁰)
= 16 000 tokens per block.
"""

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # c = 4096 tokens per block, d = 128, bf16 (2 bytes): how many bytes does one ring
    # step move (K and V)?
    "kv_block_bytes": ...,
    # A device doing 10**15 FLOP/s linked at 5 * 10**10 B/s, bf16: the smallest block c
    # (tokens) whose compute hides its K/V transfer.
    "min_block_tokens_example": ...,
    # Same device and link, c = 4096, d = 128: is the transfer hidden? (True/False)
    "hidden_at_4096": ...,
    # Does doubling d change whether the transfer hides? Choose one: "yes", "no".
    "d_changes_verdict": ...,
}


def block_flops(block_tokens: int, d: int) -> int:
    """FLOPs of one ring step: scores QKᵀ and output PV for a c-token block, 4·c²·d."""
    raise NotImplementedError("kata ring_overlap: two c x c x d matmuls, 2 FLOPs per term")


def block_bytes(block_tokens: int, d: int, dtype_bytes: int = 2) -> int:
    """Bytes one ring step sends: a K block and a V block, [c, d] each."""
    raise NotImplementedError("kata ring_overlap: K and V, c * d elements each")


def overlap_hidden(block_tokens: int, d: int, flops_per_s: float, bytes_per_s: float,
                   dtype_bytes: int = 2) -> bool:
    """True when the step's compute time is at least its transfer time."""
    raise NotImplementedError("kata ring_overlap: compare FLOPs / F with bytes / B")


def min_block_tokens(flops_per_s: float, bytes_per_s: float, dtype_bytes: int = 2) -> int:
    """The smallest block size c (≥ 1) for which overlap_hidden is True, for any d."""
    raise NotImplementedError("kata ring_overlap: solve 4c^2 d / F >= 2 c d b / B for c")
