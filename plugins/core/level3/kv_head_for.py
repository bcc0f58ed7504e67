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
                     f"head counts", misconception="raised_wrong_error")


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


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): each probe returns the whole mapping for
# one head layout (or what a call raised), and its predicate names the mistake's family.
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, Raised, attach, attempt, check as _holds  # noqa: E402


def _map(n_q: int, n_kv: int) -> Any:
    return lambda ns: attempt(lambda: [ns.kv_head_for(h, n_q, n_kv) for h in range(n_q)])


def _call(*args: int) -> Any:
    return lambda ns: attempt(lambda: ns.kv_head_for(*args))


def _right(got: Any, n_q: int, n_kv: int) -> bool:
    return not isinstance(got, Raised) and list(got) == [h // (n_q // n_kv) for h in range(n_q)]


def _seq(g: Any) -> bool:
    return isinstance(g, list) and all(isinstance(x, (int, float)) for x in g)


def _float_division(q_head, n_q_heads, n_kv_heads):
    if n_q_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_q_heads={n_q_heads}")
    return q_head / (n_q_heads // n_kv_heads)


def _asserted(q_head, n_q_heads, n_kv_heads):
    assert n_q_heads % n_kv_heads == 0, "n_kv_heads must divide n_q_heads"
    return q_head // (n_q_heads // n_kv_heads)


def _by_ratio(q_head, n_q_heads, n_kv_heads):
    """Correct, written differently: h · H_kv // H_q is h // G when H_kv divides H_q."""
    if n_kv_heads < 1 or n_q_heads % n_kv_heads:
        raise ValueError("n_kv_heads must divide n_q_heads")
    return q_head * n_kv_heads // n_q_heads


KV_HEAD_FOR = attach(
    KV_HEAD_FOR,
    add=(
        # source: google-deepmind/gemma#643 and #668 (`kg / num_kv_heads`, true division,
        # in GQA reshapes); microsoft/Olive#1159 (a head size that came out a float)
        Misconception("float_division", "divided with / (a float head index) instead of //",
                      {"kv_head_for": _float_division},
                      "In Python 3, 13 / 4 is 3.25: a head index must be an integer. Use floor "
                      "division, q_head // G."),
        # source: huggingface/transformers#20463 and NVIDIA/TensorRT-LLM#17796 (review: an
        # `assert` on head divisibility vanishes under python -O; raise ValueError instead)
        Misconception("raised_wrong_error", "raised another exception than ValueError for head "
                      "counts that do not divide (an assert's AssertionError, say)",
                      {"kv_head_for": _asserted},
                      "An assert is for bugs in your own code and disappears under python -O; "
                      "bad arguments from a caller deserve a ValueError that names the counts."),
    ),
    probes={
        # source: apple/axlearn#842 (jnp.repeat vs tile order of KV heads);
        # HazyResearch/HipKittens#22 (a head mapping that used the wrong modulus)
        "modulo_interleaved": (
            Probe("H_q = 8, H_kv = 2: every query head's KV head", _map(8, 2),
                  _holds(lambda g, w: _seq(g) and g[0] != g[1] and set(g) == {0, 1}),
                  axes=("query head",)),
            Probe("H_q = 6, H_kv = 3: every query head's KV head", _map(6, 3),
                  _holds(lambda g, w: _seq(g) and g[:3] == [0, 1, 2] and g != sorted(g)),
                  axes=("query head",)),
        ),
        # source: PSAL-POSTECH/ONNXim#34 (`kv_head_idx = head_idx / _nkvh`: KV heads beyond
        # the last, or never read); rasbt/LLMs-from-scratch#922 (group size vs KV-head count)
        "divided_by_kv_heads": (
            Probe("H_q = 8, H_kv = 2 (G = 4 > H_kv): KV heads past the last one", _map(8, 2),
                  _holds(lambda g, w: _seq(g) and g == sorted(g) and max(g) > 1),
                  axes=("query head",)),
            Probe("H_q = 32, H_kv = 8 (G = 4 < H_kv): some KV heads never read", _map(32, 8),
                  _holds(lambda g, w: _seq(g) and g == sorted(g) and max(g) < 7 and g[0] == 0),
                  axes=("query head",)),
        ),
        # source: tenstorrent/polaris#412 and keras-team/keras#23081 (GQA without a
        # divisibility check silently produces the wrong number of heads)
        "no_divisibility_check": (
            Probe("H_q = 6, H_kv = 4 (no equal groups), after H_q = 8, H_kv = 2",
                  lambda ns: (_map(8, 2)(ns), _call(0, 6, 4)(ns)),
                  _holds(lambda g, w: _right(g[0], 8, 2) and not isinstance(g[1], Raised))),
            Probe("H_q = 32, H_kv = 3, after H_q = 12, H_kv = 4",
                  lambda ns: (_map(12, 4)(ns), _call(5, 32, 3)(ns)),
                  _holds(lambda g, w: _right(g[0], 12, 4) and not isinstance(g[1], Raised))),
        ),
        "float_division": (
            Probe("H_q = 32, H_kv = 8: query head 13", _call(13, 32, 8),
                  _holds(lambda g, w: isinstance(g, float) and g != int(g))),
            Probe("H_q = 4, H_kv = 2: every query head's KV head", _map(4, 2),
                  _holds(lambda g, w: _seq(g) and any(float(x) != int(x) for x in g))),
        ),
        "raised_wrong_error": (
            Probe("H_q = 6, H_kv = 4", _call(0, 6, 4),
                  _holds(lambda g, w: isinstance(g, Raised)
                         and g.type not in ("ValueError", "NotImplementedError"))),
            Probe("H_q = 32, H_kv = 3, after H_q = 8, H_kv = 2",
                  lambda ns: (_map(8, 2)(ns), _call(5, 32, 3)(ns)),
                  _holds(lambda g, w: _right(g[0], 8, 2) and isinstance(g[1], Raised)
                         and g[1].type not in ("ValueError", "NotImplementedError"))),
        ),
    },
    diagnostics=(Probe("H_q = 12, H_kv = 4: every query head's KV head", _map(12, 4),
                       axes=("query head",)),),
    variants=(Fake("by_ratio", {"kv_head_for": _by_ratio}),),
)
