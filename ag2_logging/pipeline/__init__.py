"""After a session: its journal becomes rows and rollups, once, in order, on whichever host can read it.

The only reader of finished journals. ``modes`` (inline or celery, and whether a broker answers),
``handoff`` (session end: the Session row, then one chain, on the app's pipeline thread or on
Celery), ``chain`` (sanitize -> publish -> ingest -> summarize under a lease), ``store`` (journals
published to ``JOURNAL_STORAGE``), ``sanitize``, ``ingest`` and ``rows`` (journal -> rows),
``rollups``, ``recovery``, ``retention``, ``reprice``, ``legacy`` (old AG2 logs -> journals ->
the same ingest), ``db`` (database habits of the app's threads).
"""
