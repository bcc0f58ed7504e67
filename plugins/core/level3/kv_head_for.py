"""Level 3 · kv_head_for: which KV head each query head reads (MHA, GQA, MQA)."""

from __future__ import annotations

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata_plugins.kvlab import kv_cache_bytes as lab_bytes

GiB = 2**30

HEAD_SETUPS = ((1, 1), (4, 4), (4, 2), (4, 1), (6, 3), (6, 2), (8, 2), (12, 4), (32, 8),
               (32, 16), (32, 1), (64, 8), (40, 5))


def _mapping(ns, n_q, n_kv):
    return [ns.kv_head_for(h, n_q, n_kv) for h in range(n_q)]


@check("maps every query head for MHA, GQA and MQA layouts (H_q up to 64)")
def head_mapping_matches(ctx):
    for n_q, n_kv in HEAD_SETUPS:
        ctx.expect_scenario(lambda ns: _mapping(ns, n_q, n_kv),
                            f"[kv_head_for(h, {n_q}, {n_kv}) for h in range({n_q})]")


@check("every KV head serves exactly H_q / H_kv consecutive query heads")
def heads_evenly_shared(ctx):
    for n_q, n_kv in HEAD_SETUPS:
        got = ctx.run(lambda: _mapping(ctx.target, n_q, n_kv), f"kv_head_for(·, {n_q}, {n_kv})")
        counts = [got.count(j) for j in range(n_kv)]
        if counts != [n_q // n_kv] * n_kv or got != sorted(got):
            ctx.fail(f"kv_head_for(h, {n_q}, {n_kv}) for h = 0..{n_q - 1} gave {got}: each of the "
                     f"{n_kv} KV heads must serve {n_q // n_kv} consecutive query heads")


@check("raises ValueError when n_kv_heads does not divide n_q_heads")
def head_mapping_rejects(ctx):
    fn = ctx.entry("kv_head_for")
    for args in ((0, 6, 4), (5, 32, 3), (1, 4, 8)):
        def attempt(args=args):
            try:
                return "returned", fn(*args)
            except ValueError:
                return "raised", None
            except NotImplementedError:
                raise
            except Exception as exc:  # the wrong kind of error is feedback, not a crash
                # raised in the worker: a type only the worker knows comes back as
                # RemoteError, its own name in learner_type
                return getattr(exc, "learner_type", type(exc).__name__), exc

        what = f"kv_head_for{args}"
        outcome, value = ctx.run(attempt, what)
        if outcome == "returned":
            ctx.fail(f"{what} returned {value!r}: {args[2]} KV heads cannot split {args[1]} query "
                     f"heads into equal groups, so it must raise ValueError",
                     misconception="no_divisibility_check")
        if outcome != "raised":
            ctx.fail(f"{what} raised {outcome} ({value}); expected ValueError, naming the "
                     f"head counts", misconception="no_divisibility_check")


def _modulo(q_head, n_q_heads, n_kv_heads):
    return q_head % n_kv_heads


def _by_kv_heads(q_head, n_q_heads, n_kv_heads):
    return q_head // n_kv_heads


def _unchecked(q_head, n_q_heads, n_kv_heads):
    return q_head // max(n_q_heads // n_kv_heads, 1)


KV_HEAD_FOR = Kata(
    id="kv_head_for", level=3, title="Which KV head does a query head read?",
    path="level3/kv_head_for.py", entries=("kv_head_for",),
    checks=(head_mapping_matches, heads_evenly_shared, head_mapping_rejects),
    predictions=(
        Prediction("head_13_of_32_to_8", "32 query heads share 8 KV heads: which KV head does query "
                   "head 13 read?", 3, kind="exact", why="Groups of 32 / 8 = 4: 13 // 4 = 3."),
        Prediction("gqa_over_mha", "H_q = 32, H_kv = 8, all else equal: GQA's KV cache as a "
                   "fraction of MHA's", 0.25, rel_tol=0.01,
                   why="Only H_kv changes in the cache formula: 8 / 32 = H_kv / H_q."),
        Prediction("llama70b_no_gqa_gib", "the Llama-3-70B-like model (80 layers, d=128, fp16, "
                   "131,072 tokens) without GQA, 64 KV heads instead of 8: the cache in GiB",
                   lab_bytes(1, 80, 131072, 64, 128) / GiB, rel_tol=0.01,
                   why="8× the 40 GiB of the 8-KV-head model: 320 GiB (344 GB) for one request."),
    ),
    misconceptions=(
        Misconception("modulo_interleaved", "used q_head % n_kv_heads (interleaved heads)",
                      {"kv_head_for": _modulo},
                      "Groups are consecutive: heads 0..G−1 share KV head 0, G..2G−1 share KV "
                      "head 1 (G = H_q / H_kv). That is q_head // G, not q_head % H_kv."),
        Misconception("divided_by_kv_heads", "divided by the number of KV heads instead of the "
                      "group size", {"kv_head_for": _by_kv_heads},
                      "Divide by the group size G = n_q_heads // n_kv_heads, the query heads per "
                      "KV head."),
        Misconception("no_divisibility_check", "accepted head counts that do not divide",
                      {"kv_head_for": _unchecked},
                      "With 6 query heads and 4 KV heads the groups cannot be equal: raise "
                      "ValueError instead of silently returning a head."),
    ),
    claims=(
        Claim("gqa-kv-ratio", "Each KV head serves H_q / H_kv consecutive query heads, so GQA "
              "keeps H_kv / H_q of MHA's KV cache.", scope="exact", source="ainslie-2023-gqa",
              evidence=("heads_evenly_shared", "head_mapping_matches"),
              not_claimed="Nothing about quality: fewer KV heads can cost accuracy (the paper "
                          "uptrains to recover it)."),
    ),
    hints=(
        "Group size first: G = n_q_heads // n_kv_heads query heads share each KV head.",
        "Query heads 0..G−1 read KV head 0, heads G..2G−1 read KV head 1, and so on.",
        "if n_q_heads % n_kv_heads: raise ValueError(...); return q_head // (n_q_heads // n_kv_heads)",
    ),
    generic_fakes=("zeros", "echo", "constant", "random"),  # integer inputs: nothing to mutate
)
