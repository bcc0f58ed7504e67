"""lsh_buckets — angular LSH, sorted chunks and multi-round recall (Kitaev et al. 2020)."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes

from .common import call_shaped, softmax_rows

ROUNDS = (1, 2, 4, 8)


def toy(seed: int = 0, n: int = 256, d: int = 16, clusters: int = 16) -> np.ndarray:
    """Tokens around 16 random directions: each token's best key is usually in its cluster."""
    r = np.random.default_rng(seed)
    c = r.standard_normal((clusters, d))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return c[r.integers(0, clusters, n)] * 2 + r.standard_normal((n, d)) * 0.35


@st.composite
def _case(draw):
    n, d, half, rounds = draw(sizes(1, 23)), draw(sizes(1, 8)), draw(sizes(1, 4)), draw(sizes(1, 3))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(seeds())
    return (filled((n, d), dtype, 1.0, seed), filled((rounds, d, half), dtype, 1.0, seed + 1),
            draw(st.sampled_from((1, 2, 3, 4, 8))), filled((n, draw(sizes(1, 4))), dtype, 1.0, seed + 2))


@check("lsh_hash, lsh_candidates and lsh_attention match the reference on random sizes, rounds "
       "and chunks")
def lsh_match(ctx):
    @ctx.given(case=_case())
    def prop(case):
        x, rot, chunk, v = case
        ctx.expect("lsh_hash", x, rot)
        ctx.expect("lsh_candidates", x, rot, chunk)
        ctx.expect("lsh_attention", x, v, rot, chunk)

    prop()


@check("the worked example of the stub")
def lsh_worked_example(ctx):
    x = np.array([[1.0, 0.0], [-1.0, 0.5], [0.5, 1.0], [-2.0, -1.0]])
    rot = np.array([[[1.0], [0.0]]])
    ctx.expect("lsh_hash", x, rot)
    ctx.expect("lsh_candidates", x, rot, 2)


@check("top_key_recall matches the reference on toy candidates")
def lsh_recall_match(ctx):
    x = toy(3, n=64)
    rng = np.random.default_rng(3)
    for p in (0.1, 0.5, 0.9):
        cand = rng.random((64, 64)) < p
        np.fill_diagonal(cand, True)
        ctx.expect("top_key_recall", x, cand)


@check("buckets are angular: scaling x by a positive factor changes none")
def lsh_scale_invariant(ctx):
    x = ctx.rng.standard_normal((20, 6))
    rot = ctx.rng.standard_normal((3, 6, 4))
    base = call_shaped(ctx, "lsh_hash", x, rot)
    ctx.match(call_shaped(ctx, "lsh_hash", x * 7.5, rot), base, "lsh_hash(7.5·x) versus lsh_hash(x)",
              rerun=lambda ns: ns.lsh_hash(x * 7.5, rot.copy()))


@check(f"toy: recall of each token's best key never falls as rounds are added ({', '.join(map(str, ROUNDS))} "
       f"rounds; 256 tokens in 16 clusters, d = 16, 16 buckets, chunk 16) and 8 rounds beat 1")
def lsh_recall_grows(ctx):
    x = toy()
    rot = np.random.default_rng(1).standard_normal((max(ROUNDS), 16, 8))
    recalls, fractions = [], []
    for r in ROUNDS:
        cand = np.asarray(call_shaped(ctx, "lsh_candidates", x, rot[:r], 16), dtype=bool)
        fractions.append(float(cand.mean()))
        recalls.append(float(call_shaped(ctx, "top_key_recall", x, cand)))
    figures = ", ".join(f"{r} round(s): recall {rc:.3f}, pairs scored {f:.1%}"
                        for r, rc, f in zip(ROUNDS, recalls, fractions))
    ctx.record(figures)
    if any(b < a - 1e-12 for a, b in zip(recalls, recalls[1:])) or recalls[-1] <= recalls[0]:
        ctx.expect("lsh_candidates", x, rot[:2], 16)     # names a misconception if one fits
        ctx.fail(f"recall should never fall as rounds are added, and 8 rounds should find more "
                 f"than 1 ({figures}): a pair found in any round is a candidate.")


# --- misconceptions ------------------------------------------------------------

def _hash(x, rotations, negate=True):
    proj = np.einsum("nd,rdh->rnh", x, rotations)
    return np.argmax(np.concatenate([proj, -proj], axis=-1) if negate else proj, axis=-1).astype(np.int64)


def _candidates(x, rotations, chunk, *, negate=True, lookback=True, bucket=True, combine="or"):
    n = x.shape[0]
    allowed = np.zeros((n, n), dtype=bool) if combine == "or" else np.ones((n, n), dtype=bool)
    for h in _hash(x, rotations, negate):
        order = np.argsort(h, kind="stable")
        chunk_of = np.empty(n, dtype=np.int64)
        chunk_of[order] = np.arange(n) // chunk
        back = chunk_of[:, None] - chunk_of[None, :]
        near = (back == 0) | (back == 1) if lookback else back == 0
        this = near & (h[:, None] == h[None, :]) if bucket else near
        allowed = allowed | this if combine == "or" else allowed & this
    return allowed


def _attention(cands, scale=True):
    def attention(x, v, rotations, chunk):
        s = x @ x.T / (math.sqrt(x.shape[-1]) if scale else 1.0)
        return (softmax_rows(np.where(cands(x, rotations, chunk), s, -np.inf)) @ v).astype(x.dtype)

    return attention


def _variant(**kw):
    cands = (lambda x, r, c: _candidates(x, r, c, **kw))
    out = {"lsh_candidates": cands, "lsh_attention": _attention(cands)}
    if "negate" in kw:
        out["lsh_hash"] = lambda x, r: _hash(x, r, negate=False)
    return out


def _recall_with_self(x, candidates):
    best = np.argmax(x @ x.T, axis=-1)
    return float(np.mean(candidates[np.arange(x.shape[0]), best]))


MISCONCEPTIONS = (
    # source: kitaev-2020 §3 — h(x) = argmax([xR; −xR]) gives b buckets from b/2 rotations.
    Misconception("hash_without_negation", "took argmax(xR) without the −xR half", _variant(negate=False),
                  "[xR ; −xR] doubles the buckets: a vector pointing AGAINST an axis gets its own "
                  "bucket instead of joining another."),
    # source: kitaev-2020 §3 — each chunk attends within itself and to the previous chunk.
    Misconception("no_lookback", "attended within the own chunk only", _variant(lookback=False),
                  "A bucket can straddle a chunk boundary; looking one chunk back keeps its members "
                  "in touch."),
    # source: kitaev-2020 §3 — attention is restricted to the same bucket; chunks only batch it.
    Misconception("ignored_buckets", "attended to the whole chunk, whatever the bucket",
                  _variant(bucket=False),
                  "Chunks are for batching; within them a token may attend only to tokens of its "
                  "own bucket."),
    # source: kitaev-2020 §3 (multi-round LSH) — rounds are combined as a union: P_i = ∪_r P_i^(r).
    Misconception("rounds_intersected", "kept only pairs EVERY round found", _variant(combine="and"),
                  "More rounds should find more neighbours: a pair counts if ANY round puts it "
                  "together (a union)."),
    # source: kitaev-2020 — the point of recall is finding the best OTHER key; a token is always
    # its own candidate.
    Misconception("recall_counts_self", "let a token's best key be itself",
                  {"top_key_recall": _recall_with_self},
                  "x_i·x_i is often the largest score, and the token always sees itself: exclude "
                  "j = i (fill the diagonal with −inf) before the argmax."),
    # source: vaswani-2017 §3.2.1 — scaled dot-product scores.
    Misconception("forgot_scale", "forgot the 1/√d in lsh_attention",
                  {"lsh_attention": _attention(_candidates, scale=False)},
                  "The scores are x_i·x_j/√d, as in dense attention."),
)

LSH_BUCKETS = Kata(
    id="lsh_buckets",
    level=22,
    title="LSH attention (Reformer): hash, sort, chunk, and recall across rounds",
    path="history/lsh_buckets.py",
    entries=("lsh_hash", "lsh_candidates", "lsh_attention", "top_key_recall"),
    checks=(lsh_match, lsh_worked_example, lsh_recall_match, lsh_scale_invariant, lsh_recall_grows),
    predictions=(
        Prediction("recall_four_rounds", "recall after 4 independent rounds if one finds the best "
                   "key half the time", 0.9375, rel_tol=0.01,
                   why="Missed by all 4 with probability 0.5⁴ = 1/16: recall 15/16 = 0.9375. Real "
                       "rounds are not quite independent of each other's chunking."),
        Prediction("scaled_changes_bucket", "does multiplying x by 10 change any bucket? "
                   "(choose: yes, no)", "no", kind="choice", choices=("yes", "no"),
                   why="Every projection scales by 10, so the argmax stays: the hash sees only the "
                       "direction (angular LSH)."),
    ),
    misconceptions=MISCONCEPTIONS,
    claims=(
        Claim("lsh-recall-rounds", "Toy, measured (NumPy, seeded): 256 tokens in 16 clusters, d = "
              "16, 16 buckets, chunks of 16: the share of tokens whose best other key is a candidate "
              "is 0.33, 0.50, 0.76, 0.89 with 1, 2, 4, 8 hash rounds, while the pairs scored grow "
              "from 6% to 32% of N².", scope="toy", source="kitaev-2020",
              evidence=("lsh_recall_grows",),
              not_claimed="Anything about trained Reformers, long sequences or speed; real data "
                          "is not clustered like this toy."),
        Claim("lsh-angular", "The hash depends only on direction: scaling a vector by a positive "
              "factor never changes its buckets.", scope="exact",
              source="kitaev-2020", evidence=("lsh_scale_invariant",),
              not_claimed="A bound on the probability that near neighbours collide."),
    ),
    hints=(
        "lsh_hash: proj = np.einsum('nd,rdh->rnh', x, rotations); argmax over "
        "np.concatenate([proj, -proj], axis=-1).",
        "lsh_candidates, per round: order = np.argsort(h, kind='stable'); chunk_of[order] = "
        "np.arange(n) // chunk; allowed |= same bucket & (chunk_of[i] − chunk_of[j] in {0, 1}).",
        "lsh_attention: dense scores masked with np.where(candidates, s, -np.inf) are fine here "
        "(the kata checks which pairs, not the cost). top_key_recall: np.fill_diagonal(s, -np.inf), "
        "argmax, then candidates[np.arange(n), best].mean().",
    ),
)
