"""The capstone: the shipped tiny model, and ``attnkata serve`` with katas wired in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from attnkata.capstone import corpus  # noqa: E402
from attnkata.capstone.model import CARD, WEIGHTS, card, load  # noqa: E402
from attnkata.capstone.train import evaluate, tensors  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VAL_TOLERANCE = 2e-3   # nats/byte: another CPU or BLAS rounds differently, not more


def serve(capsys, root: Path, *args: str) -> tuple[int, str]:
    """``attnkata serve ARGS`` in a course at ``root`` (its own, empty, saved results)."""
    from attnkata.cli import main

    code = main(["--width", "80", "--root", str(root), "serve", *args])
    return code, capsys.readouterr().out


def serve_json(capsys, root: Path, *args: str) -> tuple[int, dict]:
    code, out = serve(capsys, root, "--json", *args)
    return code, json.loads(out)


# ---------------------------------------------------------------------------
# The shipped model
# ---------------------------------------------------------------------------

def test_shipped_weights_load_through_safetensors_and_reach_the_recorded_loss():
    from safetensors import safe_open

    assert WEIGHTS.stat().st_size <= 2 * 2**20
    with safe_open(str(WEIGHTS), framework="pt") as f:  # a real safetensors file, no pickle
        names = set(f.keys())
    model = load()
    assert names == set(model.state_dict())
    info = card()
    _, val_text = corpus.split(corpus.load())
    losses = evaluate(model, tensors(val_text))
    assert losses["target"] == pytest.approx(info["val_loss"], abs=VAL_TOLERANCE)
    assert losses["draft"] == pytest.approx(info["val_loss_draft"], abs=VAL_TOLERANCE)
    assert losses["target"] < losses["draft"] < 1.0 < 5.545   # well below uniform bytes: ln 256
    assert {"torch", "python", "threads"} <= set(info["environment"])


def test_the_corpus_is_regenerated_byte_for_byte_and_the_split_is_held_out():
    text = corpus.load()
    assert corpus.generate() == text
    train, val = corpus.split(text)
    assert train + val == text and train.endswith("\n")
    assert 0.08 < len(val) / len(text) < 0.12
    assert len(text.encode()) <= 300_000 and text.isascii()


def test_the_card_names_the_corpus_licence_and_a_loss_for_the_draft():
    info = json.loads(CARD.read_text())
    assert "CC0" in info["corpus"]["licence"]
    assert info["config"]["n_kv_heads"] < info["config"]["n_heads"]   # grouped-query attention


# ---------------------------------------------------------------------------
# attnkata serve
# ---------------------------------------------------------------------------

def test_serve_32_tokens_with_the_references_in_workers(capsys, tmp_path):
    code, report = serve_json(capsys, tmp_path, "--target", "solutions",
                              "--max-new-tokens", "32")
    assert code == 0, report
    assert report["ok"] and report["divergence"] is None and report["culprit"] is None
    assert report["tokens"] == 32 and len(report["text"].encode()) == 32
    ran = {row["kata"]: row for row in report["wiring"]}
    for kata in ("rope", "causal_mask", "attention", "gqa_attention", "kv_cache", "decode_step",
                 "paged_kv_cache", "paged_attention_decode", "next_token_probs", "sample_next"):
        assert ran[kata]["source"] == "solutions" and ran[kata]["calls"] > 0, ran[kata]
    spec = report["speculative"]
    assert 0 < spec["proposed"] and 0 <= spec["accepted"] <= spec["proposed"]
    kv = report["kv_bytes"]
    assert kv["contiguous"] <= kv["paged"] <= kv["reserved_context"]
    assert kv["contiguous_int8"] < kv["contiguous"] / 3
    assert report["measured"]["tokens_per_s"] > 0 and report["measured"]["environment"]["torch"]

    # the same run with every kata the in-process reference: the very same tokens
    code, alone = serve_json(capsys, tmp_path, "--target", "katas",
                             "--max-new-tokens", "32")
    assert code == 0 and alone["text"] == report["text"]
    assert all(row["source"] == "reference" for row in alone["wiring"])
    assert any("no saved results" in note for note in alone["notes"])


def wrong_attention(tmp_path: Path) -> Path:
    """A learner folder: every reference, but attention forgets to divide by √d."""
    folder = tmp_path / "learner"
    shutil.copytree(REPO / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "level1" / "attention.py"
    text = path.read_text()
    scaled = "s = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(d)"
    assert scaled in text
    path.write_text(text.replace(scaled, "s = (q @ np.swapaxes(k, -1, -2))"))
    return folder


def test_a_wrong_attention_is_named_with_the_first_diverging_step(capsys, tmp_path):
    folder = wrong_attention(tmp_path)
    code, report = serve_json(capsys, tmp_path, "--target", str(folder),
                              "--use", "all", "--max-new-tokens", "32")
    assert code == 1 and not report["ok"]
    assert report["divergence"]["step"] == 0 and report["divergence"]["model"] == "draft"
    assert report["culprit"]["kata"] == "attention" and report["culprit"]["step"] == 0
    assert report["culprit"]["file"] == "level1/attention.py"
    others = [r for r in report["wiring"] if r["kata"] != "attention" and r["mismatch"]]
    assert others == []
    # and in words, at 80 columns
    code, out = serve(capsys, tmp_path, "--target", str(folder), "--use",
                      "attention", "--max-new-tokens", "8")
    assert code == 1
    flat = " ".join(out.split())
    assert "step 0 is the first whose logits diverge" in flat
    assert "responsible: attention (level1/attention.py)" in flat
    assert max(len(line) for line in out.splitlines()) <= 80


def test_katas_ready_in_the_saved_results_are_the_learners(project, capsys):
    project.solution("level1/rope.py")
    project.solution("level2/next_token_probs.py")
    project.write("level2/sample_next.py", "def sample_next(logits, rng, temperature=1.0, "
                  "top_k=None, top_p=None):\n    raise NotImplementedError('sample_next')\n")
    project.run("katas/level1/rope.py", "katas/level2")   # saves which katas are ready
    capsys.readouterr()
    code, report = serve_json(capsys, project.root, "--max-new-tokens", "6", "--gamma", "2")
    assert code == 0 and report["ok"]
    ran = {row["kata"]: row for row in report["wiring"]}
    assert ran["rope"]["source"] == "yours" and ran["rope"]["calls"] > 0
    assert ran["next_token_probs"]["source"] == "yours"
    assert ran["sample_next"]["source"] == "reference"          # not ready: never wired
    assert ran["gqa_attention"]["why"] == "not ready yet"


def test_stubs_fall_back_to_the_reference_and_say_so(capsys, tmp_path):
    folder = tmp_path / "stubs"
    shutil.copytree(REPO / "katas", folder, ignore=shutil.ignore_patterns("__pycache__"))
    code, report = serve_json(capsys, tmp_path, "--target", str(folder),
                              "--use", "rope,attention,sample_next", "--max-new-tokens", "4",
                              "--gamma", "2")
    assert code == 0 and report["ok"]
    ran = {row["kata"]: row for row in report["wiring"]}
    for kata in ("rope", "attention", "sample_next"):
        assert ran[kata]["source"] == "reference" and "not started" in ran[kata]["why"]


def test_a_kata_answering_the_wrong_shape_is_named_and_the_run_goes_on(capsys, tmp_path):
    folder = tmp_path / "learner"
    (folder / "level1").mkdir(parents=True)
    (folder / "level1" / "rope.py").write_text(
        "def rope(x, positions, base=10000.0):\n    return x[..., :-1]\n")
    code, report = serve_json(capsys, tmp_path, "--target", str(folder), "--use", "rope",
                              "--max-new-tokens", "4", "--gamma", "1")
    assert code == 1 and report["tokens"] == 4 and report["divergence"] is None
    assert report["culprit"]["kata"] == "rope" and report["culprit"]["step"] == 0
    assert "returned shape (4, 58, 31) where the reference returns shape (4, 58, 32)" in \
        report["culprit"]["what"]   # q: 4 heads, the 58-byte default prompt, d = 32


def test_a_cache_that_raises_stops_the_run_with_its_own_traceback(capsys, tmp_path):
    folder = tmp_path / "learner"
    (folder / "level6").mkdir(parents=True)
    for name in ("paged_kv_cache.py", "block_allocator.py"):
        shutil.copy(REPO / "solutions" / "level6" / name, folder / "level6" / name)
    path = folder / "level6" / "paged_kv_cache.py"
    text = path.read_text()
    fork = "    def fork(self, seq_id: int) -> int:\n"
    assert fork in text
    path.write_text(text.replace(fork, fork + "        raise ValueError('no forks today')\n"))
    code, report = serve_json(capsys, tmp_path, "--target", str(folder), "--use",
                              "paged_kv_cache", "--max-new-tokens", "8")
    assert code == 1 and "no forks today" in report["failed"]
    culprit = report["culprit"]
    assert culprit["kata"] == "paged_kv_cache" and culprit["step"] == 1   # the first verification
    assert "paged_kv_cache.py" in culprit["traceback"] and "in fork" in culprit["traceback"]


def test_serve_refuses_a_prompt_past_the_context(capsys, tmp_path):
    from attnkata.cli import main

    code = main(["--root", str(tmp_path), "serve", "--prompt", "x" * 120, "--max-new-tokens", "32"])
    assert code == 2
    assert "context of 128" in capsys.readouterr().err


def test_serve_wires_katas_ready_in_an_earlier_run_like_the_report(tmp_path, monkeypatch):
    """QA F11: the report shows `ready (earlier run)`; serve must not call it not ready."""
    from attnkata.capstone.wiring import ready_katas
    from attnkata.ladder import KataRow, Ladder
    from attnkata.state import results

    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path / "state"))
    rows = [KataRow("sample_next", 2, "t", "core", "ready", stale=True),
            KataRow("rope", 1, "t", "core", "ready"),
            KataRow("softmax", 0, "t", "core", "failing", stale=True)]
    ladder = Ladder("katas", {0: "a", 1: "b", 2: "c"}, rows)
    results(tmp_path).update(lambda d: d.setdefault("runs", {}).update(katas=ladder.to_json()))
    assert ready_katas(tmp_path, "katas") == ({"sample_next", "rope"}, True)
