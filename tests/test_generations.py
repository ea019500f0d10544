"""The suite is split by AG2 generation (tests/conftest.py): check that the split sees what it should."""

from __future__ import annotations

import re

from tests.conftest import AG2_ONLY, CLASSIC_ONLY, TESTS_DIR


def test_classic_modules_are_found() -> None:
    assert "test_classic.py" in CLASSIC_ONLY
    # a module that imports tests.test_classic needs autogen too, wherever the import is
    importing = re.compile(r"^\s*from tests\.test_classic import", re.M)
    for path in TESTS_DIR.glob("test_*.py"):
        if importing.search(path.read_text(encoding="utf-8")):
            assert path.name in CLASSIC_ONLY


def test_ag2_tests_live_in_tests_ag2() -> None:
    assert AG2_ONLY == ["ag2"], "modules outside tests/ag2 import ag2: move them there"
    assert list((TESTS_DIR / "ag2").glob("test_*.py")), "tests/ag2 holds the ag2 1.x tests"


def test_generation_neutral_modules_are_shared() -> None:
    shared = [p.name for p in TESTS_DIR.glob("test_*.py") if p.name not in CLASSIC_ONLY]
    assert {"test_checks.py", "test_generations.py", "test_migrations.py", "test_pricing.py"} <= set(shared)
    assert "test_example_project.py" in shared  # the demo runs on either generation
