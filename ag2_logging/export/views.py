"""The Prometheus scrape view, for the project to mount::

    from ag2_logging.export.views import prometheus_metrics

    urlpatterns += [path("ag2-logging/metrics", prometheus_metrics)]

Protected like the admin reports: a logged-in active staff user with the *view daily rollup*
permission, or ``Authorization: Bearer <AG2_LOGGING["PROMETHEUS_TOKEN"]>`` (compared in constant
time; no token setting, no token access). 401 without credentials, 403 with the wrong ones, 501
when ``prometheus-client`` is not installed. The body is Prometheus' text format.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ag2_logging.conf import conf

PERMISSION = "ag2_logging.view_dailyrollup"


def _bearer_ok(request: HttpRequest) -> bool:
    token = conf.resolved.prometheus_token
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


def _denied(request: HttpRequest) -> HttpResponse | None:
    if _bearer_ok(request):
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff and user.has_perm(PERMISSION):
        return None
    if request.headers.get("Authorization") or (user is not None and user.is_authenticated):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    response = HttpResponse("Authentication required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="ag2_logging"'
    return response


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Every metric of :mod:`ag2_logging.export.prometheus`, read from the rollups now."""
    denied = _denied(request)
    if denied is not None:
        return denied
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from ag2_logging.export import prometheus
    except ImportError:
        return HttpResponse(
            "prometheus-client is not installed: pip install django-ag2-logging[prometheus]\n",
            status=501,
            content_type="text/plain",
        )
    return HttpResponse(generate_latest(prometheus.registry()), content_type=CONTENT_TYPE_LATEST)
