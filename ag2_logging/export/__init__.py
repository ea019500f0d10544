"""OpenTelemetry export of summarized sessions (``AG2_LOGGING["OTEL"]``, extra ``otel``).

Outside the hot path: the pipeline calls :func:`after_summarize` once a session is summarized,
and each session is exported from its database rows (see :mod:`ag2_logging.export.plan` for the
spans and :mod:`ag2_logging.export.semconv` for the names). ``Session.exported_at`` is set only
after the exporter accepted the session's spans, so a session recorded while the collector was
down or export was off stays in the backlog; :func:`export_pending` sends the backlog (after each
successful export, and from a management command). A short claim
(``Session.export_claimed_until``) keeps two exporters from sending one session at once.

Nothing here raises into the pipeline: an unreachable collector costs at most ``OTEL_TIMEOUT``
seconds per call, in the pipeline's process, and the sessions wait for the next attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from ag2_logging.conf import conf

logger = logging.getLogger("ag2_logging.export")

#: How long one exporter may hold a session before another may take it (seconds).
CLAIM_SECONDS = 120


@dataclass
class ExportReport:
    """What one export run did: sessions exported, and the first failure that stopped it."""

    exported: list[str] = field(default_factory=list)
    failed: str = ""
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"exported": self.exported, "failed": self.failed, "skipped": self.skipped}


def enabled() -> bool:
    """Whether export is on (``AG2_LOGGING["OTEL"]``); one attribute read."""
    return bool(conf.resolved.otel)


def after_summarize(session_id: uuid.UUID | str) -> None:
    """Export ``session_id`` and then up to ``OTEL_BACKLOG_BATCH`` sessions of the backlog.

    For the pipeline, once the session is summarized. A cheap no-op when export is off; never
    raises (a failure is logged, and the session stays unexported for a later attempt).
    """
    if not conf.resolved.otel:
        return
    try:
        if export_session(session_id) == "exported":
            export_pending(limit=conf.resolved.otel_backlog_batch)
    except Exception:
        logger.warning("ag2_logging could not export session %s to OpenTelemetry", session_id, exc_info=True)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _claim(session_id: uuid.UUID) -> bool:
    from django.db.models import Q

    from ag2_logging.models import Session

    now = _now()
    free = Q(export_claimed_until__isnull=True) | Q(export_claimed_until__lt=now)
    return (
        Session.objects.filter(pk=session_id, exported_at__isnull=True, summarized_at__isnull=False)
        .filter(free)
        .update(export_claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS))
        == 1
    )


def _release(session_id: uuid.UUID, exported: bool) -> None:
    from ag2_logging.models import Session

    changes: dict[str, Any] = {"export_claimed_until": None}
    if exported:
        changes["exported_at"] = _now()
    Session.objects.filter(pk=session_id).update(**changes)


def export_session(session_id: uuid.UUID | str) -> str:
    """Export one summarized session. Returns ``"exported"``, ``"skipped"`` (already exported,
    not summarized, claimed by another exporter, or unknown), ``"no destination"`` (no global
    provider and no ``OTEL_ENDPOINT``) or ``"failed"`` (the exporter refused or timed out; the
    session stays in the backlog). Database errors propagate."""
    from ag2_logging.export import metrics, otel, plan, semconv
    from ag2_logging.models import Session

    key = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
    resolved = conf.resolved
    pipe = otel.pipeline(resolved.otel_endpoint, resolved.otel_timeout)
    if pipe is None:
        return "no destination"
    if not _claim(key):
        return "skipped"
    delivered = False
    try:
        session = Session.objects.get(pk=key)
        names = semconv.names(resolved.otel_semconv)
        content = resolved.otel_capture_content and resolved.capture_bodies
        if pipe.buffer is not None:
            pipe.buffer.take()  # nothing left over from an emit that raised
        otel.emit(pipe, plan.plan_session(session, names, content))
        delivered = pipe.deliver(resolved.otel_timeout)
        if delivered:
            meters = otel.meter_provider(resolved.otel_endpoint)
            if meters is not None:
                metrics.record_session(meters, names, session)
    finally:
        _release(key, delivered)
    if not delivered:
        logger.warning("ag2_logging: the OpenTelemetry exporter did not take session %s; kept for later", key)
    return "exported" if delivered else "failed"


def pending(limit: int | None = None) -> list[uuid.UUID]:
    """Summarized sessions not exported yet, oldest first (at most ``limit``)."""
    from ag2_logging.models import Session

    rows = (
        Session.objects.filter(summarized_at__isnull=False, exported_at__isnull=True)
        .order_by("started_at")
        .values_list("pk", flat=True)
    )
    return list(rows[:limit] if limit is not None else rows)


def export_pending(limit: int | None = None) -> ExportReport:
    """Export the backlog, oldest first, stopping at the first failure (the collector is down:
    the rest waits). For a management command and for :func:`after_summarize`."""
    report = ExportReport()
    if limit == 0:
        return report
    for key in pending(limit):
        outcome = export_session(key)
        if outcome == "exported":
            report.exported.append(str(key))
        elif outcome == "skipped":
            report.skipped += 1
        else:
            report.failed = f"session {key}: {outcome}"
            break
    return report
