"""The tests' ASGI application: Django over HTTP (static files served, like the live server) and
the live dashboard's WebSocket through Channels' session authentication. Served by uvicorn in
tests/test_live_browser.py."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_app = get_asgi_application()  # sets Django up before the imports below

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from ag2_logging.live.routing import websocket_urlpatterns  # noqa: E402

websocket = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
application = ProtocolTypeRouter(
    {"http": ASGIStaticFilesHandler(django_app), "websocket": AllowedHostsOriginValidator(websocket)}
)
