"""Admin pages at scale: server time and query count of every report page, the session and LLM
call lists (filtered, searched, sorted, a deep page) and a session's pages.

Each tier (``--calls``: one million calls by default, ``--calls 1000000,10000000`` for two tiers
side by side; ``AG2_BENCH_REPORTS_CALLS`` for ``python -m bench``) is a scratch PostgreSQL
database (``<AG2_BENCH_REPORTS_DB>_1m``, ``_10m``, ...; prefix ``ag2_bench_reports``, on
``AG2_BENCH_POSTGRES_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``) loaded by
:mod:`bench._scale_data` (calls and rollups generated in SQL on the server) and kept between
runs of the same day (``--reload`` loads it again; ``--quick`` is 20,000 calls). A load of at most
100,000 calls, or any with ``--check-rollups``, then rebuilds the rollups with the app's own
``rebuild_rollups`` and fails unless they are the SQL-built ones, row for row. Pages are requested through Django's test client as a superuser
(server time: view, queries, template), the median of a few runs after a warm-up; ``--only
TEXT`` keeps the pages whose name contains it.

Target: every page under 300 ms and under 15 queries. The reference of a rollup page is the time
of the same figures grouped from the raw calls in SQL (what the page would cost without rollups);
with several tiers, ``python -m bench`` gives a larger tier's page the smallest tier's time as
its reference (the ratio is the growth).

    python -m bench.bench_reports [--quick] [--reload | --keep] [--calls N[,N...]] [--only TEXT]
        [--check-rollups]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import time
from typing import Any

from django.db.models import Sum

from bench._common import row, run_child
from bench._scale_data import load, size_of

TARGET_MS = 300.0
MAX_QUERIES = 15
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
FULL_CALLS = 1_000_000
QUICK_CALLS = 20_000
#: Tiers up to this size check their SQL-built rollups against ``rebuild_rollups`` when loaded.
CHECK_CALLS = 100_000


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


def _loaded(size: dict[str, int]) -> bool:
    from ag2_logging.models import DailyRollup, LLMCall, Session, TagDayRollup, UserDayRollup

    latest = DailyRollup.objects.order_by("-day").values_list("day", flat=True).first()
    return (
        latest in (dt.datetime.now(dt.UTC).date(), dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
        and Session.objects.count() == size["sessions"]
        and LLMCall.objects.count() == size["calls"]
        # data loaded before the user and tag rollups existed: reload
        and UserDayRollup.objects.exists()
        and TagDayRollup.objects.exists()
    )


def _pages(
    flt_30: dict[str, str],
    flt_90: dict[str, str],
    session_id: Any,
    enterprise: str,
    model: str,
    calls_count: int,
) -> list[tuple[str, str, dict[str, str], str]]:
    """(figure, URL, query parameters, reference kind) of every page measured. The deep pages of
    the call list are page 1,000 (50,000 rows in), or half way through a smaller set."""
    from django.urls import reverse

    by = "admin:ag2_logging_report_breakdown"
    pages: list[tuple[str, str, dict[str, str], str]] = []
    for label, params in (("30 days", flt_30), ("90 days", flt_90)):
        pages += [
            (f"overview, {label}", reverse("admin:ag2_logging_report_overview"), params, "overview"),
            *(
                (f"by {slug}, {label}", reverse(by, args=[slug]), params, slug)
                for slug in ("enterprise", "workflow", "model", "agent", "day", "user", "tag")
            ),
            (f"model comparison, {label}", reverse("admin:ag2_logging_report_models"), params, "models"),
        ]
    one = {**flt_30, "enterprise": enterprise}
    calls = reverse("admin:ag2_logging_llmcall_changelist")
    sessions = reverse("admin:ag2_logging_session_changelist")
    deep = str(min(1_000, calls_count // 100))
    week_ago = (dt.date.fromisoformat(flt_30["end"]) - dt.timedelta(days=6)).isoformat()
    pages += [
        ("overview, 30 days, one enterprise", reverse("admin:ag2_logging_report_overview"), one, "overview"),
        (
            "model comparison, 30 days, one enterprise",
            reverse("admin:ag2_logging_report_models"),
            one,
            "models",
        ),
        ("trends (6 months)", reverse("admin:ag2_logging_report_trends"), {}, ""),
        ("recommendations, 30 days", reverse("admin:ag2_logging_report_recommendations"), flt_30, ""),
        (
            "session page (largest session)",
            reverse("admin:ag2_logging_session_change", args=[session_id]),
            {},
            "",
        ),
        (
            "session timeline (largest session)",
            reverse("admin:ag2_logging_session_timeline", args=[session_id]),
            {},
            "",
        ),
        ("session list", sessions, {}, ""),
        ("session list, one enterprise", sessions, {"enterprise": enterprise}, ""),
        (
            "session list, one enterprise, search",
            sessions,
            {"enterprise": enterprise, "q": "chat-00001"},
            "",
        ),
        ("session list, search a tag", sessions, {"q": "vip"}, ""),
        ("LLM call list", calls, {}, ""),
        ("LLM call list, page 1,000", calls, {"p": deep}, ""),
        ("LLM call list, one model", calls, {"model": model}, ""),
        ("LLM call list, one enterprise", calls, {"enterprise": enterprise}, ""),
        (
            "LLM call list, one enterprise, 7 days",
            calls,
            {"enterprise": enterprise, "started_at__gte": week_ago},
            "",
        ),
        ("LLM call list, by cost", calls, {"o": "-4"}, ""),
        ("LLM call list, by cost, page 1,000", calls, {"o": "-4", "p": deep}, ""),
    ]
    return pages


def _reference_ms(kind: str, params: dict[str, str]) -> float | None:
    """The same figures grouped from the raw calls, in SQL (one query), in milliseconds."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    from ag2_logging.reports import ReportFilter

    if kind in ("", "models", "user", "tag"):
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


def _label(calls: int) -> str:
    """``20k``, ``1m``, ``10m``: the tier in a database name."""
    return f"{calls // 1_000_000}m" if calls % 1_000_000 == 0 else f"{calls // 1_000}k"


def child(
    calls: int, reload: bool, *, runs: int = 5, only: str = "", keep: bool = False, check: bool = False
) -> dict[str, Any]:
    """Load (or reuse) the tier of ``calls`` calls and measure every page (``only``: the pages
    whose figure contains it; ``keep``: measure what the database holds, loaded or not; ``check``:
    hold the loaded rollups to ``rebuild_rollups``, as a load of at most ``CHECK_CALLS`` does)."""
    size = size_of(calls)
    db_name = f"{os.environ.get('AG2_BENCH_REPORTS_DB', 'ag2_bench_reports')}_{_label(calls)}"

    def log(message: str) -> None:
        print(f"# reports {_label(calls)}: {message}", file=sys.stderr, flush=True)

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
    if not keep and (reload or not _loaded(size)):
        t0 = time.perf_counter()
        timings = load(size, log, check=check or calls <= CHECK_CALLS)
        timings["total_s"] = time.perf_counter() - t0
        log(f"loaded in {timings['total_s']:.0f} s")
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
    # The biggest enterprise and the most used model: the filters that keep the most rows.
    enterprise = (
        DailyRollup.objects.values_list("enterprise_id")
        .annotate(n=Sum("call_count"))
        .order_by("-n")
        .values_list("enterprise_id", flat=True)
        .first()
        or ""
    )
    model = (
        DailyRollup.objects.values_list("model")
        .annotate(n=Sum("call_count"))
        .order_by("-n")
        .values_list("model", flat=True)
        .first()
        or ""
    )
    results = []
    for figure, url, params, kind in _pages(flt_30, flt_90, biggest[0], enterprise, model, calls):
        if only and only not in figure:
            continue
        response = client.get(url, params)  # warm-up (and a check)
        if response.status_code != 200:
            raise RuntimeError(f"{url} {params} answered {response.status_code}")
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
        # Above a million calls the raw-SQL grouping takes seconds a page: the reference of a
        # larger tier is the smaller tier's time instead (see ``run``).
        reference = _reference_ms(kind, params) if calls <= FULL_CALLS else None
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


def tiers(quick: bool) -> list[int]:
    """The tiers ``python -m bench`` measures: ``AG2_BENCH_REPORTS_CALLS`` (comma-separated call
    counts, default one million; ``1000000,10000000`` adds the ten-million tier, whose first load
    takes several minutes), or 20,000 calls with ``--quick``."""
    if quick:
        return [QUICK_CALLS]
    raw = os.environ.get("AG2_BENCH_REPORTS_CALLS", "") or str(FULL_CALLS)
    return sorted(int(part.replace("_", "")) for part in raw.split(",") if part.strip())


def _measure(
    calls_list: list[int], reload: bool, quick: bool, only: str = "", keep: bool = False, check: bool = False
) -> list[dict[str, Any]]:
    args = [
        *(["--check-rollups"] if check else []),
        *(["--reload"] if reload else []),
        *(["--keep"] if keep else []),
        *(["--runs", "3"] if quick else []),
        *(["--only", only] if only else []),
    ]
    return [
        run_child("bench.bench_reports", "--child", "--calls", str(calls), *args, timeout=3600)
        for calls in calls_list
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Figures for ``python -m bench``: per page and tier, the server time and the query count.

    The reference of the smallest tier's time is the raw-SQL grouping of the same figures (what
    the page would cost without rollups); that of a larger tier is the smallest tier's time, so
    the ratio is the growth."""
    got = _measure(tiers(quick), reload=False, quick=quick)
    base = {p["figure"]: p for p in got[0]["pages"]}
    rows = []
    for n, tier in enumerate(got):
        size = f"{tier['calls']:,} calls, {tier['sessions']:,} sessions"
        for page in tier["pages"]:
            ms = page["ms"]
            reference = page["reference_ms"] if n == 0 else base[page["figure"]]["ms"]
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
                    f"Report page: {page['figure']} ({size}) [queries]",
                    page["queries"],
                    MAX_QUERIES,
                    page["queries"] / MAX_QUERIES,
                    f"< {MAX_QUERIES}",
                    page["queries"] < MAX_QUERIES,
                )
            )
    return rows


def _option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def main(argv: list[str]) -> int:
    quick, reload = "--quick" in argv, "--reload" in argv
    only = _option(argv, "--only", "")
    if "--child" in argv:
        calls = int(_option(argv, "--calls", str(QUICK_CALLS if quick else FULL_CALLS)))
        runs = int(_option(argv, "--runs", "5"))
        got = child(
            calls, reload, runs=runs, only=only, keep="--keep" in argv, check="--check-rollups" in argv
        )
        print(json.dumps(got, default=str))
        return 0
    raw = _option(argv, "--calls", "")
    calls_list = sorted(int(p.replace("_", "")) for p in raw.split(",") if p.strip()) if raw else tiers(quick)
    got = _measure(calls_list, reload, quick, only, keep="--keep" in argv, check="--check-rollups" in argv)
    for tier in got:
        print(
            f"{tier['calls']:,} calls, {tier['sessions']:,} sessions, {tier['rollups']:,} rollup rows;"
            f" load: {tier['load'] or 'reused'}"
        )
    figures = [p["figure"] for p in got[0]["pages"]]
    if not figures:
        return 0
    width = max(len(f) for f in figures)
    heads = "".join(f"  {_label(t['calls']) + ' ms':>9}  {'queries':>7}" for t in got)
    print(f"{'page'.ljust(width)}{heads}  {'raw SQL ms':>10}  ok")
    ok = True
    for i, figure in enumerate(figures):
        cells, good = "", True
        for tier in got:
            p = tier["pages"][i]
            good &= p["ms"] < TARGET_MS and p["queries"] < MAX_QUERIES
            cells += f"  {p['ms']:9.1f}  {p['queries']:7d}"
        ok &= good
        ref = got[0]["pages"][i]["reference_ms"]
        print(
            f"{figure.ljust(width)}{cells}  {'' if ref is None else f'{ref:.1f}':>10}  {'yes' if good else 'NO'}"
        )
    print(
        f"target: every page under {TARGET_MS:.0f} ms and {MAX_QUERIES} queries: {'met' if ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
