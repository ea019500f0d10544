"""Start-up with logging off: ``django.setup()`` with the app installed against without it.

Every ``manage.py`` command and every worker start pays what ``AppConfig.ready()`` imports; with
logging off that must be next to nothing (the recorder, genai-prices and the redaction engine are
only imported when logging is on). Each figure is the median wall time of a fresh interpreter
running ``django.setup()`` (runs alternate between the two settings, so drift hits both alike).
Target: within 50 ms of the project without the app.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from bench._common import REPO, row

TARGET_S = 0.050
CODE = "import django; django.setup()"


def _once(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE], cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def run(quick: bool = False) -> list[dict[str, Any]]:
    import os

    base = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "AG2_BENCH_LOGGING": "off"}
    variants = {
        "without": {**base, "AG2_BENCH_WITHOUT_APP": "1"},
        "off": base,
        "on": {**base, "AG2_BENCH_LOGGING": "on"},
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3 if quick else 21):
        for name, env in variants.items():
            samples[name].append(_once(env))
    median = {name: statistics.median(values) for name, values in samples.items()}
    extra_off = median["off"] - median["without"]
    extra_on = median["on"] - median["without"]
    return [
        row(
            "Start-up (django.setup()), app installed, logging off",
            f"+{extra_off * 1e3:.0f} ms",
            f"{median['without'] * 1e3:.0f} ms without the app",
            median["off"] / median["without"],
            "< +50 ms",
            extra_off < TARGET_S,
        ),
        row(
            "Start-up (django.setup()), app installed, logging on",
            f"+{extra_on * 1e3:.0f} ms",
            f"{median['without'] * 1e3:.0f} ms without the app",
            median["on"] / median["without"],
            "",
            None,
        ),
    ]
