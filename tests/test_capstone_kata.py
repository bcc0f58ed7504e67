"""The capstone kata, serve_model: the reference equals the model, the row counter tells a
cached loop from a recomputing one, and learner-like variants of the mistakes (written
here, differently from the modelled ones) are named."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnkata.capstone.model import encode, rms_norm, rope  # noqa: E402
from attnkata.selfcheck import judge_variant, reference_for  # noqa: E402
from attnkata_plugins.core.level8 import serve_model as K  # noqa: E402


@pytest.fixture(scope="module")
def kata_ref():
    return reference_for("serve_model")


def _ns(fn):
    return type("NS", (), {"generate": staticmethod(fn)})


def test_reference_matches_the_model_in_float64(kata_ref):
    _, ref = kata_ref
    w, cfg = K.shipped("float64")
    prompt = encode("on monday ")
    tokens, logits = ref.generate(w, cfg, prompt, 12, temperature=0.9, seed=5)
    want_tokens, want_logits = K.model_run(w, cfg, prompt, 12, 0.9, 5)
    assert tokens == want_tokens
    assert torch.allclose(logits, want_logits, rtol=0, atol=1e-10)


def test_row_counter_separates_cache_from_recompute(kata_ref):
    _, ref = kata_ref
    w, cfg = K.shipped("float32")
    prompt = encode("on monday")[:K.ROWS_PROMPT]
    cached = K.rows_per_token(K.projected_rows(ref, w, cfg, prompt, K.ROWS_LENGTHS))
    fused = K.rows_per_token(K.projected_rows(_ns(K._fused_preallocated), w, cfg, prompt,
                                              K.ROWS_LENGTHS))
    again = K.rows_per_token(K.projected_rows(_ns(K._with("no_kv_cache")["generate"]), w, cfg,
                                              prompt, K.ROWS_LENGTHS))
    assert cached == pytest.approx([1.0, 1.0, 1.0])
    assert fused == pytest.approx([1.0, 1.0, 1.0])
    assert again == pytest.approx([12.5, 20.5, 32.5])


def test_probe_models_do_what_they_say():
    """v_zero: each step's logits depend on the token fed alone (the 'fed twice' probe needs
    the first new token to differ from the prompt's last); T = 0.3 and T = 1 draw apart."""
    w, cfg = K._probe_model("v_zero")
    tokens, _ = K.model_run(w, cfg, K.PROBE_PROMPT, 5)
    assert tokens[0] != K.PROBE_PROMPT[-1]
    w, cfg = K._probe_model("plain")
    cold, _ = K.model_run(w, cfg, K.PROBE_PROMPT, 6, 0.3, 3)
    warm, _ = K.model_run(w, cfg, K.PROBE_PROMPT, 6, 1.0, 3)
    assert cold != warm


# --- learner-like variants of the mistakes, written differently from the modelled ones ----


def _loop(weights, config, prompt, n, temperature, seed, *, positions, heads, feed, attend_self=True):
    """A learner's loop with hooks: positions(start, T, P) for RoPE, heads(K, G) for GQA,
    feed(prompt, tokens, step) for the token fed at a decode step."""
    C, H, H_kv = config["d_model"], config["n_heads"], config["n_kv_heads"]
    D, G, eps = C // H, H // H_kv, config["norm_eps"]
    rng = np.random.default_rng(seed)
    ks, vs = {}, {}

    def run(chunk, start):
        T = len(chunk)
        x = torch.stack([weights["embed"][t] for t in chunk])
        for i in range(config["n_layers"]):
            p = f"blocks.{i}."
            h = rms_norm(x, weights[p + "attn_norm"], eps)
            q = torch.nn.functional.linear(h, weights[p + "wq.weight"]).reshape(T, H, D).permute(1, 0, 2)
            k = torch.nn.functional.linear(h, weights[p + "wk.weight"]).reshape(T, H_kv, D).permute(1, 0, 2)
            v = torch.nn.functional.linear(h, weights[p + "wv.weight"]).reshape(T, H_kv, D).permute(1, 0, 2)
            at = positions(start, T, len(prompt))
            q, k = rope(q, at, config["rope_base"]), rope(k, at, config["rope_base"])
            old_k, old_v = ks.get(i), vs.get(i)
            ks[i] = k if old_k is None else torch.cat([old_k, k], 1)
            vs[i] = v if old_v is None else torch.cat([old_v, v], 1)
            kk, vv = (ks[i], vs[i]) if attend_self or old_k is None else (old_k, old_v)
            kk, vv = heads(kk, G), heads(vv, G)
            s = torch.einsum("htd,hld->htl", q, kk) / math.sqrt(D)
            L = kk.shape[1]
            if T > 1:
                s = s + torch.triu(torch.full((T, L), float("-inf")), diagonal=L - T + 1)
            o = torch.einsum("htl,hld->htd", s.softmax(-1), vv)
            x = x + torch.nn.functional.linear(o.permute(1, 0, 2).reshape(T, C), weights[p + "wo.weight"])
            hm = rms_norm(x, weights[p + "mlp_norm"], eps)
            up = torch.nn.functional.linear(hm, weights[p + "w_up.weight"])
            gate = torch.nn.functional.linear(hm, weights[p + "w_gate.weight"])
            x = x + torch.nn.functional.linear(torch.nn.functional.silu(gate) * up, weights[p + "w_down.weight"])
        return rms_norm(x[-1], weights["final_norm"], eps) @ weights["embed"].T

    tokens, rows = [], []
    z = run(list(prompt), 0)
    for step in range(n):
        tokens.append(K.draw(z, temperature, rng))
        rows.append(z)
        if step + 1 < n:
            z = run([feed(prompt, tokens, step)], len(prompt) + step)
    return tokens, torch.stack(rows)


def _right_positions(start, T, P):
    return torch.arange(start, start + T)


def _grouped(x, G):
    return x[:, None].expand(x.shape[0], G, *x.shape[1:]).reshape(-1, *x.shape[1:])


def _right_feed(prompt, tokens, step):
    return tokens[-1]


def _variant(**kw):
    opts = {"positions": _right_positions, "heads": _grouped, "feed": _right_feed, **kw}

    def generate(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0):
        return _loop(weights, config, prompt, max_new_tokens, temperature, seed, **opts)

    return {"generate": generate}


VARIANTS = {
    # decode positions counted from the first generated token (0, 1, 2, …), not from P
    "rope_positions_restart": _variant(
        positions=lambda start, T, P: torch.arange(start, start + T) - (P if start >= P else 0)),
    # KV heads tiled with torch.tile
    "gqa_head_modulo": _variant(heads=lambda x, G: torch.tile(x, (G, 1, 1))),
    # the step feeds the sequence's last token before the newly chosen one is appended
    "last_prompt_token_twice": _variant(feed=lambda prompt, tokens, step: (list(prompt) + tokens[:-1])[-1]),
    # the step attends over what was cached before it
    "append_after_attention": _variant(attend_self=False),
}


def test_a_correct_variant_written_here_passes(kata_ref):
    kata, ref = kata_ref
    verdict = judge_variant(kata, ref, _variant(), max_examples=4)
    assert not verdict.caught, verdict.messages[:1]


@pytest.mark.parametrize("mistake", sorted(VARIANTS))
def test_variants_of_mistakes_are_named(kata_ref, mistake):
    kata, ref = kata_ref
    verdict = judge_variant(kata, ref, VARIANTS[mistake], max_examples=4,
                            checks=("shipped_model_greedy",))
    assert verdict.names(mistake), verdict.messages[:1]
