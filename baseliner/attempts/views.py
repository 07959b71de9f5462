"""The clock's endpoints: the countdown's source, and the expert's End / Pause / Resume.
Thin: access check, one service call, a redirect or JSON."""
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .access import attempt_for_user, is_attempt_expert, is_reviewer
from .ending import archive_paths
from .lifecycle import attempt_clock_status, attempt_end, attempt_pause, attempt_resume
from .notes import NOTE_MAX_CHARS, NoteRefused, note_add, note_public, notes_for
from .services import AttemptActionError
from .states import EndReason


@never_cache
@require_GET
@login_required
def attempt_clock(request, attempt_id: int):
    """The server's deadline and time, for the countdown (see frontend/src/_countdown.js)."""
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
    return JsonResponse(attempt_clock_status(attempt=attempt))


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _answer(request, attempt, error: str | None, ok_message: str, to: str | None = None):
    if _wants_json(request):
        if error:
            return JsonResponse({"ok": False, "error": error}, status=409)
        return JsonResponse({"ok": True, "message": ok_message, "clock": attempt_clock_status(attempt=attempt), "redirect": to})
    if error:
        messages.error(request, error)
    else:
        messages.success(request, ok_message)
    return redirect(to) if to else redirect("attempt-detail", attempt.pk)


@require_POST
@login_required
def attempt_end_view(request, attempt_id: int):
    """The expert's End attempt button (the page asks for confirmation first; the form
    must carry confirm=yes so a stray POST cannot end an attempt)."""
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
    if not is_attempt_expert(user=request.user, attempt=attempt):
        raise Http404("No such attempt.")  # staff end attempts in the admin, with a reason
    if request.POST.get("confirm") != "yes":
        return _answer(request, attempt, "Please confirm that you want to end the attempt; it cannot be undone.", "")
    try:
        attempt = attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=request.user)
    except AttemptActionError as exc:
        return _answer(request, attempt, str(exc), "")
    from django.urls import reverse

    return _answer(request, attempt, None, "Your attempt has ended.", reverse("attempt-survey", args=[attempt.pk]))


@require_POST
@login_required
def attempt_pause_view(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
    try:
        attempt = attempt_pause(attempt=attempt, actor=request.user, reason=request.POST.get("reason", ""))
    except AttemptActionError as exc:
        return _answer(request, attempt, str(exc), "")
    return _answer(request, attempt, None, "Paused: the clock has stopped and your machine is frozen until you resume.")


@require_POST
@login_required
def attempt_resume_view(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
    try:
        attempt = attempt_resume(attempt=attempt, actor=request.user, reason=request.POST.get("reason", ""))
    except AttemptActionError as exc:
        return _answer(request, attempt, str(exc), "")
    return _answer(request, attempt, None, "Resumed: the clock is running again.")


@never_cache
@login_required
def attempt_archive(request, attempt_id: int, part: str = "archive"):
    """Staff download the final-solution archive (or its manifest)."""
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
    if not is_reviewer(request.user):
        raise Http404("No such archive.")
    paths = archive_paths(attempt)
    if paths is None:
        raise Http404("This attempt has no archive (yet).")
    path = paths[0] if part == "archive" else paths[1]
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


@never_cache
def attempt_notes(request, attempt_id: int):
    """The workspace's Notes panel: GET lists the attempt's notes, POST ``{"text": ...}`` adds
    one (the attempt's expert, while it runs; CSRF-protected like every POST). JSON errors."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Log in first."}, status=401)
    try:
        attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
    except Http404:
        return JsonResponse({"error": "No such attempt."}, status=404)
    if request.method == "GET":
        return JsonResponse({"notes": notes_for(attempt=attempt), "max_chars": NOTE_MAX_CHARS})
    if request.method != "POST":
        return JsonResponse({"error": "Use GET to list notes and POST to add one."}, status=405)
    if len(request.body) > NOTE_MAX_CHARS * 6 + 4096:  # JSON-escaped text cannot be longer
        return JsonResponse({"error": f"The note is too long (at most {NOTE_MAX_CHARS} characters). Nothing was saved."}, status=413)
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return JsonResponse({"error": "The request body must be a JSON object like {\"text\": \"...\"}."}, status=400)
    try:
        note = note_add(attempt=attempt, author=request.user, text=body.get("text"))
    except NoteRefused as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"note": note_public(note, attempt=note.attempt)}, status=201)
