"""``manage.py seed_demo``: run real AG2 workflows for two enterprises and record them.

Starts the fake LLM server in-process (on a free port) unless ``--llm-base-url`` is given, runs
each demo workflow inside ``ag2_logging_session(chat_id, workflow_name, enterprise_id)``, waits
for ag2_logging to write and ingest everything (``ag2_logging.flush()``), prints a summary and
creates the admin user ``demo`` / ``demo``. Needs ``AG2_RUNTIME_LOGGING=true`` and a migrated
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
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


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Swallow AG2's console output (its IOStream prints to stdout) when ``enabled``."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


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

    def handle(self, *args: Any, **options: Any) -> None:
        if not conf.enabled:
            raise CommandError(
                "AG2 logging is off, so nothing would be recorded. Run with AG2_RUNTIME_LOGGING=true."
            )
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            # ag2_logging writes from its own thread and only logs what fails: catch this up front.
            raise CommandError("The database has unapplied migrations: run `manage.py migrate` first.")

        with contextlib.ExitStack() as stack:
            base_url = options["llm_base_url"]
            if not base_url:
                from ag2_logging.testing import FakeLLMServer

                server = stack.enter_context(FakeLLMServer(port=0))
                base_url = server.base_url
                self.stdout.write(f"Fake LLM server started at {base_url}")
            self.stdout.write(f"AG2 generation: {GENERATION}")
            session_ids, failures = self._run_all(base_url, quiet=options["quiet"])
            # Wait for ag2_logging's database thread: Session rows written, journals ingested.
            ag2_logging.flush()

        missing = self._summary(session_ids)
        if not options["no_superuser"]:
            self._superuser()
        if failures:
            raise CommandError(f"{failures} workflow(s) failed; see above.")
        if missing:
            raise CommandError(
                f"{missing} session(s) ran but are not (fully) in the database; see ag2_logging's errors above "
                "(the journals still hold them)."
            )

    def _run_all(self, base_url: str, *, quiet: bool) -> tuple[list[str], int]:
        session_ids: list[str] = []
        failures = 0
        for number, spec in enumerate(WORKFLOWS, start=1):
            chat_id = f"demo-{spec.enterprise}-{spec.workflow}-{uuid.uuid4().hex[:8]}"
            label = f"[{number}/{len(WORKFLOWS)}] {spec.enterprise:<7}{spec.workflow:<16}{spec.kind:<17}{spec.model:<18}"
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
                f"${Decimal(totals['total_cost']):.6f}{unpriced}"
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
                f"{totals['tokens'] or 0} tokens, cost ${totals['cost'] or Decimal(0):.6f}"
            )
        )
        by_enterprise = (
            sessions.values("enterprise_id")
            .annotate(
                n=Count("id"), calls=Sum("call_count"), tokens=Sum("total_tokens"), cost=Sum("total_cost")
            )
            .order_by("enterprise_id")
        )
        for row in by_enterprise:
            self.stdout.write(
                f"  {row['enterprise_id']:<8}{row['n']} sessions, {row['calls']} calls, "
                f"{row['tokens']} tokens, ${row['cost']:.6f}"
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
