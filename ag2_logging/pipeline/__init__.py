"""After a session: its journal becomes rows and rollups, once, in order, on whichever host can read it.

* ``modes``   which mode is in effect (``inline`` or ``celery``) and whether a broker answers;
* ``store``   journals published to ``JOURNAL_STORAGE`` so that other hosts can read them;
* ``chain``   one session's ordered steps: sanitize -> publish -> ingest -> summarize;
* ``handoff`` session end -> the chain, on the app's own background thread or on Celery.
"""
