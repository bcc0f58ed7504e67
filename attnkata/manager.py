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
from typing import Any, Callable

import pluggy

from . import hookspecs
from .model import Kata, MetadataError, Pack

BUILTIN_PLUGINS = (
    "attnkata_plugins.core",
    "attnkata_plugins.claims",
    "attnkata_plugins.readiness",
    "attnkata_plugins.bench",
    "attnkata_plugins.kvlab",
    "attnkata_plugins.paged_demo",
)


@dataclass(frozen=True)
class PluginProblem:
    plugin: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.message}"


def get_plugin_manager(*, entrypoints: bool = True) -> tuple[pluggy.PluginManager, list[PluginProblem]]:
    pm = pluggy.PluginManager("attnkata")
    pm.add_hookspecs(hookspecs)
    problems: list[PluginProblem] = []
    for name in BUILTIN_PLUGINS:
        _register(pm, name, lambda name=name: importlib.import_module(name), problems)
    if entrypoints:
        for ep in entry_points(group="attnkata"):
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
                _add_pack(reg, pack, plugin, owner)
            except Exception as exc:  # e.g. levels that are not a dict
                reg.problems.append(PluginProblem(plugin, f"malformed pack {pack.name!r}: "
                                                          f"{type(exc).__name__}: {exc}"))
    reg.katas.sort(key=lambda k: k.level)  # stable: registration order within a level
    return reg


def _add_pack(reg: Registry, pack: Pack, plugin: str, owner: dict[str, str]) -> None:
    if pack.name in reg.packs:
        reg.problems.append(PluginProblem(plugin, f"pack name {pack.name!r} is already registered"))
        return
    reg.packs[pack.name] = pack
    for level, title in pack.levels.items():
        reg.levels.setdefault(level, title)
    for kata in pack.katas:
        try:
            if not isinstance(kata, Kata):
                raise MetadataError(f"{kata!r:.60} is not a Kata")
            kata.validate()
        except Exception as exc:  # MetadataError, or validate() tripping on odd metadata
            reg.problems.append(PluginProblem(plugin, f"malformed kata metadata: {exc}"))
            continue
        if kata.id in owner:
            reg.problems.append(PluginProblem(
                plugin, f"duplicate kata id {kata.id!r} (already registered by {owner[kata.id]!r}); "
                        f"this copy is ignored"))
            continue
        owner[kata.id] = plugin
        reg.katas.append(replace(kata, pack=pack.name))
        reg.levels.setdefault(kata.level, f"Level {kata.level}")


def load_registry(*, entrypoints: bool = True) -> tuple[pluggy.PluginManager, Registry]:
    pm, problems = get_plugin_manager(entrypoints=entrypoints)
    return pm, build_registry(pm, problems)
