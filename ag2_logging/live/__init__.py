"""The live dashboard (issue 17): running sessions, cost today and this month against each active
budget, calls and errors per minute, the latest calls, updated without a reload.

* :mod:`~ag2_logging.live.counters`: the live counters each process writes (database thread);
* :mod:`~ag2_logging.live.snapshot`: what the page shows, read from them;
* :mod:`~ag2_logging.live.views`: the permission, the transport and the JSON answer;
* :mod:`~ag2_logging.live.consumer` and :mod:`~ag2_logging.live.routing`: the WebSocket
  (Django Channels, the optional extra ``live``).

The page itself is on the admin (:mod:`ag2_logging.admin.live`).
"""
