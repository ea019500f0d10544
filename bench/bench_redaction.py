"""Redaction cost per LLM call: a typical ~2 KB request + response, clean and with several secrets.

``ours`` is ``ag2_logging.redaction.redact()`` on the request and on the response, as the hot path
runs it (one RE2 scan of the serialized value decides the clean case; the walk and the Python
patterns run only when something is found). The reference is the naive design the issue measured:
one Python ``re`` alternation of ~20 secret patterns substituted over the JSON text of each.
Also shown: ``redact_json`` (the recorder's entry point, from serialized bytes), the request with
secrets when every one of its strings is new (nothing remembered from an earlier call: results of
identical strings are remembered, and a conversation repeats its system prompt and history on
every call, as the bench repeats its request), and the thorough mode of the sanitize pass.

Run alone with ``python -m bench.bench_redaction [--quick]``.
"""

from __future__ import annotations

import copy
import re
import sys
from typing import Any

from bench._common import interleaved, make_request, make_response, row, us

TARGET_CLEAN_SECONDS = 12e-6
TARGET_DIRTY_SECONDS = 40e-6

# The naive reference: one alternation, no prefilter, run over the serialized JSON.
_NAIVE = re.compile(
    "|".join(
        [
            r"sk-ant-[A-Za-z0-9_\-]{20,}",
            r"sk-[A-Za-z0-9_\-]{20,}",
            r"AKIA[0-9A-Z]{16}",
            r"AIza[0-9A-Za-z_\-]{35}",
            r"gh[pousr]_[A-Za-z0-9]{36,}",
            r"github_pat_[A-Za-z0-9_]{22,}",
            r"glpat-[A-Za-z0-9_\-]{20,}",
            r"xox[abposr]-[A-Za-z0-9\-]{10,}",
            r"hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",
            r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
            r"npm_[A-Za-z0-9]{36}",
            r"pypi-AgE[A-Za-z0-9_\-]{50,}",
            r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
            r"SK[0-9a-fA-F]{32}",
            r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
            r"[Bb]earer\s+[A-Za-z0-9._~+/\-]{8,}",
            r"[a-z][a-z0-9+.\-]*://[^\s:/@\"]+:[^\s@/\"]+@",
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?-----END[A-Z ]*PRIVATE KEY-----",
            r"[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*\s*=\s*[^\s\"']+",
            r"(?:password|api_key|access_token|secret)=[^\s&\"']+",
        ]
    )
)


def _naive(value: Any) -> Any:
    import orjson

    return orjson.loads(_NAIVE.sub("[REDACTED]", orjson.dumps(value).decode()))


def _bodies() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(request, response, request with secrets): plain JSON, as the recorder hands them over."""
    request = make_request()
    response = make_response().model_dump(mode="json", warnings=False)
    dirty = copy.deepcopy(request)
    messages = dirty["messages"]
    messages[1]["content"] += (
        " Use key sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdFgHjKlZxCvBnM and the replica "
        "postgres://billing:Tr0ub4dor-3x@db.internal:5432/billing; token ghp_4fG7hJ9kL2mN5pQ8rS1tU3vW6xY0zA2bC4dE."
    )
    messages[3]["content"] += (
        " AWS: AKIAIOSFODNN7EXAMPLE, header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x9"
    )
    dirty["extra_headers"] = {"X-Api-Key": "e5f1a9c3b7d24f6e8a0c2e4b6d8f0a1c"}
    return request, response, dirty


def run(quick: bool = False) -> list[dict[str, Any]]:
    import orjson

    from ag2_logging.redaction import HAVE_RE2, forget_results, redact, redact_json
    from ag2_logging.serialize import dumps

    request, response, dirty = _bodies()
    size = len(orjson.dumps(request)) + len(orjson.dumps(response))
    # The figures are only worth something if the work is really done.
    assert redact(request) is request and redact(response) is response
    cleaned = orjson.dumps(redact(dirty)).decode()
    for secret in ("Zq8c1x9VbN3mK2pL7wR4", "Tr0ub4dor-3x", "AKIAIOSFODNN7EXAMPLE", "e5f1a9c3b7d24f6e8a0c"):
        assert secret not in cleaned, secret
    raw_request, raw_response = dumps(request), dumps(response)

    def case(fn: Any, *values: Any) -> Any:
        def calls(n: int) -> None:
            for _ in range(n):
                for value in values:
                    fn(value)

        return calls

    def fresh(n: int) -> None:
        for _ in range(n):
            forget_results()
            redact(dirty), redact(response)

    medians = interleaved(
        {
            "clean": case(redact, request, response),
            "clean_naive": case(_naive, request, response),
            "clean_bytes": case(redact_json, raw_request, raw_response),
            "dirty": case(redact, dirty, response),
            "dirty_naive": case(_naive, dirty, response),
        },
        rounds=6 if quick else 25,
        warmup_rounds=1 if quick else 3,
        block_seconds=0.01 if quick else 0.04,
    )
    fresh_median = interleaved(
        {"dirty_fresh": fresh, "dirty_naive": case(_naive, dirty, response)},
        rounds=4 if quick else 10,
        warmup_rounds=1,
        block_seconds=0.01 if quick else 0.02,
    )
    thorough = interleaved(
        {"thorough": case(lambda v: redact(v, thorough=True), request, response)},
        rounds=3 if quick else 7,
        warmup_rounds=1,
        block_seconds=0.02 if quick else 0.1,
    )["thorough"]
    engine = "RE2 screens" if HAVE_RE2 else "Python re screens (google-re2 missing)"
    clean, naive = medians["clean"], medians["clean_naive"]
    return [
        row(
            f"redaction per call, clean {size / 1024:.1f} KB request+response ({engine})",
            us(clean),
            us(naive) + " naive alternation",
            clean / naive,
            "< 12 µs",
            clean < TARGET_CLEAN_SECONDS,
        ),
        row(
            "redaction per call, request with 5 secrets + response",
            us(medians["dirty"]),
            us(medians["dirty_naive"]) + " naive alternation",
            medians["dirty"] / medians["dirty_naive"],
            "<= 40 µs",
            medians["dirty"] <= TARGET_DIRTY_SECONDS,
        ),
        row(
            "redaction per call, request with 5 secrets + response, nothing remembered",
            us(fresh_median["dirty_fresh"]),
            us(fresh_median["dirty_naive"]) + " naive alternation",
            fresh_median["dirty_fresh"] / fresh_median["dirty_naive"],
            "faster than naive",
            fresh_median["dirty_fresh"] < fresh_median["dirty_naive"],
        ),
        row(
            "redaction per call, clean, from serialized bytes (redact_json, incl. parse)",
            us(medians["clean_bytes"]),
            us(naive) + " naive alternation",
            medians["clean_bytes"] / naive,
            "< 12 µs",
            medians["clean_bytes"] < TARGET_CLEAN_SECONDS,
        ),
        row(
            "sanitize pass (thorough: every pattern that can match), clean request+response",
            us(thorough),
            us(naive) + " naive alternation",
            thorough / naive,
            "(Celery, off the hot path)",
            None,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import table

    rows = run(quick="--quick" in (argv if argv is not None else sys.argv[1:]))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
