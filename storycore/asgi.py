"""ASGI entry point: HTTP and WebSocket on one port."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storycore.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from generation.consumers import BriefConsumer  # noqa: E402
from storycore.ws_auth import websocket_auth  # noqa: E402

websocket_urlpatterns = [
    path("ws/briefs/<uuid:brief_uuid>/", BriefConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(websocket_auth(URLRouter(websocket_urlpatterns))),
    }
)
