"""``manage.py ag2_logging_report trends``: the trends table in a terminal, as JSON and as CSV, over
rollup rows seeded with known week-over-week and month-over-month figures and a planted anomaly."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.report_data import rollup

pytestmark = pytest.mark.django_db
#: A Sunday: ISO week 2026-W48 (2026-11-23 .. 2026-11-29) is whole.
SUNDAY = dt.date(2026, 11, 29)


def before(n: int, day: dt.date = SUNDAY) -> dt.date:
    return day - dt.timedelta(days=n)


@pytest.fixture
def weeks() -> None:
    """triage $10 -> $15 (+50%), search $4 -> $1 (-75%), draft unpriced this week, fresh new."""
    rollup(before(13), "triage", "4", tokens=4000)
    rollup(before(10), "triage", "6", tokens=6000)
    rollup(before(6), "triage", "15", tokens=12000)
    rollup(before(13), "search", "4", model="gpt-4o-mini", tokens=8000)
    rollup(SUNDAY, "search", "1", model="gpt-4o-mini", tokens=2000)
    rollup(before(6), "draft", None, enterprise="globex", model="mystery-model", calls=3, tokens=900)
    rollup(SUNDAY, "fresh", "2", enterprise="globex", tokens=100)


def report(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("ag2_logging_report", "trends", *args, stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue()


def test_the_table_shows_each_period_and_the_change(weeks: None) -> None:
    lines = report("--end", SUNDAY.isoformat(), "--periods", "2").splitlines()
    assert (
        lines[0]
        == "trends by workflow, per week: 2026-W47 .. 2026-W48 (to 2026-11-29, UTC; change: whole periods)"
    )
    assert lines[1].split() == [
        "workflow_name", "period", "calls", "total_tokens", "cost", "previous_cost", "cost_change",
        "cost_change_ratio",
    ]  # fmt: skip
    table = [line.split() for line in lines[3:] if line and not line.startswith(("biggest", "cost:"))]
    # One row per group and period, the change on the group's last period; the biggest cost first.
    assert table == [
        ["triage", "2026-W47", "2", "10000", "10"],
        ["triage", "2026-W48", "1", "12000", "15", "10", "5", "0.5000"],
        ["fresh", "2026-W47", "0", "0", "0"],
        ["fresh", "2026-W48", "1", "100", "2", "0", "2"],
        ["search", "2026-W47", "1", "8000", "4"],
        ["search", "2026-W48", "1", "2000", "1", "4", "-3", "-0.7500"],
        ["draft", "2026-W47", "0", "0", "0"],
        ["draft", "2026-W48", "3", "900", "0"],  # unpriced: no cost, no change (empty, never 0)
        ["TOTAL", "2026-W47", "3", "18000", "14"],
        ["TOTAL", "2026-W48", "6", "15000", "18", "14"],
    ]
    assert "biggest movers: triage 5, search -3, fresh 2" in lines
    assert lines[-1].startswith("cost: priced calls only")


def test_json_by_model_per_month(weeks: None) -> None:
    rollup(dt.date(2026, 10, 3), "triage", "20")
    data = json.loads(report("--end", "2026-11-30", "--grain", "month", "--by", "model", "--json"))
    assert {k: data[k] for k in ("report", "grain", "by", "end", "to_date", "compared_days")} == {
        "report": "trends",
        "grain": "month",
        "by": "model",
        "end": "2026-11-30",
        "to_date": False,
        "compared_days": 31,
    }
    assert [p["label"] for p in data["periods"]] == [f"2026-{m:02d}" for m in range(6, 12)]
    last = {(r["model"], r["period"]): r for r in data["rows"] if r["period"] == "2026-11"}
    gpt4o = last[("gpt-4o", "2026-11")]
    # gpt-4o: $20 in October (triage), $10 + $15 + $2 in November
    assert (gpt4o["cost"], gpt4o["previous_cost"], gpt4o["cost_change"], gpt4o["cost_change_ratio"]) == (
        "27",
        "20",
        "7",
        "0.3500",
    )
    mini = last[("gpt-4o-mini", "2026-11")]
    assert (mini["cost"], mini["previous_cost"], mini["cost_change"]) == ("5", "0", "5")
    assert last[("mystery-model", "2026-11")]["cost_change"] == ""  # unknown
    assert [(m["label"], m["cost_change"]) for m in data["movers"]] == [
        ("gpt-4o (openai)", "7"),
        ("gpt-4o-mini (openai)", "5"),
    ]
    assert data["anomalies"] == []


def test_a_planted_anomaly_is_listed(db: None) -> None:
    planted = before(2)
    for n in range(40):
        rollup(before(n), "triage", "60" if before(n) == planted else str(9 + n % 3))
    data = json.loads(report("--end", SUNDAY.isoformat(), "--format", "json"))
    (anomaly,) = data["anomalies"]
    assert {k: anomaly[k] for k in ("workflow", "day", "cost", "direction", "history_days")} == {
        "workflow": "triage",
        "day": planted.isoformat(),
        "cost": "60",
        "direction": "high",
        "history_days": 28,
    }
    text = report("--end", SUNDAY.isoformat())
    assert f"anomaly: triage (acme) on {planted}: 60, high (robust z {anomaly['z']}" in text


def test_csv_has_every_column(weeks: None) -> None:
    rows = list(
        csv.DictReader(io.StringIO(report("--end", SUNDAY.isoformat(), "--periods", "3", "--format", "csv")))
    )
    triage = [r for r in rows if r["workflow_name"] == "triage"]
    assert [r["period"] for r in triage] == ["2026-W46", "2026-W47", "2026-W48"]
    assert (triage[-1]["compared_days"], triage[-1]["cost_change"], triage[-1]["cost_complete"]) == (
        "7",
        "5",
        "yes",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "7"], "not --start or --days"),
        (["--end", "yesterday"], "--end must be a date"),
        (["--periods", "1"], "--periods must be from 2 to 24"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("ag2_logging_report", "trends", *args, stdout=io.StringIO())
