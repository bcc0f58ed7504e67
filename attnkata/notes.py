"""``attnkata note``: a note attached to one exact object, ready to paste into an issue.

A note names its object (a kata, claim, misconception or prediction, as ``attnkata
ask`` finds it), its kind (confusing jump, missing prerequisite, …), the environment,
the evidence (the last saved run's result for that kata and the sha256 of the
learner's file) and the resolution expected.  It is Markdown with a small front matter
(``status: open``; set ``closed`` when resolved) under ``.attnkata/notes/``, written
atomically.  ``attnkata readiness`` counts the open ones per kata; the repository's
issue forms (``.github/ISSUE_TEMPLATE/<kind>.yml``, made by :func:`issue_form`) take
the same fields.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import secrets
import sys
import tempfile
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .ask import Obj, State, describe, kata_file, resolve_or_say, wrap

# kind -> (title, what the issue form asks for, the resolution a note expects by default)
KINDS: dict[str, tuple[str, str, str]] = {
    "confusing-jump": (
        "Confusing jump", "A step in a kata's teaching skips something you needed.",
        "The stub's docstring gains the missing step between the two statements named above."),
    "missing-prerequisite": (
        "Missing prerequisite", "A kata assumes something no earlier kata or doc teaches.",
        "An earlier kata, or this kata's intuition section, teaches the prerequisite named above."),
    "source-scope": (
        "Source scope", "A claim says more (or less) than its source or its tests support.",
        "The claim's text, scope or not_claimed is corrected to what its source and tests support."),
    "witness-failed": (
        "Code witness failed", "A claim's witness (its hidden checks) failed where it should pass, "
        "or passed where it should fail.",
        "The hidden check is fixed, or the claim is narrowed, so the witness holds."),
    "reproduction-succeeded": (
        "Reproduction succeeded", "You reproduced a claim or result on your machine.",
        "The reproduction is recorded with its environment as evidence for the claim."),
    "reproduction-failed": (
        "Reproduction failed", "A claim or result did not reproduce on your machine.",
        "The claim's scope or environment is corrected, or the failing step is fixed."),
    "proposed-task": (
        "Proposed task", "A kata, check, misconception or prediction the course should add.",
        "The proposed task is added to the pack, or declined with a reason."),
}
PACKAGES = ("attnkata", "numpy", "torch", "triton", "hypothesis", "pytest")
FRONT = "---"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Versions and platform, from package metadata (nothing heavy is imported)."""
    env = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    env.update({name: _version(name) for name in PACKAGES})
    env["TRITON_INTERPRET"] = os.environ.get("TRITON_INTERPRET", "unset")
    return env


def sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


def evidence(registry: Any, obj: Obj, state: State, root: Path) -> list[str]:
    """The last saved run's result for the object's kata, and the learner's file hash."""
    row = state.row(obj.kata.id)
    created = (state.ladder or {}).get("created", "?")
    target = (state.ladder or {}).get("target", "?")
    if row is None:
        out = ["- last run: no saved result for this kata (run `pytest` first)"]
    else:
        out = [f"- last run (target {target}, saved {created}): {row.get('status')}"
               + (" (from an earlier run)" if row.get("stale") else "")]
        if row.get("detail"):
            out.append(f"- message: {row['detail']}")
        if row.get("misconception"):
            out.append(f"- named misconception: \"{row['misconception']}\"")
        checks = row.get("checks", {})
        bad = [cid for cid, outcome in checks.items() if outcome not in ("passed", "ready")]
        out.append(f"- checks: {len(checks) - len(bad)} of {len(checks)} passed"
                   + (f"; not passing: {', '.join(bad)}" if bad else ""))
    path = kata_file(registry, obj.kata, root)
    shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    out.append(f"- learner file {shown} sha256: {sha256(path) if path.exists() else 'no such file'}")
    return out


def render_note(registry: Any, obj: Obj, kind: str, text: str, state: State, root: Path,
                created: str) -> str:
    title, _, resolution = KINDS[kind]
    front = [FRONT, "attnkata-note: 1", f"kind: {kind}", f"object: {obj.ref}",
             f"object_kind: {obj.kind}", f"kata: {obj.kata.id}", "status: open",
             f"created: {created}", FRONT]
    env = environment()
    body = [f"# {title}: {obj.kind} `{obj.id}` of kata `{obj.kata.id}`", "",
            f"Paste into a new issue with the \"{title}\" form "
            f"(.github/ISSUE_TEMPLATE/{kind}.yml); object id: `{obj.ref}`.", "",
            "## Object", f"- kind: {obj.kind}", f"- id: `{obj.ref}`",
            f"- kata: `{obj.kata.id}` (level {obj.kata.level}, pack {obj.kata.pack or '?'})",
            f"- what it is: {describe(obj)}", "",
            "## What I noticed", text.strip() or "(write what you noticed here)", "",
            "## Environment", *(f"- {k}: {v}" for k, v in env.items()), "",
            "## Evidence", *evidence(registry, obj, state, root), "",
            "## Expected resolution", resolution, "",
            "When it is resolved, set `status: closed` above: `attnkata readiness` counts the "
            "open notes per kata."]
    return "\n".join(front) + "\n" + wrap("\n".join(body)) + "\n"


def notes_dir(root: Path) -> Path:
    from .state import state_dir

    return state_dir(root) / "notes"


def write_note(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name`` atomically (temporary file, fsync, replace)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def front_matter(text: str) -> dict[str, str]:
    """The ``key: value`` lines between the leading ``---`` lines ({} when there are none)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != FRONT:
        return {}
    out = {}
    for line in lines[1:]:
        if line.strip() == FRONT:
            return out
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return {}


def open_notes(root: Path) -> tuple[Counter, Counter, list[str]]:
    """Open notes per kata, per (kata, kind), and the files that are not notes."""
    per_kata: Counter = Counter()
    per_kind: Counter = Counter()
    problems = []
    folder = notes_dir(root)
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        try:
            meta = front_matter(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        if not meta.get("kata"):
            problems.append(f"{path.name}: no front matter naming its kata: not counted")
            continue
        if meta.get("status", "open").lower() == "open":
            per_kata[meta["kata"]] += 1
            per_kind[(meta["kata"], meta.get("kind", "?"))] += 1
    return per_kata, per_kind, problems


def cmd_note(args: Any, pm: Any, registry: Any) -> int:
    from .cli import outside_course
    from .state import not_saved_reason

    obj, state = resolve_or_say(registry, args, "note")
    if obj is None:
        return 2
    if outside_course(args):
        return 2
    from .state import now

    created = now()
    stamp = created.replace(":", "").replace("-", "")[:15]
    name = f"{stamp}-{args.kind}-{obj.ref.replace(':', '-')}-{secrets.token_hex(2)}.md"
    text = render_note(registry, obj, args.kind, args.text or "", state, args.root, created)
    try:
        path = write_note(notes_dir(args.root), name, text)
    except OSError as exc:
        print(wrap(f"attnkata note: {not_saved_reason(exc, notes_dir(args.root))}"), file=sys.stderr)
        return 1
    title = KINDS[args.kind][0]
    print(wrap(f"wrote {path}\nPaste it into a new issue with the \"{title}\" form "
               f"(.github/ISSUE_TEMPLATE/{args.kind}.yml); object id `{obj.ref}`. "
               f"Set `status: closed` in it when resolved."))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("note", help="write a note about one kata, claim, misconception or "
                                    "prediction under .attnkata/notes/, ready for an issue")
    p.add_argument("object", help="kata id, claim id, misconception id or prediction key (KATA:ID)")
    p.add_argument("--kind", required=True, choices=tuple(KINDS))
    p.add_argument("--text", default="", help="what you noticed (else a placeholder to fill in)")
    p.set_defaults(func=cmd_note)


# -- issue forms -----------------------------------------------------------------

def _q(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def issue_form(kind: str) -> str:
    """The GitHub issue form for one kind of note (``.github/ISSUE_TEMPLATE/<kind>.yml``)."""
    title, about, resolution = KINDS[kind]
    fields = [("noticed", "What you noticed", "The note's \"What I noticed\" section.", "", True),
              ("evidence", "Evidence", "The note's Evidence section: the last run's result and "
               "your file's sha256.", "", True),
              ("environment", "Environment", "The note's Environment section.", "", False),
              ("expected", "Expected resolution", "What would resolve it.", resolution, True)]
    lines = [f"name: {_q(title)}", f"description: {_q(about)}", f"title: {_q(f'[{kind}] ')}",
             f"labels: [{_q('note')}, {_q(kind)}]", "body:",
             "  - type: markdown", "    attributes:", "      value: " + _q(
                 f"Write the note with `attnkata note OBJECT --kind {kind}`; it is saved under "
                 f"`.attnkata/notes/`. Copy its sections into the fields below."),
             "  - type: input", "    id: object", "    attributes:", f"      label: {_q('Object id')}",
             "      description: " + _q("The exact object: a kata id, a claim id, a misconception "
                                        "id or a prediction key, as KATA:ID."),
             f"      placeholder: {_q('attention:forgot_scale')}",
             "    validations:", "      required: true"]
    for fid, label, description, value, required in fields:
        lines += ["  - type: textarea", f"    id: {fid}", "    attributes:", f"      label: {_q(label)}",
                  f"      description: {_q(description)}"]
        if value:
            lines.append(f"      value: {_q(value)}")
        lines += ["    validations:", f"      required: {'true' if required else 'false'}"]
    return "\n".join(lines) + "\n"
