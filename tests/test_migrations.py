from __future__ import annotations

import re
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "ag2_logging", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_no_duplicate_migration_numbers() -> None:
    folder = Path(__file__).resolve().parent.parent / "ag2_logging" / "migrations"
    numbers = [m.group(1) for p in folder.glob("*.py") if (m := re.match(r"(\d{4})_", p.name))]
    assert numbers
    assert [n for n, count in Counter(numbers).items() if count > 1] == []


@pytest.mark.django_db
def test_postgresql_only_indexes() -> None:
    """Migration 0013's indexes (not in the models' Meta): on PostgreSQL only."""
    from django.db import connection

    from ag2_logging.models import Session, SessionTag

    with connection.cursor() as cursor:
        names = {
            name
            for model in (Session, SessionTag)
            for name in connection.introspection.get_constraints(cursor, model._meta.db_table)
        }
    wanted = {"ag2log_sess_started_cover", "ag2log_stag_tag_upper"}
    assert (wanted <= names) is (connection.vendor == "postgresql")
    assert not (wanted & names) or connection.vendor == "postgresql"
