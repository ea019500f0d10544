"""Drop LLMCall.session's single-column index: ``ag2log_call_session_seq`` (session, seq) covers
every lookup by session, and each ingested row paid for both.

Only the index goes: Django's own AlterField would also drop and re-add the foreign key, which
on PostgreSQL checks every row of the table again.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def _single_indexes(model: Any, schema_editor: Any) -> list[str]:
    meta = {index.name for index in model._meta.indexes}
    column = model._meta.get_field("session").column
    return list(
        schema_editor._constraint_names(model, [column], index=True, type_=models.Index.suffix, exclude=meta)
    )


def drop_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("ag2_logging", "LLMCall")
    for name in _single_indexes(model, schema_editor):
        schema_editor.execute(schema_editor._delete_index_sql(model, name))


def add_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("ag2_logging", "LLMCall")
    if not _single_indexes(model, schema_editor):
        schema_editor.execute(
            schema_editor._create_index_sql(model, fields=[model._meta.get_field("session")])
        )


class Migration(migrations.Migration):
    dependencies = [
        ("ag2_logging", "0010_list_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="llmcall",
                    name="session",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="llm_calls",
                        to="ag2_logging.session",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, add_index)],
        ),
    ]
