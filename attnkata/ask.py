"""``attnkata ask``: a grounded prompt about one exact object, for any AI assistant.

The object is a kata, a claim, a misconception or a prediction.  Every piece of
teaching text in the prompt comes from the course itself — the kata's stub docstring
(read as text, never imported) and its metadata — and the learner's state comes from
the saved results and ledger in ``.attnkata/``.  Nothing is sent anywhere: the prompt
is text the learner takes to the assistant of their choice.  It always fits
:data:`BUDGET` characters, trimming the longest stub excerpts first and saying where
the rest is.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Kata

BUDGET = 6000          # characters: what a chat box takes without complaint
WIDTH = 80             # columns: every line of the prompt fits an 80-column terminal
KINDS = ("kata", "claim", "misconception", "prediction")
GOALS = ("understand", "debug", "extend")
STYLES = ("visual", "math", "code")
CLIPBOARDS = (("pbcopy",), ("wl-copy",), ("xclip", "-selection", "clipboard"), ("clip.exe",))


class AskError(ValueError):
    """The object named cannot be found, or names several things."""


@dataclass(frozen=True)
class Obj:
    """One object of the course: its kind, its id, the kata it belongs to, its record."""

    kind: str
    id: str
    kata: Kata
    record: Any  # the Kata, Claim, Misconception or Prediction

    @property
    def ref(self) -> str:
        return self.kata.id if self.kind == "kata" else f"{self.kata.id}:{self.id}"


# -- finding the object ----------------------------------------------------------

def candidates(registry: Any, name: str) -> list[Obj]:
    """Every object called ``name`` (``KATA:ID`` narrows to one kata), in ladder order."""
    kata_id, _, own = name.rpartition(":") if ":" in name else ("", "", name)
    found = []
    for kata in registry.katas:
        if kata_id and kata.id != kata_id:
            continue
        if kata.id == own and not kata_id:
            found.append(Obj("kata", kata.id, kata, kata))
        for kind, records in (("claim", kata.claims), ("misconception", kata.misconceptions),
                              ("prediction", kata.predictions)):
            found += [Obj(kind, r.id, kata, r) for r in records if r.id == own]
    return found


def resolve(registry: Any, name: str | None, state: "State") -> Obj:
    """The one object ``name`` means; no name: the report's Next kata.

    A misconception id shared by several katas means the one the learner's failing kata
    was matched with; otherwise :class:`AskError` lists the ``KATA:ID`` choices.
    """
    if not name:
        kata_id = state.next_kata()
        if kata_id is None:
            raise AskError("no OBJECT given and no Next kata in your saved report (run `pytest` "
                           "first, or name a kata: `attnkata list`)")
        name = kata_id
    found = candidates(registry, name)
    if len(found) > 1:
        mine = [o for o in found if o.kind == "misconception" and state.row(o.kata.id)
                and state.row(o.kata.id).get("misconception") == o.record.name]
        found = mine if len(mine) == 1 else found
    if not found:
        raise AskError(f"nothing called {name!r}: give a kata id, a claim id, a misconception id "
                       f"or a prediction key (`attnkata list` shows the katas; KATA:ID picks "
                       f"one kata's)")
    if len(found) > 1:
        raise AskError(f"{name!r} names {len(found)} objects; pick one: "
                       + ", ".join(f"{o.ref} ({o.kind})" for o in found))
    return found[0]


# -- the learner's state ---------------------------------------------------------

@dataclass
class State:
    """What ``.attnkata/`` says about the learner: saved ladder rows, ledger entries."""

    ladder: dict | None
    entries: dict
    hints: dict
    problems: list[str]

    @classmethod
    def load(cls, root: Path) -> "State":
        from .state import ledger, results

        store, book = results(root), ledger(root)
        data, ledger_data = store.read(), book.read()
        runs = data.get("runs", {})
        slug = "katas" if "katas" in runs else data.get("last")
        entries = ledger_data.get("targets", {}).get(slug or "katas", {})
        return cls(runs.get(slug) if slug else None, entries, ledger_data.get("hints", {}),
                   store.problems + book.problems)

    def row(self, kata_id: str) -> dict | None:
        rows = (self.ladder or {}).get("katas", [])
        return next((r for r in rows if r.get("id") == kata_id), None)

    def next_kata(self) -> str | None:
        if not self.ladder:
            return None
        from .ladder import Ladder

        ladder = Ladder.from_json(self.ladder)
        ladder.mark_skipped(self.entries)
        row = ladder.next_kata()
        return row.id if row else None


# -- reading the stub ------------------------------------------------------------

def stub_parts(path: Path, entries: tuple[str, ...]) -> dict[str, str]:
    """The stub's docstring sections (title, intuition, math, example) and entry signatures.

    Read with :mod:`ast`; the learner's code is never imported.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    doc = ast.get_docstring(tree) or ""
    lines = doc.splitlines()
    parts: dict[str, str] = {"title": lines[0].strip() if lines else ""}
    heads = [i for i in range(1, len(lines) - 1)
             if lines[i].strip() and set(lines[i + 1].strip()) <= set("-=") and lines[i + 1].strip()]
    if not heads and len(lines) > 1:
        parts["intuition"] = "\n".join(lines[1:]).strip("\n").rstrip()
    for n, i in enumerate(heads):
        end = heads[n + 1] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[i + 2:end]).strip("\n").rstrip()
        head = lines[i].strip().lower()
        key = ("intuition" if "intuition" in head else "math" if "math" in head
               else "example" if "example" in head else head)
        parts[key] = body
    code = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in entries:
            sig = (f"def {node.name}({ast.unparse(node.args)})" if isinstance(node, ast.FunctionDef)
                   else f"class {node.name}")
            code.append(sig + ":\n" + textwrap.indent(ast.get_docstring(node) or "", "    "))
    parts["code"] = "\n\n".join(code)
    return parts


def teaching_parts(registry: Any, kata: Kata, learner_file: Path) -> dict[str, str]:
    """The pack's stub's sections (the course's own teaching text); the learner's file
    when the pack's stub is missing or has no intuition and no math section."""
    pack_stub = Path(registry.pack_of(kata).katas_dir) / kata.path
    parts = stub_parts(pack_stub, kata.entries)
    if not (parts.get("intuition") or parts.get("math")):
        parts = stub_parts(learner_file, kata.entries) or parts
    return parts


def kata_file(registry: Any, kata: Kata, root: Path) -> Path:
    """The learner's file for ``kata`` (the pack's stub when not copied yet)."""
    from .target import TargetSpec

    path, _ = TargetSpec("katas", None).locate(kata, registry.pack_of(kata), root / "katas")
    return path


# -- the prompt --------------------------------------------------------------------

def wrap(text: str, width: int = WIDTH) -> str:
    """Every line at most ``width`` columns: long lines wrap under their own indent."""
    out = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        hang = indent + ("  " if indent or line.lstrip().startswith("- ") else "")
        out += textwrap.wrap(line.strip(), width=width, initial_indent=indent,
                             subsequent_indent=hang, break_on_hyphens=False,
                             break_long_words=False) or [""]
    return "\n".join(out)


def reflow(text: str, width: int = WIDTH) -> str:
    """A docstring section for ``width`` columns: prose paragraphs refilled, laid-out
    ones (indented, bulleted, aligned) kept line for line (and wrapped by :func:`wrap`)."""
    paras = text.split("\n\n")
    out = []
    for para in paras:
        lines = para.splitlines()
        prose = lines and all(ln and not ln[0].isspace() and not ln.startswith("- ")
                              and "  " not in ln.strip() for ln in lines)
        out.append(textwrap.fill(" ".join(lines), width=width, break_on_hyphens=False)
                   if prose else wrap(para, width))
    return "\n\n".join(out)


def _clip(text: str, limit: int, where: str) -> str:
    """``text`` cut at a line boundary to at most ``limit`` characters, saying where the rest is."""
    if len(text) <= limit:
        return text
    note = f"  … (cut to fit; the rest is in {where})"
    lines, used = [], len(note) + 1
    for line in text.splitlines():
        if used + len(line) + 1 > limit:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines + [note]) if lines else ""


def describe(obj: Obj) -> str:
    r = obj.record
    if obj.kind == "kata":
        return f"kata `{r.id}` (level {r.level}): {r.title}"
    if obj.kind == "claim":
        return f"claim `{r.id}` of kata `{obj.kata.id}` ({r.scope}): {r.text}"
    if obj.kind == "misconception":
        return (f"misconception `{r.id}` of kata `{obj.kata.id}`: \"{r.name}\""
                + (f" — {r.explanation}" if r.explanation else ""))
    return f"prediction `{r.id}` of kata `{obj.kata.id}`: {r.question}"


def state_lines(obj: Obj, state: State) -> list[str]:
    kata, row = obj.kata, state.row(obj.kata.id)
    if state.ladder is None:
        out = ["- no saved results yet (run `pytest` to get a status)"]
    elif row is None:
        out = [f"- `{kata.id}` is not in your saved results yet"]
    else:
        out = [f"- status: {row.get('status')}" + (" (from an earlier run)" if row.get("stale") else "")]
        if row.get("detail"):
            out.append(f"- last failure message: {row['detail']}")
        if row.get("misconception"):
            named = next((m for m in kata.misconceptions if m.name == row["misconception"]), None)
            out.append(f"- named misconception: \"{row['misconception']}\""
                       + (f" [{named.id}]" + (f" — {named.explanation}" if named.explanation else "")
                          if named else ""))
    entry = state.entries.get(kata.id, {})
    if entry.get("failed_runs"):
        out.append(f"- failing runs so far: {entry['failed_runs']}")
    preds = entry.get("predictions", {})
    asked = [p for p in kata.predictions if obj.kind != "prediction" or p.id == obj.id]
    for p in asked:
        seen = preds.get(p.id)
        if not seen:
            out.append(f"- prediction `{p.id}`: not answered yet")
            continue
        right = "right" if seen.get("latest_right") else "not right yet"
        revised = (f"; revised {seen.get('revisions')} time(s), first answer {seen.get('first')!r}"
                   if seen.get("revisions") else "; not revised")
        out.append(f"- prediction `{p.id}`: answered {seen.get('latest')!r} ({right}{revised})")
    if state.hints.get(kata.id):
        out += [f"- hint {i} already shown: {h}" for i, h in enumerate(kata.hints[:state.hints[kata.id]], 1)]
    return out


def claim_lines(obj: Obj, state: State) -> tuple[list[str], list[str]]:
    """The kata's claims (only the one asked about, for a claim) and the sources cited."""
    saved = {c.get("id"): c for c in (state.ladder or {}).get("claims", []) if c.get("kata") == obj.kata.id}
    claims = [c for c in obj.kata.claims if obj.kind != "claim" or c.id == obj.id]
    out, sources = [], []
    for c in claims:
        seen = saved.get(c.id, {})
        mark = " — witnessed by your code" if seen.get("witnessed") else ""
        out.append(f"- [{c.scope}] `{c.id}`: {c.text}{mark}")
        out.append(f"  not claimed: {c.not_claimed or '(the kata names no boundary)'}")
        out.append(f"  source: {c.source}")
        if c.environment:
            out.append("  environment: " + ", ".join(f"{k}={v}" for k, v in c.environment.items()))
        sources.append(c.source)
    for cid, c in saved.items():  # measured claims from the bench, about this kata's code
        if cid not in {k.id for k in obj.kata.claims} and obj.kind != "claim":
            out.append(f"- [{c.get('scope')}] `{cid}`: {c.get('text')}")
            out.append(f"  not claimed: {c.get('not_claimed') or '(none named)'}")
            if c.get("environment"):
                out.append("  environment: " + ", ".join(f"{k}={v}" for k, v in c["environment"].items()))
            sources.append(str(c.get("source")))
    return out, list(dict.fromkeys(s for s in sources if s))


def question(obj: Obj, goal: str, style: str, state: State, path: str) -> str:
    r, row = obj.record, state.row(obj.kata.id) or {}
    about = {"kata": f"the kata `{obj.kata.id}`",
             "claim": f"why the claim `{r.id}` holds within its scope ({getattr(r, 'scope', '')}), "
                      f"and what it does not say",
             "misconception": f"the mistake \"{getattr(r, 'name', '')}\" — why it is wrong and how its "
                              f"output differs from the right one",
             "prediction": f"how to reason my way to the prediction `{r.id}` (do not tell me the answer)"}[obj.kind]
    if goal == "debug":
        failing = f" It fails with: {row['detail'].rstrip('.')}." if row.get("detail") else ""
        ask = (f"My code in {path} does not pass yet.{failing} Help me find my mistake about "
               f"{about}, without writing the solution for me.")
    elif goal == "extend":
        ask = (f"I understand {about}. What would change if I extended it, staying within what the "
               f"claims above say?")
    else:
        ask = f"Help me understand {about}."
    how = {"visual": "Explain it with a small picture drawn in text (a grid, arrows, a table of numbers).",
           "math": "Explain it through the equations above, one symbol at a time.",
           "code": "Explain it through the function signature above and a few lines of pseudocode "
                   "(not the solution)."}[style]
    return f"{ask} {how}"


INSTRUCTION = ("Stay grounded in the material above and in the sources it names by id; say "
               "where you go beyond them. Separate what this evidence verifies from what you "
               "assume. Name the math objects (the symbols above) you use. Do not write the "
               "kata's solution. End with exactly one next action for me to try in {path}, "
               "then check with `{run}`.")


def build_prompt(registry: Any, obj: Obj, state: State, root: Path, *, goal: str | None = None,
                 style: str = "math", budget: int = BUDGET) -> str:
    """The whole prompt, at most ``budget`` characters and :data:`WIDTH` columns."""
    path_abs = kata_file(registry, obj.kata, root)
    try:
        path = path_abs.relative_to(root).as_posix()
        run = f"pytest {path}"
    except ValueError:  # not copied into this course yet
        path, run = f"katas/{obj.kata.path}", f"pytest -k {obj.kata.id}"
    parts = teaching_parts(registry, obj.kata, path_abs)
    row = state.row(obj.kata.id) or {}
    goal = goal or ("debug" if row.get("status") == "failing" else "understand")
    claims, sources = claim_lines(obj, state)
    what = (f"kata `{obj.kata.id}`" if obj.kind == "kata"
            else f"{obj.kind} `{obj.id}` of kata `{obj.kata.id}`")
    head = [f"I am learning attention kernels with attnkata. My question is about {what} "
            f"(file {path}).", "",
            "## The object", describe(obj), ""]
    if parts.get("title"):
        head[-1:] = [f"From the stub: {parts['title']}", ""]
    tail = ["## My current state", *state_lines(obj, state), "",
            "## Claims (scope; what is not claimed; source)", *(claims or ["- (this kata states no claims)"]), "",
            "## Sources", "- " + (", ".join(sources) if sources else "(none cited)"), "",
            f"## My question (goal: {goal}; style: {style})", question(obj, goal, style, state, path), "",
            "## Instructions for you", INSTRUCTION.format(path=path, run=run)]
    fixed = wrap("\n".join(head)) + "\n\n" + wrap("\n".join(tail))
    wanted = [("Intuition (from the stub)", "intuition"), ("The math, every symbol glossed (from the stub)", "math")]
    wanted.append(("The entry points (from the stub)", "code") if style == "code"
                  else ("Worked example (from the stub)", "example"))
    room = budget - len(fixed) - 2
    middle = []
    for title, key in wanted:
        body = reflow(parts.get(key, "").strip("\n").rstrip())
        if not body:
            if key != "example" and key != "code":
                body = f"(the stub {path} has no '{key}' section)"
            else:
                continue
        section = _clip(wrap(f"## {title}\n{body}"), max(room - 2, 0), path)
        if section:
            middle.append(section)
            room -= len(section) + 2
    text = "\n\n".join([wrap("\n".join(head)).rstrip(), *middle, wrap("\n".join(tail))])
    return _clip(text, budget, f"{path} and `attnkata report`")


# -- the clipboard ---------------------------------------------------------------

def copy(text: str) -> str:
    """Put ``text`` on the clipboard with the first tool found; returns what happened."""
    for cmd in CLIPBOARDS:
        if shutil.which(cmd[0]):
            try:
                subprocess.run(cmd, input=text.encode("utf-8"), check=True, timeout=10)
                return f"copied to the clipboard ({cmd[0]})"
            except (OSError, subprocess.SubprocessError) as exc:
                return f"not copied: {cmd[0]} failed ({exc})"
    return ("not copied: no clipboard tool found (pbcopy, wl-copy, xclip or clip.exe); "
            "select the text above instead")


def resolve_or_say(registry: Any, args: Any, command: str) -> tuple[Any, Any]:
    """``(object, state)`` for a command's OBJECT argument, or ``(None, state)`` after
    saying on stderr why it names nothing."""
    import sys

    state = State.load(args.root)
    try:
        return resolve(registry, args.object, state), state
    except AskError as exc:
        print(wrap(f"attnkata {command}: {exc}"), file=sys.stderr)
        return None, state


def cmd_ask(args: Any, pm: Any, registry: Any) -> int:
    import sys

    obj, state = resolve_or_say(registry, args, "ask")
    if obj is None:
        return 2
    text = build_prompt(registry, obj, state, args.root, goal=args.goal, style=args.style)
    print(text)
    for problem in state.problems:
        print(wrap(f"attnkata: ⚠ {problem}"), file=sys.stderr)
    if args.copy:
        print(wrap(copy(text)), file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ask", help="a grounded prompt about one kata, claim, misconception or "
                                   "prediction, for any AI assistant (nothing is sent)")
    p.add_argument("object", nargs="?", default=None,
                   help="kata id, claim id, misconception id or prediction key (KATA:ID picks one "
                        "kata's); default: the report's Next kata")
    p.add_argument("--goal", choices=GOALS, default=None,
                   help="default: debug when the kata is failing, else understand")
    p.add_argument("--style", choices=STYLES, default="math")
    p.add_argument("--copy", action="store_true", help="also put the prompt on the clipboard")
    p.set_defaults(func=cmd_ask)
