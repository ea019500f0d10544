"""The GenAI semantic-convention names the export uses, for both convention versions.

The GenAI conventions left the core OpenTelemetry semantic conventions (core v1.42.0 deprecated
``gen_ai.*``) for ``open-telemetry/semantic-conventions-genai``; all are "Development".
``AG2_LOGGING["OTEL_SEMCONV"]`` chooses the names: ``"latest"`` (default, the genai repository)
or ``"core"`` (core semantic conventions v1.37-v1.41, what instrumentations emit without
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``).

========================  ==========================================  ==========================================
what                      ``latest`` (semantic-conventions-genai)     ``core`` (semantic-conventions <= v1.41)
========================  ==========================================  ==========================================
LLM call span name        ``chat {gen_ai.request.model}``             same
tool span name            ``execute_tool {gen_ai.tool.name}``         same
session / turn span       ``invoke_agent {gen_ai.agent.name}``        same
operation                 ``gen_ai.operation.name``                   same
provider                  ``gen_ai.provider.name``                    same (``gen_ai.system`` before v1.37)
models                    ``gen_ai.request.model``,                   same
                          ``gen_ai.response.model``
response                  ``gen_ai.response.id``,                     same
                          ``gen_ai.response.finish_reasons``
chat id                   ``gen_ai.conversation.id``                  same
agent                     ``gen_ai.agent.name``                       same
input / output tokens     ``gen_ai.usage.input_tokens``,              same
                          ``gen_ai.usage.output_tokens``
cache read tokens         ``gen_ai.usage.cache_read.input_tokens``    same
cache write tokens        ``gen_ai.usage.cache_write.input_tokens``   ``gen_ai.usage.cache_creation.input_tokens``
reasoning tokens          ``gen_ai.usage.reasoning.output_tokens``    same
error                     ``error.type``                              same
tool                      ``gen_ai.tool.name``, ``gen_ai.tool.type``,  same
                          ``gen_ai.tool.call.id``
bodies (opt-in)           ``gen_ai.input.messages``,                  same
                          ``gen_ai.output.messages``,
                          ``gen_ai.tool.call.arguments``,
                          ``gen_ai.tool.call.result``
token metric(s)           ``gen_ai.client.inference.usage.            ``gen_ai.client.token.usage`` (histogram,
                          input_tokens`` / ``output_tokens`` /        ``{token}``, ``gen_ai.token.type`` =
                          ``cache_read.input_tokens`` /               ``input`` / ``output``)
                          ``cache_write.input_tokens`` /
                          ``reasoning.output_tokens`` (histograms,
                          ``{token}``)
duration metric           ``gen_ai.client.inference.duration`` (s)    ``gen_ai.client.operation.duration`` (s)
tool duration metric      ``gen_ai.execute_tool.duration`` (s)        (none)
========================  ==========================================  ==========================================

Sources: the genai repository's ``docs/gen-ai/gen-ai-spans.md``, ``client-inference.md`` and
``gen-ai-token-metrics.md``; the core repository's ``docs/gen-ai/gen-ai-spans.md`` and
``gen-ai-metrics.md`` (v1.41.0). There is no standard cost attribute: the app's own namespace
carries it (``ag2_logging.cost.amount`` as a decimal string, ``ag2_logging.cost.currency``,
``ag2_logging.price_status``), and so do the ids that have no GenAI name
(``ag2_logging.session.id``, ``ag2_logging.enterprise.id``, ``ag2_logging.workflow.name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
CONVERSATION_ID = "gen_ai.conversation.id"
AGENT_NAME = "gen_ai.agent.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
REASONING = "gen_ai.usage.reasoning.output_tokens"
ERROR_TYPE = "error.type"
TOOL_NAME = "gen_ai.tool.name"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOKEN_TYPE = "gen_ai.token.type"

COST_AMOUNT = "ag2_logging.cost.amount"
COST_CURRENCY = "ag2_logging.cost.currency"
PRICE_STATUS = "ag2_logging.price_status"
SESSION_ID = "ag2_logging.session.id"
ENTERPRISE_ID = "ag2_logging.enterprise.id"
WORKFLOW_NAME = "ag2_logging.workflow.name"
#: The cost counter (both versions): USD by model, enterprise and workflow.
COST_METRIC = "ag2_logging.cost"

#: The app's provider ids where the conventions' well-known ``gen_ai.provider.name`` differs.
PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google-vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "mistral": "mistral_ai",
    "x-ai": "x_ai",
    "xai": "x_ai",
}


@dataclass(frozen=True)
class Names:
    """The names that differ between the two convention versions."""

    version: str
    cache_write: str
    duration_metric: str
    #: ``latest``: one histogram per token kind (kind -> metric name); ``core``: empty, and
    #: ``token_metric`` with ``gen_ai.token.type`` instead.
    token_metrics: dict[str, str] = field(default_factory=dict)
    token_metric: str = ""
    tool_duration_metric: str = ""


LATEST = Names(
    version="latest",
    cache_write="gen_ai.usage.cache_write.input_tokens",
    duration_metric="gen_ai.client.inference.duration",
    token_metrics={
        "input": "gen_ai.client.inference.usage.input_tokens",
        "output": "gen_ai.client.inference.usage.output_tokens",
        "cache_read": "gen_ai.client.inference.usage.cache_read.input_tokens",
        "cache_write": "gen_ai.client.inference.usage.cache_write.input_tokens",
        "reasoning": "gen_ai.client.inference.usage.reasoning.output_tokens",
    },
    tool_duration_metric="gen_ai.execute_tool.duration",
)
CORE = Names(
    version="core",
    cache_write="gen_ai.usage.cache_creation.input_tokens",
    duration_metric="gen_ai.client.operation.duration",
    token_metric="gen_ai.client.token.usage",
)


def names(version: str) -> Names:
    """The names of ``version`` (``"latest"`` or ``"core"``; anything else is ``latest``)."""
    return CORE if version == "core" else LATEST


def provider_name(provider: str) -> str:
    """``gen_ai.provider.name`` for one of the app's provider ids (``openai`` -> ``openai``; a
    local endpoint priced from its model name, ``openai@local``, is the provider it stands in
    for: ``openai``; the price status says it was inferred)."""
    from ag2_logging.pricing.providers import table_provider

    base = table_provider(provider) if provider else ""
    return PROVIDER_NAMES.get(base, base or "_OTHER")
