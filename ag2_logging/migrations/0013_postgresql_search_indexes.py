"""Two PostgreSQL-only indexes for the session list's search and the reports' session counts.

- ``ag2log_sess_started_cover``: ``started_at`` with the columns the session counts, the
  search and the recommendations read (status, enterprise, workflow, user, id, chat id, calls,
  errors, retries) as ``INCLUDE`` columns. The reports count a period's sessions per
  enterprise, workflow, status or user, the session list counts the sessions a search matches
  (a substring of the chat id, enterprise or workflow), the recommendations pick the sessions
  with many failed attempts and the newest sessions holding 20,000 calls: each reads every
  session of the period, or every session, and each session row is over a kilobyte wide
  (totals, journal, pipeline fields). An index-only scan of this narrow index reads a few MB
  instead of the table (141 MB at 100,000 sessions).
- ``ag2log_stag_tag_upper``: ``UPPER(tag)``, the expression of Django's ``iexact`` on
  PostgreSQL: the session search matches whole tags case-insensitively, which read every tag row
  without it.

Not in the models' ``Meta.indexes`` (so the model state, and ``makemigrations``, know nothing of
them): ``INCLUDE`` columns exist only on PostgreSQL (Django warns, models.W040, on the other
databases), MariaDB has no expression index (models.W043), and SQLite's and MariaDB's
``iexact`` is ``LIKE``, which an ``UPPER`` index does not serve. Created and dropped here on
PostgreSQL only; a no-op elsewhere.
"""

from typing import Any

from django.db import migrations, models
from django.db.models.functions import Upper

SESSION_COVER = models.Index(
    fields=["started_at"],
    include=[
        "status",
        "enterprise_id",
        "workflow_name",
        "user",
        "id",
        "chat_id",
        "call_count",
        "error_count",
        "retry_count",
    ],
    name="ag2log_sess_started_cover",
)
TAG_UPPER = models.Index(Upper("tag"), name="ag2log_stag_tag_upper")
#: (model name, index) of each index this migration adds.
INDEXES = (("Session", SESSION_COVER), ("SessionTag", TAG_UPPER))


def add_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, index in INDEXES:
        schema_editor.add_index(apps.get_model("ag2_logging", model_name), index)


def remove_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, index in INDEXES:
        schema_editor.remove_index(apps.get_model("ag2_logging", model_name), index)


class Migration(migrations.Migration):
    dependencies = [
        ("ag2_logging", "0012_model_day_totals"),
    ]

    operations = [
        migrations.RunPython(add_indexes, remove_indexes),
    ]
