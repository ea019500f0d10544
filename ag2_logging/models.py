"""What was recorded: sessions, their LLM calls, agent events and tool calls.

Token convention, whatever the provider: ``prompt_tokens`` includes ``cached_tokens``,
``completion_tokens`` includes ``reasoning_tokens``, ``total_tokens`` is their sum. Rows of
``LLMCall``/``AgentEvent``/``ToolCall`` are written only by ingest (from journals), with the
journal's event id as primary key, so ingesting a journal twice yields the same rows.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ag2_logging import formats
from ag2_logging.querysets import (
    DailyRollupQuerySet,
    LLMCallQuerySet,
    ModelDayRollupQuerySet,
    SessionQuerySet,
    empty_latency_buckets,
)

#: Money: up to 10^10 with 10 decimal places (per-token prices reach 1e-9 dollars).
MONEY_DIGITS = 20
MONEY_PLACES = 10


class Session(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        COMPLETED = "completed", _("completed")
        FAILED = "failed", _("failed")
        #: A Celery task attempt that raised ``Retry``: the next attempt is its sibling.
        RETRIED = "retried", _("retried")
        CANCELLED = "cancelled", _("cancelled")
        INTERRUPTED = "interrupted", _("interrupted")
        #: Stopped by a ``block`` budget before the call that would have crossed it.
        BLOCKED = "blocked", _("blocked by a budget")

    class Source(models.TextChoices):
        LIVE = "live", _("recorded live")
        IMPORTED = "imported", _("imported from a log")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chat_id = models.CharField(max_length=255, db_index=True)
    workflow_name = models.CharField(max_length=255, blank=True, default="")
    enterprise_id = models.CharField(max_length=255, blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LIVE)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    call_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    unpriced_calls = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    #: Sum of the priced calls' costs (USD). NULL when the session has calls and none of them
    #: could be priced: unknown is never 0. With ``unpriced_calls`` > 0 it is a lower bound.
    total_cost = models.DecimalField(
        null=True, blank=True, default=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES
    )

    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    journal_path = models.CharField(max_length=1024, blank=True, default="")
    ingested_at = models.DateTimeField(null=True, blank=True)
    #: Journal lines that could not be parsed at the last ingest.
    bad_journal_lines = models.PositiveIntegerField(default=0)
    #: Events the recorder could not journal (disk full, ...): the session is incomplete.
    dropped_events = models.PositiveIntegerField(default=0)
    #: HTTP attempts retried inside the SDK, summed over the session's calls.
    retry_count = models.PositiveIntegerField(default=0)
    #: What redaction removed, by kind (counts only, never values).
    redactions = models.JSONField(default=dict, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    sanitized_at = models.DateTimeField(null=True, blank=True)
    summarized_at = models.DateTimeField(null=True, blank=True)

    # -- the post-session pipeline (sanitize -> publish -> ingest -> summarize) ----------------
    #: Where the finished journal was published (a name in ``JOURNAL_STORAGE``), and when.
    journal_storage_name = models.CharField(max_length=1024, blank=True, default="")
    journal_published_at = models.DateTimeField(null=True, blank=True)
    #: Why the pipeline could not finish this session (journal unreadable on this host and not
    #: published, journal refused, ...); empty once a later run succeeds.
    pipeline_error = models.TextField(blank=True, default="")
    #: Set when the pipeline gave up (its retries are spent): the session is not in the reports.
    pipeline_failed_at = models.DateTimeField(null=True, blank=True)
    pipeline_attempts = models.PositiveIntegerField(default=0)
    #: A short lease that keeps two chains of one session from running at once (any host).
    lease_owner = models.CharField(max_length=255, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    #: What the writing process counted when the session ended (calls, tokens, cost, errors,
    #: dropped events), kept beside the totals ingest recomputes from the rows.
    recorded_totals = models.JSONField(null=True, blank=True)
    #: Values ingest had to change or refuse, by kind (``nul_removed``, ``id_cut``,
    #: ``out_of_range``, ``id_collision``, ...): counts only.
    ingest_issues = models.JSONField(default=dict, blank=True)
    #: Events the journal could not take (disk full) that went to the database instead.
    spilled_events = models.PositiveIntegerField(default=0)
    #: Something was lost or differs from what the process counted: see ``dropped_events`` and
    #: ``recorded_totals``.
    incomplete = models.BooleanField(default=False)
    #: When the session's trace was handed to OpenTelemetry (``AG2_LOGGING["OTEL"]``): set only
    #: after the exporter accepted it, so an unexported session is sent later (the backlog).
    exported_at = models.DateTimeField(null=True, blank=True)
    #: A short claim on the export (one exporter per session at a time, on any host).
    export_claimed_until = models.DateTimeField(null=True, blank=True)

    # -- who and what for (the entry point's ``user``, ``tags`` and ``metadata``) --------------
    #: The authenticated user of the request that opened the session (the middleware and
    #: ``@ag2_logged`` on a view), or the ``user`` given to an entry point; NULL otherwise, or
    #: once the user is deleted.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ag2_logging_sessions",
    )
    #: Labels given by the entry point (``tags=[...]``): strings, at most ``capture.people.MAX_TAGS``
    #: of at most ``MAX_TAG_LENGTH`` characters each; one ``SessionTag`` row per tag for filtering.
    tags = models.JSONField(default=list, blank=True)
    #: A small JSON object given by the entry point (``metadata={...}``), redacted like bodies.
    metadata = models.JSONField(default=dict, blank=True)
    #: What ``summarize`` added to the user and tag rollups for this session, per (day, model,
    #: agent, provider): ``[[day, model, agent, provider, cost or None, unpriced calls], ...]``,
    #: so that a reprice moves those rollups by exactly the difference.
    rollup_shares = models.JSONField(null=True, blank=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["enterprise_id", "started_at"], name="ag2log_sess_ent_started"),
            models.Index(fields=["workflow_name", "started_at"], name="ag2log_sess_wf_started"),
            models.Index(fields=["status", "started_at"], name="ag2log_sess_status_started"),
            models.Index(fields=["started_at"], name="ag2log_sess_started"),
            models.Index(fields=["pipeline_failed_at"], name="ag2log_sess_pipe_failed"),
            models.Index(fields=["user", "started_at"], name="ag2log_sess_user_started"),
            # The sessions not yet in the reports (the session list's banner counts them on every
            # view): few rows, so a small partial index rather than a scan of every session.
            models.Index(
                fields=["ended_at"],
                condition=models.Q(ingested_at__isnull=True) | models.Q(summarized_at__isnull=True),
                name="ag2log_sess_not_reported",
            ),
        ]
        # On PostgreSQL, migration 0013 adds ag2log_sess_started_cover: started_at INCLUDE (the
        # columns the reports' session counts, the list's search and the recommendations read),
        # for index-only scans.

    def __str__(self) -> str:
        return f"{self.workflow_name or 'session'} {self.chat_id} ({self.status})"

    @property
    def cost_complete(self) -> bool:
        """Whether ``total_cost`` is the whole cost: every call has a price (failed calls and
        AG2 cache hits cost 0 and count as priced). A session without calls is complete."""
        return not self.unpriced_calls

    @property
    def cost_state(self) -> str:
        """``"none"`` (no calls), ``"known"``, ``"partial"`` (``total_cost`` is a lower bound: some
        calls have no price) or ``"unknown"`` (no call has a price, or the priced ones sum to 0:
        a lower bound of $0 says nothing). The rule of ``reports.Figures.cost_state``."""
        if not self.call_count:
            return "none"
        if not self.unpriced_calls:
            return "known"
        if self.unpriced_calls >= self.call_count or not self.total_cost:
            return "unknown"
        return "partial"

    @property
    def known_cost(self) -> Decimal | None:
        """The cost in USD as the admin and the exports show it: None when unknown (never 0 for
        calls without a price), a lower bound when ``cost_complete`` is False."""
        if self.cost_state == "unknown":
            return None
        return self.total_cost if self.total_cost is not None else Decimal(0)


class SessionTag(models.Model):
    """One tag of a session (``Session.tags``), a row per tag so that sessions filter by tag on
    every database (SQLite has no JSON containment). Written with the Session row."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="tag_rows")
    tag = models.CharField(max_length=64)

    class Meta:
        ordering = ["session", "tag"]
        constraints = [models.UniqueConstraint(fields=["session", "tag"], name="ag2log_stag_unique")]
        indexes = [models.Index(fields=["tag"], name="ag2log_stag_tag")]
        # On PostgreSQL, migration 0013 adds ag2log_stag_tag_upper on UPPER(tag) (the search's
        # iexact there).

    def __str__(self) -> str:
        return self.tag


class SpilledEvent(models.Model):
    """A journal line the disk refused (full, read-only), kept in the database instead.

    Written by the app's database thread; ingest reads these after the session's journal file,
    in ``seq`` order, every time it ingests the session (so a re-ingest reads what the first one
    did); retention deletes them with the session's rows. ``session_id`` is not a foreign key:
    the Session row may not exist yet when the disk and the row fail together.
    """

    session_id = models.UUIDField(db_index=True)
    seq = models.PositiveIntegerField(default=0)
    line = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session_id", "seq", "id"]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq}"


class LLMCall(models.Model):
    class Status(models.TextChoices):
        SUCCESS = "success", _("success")
        ERROR = "error", _("error")

    class PriceStatus(models.TextChoices):
        PRICED = "priced", _("priced")
        OVERRIDE = "override", _("override")
        #: Priced from the model name's own provider although the call went to another base URL
        #: (a proxy, a gateway, a loopback test server) that ``PROVIDER_BASE_URLS`` does not map.
        INFERRED = "inferred", _("inferred from the model name")
        LOCAL = "local", _("local model")
        UNKNOWN = "unknown", _("unknown model")
        #: The provider's reply carried no usage (a stream cut short, ``include_usage`` ignored):
        #: tokens and cost are unknown, counted like an unpriced call.
        NO_USAGE = "no_usage", _("no usage reported")

    id = models.UUIDField(primary_key=True, editable=False)
    # No index of its own: ``ag2log_call_session_seq`` (session, seq) serves every lookup by
    # session, and one index fewer is less work for each row ingest writes.
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls", db_index=False
    )
    seq = models.PositiveIntegerField(default=0, help_text=_("Position in the session's journal."))
    invocation_id = models.CharField(max_length=64, blank=True, default="")
    agent_name = models.CharField(max_length=255, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=255, blank=True, default="")
    response_id = models.CharField(max_length=255, blank=True, default="")

    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(null=True, blank=True, max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    price_status = models.CharField(max_length=16, choices=PriceStatus.choices, default=PriceStatus.UNKNOWN)
    ag2_cost = models.DecimalField(
        null=True, blank=True, max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES
    )

    latency_ms = models.FloatField(null=True, blank=True)
    is_cached = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCESS)
    error = models.TextField(blank=True, default="")
    #: 1 for the first attempt; HTTP attempts the SDK retried are counted in ``retries``.
    attempt = models.PositiveIntegerField(default=1)
    retries = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    request = models.JSONField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)

    objects = LLMCallQuerySet.as_manager()

    class Meta:
        ordering = ["started_at", "seq"]
        verbose_name = _("LLM call")
        indexes = [
            models.Index(fields=["session", "seq"], name="ag2log_call_session_seq"),
            # The calls of some sessions (one enterprise's, one workflow's) in a period, as the
            # call list filtered by both reads them: a range of this index per session, rather
            # than every call of the period joined to its session to test it.
            models.Index(fields=["session", "started_at"], name="ag2log_call_session_started"),
            models.Index(fields=["started_at"], name="ag2log_call_started"),
            models.Index(fields=["model", "started_at"], name="ag2log_call_model_started"),
            models.Index(fields=["price_status"], name="ag2log_call_price_status"),
            # The call list sorted by cost, either way (the admin adds its ordering, -started_at,
            # then the pk, as tie-breaks): a walk down this index instead of a sort of every call.
            models.Index(fields=["cost", "started_at"], name="ag2log_call_cost"),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.total_tokens:,} tokens"


class AgentEvent(models.Model):
    id = models.UUIDField(primary_key=True, editable=False)
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.CASCADE, related_name="agent_events"
    )
    seq = models.PositiveIntegerField(default=0)
    agent_name = models.CharField(max_length=255, blank=True, default="")
    name = models.CharField(max_length=255)
    data = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "seq"]
        indexes = [
            models.Index(fields=["session", "seq"], name="ag2log_event_session_seq"),
            models.Index(fields=["created_at"], name="ag2log_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_name}: {self.name}"


class ToolCall(models.Model):
    id = models.UUIDField(primary_key=True, editable=False)
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.CASCADE, related_name="tool_calls"
    )
    seq = models.PositiveIntegerField(default=0)
    agent_name = models.CharField(max_length=255, blank=True, default="")
    name = models.CharField(max_length=255)
    arguments = models.JSONField(null=True, blank=True)
    result_summary = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ended_at", "seq"]
        indexes = [
            models.Index(fields=["session", "seq"], name="ag2log_tool_session_seq"),
            models.Index(fields=["name", "ended_at"], name="ag2log_tool_name_ended"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelPrice(models.Model):
    """An admin-edited price that wins over genai-prices for calls in its period.

    Prices are per million tokens. ``model`` is an exact model name or an ``fnmatch`` pattern
    (``gpt-4o*``); an empty ``provider`` matches every provider. ``effective_to`` is exclusive.
    """

    provider = models.CharField(max_length=64, blank=True, default="", help_text=_("Empty: any provider."))
    model = models.CharField(max_length=255, help_text=_("Exact name or pattern such as gpt-4o*."))
    input_per_mtok = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    cached_input_per_mtok = models.DecimalField(
        null=True,
        blank=True,
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        help_text=_("Empty: input price."),
    )
    cache_write_per_mtok = models.DecimalField(
        null=True,
        blank=True,
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        help_text=_("Empty: input price."),
    )
    output_per_mtok = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    reasoning_per_mtok = models.DecimalField(
        null=True,
        blank=True,
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        help_text=_("Empty: output price."),
    )
    currency_note = models.CharField(max_length=255, blank=True, default="")
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True, help_text=_("Exclusive."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model", "-effective_from"]
        verbose_name = _("model price override")
        indexes = [models.Index(fields=["model"], name="ag2log_price_model")]

    def __str__(self) -> str:
        return f"{self.provider or '*'}/{self.model}"


class DailyRollup(models.Model):
    """Totals per (day, enterprise, workflow, model, agent, provider), kept by the summarize task."""

    day = models.DateField()
    enterprise_id = models.CharField(max_length=255, blank=True, default="")
    workflow_name = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=255, blank=True, default="")
    agent_name = models.CharField(max_length=255, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    call_count = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    retry_count = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(default=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    latency_ms_sum = models.FloatField(default=0)

    objects = DailyRollupQuerySet.as_manager()

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "enterprise_id", "workflow_name", "model", "agent_name", "provider"],
                name="ag2log_rollup_unique_key",
            )
        ]
        indexes = [
            models.Index(fields=["enterprise_id", "day"], name="ag2log_rollup_ent_day"),
            models.Index(fields=["workflow_name", "day"], name="ag2log_rollup_wf_day"),
            models.Index(fields=["model", "day"], name="ag2log_rollup_model_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.enterprise_id}/{self.workflow_name}/{self.model}"


class ModelDayFigures(models.Model):
    """The fields of a model rollup under its (day, model, provider) key: the sessions that used
    the model, each counted once, on the day of its first call to it, and a histogram of the
    calls' latencies (``latency_buckets[i]`` calls in bucket i of
    ``querysets.LATENCY_BUCKET_BOUNDS_MS``). Abstract base of ``ModelDayRollup`` and
    ``ModelDayTotalRollup``."""

    day = models.DateField()
    model = models.CharField(max_length=255, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    session_count = models.BigIntegerField(default=0)
    #: Calls with a latency (the sum of ``latency_buckets``).
    latency_count = models.BigIntegerField(default=0)
    latency_buckets = models.JSONField(default=empty_latency_buckets)

    objects = ModelDayRollupQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-day"]


class ModelDayRollup(ModelDayFigures):
    """Per (day, enterprise, workflow, model, provider): ``ModelDayFigures``, kept with
    ``DailyRollup`` by the summarize task. Days are those of ``DailyRollup`` (UTC, the call's
    end)."""

    enterprise_id = models.CharField(max_length=255, blank=True, default="")
    workflow_name = models.CharField(max_length=255, blank=True, default="")

    class Meta(ModelDayFigures.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["day", "enterprise_id", "workflow_name", "model", "provider"],
                name="ag2log_mrollup_unique_key",
            )
        ]
        indexes = [
            models.Index(fields=["enterprise_id", "day"], name="ag2log_mrollup_ent_day"),
            models.Index(fields=["workflow_name", "day"], name="ag2log_mrollup_wf_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.enterprise_id}/{self.workflow_name}/{self.model}"


class ModelDayTotalRollup(ModelDayFigures):
    """``ModelDayRollup`` summed over enterprises and workflows: ``ModelDayFigures`` per (day,
    model, provider), kept in the same transactions. The model comparison and the overview of
    every enterprise read these, a row per model and day, rather than a row per enterprise,
    workflow, model and day (30,000 over 90 days at ten million calls, 110 buckets each)."""

    class Meta(ModelDayFigures.Meta):
        constraints = [
            models.UniqueConstraint(fields=["day", "model", "provider"], name="ag2log_mtotal_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model}"


class PeopleRollup(models.Model):
    """The summed figures of ``DailyRollup`` under its key (day, enterprise, workflow, model,
    agent, provider) and one more dimension: abstract base of ``UserDayRollup`` and
    ``TagDayRollup``, kept by the summarize task with ``DailyRollup``."""

    day = models.DateField()
    #: The session's user, as the primary key's text ("" for sessions without one).
    user_id = models.CharField(max_length=255, blank=True, default="")
    enterprise_id = models.CharField(max_length=255, blank=True, default="")
    workflow_name = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=255, blank=True, default="")
    agent_name = models.CharField(max_length=255, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    call_count = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    retry_count = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(default=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    latency_ms_sum = models.FloatField(default=0)

    objects = DailyRollupQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-day"]


class UserDayRollup(PeopleRollup):
    """``DailyRollup`` per user too: every finished session's calls, once (``user_id`` "" for
    sessions without a user)."""

    class Meta(PeopleRollup.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "user_id",
                    "enterprise_id",
                    "workflow_name",
                    "model",
                    "agent_name",
                    "provider",
                ],
                name="ag2log_urollup_unique_key",
            )
        ]
        indexes = [models.Index(fields=["user_id", "day"], name="ag2log_urollup_user_day")]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id or '-'} {self.model}"


class TagDayRollup(PeopleRollup):
    """``DailyRollup`` per tag (and user): a tagged session's calls count once under each of its
    tags, so the rows of several tags can sum past the period's total; untagged sessions have
    no row here."""

    tag = models.CharField(max_length=64)

    class Meta(PeopleRollup.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "tag",
                    "user_id",
                    "enterprise_id",
                    "workflow_name",
                    "model",
                    "agent_name",
                    "provider",
                ],
                name="ag2log_trollup_unique_key",
            )
        ]
        indexes = [models.Index(fields=["tag", "day"], name="ag2log_trollup_tag_day")]

    def __str__(self) -> str:
        return f"{self.day} tag {self.tag} {self.model}"


class Budget(models.Model):
    """A cost limit (USD, the currency of the prices) on a scope of sessions over a period.

    ``scope`` picks the sessions counted together: every session (``global``), one enterprise,
    one workflow, or one workflow of one enterprise. An empty ``enterprise_id`` /
    ``workflow_name`` in a scope that names it means "each one separately" (every enterprise
    gets its own ledger). ``period`` is a calendar period in ``AG2_LOGGING["BUDGET_TIME_ZONE"]``
    (UTC by default; weeks start on Monday), each ``session`` alone, or the last
    ``window_hours`` whole hours (``rolling_hours``). Enforcement: ``ag2_logging.budgets``.
    """

    class Scope(models.TextChoices):
        GLOBAL = "global", _("every session")
        ENTERPRISE = "enterprise", _("enterprise")
        WORKFLOW = "workflow", _("workflow")
        ENTERPRISE_WORKFLOW = "enterprise_workflow", _("workflow of an enterprise")

    class Period(models.TextChoices):
        SESSION = "session", _("each session")
        DAY = "day", _("day")
        WEEK = "week", _("week (from Monday)")
        MONTH = "month", _("month")
        ROLLING_HOURS = "rolling_hours", _("rolling hours")

    class Action(models.TextChoices):
        BLOCK = "block", _("block the call")
        WARN = "warn", _("warn only")

    class UnknownModel(models.TextChoices):
        BLOCK = "block", _("block the call")
        ALLOW = "allow", _("allow the call")

    name = models.CharField(max_length=255, blank=True, default="")
    scope = models.CharField(max_length=32, choices=Scope.choices, default=Scope.GLOBAL)
    enterprise_id = models.CharField(max_length=255, blank=True, default="")
    workflow_name = models.CharField(max_length=255, blank=True, default="")
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.DAY)
    window_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Rolling hours only: the window, in whole hours.")
    )
    limit = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    soft_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal(80), help_text=_("Warning threshold, % of the limit.")
    )
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.BLOCK)
    unknown_model = models.CharField(
        max_length=8,
        choices=UnknownModel.choices,
        default=UnknownModel.BLOCK,
        help_text=_("A call to a model with no known price cannot be estimated: block it or let it go."),
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "enterprise_id", "workflow_name", "period"]
        indexes = [models.Index(fields=["active"], name="ag2log_budget_active")]

    def __str__(self) -> str:
        """The name, else ``<target> <period> <limit>`` with the limit as money: ``acme day $5.00``."""
        target = "/".join(v for v in (self.enterprise_id, self.workflow_name) if v) or self.scope
        return self.name or f"{target} {self.period} {formats.show(self.limit, money=True)}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, then move the budgets' version on: every process reloads its budgets."""
        super().save(*args, **kwargs)
        bump_budget_version()

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        result = super().delete(*args, **kwargs)
        bump_budget_version()
        return result


class BudgetLedger(models.Model):
    """What a budget's scope spent in one period, shared by every process (the database ledger).

    ``key`` is ``<budget id>:<period key>:<scope value>`` (``version`` for the one row whose
    ``counter`` changes each time a Budget is saved or deleted). ``reserved`` holds the worst-case
    cost of calls in flight and the allowances processes took and have not spent yet.
    """

    key = models.CharField(max_length=600, unique=True)
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.CASCADE, related_name="ledger")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    spent = models.DecimalField(default=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    reserved = models.DecimalField(default=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    counter = models.BigIntegerField(default=0)
    soft_sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start"]

    def __str__(self) -> str:
        return self.key


def bump_budget_version() -> None:
    """Add one to the budgets' version counter (the ``BudgetLedger`` row ``version``), which
    every process polls: call it after changing Budget rows without ``save()`` (bulk updates)."""
    from django.db import IntegrityError, transaction

    if BudgetLedger.objects.filter(key="version").update(counter=models.F("counter") + 1):
        return
    try:
        with transaction.atomic():
            BudgetLedger.objects.create(key="version", counter=1)
    except IntegrityError:
        BudgetLedger.objects.filter(key="version").update(counter=models.F("counter") + 1)
