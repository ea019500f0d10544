"""``manage.py seed_demo``: run real AG2 workflows for two enterprises and record them.

Starts the fake LLM server in-process (on a free port) unless ``--llm-base-url`` is given, runs
each demo workflow inside ``ag2_logging_session(chat_id, workflow_name, enterprise_id)``, waits
for ag2_logging to write and ingest everything (``ag2_logging.flush()``), prints a summary and
creates the admin user ``demo`` / ``demo``. Needs ``AG2_RUNTIME_LOGGING=true`` and a migrated
database.

With ``--days N`` (default 60) it first runs the ``N - 1`` days before today as they would have
run (``example_project.demo.history``: three enterprises, a weekly rhythm, a model switch midway,
an error burst, an unpriced model), each session back-dated by setting the process's clock to its
time (time-machine) around the same recorder, journal and pipeline as today's; ``--days 1`` seeds
today only.

Idempotent: each session's chat id is fixed (``demo-<enterprise>-<workflow>``, and
``demo-history-<day>-<enterprise>-<workflow>-<n>``) and a session already recorded is not run
again, so a second run adds nothing. ``--reset`` deletes the seeded sessions (with their calls,
tool calls and events), rebuilds the cost rollups, then seeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Q, Sum

import ag2_logging
from ag2_logging import ag2_logging_session, session_totals
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, Session, ToolCall
from example_project.demo.history import (
    DEFAULT_DAYS,
    HISTORY_PREFIX,
    TASKS,
    HistorySession,
    run_back_dated,
    schedule,
)
from example_project.demo.teams import GENERATION, build_group_chat, build_two_agent_chat, task_message

Kind = Literal["group chat", "two agents", "async group chat", "async two agents"]


@dataclass(frozen=True)
class DemoWorkflow:
    enterprise: str
    workflow: str
    kind: Kind
    model: str
    request: str
    sku: str
    #: Body of a ``[[usage:...]]`` directive (token counts of every call of the chat); None: defaults.
    usage: str | None = None


WORKFLOWS: tuple[DemoWorkflow, ...] = (
    DemoWorkflow(
        "acme",
        "support_triage",
        "group chat",
        "gpt-4o-mini",
        "A customer reports that SKU-1001 arrived damaged. Triage the ticket.",
        "SKU-1001",
    ),
    DemoWorkflow(
        "acme",
        "invoice_review",
        "two agents",
        "gpt-4o",
        "Check the SKU-2002 line of invoice INV-0042 against the catalogue price.",
        "SKU-2002",
        usage="prompt=900,completion=150,cached=300,reasoning=0",
    ),
    DemoWorkflow(
        "acme",
        "research_digest",
        "async group chat",
        # Not in any price list: its calls are recorded with price_status "unknown" and no cost.
        "acme-internal-llm",
        "Summarise this week's supplier notes about SKU-3003 for the buying team.",
        "SKU-3003",
        usage="prompt=2400,completion=600,cached=0,reasoning=0",
    ),
    DemoWorkflow(
        "globex",
        "support_triage",
        "group chat",
        "gpt-4o",
        "A customer cannot find the manual for SKU-2002. Triage the ticket.",
        "SKU-2002",
        usage="prompt=300,completion=80,cached=0,reasoning=0",
    ),
    DemoWorkflow(
        "globex",
        "invoice_review",
        "two agents",
        "gpt-4o-mini",
        "Check the GX-77 line of invoice GLX-9 against the catalogue price.",
        "GX-77",
    ),
    DemoWorkflow(
        "globex",
        "research_digest",
        "async two agents",
        "gpt-4o-mini",
        "Digest the market notes on SKU-1001 competitors.",
        "SKU-1001",
        usage="prompt=1600,completion=400,cached=800,reasoning=100",
    ),
)


def chat_id_of(spec: DemoWorkflow) -> str:
    """The fixed chat id of a demo workflow's session (what makes seeding idempotent)."""
    return f"demo-{spec.enterprise}-{spec.workflow}"


#: The chat ids seeding records.
SEEDED: tuple[str, ...] = tuple(chat_id_of(spec) for spec in WORKFLOWS)


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Swallow AG2's console output (its IOStream prints to stdout) when ``enabled``, and AG2's
    own warning that a model it cannot price "will cost 0", repeated at every call of the demo's
    unpriced model: ag2_logging records those calls with an unknown cost and says so once."""
    if not enabled:
        yield
        return
    client_log = logging.getLogger("autogen.oai.client")
    level = client_log.level
    client_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        client_log.setLevel(level)


def _team(spec: DemoWorkflow, base_url: str) -> Any:
    if spec.kind.endswith("group chat"):
        return build_group_chat(model=spec.model, base_url=base_url)
    return build_two_agent_chat(model=spec.model, base_url=base_url)


def _message(spec: DemoWorkflow) -> str:
    return task_message(
        spec.request, sku=spec.sku, marker=f"{spec.enterprise}-{spec.workflow}", usage=spec.usage
    )


def run_sync(spec: DemoWorkflow, chat_id: str, base_url: str) -> dict[str, Any] | None:
    with ag2_logging_session(chat_id, spec.workflow, spec.enterprise):
        _team(spec, base_url).run(_message(spec))
        return session_totals()


async def run_async(spec: DemoWorkflow, chat_id: str, base_url: str) -> dict[str, Any] | None:
    async with ag2_logging_session(chat_id, spec.workflow, spec.enterprise):
        team = _team(spec, base_url)
        # team.a_run is ``await user.a_initiate_chat(manager_or_analyst, message=...)``.
        await team.a_run(_message(spec))
        return session_totals()


def run_history(session: HistorySession, base_url: str) -> dict[str, Any] | None:
    """One back-dated session, run at its own time (:func:`~example_project.demo.history.run_back_dated`)."""
    text, sku = TASKS[(session.enterprise, session.workflow)][1:]
    message = task_message(text, sku=sku, marker=session.chat_id, usage=session.usage)
    if session.fail is not None:
        message += f" [[fail:{session.fail}]]"
    spec = DemoWorkflow(session.enterprise, session.workflow, session.kind, session.model, text, sku)  # type: ignore[arg-type]

    def run() -> dict[str, Any] | None:
        with ag2_logging_session(session.chat_id, session.workflow, session.enterprise):
            _team(spec, base_url).run(message)
            return session_totals()

    return run_back_dated(session, run)


def cost_text(known: object, unpriced: int | None) -> str:
    """A cost for the summary: "unknown" when calls have no price and the priced ones sum to 0
    (never "$0.000000"), "≥ $x" when some calls have no price, else "$x"."""
    amount = Decimal(str(known)) if known is not None else Decimal(0)
    if unpriced and not amount:
        return "unknown"
    text = f"${amount:.6f}"
    return f"≥ {text}" if unpriced else text


class Command(BaseCommand):
    help = "Run demo AG2 workflows (two enterprises, three workflows) against a fake LLM and record them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--llm-base-url",
            help="OpenAI-compatible base URL to use instead of starting the fake LLM server in-process "
            "(e.g. http://127.0.0.1:8800/v1 for `python -m ag2_logging.testing.fake_llm`).",
        )
        parser.add_argument(
            "--no-superuser", action="store_true", help="Do not create the demo/demo admin user."
        )
        parser.add_argument("--quiet", action="store_true", help="Hide AG2's conversation output.")
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"Days of history, today included (default {DEFAULT_DAYS}); 1: today's sessions only.",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete the seeded sessions (and their rows) first, then seed again.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not conf.enabled:
            raise CommandError(
                "AG2 logging is off, so nothing would be recorded. Run with AG2_RUNTIME_LOGGING=true."
            )
        if options["days"] < 1:
            raise CommandError("--days must be 1 or more (1: today only).")
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            # ag2_logging writes from its own thread and only logs what fails: catch this up front.
            raise CommandError("The database has unapplied migrations: run `manage.py migrate` first.")

        if options["reset"]:
            self._reset()
        todo = [spec for spec in WORKFLOWS if not Session.objects.filter(chat_id=chat_id_of(spec)).exists()]
        recorded = set(
            Session.objects.filter(chat_id__startswith=HISTORY_PREFIX).values_list("chat_id", flat=True)
        )
        history = [
            s for s in schedule(dt.datetime.now(dt.UTC).date(), options["days"]) if s.chat_id not in recorded
        ]
        if history and importlib.util.find_spec("time_machine") is None:
            raise CommandError(
                "Back-dating the history needs time-machine: pip install 'django-ag2-logging[demo]' "
                "(or seed today only with --days 1)."
            )
        if not todo and not history:
            self.stdout.write(
                f"Already seeded: the {len(WORKFLOWS)} demo sessions are recorded (--reset starts over)."
            )
            self._summary(
                [str(pk) for pk in Session.objects.filter(chat_id__in=SEEDED).values_list("pk", flat=True)]
            )
            if not options["no_superuser"]:
                self._superuser()
            return
        with contextlib.ExitStack() as stack:
            base_url = options["llm_base_url"]
            if not base_url:
                from ag2_logging.testing import FakeLLMServer

                server = stack.enter_context(FakeLLMServer(port=0))
                base_url = server.base_url
                self.stdout.write(f"Fake LLM server started at {base_url}")
            self.stdout.write(f"AG2 generation: {GENERATION}")
            missing_history = self._run_history(history, base_url, quiet=options["quiet"])
            session_ids, failures = self._run_all(todo, base_url, quiet=options["quiet"])
            # Wait for ag2_logging's database thread: Session rows written, journals ingested.
            ag2_logging.flush()

        missing = self._summary(session_ids)
        if not options["no_superuser"]:
            self._superuser()
        if failures:
            raise CommandError(f"{failures} workflow(s) failed; see above.")
        if missing_history:
            raise CommandError(f"{missing_history} back-dated session(s) are not (fully) in the database.")
        if missing:
            raise CommandError(
                f"{missing} session(s) ran but are not (fully) in the database; see ag2_logging's errors above "
                "(the journals still hold them)."
            )

    def _reset(self) -> None:
        """Delete the seeded sessions, their nested sessions and rows; rebuild the rollups."""
        from ag2_logging.pipeline.rollups import rebuild_rollups

        seeded = Session.objects.filter(Q(chat_id__in=SEEDED) | Q(chat_id__startswith=HISTORY_PREFIX))
        Session.objects.filter(parent__in=seeded).delete()
        deleted, _ = seeded.delete()
        rebuild_rollups()
        self.stdout.write(f"Reset: deleted the seeded sessions ({deleted} rows with their calls and events).")

    def _run_history(self, history: list[HistorySession], base_url: str, *, quiet: bool) -> int:
        """Run the back-dated sessions; return how many are missing from the database after."""
        if not history:
            return 0
        started = time.monotonic()
        for session in history:
            try:
                with _quiet(quiet):
                    run_history(session, base_url)
            except Exception as exc:
                # The error burst's sessions fail as planned (classic AG2 raises the model's 400).
                if session.fail is None:
                    raise CommandError(f"{session.chat_id} failed: {type(exc).__name__}: {exc}") from exc
        days = len({session.at.date() for session in history})
        self.stdout.write(
            f"History: {len(history)} back-dated sessions over {days} days "
            f"({sum(1 for s in history if s.fail is not None)} of them the error burst) "
            f"in {time.monotonic() - started:.1f} s"
        )
        chat_ids = [session.chat_id for session in history]
        written = Session.objects.filter(chat_id__in=chat_ids)
        if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
            written = written.filter(ingested_at__isnull=False)
        return len(chat_ids) - written.count()

    def _run_all(self, todo: list[DemoWorkflow], base_url: str, *, quiet: bool) -> tuple[list[str], int]:
        session_ids: list[str] = []
        failures = 0
        for number, spec in enumerate(todo, start=1):
            chat_id = chat_id_of(spec)
            label = f"[{number}/{len(todo)}] {spec.enterprise:<7}{spec.workflow:<16}{spec.kind:<17}{spec.model:<18}"
            try:
                with _quiet(quiet):
                    if spec.kind.startswith("async"):
                        totals = asyncio.run(run_async(spec, chat_id, base_url))
                    else:
                        totals = run_sync(spec, chat_id, base_url)
            except Exception as exc:
                failures += 1
                self.stderr.write(f"{label} FAILED: {type(exc).__name__}: {exc}")
                continue
            if totals is None:  # logging switched off underneath us
                self.stdout.write(f"{label} ran, not recorded")
                continue
            session_ids.append(totals["session_id"])
            unpriced = f" ({totals['unpriced_calls']} unpriced)" if totals["unpriced_calls"] else ""
            self.stdout.write(
                f"{label} session {totals['session_id']}: {totals['call_count']} calls, "
                f"{totals['tool_calls']} tool calls, {totals['total_tokens']} tokens, "
                f"{cost_text(totals['total_cost'], totals['unpriced_calls'])}{unpriced}"
            )
        return session_ids, failures

    def _summary(self, session_ids: list[str]) -> int:
        """Print what the database holds for ``session_ids``; return how many are missing or not ingested."""
        sessions = Session.objects.filter(id__in=session_ids)
        totals = sessions.aggregate(
            sessions=Count("id"),
            completed=Count("id", filter=Q(status=Session.Status.COMPLETED)),
            ingested=Count("id", filter=Q(ingested_at__isnull=False)),
            calls=Sum("call_count"),
            unpriced=Sum("unpriced_calls"),
            tokens=Sum("total_tokens"),
            cost=Sum("total_cost"),
        )
        llm_rows = LLMCall.objects.filter(session__in=sessions).count()
        tool_rows = ToolCall.objects.filter(session__in=sessions).count()
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Recorded {totals['sessions']} sessions ({totals['completed']} completed, "
                f"{totals['ingested']} ingested): {totals['calls'] or 0} LLM calls "
                f"({totals['unpriced'] or 0} unpriced), {tool_rows} tool calls, "
                f"{totals['tokens'] or 0} tokens, cost {cost_text(totals['cost'], totals['unpriced'])}"
            )
        )
        by_enterprise = (
            sessions.values("enterprise_id")
            .annotate(
                n=Count("id"),
                calls=Sum("call_count"),
                tokens=Sum("total_tokens"),
                cost=Sum("total_cost"),
                unpriced=Sum("unpriced_calls"),
            )
            .order_by("enterprise_id")
        )
        for row in by_enterprise:
            self.stdout.write(
                f"  {row['enterprise_id']:<8}{row['n']} sessions, {row['calls']} calls, "
                f"{row['tokens']} tokens, {cost_text(row['cost'], row['unpriced'])}"
            )
        self.stdout.write(f"LLMCall rows ingested: {llm_rows}")
        self.stdout.write(f"Runtime log: {conf.resolved.log_file}")
        self.stdout.write(f"Session journals: {conf.resolved.journal_dir}")
        if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
            return len(session_ids) - int(totals["ingested"])
        # A Celery worker ingests the journals (LLM calls, tool calls) in its own time.
        self.stdout.write("Ingest of the journals is queued for the Celery worker.")
        return len(session_ids) - int(totals["sessions"])

    def _superuser(self) -> None:
        user_model = get_user_model()
        user, created = user_model._default_manager.get_or_create(
            username="demo", defaults={"email": "demo@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password("demo")
        user.save()
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} superuser demo / demo: `manage.py runserver`, then open http://127.0.0.1:8000/admin/"
        )
