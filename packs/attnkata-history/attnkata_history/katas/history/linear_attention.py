"""History pack · linear_attention — change the kernel, reorder the product, lose the N².

Intuition
---------
Softmax attention compares every query with every key: N queries × N keys scores.
Katharopoulos et al. noticed that if the similarity of a query and a key were a
plain dot product of two feature vectors, φ(q)·φ(k), the N × N table would never be
needed: Σ_j (φ(q)·φ(k_j)) v_j = φ(q)ᵀ (Σ_j φ(k_j) v_jᵀ), and the bracket — a small
d × d_v matrix — is the same for every query. Compute it once (cost N·d·d_v), then
each query reads it (again N·d·d_v). Nothing grows like N². They chose
φ(x) = elu(x) + 1.
With a causal mask, query i may only use keys up to i: keep the bracket as a running
sum and add one key at a time. That is a recurrent network whose state is the
d × d_v matrix S and the d-vector z — the "transformers are RNNs" of the title.

The math
--------
    φ(x) = elu(x) + 1 = x + 1 (x > 0),  eˣ (x ≤ 0)      elementwise
    S = Σ_j φ(k_j) v_jᵀ      [d, d_v]        z = Σ_j φ(k_j)      [d]
    o_i = φ(q_i)ᵀ S / (φ(q_i)ᵀ z)                               [d_v]
    causal: S_i = S_{i−1} + φ(k_i) v_iᵀ,  z_i = z_{i−1} + φ(k_i),  o_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i)

- q [..., N_q, d], k [..., N_k, d], v [..., N_k, d_v]: as in softmax attention (causal: N_q = N_k = N)
- φ(q_i), φ(k_j) [d] : features of query i and key j
- S, z    : the key–value summary and the key sum, shared by all queries
- S_i, z_i: the same over keys 0 … i only (S_{−1} = 0, z_{−1} = 0)
- The quadratic form gives the same o: weights A[i, j] = φ(q_i)·φ(k_j) / Σ_j' φ(q_i)·φ(k_j'),
  o = A v. There is no 1/√d here.
- Outputs keep q's dtype.

Worked example
--------------
q = [[0, 1]];  k = [[0, 0], [1, −1]];  v = [[1], [3]]

    φ(q) = [1, 2];   φ(k_0) = [1, 1];   φ(k_1) = [2, e⁻¹] = [2, 0.3679]
    quadratic: φ(q)·φ(k_0) = 3,  φ(q)·φ(k_1) = 2 + 0.7358 = 2.7358
               o = (3·1 + 2.7358·3) / (3 + 2.7358) = 11.2073 / 5.7358 = 1.9539
    linear:    S = [1, 1]ᵀ·1 + [2, 0.3679]ᵀ·3 = [7, 2.1036]ᵀ;   z = [3, 1.3679]
               o = (1·7 + 2·2.1036) / (1·3 + 2·1.3679) = 11.2073 / 5.7358 = 1.9539
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # The causal (RNN) form with d = 64, d_v = 64: how many numbers does its state
    # (S_i and z_i together) hold, whatever N is? An integer.
    "state_size": ...,
    # N = 4096, d = d_v = 64: how many times more multiply-adds does the quadratic form
    # (φ(Q)φ(K)ᵀ, then times V) need than the linear form (φ(K)ᵀV, then φ(Q) times it)?
    # Count only those matrix products. A number.
    "flop_ratio": ...,
}


def elu_feature(x: np.ndarray) -> np.ndarray:
    """φ(x) = elu(x) + 1, elementwise, in x's dtype."""
    raise NotImplementedError("kata linear_attention: x + 1 where x > 0, exp(x) elsewhere")


def linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """o [..., N_q, d_v] = φ(q) S / (φ(q) z) with S = φ(k)ᵀ v, z = Σ_j φ(k_j); no N × N array."""
    raise NotImplementedError("kata linear_attention: φ(q) @ (φ(k)ᵀ @ v), normalised")


def causal_linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The causal form (N_q = N_k): o_i uses keys 0 … i through running sums S_i and z_i."""
    raise NotImplementedError("kata linear_attention: running sums of φ(k_j) v_jᵀ and φ(k_j)")
