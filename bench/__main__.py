"""``python -m bench [--quick] [--only NAME ...] [--except NAME ...] [--json PATH] [--strict]``

Runs every ``bench/bench_*.py`` module's ``run(quick)`` and prints one table: figure, ours,
reference, ratio (ours / reference), target, pass/fail. Exits 0 whatever the timings say (CI
runs ``--quick`` as a smoke test); ``--strict`` exits 1 when a target is missed. A benchmark that
crashes always exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ORDER = [
    "hot_path",
    "export",
    "ag2",
    "logging_off",
    "startup",
    "redaction",
    "pricing",
    "ingest",
    "memory",
    "reports",
]
KEYS = ("figure", "ours", "reference", "ratio", "target", "ok")


def discover() -> list[str]:
    names = sorted(p.stem[len("bench_") :] for p in Path(__file__).parent.glob("bench_*.py"))
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def load() -> str:
    """The load average at the start: figures taken on a busy machine are slower, ratios less so."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return ""
    return f", load average {one:.1f} / {five:.1f}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    header = ["figure", "ours", "reference", "ratio", "target", "result"]
    lines = []
    for r in rows:
        ratio = r.get("ratio")
        lines.append(
            [
                _cell(r.get("figure")),
                _cell(r.get("ours")),
                _cell(r.get("reference")),
                f"{ratio:.3g}x" if isinstance(ratio, int | float) else _cell(ratio),
                _cell(r.get("target")),
                {True: "pass", False: "FAIL", None: "-"}.get(r.get("ok"), _cell(r.get("ok"))),
            ]
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]
    out = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI); figures are rougher")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these ({', '.join(discover())})")
    parser.add_argument(
        "--except", dest="skip", nargs="+", default=[], metavar="NAME", help="run all but these"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)

    unknown = sorted((set(args.only or []) | set(args.skip)) - set(discover()))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (there are: {', '.join(discover())})")
    names = [name for name in args.only or discover() if name not in args.skip]
    scratch = Path(tempfile.mkdtemp(prefix="ag2-bench-"))
    os.environ["AG2_BENCH_RUN_DIR"] = str(scratch)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    print(f"# {'quick ' if args.quick else ''}benchmarks on {machine()}{load()}", flush=True)
    rows: list[dict[str, Any]] = []
    crashed = False
    started = time.monotonic()
    try:
        for name in names:
            t0 = time.monotonic()
            try:
                module = importlib.import_module(f"bench.bench_{name}")
                got = module.run(quick=args.quick)
            except Exception:
                crashed = True
                traceback.print_exc()
                got = [dict.fromkeys(KEYS) | {"figure": f"{name}: crashed (see above)", "ok": False}]
            rows += got
            print(f"# {name}: {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(table(rows))
    print(f"# {len(rows)} figures in {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine(), "quick": args.quick, "rows": rows}, indent=2)
        )
    if crashed:
        return 1
    if args.strict and any(r.get("ok") is False for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
