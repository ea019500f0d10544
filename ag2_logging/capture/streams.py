"""Sessions around work that runs in steps: generators, async generators, streamed bodies.

A generator's body runs a piece at a time, each time its consumer asks for an item, in the
consumer's context. ``iterate`` and ``aiterate`` run every step of an iterator with the session
bound (and only the steps: the consumer's own code between items is not in the session), and end
the session once, when the iterator is exhausted (``completed``), raises (``failed``) or is closed
before its last item (``cancelled``). ``@ag2_logged`` uses them on generator functions and on a
view's streamed response; the middleware on the streamed responses of the requests it records.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar

from ag2_logging.capture.context import current_session
from ag2_logging.capture.recorder import SessionRecorder

T = TypeVar("T")

#: ``(exc) -> None``: ends the session; ``exc`` is None when the iterator was exhausted.
Finish = Callable[[BaseException | None], None]
#: Opens the session at the first step: ``() -> (recorder, finish)``, or None (logging off).
Opener = Callable[[], "tuple[SessionRecorder, Finish] | None"]


def _context_with(recorder: SessionRecorder) -> contextvars.Context:
    ctx = contextvars.copy_context()
    ctx.run(current_session.set, recorder)
    return ctx


def iterate(iterator: Iterator[T], open_: Opener) -> Generator[T, Any, Any]:
    """Yield what ``iterator`` yields, each step run inside the session ``open_`` opens.

    The session opens at the first step (a generator that is never started opens none) and its
    context lives as long as the iterator does: the steps run in one private context holding the
    session (like an asyncio task's), so a session the body opens across a ``yield`` nests
    under it. ``send``, ``throw`` and ``close`` reach the wrapped generator; its return value is
    returned. With no session (``open_`` gives None) the iterator is passed through.
    """
    opened = open_()
    if opened is None:
        return (yield from iterator)
    recorder, finish = opened
    return (yield from _drive(iterator, _context_with(recorder), finish))


def _drive(iterator: Iterator[T], ctx: contextvars.Context, finish: Finish) -> Generator[T, Any, Any]:
    send = getattr(iterator, "send", None)
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            try:
                if thrown is not None:
                    exc, thrown = thrown, None
                    item = ctx.run(getattr(iterator, "throw"), exc)  # noqa: B009 - only generators
                elif send is not None:
                    item = ctx.run(send, sent)
                else:
                    item = ctx.run(next, iterator)
            except StopIteration as stop:
                finish(None)
                return stop.value
            try:
                sent = yield item
            except GeneratorExit:
                _close(iterator, ctx)
                raise
            except BaseException as exc:
                if not hasattr(iterator, "throw"):
                    raise
                thrown = exc
    except BaseException as exc:
        finish(exc)
        raise


def _close(iterator: Any, ctx: contextvars.Context) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        ctx.run(close)


async def aiterate(iterator: AsyncIterator[T], open_: Opener) -> AsyncIterator[T]:
    """``iterate`` for an async iterator: each ``__anext__`` runs with the session bound.

    Values sent with ``asend`` and exceptions thrown with ``athrow`` reach an async generator;
    closing this one (``aclose``, or cancelling the task that iterates) closes it too and ends
    the session ``cancelled``.
    """
    steps = AsyncSteps(iterator, open_)
    while True:
        try:
            item = await steps.next()
        except StopAsyncIteration:
            return
        try:
            steps.sent = yield item
        except BaseException as exc:
            await steps.thrown_in(exc)


class AsyncSteps:
    """Drives an async iterator one step at a time with a session bound in the iterating task.

    The loop of an async generator that wraps another (``aiterate``, ``@ag2_logged`` on an async
    generator function): ``await next()`` (raises ``StopAsyncIteration`` at the end), set
    ``sent`` to what the consumer sent, and hand what it threw to ``thrown_in``. The session
    opens at the first step and ends once, at the end, on an exception, or on close.
    """

    __slots__ = ("_finish", "_open", "bound", "iterator", "sent", "thrown")

    def __init__(self, iterator: AsyncIterator[Any], open_: Opener) -> None:
        self.iterator = iterator
        self._open: Opener | None = open_
        self._finish: Finish | None = None
        #: What the steps run under: the session, or a session the body opened across a yield.
        self.bound: SessionRecorder | None = None
        self.sent: Any = None
        self.thrown: BaseException | None = None

    async def next(self) -> Any:
        """The next item (``StopAsyncIteration`` at the end), the session ended with the last."""
        if self._open is not None:
            open_, self._open = self._open, None
            opened = open_()
            if opened is not None:
                self.bound, self._finish = opened
        thrown, self.thrown = self.thrown, None
        try:
            if thrown is not None and not hasattr(self.iterator, "athrow"):
                raise thrown
            if thrown is not None:
                return await self._run(self.iterator.athrow(thrown))  # type: ignore[attr-defined]
            asend = getattr(self.iterator, "asend", None)
            return await self._run(asend(self.sent) if asend is not None else self.iterator.__anext__())
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise

    async def thrown_in(self, exc: BaseException) -> None:
        """The consumer threw ``exc`` at the yield: closing and cancelling end it here (re-raised);
        anything else is thrown into the iterator at the next step."""
        if not isinstance(exc, GeneratorExit | asyncio.CancelledError):
            self.thrown = exc
            return
        try:
            aclose = getattr(self.iterator, "aclose", None)
            if aclose is not None:
                await self._run(aclose())
        finally:
            self._end(exc)
        raise exc

    def _end(self, exc: BaseException | None) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(exc)

    async def _run(self, step: Awaitable[Any]) -> Any:
        if self._finish is None:
            return await step  # no session (logging off): nothing to bind
        token = current_session.set(self.bound)
        try:
            return await step
        finally:
            self.bound = current_session.get()
            current_session.reset(token)


def is_stream(response: Any) -> bool:
    """Whether ``response`` streams its body after the view returned (``StreamingHttpResponse``,
    ``FileResponse``): duck-typed, this package's capture imports no Django HTTP code."""
    return getattr(response, "streaming", False) is True and hasattr(response, "streaming_content")


def stream_in_session(response: Any, recorder: SessionRecorder, finish: Finish) -> None:
    """Run ``response``'s streamed body inside the session and end it when the body has streamed.

    The body's iterator (sync under WSGI, sync or async under ASGI) is wrapped in place;
    ``finish(exc)`` is called once: exhausted (None), raised, or closed early by the server (a
    client that went away: ``GeneratorExit`` / ``CancelledError``).
    """
    content = response.streaming_content
    opened = (recorder, finish)
    if getattr(response, "is_async", False):
        response.streaming_content = aiterate(content, lambda: opened)
    else:
        response.streaming_content = iterate(iter(content), lambda: opened)
