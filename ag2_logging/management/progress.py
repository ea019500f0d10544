"""A dependency-free progress bar for the app's long management commands (written to stderr)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``bar(done, total)``; redraws at most every ``interval`` seconds, and once at the end."""

    def __init__(
        self, label: str, *, stream: TextIO | None = None, width: int = 30, interval: float = 0.2
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = total > 0 and done >= total
        if not finished and now - self._last < self.interval:
            return
        self._last = now
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} ({fraction:.0%})"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if finished else ""))
        elif finished or done == 0 or int(fraction * 10) != int((done - 1) / max(total, 1) * 10):
            self.stream.write(line + "\n")
        self.stream.flush()
