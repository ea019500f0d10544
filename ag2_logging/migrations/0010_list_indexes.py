"""Two indexes for lists at millions of rows: LLMCall (cost, started_at), so the call list sorted
by cost (``ORDER BY cost, started_at, id``, either way) reads its page from the index instead of
sorting every call; and a partial index of the sessions not yet ingested or rolled up, which the
session list's banner counts on every view (instead of a scan of every session)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ag2_logging", "0009_session_user_tags_metadata"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="llmcall",
            index=models.Index(fields=["cost", "started_at"], name="ag2log_call_cost"),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(
                condition=models.Q(
                    ("ingested_at__isnull", True), ("summarized_at__isnull", True), _connector="OR"
                ),
                fields=["ended_at"],
                name="ag2log_sess_not_reported",
            ),
        ),
    ]
