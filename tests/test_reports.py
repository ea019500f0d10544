"""Report building blocks: filters, percentiles, charts, CSV cells, money, and the terminal command."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ag2_logging import reports
from ag2_logging.reports import ReportFilter, charts, csv_lines, percentile, safe_cell
from ag2_logging.templatetags.ag2_reports import format_money
from tests.report_data import Data, make_report_data, today, week_params

DAY = dt.date(2026, 3, 15)


def test_filter_defaults_to_the_last_30_days_and_reads_params() -> None:
    flt, errors = ReportFilter.from_params({}, today=DAY)
    assert (flt.start, flt.end, errors) == (DAY - dt.timedelta(days=29), DAY, [])
    flt, errors = ReportFilter.from_params(
        {"start": "2026-03-01", "end": "2026-03-07", "enterprise": " acme "}, today=DAY
    )
    assert (flt.start, flt.end, flt.enterprise, errors) == (
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 7),
        "acme",
        [],
    )
    assert len(flt.days) == 7
    assert flt.querystring(stack="model") == "start=2026-03-01&end=2026-03-07&enterprise=acme&stack=model"
    only_end, _ = ReportFilter.from_params({"end": "2026-02-10"}, today=DAY)
    assert only_end.start == dt.date(2026, 1, 12)
    bad, errors = ReportFilter.from_params({"start": "yesterday", "end": "2026-13-01"}, today=DAY)
    assert (bad.start, bad.end) == (DAY - dt.timedelta(days=29), DAY) and len(errors) == 2
    swapped, errors = ReportFilter.from_params({"start": "2026-03-10", "end": "2026-03-01"}, today=DAY)
    assert (swapped.start, swapped.end) == (dt.date(2026, 3, 1), dt.date(2026, 3, 10)) and errors
    long, errors = ReportFilter.from_params({"start": "2000-01-01", "end": "2026-03-01"}, today=DAY)
    assert (long.end - long.start).days == reports.MAX_DAYS - 1 and errors


def test_percentile_interpolates_like_postgresql() -> None:
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([300, 700, 800, 1200], 0.95) == pytest.approx(1140)
    assert percentile(list(range(1, 101)), 0.5) == pytest.approx(50.5)


def test_figures_never_turn_unknown_costs_into_zero() -> None:
    known = reports.Figures(calls=2, priced_cost=Decimal("0.5"))
    partial = reports.Figures(calls=3, unpriced=1, priced_cost=Decimal("0.5"))
    unknown = reports.Figures(calls=2, unpriced=2)
    assert (known.cost_state, known.cost) == ("known", Decimal("0.5"))
    assert (partial.cost_state, partial.cost) == ("partial", Decimal("0.5"))
    assert (unknown.cost_state, unknown.cost) == ("unknown", None)
    assert reports.Figures().cost_state == "none"
    assert reports.money(None) == "" and reports.money(Decimal("0.1230000000")) == "0.123"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal(0), "$0.00"),
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.6123"), "$0.612"),
        (Decimal("0.0000425"), "$0.0000425"),
        (Decimal("0.01"), "$0.01"),
        (Decimal("0.00950"), "$0.0095"),
        (Decimal("0.0000660"), "$0.000066"),
        (Decimal("1.0000000000"), "$1.00"),
        (0.0095, "$0.0095"),
        (None, ""),
    ],
)
def test_money_format(value: Decimal | None, text: str) -> None:
    assert format_money(value) == text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "\\x09x"),  # a control character in a one-line cell is shown escaped
        ("\rx", "\\x0dx"),
        ("acme", "acme"),
        ("a=b", "a=b"),
        (-5, -5),
        (Decimal("-0.5"), "-0.5"),
        (None, ""),
        (True, "true"),
        (dt.date(2026, 1, 2), "2026-01-02"),
    ],
)
def test_csv_cells_are_escaped_only_when_a_spreadsheet_would_compute_them(
    value: object, cell: object
) -> None:
    assert safe_cell(value) == cell


def test_csv_lines_round_trip() -> None:
    text = "".join(csv_lines(["name", "cost"], [["=evil", Decimal("0.25")], ['quote "q", comma', 3]]))
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "cost"],
        ["'=evil", "0.25"],
        ['quote "q", comma', "3"],
    ]


def test_axis_ticks_are_round() -> None:
    assert charts.ticks(0.25) == [0, 0.1, 0.2, 0.3]
    assert charts.ticks(1.0) == [0, 0.25, 0.5, 0.75, 1.0]
    assert charts.ticks(930) == [0, 250, 500, 750, 1000]
    assert charts.ticks(0) == [0, 1, 2, 3, 4]
    for maximum in (0.003, 7, 45, 123456):
        axis = charts.ticks(maximum)
        assert axis[0] == 0 and axis[-1] >= maximum and len(axis) <= 6


def test_stacked_bars_geometry_and_unknown_markers() -> None:
    days = [DAY, DAY + dt.timedelta(days=1)]
    chart = charts.stacked_bars(
        title="cost",
        days=days,
        series={"a": [Decimal(1), Decimal(2)], "b": [Decimal(1), Decimal(0)]},
        colors={"a": charts.PALETTE[0], "b": charts.PALETTE[1]},
        unknown=[0, 3],
        legend_values={"b": "unknown"},
    )
    assert len(chart.rects) == 3  # no rectangle for a zero
    heights = sorted(round(r.height, 3) for r in chart.rects)
    assert heights[0] * 2 == pytest.approx(heights[-1])  # proportional
    assert [m.title for m in chart.markers] == [f"{days[1].isoformat()}: 3 unpriced call(s), cost unknown"]
    assert [(item.name, item.value) for item in chart.legend] == [("a", "$3.00"), ("b", "unknown")]
    assert charts.stacked_bars(title="x", days=days, series={"a": [0, 0]}, colors={}).empty


#: The four loops ``charts/chart.html`` wrote the shapes with before ``svg_shapes`` (its reference).
SHAPE_LOOPS = (
    '{% load ag2_reports %}    {% for l in chart.lines %}<line x1="{{ l.x1|stringformat:".1f" }}" y1="{{ l.y1|stringformat:".1f" }}" x2="{{ l.x2|stringformat:".1f" }}" y2="{{ l.y2|stringformat:".1f" }}" class="{{ l.css }}"/>{% endfor %}\n'
    '    {% for r in chart.rects %}<rect x="{{ r.x|stringformat:".2f" }}" y="{{ r.y|stringformat:".2f" }}" width="{{ r.width|stringformat:".2f" }}" height="{{ r.height|stringformat:".2f" }}" fill="{{ r.color }}"{% if r.css %} class="{{ r.css }}"{% endif %}><title>{{ r.title|visible }}</title></rect>{% endfor %}\n'
    '    {% for t in chart.labels %}<text x="{{ t.x|stringformat:".1f" }}" y="{{ t.y|stringformat:".1f" }}" text-anchor="{{ t.anchor }}"{% if t.css %} class="{{ t.css }}"{% endif %}>{% if t.title %}<title>{{ t.title|visible }}</title>{% endif %}{{ t.text|visible }}</text>{% endfor %}\n'
    '    {% for t in chart.markers %}<text x="{{ t.x|stringformat:".1f" }}" y="{{ t.y|stringformat:".1f" }}" text-anchor="middle" class="{{ t.css }}"><title>{{ t.title|visible }}</title>{{ t.text|visible }}</text>{% endfor %}'
)


def test_svg_shapes_writes_what_the_template_loops_wrote() -> None:
    """The chart's shapes, escaped and with control characters shown, as the template wrote them."""
    from django.template import Context, Template

    from ag2_logging.templatetags.ag2_reports import svg_shapes

    tricky = "a<b>&\"c' \x00\u202e"
    chart = charts.Chart(width=100, height=50, title="t", summary="s")
    chart.lines = [charts.Line(0, 1.25, 100, 1.35, css="grid"), charts.Line(-0.05, 2, 3, 4, css=tricky)]
    chart.rects = [
        charts.Rect(1.005, 2.5, 3.333, 4, "#0072B2", tricky),
        charts.Rect(Decimal("1.125"), 0, 1e-3, 2, tricky, "t", css="ag2-x"),
    ]
    chart.labels = [charts.Label(5, 6, tricky), charts.Label(7.25, 8, "x", "end", title=tricky, css=tricky)]
    chart.markers = [charts.Label(9, 10, "?", title=tricky, css="ag2-unknown")]
    expected = Template(SHAPE_LOOPS).render(Context({"chart": chart}))
    assert "    " + svg_shapes(chart) == expected
    assert "&lt;b&gt;&amp;&quot;c&#x27;" in expected and "\\x00" in expected
    assert svg_shapes(charts.Chart(width=1, height=1, title="", summary="")) == "\n    \n    \n    "


def test_palette_is_okabe_ito_and_other_is_grey() -> None:
    colors = charts.assign_colors(["x", "y", "other"])
    assert colors == {"x": "#0072B2", "y": "#E69F00", "other": charts.OTHER_COLOR}


def test_latency_bucket_labels() -> None:
    assert reports.latency_bucket_labels((250, 500, 1000, 2000)) == [
        "<250ms",
        "250\u2013500ms",
        "0.5\u20131s",
        "1\u20132s",
        "≥2s",
    ]


# -- the management command -----------------------------------------------------------------


@pytest.fixture
def data(db: None) -> Data:
    return make_report_data()


def report(*args: str) -> str:
    out = StringIO()
    call_command("ag2_logging_report", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_prints_a_readable_table(data: Data) -> None:
    text = report("enterprise", "--days", "7")
    lines = text.splitlines()
    assert lines[0] == f"enterprise: {today() - dt.timedelta(days=6)} .. {today()} (UTC)"
    assert lines[1].split() == [
        "enterprise_id",
        "sessions",
        "calls",
        "errors",
        "total_tokens",
        "cost",
        "unpriced_calls",
        "cost_share",
    ]
    acme = next(line for line in lines if line.startswith("acme"))
    assert acme.split() == ["acme", "2", "5", "1", "11700", "0.1233", "0", "0.9960"]
    assert "unknown" in lines[-1]
    overview = report("--days", "7")
    assert "total" in overview and "0.1238" in overview


def test_command_csv_and_json_match_the_admin(data: Data) -> None:
    rows = list(csv.DictReader(io.StringIO(report("model", "--days", "7", "--format", "csv"))))
    by = {(r["model"], r["provider"]): r for r in rows}
    assert by["gpt-4o", "openai"]["cost"] == "0.12"
    assert by["mystery", "custom"]["cost"] == "" and by["mystery", "custom"]["unpriced_calls"] == "2"
    payload = json.loads(report("models", "--days", "7", "--format", "json", "--sort=-calls"))
    assert payload["report"] == "models" and payload["start"] == week_params()["start"]
    assert [r["model"] for r in payload["rows"]][:1] == ["gpt-4o-mini"]
    scoped = json.loads(report("workflow", "--days", "7", "--enterprise", "acme", "--format", "json"))
    assert {r["workflow_name"] for r in scoped["rows"]} == {"triage", "digest", "TOTAL"}
    days = json.loads(
        report("day", "--start", week_params()["start"], "--end", week_params()["end"], "--format", "json")
    )
    assert len(days["rows"]) == 8
    timeline_free = report("agent", "--days", "7", "--workflow", "digest")
    assert "analyst" in timeline_free and "assistant" not in timeline_free


def test_command_rejects_bad_arguments(data: Data) -> None:
    with pytest.raises(CommandError, match="--start must be a date"):
        report("--start", "soon")
    with pytest.raises(CommandError, match="--days"):
        report("--days", "0")
    with pytest.raises(CommandError, match="--sort"):
        report("models", "--sort", "nope")


@pytest.mark.django_db
def test_sessions_per_tag_are_the_sessions_joined_to_their_tags() -> None:
    """``_people_session_counts`` for tags (the tag rows of the sessions, by a subquery) counts
    what the sessions ``LEFT JOIN``ed to their tag rows counted, on varied sessions (untagged,
    one tag, several, running ones, other days, users) and filters (each chosen tag's own key)."""
    import random

    from django.contrib.auth.models import User
    from django.db.models import Count

    from ag2_logging.models import Session, SessionTag
    from ag2_logging.reports.figures import DIMENSIONS
    from ag2_logging.reports.queries import _people_session_counts
    from tests.report_data import at, session

    rng = random.Random(5)
    users = [User.objects.create_user(f"user{i}") for i in range(3)]
    # Distinct whatever the case: MariaDB's collation holds "vip" and "VIP" the same tag.
    tags = ["vip", "Beta", "eu", "support", "vip-trial"]
    for n in range(60):
        s = session(f"c{n}", rng.choice(["acme", "globex"]), rng.choice(["a", "b"]), at(rng.randrange(40)))
        s.user = rng.choice([None, *users])
        s.status = rng.choice(["completed", "completed", "failed", "running"])
        s.tags = rng.sample(tags, rng.choice([0, 0, 1, 2, 3]))
        s.save()
        SessionTag.objects.bulk_create([SessionTag(session=s, tag=t) for t in s.tags])
    end = today()
    filters = [
        ReportFilter(start=end - dt.timedelta(days=days - 1), end=end, **extra)
        for days in (7, 30)
        for extra in (
            {},
            {"enterprise": "acme"},
            {"workflow": "b", "user": str(users[0].pk)},
            {"tag": "vip"},
            {"tag": "Beta", "enterprise": "globex"},
            {"tag": "nothing"},
        )
    ]
    for flt in filters:
        sessions = flt.sessions().exclude(status=Session.Status.RUNNING)
        old = {
            row["tag_rows__tag"]: row["n"]
            for row in sessions.values("tag_rows__tag").annotate(n=Count("id")).order_by()
            if row["tag_rows__tag"] is not None
        }
        counts, total = _people_session_counts(DIMENSIONS["tag"], flt)
        assert total == sessions.count()
        if flt.tag:  # the page reads the chosen tag's key only
            assert counts.get(flt.tag, 0) == old.get(flt.tag, 0), flt
        else:
            assert counts == old, flt
    assert any(counts for counts, _total in (_people_session_counts(DIMENSIONS["tag"], f) for f in filters))
