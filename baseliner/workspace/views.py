"""
The workspace's JSON API (the editor's files, the terminal tabs). Thin: each route checks
access (``attempt_for_user`` + only the attempt's own expert + a running attempt), then calls
``files.HomeFiles`` or tmux on the machine. Errors are JSON ``{"error": "..."}``.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import shlex

import paramiko
from django.http import Http404, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from baseliner.attempts.access import attempt_for_user, is_reviewer
from baseliner.attempts.notes import NOTE_MAX_CHARS
from baseliner.attempts.states import State
from baseliner.recording.services import editor_save_record
from provisioning.ssh import SSHError

from .bridge import NAME_RE
from .files import MAX_EDIT_BYTES, FileError, HomeFiles, clean_relpath
from .machine import NoMachine, forget_client, machine_info, run_as_expert, sftp_session

log = logging.getLogger(__name__)


def _error(message: str, status: int, **data) -> JsonResponse:
    return JsonResponse({"error": message, **data}, status=status)


def expert_api(view=None, *, staff_may_read: bool = False):
    """Access, state and error handling shared by every workspace API route: only the
    attempt's expert (staff reviewers too for ``staff_may_read`` GET routes), running attempts."""
    if view is None:
        return functools.partial(expert_api, staff_may_read=staff_may_read)

    @never_cache
    @functools.wraps(view)
    def wrapper(request, attempt_id: int, *args, **kwargs):
        if not request.user.is_authenticated:
            return _error("Log in first.", 401)
        try:
            attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
        except Http404:
            return _error("No such attempt.", 404)
        staff_reading = staff_may_read and request.method == "GET" and is_reviewer(request.user)
        if attempt.expert_id != request.user.pk and not staff_reading:
            return _error("Only the attempt's expert can use its files and terminals.", 403)
        if attempt.state != State.RUNNING:
            return _error("The attempt is not running, so its machine cannot be changed.", 409)
        body = {}
        if request.method == "POST":
            if len(request.body) > MAX_EDIT_BYTES * 2 + 65536:
                return _error("The request is too large.", 413)
            try:
                body = json.loads(request.body or b"{}")
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                return _error("The request body must be a JSON object.", 400)
        try:
            machine = machine_info(attempt=attempt)
        except NoMachine as exc:
            return _error(str(exc), 503)
        try:
            return view(request, attempt, machine, body, *args, **kwargs)
        except FileError as exc:
            return _error(str(exc), exc.status, **exc.data)
        except (SSHError, paramiko.SSHException, EOFError, OSError) as exc:
            forget_client(machine)
            log.warning("workspace API for attempt %s: machine error: %s", attempt.pk, exc)
            return _error(getattr(exc, "user_message", "Your machine did not answer; try again in a moment."), 502)
        except Exception:  # e.g. a malformed pinned key: say so, never a crash page
            forget_client(machine)
            log.exception("workspace API for attempt %s: unexpected machine error", attempt.pk)
            return _error("Your machine could not be reached; staff have been told.", 502)

    return wrapper


# --- files --------------------------------------------------------------------------------
@require_GET
@expert_api
def file_list(request, attempt, machine, body):
    rel = clean_relpath(request.GET.get("path", ""), allow_home=True)
    with sftp_session(machine=machine) as sftp:
        return JsonResponse(HomeFiles(sftp, machine.home).list(rel))


@expert_api
def file_content(request, attempt, machine, body):
    if request.method == "GET":
        rel = clean_relpath(request.GET.get("path"))
        with sftp_session(machine=machine) as sftp:
            return JsonResponse(HomeFiles(sftp, machine.home).read(rel))
    if request.method != "POST":
        return _error("Use GET to read and POST to save.", 405)
    rel = clean_relpath(body.get("path"))
    with sftp_session(machine=machine) as sftp:
        result = HomeFiles(sftp, machine.home).write(rel, body.get("content"), expected=body.get("version"),
                                                     overwrite=body.get("overwrite") is True)
    editor_save_record(attempt=attempt, path=rel, size=result["version"]["size"], sha256=result["version"]["sha256"])
    return JsonResponse(result)


@require_POST
@expert_api
def file_create(request, attempt, machine, body):
    rel = clean_relpath(body.get("path"))
    with sftp_session(machine=machine) as sftp:
        return JsonResponse(HomeFiles(sftp, machine.home).create(rel, body.get("type", "file")), status=201)


@require_POST
@expert_api
def file_rename(request, attempt, machine, body):
    rel, to = clean_relpath(body.get("path")), clean_relpath(body.get("to"))
    with sftp_session(machine=machine) as sftp:
        return JsonResponse(HomeFiles(sftp, machine.home).rename(rel, to))


@require_POST
@expert_api
def file_delete(request, attempt, machine, body):
    rel = clean_relpath(body.get("path"))
    with sftp_session(machine=machine) as sftp:
        return JsonResponse(HomeFiles(sftp, machine.home).delete(rel))


# --- terminal tabs (tmux sessions) ----------------------------------------------------------
def _terminal_name(value) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise FileError("A terminal name is 1-32 letters, digits, '-' or '_'.")
    return value


@require_GET
@expert_api(staff_may_read=True)
def terminal_list(request, attempt, machine, body):
    result = run_as_expert(machine=machine, command="tmux list-sessions -F '#{session_created} #{session_name}' 2>/dev/null || true")
    rows = sorted(line.split(" ", 1) for line in result.stdout.splitlines() if re.fullmatch(r"\d+ [A-Za-z0-9_-]{1,32}", line))
    return JsonResponse({"terminals": [name for _, name in rows]})


@require_POST
@expert_api
def terminal_rename(request, attempt, machine, body):
    name, to = _terminal_name(body.get("name")), _terminal_name(body.get("to"))
    result = run_as_expert(machine=machine, command=f"tmux rename-session -t ={shlex.quote(name)} {shlex.quote(to)}")
    if not result.ok:
        raise FileError(f"Could not rename the terminal: {result.stderr.strip() or result.stdout.strip()}", 409)
    return JsonResponse({"name": to})


@require_POST
@expert_api
def terminal_close(request, attempt, machine, body):
    name = _terminal_name(body.get("name"))
    run_as_expert(machine=machine, command=f"tmux kill-session -t ={shlex.quote(name)} 2>/dev/null || true")
    return JsonResponse({"name": name, "closed": True})


# --- the workspace page's context ---------------------------------------------------------
SCORING_PANEL = "scoring/_panel.html"


def workspace_context(*, user, attempt) -> dict | None:
    """What templates/workspace/_workspace.html needs, or None when the page shows no
    workspace (the attempt is not running)."""
    if attempt.state != State.RUNNING:
        return None
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template
    try:
        get_template(SCORING_PANEL)
        scoring_panel = SCORING_PANEL
    except TemplateDoesNotExist:
        scoring_panel = None
    is_expert = attempt.expert_id == user.pk
    return {
        "read_only": not is_expert,
        "can_take_over": not is_expert and user.has_perm("attempts.change_attempt"),
        "scoring_panel": scoring_panel,
        "notes_max_chars": NOTE_MAX_CHARS,
    }
