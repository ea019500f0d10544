"""AG2's FileLogger log and the replaced system's log: sanitized and parsed line by line.

A line is one of: ``Started new session with Session ID: <id>`` (the whole line), the replaced
system's ``# MOZAIKS SESSION START: {json}`` / ``... END``, or one JSON object that AG2 logged
(a call has ``invocation_id`` and ``response``; clients ``client_id`` and ``json_state``; events
``event_name``; function calls ``input_args``; agents ``agent_type``...). Only those top-level
shapes are recognized: text inside a record (a message that quotes a log line) is never read as
a line of its own. A file with no session line and no call is not an AG2 log (NotAnAG2Log,
nothing written).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from ag2_logging.pipeline.legacy.files import mode_of, replacing
from ag2_logging.pipeline.legacy.records import (
    LegacyCall,
    LegacyLog,
    parse_dec,
    parse_int,
    parse_ts,
    provider_of,
)
from ag2_logging.pipeline.legacy.responses import UnreadableResponse, fill_from_response
from ag2_logging.pipeline.legacy.source import NotAnAG2Log, Progress, Source, open_binary
from ag2_logging.pipeline.sanitize import LineSanitizer

_STARTED = re.compile(r"^Started new session with Session ID:\s*(?P<id>[0-9A-Za-z\-]{1,128})$")
_PREFIXED = re.compile(r"^#\s*(?P<system>[A-Z0-9_ ]*?)\s*SESSION (?P<what>START|END):\s*(?P<json>\{.*\})$")
_AG2_ERROR = re.compile(r"^\[\w+\] ")


def client_info(init_args: Any) -> tuple[str | None, str | None]:
    """(api_type, base_url) of a logged client's state (a dict or its JSON text)."""
    if isinstance(init_args, str):
        with contextlib.suppress(ValueError):
            init_args = json.loads(init_args)
    if not isinstance(init_args, dict):
        return None, None
    api_type, base_url = init_args.get("api_type"), init_args.get("base_url")
    return (api_type if isinstance(api_type, str) else None), (str(base_url) if base_url else None)


class TextReader:
    """Parses the sanitized lines of one text log into ``log``."""

    def __init__(self, log: LegacyLog) -> None:
        self.log = log
        self.current = "default"
        self.clients: dict[int, tuple[str | None, str | None]] = {}

    def line(self, lineno: int, text: str) -> None:
        """Read one line (without its newline); a malformed one goes to ``log.bad_lines``."""
        stripped = text.strip()
        if not stripped:
            return
        if (m := _STARTED.match(stripped)) is not None:
            self.current = m["id"]
            self.log.session(self.current)
            self.log.recognized += 1
        elif (m := _PREFIXED.match(stripped)) is not None:
            self.prefixed(lineno, m)
        elif stripped.startswith("{"):
            try:
                record = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or not self.record(lineno, record):
                self.log.bad_lines.append(lineno)
        elif _AG2_ERROR.match(stripped):
            self.log.ag2_errors += 1  # AG2's own "[file_logger] Failed to log ..." lines
        else:
            self.log.bad_lines.append(lineno)

    def prefixed(self, lineno: int, match: re.Match[str]) -> None:
        try:
            payload = orjson.loads(match["json"])
        except orjson.JSONDecodeError:
            self.log.bad_lines.append(lineno)
            return
        self.log.recognized += 1
        if "AG2" in match["system"].split():
            return  # this app's own runtime log: those sessions have journals
        self.log.format = "mozaiks"
        self.session_line(match["what"], payload if isinstance(payload, dict) else {})

    def session_line(self, what: str, payload: dict[str, Any]) -> None:
        """A ``# ... SESSION START|END: {json}`` line of the replaced system."""
        nested = payload.get("session_info")
        info: dict[str, Any] = nested if isinstance(nested, dict) else payload
        key = str(info.get("session_id") or payload.get("session_id") or self.current)
        session = self.log.session(key)
        self.current = key
        if what == "START":
            session.described = True
            session.chat_id = str(info.get("chat_id") or session.chat_id)
            session.workflow_name = str(info.get("workflow_name") or session.workflow_name)
            session.enterprise_id = str(info.get("enterprise_id") or session.enterprise_id)
            session.started_at = parse_ts(
                info.get("started_at") or info.get("start_time") or payload.get("timestamp")
            )
        else:
            session.status = str(payload.get("status") or info.get("status") or session.status)
            session.ended_at = parse_ts(
                payload.get("ended_at") or payload.get("end_time") or payload.get("timestamp")
            )

    def call(self, lineno: int, record: dict[str, Any]) -> LegacyCall:
        """The call of one FileLogger ``log_chat_completion`` record (UnreadableResponse if its
        response cannot be read)."""
        source = record.get("source_name")
        call = LegacyCall(
            ref=f"line {lineno}",
            key=str(record.get("invocation_id") or f"line-{lineno}"),
            session_key=self.current,
            agent_name=source if isinstance(source, str) else "",
            ag2_cost=parse_dec(record.get("cost")),
            is_cached=bool(record.get("is_cached")),
            started_at=parse_ts(record.get("start_time")),
            ended_at=parse_ts(record.get("end_time")),
            request=record.get("request"),
        )
        fill_from_response(call, record.get("response"), record.get("request"), text_is_repr=True)
        api_type, base_url = self.client_of(parse_int(record.get("client_id")))
        call.provider = provider_of(api_type, base_url, call.model)
        return call

    def client_of(self, client_id: int) -> tuple[str | None, str | None]:
        """(api_type, base_url) of the client a call names. AG2's FileLogger fails to log some
        clients ("Failed to log event Object of type OpenAIWrapper is not JSON serializable"):
        a call naming a client it never logged takes the one endpoint every logged client
        shares, so the same calls are classified alike imported and recorded live."""
        known = self.clients.get(client_id)
        if known is not None:
            return known
        endpoints = set(self.clients.values())
        return next(iter(endpoints)) if len(endpoints) == 1 else (None, None)

    def record(self, lineno: int, record: dict[str, Any]) -> bool:
        """Read one JSON record; False when it is no record AG2 writes (or is unreadable)."""
        session = self.log.session(self.current)
        if "invocation_id" in record and "response" in record:
            try:
                session.calls.append(self.call(lineno, record))
            except UnreadableResponse:
                return False
            self.log.recognized += 1
            return True
        if "client_id" in record and "json_state" in record:
            self.clients[parse_int(record.get("client_id"))] = client_info(record.get("json_state"))
            return True
        if "event_name" in record:
            session.agent_events += 1
            return True
        if "input_args" in record:
            session.tool_calls += 1
            return True
        return "agent_type" in record or ("wrapper_id" in record and "json_state" in record)


def sanitized_path(path: Path) -> Path:
    """Where the sanitized copy of ``path`` goes: ``<name>.sanitized`` (``<stem>.sanitized.db``)."""
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return path.with_name(path.stem + ".sanitized" + path.suffix)
    return path.with_name(path.name + ".sanitized")


def _iter_lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line without newline, bytes read so far)."""
    done = 0
    for lineno, raw in enumerate(fh, start=1):
        done += len(raw)
        yield lineno, raw.rstrip(b"\r\n"), done


def _sanitize_lines(
    source: Source, log: LegacyLog, reader: TextReader, out: IO[bytes] | None, progress: Progress | None
) -> None:
    """Sanitize each line (counting what was removed by session), write it, then parse it."""
    sanitizer = LineSanitizer({})
    with open_binary(source) as fh:
        for lineno, raw, done in _iter_lines(fh):
            log.lines = lineno
            local: dict[str, int] = {}
            sanitizer.counts = local
            cleaned = sanitizer.line(raw.decode("utf-8", "replace"))
            owner = log.session(reader.current).redactions
            for kind, n in local.items():
                owner[kind] = owner.get(kind, 0) + n
                log.redactions[kind] = log.redactions.get(kind, 0) + n
            if cleaned is not None:
                if out is not None:
                    out.write(cleaned.encode() + b"\n")
                reader.line(lineno, cleaned)
            if progress is not None:
                progress.update(done)


def _parse(source: Source, log: LegacyLog, out: IO[bytes] | None, progress: Progress | None) -> None:
    """Sanitize and parse ``source`` into ``log`` (writing the sanitized lines to ``out``);
    NotAnAG2Log when no line is AG2's."""
    _sanitize_lines(source, log, TextReader(log), out, progress)
    if not log.recognized:
        raise NotAnAG2Log(
            "not an AG2 log: no line of AG2's FileLogger (or of the replaced system's log) "
            f"in {log.lines} line(s)"
        )


def read_text(
    source: Source, *, in_place: bool, write: bool, progress: Progress | None
) -> tuple[LegacyLog, Path | None]:
    """Sanitize (into a copy, in place, or nowhere when ``write`` is off) and parse a text log.

    The sanitized text goes to a new file (``files.replacing``: created exclusively under a
    random name, never through a link) renamed over ``<name>.sanitized`` (or the file itself
    when ``in_place``) once complete, with the original's permissions. Raises NotAnAG2Log when
    no line is AG2's; nothing is then written."""
    log = LegacyLog(path=str(source.path), format="file")
    if not write:
        _parse(source, log, None, progress)
        return log, None
    target = source.real if in_place else sanitized_path(source.path)
    with replacing(target, mode=mode_of(source.real)) as (out, _tmp):
        _parse(source, log, out, progress)
    return log, target
