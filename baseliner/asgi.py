"""ASGI entry point: HTTP through Django, WebSockets through Channels (session auth, Origin checked)."""
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "baseliner.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

# The event loop shares the GIL with the sync threads and paramiko's transports: hand it
# back sooner than Python's 5 ms (settings.WEB_GIL_SWITCH_INTERVAL says why and what it buys).
sys.setswitchinterval(settings.WEB_GIL_SWITCH_INTERVAL)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from baseliner.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
