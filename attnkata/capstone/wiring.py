"""Which kata runs each part of the model, and the check of every call it makes.

A :class:`Kit` holds one :class:`Slot` per wired kata. A slot is the learner's when the
kata is ready in the saved results of the target (or forced with ``--use``); the
learner's module then lives in a supervised worker (:class:`attnkata.remote.Supervisor`,
as in ``pytest`` and ``attnkata bench``), never in this process. Every call a learner's
slot makes is also made on the reference, here, with the same inputs; the first call
whose output differs beyond the dtype's tolerance is recorded as that kata's first
mismatch (step, place, error). A learner's kata that turns out to be a stub, or raises,
falls back to the reference from then on, and the run says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# (kata id, entry): the order is the order of the table the run prints
WIRED = (
    ("rope", "rope"), ("causal_mask", "causal_mask"), ("attention", "attention"),
    ("gqa_attention", "gqa_attention"), ("kv_cache", "KVCache"), ("decode_step", "decode_step"),
    ("paged_kv_cache", "PagedKVCache"), ("paged_attention_decode", "paged_attention_decode"),
    ("next_token_probs", "next_token_probs"), ("sample_next", "sample_next"),
    ("speculative_decoding", "speculative_step"),
    ("flash_attention_forward", "flash_attention_forward"),
    ("paged_attention_decode_triton", "paged_attention_decode_triton"),
)
TRITON = ("flash_attention_forward", "paged_attention_decode_triton")
PAIRS = ("flash_attention_forward",)     # return (o, lse); only o is compared
CALL_TIMEOUT_S = 60.0
SERVE_BUDGET_S = 900.0    # a kata's worker time over one run: hundreds of calls, round trips included

# max |Δ| allowed between a learner's output and the reference's, per dtype
TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


def tolerance(x: Any) -> float:
    name = str(getattr(x, "dtype", "float32")).replace("torch.", "")
    return TOLERANCE.get(name, TOLERANCE["float32"])


def max_error(a: Any, b: Any) -> float:
    """Largest absolute difference (inf when shapes differ or values are not finite alike)."""
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)
    b = b.detach().cpu().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    same_inf = (a == b)
    diff = np.where(same_inf, 0.0, np.abs(a - b))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))


@dataclass
class Slot:
    kata: str
    entry: str | None
    path: str = ""
    yours: bool = False
    why: str = ""
    remote: Any = None               # the learner's module in its worker
    reference: Any = None            # the reference module, in this process
    calls: int = 0                   # calls into the learner's worker
    mismatch: dict | None = None     # the first call whose output differed
    owner: str = "yours"             # what a worker-run slot is called ("solutions" for those)

    @property
    def source(self) -> str:
        return self.owner if self.yours else "reference"


@dataclass
class Kit:
    slots: dict[str, Slot]
    supervisor: Any = None
    step: int = 0                    # the engine's current step (0: the prompt)
    check_s: float = 0.0             # seconds spent on reference calls and comparisons
    order: list[str] = field(default_factory=list)   # katas in the order they first mismatched

    # -- calls ---------------------------------------------------------------------------
    def uses(self, kata: str) -> bool:
        slot = self.slots.get(kata)
        return slot is not None and (slot.yours or slot.reference is not None)

    def call(self, kata: str, where: str, *args: Any, check: Any = None, expected: Any = None,
             **kwargs: Any) -> Any:
        """The kata's entry on these inputs: the learner's (checked) or the reference's.

        A learner's output is compared with the reference's on the same inputs, or with
        ``expected`` when given (a Triton kernel against the reference it replaces), or
        judged by ``check(out)`` (a sampler: any token with reference probability > 0)."""
        slot = self.slots[kata]
        ref = getattr(slot.reference, slot.entry) if slot.reference is not None else None
        if not slot.yours:
            return ref(*args, **kwargs)
        out = self._learner(slot, where, slot.entry, *args, **kwargs)
        if out is _FELL_BACK:
            if expected is None:
                return ref(*args, **kwargs)
            return (expected, None) if kata in PAIRS else expected
        start = time.perf_counter()
        try:
            if check is not None:
                problem = check(out)
                if problem:
                    self.flag(kata, where, problem)
                return out
            want = expected if expected is not None else ref(*args, **kwargs)
            got = out[0] if kata in PAIRS and isinstance(out, tuple) else out
            if self.compare(kata, where, got, want) == float("inf") and not _same_shape(got, want):
                return (want, None) if kata in PAIRS else want   # carry on with a usable value
            return out
        finally:
            self.check_s += time.perf_counter() - start

    def make(self, kata: str, where: str, *args: Any) -> Any:
        """A new object of the kata's class (a cache): the learner's, in its worker, or ours."""
        slot = self.slots[kata]
        if slot.yours:
            obj = self._learner(slot, where, slot.entry, *args)
            if obj is not _FELL_BACK:
                return obj
        return getattr(slot.reference, slot.entry)(*args)

    def method(self, kata: str, where: str, obj: Any, name: str, *args: Any) -> Any:
        """``obj.name(*args)`` on a cache; a learner's failure is recorded, then raised."""
        return self._on(kata, where, obj, name, lambda: getattr(obj, name)(*args))

    def attr(self, kata: str, where: str, obj: Any, name: str) -> Any:
        """``obj.name`` (a property or tensor of a cache), recorded like a method."""
        return self._on(kata, where, obj, name, lambda: getattr(obj, name))

    def _on(self, kata: str, where: str, obj: Any, name: str, action: Any) -> Any:
        slot = self.slots[kata]
        if not _is_remote(obj):
            return action()
        slot.calls += 1
        try:
            return action()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.flag(kata, where, f"{slot.entry}.{name} raised {_first_line(exc)}",
                      traceback=_traceback(exc))
            raise LearnerFailed(kata, exc) from None

    def _learner(self, slot: Slot, where: str, entry: str, *args: Any, **kwargs: Any) -> Any:
        from attnkata.remote import WorkerGone

        slot.calls += 1
        try:
            return getattr(slot.remote, entry)(*args, **kwargs)
        except NotImplementedError:
            slot.yours, slot.why = False, "not started (your stub raises NotImplementedError)"
        except (Exception, WorkerGone) as exc:
            slot.yours = False
            slot.why = f"raised at step {self.step}, the reference took over"
            self.flag(slot.kata, where, f"raised {_first_line(exc)}", traceback=_traceback(exc))
        return _FELL_BACK

    # -- the record of mismatches --------------------------------------------------------
    def compare(self, kata: str, where: str, out: Any, ref: Any) -> float:
        try:
            err = max_error(out, ref)
        except (TypeError, ValueError):
            err = float("inf")
        if not _same_shape(out, ref):
            self.flag(kata, where, f"returned {_shape(out)} where the reference returns "
                                   f"{_shape(ref)}", err)
        elif not err <= tolerance(ref):
            self.flag(kata, where, f"|Δ| = {err:.3g} > {tolerance(ref):g}", err)
        return err

    def flag(self, kata: str, where: str, what: str, error: float | None = None,
             traceback: str = "") -> None:
        slot = self.slots[kata]
        if slot.mismatch is None:
            slot.mismatch = {"step": self.step, "where": where, "what": what, "error": error}
            if traceback:
                slot.mismatch["traceback"] = traceback
            self.order.append(kata)

    def first_culprit(self) -> Slot | None:
        return self.slots[self.order[0]] if self.order else None

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.close()
            self.supervisor = None


class LearnerFailed(Exception):
    """A learner's cache method raised: the run stops there and names the kata."""

    def __init__(self, kata: str, exc: BaseException):
        super().__init__(f"{kata}: {_first_line(exc)}")
        self.kata = kata


_FELL_BACK = object()


def _shape(x: Any) -> str:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"shape {tuple(shape)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__}"


def _same_shape(a: Any, b: Any) -> bool:
    try:
        return np.shape(a) == np.shape(b)
    except Exception:  # noqa: BLE001 - something np.shape cannot read: not the same
        return False


def _is_remote(obj: Any) -> bool:
    from attnkata.remote import RemoteObject

    return isinstance(obj, RemoteObject)


def _traceback(exc: BaseException) -> str:
    """The learner's own frames, innermost last (as ``pytest`` shows them)."""
    from attnkata.harness import learner_traceback

    return "\n".join(learner_traceback(exc, None).splitlines()[-12:])


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------------
# Building the kit for a target
# ---------------------------------------------------------------------------

def ready_katas(rootdir: Path, slug: str) -> tuple[set[str], bool]:
    """Katas the saved results mark ready for this target, and whether any results exist.

    Ready in an earlier run counts, as in ``attnkata report`` (a learner who runs one file at
    a time has most katas ready from earlier runs); serve checks each file against the
    reference as it runs anyway."""
    from attnkata.report import saved_ladder

    ladder, _ = saved_ladder(rootdir, slug)
    if ladder is None:
        return set(), False
    return {row.id for row in ladder.rows if row.done}, True


def build_kit(registry: Any, target: Any, rootdir: Path, use: str | None,
              kernels: str) -> tuple[Kit, list[str]]:
    """One slot per wired kata the registry knows; the learner's where ready (or ``use``)."""
    from attnkata.remote import Supervisor, WorkerGone
    from attnkata.target import TargetLoadError, load_module

    notes: list[str] = []
    forced = {"all"} if use == "all" else set(filter(None, (use or "").split(",")))
    if target.name == "solutions":  # the references, run like a learner's: in workers
        forced = {"all"}
    ready, saved = ready_katas(rootdir, target.slug)
    if not saved and not forced:
        notes.append(f"no saved results for the target {target.name!r}: every kata is the "
                     f"reference. Run pytest first, or pass --use all to try your files.")
    katas = {k.id: k for k in registry.katas}
    unknown = forced - set(katas) - {"all"}
    if unknown:
        notes.append(f"--use names no wired kata: {', '.join(sorted(unknown))}")
    config = _worker_config(registry, target, rootdir)
    supervisor = Supervisor(config, timeout=CALL_TIMEOUT_S, budget=SERVE_BUDGET_S, keep=len(WIRED))
    kit = Kit({}, supervisor)
    for kata_id, entry in WIRED:
        kata = katas.get(kata_id)
        if kata is None:
            continue
        pack = registry.pack_of(kata)
        slot = Slot(kata_id, entry, kata.path,
                    owner="solutions" if target.name == "solutions" else "yours")
        kit.slots[kata_id] = slot
        if kata_id in TRITON and kernels != "triton":
            slot.why = "not used (--kernels cpu)"
            continue
        ref_path = pack.solutions_dir / kata.path
        if ref_path.exists() and kata_id not in TRITON:  # a kernel is checked against the
            slot.reference = load_module(ref_path, pack.solutions_dir)  # op it replaces
        wanted = "all" in forced or kata_id in forced or kata_id in ready
        if not wanted:
            slot.why = "not ready yet" if saved else "no saved results"
            continue
        path, root = target.locate(kata, pack, rootdir / "katas")
        try:
            if not path.exists():
                raise TargetLoadError(str(path))
            slot.remote = supervisor.module(f"serve:{kata_id}", path.resolve(), root.resolve(),
                                            tuple(kata.requires), CALL_TIMEOUT_S)
            slot.yours = True
            slot.why = ("ready in the saved results" if kata_id in ready else
                        "the references" if target.name == "solutions" else "--use")
        except NotImplementedError:
            slot.why = "not started (the stub raises NotImplementedError)"
        except TargetLoadError:
            slot.why = f"no file {kata.path} in the target"
        except (Exception, WorkerGone) as exc:
            slot.why = f"does not import: {_first_line(exc)}"
    return kit, notes


def _worker_config(registry: Any, target: Any, rootdir: Path) -> Any:
    """The sandbox a ``pytest`` run of this target gives learner code (references protected)."""
    from attnkata.session import RunState

    return RunState(None, registry, target, Path(rootdir), Path(rootdir) / "katas").worker_config()
