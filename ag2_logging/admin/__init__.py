"""The admin of ag2_logging, one module per model family (Django's autodiscover imports this
package, which imports them all, so every admin is registered):

* :mod:`~ag2_logging.admin.base`: :class:`ReadOnlyAdmin` and the shared column helpers;
* :mod:`~ag2_logging.admin.filters`: the list filters;
* :mod:`~ag2_logging.admin.sessions`: :class:`SessionAdmin` and its banners;
* :mod:`~ag2_logging.admin.calls`: LLM calls, agent events and tool calls;
* :mod:`~ag2_logging.admin.rollups`: :class:`DailyRollupAdmin`, which hosts the report pages;
* :mod:`~ag2_logging.admin.prices`: :class:`ModelPriceAdmin`, the editable price overrides;
* :mod:`~ag2_logging.admin.budgets`: :class:`BudgetAdmin`, budgets with their spend this period;
* :mod:`~ag2_logging.admin.views`: the report pages (:class:`ReportViewsMixin`);
* :mod:`~ag2_logging.admin.timeline`: the session timeline (:class:`TimelineViewMixin`);
* :mod:`~ag2_logging.admin.exports`: CSV export of filtered lists (:class:`ExportViewMixin`).

Imports run one way: ``exports`` -> ``views``, ``timeline``, ``base`` -> ``filters`` -> the model
admins.
"""

from __future__ import annotations

from ag2_logging.admin.base import (
    EXPORT_CHANGE_LIST,
    ReadOnlyAdmin,
    pipeline_banner,
    pretty_json,
    session_link,
)
from ag2_logging.admin.budgets import BudgetAdmin, BudgetForm
from ag2_logging.admin.calls import AgentEventAdmin, LLMCallAdmin, SessionRowAdmin, ToolCallAdmin
from ag2_logging.admin.exports import ExportViewMixin
from ag2_logging.admin.filters import (
    ROLLUP_FILTER_FIELDS,
    TOLERANCE,
    Ag2CostFilter,
    AgentFilter,
    DateRangeFilter,
    EnterpriseFilter,
    HasErrorFilter,
    ModelFilter,
    PipelineFilter,
    ProviderFilter,
    RollupValueFilter,
    UnpricedSessionFilter,
    WorkflowFilter,
    rollup_values,
)
from ag2_logging.admin.prices import ModelPriceAdmin, ModelPriceForm
from ag2_logging.admin.rollups import DailyRollupAdmin
from ag2_logging.admin.sessions import SessionAdmin, incomplete_banner
from ag2_logging.admin.timeline import TimelineViewMixin
from ag2_logging.admin.views import ReportViewsMixin

__all__ = [
    "EXPORT_CHANGE_LIST",
    "ROLLUP_FILTER_FIELDS",
    "TOLERANCE",
    "Ag2CostFilter",
    "AgentEventAdmin",
    "AgentFilter",
    "BudgetAdmin",
    "BudgetForm",
    "DailyRollupAdmin",
    "DateRangeFilter",
    "EnterpriseFilter",
    "ExportViewMixin",
    "HasErrorFilter",
    "LLMCallAdmin",
    "ModelFilter",
    "ModelPriceAdmin",
    "ModelPriceForm",
    "PipelineFilter",
    "ProviderFilter",
    "ReadOnlyAdmin",
    "ReportViewsMixin",
    "RollupValueFilter",
    "SessionAdmin",
    "SessionRowAdmin",
    "TimelineViewMixin",
    "ToolCallAdmin",
    "UnpricedSessionFilter",
    "WorkflowFilter",
    "incomplete_banner",
    "pipeline_banner",
    "pretty_json",
    "rollup_values",
    "session_link",
]
