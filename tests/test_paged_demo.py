"""The paged-KV demo command (``attnkata paged-demo``): the story it draws, and --target."""

from __future__ import annotations

import re
import shutil

import pytest

from attnkata import cli
from attnkata.manager import load_registry
from attnkata_plugins import paged_demo
from attnkata_plugins.core import ROOT


def run(capsys, *argv):
    code = cli.main(["--width", "100", "paged-demo", *argv])
    return code, capsys.readouterr().out


def panels(out: str) -> dict[str, str]:
    """Each step's panel text, by the number in its title."""
    parts = re.split(r"╭─ (\d)\. ", out)[1:]
    return dict(zip(parts[::2], parts[1::2]))


def table(panel: str, seq: str) -> list[str]:
    """A sequence's block table as drawn: entries like '3' or '3*' (shared)."""
    match = re.search(rf"{seq} → \[([^\]]*)\]", panel)
    assert match, f"no block table for {seq} in:\n{panel}"
    return match.group(1).split()


def test_the_hook_adds_the_command():
    pm, _ = load_registry()
    args = cli.build_parser(pm).parse_args(["paged-demo", "--block-size", "8"])
    assert args.func is paged_demo.run and args.block_size == 8


def test_reference_story_shares_then_copies_on_write(capsys):
    code, out = run(capsys)
    assert code == 0
    steps = panels(out)
    assert sorted(steps) == ["1", "2", "3", "4", "5"]
    # 1: a prompt of 10 tokens in blocks of 4 takes three blocks, none shared
    assert len(table(steps["1"], "s0")) == 3 and "0 shared" in steps["1"]
    # 2: the fork has the very same blocks, every one marked shared
    s0, s1 = table(steps["2"], "s0"), table(steps["2"], "s1")
    assert s0 == s1 and all(b.endswith("*") for b in s0)
    assert "3 of 8 blocks in use, 3 shared" in steps["2"]
    # 3: copy-on-write: s1's partly filled last block is a private copy; the full ones stay shared
    assert steps["3"].startswith("copy-on-write")
    s0, s1 = table(steps["3"], "s0"), table(steps["3"], "s1")
    assert s0[:2] == s1[:2] and all(b.endswith("*") for b in s0[:2])
    assert s0[2] != s1[2] and not s0[2].endswith("*") and not s1[2].endswith("*")
    assert "4 of 8 blocks in use, 2 shared" in steps["3"]
    # 4: s0 writes into its own last block: no new block
    assert table(steps["4"], "s0") == s0 and "4 of 8 blocks in use" in steps["4"]
    # 5: after freeing s0, s1 owns its blocks alone; s0's private block went back
    assert "s0 →" not in steps["5"] and "3 of 8 blocks in use, 0 shared" in steps["5"]
    assert table(steps["5"], "s1") == [b.rstrip("*") for b in s1]


def test_a_full_last_block_takes_a_new_block_instead_of_a_copy(capsys):
    code, out = run(capsys, "--prompt", "8")
    steps = panels(out)
    assert code == 0 and steps["3"].startswith("a new block") and "copy-on-write" not in out
    s0, s1 = table(steps["3"], "s0"), table(steps["3"], "s1")
    assert s1[:2] == s0 and len(s1) == 3


def test_target_draws_a_learners_cache_that_copies_on_fork(capsys, tmp_path):
    (tmp_path / "level6").mkdir()
    for name in ("block_allocator.py", "paged_kv_cache.py"):
        shutil.copy(ROOT / "solutions" / "level6" / name, tmp_path / "level6" / name)
    with open(tmp_path / "level6" / "paged_kv_cache.py", "a") as f:
        f.write('''

class CopyingFork(PagedKVCache):
    def fork(self, seq_id):
        child = self.add_sequence()
        for block in self._tables[seq_id]:
            copy = self.allocator.allocate()
            self.k_pages[copy] = self.k_pages[block]
            self._tables[child].append(copy)
        self._lens[child] = self._lens[seq_id]
        return child


PagedKVCache = CopyingFork
''')
    code, out = run(capsys, "--target", str(tmp_path))
    assert code == 0 and "PagedKVCache from" in out and tmp_path.name in out
    fork = panels(out)["2"]
    assert "6 of 8 blocks in use, 0 shared" in fork
    assert not set(table(fork, "s0")) & set(table(fork, "s1"))


def test_target_not_started_says_so(capsys):
    code, out = run(capsys, "--target", str(ROOT / "katas"))
    assert code == 1 and "not started: kata paged_kv_cache" in out


def test_target_that_raises_shows_the_learners_frame(capsys, tmp_path):
    (tmp_path / "level6").mkdir()
    (tmp_path / "level6" / "paged_kv_cache.py").write_text(
        "class PagedKVCache:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        self.tables = {}\n"
        "    def add_sequence(self):\n"
        "        return self.tables['missing']\n")
    code, out = run(capsys, "--target", str(tmp_path))
    assert code == 1 and "raised during the demo" in out
    assert "paged_kv_cache.py" in out and "KeyError" in out


@pytest.mark.parametrize("argv, message", [
    (("--target", "/no/such/folder"), "no level6/paged_kv_cache.py under"),
    (("--num-blocks", "3"), "--num-blocks >= 5"),
])
def test_bad_arguments_exit_2(capsys, argv, message):
    code, out = run(capsys, *argv)
    assert code == 2 and message in out


def test_a_learner_cache_runs_in_a_worker_not_in_this_process(tmp_path, capsys):
    """--target draws a learner's cache through its sandboxed worker: an os._exit there
    is reported, and this process (the test) carries on."""
    level6 = tmp_path / "level6"
    level6.mkdir()
    solutions = ROOT / "solutions" / "level6"
    for name in ("paged_kv_cache.py", "block_allocator.py"):
        shutil.copy(solutions / name, level6 / name)
    assert cli.main(["--width", "100", "paged-demo", "--target", str(tmp_path)]) == 0
    (level6 / "paged_kv_cache.py").write_text((level6 / "paged_kv_cache.py").read_text()
                                              + "\nimport os\nos._exit(3)\n")
    capsys.readouterr()
    assert cli.main(["--width", "100", "paged-demo", "--target", str(tmp_path)]) == 2
    assert "exited with status 3" in capsys.readouterr().out
