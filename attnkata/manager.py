"""Build the ``attnkata`` plugin manager and the kata registry — one path for pytest and CLI.

Built-in plugins are registered by name, then third-party plugins from the
``attnkata`` entry-point group, one at a time: a plugin that fails to import, or
implements a hook that does not exist, is reported by name and left out; the
others still load.  Hooks are called one plugin at a time through
:func:`call_hook`, so a plugin that raises in any hook is named and skipped too.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import pluggy

from .model import Kata, MetadataError, Pack

BUILTIN_PLUGINS = (
    "attnkata_plugins.core",
    "attnkata_plugins.claims",
    "attnkata_plugins.readiness",
    "attnkata_plugins.bench",
    "attnkata_plugins.kvlab",
    "attnkata_plugins.paged_demo",
    "attnkata_plugins.compile_gate",
    "attnkata_plugins.serve",
)


@dataclass(frozen=True)
class PluginProblem:
    plugin: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.message}"

    @property
    def not_loaded(self) -> bool:
        """The plugin is not there at all (failed to import, or refused): its katas are unknown."""
        return self.message.startswith(("failed to import", "rejected by the plugin manager"))


def get_plugin_manager(*, entrypoints: bool = True) -> tuple[pluggy.PluginManager, list[PluginProblem]]:
    from . import hookspecs  # here, not at the top: hookspecs names ladder's types, ladder manager's

    pm = pluggy.PluginManager("attnkata")
    pm.add_hookspecs(hookspecs)
    problems: list[PluginProblem] = []
    for name in BUILTIN_PLUGINS:
        _register(pm, name, lambda name=name: importlib.import_module(name), problems)
    if entrypoints:
        # In name order, so which of two clashing packs comes second never depends on the disk.
        for ep in sorted(entry_points(group="attnkata"), key=lambda ep: ep.name):
            if pm.get_plugin(ep.name) is None and not pm.is_blocked(ep.name):
                _register(pm, ep.name, ep.load, problems)
    return pm, problems


def _register(pm: pluggy.PluginManager, name: str, load, problems: list[PluginProblem]) -> None:
    try:
        plugin = load()
    except (Exception, SystemExit) as exc:  # a broken pack must not take the others down
        problems.append(PluginProblem(name, f"failed to import: {type(exc).__name__}: {exc}"))
        return
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        problems.append(PluginProblem(name, f"rejected by the plugin manager: {exc}"))


def implementations(pm: pluggy.PluginManager, name: str) -> list[Any]:
    """Hook ``name``'s implementations in pluggy's call order (wrappers left out)."""
    return [impl for impl in reversed(getattr(pm.hook, name).get_hookimpls())
            if not (impl.hookwrapper or getattr(impl, "wrapper", False))]


def call_one(impl: Any, name: str, problems: list[PluginProblem],
             accept: Callable[[Any], Any] | None = None, **kwargs: Any) -> tuple[bool, Any]:
    """Call one implementation; ``(False, None)`` (and a problem naming the plugin) if it raises.

    :param accept: turns the answer into the value kept, raising when it is malformed.
    """
    try:
        answer = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        return True, accept(answer) if accept else answer
    except (Exception, SystemExit) as exc:
        problems.append(hook_problem(impl.plugin_name, name, exc))
        return False, None


def call_hook(pm: pluggy.PluginManager, name: str, problems: list[PluginProblem],
              accept: Callable[[Any], Any] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call each plugin's implementation of hook ``name``, one by one (see :func:`call_one`).

    :returns: ``(plugin name, answer)`` for every plugin that answered well.
    """
    out = []
    for impl in implementations(pm, name):
        ok, answer = call_one(impl, name, problems, accept, **kwargs)
        if ok:
            out.append((impl.plugin_name, answer))
    return out


def hook_problem(plugin: str, hook: str, exc: BaseException) -> PluginProblem:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return PluginProblem(plugin, f"{hook} failed ({text[:200]}); skipped")


@dataclass
class Registry:
    """Every kata from every pack, in ladder order, with the problems met on the way."""

    packs: dict[str, Pack] = field(default_factory=dict)
    katas: list[Kata] = field(default_factory=list)
    levels: dict[int, str] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    plugins: dict[str, str] = field(default_factory=dict)  # pack name -> plugin that declared it

    def get(self, kata_id: str) -> Kata:
        return next(k for k in self.katas if k.id == kata_id)

    def pack_of(self, kata: Kata) -> Pack:
        return self.packs[kata.pack]

    def by_level(self) -> dict[int, list[Kata]]:
        out: dict[int, list[Kata]] = {}
        for kata in self.katas:
            out.setdefault(kata.level, []).append(kata)
        return dict(sorted(out.items()))


def build_registry(pm: pluggy.PluginManager, problems: list[PluginProblem] | None = None) -> Registry:
    reg = Registry(problems=list(problems or []))
    owner: dict[str, str] = {}
    level_owner: dict[int, str] = {}
    for impl in pm.hook.attnkata_packs.get_hookimpls():  # registration order: built-ins first
        plugin = impl.plugin_name
        try:
            answer = impl.function()
            packs = [answer] if isinstance(answer, Pack) else list(answer or [])
            for pack in packs:
                if not isinstance(pack, Pack):
                    raise MetadataError(f"attnkata_packs returned {type(pack).__name__}, not Pack")
        except (Exception, SystemExit) as exc:
            reg.problems.append(PluginProblem(plugin, f"attnkata_packs failed: {type(exc).__name__}: {exc}"))
            continue
        for pack in packs:
            try:
                _add_pack(reg, pack, plugin, owner, level_owner)
            except Exception as exc:  # e.g. levels that are not a dict
                reg.problems.append(PluginProblem(plugin, f"malformed pack {pack.name!r}: "
                                                          f"{type(exc).__name__}: {exc}"))
    reg.katas.sort(key=lambda k: k.level)  # stable: registration order within a level
    return reg


def _add_pack(reg: Registry, pack: Pack, plugin: str, owner: dict[str, str],
              level_owner: dict[int, str]) -> None:
    if pack.name in reg.packs:
        reg.problems.append(PluginProblem(plugin, f"pack name {pack.name!r} is already registered"))
        return
    accepted = []
    for kata in pack.katas:
        try:
            if not isinstance(kata, Kata):
                raise MetadataError(f"{kata!r:.60} is not a Kata")
            kata.validate()
        except Exception as exc:  # MetadataError, or validate() tripping on odd metadata
            reg.problems.append(PluginProblem(plugin, f"malformed kata metadata: {exc}"))
            continue
        first = owner.get(kata.id, plugin if kata.id in {k.id for k in accepted} else None)
        if first is not None:
            reg.problems.append(PluginProblem(
                plugin, f"duplicate kata id {kata.id!r} (already registered by {first!r}); "
                        f"this copy is ignored"))
            continue
        accepted.append(kata)
    moved = _place_levels(reg, pack, accepted, plugin, level_owner)  # raises on malformed levels
    owner.update((kata.id, plugin) for kata in accepted)
    reg.packs[pack.name] = pack
    reg.plugins[pack.name] = plugin
    for level, title in pack.levels.items():
        reg.levels.setdefault(moved.get(level, level), title)
    for kata in accepted:
        kata = replace(kata, pack=pack.name, level=moved.get(kata.level, kata.level))
        reg.katas.append(kata)
        reg.levels.setdefault(kata.level, f"Level {kata.level}")


def _place_levels(reg: Registry, pack: Pack, katas: list[Kata], plugin: str,
                  level_owner: dict[int, str]) -> dict[int, int]:
    """Give ``pack`` the levels it claims (named in ``levels=`` or holding one of its katas).

    A level is the first pack's: a later pack claiming the same number keeps its katas,
    moved to the next number no pack uses, and the move is reported naming both packs.

    :returns: ``{claimed level: level used}`` for the levels that moved.
    """
    claimed = set(pack.levels) | {k.level for k in katas}
    taken = set(level_owner) | claimed
    moved: dict[int, int] = {}
    for level in sorted(claimed):
        first = level_owner.get(level)
        if first is None or first == pack.name:
            level_owner[level] = pack.name
            continue
        moved[level] = new = max(taken) + 1
        taken.add(new)
        level_owner[new] = pack.name
        ids = ", ".join(k.id for k in katas if k.level == level) or "none"
        reg.problems.append(PluginProblem(plugin, (
            f"pack {pack.name!r} claims level {level}, which pack {first!r} already holds "
            f"({reg.levels.get(level, f'Level {level}')!r}): its level {level} is shown as level "
            f"{new} instead (its katas there: {ids}). Give the pack a level number no other pack uses.")))
    return moved


def pack_files(pack: Pack) -> list[Path]:
    """Every file of ``pack``'s stub tree, relative to it (bytecode caches left out)."""
    root = Path(pack.katas_dir)
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def copy_stubs(pack: Pack, files: list[Path], katas_dir: Path, *, force: bool = False):
    """Copy ``files`` of ``pack``'s stub tree into ``katas_dir``, never over a learner's file
    unless ``force``.

    :returns: ``(copied, overwritten, kept, identical)`` lists of relative paths.
    """
    import shutil

    copied, replaced, kept, same = [], [], [], []
    for rel in files:
        src, dst = Path(pack.katas_dir) / rel, katas_dir / rel
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            same.append(rel)
        elif dst.exists() and not force:
            kept.append(rel)
        else:
            (replaced if dst.exists() else copied).append(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return copied, replaced, kept, same


def not_copied(registry: Registry, katas_dir: Path) -> dict[str, list[Kata]]:
    """Per pack, its katas with no stub in the learner's ``katas_dir``, when the pack keeps
    its stubs elsewhere (a third-party pack, until ``attnkata init PACK`` copies them)."""
    out: dict[str, list[Kata]] = {}
    for kata in registry.katas:
        pack = registry.pack_of(kata)
        if not (katas_dir / kata.path).exists() and Path(pack.katas_dir).resolve() != katas_dir.resolve():
            out.setdefault(pack.name, []).append(kata)
    return out


def load_registry(*, entrypoints: bool = True) -> tuple[pluggy.PluginManager, Registry]:
    pm, problems = get_plugin_manager(entrypoints=entrypoints)
    return pm, build_registry(pm, problems)
