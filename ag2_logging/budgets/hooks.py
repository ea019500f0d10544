"""What happens to a call's reservation once the OpenAI SDK was asked to send it (both AG2
generations, sync and async SDK clients).

The integrations wrap the SDK's ``request`` methods; when ``enforce.check`` reserved something
for the call, they hand the sending to :func:`sent` (sync) or :func:`asent` (async):

* the request fails: the reservation is released;
* a plain reply: the reservation is settled to the reply's ``usage`` priced;
* a stream: its chunks are passed through unchanged and the reservation is settled when the
  stream ends, from its usage chunk (``stream_options.include_usage``; classic AG2 asks for it).
  A stream that ends without one (a server that ignores ``include_usage``), fails or is left
  unfinished keeps its reservation (its worst case) as its cost, counted in
  :data:`enforce.kept` by reason and noted on the session (``budget_reservation_kept``).

These wrappers never raise into the SDK for their own failures (counted, logged); only the
request's own exception propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from ag2_logging.budgets import enforce
from ag2_logging.budgets.enforce import Reservation

logger = logging.getLogger("ag2_logging.budgets")


def sent(reservation: Reservation, send: Callable[[], Any], *, stream: bool) -> Any:
    """``send()`` (the SDK's request), then release, settle, or settle at the stream's end."""
    try:
        result = send()
    except BaseException:
        _guarded(enforce.run_off_loop, enforce.release, reservation)
        raise
    if stream and hasattr(result, "_iterator"):
        result._iterator = _settled_chunks(result._iterator, reservation)
        return result
    _guarded(enforce.run_off_loop, _settle, reservation, result, "no_usage")
    return result


async def asent(reservation: Reservation, send: Callable[[], Awaitable[Any]], *, stream: bool) -> Any:
    """:func:`sent` for ``AsyncAPIClient.request``: the ledger is reached in a worker thread."""
    try:
        result = await send()
    except BaseException:
        await _aguarded(enforce.release, reservation)
        raise
    if stream and hasattr(result, "_iterator"):
        result._iterator = _asettled_chunks(result._iterator, reservation)
        return result
    await _aguarded(_settle, reservation, result, "no_usage")
    return result


def _settle(reservation: Reservation, reply: Any, reason: str) -> None:
    """Settle to ``reply``'s usage (a reply or the stream's usage chunk; None: none came)."""
    usage = getattr(reply, "usage", None) if reply is not None else None
    model = str(getattr(reply, "model", "") or "") if reply is not None else ""
    enforce.settle(reservation, usage, model=model, reason=reason)


def _settled_chunks(chunks: Iterator[Any], reservation: Reservation) -> Iterator[Any]:
    """The stream's chunks, unchanged; settled from the last usage chunk when it ends."""
    last: Any = None
    reason = "stream_unfinished"
    try:
        for chunk in chunks:
            if getattr(chunk, "usage", None) is not None:
                last = chunk
            yield chunk
        reason = "stream_without_usage"
    except GeneratorExit:
        raise
    except BaseException:
        reason = "stream_failed"
        raise
    finally:
        _guarded(enforce.run_off_loop, _settle, reservation, last, reason)


async def _asettled_chunks(chunks: AsyncIterator[Any], reservation: Reservation) -> AsyncIterator[Any]:
    """:func:`_settled_chunks` for an ``openai.AsyncStream``."""
    last: Any = None
    reason = "stream_unfinished"
    try:
        async for chunk in chunks:
            if getattr(chunk, "usage", None) is not None:
                last = chunk
            yield chunk
        reason = "stream_without_usage"
    except GeneratorExit:
        raise
    except BaseException:
        reason = "stream_failed"
        raise
    finally:
        await _aguarded(_settle, reservation, last, reason)


def _guarded(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        _failed()


async def _aguarded(fn: Callable[..., Any], *args: Any) -> None:
    try:
        await asyncio.shield(asyncio.to_thread(fn, *args))
    except Exception:
        _failed()


def _failed() -> None:
    enforce.unavailable["settlements"] += 1
    logger.exception("ag2_logging failed to settle or release a budget reservation")
