"""
Live events to an attempt's open pages: one helper, one group per attempt.

Services call ``attempt_event(attempt_id, "provisioning", {...})`` after their change is
committed; every page of that attempt (the expert's workspace, a staff monitor) receives
``{"type": "provisioning", ...}`` over ``/ws/attempts/<id>/events/``.
"""
import asyncio
import logging
import threading

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
    message = {"type": "attempt.event", "event": {"type": kind, **payload}}
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    try:
        if in_loop:
            # Sync code on a thread that runs an event loop (a sync library driving one, such
            # as Playwright's sync API): async_to_sync refuses, so send from a helper thread.
            _send_in_thread(layer, attempt_group(attempt_id), message)
        else:
            async_to_sync(layer.group_send)(attempt_group(attempt_id), message)
    except Exception:  # a live update is best-effort: the page also re-reads state on (re)connect
        log.warning("could not push %s event for attempt %s", kind, attempt_id, exc_info=True)


def _send_in_thread(layer, group: str, message: dict) -> None:
    errors: list[BaseException] = []

    def target():
        try:
            async_to_sync(layer.group_send)(group, message)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="attempt-event", daemon=True)
    thread.start()
    thread.join(timeout=10)
    if errors:
        raise errors[0]


def attempt_event(attempt_id: int, kind: str, payload: dict | None = None) -> None:
    """Send after the current transaction commits (immediately when there is none)."""
    transaction.on_commit(lambda: _send(attempt_id, kind, payload or {}))
