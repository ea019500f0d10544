"""Import of old AG2 logs: check, sanitize, summarize, ingest as imported sessions.

Reads three kinds of file, detected from their content:

* classic AG2's ``FileLogger`` runtime log (``runtime_logging.start(logger_type="file")``): JSON
  lines for LLM calls (``invocation_id``, ``request``, ``response`` as the ``repr`` of the
  ``ChatCompletion``, ``cost``...), agents, wrappers, clients, events and function calls, after a
  ``Started new session with Session ID: ...`` line;
* classic AG2's ``SqliteLogger`` database (``logger_type="sqlite"``): the ``chat_completions``,
  ``oai_clients``... tables;
* the log of the system this app replaces: the ``FileLogger`` lines plus
  ``# MOZAIKS SESSION START: {json}`` lines carrying ``chat_id``, ``workflow_name`` and
  ``enterprise_id`` (``# ... SESSION END: {json}`` lines, when present, give the status).

Anything else is refused before anything is written (``NotAnAG2Log``): another kind of SQLite
database, random bytes, an empty, compressed or plain text file, a directory, a FIFO, and a
symbolic link unless ``follow_symlinks`` (``source``). Figures are read from the structure AG2
logged (``responses``): a message that quotes log syntax changes none.

Every file is sanitized first (``pipeline.sanitize``, the thorough pass): a sanitized copy is
written beside the original (``<name>.sanitized``, or ``<name>.sanitized.db`` for a database),
or the original is rewritten atomically with ``in_place=True`` (a database is then vacuumed, so
no free page keeps an old value). Everything after reads the sanitized data only.

Each session becomes the journal the recorder would have written (``session_start``,
``llm_call``, ``session_end``), ``JOURNAL_DIR/imported/<session>.jsonl``, and takes the one path
every session takes: ``ingest_journal`` then ``summarize_session``, so reports see it at once.
A call's id comes from its content, never its position (``identity``): importing a file twice,
its sanitized copy, or a damaged copy (bytes changed, lines dropped, repeated, reordered) adds
no call already imported. Calls are priced by ``pricing.price_call`` (its cost-zero rules
included); AG2's own cost is kept as ``ag2_cost``. Malformed lines are counted and reported with
their numbers, never fatal.
"""

from ag2_logging.pipeline.legacy.identity import NAMESPACE
from ag2_logging.pipeline.legacy.importer import (
    PROGRESS_MIN_BYTES,
    ImportResult,
    import_log,
    ingest_log,
    read_log,
    summarize_autogen_runtime_file,
    summarize_runtime_log,
)
from ag2_logging.pipeline.legacy.records import LegacyCall, LegacyLog, LegacySession
from ag2_logging.pipeline.legacy.source import SQLITE_MAGIC, NotAnAG2Log
from ag2_logging.pipeline.legacy.summary import summarize
from ag2_logging.pipeline.legacy.text import sanitized_path

__all__ = [
    "NAMESPACE",
    "PROGRESS_MIN_BYTES",
    "SQLITE_MAGIC",
    "ImportResult",
    "LegacyCall",
    "LegacyLog",
    "LegacySession",
    "NotAnAG2Log",
    "import_log",
    "ingest_log",
    "read_log",
    "sanitized_path",
    "summarize",
    "summarize_autogen_runtime_file",
    "summarize_runtime_log",
]
