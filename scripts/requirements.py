"""Print the requirements of this project with the given extras, one per line (``pip install -r``).

``make venvs`` installs the dependencies of several virtualenvs side by side from these lists,
then the project itself into each (``pip install --no-deps -e .``) one at a time: an editable
install writes its metadata into the checkout, which two installs must not write at once.

    python scripts/requirements.py classic test dev live > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    name = re.escape(project["name"])
    optional = project.get("optional-dependencies", {})
    wanted, seen, out = list(extras), set(), list(project["dependencies"])
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"requirements.py: no extra {extra!r} in {PYPROJECT}")
        seen.add(extra)
        for spec in optional[extra]:
            itself = re.fullmatch(rf"{name}\[([^\]]+)\]", spec.strip())
            if itself:  # the project's own extras, named from another extra
                wanted += [e.strip() for e in itself.group(1).split(",")]
            else:
                out.append(spec)
    return out


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
