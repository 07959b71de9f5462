"""Score endpoints: the Score button and score log (session auth, attempt_for_user), and the
machine API used by the ``score`` command (per-lease bearer token). All thin."""
import json

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from baseliner.attempts.access import attempt_for_user, is_attempt_expert, is_reviewer

from .models import ScoreEntry, ScoreRun
from .services import ScoringRefused, entry_public, machine_token_attempt, score_log_for, score_request


def _run_json(run: ScoreRun, *, show_raw: bool) -> dict:
    return {"run": run.pk, "status": run.status,
            "entry": entry_public(run.entry, show_raw=show_raw) if run.entry_id else None}


@never_cache
@login_required
@require_POST
def attempt_score(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
    trigger = ScoreEntry.Trigger.BUTTON if is_attempt_expert(user=request.user, attempt=attempt) else ScoreEntry.Trigger.STAFF
    try:
        run, message = score_request(attempt=attempt, trigger=trigger, user=request.user)
    except ScoringRefused as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"run": run.pk, "status": run.status, "message": message}, status=202)


@never_cache
@login_required
@require_GET
def attempt_score_log(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
    reviewer = is_reviewer(request.user) and not is_attempt_expert(user=request.user, attempt=attempt)
    return JsonResponse(score_log_for(attempt=attempt, reviewer=reviewer))


# --- the machine's API -----------------------------------------------------------------

def _token_attempt(request):
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    return machine_token_attempt(token=token)


def _refused(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt  # bearer-token API, no cookies
@never_cache
@require_POST
def machine_score(request):
    attempt = _token_attempt(request)
    if attempt is None:
        return _refused("This machine's score token is not valid (the attempt may have ended).", 401)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _refused("The request body is not JSON.", 400)
    claimed = body.get("attempt") if isinstance(body, dict) else None
    if claimed is not None and str(claimed) != str(attempt.pk):
        return _refused("This token belongs to another attempt.", 403)
    try:
        run, message = score_request(attempt=attempt, trigger=ScoreEntry.Trigger.COMMAND, user=attempt.expert)
    except ScoringRefused as exc:
        return _refused(str(exc), 409)
    return JsonResponse({"run": run.pk, "status": run.status, "message": message}, status=202)


@never_cache
@require_GET
def machine_score_run(request, run_id: int):
    attempt = _token_attempt(request)
    if attempt is None:
        return _refused("This machine's score token is not valid (the attempt may have ended).", 401)
    run = get_object_or_404(ScoreRun.objects.select_related("entry"), pk=run_id, attempt=attempt)
    return JsonResponse(_run_json(run, show_raw=attempt.environment.score_visible_to_expert))


@never_cache
@require_GET
def machine_score_log(request):
    attempt = _token_attempt(request)
    if attempt is None:
        return _refused("This machine's score token is not valid (the attempt may have ended).", 401)
    return JsonResponse(score_log_for(attempt=attempt, reviewer=False))
