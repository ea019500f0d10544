"""The WebSocket route of the live dashboard, for a project's ``asgi.py`` (Django Channels)::

    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()
    from ag2_logging.live.routing import websocket_urlpatterns  # after Django is set up

    application = ProtocolTypeRouter({
        "http": django_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    })

The page connects to :data:`WEBSOCKET_PATH` (``LiveViewsMixin.live_websocket_path`` if you
mount it elsewhere).
"""

from __future__ import annotations

from django.urls import path

from ag2_logging.live.consumer import LiveConsumer
from ag2_logging.live.views import WEBSOCKET_PATH

websocket_urlpatterns = [path(WEBSOCKET_PATH, LiveConsumer.as_asgi(), name="ag2_logging_live_ws")]
