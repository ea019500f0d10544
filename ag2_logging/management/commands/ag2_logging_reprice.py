"""manage.py ag2_logging_reprice: recompute call costs after a price change."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.management.progress import ProgressBar
from ag2_logging.pipeline.reprice import cost_text, reprice


def _date(option: str) -> Callable[[str], dt.date]:
    def parse(value: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise CommandError(f"{option} takes a date such as 2026-01-31, not {value!r}") from exc

    return parse


class Command(BaseCommand):
    help = "Recompute LLM call costs (after a ModelPrice override or a genai-prices upgrade); idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            type=_date("--since"),
            help="Only calls that ended on or after this date (YYYY-MM-DD, UTC).",
        )
        parser.add_argument(
            "--until",
            type=_date("--until"),
            help="Only calls that ended on or before this date (YYYY-MM-DD, UTC; inclusive).",
        )
        parser.add_argument("--model", help="Only calls to this model.")
        parser.add_argument(
            "--provider",
            help="Only calls of this provider (as a price override names it: any case, aliases such as gemini).",
        )
        parser.add_argument("--enterprise", help="Only calls of this enterprise's sessions.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Calls per transaction (default 1000)."
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["since"] and options["until"] and options["until"] < options["since"]:
            raise CommandError("--until must not be before --since")
        bar = (
            ProgressBar("repricing", stream=cast(TextIO, self.stderr._out))
            if options["verbosity"] > 0
            else None
        )
        result = reprice(
            since=options["since"],
            until=options["until"],
            model=options["model"],
            provider=options["provider"],
            enterprise=options["enterprise"],
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            progress=bar,
        )
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        verb = "would change" if result.dry_run else "changed"
        self.stdout.write(
            f"Examined {result.examined} calls; {verb} {result.changed} in {len(result.sessions)} sessions."
        )
        before = cost_text(result.cost_before, result.unpriced_before)
        after = cost_text(result.cost_after, result.unpriced_after)
        self.stdout.write(
            f"Cost {before} -> {after}; unpriced calls {result.unpriced_before} -> {result.unpriced_after}."
        )
        if result.unpriced_before or result.unpriced_after:
            self.stdout.write(
                '("unknown": no call had a price; "≥": calls without a price are not included.)'
            )
        for model in sorted(result.by_model):
            model_before, model_after = result.model_costs(model)
            self.stdout.write(f"  {model}: {model_before} -> {model_after}")
