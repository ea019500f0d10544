"""The package's layout, read from its own imports: no cycle, no arrow against the flow, AG2 only
in integrations/, no ORM in capture/, and nothing heavy imported at start-up with logging off.

Every import counts, at module level or inside a function (a lazy import is still an arrow), but
not those under ``if TYPE_CHECKING:``. The deprecated aliases of moved modules are left out.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ag2_logging"
ALIASES = {
    "ag2_logging.sessions", "ag2_logging.context", "ag2_logging.recorder", "ag2_logging.journal",
    "ag2_logging.runtime_log", "ag2_logging.spill", "ag2_logging.ingest",
    "ag2_logging.ingest_rows", "ag2_logging.sanitize", "ag2_logging.rollups", "ag2_logging.recovery",
    "ag2_logging.retention", "ag2_logging.reprice", "ag2_logging.legacy_import",
    "ag2_logging.price_overrides", "ag2_logging.charts", "ag2_logging.exports", "ag2_logging.admin_views",
}  # fmt: skip

#: Rank of each part along the flow: a module imports only modules of its rank or below. Capture
#: (the caller's process) hands off to the pipeline; the pipeline writes rows; reports, tasks and
#: the admin sit on top. The journal's file formats are shared by capture and pipeline (rank 1).
RANKS: list[tuple[str, int]] = [
    ("ag2_logging.serialize", 0),
    ("ag2_logging.formats", 0),  # number and money text, the standard library only
    ("ag2_logging.capture.journal", 1),
    ("ag2_logging.capture.runtime_log", 1),
    ("ag2_logging.pricing.cache", 1),  # reads ModelPrice rows
    ("ag2_logging.conf", 0),
    ("ag2_logging.signals", 0),
    ("ag2_logging.events", 0),
    ("ag2_logging.pricing", 0),
    ("ag2_logging.redaction", 0),
    ("ag2_logging.models", 1),
    ("ag2_logging.querysets", 1),
    ("ag2_logging.migrations", 1),
    ("ag2_logging.pipeline", 2),
    ("ag2_logging.export", 2),  # called by the pipeline after summarize; reads rows only
    ("ag2_logging.budgets", 2),  # the ledger and the pre-call check the integrations call
    # The live counters' writer (the heartbeat hands it work); the rest reads for the live page.
    ("ag2_logging.live.counters", 2),
    ("ag2_logging.live", 6),
    ("ag2_logging.capture", 3),
    ("ag2_logging.integrations", 4),
    ("ag2_logging.tasks", 5),
    ("ag2_logging.reports", 5),
    ("ag2_logging.decorators", 6),
    ("ag2_logging.middleware", 6),
    ("ag2_logging.log", 6),
    ("ag2_logging.testing", 6),
    ("ag2_logging.templatetags", 6),
    ("ag2_logging.checks", 7),
    ("ag2_logging.admin", 7),
    ("ag2_logging.management", 7),
    ("ag2_logging.apps", 8),
    ("ag2_logging", 8),  # the public API
]


def rank(module: str) -> int:
    for prefix, value in RANKS:
        if module == prefix or module.startswith(prefix + "."):
            return value
    raise AssertionError(f"{module} has no place in RANKS: give it one")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    return {name: path for name, path in found.items() if name not in ALIASES}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, name: str) -> Iterator[str]:
    """Every module ``name`` imports, resolved (``from ag2_logging import x`` names module x)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for block in ast.walk(tree) if _type_checking(block) for n in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = set(modules()) | ALIASES
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
            yield from (n for n in names if n in known)
            if any(n not in known for n in names):  # a name defined in ``base`` itself
                yield base


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for target in imports(path, name):
            while target and target not in mods and "." in target:
                target = target.rpartition(".")[0]  # a name inside a module
            if target in mods and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == [], cycles


def test_no_arrow_against_the_flow() -> None:
    against = sorted(
        f"{src} -> {dst}" for src, targets in graph().items() for dst in targets if rank(dst) > rank(src)
    )
    assert against == []


def test_only_integrations_import_ag2() -> None:
    found = sorted(
        f"{name} imports {target}"
        for name, path in modules().items()
        for target in imports(path, name)
        if target.split(".")[0] in {"autogen", "ag2"} and not name.startswith("ag2_logging.integrations")
    )
    assert found == []


def test_capture_never_imports_the_orm() -> None:
    orm = ("ag2_logging.models", "ag2_logging.querysets", "django.db.models", "django.contrib")
    found = sorted(
        f"{name} imports {target}"
        for name, path in modules().items()
        if name.startswith("ag2_logging.capture")
        for target in imports(path, name)
        if target.startswith(orm)
    )
    assert found == []


def test_no_function_over_sixty_lines() -> None:
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


@pytest.mark.parametrize(
    "heavy", ["genai_prices", "re2", "celery", "autogen", "ag2_logging.capture.recorder"]
)
def test_logging_off_imports_nothing_heavy_at_start_up(heavy: str) -> None:
    code = f"import django, sys; django.setup(); print({heavy!r} in sys.modules)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "AG2_BENCH_LOGGING": "off"}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
