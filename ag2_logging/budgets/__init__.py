"""Cost budgets that stop a workflow before the call that would cross them (issue 17).

* :mod:`~ag2_logging.budgets.errors`: :class:`BudgetExceeded` (no ORM);
* :mod:`~ag2_logging.budgets.periods`: period math (calendar periods in a time zone, rolling
  hours);
* :mod:`~ag2_logging.budgets.specs`: the active ``Budget`` rows, cached per process, reloaded
  when the version counter moves;
* :mod:`~ag2_logging.budgets.ledger`: the shared ledgers (database, Redis);
* :mod:`~ag2_logging.budgets.accounts`: a process's leased allowance of a ledger key;
* :mod:`~ag2_logging.budgets.enforce`: reserve before the call, settle or release after it.

The integrations call ``enforce`` at the OpenAI SDK's request boundary. Importing this package
imports no models.
"""

from __future__ import annotations

from ag2_logging.budgets.errors import BudgetExceeded

__all__ = ["BudgetExceeded"]
