"""Proving the hidden tests can fail: every kata must reject generic fakes and its
own misconceptions (naming each one), pass its reference, and leave its stub
"not started".  Used by ``attnkata selfcheck`` and by the framework's own tests.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .compare import compare, is_tensor
from .harness import Ctx, Namespace, probes_off
from .manager import Registry
from .model import Fake, Kata, Misconception
from .runner import FAILED, NOT_STARTED, PASSED, UNAVAILABLE, missing_requirement, run_check
from .target import load_module


@dataclass(frozen=True)
class Verdict:
    kata: str
    subject: str      # "reference", "stub", "fake:zeros", "misconception:forgot_scale", NOTE
    ok: bool
    detail: str
    tags: tuple[str, ...] = ()   # misconceptions: "caught", "reproduction", "probes"


NOTE = "note"         # a remark on the kata, counted neither passed nor failed
CLASS_NOTE = "no generic fakes apply to class katas: add Kata(fakes=...)"


# ---------------------------------------------------------------------------
# Generic fakes, built over the reference so they have the right shapes
# ---------------------------------------------------------------------------

def _map_out(out: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(out, tuple):
        return tuple(_map_out(o, fn) for o in out)
    if isinstance(out, list):
        return [_map_out(o, fn) for o in out]
    return fn(out)


def _like(value: Any, kind: str, rng: np.random.Generator) -> Any:
    if is_tensor(value):
        import torch
        as_np = _like(value.detach().cpu().float().numpy() if value.is_floating_point()
                      else value.detach().cpu().numpy(), kind, rng)
        return torch.as_tensor(np.asarray(as_np)).to(dtype=value.dtype, device=value.device)
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            return {"zeros": np.zeros_like(value), "constant": np.ones_like(value),
                    "random": rng.random(value.shape) < 0.5}[kind]
        fill = {"zeros": 0, "constant": 0.5}.get(kind)
        if fill is not None:
            return np.full_like(value, fill)
        return rng.standard_normal(value.shape).astype(value.dtype)
    if isinstance(value, (bool, np.bool_)):
        return not value if kind != "zeros" else False
    if isinstance(value, (int, np.integer)):
        return {"zeros": 0, "constant": 7}.get(kind, int(rng.integers(0, 1000)))
    if isinstance(value, (float, np.floating)):
        return {"zeros": 0.0, "constant": 0.5}.get(kind, float(rng.standard_normal()))
    return value


def _mutate_first(args: tuple) -> None:
    for a in args:
        if isinstance(a, np.ndarray) and a.size and a.flags.writeable:
            if a.dtype == bool:
                a[...] = ~a
            else:
                a += 1
            return
        if is_tensor(a) and a.numel():
            import torch
            with torch.no_grad():
                if a.dtype == torch.bool:
                    a.logical_not_()
                else:
                    a.add_(1)
            return


def generic_fake(kind: str, ref_fn: Callable) -> Callable:
    rng = np.random.default_rng(1234)

    def fake(*args: Any, **kwargs: Any) -> Any:
        if kind == "echo":
            return args[0] if args else next(iter(kwargs.values()))
        out = ref_fn(*args, **kwargs)
        if kind == "mutate":
            _mutate_first(args)
            return out
        return _map_out(out, lambda v: _like(v, kind, rng))

    return fake


def class_entries(kata: Kata, reference: Any) -> list[str]:
    """The entries that are classes: generic fakes (built over functions) skip them."""
    return [e for e in kata.entries if inspect.isclass(getattr(reference, e, None))]


def fakes_for(kata: Kata, reference: Any) -> list[Fake]:
    functions = [e for e in kata.entries
                 if inspect.isfunction(getattr(reference, e, None))]
    out = list(kata.fakes)
    if functions:
        for kind in kata.generic_fakes:
            out.append(Fake(kind, {e: generic_fake(kind, getattr(reference, e)) for e in functions}))
    return out


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def _run_all(kata: Kata, target: Any, reference: Any, root: Path | None, max_examples: int):
    # probes off: a check run names by reproduction (and its own ctx.fail) only, so the
    # two ways of naming are counted apart; the probes are proved on their own below
    with warnings.catch_warnings(), np.errstate(all="ignore"), probes_off():
        warnings.simplefilter("ignore")
        return [run_check(kata, c, target, reference, target_root=root, max_examples=max_examples,
                          shrink=False)
                for c in kata.checks]


def check_kata(kata: Kata, registry: Registry, *, max_examples: int = 15,
               learner_katas: Path | None = None) -> list[Verdict]:
    pack = registry.pack_of(kata)
    reason = missing_requirement(kata.requires)
    if reason:
        return [Verdict(kata.id, "environment", True, f"skipped: {reason}")]
    ref_path = Path(pack.solutions_dir) / kata.path
    if not ref_path.exists():
        return [Verdict(kata.id, "reference", False,
                        f"pack {pack.name!r} ships no reference: {ref_path} is missing")]
    try:
        reference = load_module(ref_path, pack.solutions_dir)
    except Exception as exc:  # TargetLoadError, or the reference's own import error
        return [Verdict(kata.id, "reference", False,
                        f"pack {pack.name!r}: the reference {ref_path} does not import: "
                        f"{type(exc).__name__}: {exc}"[:400])]
    verdicts = []

    results = _run_all(kata, reference, reference, pack.solutions_dir, max_examples)
    bad = [r for r in results if r.outcome != PASSED]
    verdicts.append(Verdict(kata.id, "reference", not bad,
                            "passes every check" if not bad else
                            f"{bad[0].check}: {bad[0].outcome}: {bad[0].message[:300]}"))

    verdicts.append(_stub_verdict(kata, pack.name, Path(learner_katas or pack.katas_dir), reference))

    for fake in fakes_for(kata, reference):
        target = Namespace(reference, dict(fake.impls), fake.id)
        results = _run_all(kata, target, reference, None, max_examples)
        caught = [r for r in results if r.outcome == FAILED]
        verdicts.append(Verdict(kata.id, f"fake:{fake.id}", bool(caught),
                                f"rejected by {caught[0].check}" if caught else
                                "ACCEPTED: no check failed — the hidden tests cannot tell"))
    for m in kata.misconceptions:
        verdicts.append(_misconception_verdict(kata, m, reference, max_examples))
    for variant in kata.variants:
        target = Namespace(reference, dict(variant.impls), variant.id)
        results = _run_all(kata, target, reference, None, max_examples)
        bad = [r for r in results if r.outcome != PASSED]
        verdicts.append(Verdict(kata.id, f"variant:{variant.id}", not bad,
                                "a correct variant: passes every check" if not bad else
                                f"REJECTED by {bad[0].check}: {bad[0].message[:200]}"))
    verdicts += silence_verdicts(kata, reference)
    classes = class_entries(kata, reference)
    if classes and kata.generic_fakes and not kata.fakes:
        verdicts.append(Verdict(kata.id, NOTE, True, f"{CLASS_NOTE} ({', '.join(classes)} "
                                                     f"{'is a class' if len(classes) == 1 else 'are classes'})"))
    return verdicts


def missing_files(registry: Registry, katas: list[Kata]) -> dict[str, list[str]]:
    """Per pack, the stubs and references its ``katas`` need that are not on disk."""
    out: dict[str, list[str]] = {}
    for kata in katas:
        pack = registry.pack_of(kata)
        for kind, root in (("reference", pack.solutions_dir), ("stub", pack.katas_dir)):
            if not (Path(root) / kata.path).exists():
                out.setdefault(pack.name, []).append(f"{kind} {Path(root) / kata.path}")
    return out


def _stub_verdict(kata: Kata, pack: str, stub_root: Path, reference: Any) -> Verdict:
    if not (stub_root / kata.path).exists():
        return Verdict(kata.id, "stub", False, f"pack {pack!r} ships no stub: {stub_root / kata.path} is missing")
    try:
        stub = load_module(stub_root / kata.path, stub_root)
        outcomes = {r.outcome for r in _run_all(kata, stub, reference, stub_root, 1)}
    except NotImplementedError:
        return Verdict(kata.id, "stub", True, "not started (raises on import)")
    except Exception as exc:
        return Verdict(kata.id, "stub", False, f"stub does not import: {exc}")
    ok = outcomes == {NOT_STARTED}
    return Verdict(kata.id, "stub", ok, "not started" if ok else f"stub gave {sorted(outcomes)}")


def _misconception_verdict(kata: Kata, m: Misconception, reference: Any, max_examples: int) -> Verdict:
    target = Namespace(reference, dict(m.impls), m.id)
    results = _run_all(kata, target, reference, None, max_examples)
    caught = [r for r in results if r.outcome == FAILED]
    named = [r for r in caught if m.id in r.misconception_ids]
    odd = [r for r in results if r.outcome in (NOT_STARTED, UNAVAILABLE)]
    by_probes, probe_detail = probe_naming(kata, m, reference)
    tags = (("caught",) if caught else ()) + (("reproduction",) if named else ()) \
        + (("probes",) if by_probes else ())
    subject = f"misconception:{m.id}"
    if m.probes and not by_probes and caught:
        return Verdict(kata.id, subject, False, f"caught; its probes do not name it: {probe_detail}",
                       tags)
    if named or (caught and by_probes):
        how = " and ".join(t for t in ("reproduction", "probes") if t in tags)
        where = named[0].check if named else caught[0].check
        return Verdict(kata.id, subject, True, f"caught by {where}, named by {how}", tags)
    if caught:
        return Verdict(kata.id, subject, False,
                       f"caught by {caught[0].check} but not named: {caught[0].message[:200]}", tags)
    detail = "ACCEPTED: no check failed" + (f" ({odd[0].outcome})" if odd else "")
    return Verdict(kata.id, subject, False, detail, tags)


def probe_naming(kata: Kata, m: Misconception, reference: Any) -> tuple[bool, str]:
    """Whether ``m``'s probes alone (no reproduction of a failing input) name ``m`` first
    when the target is its modelled implementation; and why not."""
    if not (m.probes or m.raises or m.shapes):
        return False, "declares no probes"
    target = Namespace(reference, dict(m.impls), m.id)
    ctx = Ctx(kata, target, reference, check_id="selfcheck-probes")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        d = ctx.explain([])
    mine = next((e for e in d.named if e.misconception.id == m.id), None)
    if mine is None:
        ev = next((e for e in (d.named or [d.closest]) if e is not None), None)
        if d.named:
            return False, (f"named \"{d.named[0].misconception.id}\" instead")
        own = [e for e in [d.closest] if e is not None and e.misconception.id == m.id]
        if own and own[0].disagrees:
            return False, f"its own probe does not hold {own[0].disagrees[0]}"
        return False, "fewer than two of its probes hold" if ev is None else \
            f"closest is {ev.misconception.id}"
    first = d.named[0]
    if first is not mine and first.count > mine.count:
        return False, f"ranked below \"{first.misconception.id}\""
    return True, "named by its probes" + (f" (tied with {first.misconception.id})"
                                          if first is not mine else "")


def silence_verdicts(kata: Kata, reference: Any) -> list[Verdict]:
    """No probe may fire on the reference or on a correct variant: a predicate that holds
    for correct code would name a mistake that is not there."""
    probes = [(m, p) for m in kata.misconceptions for p in m.probes]
    if not probes:
        return []
    subjects = [("reference", reference)] + [
        (f"variant {v.id}", Namespace(reference, dict(v.impls), v.id)) for v in kata.variants]
    fired = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for m, probe in probes:
            try:
                want = probe.run(reference)
            except Exception as exc:
                fired.append(f"{m.id}: the reference raises on {probe.what}: {exc}")
                continue
            if probe.holds is None:
                theirs = probe.run(Namespace(reference, dict(m.impls), m.id))
                if compare(theirs, want, tol=probe.tol) is None:
                    fired.append(f"{m.id}: on {probe.what} the modelled mistake gives the "
                                 f"right answer, so the input tells nothing")
                continue
            for label, ns in subjects:
                try:
                    got = want if ns is reference else probe.run(ns)
                    hit = bool(probe.holds(got, want))
                except Exception:
                    hit = False
                if hit:
                    fired.append(f"{m.id}: fires on the {label} ({probe.what})")
    detail = (f"{len(probes)} probes silent on the reference"
              + (f" and {len(kata.variants)} correct variant(s)" if kata.variants else ""))
    return [Verdict(kata.id, "silence", not fired, "; ".join(fired)[:400] if fired else detail)]


def summary(verdicts: list[Verdict]) -> dict[str, dict[str, int]]:
    """Per kata: misconceptions, caught, named by reproduction, named by probes, named
    (either); and the same summed under ``"ladder"``."""
    out: dict[str, dict[str, int]] = {}
    for v in verdicts:
        if not v.subject.startswith("misconception:"):
            continue
        row = out.setdefault(v.kata, dict(misconceptions=0, caught=0, reproduction=0, probes=0,
                                          named=0))
        row["misconceptions"] += 1
        for tag in ("caught", "reproduction", "probes"):
            row[tag] += tag in v.tags
        row["named"] += "reproduction" in v.tags or "probes" in v.tags
    total = dict(misconceptions=0, caught=0, reproduction=0, probes=0, named=0)
    for row in out.values():
        for key in total:
            total[key] += row[key]
    out["ladder"] = total
    return out


# ---------------------------------------------------------------------------
# Judging a learner-like variant (for tests: "variants of a mistake are named")
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class VariantVerdict:
    """What the checks said about one variant: caught at all, the misconception ids any
    failing check named, the ids named first, and the failure messages."""

    caught: bool
    named: frozenset
    first: frozenset
    messages: tuple[str, ...]

    def names(self, misconception: str) -> bool:
        """Caught, named ``misconception``, and no check named a different one first
        (a wrong name is worse than none)."""
        return self.caught and misconception in self.named and self.first <= {misconception}


def reference_for(kata_id: str) -> tuple[Kata, Any]:
    """The registered kata ``kata_id`` (with its probes) and its reference module."""
    from .manager import load_registry

    _, registry = load_registry()
    kata = registry.get(kata_id)
    pack = registry.pack_of(kata)
    return kata, load_module(Path(pack.solutions_dir) / kata.path, pack.solutions_dir)


def judge_variant(kata: Kata, reference: Any, impls: dict, *, max_examples: int = 8,
                  checks: tuple[str, ...] = ()) -> VariantVerdict:
    """Run the kata's checks (``checks``: only those ids) on the reference with ``impls``
    replaced, probes on, as a learner's code would be judged (in-process here)."""
    target = Namespace(reference, dict(impls), "variant")
    chosen = [c for c in kata.checks if not checks or c.id in checks]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        results = [run_check(kata, c, target, reference, target_root=None,
                             max_examples=max_examples, shrink=False) for c in chosen]
    failed = [r for r in results if r.outcome == FAILED]
    return VariantVerdict(bool(failed), frozenset(i for r in failed for i in r.misconception_ids),
                          frozenset(r.misconception_ids[0] for r in failed if r.misconception_ids),
                          tuple(r.message for r in failed))
