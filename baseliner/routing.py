"""WebSocket routes. Each consumer re-checks access with attempt_for_user on connect."""
from django.urls import path

from baseliner.web.consumers import AttemptEventsConsumer

websocket_urlpatterns = [
    path("ws/attempts/<int:attempt_id>/events/", AttemptEventsConsumer.as_asgi()),
]
