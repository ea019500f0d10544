"""What every recommendation is: :class:`Recommendation`, the kinds and the list's length."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.reports.filters import ReportFilter

Kind = Literal["cheaper_model", "prompt_cache", "failing_sessions", "expired_override"]
KINDS: tuple[Kind, ...] = ("cheaper_model", "prompt_cache", "failing_sessions", "expired_override")

#: Rows listed per kind.
LIMIT = 20


@dataclass
class Recommendation:
    """One recommendation: what to look at (``subject``), what to do (``action``), the
    estimate (``estimate``: US dollars saved or at stake, None when it is not money; and
    ``estimate_text`` in words) and how it was computed (``method``). ``data`` holds the
    figures behind it (for the CSV and the tests): token counts as ints, money as Decimal."""

    kind: Kind
    subject: str
    action: str
    estimate: Decimal | None
    estimate_text: str
    method: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recommendations:
    filter: ReportFilter
    #: kind -> its recommendations, largest estimate first
    items: dict[Kind, list[Recommendation]]
    #: Notes on what was left out (too many calls, for instance).
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.items.values())


def money_text(value: Decimal | None) -> str:
    """A cost for a person; "unknown" for None (never $0)."""
    return show(value, money=True, empty=_("unknown"))
