"""The session admin (:class:`SessionAdmin`, with the timeline page) and the warnings it shows:
the pipeline banner over the list, the incomplete-record banner over a session."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, UUIDField
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _

from ag2_logging.admin.base import ReadOnlyAdmin, count_column, pipeline_banner, time_column
from ag2_logging.admin.filters import (
    DateRangeFilter,
    PipelineFilter,
    SessionEnterpriseFilter,
    SessionWorkflowFilter,
    TagFilter,
    UnpricedSessionFilter,
    UserFilter,
)
from ag2_logging.admin.timeline import TimelineViewMixin
from ag2_logging.admin.transcript import TranscriptViewMixin
from ag2_logging.formats import show
from ag2_logging.models import Session
from ag2_logging.templatetags.ag2_reports import call_cost, format_money, money_text, ms


def incomplete_banner(session: Session) -> str:
    """What the writing process counted beside what the record holds (``Session.incomplete``)."""
    recorded = session.recorded_totals if isinstance(session.recorded_totals, dict) else {}
    counted = ""
    if "call_count" in recorded:
        cost = recorded.get("total_cost")
        counted = _("the process counted %(calls)s calls / %(cost)s, ") % {
            "calls": recorded["call_count"],
            "cost": money_text(Decimal(str(cost)) if cost is not None else None),
        }
    text = _("incomplete: %(counted)sthe record holds %(calls)s calls / %(cost)s") % {
        "counted": counted,
        "calls": session.call_count,
        "cost": money_text(session.known_cost),
    }
    if session.dropped_events:
        text += "; " + _("%(n)s event(s) were lost (neither the disk nor the database took them)") % {
            "n": session.dropped_events
        }
    return str(text)


def _cannot_be_uuid(bit: str) -> bool:
    """Whether no UUID column's ``iexact`` can match ``bit`` on any database: an ASCII word that
    ``uuid.UUID`` rejects. PostgreSQL compares the canonical text (36 characters with hyphens),
    the others the 32 hex digits with the word's hyphens removed; ``uuid.UUID`` accepts both
    forms (and more). Non-ASCII words are left to the database (a MariaDB collation may equate
    an accented letter with a hex digit)."""
    if not bit.isascii():
        return False
    try:
        uuid.UUID(bit)
    except ValueError:
        return True
    return False


def _search_condition(spec: str, bit: str) -> Q | None:
    """The condition of one search field of the session list (``"=tag_rows__tag"``,
    ``"chat_id"``, ...) for one word: a field of the session itself as Django's admin has it, a
    related one (a tag, the user's name) as an ``IN`` subquery (the sessions whose tag matches, the
    users whose name matches). None when the field cannot match the word: a whole session id
    searched with a word that is no UUID (on PostgreSQL the condition casts every session's id
    to text, a third of the search's time at 100,000 sessions)."""
    lookup = "iexact" if spec.startswith("=") else "icontains"
    path = spec.removeprefix("=")
    head, _sep, rest = path.partition("__")
    if not rest:
        field = Session._meta.get_field(path)
        if lookup == "iexact" and isinstance(field, UUIDField) and _cannot_be_uuid(bit):
            return None
        return Q(**{f"{path}__{lookup}": bit})
    relation: Any = Session._meta.get_field(head)
    related: Any = relation.related_model
    matching = related._base_manager.filter(**{f"{rest}__{lookup}": bit})
    if relation.one_to_many:  # the tags: rows pointing at the session
        return Q(pk__in=matching.values(relation.field.attname))
    return Q(**{f"{relation.attname}__in": matching.values("pk")})  # the user: the row pointed at


@admin.register(Session)
class SessionAdmin(TimelineViewMixin, TranscriptViewMixin, ReadOnlyAdmin):
    # What a cost review decides on, readable at 1366 px with the nav sidebar and the filters
    # open: when, what (workflow; enterprise beneath), status, how much (cost, calls, tokens), how
    # long, and the timeline. The chat id is on the session's page (and in the search box).
    list_display = (
        "when",
        "workflow_display",
        "status",
        "cost_display",
        "calls_link",
        "tokens",
        "duration",
        "timeline_link",
    )
    list_display_links = ("when",)
    list_filter = (
        "status",
        ("started_at", DateRangeFilter),
        UnpricedSessionFilter,
        PipelineFilter,
        "incomplete",
        SessionEnterpriseFilter,
        SessionWorkflowFilter,
        UserFilter,
        TagFilter,
        "source",
    )
    search_fields = ("=id", "chat_id", "enterprise_id", "workflow_name", "=tag_rows__tag")
    search_help_text = _(
        "A chat id, an enterprise, a workflow or a user name (or part of any of them), a whole tag "
        "or a whole session id."
    )
    list_select_related = ("user",)  # the user's name beneath the workflow (a join, no query per row)
    csv_columns = (
        ("id", "id"),
        ("chat_id", "chat_id"),
        ("enterprise_id", "enterprise_id"),
        ("workflow_name", "workflow_name"),
        ("status", "status"),
        ("started_at", "started_at"),
        ("ended_at", "ended_at"),
        ("parent_id", "parent_id"),
        ("call_count", "call_count"),
        ("error_count", "error_count"),
        ("retry_count", "retry_count"),
        ("unpriced_calls", "unpriced_calls"),
        ("prompt_tokens", "prompt_tokens"),
        ("cached_tokens", "cached_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("reasoning_tokens", "reasoning_tokens"),
        ("total_tokens", "total_tokens"),
        ("total_cost", "total_cost"),
        ("error", "error"),
        ("user_id", "user_id"),
        ("tags", "tags"),
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "links",
                    "chat_id",
                    "workflow_name",
                    "enterprise_id",
                    "user",
                    "tags_display",
                    "metadata_display",
                    "parent",
                    "status",
                    "error",
                    "completeness",
                )
            },
        ),
        (_("Time"), {"fields": ("started", "ended", "duration")}),
        (
            _("Totals"),
            {
                "fields": (
                    "call_count",
                    "error_count",
                    "retry_count",
                    "unpriced_calls",
                    "prompt_tokens_display",
                    "cached_tokens_display",
                    "completion_tokens_display",
                    "reasoning_tokens_display",
                    "tokens",
                    "cost_display",
                )
            },
        ),
        (
            _("Recording"),
            {
                "classes": ("collapse",),
                "fields": (
                    "id",
                    "source",
                    "host",
                    "pid",
                    "journal_path",
                    "sanitized_at",
                    "journal_published_at",
                    "journal_storage_name",
                    "ingested_at",
                    "summarized_at",
                    "pipeline_error",
                    "pipeline_attempts",
                    "pipeline_failed_at",
                    "bad_journal_lines",
                    "dropped_events",
                    "redactions",
                    "last_heartbeat_at",
                ),
            },
        ),
    )
    readonly_fields = (
        "tags_display",
        "metadata_display",
        "links",
        "started",
        "ended",
        "prompt_tokens_display",
        "cached_tokens_display",
        "completion_tokens_display",
        "reasoning_tokens_display",
        "tokens",
        "duration",
        "cost_display",
        "completeness",
    )
    when = time_column("started_at", _("started"), stacked=True)
    started = time_column("started_at", _("started at"))
    ended = time_column("ended_at", _("ended at"))
    prompt_tokens_display = count_column("prompt_tokens", _("prompt tokens"))
    cached_tokens_display = count_column("cached_tokens", _("cached tokens"))
    completion_tokens_display = count_column("completion_tokens", _("completion tokens"))
    reasoning_tokens_display = count_column("reasoning_tokens", _("reasoning tokens"))
    tokens = count_column("total_tokens", _("tokens"))

    def get_urls(self) -> list[URLPattern]:
        return self.get_timeline_urls() + self.get_transcript_urls() + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        session = self.get_object(request, object_id)
        if session is not None and session.incomplete:
            # A banner, not a field: both figures are kept and neither may go unnoticed.
            messages.warning(request, incomplete_banner(session))
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method == "GET":
            banner = pipeline_banner(request)
            if banner:
                self.message_user(request, banner, level=messages.WARNING)
        return super().changelist_view(request, extra_context)

    def get_export_rows(self, request: HttpRequest) -> tuple[list[str], Iterator[Sequence[Any]]]:
        """The list's CSV: ``total_cost`` is empty when the cost is unknown (never 0), and
        ``cost_complete`` says whether it is the whole cost (``no``: a lower bound, or unknown);
        ``tags`` are joined with ``|``."""
        header, rows = super().get_export_rows(request)
        at = {name: i for i, name in enumerate(header)}
        cost, calls, unpriced = at["total_cost"], at["call_count"], at["unpriced_calls"]
        tags = at["tags"]

        def with_completeness() -> Iterator[Sequence[Any]]:
            for row in rows:
                probe = Session(call_count=row[calls], unpriced_calls=row[unpriced], total_cost=row[cost])
                cells = list(row)
                cells[cost] = probe.known_cost
                cells[tags] = "|".join(row[tags] or ())  # tags hold no control characters, "|" is rare
                cells.insert(cost + 1, "yes" if probe.cost_complete else "no")
                yield cells

        return [*header[: cost + 1], "cost_complete", *header[cost + 1 :]], with_completeness()

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # The user model's own name field (a custom user model may have another than username).
        return (*self.search_fields, f"user__{get_user_model().USERNAME_FIELD}")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Session], search_term: str
    ) -> tuple[QuerySet[Session], bool]:
        """Django's search (every word matches one of the search fields: ``=field`` is a whole
        case-insensitive match, else a case-insensitive substring), with the related fields (the
        tags, the user's name) matched through ``IN`` subqueries instead of joins: the same
        sessions, never twice, so the list needs no ``SELECT DISTINCT`` over whole session rows
        (1.2 s for a tag at ten million calls, 2.8 s for one enterprise). ``IN``, not a correlated
        ``EXISTS``: PostgreSQL prices an ``EXISTS`` under ``OR`` as run once per session, which
        tips the count past ``jit_above_cost`` (60 ms of JIT compiling for 10,000 sessions).
        Returns (sessions, may have duplicates: always False)."""
        fields = self.get_search_fields(request)
        if not fields or not search_term:
            return queryset, False
        every_word = Q()
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            any_field = Q(pk__in=[])  # matches nothing (should no field be able to match)
            for spec in fields:
                condition = _search_condition(spec, bit)
                if condition is not None:
                    any_field |= condition
            every_word &= any_field
        return queryset.filter(every_word), False

    @admin.display(description=_("tags"))
    def tags_display(self, obj: Session) -> str:
        return ", ".join(obj.tags or ()) or "—"

    @admin.display(description=_("metadata"))
    def metadata_display(self, obj: Session) -> SafeString | str:
        if not obj.metadata:
            return "—"
        return format_html(
            '<pre class="ag2-json">{}</pre>', json.dumps(obj.metadata, indent=2, ensure_ascii=False)
        )

    @admin.display(description=_("workflow"), ordering="workflow_name")
    def workflow_display(self, obj: Session) -> SafeString:
        beneath = obj.enterprise_id or "—"
        if obj.user is not None:
            beneath = f"{beneath} · {obj.user.get_username()}"
        return format_html(
            '<div class="ag2-two" title="{}">{}<br><small class="ag2-quiet">{}</small></div>',
            obj.chat_id,
            obj.workflow_name or "—",
            beneath,
        )

    @admin.display(description=_("cost"), ordering="total_cost")
    def cost_display(self, obj: Session) -> SafeString | str:
        if obj.cost_state == "unknown":
            return call_cost(None)
        text = format_money(obj.known_cost)
        if obj.unpriced_calls:
            return format_html(
                '<span class="ag2-partial" title="{}">≥ {}</span>',
                _("%(n)s call(s) without a price are not included") % {"n": obj.unpriced_calls},
                text,
            )
        return text

    @admin.display(description=_("record"))
    def completeness(self, obj: Session) -> SafeString:
        problems = []
        if obj.dropped_events:
            problems.append(
                _("%(n)s event(s) could not be written to the journal (disk full, ...)")
                % {"n": obj.dropped_events}
            )
        if obj.bad_journal_lines:
            problems.append(_("%(n)s journal line(s) could not be read") % {"n": obj.bad_journal_lines})
        if obj.pipeline_failed_at is not None:
            problems.append(_("not in the reports: %(why)s") % {"why": obj.pipeline_error})
        elif obj.status != Session.Status.RUNNING and obj.ingested_at is None:
            problems.append(
                _("not in the reports yet") + (f": {obj.pipeline_error}" if obj.pipeline_error else "")
            )
        if not problems:
            return format_html("{}", _("complete"))
        return format_html(
            '<strong class="ag2-unknown">{}</strong>: {}',
            _("incomplete"),
            "; ".join(str(p) for p in problems),
        )

    @admin.display(description=_("calls"), ordering="call_count")
    def calls_link(self, obj: Session) -> SafeString:
        url = reverse("admin:ag2_logging_llmcall_changelist") + f"?session__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, show(obj.call_count))

    @admin.display(description=_("duration"))
    def duration(self, obj: Session) -> str:
        if obj.ended_at is None:
            return "—"
        return ms((obj.ended_at - obj.started_at).total_seconds() * 1000)

    @admin.display(description=_("timeline"))
    def timeline_link(self, obj: Session) -> SafeString:
        url = reverse("admin:ag2_logging_session_timeline", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("timeline"))

    @admin.display(description=_("see"))
    def links(self, obj: Session) -> SafeString:
        q = f"?session__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">{}</a> · <a href="{}" id="ag2-transcript-link">{}</a> · <a href="{}">{}</a> · '
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:ag2_logging_session_timeline", args=[obj.pk]),
            _("timeline"),
            reverse("admin:ag2_logging_session_transcript", args=[obj.pk]),
            _("conversation"),
            reverse("admin:ag2_logging_llmcall_changelist") + q,
            _("LLM calls (%(n)s)") % {"n": obj.call_count},
            reverse("admin:ag2_logging_toolcall_changelist") + q,
            _("tool calls"),
            reverse("admin:ag2_logging_agentevent_changelist") + q,
            _("agent events"),
        )
