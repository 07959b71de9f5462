"""
Live events to an attempt's open pages: one helper, one group per attempt.

Services call ``attempt_event(attempt_id, "provisioning", {...})`` after their change is
committed; every page of that attempt (the expert's workspace, a staff monitor) receives
``{"type": "provisioning", ...}`` over ``/ws/attempts/<id>/events/``.
"""
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def attempt_group(attempt_id: int) -> str:
    return f"attempt-{attempt_id}"


def _send(attempt_id: int, kind: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(attempt_group(attempt_id), {"type": "attempt.event", "event": {"type": kind, **payload}})
    except Exception:  # a live update is best-effort: the page also re-reads state on (re)connect
        log.warning("could not push %s event for attempt %s", kind, attempt_id, exc_info=True)


def attempt_event(attempt_id: int, kind: str, payload: dict | None = None) -> None:
    """Send after the current transaction commits (immediately when there is none)."""
    transaction.on_commit(lambda: _send(attempt_id, kind, payload or {}))
