"""WebSocket routes. Each consumer re-checks access with attempt_for_user on connect."""
from django.urls import path

from baseliner.web.consumers import AttemptEventsConsumer
from baseliner.workspace.consumers import TerminalConsumer

websocket_urlpatterns = [
    path("ws/attempts/<int:attempt_id>/events/", AttemptEventsConsumer.as_asgi()),
    path("ws/attempts/<int:attempt_id>/terminals/<str:name>/", TerminalConsumer.as_asgi()),
]
