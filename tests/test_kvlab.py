"""The KV memory lab command (``attnkata kv``): arithmetic, table, predict-first prompt."""

from __future__ import annotations

import argparse
import re

import pytest

from attnkata_plugins import kvlab

GiB, KiB = 2**30, 2**10


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="attnkata")
    kvlab.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["kv", *argv])


LLAMA = ("--layers", "80", "--kv-heads", "8", "--q-heads", "64", "--head-dim", "128",
         "--tokens", "131072", "--batch", "1")


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture
def terminal(monkeypatch):
    """Pretend stdin is a terminal, so the command asks for a prediction."""
    monkeypatch.setattr(kvlab, "stdin_is_terminal", lambda: True)


def answer(monkeypatch, text):
    prompts = []

    def fake_input(prompt=""):
        prompts.append(prompt)
        if isinstance(text, BaseException):
            raise text
        return text

    monkeypatch.setattr("builtins.input", fake_input)
    return prompts


# -- the arithmetic -----------------------------------------------------------------

def test_seed_lab_numbers():
    assert kvlab.kv_cache_bytes(4, 32, 32768, 32, 128, 2) == 68_719_476_736   # 68.7 GB, 64 GiB
    assert kvlab.kv_cache_bytes(4, 32, 32768, 1, 128) == 2_147_483_648         # MQA: 2.1 GB


def test_llama_like_numbers_in_binary_units():
    assert kvlab.kv_cache_bytes(1, 80, 1, 8, 128) == 320 * KiB
    assert kvlab.kv_cache_bytes(1, 80, 131072, 8, 128) == 40 * GiB
    assert kvlab.kv_cache_bytes(1, 80, 131072, 64, 128) == 320 * GiB


def test_per_layer_gqa_example():
    mib = 2**20
    assert kvlab.kv_cache_bytes(1, 1, 4000, 32, 128) / mib == 62.5
    assert kvlab.kv_cache_bytes(1, 1, 4000, 8, 128) / mib == 15.625
    assert kvlab.kv_cache_bytes(1, 1, 4000, 16, 128) / mib == 31.25


def test_lab_rows_are_mha_gqa_mqa_with_ratio_h_kv_over_h_q():
    rows = kvlab.lab_rows(1, 80, 131072, 64, 8, 128)
    assert [r.scheme for r in rows] == ["MHA", "GQA", "MQA"]
    assert [r.kv_heads for r in rows] == [64, 8, 1]
    assert [r.ratio for r in rows] == [1.0, 0.125, 1 / 64]
    assert rows[1].per_token == 320 * KiB and rows[1].total == 40 * GiB


def test_doubling_tokens_doubles_the_cache():
    assert kvlab.kv_cache_bytes(2, 4, 2000, 8, 64) == 2 * kvlab.kv_cache_bytes(2, 4, 1000, 8, 64)


@pytest.mark.parametrize("text, value", [("0.125", 0.125), ("1/8", 0.125), ("12.5%", 0.125),
                                         (" 1/4 ", 0.25), ("abc", None), ("1/0", None)])
def test_parse_ratio(text, value):
    assert kvlab.parse_ratio(text) == value


def test_human_bytes_says_both_units():
    assert kvlab.human_bytes(40 * GiB) == "40 GiB (42.9 GB)"
    assert kvlab.human_bytes(320 * KiB) == "320 KiB (328 kB)"
    assert kvlab.human_bytes(512) == "512 B"


# -- the command ----------------------------------------------------------------------

def test_table_side_by_side(capsys, wide):
    assert kvlab.run(parse(*LLAMA, "--no-predict")) == 0
    out = capsys.readouterr().out
    for line, cells in (("MHA", ("64", "2.5 MiB", "320 GiB (344 GB)", "1×")),
                        ("GQA", ("8", "320 KiB", "40 GiB (42.9 GB)", "1/8 = 0.125×")),
                        ("MQA", ("1", "40 KiB", "5 GiB", "1/64"))):
        row = next(r for r in out.splitlines() if re.search(rf"\b{line}\b", r) and "GiB" in r)
        assert all(c in row for c in cells), (row, cells)
    assert "B · N_layers · T · H_kv · d_head · 2 · bytes" in out
    assert "\x1b[" not in out  # plain text when not a terminal


def test_defaults_are_the_seed_lab(capsys, wide):
    args = parse("--no-predict")
    assert (args.batch, args.tokens, args.layers, args.q_heads, args.head_dim, args.bytes_per_elem) \
        == (4, 32768, 32, 32, 128, 2)
    kvlab.run(args)
    assert "68.7 GB" in capsys.readouterr().out


def test_no_prompt_when_stdin_is_not_a_terminal(capsys, monkeypatch, wide):
    monkeypatch.setattr(kvlab, "stdin_is_terminal", lambda: False)
    prompts = answer(monkeypatch, "0.5")
    assert kvlab.run(parse(*LLAMA)) == 0
    assert prompts == []
    assert "prediction" not in capsys.readouterr().out.lower()


def test_right_prediction(capsys, monkeypatch, terminal, wide):
    prompts = answer(monkeypatch, "1/8")
    assert kvlab.run(parse(*LLAMA)) == 0
    out = capsys.readouterr().out
    assert len(prompts) == 1
    assert out.index("Predict first") < out.index("MHA")  # asked before the table is shown
    assert "Your prediction 0.125: right" in out
    assert "8/64 = 0.125" in out


def test_wrong_prediction(capsys, monkeypatch, terminal, wide):
    answer(monkeypatch, "0.5")
    kvlab.run(parse(*LLAMA))
    out = capsys.readouterr().out
    assert "Your prediction 0.5: not quite" in out and "0.125" in out


@pytest.mark.parametrize("reply, says", [("", "No prediction recorded"),
                                         ("lots", "Could not read 'lots'"),
                                         (EOFError(), "No prediction recorded")])
def test_unreadable_prediction_still_shows_the_table(capsys, monkeypatch, terminal, wide, reply, says):
    answer(monkeypatch, reply)
    assert kvlab.run(parse(*LLAMA)) == 0
    out = capsys.readouterr().out
    assert says in out and "GQA" in out and "Your prediction" not in out


def test_no_predict_skips_the_prompt_on_a_terminal(capsys, monkeypatch, terminal, wide):
    prompts = answer(monkeypatch, "1/8")
    kvlab.run(parse(*LLAMA, "--no-predict"))
    assert prompts == []


@pytest.mark.parametrize("argv, says", [(("--kv-heads", "3"), "--kv-heads 3 must divide --q-heads 32"),
                                        (("--tokens", "0"), "--tokens must be at least 1"),
                                        (("--bytes", "0"), "--bytes must be at least 1")])
def test_impossible_settings_exit_2(capsys, wide, argv, says):
    assert kvlab.run(parse(*argv, "--no-predict")) == 2
    captured = capsys.readouterr()
    assert says in captured.err and captured.out == ""


COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m")


@pytest.mark.parametrize("no_color", [False, True])
def test_colour_on_a_terminal_unless_no_color(capsys, monkeypatch, wide, no_color):
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, as far as rich can tell
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    kvlab.run(parse("--no-predict"))
    assert bool(COLOUR.search(capsys.readouterr().out)) is not no_color


def test_registered_through_the_cli_hook():
    from attnkata.manager import get_plugin_manager

    pm, problems = get_plugin_manager(entrypoints=False)
    assert not [p for p in problems if "kvlab" in p.plugin]
    parser = argparse.ArgumentParser(prog="attnkata")
    sub = parser.add_subparsers(dest="command")
    pm.hook.attnkata_cli_commands(subparsers=sub)
    args = parser.parse_args(["kv", *LLAMA, "--bytes", "1"])
    assert args.func is kvlab.run and args.bytes_per_elem == 1 and args.no_predict is False
