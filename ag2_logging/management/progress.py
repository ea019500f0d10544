"""The progress bar of the app's long management commands (prune, reprice): tqdm, on stderr."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no type information


class ProgressBar:
    """A ``bar(done, total)`` callback drawing a tqdm bar labelled ``label`` on ``stream``
    (stderr by default). The bar opens at the first call, follows ``total`` if it changes, redraws
    at most every ``interval`` seconds, and closes (leaving its last line) once ``done`` reaches
    ``total``; a later call opens a new bar."""

    def __init__(self, label: str, *, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=total,
                desc=self.label,
                file=self.stream,
                mininterval=self.interval,
                unit="row",
                # The line the commands always drew, now tqdm's: "repricing [####......] 3/10 (30%)",
                # then the elapsed and remaining time and the rate.
                bar_format="{desc} [{bar:30}] {n_fmt}/{total_fmt} ({percentage:.0f}%) {elapsed}<{remaining}, {rate_fmt}",
                ascii=".#",
                leave=True,
            )
        bar = self._bar
        if bar.total != total:
            bar.total = total
            bar.refresh()
        if done > bar.n:
            bar.update(done - bar.n)
        if total <= 0 or done >= total:
            bar.close()
            self._bar = None

    def close(self) -> None:
        """Close a bar left open (a command that stopped before its total)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
