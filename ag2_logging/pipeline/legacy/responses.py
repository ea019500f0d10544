"""The figures of one logged LLM call, read from the structure AG2 logged, never from its text.

AG2's ``FileLogger`` writes the response as ``str(response)``: the ``repr`` of the openai
``ChatCompletion`` (``ChatCompletion(id='...', choices=[...], created=..., model='...', ...,
usage=CompletionUsage(...))``), or an error string. That repr is a Python expression: it is read
with :func:`ast.parse` (nothing is evaluated) into the dict ``to_dict(response)`` would give, and
the id, model and usage are taken from its top level only. The message contents are string
literals inside it, so a reply that quotes log syntax (``model='...'``, ``usage=CompletionUsage(...)``,
JSON, a whole log line) stays a string and changes no figure. The ``SqliteLogger`` stores that dict
as JSON (an error string as ``{"response": "..."}``), read the same way.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import orjson

from ag2_logging.pipeline.legacy.records import LegacyCall, parse_int

#: The start of a pydantic repr (``ChatCompletion(``, ``openai.types.X(``).
_REPR_START = re.compile(r"^[A-Za-z_][\w.]*\(")
#: Top-level keys of a response object (a parsed repr with none of them is an error's text).
_RESPONSE_KEYS = frozenset({"id", "model", "usage", "choices", "object"})
#: Longest response text read as a repr (a longer one is read as an error string's first part).
MAX_REPR_CHARS = 64 << 20


class UnreadableResponse(ValueError):
    """The response looks like an object's repr but is not a readable one (cut, corrupted)."""


def _literal(node: ast.AST) -> Any:
    """A repr's node as plain data: calls become dicts of their keyword arguments."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call):
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {
            _literal(key) if key is not None else None: _literal(value)
            for key, value in zip(node.keys, node.values, strict=True)
            if isinstance(key, ast.Constant) and isinstance(key.value, str | int)
        }
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal(node.operand)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    return None  # a name, an attribute, anything else: not a value the figures come from


def parse_repr(text: str) -> dict[str, Any]:
    """The top-level fields of an object's repr as a dict (nested objects as dicts).

    Raises UnreadableResponse when ``text`` is not one complete call expression."""
    if len(text) > MAX_REPR_CHARS:
        raise UnreadableResponse("response repr too long")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UnreadableResponse(f"unreadable response repr: {exc.__class__.__name__}") from None
    if not isinstance(tree.body, ast.Call | ast.Dict):
        raise UnreadableResponse("response repr is not an object")
    try:
        value = _literal(tree.body)
    except RecursionError:
        raise UnreadableResponse("response repr nested too deep") from None
    return value if isinstance(value, dict) else {}


def _details(usage: dict[str, Any], key: str, field: str) -> int:
    details = usage.get(key)
    return parse_int(details.get(field)) if isinstance(details, dict) else 0


def usage_of(response: dict[str, Any]) -> tuple[int, int, int, int]:
    """(prompt, completion, cached, reasoning) tokens of a response dict's top-level ``usage``."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return 0, 0, 0, 0
    prompt = parse_int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = parse_int(usage.get("completion_tokens", usage.get("output_tokens")))
    cached = _details(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _details(usage, "completion_tokens_details", "reasoning_tokens")
    return prompt, completion, cached, reasoning


def _structure(response: Any, *, text_is_repr: bool) -> Any:
    """The response as a dict when it is one (JSON text, a repr), else as it was (an error)."""
    if isinstance(response, str):
        stripped = response.strip()
        if stripped.startswith("{"):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                if not text_is_repr:
                    return response
                parsed = parse_repr(stripped)  # str() of a dict: a Python literal
                return parsed if _RESPONSE_KEYS & parsed.keys() else response
        if text_is_repr and _REPR_START.match(stripped):
            parsed = parse_repr(stripped)
            return parsed if _RESPONSE_KEYS & parsed.keys() else response
    return response


def fill_from_response(call: LegacyCall, response: Any, request: Any, *, text_is_repr: bool) -> None:
    """Tokens, model and response id from the response AG2 logged, into ``call``.

    ``response``: the FileLogger's ``str(response)`` (``text_is_repr``) or the SqliteLogger's
    parsed JSON. A response that is not an object is the call's error. Raises UnreadableResponse
    for a repr that cannot be read (the caller reports the line as malformed)."""
    response = _structure(response, text_is_repr=text_is_repr)
    if isinstance(response, dict) and set(response) == {"response"}:
        response = response["response"]  # SqliteLogger's wrapping of an error string
        if isinstance(response, dict):
            response = str(response)
    if isinstance(response, dict):
        call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens = usage_of(
            response
        )
        call.usage_missing = not isinstance(response.get("usage"), dict)
        model, response_id = response.get("model"), response.get("id")
        call.model = model if isinstance(model, str) else ""
        call.response_id = response_id if isinstance(response_id, str) else ""
        call.response = response
    elif response is not None:
        call.error = (str(response) or "error")[:10_000]
    if not call.model and isinstance(request, dict) and isinstance(request.get("model"), str):
        call.model = request["model"]
