"""AG2 integrations, one module per generation; neither generation is required.

``classic`` (the ``autogen`` package, 0.x) is attached automatically through AG2's runtime
logging. ``ag2`` (1.x) is attached per agent with a middleware (see its module).

Attaching needs the generation's package imported, which takes seconds (``autogen`` imports the
OpenAI SDK and its clients: about 3 s on a 2-core VM). A process with logging on attaches when
the project imports the package (``install_integrations_on_import``), not at start-up, so a
``manage.py migrate`` that never builds an agent does not pay for it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Sequence
from functools import cache
from types import ModuleType
from typing import Any

from ag2_logging.integrations import pending

logger = logging.getLogger("ag2_logging")

#: The import name of each generation's package.
PACKAGES = {"classic": "autogen", "ag2": "ag2"}


def _has_module(name: str) -> bool:
    """``name`` (``package`` or ``package.module``) can be imported; found without importing it."""
    package, _, _ = name.partition(".")
    if package in sys.modules or package == name:
        return importlib.util.find_spec(name) is not None
    spec = importlib.util.find_spec(package)  # a top-level name: nothing is imported
    if spec is None or spec.submodule_search_locations is None:
        return False
    found = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
    return found is not None


@cache
def classic_available() -> bool:
    return _has_module("autogen") and _has_module("autogen.runtime_logging")


@cache
def ag2_available() -> bool:
    return _has_module("ag2")


def installed_generations() -> list[str]:
    return [name for name, ok in (("classic", classic_available()), ("ag2", ag2_available())) if ok]


def _install(generation: str) -> None:
    module = sys.modules.get(f"ag2_logging.integrations.{generation}")
    spec = getattr(module, "__spec__", None)
    if module is not None and getattr(spec, "_initializing", False):
        pending.wait(generation)  # it is importing the package: it attaches when it has loaded
        return
    _attach(generation)


def _attach(generation: str) -> None:
    if generation == "classic":
        from ag2_logging.integrations import classic

        if not classic.is_installed():
            classic.install()
    else:
        # ag2 1.x: the hook on the OpenAI SDK's request boundary, so a call made inside a session
        # by an agent without ``logging_middleware()`` is recorded too (idempotent).
        from ag2_logging.integrations import ag2

        ag2.install()


def install_integrations() -> None:
    """Attach to every AG2 generation that can be attached process-wide (idempotent; imports
    each installed generation's package)."""
    if classic_available():
        _install("classic")
    if ag2_available():
        _install("ag2")


def install_integrations_on_import() -> None:
    """Attach to each installed generation whose package is imported, now, and to the others
    right after the process imports them: once the package's ``__init__`` has run, before the
    project can build an agent or a client with it (idempotent; imports nothing itself)."""
    waiting = []
    for generation, available in (("classic", classic_available), ("ag2", ag2_available)):
        if not available():
            continue
        if PACKAGES[generation] in sys.modules:
            _install(generation)
        else:
            waiting.append(generation)
    if waiting:
        _AttachAfterImport.watch(waiting)


class _AttachAfterImport(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that finds nothing itself: for a watched package it takes the
    spec the other finders give and has its loader attach the generation right after the
    package's module has run. Once every watched package is in it stays, finding nothing (the
    import system walks ``sys.meta_path`` while a finder runs: a finder must not remove itself)."""

    _lock = threading.Lock()
    _finder: _AttachAfterImport | None = None

    def __init__(self) -> None:
        self.waiting: dict[str, str] = {}  # package -> generation

    @classmethod
    def watch(cls, generations: Sequence[str]) -> None:
        with cls._lock:
            if cls._finder is None or all(finder is not cls._finder for finder in sys.meta_path):
                cls._finder = cls()
                sys.meta_path.insert(0, cls._finder)
            cls._finder.waiting.update({PACKAGES[g]: g for g in generations})

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> Any:
        with self._lock:
            generation = self.waiting.pop(fullname, None)
        if generation is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if finder is self or find is None else find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenAttach(spec.loader, generation)
        return spec


class _ThenAttach(importlib.abc.Loader):
    """The package's own loader, then ``_install(generation)``; the module keeps its own loader."""

    def __init__(self, loader: Any, generation: str) -> None:
        self.loader, self.generation = loader, generation

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        try:
            _install(self.generation)
        except Exception:  # the project's import goes on; recording this generation does not
            logger.exception(
                "ag2_logging: could not attach to %s after its import", PACKAGES[self.generation]
            )
