"""``make test-lowest``: each AG2 generation's integration tests on the lowest version its extra allows.

For each generation the lowest version is read from the ``>=`` bound of its extra in
pyproject.toml (``classic``: ``autogen``, ``ag2``: ``ag2``). When the generation's own virtualenv
already runs that version, ``make test`` covers it and nothing more is done. Otherwise a
throwaway virtualenv ``.venv-lowest-<generation>`` gets the package with that exact version
(rebuilt only when the pin or pyproject.toml changes) and runs the generation's tests in it.

    python scripts/test_lowest.py [--python python3] [--uv PATH] [--only classic|ag2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Generation:
    extra: str
    venv: str  # the generation's own virtualenv (make venv / make venv-ag2)
    tests: tuple[str, ...]


GENERATIONS = (
    Generation("classic", ".venv", ("tests/test_classic.py",)),
    Generation("ag2", ".venv-ag2", ("tests/ag2",)),
)


def lowest_pin(extra: str) -> tuple[str, str, str]:
    """(distribution, lowest version, requirement pinned to it) of the extra's AG2 package."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = project["optional-dependencies"][extra]
    requirement = Requirement(spec)
    lows = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    if len(lows) != 1:
        raise SystemExit(f"test-lowest: the {extra!r} extra ({spec}) needs exactly one lower bound")
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return requirement.name, lows[0], f"{requirement.name}{extras}=={lows[0]}"


def installed_version(python: Path, distribution: str) -> str | None:
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_venv(path: Path, pin: str, base_python: str, uv: str | None) -> Path:
    python = path / "bin" / "python"
    stamp = path / ".installed"
    key = hashlib.sha256((pin + "\n").encode() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == key and python.exists():
        return python
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([base_python, "-m", "venv", str(path)], check=True)
    installer = (
        [uv, "pip", "install", "--python", str(python)] if uv else [str(python), "-m", "pip", "install"]
    )
    subprocess.run([*installer, "--quiet", "-e", ".[test]", pin], cwd=ROOT, check=True)
    stamp.write_text(key)
    return python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3", help="interpreter that creates the virtualenvs")
    parser.add_argument("--uv", help="install with this uv (make test-lowest passes its own) instead of pip")
    parser.add_argument("--only", choices=[g.extra for g in GENERATIONS])
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}  # SQLite
    for generation in GENERATIONS:
        if args.only and generation.extra != args.only:
            continue
        distribution, lowest, pin = lowest_pin(generation.extra)
        current = installed_version(ROOT / generation.venv / "bin" / "python", distribution)
        if current == lowest:
            print(f"test-lowest: {generation.extra}: {generation.venv} runs {distribution} {lowest}: covered")
            continue
        print(f"test-lowest: {generation.extra}: {pin} (make test runs {distribution} {current or '-'})")
        python = ensure_venv(ROOT / f".venv-lowest-{generation.extra}", pin, args.python, args.uv)
        version = installed_version(python, distribution)
        if version != lowest:
            raise SystemExit(
                f"test-lowest: expected {distribution} {lowest} in the virtualenv, got {version}"
            )
        cmd = [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *generation.tests,
            *args.pytest_args,
        ]
        if subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode != 0:
            print(f"test-lowest: {generation.extra} FAILED on {distribution} {lowest}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
