"""What was recorded: sessions, their LLM calls, agent events and tool calls.

Token convention, whatever the provider: ``prompt_tokens`` includes ``cached_tokens``,
``completion_tokens`` includes ``reasoning_tokens``, ``total_tokens`` is their sum. Rows of
``LLMCall``/``AgentEvent``/``ToolCall`` are written only by ingest (from journals), with the
journal's event id as primary key, so ingesting a journal twice yields the same rows.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _

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
        CANCELLED = "cancelled", _("cancelled")
        INTERRUPTED = "interrupted", _("interrupted")

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
    total_cost = models.DecimalField(default=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)

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

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["enterprise_id", "started_at"], name="ag2log_sess_ent_started"),
            models.Index(fields=["workflow_name", "started_at"], name="ag2log_sess_wf_started"),
            models.Index(fields=["status", "started_at"], name="ag2log_sess_status_started"),
            models.Index(fields=["started_at"], name="ag2log_sess_started"),
            models.Index(fields=["pipeline_failed_at"], name="ag2log_sess_pipe_failed"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_name or 'session'} {self.chat_id} ({self.status})"


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
        LOCAL = "local", _("local model")
        UNKNOWN = "unknown", _("unknown model")

    id = models.UUIDField(primary_key=True, editable=False)
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
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
            models.Index(fields=["started_at"], name="ag2log_call_started"),
            models.Index(fields=["model", "started_at"], name="ag2log_call_model_started"),
            models.Index(fields=["price_status"], name="ag2log_call_price_status"),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.total_tokens} tokens"


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


class ModelDayRollup(models.Model):
    """Per (day, enterprise, workflow, model, provider): the sessions that used the model, each
    counted once, on the day of its first call to it, and a histogram of the calls' latencies
    (``latency_buckets[i]`` calls in bucket i of ``querysets.LATENCY_BUCKET_BOUNDS_MS``), kept
    with ``DailyRollup`` by the summarize task. Days are those of ``DailyRollup`` (UTC, the call's
    end)."""

    day = models.DateField()
    enterprise_id = models.CharField(max_length=255, blank=True, default="")
    workflow_name = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=255, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    session_count = models.BigIntegerField(default=0)
    #: Calls with a latency (the sum of ``latency_buckets``).
    latency_count = models.BigIntegerField(default=0)
    latency_buckets = models.JSONField(default=empty_latency_buckets)

    objects = ModelDayRollupQuerySet.as_manager()

    class Meta:
        ordering = ["-day"]
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
