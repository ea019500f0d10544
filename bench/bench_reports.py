"""Admin cost reports at scale: server time and query count of every report page.

Loads 1,000,000 LLM calls (10,000 sessions, 50 enterprises, 20 models, 90 days ending today) into
a scratch PostgreSQL database (``ag2_bench_reports`` on ``AG2_BENCH_POSTGRES_URL``, default
``postgres://postgres@127.0.0.1:5432/postgres``) with COPY, rebuilds the daily rollups, then
requests each report page through Django's test client (server time: view, queries, template)
and takes the median of a few runs after a warm-up. The data are kept between runs of the same
day (``--reload`` loads them again); ``--quick`` uses 20,000 calls in ``ag2_bench_reports_quick``.

Target: every page under 300 ms and under 15 queries. The reference of a rollup page is the time
of the same figures grouped from the raw calls in SQL (what the page would cost without rollups).

    python -m bench.bench_reports [--quick] [--reload]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

from bench._common import row, run_child

TARGET_MS = 300.0
MAX_QUERIES = 15
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
FULL = {"calls": 1_000_000, "sessions": 10_000, "enterprises": 50, "models": 20, "days": 90}
QUICK = {"calls": 20_000, "sessions": 400, "enterprises": 50, "models": 20, "days": 90}


def _admin_url() -> str:
    return os.environ.get("AG2_BENCH_POSTGRES_URL", DEFAULT_PG_URL)


def _db_url(name: str) -> str:
    return _admin_url().rsplit("/", 1)[0] + "/" + name


# -- the child process: Django on the scratch database ---------------------------------------------


def _configure(db_name: str) -> None:
    import django
    import environ
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-only-not-secret",
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="bench.bench_reports",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "ag2_logging",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        DATABASES={"default": environ.Env.db_url_config(_db_url(db_name))},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        AG2_LOGGING={"ENABLED": False},
        LOGGING_CONFIG=None,
    )
    django.setup()


def __getattr__(name: str) -> Any:
    """``urlpatterns`` for the child's ``ROOT_URLCONF`` (built once Django is set up)."""
    if name == "urlpatterns":
        from django.contrib import admin
        from django.urls import path

        return [path("admin/", admin.site.urls)]
    raise AttributeError(name)


def _ensure_database(db_name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db_name}"')


MODELS = [
    # name, provider, input $/token, output $/token (None: a model without a price)
    ("gpt-4o", "openai", "0.0000025", "0.00001"),
    ("gpt-4o-mini", "openai", "0.00000015", "0.0000006"),
    ("gpt-4.1", "openai", "0.000002", "0.000008"),
    ("gpt-4.1-mini", "openai", "0.0000004", "0.0000016"),
    ("gpt-4.1-nano", "openai", "0.0000001", "0.0000004"),
    ("o3", "openai", "0.000002", "0.000008"),
    ("o3-mini", "openai", "0.0000011", "0.0000044"),
    ("o4-mini", "openai", "0.0000011", "0.0000044"),
    ("claude-sonnet-4", "anthropic", "0.000003", "0.000015"),
    ("claude-opus-4", "anthropic", "0.000015", "0.000075"),
    ("claude-3-5-haiku", "anthropic", "0.0000008", "0.000004"),
    ("gemini-2.5-pro", "google", "0.00000125", "0.00001"),
    ("gemini-2.5-flash", "google", "0.0000003", "0.0000025"),
    ("mistral-large", "mistral", "0.000002", "0.000006"),
    ("mistral-small", "mistral", "0.0000002", "0.0000006"),
    ("llama-3.3-70b", "groq", "0.00000059", "0.00000079"),
    ("deepseek-chat", "deepseek", "0.00000027", "0.0000011"),
    ("command-r-plus", "cohere", "0.0000025", "0.00001"),
    ("qwen-local", "local", "0", "0"),
    ("house-model", "custom", None, None),
]
WORKFLOWS = {
    "support_triage": ("triage", "resolver", "qa"),
    "weekly_digest": ("writer", "editor"),
    "code_review": ("reviewer", "tester"),
    "invoice_check": ("extractor", "auditor"),
    "lead_scoring": ("researcher", "scorer"),
    "onboarding": ("guide",),
    "contract_summary": ("reader", "summarizer", "checker"),
    "incident_postmortem": ("collector", "analyst", "writer"),
    "translation": ("translator", "reviewer"),
    "sales_email": ("drafter",),
    "data_cleanup": ("planner", "executor"),
    "faq_bot": ("answerer",),
}


def _generate(
    size: dict[str, int], seed: int = 20260101
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Session and call rows (values in model field order, see ``_columns``)."""
    from ag2_logging.models import LLMCall, Session

    rng = random.Random(seed)
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - dt.timedelta(days=size["days"] - 1)
    models = MODELS[: size["models"]]
    prices = [
        (name, provider, None if i is None else Decimal(i), None if o is None else Decimal(o))
        for name, provider, i, o in models
    ]
    enterprises = [f"enterprise-{i:02d}" for i in range(size["enterprises"])]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(enterprises))]  # a few big customers
    workflow_names = list(WORKFLOWS)
    uses = {e: rng.sample(workflow_names, rng.randint(2, 5)) for e in enterprises}
    # each (enterprise, agent) has its model: enterprises pick tiers
    agent_model: dict[tuple[str, str], int] = {}
    for e in enterprises:
        for wf in uses[e]:
            for agent in WORKFLOWS[wf]:
                agent_model[e, agent] = rng.randrange(len(prices))
    # calls per session: 0.2x to 1.8x the mean, adding up to exactly size["calls"]
    spread = [rng.uniform(0.2, 1.8) for _ in range(size["sessions"])]
    scale = size["calls"] / sum(spread)
    counts = [max(1, int(x * scale)) for x in spread]
    for i in range(size["calls"] - sum(counts)):
        counts[i % len(counts)] += 1
    sessions: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    Q = Decimal("0.0000000001")
    for n, count in enumerate(counts):
        enterprise = rng.choices(enterprises, weights)[0]
        workflow = rng.choice(uses[enterprise])
        started = first_day + dt.timedelta(seconds=rng.uniform(0, size["days"] * 86400 - 3600))
        sid = uuid.uuid4()
        totals = dict.fromkeys(
            (
                "call_count",
                "error_count",
                "unpriced_calls",
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "reasoning_tokens",
                "total_tokens",
                "retry_count",
            ),
            0,
        )
        cost_total = Decimal(0)
        moment = started
        agents = WORKFLOWS[workflow]
        for seq in range(count):
            agent = agents[seq % len(agents)]
            name, provider, price_in, price_out = prices[agent_model[enterprise, agent]]
            prompt = rng.randint(300, 8000)
            completion = rng.randint(20, 1200)
            cached = prompt // 2 if rng.random() < 0.3 else 0
            reasoning = completion // 3 if name.startswith("o") else 0
            failed = rng.random() < 0.02
            retries = 1 if rng.random() < 0.05 else 0
            latency = rng.lognormvariate(7.2, 0.6)
            if failed:
                prompt = completion = cached = reasoning = 0
                cost: Decimal | None = Decimal(0)
            elif price_in is None or price_out is None:
                cost = None
            else:
                cost = (price_in * prompt + price_out * completion).quantize(Q)
            ended = moment + dt.timedelta(milliseconds=latency)
            calls.append(
                {
                    "id": uuid.uuid4(),
                    "session_id": sid,
                    "seq": seq,
                    "agent_name": agent,
                    "provider": provider,
                    "model": name,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "cached_tokens": cached,
                    "reasoning_tokens": reasoning,
                    "total_tokens": prompt + completion,
                    "cost": cost,
                    "price_status": "unknown"
                    if cost is None
                    else ("local" if provider == "local" else "priced"),
                    "latency_ms": latency,
                    "status": "error" if failed else "success",
                    "error": "Error code: 429 - rate limited" if failed else "",
                    "retries": retries,
                    "started_at": moment,
                    "ended_at": ended,
                }
            )
            totals["call_count"] += 1
            totals["error_count"] += failed
            totals["retry_count"] += retries
            totals["prompt_tokens"] += prompt
            totals["completion_tokens"] += completion
            totals["cached_tokens"] += cached
            totals["reasoning_tokens"] += reasoning
            totals["total_tokens"] += prompt + completion
            if cost is None:
                totals["unpriced_calls"] += 1
            else:
                cost_total += cost
            moment = ended + dt.timedelta(milliseconds=rng.uniform(20, 400))
        sessions.append(
            {
                "id": sid,
                "chat_id": f"chat-{n:06d}",
                "workflow_name": workflow,
                "enterprise_id": enterprise,
                "status": "failed" if rng.random() < 0.03 else "completed",
                "started_at": started,
                "ended_at": moment,
                "total_cost": cost_total,
                "ingested_at": moment,
                **totals,
            }
        )
    return _rows(Session, sessions), _rows(LLMCall, calls)


def _columns(model: Any) -> list[Any]:
    return list(model._meta.concrete_fields)


def _rows(model: Any, dicts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Values for every concrete column: ours, else the field's default (models may grow fields)."""
    fields = _columns(model)
    defaults = {}
    for f in fields:
        default = f.get_default() if f.has_default() or not f.null else None
        if f.get_internal_type() == "JSONField" and default is not None:
            default = json.dumps(default)
        defaults[f.attname] = default
    return [tuple(d.get(f.attname, defaults[f.attname]) for f in fields) for d in dicts]


def _copy(model: Any, rows: list[tuple[Any, ...]]) -> None:
    from django.db import connection

    table = model._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in _columns(model))
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY
        with raw.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for values in rows:
                copy.write_row(values)


def _load(size: dict[str, int], log: Any) -> dict[str, float]:
    from django.db import connection, transaction

    from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, ModelDayRollup, Session, ToolCall
    from ag2_logging.pipeline.rollups import rebuild_rollups

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    session_rows, call_rows = _generate(size)
    timings["generate_s"] = time.perf_counter() - t0
    log(
        f"generated {len(session_rows):,} sessions and {len(call_rows):,} calls in {timings['generate_s']:.1f} s"
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            for model in (DailyRollup, ModelDayRollup, ToolCall, AgentEvent, LLMCall, Session):
                cursor.execute(f'TRUNCATE "{model._meta.db_table}" CASCADE')
        t0 = time.perf_counter()
        _copy(Session, session_rows)
        _copy(LLMCall, call_rows)
        timings["copy_s"] = time.perf_counter() - t0
    log(f"COPY in {timings['copy_s']:.1f} s")
    del session_rows, call_rows
    t0 = time.perf_counter()
    rollups = rebuild_rollups(batch_size=5_000)
    timings["rollups_s"] = time.perf_counter() - t0
    log(f"rebuilt {rollups:,} rollup rows in {timings['rollups_s']:.1f} s")
    with connection.cursor() as cursor:
        for model in (Session, LLMCall, DailyRollup, ModelDayRollup):
            cursor.execute(f'VACUUM ANALYZE "{model._meta.db_table}"')
    return timings


def _loaded(size: dict[str, int]) -> bool:
    from ag2_logging.models import DailyRollup, LLMCall, ModelDayRollup, Session

    latest = DailyRollup.objects.order_by("-day").values_list("day", flat=True).first()
    return (
        (
            latest == dt.datetime.now(dt.UTC).date()
            or latest == dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        )
        and Session.objects.count() == size["sessions"]
        and LLMCall.objects.count() == size["calls"]
        and ModelDayRollup.objects.exists()  # data loaded before the model rollups existed: reload
    )


def _pages(
    flt_30: dict[str, str], flt_90: dict[str, str], session_id: Any, enterprise: str
) -> list[tuple[str, str, dict[str, str], str]]:
    from django.urls import reverse

    by = "admin:ag2_logging_report_breakdown"
    pages: list[tuple[str, str, dict[str, str], str]] = []
    for label, params in (("30 days", flt_30), ("90 days", flt_90)):
        pages += [
            (f"overview, {label}", reverse("admin:ag2_logging_report_overview"), params, "overview"),
            *(
                (f"by {slug}, {label}", reverse(by, args=[slug]), params, slug)
                for slug in ("enterprise", "workflow", "model", "agent", "day")
            ),
            (f"model comparison, {label}", reverse("admin:ag2_logging_report_models"), params, "models"),
        ]
    pages += [
        (
            "overview, 30 days, one enterprise",
            reverse("admin:ag2_logging_report_overview"),
            {**flt_30, "enterprise": enterprise},
            "overview",
        ),
        (
            "model comparison, 30 days, one enterprise",
            reverse("admin:ag2_logging_report_models"),
            {**flt_30, "enterprise": enterprise},
            "models",
        ),
        (
            "session timeline (largest session)",
            reverse("admin:ag2_logging_session_timeline", args=[session_id]),
            {},
            "",
        ),
        ("LLM call list", reverse("admin:ag2_logging_llmcall_changelist"), {}, ""),
        (
            "LLM call list, one enterprise, 7 days",
            reverse("admin:ag2_logging_llmcall_changelist"),
            {"enterprise": enterprise, "started_at__gte": flt_30["end"]},
            "",
        ),
        ("session list", reverse("admin:ag2_logging_session_changelist"), {}, ""),
    ]
    return pages


def _reference_ms(kind: str, params: dict[str, str]) -> float | None:
    """The same figures grouped from the raw calls, in SQL (one query), in milliseconds."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    from ag2_logging.reports import ReportFilter

    if kind in ("", "models"):
        return None
    flt, _errors = ReportFilter.from_params(params)
    calls = flt.calls().filter(session__isnull=False)
    group = {
        "overview": ("model",),
        "enterprise": ("session__enterprise_id",),
        "workflow": ("session__workflow_name",),
        "model": ("model", "provider"),
        "agent": ("agent_name",),
        "day": (),
    }[kind]
    if kind == "day":
        qs = calls.annotate(d=TruncDate("started_at", tzinfo=dt.UTC)).values("d")
    else:
        qs = calls.values(*group)
    t0 = time.perf_counter()
    list(qs.annotate(n=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost")).order_by())
    return (time.perf_counter() - t0) * 1000


def child(quick: bool, reload: bool) -> dict[str, Any]:
    size = QUICK if quick else FULL
    db_name = "ag2_bench_reports_quick" if quick else "ag2_bench_reports"

    def log(message: str) -> None:
        print(f"# reports: {message}", file=sys.stderr, flush=True)

    _ensure_database(db_name)
    _configure(db_name)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from ag2_logging.models import DailyRollup, LLMCall, Session

    call_command("migrate", verbosity=0, interactive=False)
    timings: dict[str, float] = {}
    if reload or not _loaded(size):
        timings = _load(size, log)
    else:
        log(f"reusing the {size['calls']:,} calls loaded earlier today in {db_name}")
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", password="bench"
    )
    client = Client()
    client.force_login(user)
    today = dt.datetime.now(dt.UTC).date()
    flt_30 = {"start": (today - dt.timedelta(days=29)).isoformat(), "end": today.isoformat()}
    flt_90 = {"start": (today - dt.timedelta(days=89)).isoformat(), "end": today.isoformat()}
    biggest = Session.objects.order_by("-call_count").values_list("pk", "call_count").first()
    assert biggest is not None
    enterprise = (
        Session.objects.values_list("enterprise_id", flat=True).order_by("enterprise_id").first() or ""
    )
    results = []
    runs = 3 if quick else 5
    for figure, url, params, kind in _pages(flt_30, flt_90, biggest[0], enterprise):
        response = client.get(url, params)  # warm-up (and a check)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        times = []
        queries = 0
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                t0 = time.perf_counter()
                response = client.get(url, params)
                if response.streaming:
                    b"".join(response.streaming_content)
                else:
                    response.content  # noqa: B018 - rendered
                times.append((time.perf_counter() - t0) * 1000)
            queries = len(captured)
        reference = [_reference_ms(kind, params) for _ in range(2)][-1]
        results.append(
            {"figure": figure, "ms": statistics.median(times), "queries": queries, "reference_ms": reference}
        )
        log(f"{figure}: {statistics.median(times):.1f} ms, {queries} queries")
    return {
        "calls": LLMCall.objects.count(),
        "sessions": Session.objects.count(),
        "rollups": DailyRollup.objects.count(),
        "biggest_session_calls": biggest[1],
        "load": timings,
        "pages": results,
    }


# -- the harness's entry point ---------------------------------------------------------------------


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Figures for ``python -m bench``: one row per page (server time) and one per page (queries)."""
    args = ["--child", *(["--quick"] if quick else [])]
    got = run_child("bench.bench_reports", *args, timeout=1800)
    size = f"{got['calls']:,} calls, {got['sessions']:,} sessions, {got['rollups']:,} rollup rows"
    rows = []
    for page in got["pages"]:
        ms, reference = page["ms"], page["reference_ms"]
        rows.append(
            row(
                f"Report page: {page['figure']} ({size}) [ms]",
                round(ms, 1),
                None if reference is None else round(reference, 1),
                None if not reference else ms / reference,
                f"< {TARGET_MS:.0f} ms",
                ms < TARGET_MS,
            )
        )
        rows.append(
            row(
                f"Report page: {page['figure']} [queries]",
                page["queries"],
                MAX_QUERIES,
                page["queries"] / MAX_QUERIES,
                f"< {MAX_QUERIES}",
                page["queries"] < MAX_QUERIES,
            )
        )
    return rows


def main(argv: list[str]) -> int:
    quick, reload = "--quick" in argv, "--reload" in argv
    if "--child" in argv:
        print(json.dumps(child(quick, reload), default=str))
        return 0
    got = child_in_subprocess(quick, reload)
    width = max(len(p["figure"]) for p in got["pages"])
    print(
        f"{got['calls']:,} calls, {got['sessions']:,} sessions, {got['rollups']:,} rollup rows; load: {got['load'] or 'reused'}"
    )
    print(f"{'page'.ljust(width)}  {'server ms':>9}  {'queries':>7}  {'raw SQL ms':>10}  ok")
    ok = True
    for p in got["pages"]:
        good = p["ms"] < TARGET_MS and p["queries"] < MAX_QUERIES
        ok &= good
        reference = "" if p["reference_ms"] is None else f"{p['reference_ms']:.1f}"
        print(
            f"{p['figure'].ljust(width)}  {p['ms']:9.1f}  {p['queries']:7d}  {reference:>10}  {'yes' if good else 'NO'}"
        )
    print(
        f"target: every page under {TARGET_MS:.0f} ms and {MAX_QUERIES} queries: {'met' if ok else 'MISSED'}"
    )
    return 0


def child_in_subprocess(quick: bool, reload: bool) -> dict[str, Any]:
    args = ["--child", *(["--quick"] if quick else []), *(["--reload"] if reload else [])]
    proc_result: dict[str, Any] = run_child("bench.bench_reports", *args, timeout=1800)
    return proc_result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
