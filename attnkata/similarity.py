"""Which submissions look copied: token fingerprints with winnowing, as MOSS does.

Each kata file is tokenized, identifiers, numbers and strings are normalised (renaming
a variable changes nothing), comments and the ``PREDICTIONS`` block are dropped (every
right answer looks the same), and every run of ``K`` tokens is hashed.  Winnowing keeps
the smallest hash of each window of ``W`` consecutive hashes, so any shared stretch of at
least ``K + W - 1`` tokens is guaranteed to leave a shared fingerprint.  Fingerprints
that also occur in the kata's stub (the code every student was given) are ignored.

Fingerprints found in more than a quarter of the class's files are common knowledge,
not evidence, and are dropped too.  Two files match when they share at least ``MIN_SHARED`` fingerprints and those cover at
least ``THRESHOLD`` of the smaller file's; the report names the matching lines.
"""

from __future__ import annotations

import io
import tokenize
import zlib
from dataclasses import dataclass, field
from pathlib import Path

K, W = 6, 4
THRESHOLD = 0.8
MIN_SHARED = 10


@dataclass
class Prints:
    """A file's fingerprints: hash -> the source lines it covers."""

    hashes: dict[int, tuple[int, int]] = field(default_factory=dict)


def tokens(source: str) -> list[tuple[str, int]]:
    """Normalised tokens with their line numbers; comments and PREDICTIONS dropped."""
    out: list[tuple[str, int]] = []
    skip_depth, skipping = 0, False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kind, text, line = tok.type, tok.string, tok.start[0]
            if kind in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if kind == tokenize.NAME and text == "PREDICTIONS":  # every right answer is alike
                skipping = True
            if skipping:
                if text in "([{" and kind == tokenize.OP:
                    skip_depth += 1
                elif text in ")]}" and kind == tokenize.OP:
                    skip_depth -= 1
                    if skip_depth == 0:
                        skipping = False
                continue
            if kind == tokenize.NAME:
                norm = text if text in _KEEP else "V"
            elif kind == tokenize.NUMBER:
                norm = "N"
            elif kind == tokenize.STRING:
                norm = "S"
            else:
                norm = text
            out.append((norm, line))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


_KEEP = {"def", "return", "for", "in", "if", "else", "elif", "while", "class", "import",
         "from", "as", "with", "lambda", "not", "and", "or", "is", "None", "True", "False",
         "yield", "raise", "try", "except", "finally", "assert", "pass", "break", "continue",
         "global", "nonlocal", "del", "self"}


def fingerprints(source: str, base: set[int] | None = None) -> Prints:
    toks = tokens(source)
    grams = []
    for i in range(len(toks) - K + 1):
        chunk = toks[i:i + K]
        h = zlib.crc32(" ".join(t for t, _ in chunk).encode())
        grams.append((h, (chunk[0][1], chunk[-1][1])))
    prints = Prints()
    for i in range(max(len(grams) - W + 1, 0 if not grams else 1)):
        window = grams[i:i + W]
        h, lines = min(reversed(window), key=lambda g: g[0])
        if base and h in base:
            continue
        prints.hashes.setdefault(h, lines)
    return prints


@dataclass(frozen=True)
class Match:
    a: str
    b: str
    file: str
    shared: int
    share: float
    lines_a: tuple[tuple[int, int], ...]
    lines_b: tuple[tuple[int, int], ...]

    def describe(self) -> str:
        def spans(lines: tuple) -> str:
            merged: list[list[int]] = []
            for lo, hi in sorted(lines):
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            return ", ".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in merged[:6])

        return (f"{self.file}: {self.a} lines {spans(self.lines_a)} ≈ {self.b} lines "
                f"{spans(self.lines_b)} ({self.shared} fingerprints, {self.share:.0%})")


def compare(a: Prints, b: Prints) -> tuple[int, float, set[int]]:
    shared = set(a.hashes) & set(b.hashes)
    smaller = min(len(a.hashes), len(b.hashes)) or 1
    return len(shared), len(shared) / smaller, shared


def find_matches(files: dict[str, dict[str, str]], bases: dict[str, str],
                 references: dict[str, str] | None = None) -> list[Match]:
    """``files[student][kata_path] = source``; ``bases[kata_path]`` the stub's source;
    ``references[kata_path]`` the reference's (reported as the pseudo-student
    ``"the reference"``).  Returns every matching pair of files."""
    base_prints = {p: set(fingerprints(src).hashes) for p, src in bases.items()}
    people = dict(files)
    if references:
        people["the reference"] = references
    prints = {s: {p: fingerprints(src, base_prints.get(p)) for p, src in fs.items()}
              for s, fs in people.items()}
    # Code most of the class shares (a one-line answer everyone finds) proves nothing:
    # drop fingerprints found in more than a quarter of the students' files (at least 3).
    students = [s for s in people if s != "the reference"]
    common_limit = max(3, -(-len(students) // 4))
    for path in {p for s in students for p in prints[s]}:
        counts: dict[int, int] = {}
        for s in students:
            for h in prints[s].get(path, Prints()).hashes:
                counts[h] = counts.get(h, 0) + 1
        common = {h for h, n in counts.items() if n > common_limit}
        for s in people:
            fp = prints[s].get(path)
            if fp is not None and common:
                fp.hashes = {h: v for h, v in fp.hashes.items() if h not in common}
    names = sorted(people)
    found = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a == "the reference" and b == "the reference":
                continue
            for path in sorted(set(prints[a]) & set(prints[b])):
                n, share, shared = compare(prints[a][path], prints[b][path])
                if n >= MIN_SHARED and share >= THRESHOLD:
                    x, y = (a, b) if b == "the reference" or a != "the reference" else (b, a)
                    px, py = prints[x][path], prints[y][path]
                    found.append(Match(x, y, path, n, share,
                                       tuple(px.hashes[h] for h in shared),
                                       tuple(py.hashes[h] for h in shared)))
    return found


def read_tree(root: Path, paths: list[str]) -> dict[str, str]:
    out = {}
    for rel in paths:
        try:
            out[rel] = (root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return out
