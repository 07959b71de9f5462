"""The Start / Retry button and the machine's status, for the attempt page. Thin views."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from baseliner.attempts.access import attempt_for_user
from baseliner.attempts.services import AttemptActionError, attempt_accept_rules

from .services import attempt_request_start, machine_status


@require_POST
@login_required
def attempt_start(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
    try:
        if attempt.rules_accepted_at is None:
            if request.POST.get("accept_rules") != "on":
                raise AttemptActionError("Please read the rules and tick the box to accept them before starting.")
            attempt = attempt_accept_rules(attempt=attempt)
        attempt_request_start(attempt=attempt, user=request.user)
    except AttemptActionError as exc:
        messages.error(request, str(exc))
    return redirect("attempt-detail", attempt_id=attempt.pk)


@never_cache
@require_GET
@login_required
def attempt_machine_status(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
    return JsonResponse(machine_status(attempt=attempt))
