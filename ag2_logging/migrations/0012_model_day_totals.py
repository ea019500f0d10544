"""ModelDayTotalRollup: ModelDayRollup summed over enterprises and workflows (a row per day, model
and provider), filled from the existing model rollups."""

from typing import Any

from django.db import migrations, models

import ag2_logging.querysets


def fill(apps: Any, schema_editor: Any) -> None:
    """One row per (day, model, provider): the sums of its ModelDayRollup rows, the histograms
    added bucket by bucket (the shorter padded with zeros)."""
    fine = apps.get_model("ag2_logging", "ModelDayRollup")
    total = apps.get_model("ag2_logging", "ModelDayTotalRollup")
    sums: dict[tuple[Any, ...], list[Any]] = {}
    rows = fine.objects.order_by().values_list(
        "day", "model", "provider", "session_count", "latency_count", "latency_buckets"
    )
    for day, model, provider, sessions, latencies, buckets in rows.iterator(chunk_size=5_000):
        entry = sums.setdefault((day, model, provider), [0, 0, []])
        entry[0] += sessions
        entry[1] += latencies
        buckets = list(buckets or [])
        merged = entry[2]
        if len(merged) < len(buckets):
            merged.extend([0] * (len(buckets) - len(merged)))
        for i, n in enumerate(buckets):
            merged[i] += n
    total.objects.bulk_create(
        (
            total(
                day=day, model=model, provider=provider, session_count=s, latency_count=n, latency_buckets=b
            )
            for (day, model, provider), (s, n, b) in sorted(sums.items())
        ),
        batch_size=1_000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("ag2_logging", "0011_llmcall_session_no_single_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="ModelDayTotalRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                ("model", models.CharField(blank=True, default="", max_length=255)),
                ("provider", models.CharField(blank=True, default="", max_length=64)),
                ("session_count", models.BigIntegerField(default=0)),
                ("latency_count", models.BigIntegerField(default=0)),
                ("latency_buckets", models.JSONField(default=ag2_logging.querysets.empty_latency_buckets)),
            ],
            options={
                "ordering": ["-day"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "model", "provider"), name="ag2log_mtotal_unique_key"
                    )
                ],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
