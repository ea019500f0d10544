"""The thorough sanitize pass: journal lines (LLM calls) per second, one journal of 100,000 calls.

The journal is made from the lines the real recorder wrote for one call (the hot path's ~2 KB
request and ~1 KB response, bodies kept), as ``bench_ingest`` makes it: every call has its own
ids, the bodies repeat as a conversation's system prompt and history do. ``ours`` is
``ag2_logging.pipeline.sanitize.sanitize_journal`` over the whole journal (read, every line
parsed, every string redacted with ``thorough=True``, nothing to rewrite). The reference is the
pass as it was before issue 19 (every pattern of the table on every string, only strings of up
to 256 characters remembered: the oracle kept in ``tests/test_redaction_equivalence.py`` with
that memo) over the first 2,000 lines of the same journal, timed in the same run.

Run alone with ``python -m bench.bench_sanitize [--quick]``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import row, run_dir, setup_django

TARGET_CALLS_PER_S = 10_000


def _previous_pass() -> Any:
    """The previous pass's walk: the oracle, with the memo it had (strings up to 256
    characters: keys, agent names, models, statuses)."""
    from tests.test_redaction_equivalence import OldWalker

    memo: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}

    class Previous(OldWalker):
        def _string(self, text: str) -> str:
            if not self.thorough or len(text) > 256:
                return super()._string(text)
            found = memo.get(text)
            if found is None:
                local: dict[str, int] = {}
                found = memo[text] = (OldWalker(local, True)._string(text), tuple(local.items()))
            for kind, n in found[1]:
                if self.counts is not None:
                    self.counts[kind] = self.counts.get(kind, 0) + n
            return text if not found[1] else found[0]

    return Previous


def _reference(path: Path, lines: int) -> float:
    """Seconds per line of the previous pass over the first ``lines`` lines of ``path``."""
    import orjson

    previous = _previous_pass()
    start = time.perf_counter()
    with open(path, "rb") as fh:
        raw = [fh.readline() for _ in range(lines)]
    for line in raw:
        record = orjson.loads(line)
        rest = {k: v for k, v in record.items() if k not in ("totals", "redactions", "sanitized")}
        previous({}, True).value(rest, 64)
    return (time.perf_counter() - start) / len(raw)


def _ours(path: Path) -> tuple[float, int]:
    """Seconds per line of ``sanitize_journal`` over the whole journal, and what it removed."""
    from ag2_logging.pipeline.sanitize import sanitize_journal

    start = time.perf_counter()
    result = sanitize_journal(path)
    elapsed = time.perf_counter() - start
    return elapsed, sum(result.counts.values())


def run(quick: bool = False) -> list[dict[str, Any]]:
    from bench.bench_ingest import _template, write_journal

    setup_django()
    calls = 5_000 if quick else 100_000
    reference_lines = 500 if quick else 2_000
    path = run_dir() / "sanitize" / "journal.jsonl"
    write_journal(path, _template(), calls)
    try:
        gc.collect()
        reference = _reference(path, reference_lines)
        elapsed, removed = _ours(path)
        assert removed == 0, "the recorder's journal holds nothing to remove"
        # Repeat the reference after ours: drift on a shared machine hits both.
        reference = min(reference, _reference(path, reference_lines))
    finally:
        path.unlink(missing_ok=True)
    per_s = (calls + 2) / elapsed
    reference_per_s = 1 / reference
    return [
        row(
            f"sanitize pass (thorough) over a journal of {calls:,} calls",
            f"{per_s:,.0f} calls/s",
            f"{reference_per_s:,.0f} calls/s every pattern, short strings remembered",
            reference_per_s / per_s,
            f">= {TARGET_CALLS_PER_S:,} calls/s",
            per_s >= TARGET_CALLS_PER_S,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import table

    rows = run(quick="--quick" in (argv if argv is not None else sys.argv[1:]))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
