"""
The terminal WebSocket: ``/ws/attempts/<id>/terminals/<name>/?cols=&rows=[&takeover=1]``.

Frames from the page: binary = keystrokes/paste; text = JSON control messages
``{"type": "ack", "bytes": n}`` and ``{"type": "resize", "cols": c, "rows": r}``.
Frames to the page: binary = terminal output; text = JSON ``{"type": "error"|"closed"|"ready", ...}``.

Who may connect: the attempt's expert (read-write); staff reviewers read-only, or read-write
after an explicit, audited take-over. Only a running attempt's terminals open. Close codes:
4000 attempt ended, 4001 not running (paused, not started), 4100 the shell exited,
4400 bad request, 4403 refused, 4404 no such terminal (read-only attach), 4502 machine unreachable.
"""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

from django.http import Http404

from baseliner.attempts import clock
from baseliner.attempts.access import attempt_for_user, is_reviewer
from baseliner.attempts.lifecycle import attempt_enforce_deadline_async
from baseliner.attempts.models import Attempt
from baseliner.attempts.states import State
from baseliner.audit.services import audit_record
from baseliner.web.events import attempt_group
from provisioning.ssh import SSHError

from .bridge import NAME_RE, TerminalBridge, clamp_size
from .dispatch import DirectDispatchConsumer
from .machine import NoMachine, machine_info
from .offload import db

log = logging.getLogger(__name__)

NOT_RUNNING = {
    State.PAUSED: "The attempt is paused; its terminals open again when it resumes.",
    State.ENDED: "The attempt has ended; its terminals are closed.",
    State.SURVEYED: "The attempt has ended; its terminals are closed.",
}
MARKER_EVENTS = ("score", "clock", "warning")


class Refused(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@db
def authorize_terminal(*, user, attempt_id, terminal: str, takeover: bool):
    """(machine, read_only, deadline) for a terminal this user may open now; raises Http404
    when the attempt is not theirs to see, Refused with a message otherwise."""
    # The attempt's own row only: a terminal needs none of its environment (instructions,
    # manifest) or assignment, and every connect and reload waits on this query.
    attempt = attempt_for_user(user=user, attempt_id=attempt_id, queryset=Attempt.objects.all())
    if attempt.expert_id == user.pk:
        read_only = False
    elif is_reviewer(user):
        read_only = True
        if takeover:
            if not user.has_perm("attempts.change_attempt"):
                raise Refused(4403, "Taking over a terminal needs permission to change attempts.")
            read_only = False
    else:  # pragma: no cover - attempt_for_user already refused
        raise Http404
    if attempt.state != State.RUNNING:
        code = 4000 if attempt.state in (State.ENDED, State.SURVEYED) else 4001
        raise Refused(code, NOT_RUNNING.get(attempt.state, "The attempt is not running yet; start it first."))
    try:
        machine = machine_info(attempt=attempt)
    except NoMachine as exc:
        raise Refused(4502, str(exc)) from None
    if not read_only and attempt.expert_id != user.pk:
        audit_record(action="terminal.takeover", actor=user, attempt=attempt, data={"terminal": terminal})
    return machine, read_only, attempt.deadline_at


@db
def _deadline_of(attempt_id):
    return Attempt.objects.filter(pk=attempt_id).values_list("deadline_at", flat=True).first()


class TerminalConsumer(DirectDispatchConsumer):
    bridge: TerminalBridge | None = None
    group: str | None = None
    # The attempt's deadline as last known (from connect, then from "clock" events): every
    # message is checked against it without a database query, and only a message at or past
    # it asks the database (which ends an overdue attempt).
    deadline = None

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        self.attempt_id, self.terminal = kwargs["attempt_id"], kwargs["name"]
        query = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode()).items()}
        user = self.scope.get("user")
        try:
            machine, read_only, self.deadline = await authorize_terminal(user=user, attempt_id=self.attempt_id, terminal=self.terminal,
                                                          takeover=query.get("takeover") == "1")
            if not NAME_RE.fullmatch(self.terminal):
                raise Refused(4400, "A terminal name is 1-32 letters, digits, '-' or '_'.")
            try:
                cols, rows = clamp_size(query.get("cols", 80), query.get("rows", 24))
            except ValueError as exc:
                raise Refused(4400, str(exc)) from None
        except Http404:
            await self.close(code=4403)  # before accept: the handshake is refused (HTTP 403)
            return
        except Refused as exc:
            await self.accept()  # accepted only to say why, then closed
            return await self._close_with(exc.code, exc.message)
        await self.accept()
        self.group = attempt_group(self.attempt_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.bridge = TerminalBridge(
            machine=machine, attempt_id=int(self.attempt_id), terminal=self.terminal, read_only=read_only,
            cols=cols, rows=rows, user=user, send_bytes=self._send_output, send_json=self._send_json, on_exit=self._shell_exited,
        )
        try:
            await self.bridge.start()
        except (SSHError, OSError, asyncio.TimeoutError, Exception) as exc:  # say why, never crash
            log.warning("terminal %s of attempt %s: cannot reach the machine: %s", self.terminal, self.attempt_id, exc)
            message = getattr(exc, "user_message", "Your machine is not answering. Reconnecting shortly; staff have been told if it persists.")
            await self.bridge.stop()
            self.bridge = None
            return await self._close_with(4502, message)
        await self._send_json({"type": "ready", "terminal": self.terminal, "read_only": read_only})

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.bridge is not None:
            bridge, self.bridge = self.bridge, None
            await bridge.stop()

    async def receive(self, text_data=None, bytes_data=None):
        if self.bridge is None:
            return
        if self.deadline is not None and clock.now() >= self.deadline:
            if not await attempt_enforce_deadline_async(attempt_id=int(self.attempt_id)):
                return await self._close_with(4000, "Time is up: the attempt has ended and its terminals are closed.")
            self.deadline = await _deadline_of(self.attempt_id)  # extended meanwhile
        if bytes_data is not None:
            error = await self.bridge.input(bytes_data)
            if error:
                await self._send_json({"type": "error", "message": error})
            return
        try:
            msg = json.loads(text_data)
            if not isinstance(msg, dict):
                raise ValueError
        except (TypeError, ValueError):
            await self._send_json({"type": "error", "message": "Control messages are JSON objects; keystrokes go in binary frames."})
            return
        kind = msg.get("type")
        try:
            if kind == "ack":
                n = msg.get("bytes")
                if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                    raise ValueError("ack needs a non-negative whole number of bytes")
                self.bridge.ack(n)
            elif kind == "resize":
                self.bridge.resize(*clamp_size(msg.get("cols"), msg.get("rows")))
            elif kind == "input" and isinstance(msg.get("data"), str):
                error = await self.bridge.input(msg["data"].encode())
                if error:
                    raise ValueError(error)
            else:
                raise ValueError(f"unknown control message type {str(kind)[:40]!r}")
        except ValueError as exc:
            await self._send_json({"type": "error", "message": str(exc)})

    # --- attempt events (group) ---
    async def attempt_event(self, message):
        event = message.get("event") or {}
        kind = event.get("type")
        if kind == "ended":
            await self._close_with(4000, event.get("message") or "The attempt has ended; its terminals are closed.")
        elif kind == "paused":
            await self._close_with(4001, event.get("message") or NOT_RUNNING[State.PAUSED])
        elif kind == "clock" and event.get("deadline"):
            from django.utils.dateparse import parse_datetime

            self.deadline = parse_datetime(event["deadline"]) or self.deadline
        elif kind in MARKER_EVENTS and self.bridge is not None:
            detail = event.get("label") or event.get("message") or json.dumps({k: v for k, v in event.items() if k != "type"}, default=str)
            self.bridge.marker(f"{kind}: {detail}"[:500])

    # --- helpers ---
    async def _send_output(self, data: bytes):
        await self.send(bytes_data=data)

    async def _send_json(self, data: dict):
        await self.send(text_data=json.dumps(data))

    async def _shell_exited(self):
        await self._close_with(4100, "The shell in this terminal exited.")

    async def _close_with(self, code: int, message: str):
        try:
            await self._send_json({"type": "closed", "code": code, "message": message})
            await self.close(code=code, reason=message.encode()[:120].decode("utf-8", "ignore"))
        except Exception:  # the socket may already be gone
            pass
        if self.bridge is not None:
            bridge, self.bridge = self.bridge, None
            asyncio.ensure_future(bridge.stop())
